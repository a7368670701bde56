"""Reproducible tar.gz layers: identical input files give byte-identical archives.

Entries carry fixed mtimes (0), owners (0/0, no names) and modes, sorted names, and gzip's
header has mtime 0 and no file name, so pushing the same content twice yields the same layer
digest and therefore the same manifest digest.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from registry.errors import RegistryError

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def archive_name(path: Path) -> str:
    """falcoctl's naming: the input name up to its first '.', plus .tar.gz."""
    stem = path.name.split(".", 1)[0] or path.name
    return f"{stem}.tar.gz"


def _members(source: Path) -> list[tuple[str, Path]]:
    """(name in archive, file on disk); directories are flattened to basenames as falcoctl."""
    if source.is_file():
        return [(source.name, source)]
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and not p.is_symlink())
        names = [p.name for p in files]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise RegistryError(
                f"{source}: several files named {', '.join(sorted(duplicates))}",
                hint="falcoctl flattens directories to file names; rename the duplicates",
            )
        return sorted(zip(names, files, strict=True))
    raise RegistryError(f"{source} is not a file or directory", hint="check the path")


def _tar_info(name: str, size: int, executable: bool) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o755 if executable else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_reproducible_targz(source: Path, dest: Path) -> None:
    """Pack a file (or a directory, flattened) into dest, streaming file contents."""
    members = _members(source)
    with (
        open(dest, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, path in members:
            stat = path.stat()
            info = _tar_info(name, stat.st_size, bool(stat.st_mode & 0o111))
            with open(path, "rb") as handle:
                tar.addfile(info, handle)


def targz_bytes(files: dict[str, bytes]) -> bytes:
    """A small reproducible tar.gz in memory (tests, embedded feeds)."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted(files):
            data = files[name]
            tar.addfile(_tar_info(name, len(data), False), io.BytesIO(data))
    return buffer.getvalue()
