"""`file:quarantine`: move a file out of reach into a 0700 directory, with its sha256 and a
JSON record of where it was, its metadata and the alert that caused the move.

Quarantined content is stored by digest (`<sha256>`, mode 0400); each move leaves
`<sha256>.<epoch ns>.json`. Only regular files are moved (never a symlink's target).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.response.actions.base import Action, Param, register_action
from engine.response.errors import ActionError, ActionRefused


def default_quarantine_dir() -> str:
    home = os.environ.get("FALCONET_HOME")
    return str(Path(home) / "state" / "quarantine") if home else "/var/lib/falconet/quarantine"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _private_directory(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def _move(source: Path, target: Path) -> None:
    """Rename when possible; across file systems copy, then unlink the original."""
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno != 18:  # EXDEV
            raise
        shutil.copy2(source, target)
        source.unlink()


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
        source = Path(str(value))
        directory = Path(params["directory"] or default_quarantine_dir())
        try:
            info = source.lstat()
        except FileNotFoundError:
            raise ActionError(f"{source} no longer exists") from None
        if not stat.S_ISREG(info.st_mode):
            raise ActionRefused(f"{source} is not a regular file")
        if directory.resolve() in source.resolve().parents:
            raise ActionRefused(f"{source} is already in quarantine")
        _private_directory(directory)
        digest = _sha256(source)
        target = directory / digest
        if target.exists():
            source.unlink()  # same content already held: keep one copy
        else:
            _move(source, target)
            os.chmod(target, 0o400)
        record = {
            "original_path": str(source),
            "sha256": digest,
            "size": info.st_size,
            "mode": oct(stat.S_IMODE(info.st_mode)),
            "uid": info.st_uid,
            "gid": info.st_gid,
            "mtime_ns": info.st_mtime_ns,
            "quarantined_ns": time.time_ns(),
            "alert": {k: alert.get(k) for k in ("rule", "priority", "time", "hostname")},
        }
        record_path = directory / f"{digest}.{record['quarantined_ns']}.json"
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        os.chmod(record_path, 0o600)
        return {
            "moved": str(source),
            "to": str(target),
            "sha256": digest,
            "record": str(record_path),
        }
