"""Safe extraction of artifact layers (tar.gz) into a staging directory.

Only regular files and directories are accepted; absolute names, `..`, links, devices and
fifos, a file over 64 MiB or a total over 512 MiB are refused. Entries are written into a
private directory inside the destination and moved into it only when the whole archive has
passed, so a refused archive leaves nothing behind. File modes keep only the executable bit
(no setuid, no world-writable files from an archive).
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from registry.digests import CHUNK_SIZE
from registry.errors import UnsafeArchiveError

MAX_FILE_SIZE = 64 << 20
MAX_TOTAL_SIZE = 512 << 20
MAX_ENTRIES = 10_000


def _refuse(archive: Path, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"refusing {archive.name}: {reason}",
        hint="the artifact's layer is malformed or malicious; nothing was extracted",
    )


def _safe_relative(archive: Path, name: str) -> PurePosixPath | None:
    """The entry's path relative to the destination, or None for the archive root itself."""
    if not name or "\x00" in name or "\\" in name:
        raise _refuse(archive, f"entry name {name!r} is not a plain relative path")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise _refuse(archive, f"entry {name!r} has an absolute path")
    parts = [p for p in path.parts if p != "."]
    if ".." in parts:
        raise _refuse(archive, f"entry {name!r} climbs out with '..'")
    return PurePosixPath(*parts) if parts else None


def _kind_problem(member: tarfile.TarInfo) -> str | None:
    if member.issym():
        return f"symlink {member.name!r} -> {member.linkname!r}"
    if member.islnk():
        return f"hardlink {member.name!r} -> {member.linkname!r}"
    if member.ischr() or member.isblk():
        return f"device file {member.name!r}"
    if member.isfifo():
        return f"fifo {member.name!r}"
    if not (member.isreg() or member.isdir()):
        return f"entry {member.name!r} of unsupported type {member.type!r}"
    return None


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source = tar.extractfile(member)
    if source is None:
        raise _refuse(Path(tar.name or "archive"), f"cannot read {member.name!r}")
    mode = 0o755 if member.mode & 0o111 else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    fd = os.open(target, flags, mode)
    with os.fdopen(fd, "wb") as out, source:
        while chunk := source.read(CHUNK_SIZE):
            out.write(chunk)
    os.chmod(target, mode)


def extract_targz(
    archive: Path,
    dest: Path,
    max_file_size: int = MAX_FILE_SIZE,
    max_total_size: int = MAX_TOTAL_SIZE,
) -> list[Path]:
    """Extract archive into dest; return the relative paths of the regular files written."""
    dest.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        files = _extract_into(archive, private, max_file_size, max_total_size)
        _move_contents(private, dest)
        return files
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _extract_into(archive: Path, root: Path, max_file_size: int, max_total_size: int) -> list[Path]:
    files: list[Path] = []
    total = 0
    try:
        tar = tarfile.open(archive, mode="r:gz")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError, EOFError) as error:
        raise _refuse(archive, f"not a readable tar.gz ({error})") from error
    with tar:
        try:
            for count, member in enumerate(tar, start=1):
                if count > MAX_ENTRIES:
                    raise _refuse(archive, f"more than {MAX_ENTRIES} entries")
                problem = _kind_problem(member)
                if problem:
                    raise _refuse(archive, problem)
                relative = _safe_relative(archive, member.name)
                if relative is None:
                    continue
                target = root / relative
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if member.size > max_file_size:
                    raise _refuse(
                        archive, f"{member.name!r} is {member.size} bytes (limit {max_file_size})"
                    )
                total += member.size
                if total > max_total_size:
                    raise _refuse(archive, f"the files total over {max_total_size} bytes")
                target.parent.mkdir(parents=True, exist_ok=True)
                _copy_member(tar, member, target)
                if Path(relative) not in files:
                    files.append(Path(relative))
        except (tarfile.TarError, EOFError, OSError) as error:
            raise _refuse(archive, f"corrupt archive ({error})") from error
    return files


def _move_contents(source: Path, dest: Path) -> None:
    """Move each entry of source into dest (same filesystem: renames), merging directories."""
    for entry in sorted(source.iterdir()):
        target = dest / entry.name
        if entry.is_dir() and target.is_dir() and not target.is_symlink():
            _move_contents(entry, target)
        else:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
