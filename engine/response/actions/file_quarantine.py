"""`file:quarantine`: move a file out of reach into a 0700 directory, with its sha256 and a
JSON record of where it was, its metadata and the alert that caused the move.

Quarantined content is stored by digest (`<sha256>`, mode 0400); each move leaves
`<sha256>.<epoch ns>.json`. Only regular files are moved (never a symlink's target).

The path comes from event data, so it is hostile: it is walked from `/` with directory file
descriptors and O_NOFOLLOW (engine.response.nofollow), so a symlink anywhere in it (the file
or any parent directory) is refused, never followed; the file is opened, checked and hashed by
descriptor and moved by (directory fd, name), after checking that the name still is the file that
was hashed. The record (with the real path, device and inode) is written and fsynced before the
source is moved or, when identical content is already held (its copy re-hashed first), removed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.response.actions.base import Action, Param, register_action
from engine.response.errors import ActionError, ActionRefused
from engine.response.nofollow import Parent, open_parent


def default_quarantine_dir() -> str:
    home = os.environ.get("FALCONET_HOME")
    return str(Path(home) / "state" / "quarantine") if home else "/var/lib/falconet/quarantine"


_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _sha256_fd(fd: int) -> str:
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _private_directory(path: Path) -> int:
    """The quarantine directory, created 0700, opened (its last component not followed)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise ActionError(
            f"cannot open the quarantine directory {path}: {error.strerror}"
        ) from None
    os.fchmod(fd, 0o700)
    return fd


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _lstat_at(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _write_new(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    """Create `name` in the directory (never through an existing name or symlink), durably."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dir_fd)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_fd(source_fd: int, dir_fd: int, name: str) -> None:
    """Across file systems: copy the open source into the quarantine, durably, 0400."""
    os.lseek(source_fd, 0, os.SEEK_SET)
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400, dir_fd=dir_fd)
    try:
        while chunk := os.read(source_fd, 1 << 20):
            os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)


@register_action
class QuarantineFile(Action):
    name = "file:quarantine"
    summary = "Move fd.name into a 0700 quarantine directory; keep metadata, sha256, a record."
    params = (
        Param("path", "string", "file to quarantine", "${fd.name}"),
        Param(
            "directory",
            "string",
            "quarantine directory ($FALCONET_HOME/state/quarantine or "
            "/var/lib/falconet/quarantine)",
            None,
        ),
    )

    def run(self, params: dict[str, Any], alert: Mapping[str, Any]) -> dict[str, Any]:
        value = params["path"]
        if not value or not str(value).startswith("/"):
            raise ActionError(
                f"no absolute file path in the alert ({value!r})",
                "add %fd.name to the rule's output",
            )
        vault = Path(params["directory"] or default_quarantine_dir())
        vault_fd = _private_directory(vault)
        try:
            with open_parent(str(value)) as parent:
                return self._quarantine(parent, vault, vault_fd, alert)
        finally:
            os.close(vault_fd)

    def _quarantine(
        self, parent: Parent, vault: Path, vault_fd: int, alert: Mapping[str, Any]
    ) -> dict[str, Any]:
        path = parent.path
        vault_info = os.fstat(vault_fd)
        if (vault_info.st_dev, vault_info.st_ino) in parent.directories:
            raise ActionRefused(f"{path} is already in quarantine")
        info = _lstat_at(parent.name, parent.fd)
        if info is None:
            raise ActionError(f"{path} no longer exists")
        if stat.S_ISLNK(info.st_mode):
            raise ActionRefused(f"{path} is a symlink: never followed")
        if not stat.S_ISREG(info.st_mode):
            raise ActionRefused(f"{path} is not a regular file")
        try:
            fd = os.open(parent.name, _FILE_FLAGS, dir_fd=parent.fd)
        except OSError as error:
            raise ActionError(f"cannot open {path}: {error.strerror}") from None
        try:
            held = os.fstat(fd)
            if not _same_file(held, info):
                raise ActionError(f"{path} was replaced while being quarantined")
            return self._move(parent, fd, held, vault, vault_fd, alert)
        finally:
            os.close(fd)

    def _move(
        self,
        parent: Parent,
        fd: int,
        info: os.stat_result,
        vault: Path,
        vault_fd: int,
        alert: Mapping[str, Any],
    ) -> dict[str, Any]:
        digest = _sha256_fd(fd)
        existing = _lstat_at(digest, vault_fd)
        # Same name, so the same content is claimed: check it before relying on it.
        if existing is not None and not self._holds(digest, existing, vault_fd):
            raise ActionError(
                f"{vault / digest} does not hold what its name says; {parent.path} kept",
                "inspect the quarantine directory",
            )
        record = {
            "original_path": parent.path,  # walked without symlinks: the real path
            "device": info.st_dev,
            "inode": info.st_ino,
            "sha256": digest,
            "size": info.st_size,
            "mode": oct(stat.S_IMODE(info.st_mode)),
            "uid": info.st_uid,
            "gid": info.st_gid,
            "mtime_ns": info.st_mtime_ns,
            "quarantined_ns": time.time_ns(),
            "already_held": existing is not None,
            "alert": {k: alert.get(k) for k in ("rule", "priority", "time", "hostname")},
        }
        record_name = f"{digest}.{record['quarantined_ns']}.json"
        # The record is durable before the source goes: no file ever disappears unrecorded.
        _write_new(vault_fd, record_name, (json.dumps(record, indent=2) + "\n").encode(), 0o600)
        now = _lstat_at(parent.name, parent.fd)
        if now is None or not _same_file(now, info):
            raise ActionError(f"{parent.path} changed while being quarantined; left in place")
        if existing is not None:
            os.unlink(parent.name, dir_fd=parent.fd)
        else:
            try:
                os.rename(parent.name, digest, src_dir_fd=parent.fd, dst_dir_fd=vault_fd)
                os.fchmod(fd, 0o400)  # the inode we hold is the one now in quarantine
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
                _copy_fd(fd, vault_fd, digest)
                os.unlink(parent.name, dir_fd=parent.fd)
        return {
            "moved": parent.path,
            "to": str(vault / digest),
            "sha256": digest,
            "record": str(vault / record_name),
            **({"already_held": True} if existing is not None else {}),
        }

    @staticmethod
    def _holds(digest: str, existing: os.stat_result, vault_fd: int) -> bool:
        if not stat.S_ISREG(existing.st_mode):
            return False
        fd = os.open(digest, _FILE_FLAGS, dir_fd=vault_fd)
        try:
            return _sha256_fd(fd) == digest
        finally:
            os.close(fd)
