"""Safe extraction of artifact layers (tar.gz) into a staging directory.

Only regular files and directories are accepted; absolute names, `..`, names with control
characters (they could forge lines of a listing), links, devices and fifos, a file over 64 MiB,
a total over 512 MiB or more than 10,000 entries are refused. Those checks run on the tar
headers in a first pass that writes nothing, so a hostile archive (tens of thousands of empty
members) is refused after a scan of its headers, not after a write per member. Entries are
then written into a private directory inside the destination and moved into it only when the
whole archive has passed, so a refused archive leaves nothing behind. File modes keep only the
executable bit (no setuid, no world-writable files from an archive).

The extracting pass reads the archive as a stream: it is verified against its digest while it
is inflated (a cache copy is used in place, never copied first), and each file's sha256 is
computed as it is written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from registry.digests import CHUNK_SIZE
from registry.errors import DigestMismatchError, UnsafeArchiveError
from registry.storage import storage

MAX_FILE_SIZE = 64 << 20
MAX_TOTAL_SIZE = 512 << 20
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class ExtractedFile:
    path: Path  # relative to the destination
    sha256: str  # hex
    size: int


class _DigestingReader:
    """A file read sequentially, hashed as it goes when its digest is to be checked."""

    def __init__(self, handle: BinaryIO, hashing: bool) -> None:
        self._handle = handle
        self._hasher = hashlib.sha256() if hashing else None

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        if self._hasher is not None:
            self._hasher.update(data)
        return data

    def matches(self, expected_digest: str) -> bool:
        """Read what the archive reader left (gzip padding, trailing bytes) and compare."""
        assert self._hasher is not None
        while self.read(CHUNK_SIZE):
            pass
        return "sha256:" + self._hasher.hexdigest() == expected_digest


class _Inflater:
    """gzip inflated front to back in bounded steps, as a file tarfile can read in place: no
    member is ever held whole in memory, however well it compresses, and data is not copied
    through tarfile's stream buffer. Seeking is forward only (tarfile skips, never rewinds).
    (gzip.GzipFile is bounded too but costs twice the CPU: a CRC on top of the digest.)"""

    def __init__(self, source: _DigestingReader) -> None:
        self._source = source
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)  # a gzip member
        self._input = b""
        self._started = False
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        wanted = size if size >= 0 else MAX_TOTAL_SIZE
        pieces = []
        while wanted > 0 and (piece := self._next_piece(min(wanted, CHUNK_SIZE))):
            pieces.append(piece)
            wanted -= len(piece)
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self._position += len(data)
        return data

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset < self._position:
            raise OSError("the archive is read front to back only")
        while self._position < offset and self.read(min(CHUNK_SIZE, offset - self._position)):
            pass
        return self._position

    def _next_piece(self, limit: int) -> bytes:
        while True:
            if not self._input:
                self._input = self._source.read(CHUNK_SIZE)
                if not self._input:
                    if self._started and not self._inflate.eof:
                        raise EOFError("the compressed data ends before its end marker")
                    return b""
            if self._inflate.eof:  # what follows a gzip member: another member, or padding
                if not self._input.strip(b"\0"):
                    self._input = b""
                    continue
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._started = True
            data = self._inflate.decompress(self._input, limit)
            self._input = self._inflate.unconsumed_tail or self._inflate.unused_data
            if data:
                return data


def _refuse(archive: Path, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"refusing {archive.name}: {reason}",
        hint="the artifact's layer is malformed or malicious; nothing was extracted",
    )


def _safe_relative(archive: Path, name: str) -> PurePosixPath | None:
    """The entry's path relative to the destination, or None for the archive root itself."""
    if not name or "\\" in name:
        raise _refuse(archive, f"entry name {name!r} is not a plain relative path")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise _refuse(archive, f"entry name {name!r} contains control characters")
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


def _copy_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, durable: bool
) -> tuple[str, int]:
    """Write the member to target; its sha256 (hex) and size. durable: fsync before close."""
    source = tar.extractfile(member)
    if source is None:
        raise _refuse(Path(tar.name or "archive"), f"cannot read {member.name!r}")
    mode = 0o755 if member.mode & 0o111 else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    fd = os.open(target, flags, mode)
    hasher = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "wb") as out, source:
        while chunk := source.read(CHUNK_SIZE):
            hasher.update(chunk)
            size += len(chunk)
            out.write(chunk)
        if durable:
            out.flush()
            os.fsync(out.fileno())
    os.chmod(target, mode)
    return hasher.hexdigest(), size


def extract_targz(
    archive: Path,
    dest: Path,
    max_file_size: int = MAX_FILE_SIZE,
    max_total_size: int = MAX_TOTAL_SIZE,
) -> list[Path]:
    """Extract archive into dest; return the relative paths of the regular files written."""
    files = extract_layer(archive, dest, max_file_size=max_file_size, max_total_size=max_total_size)
    return [f.path for f in files]


def extract_layer(
    archive: Path,
    dest: Path,
    expected_digest: str | None = None,
    durable: bool = False,
    max_file_size: int = MAX_FILE_SIZE,
    max_total_size: int = MAX_TOTAL_SIZE,
) -> list[ExtractedFile]:
    """Extract archive into dest, each regular file with its sha256. With expected_digest,
    the archive is verified as it is read and a mismatch (DigestMismatchError) leaves dest
    untouched. durable: every file is fsynced, and the directories it lands in."""
    with storage(dest):
        dest.mkdir(parents=True, exist_ok=True)
    with open(archive, "rb") as handle:
        reader = _DigestingReader(handle, hashing=expected_digest is not None)
        try:
            _check_headers(archive, max_file_size, max_total_size)  # writes nothing
        except UnsafeArchiveError:
            _raise_if_corrupt_copy(archive, reader, expected_digest)
            raise
        with storage(dest):
            private = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            try:
                with storage(dest):  # name the destination, not the private directory
                    files = _extract_into(
                        archive, reader, private, max_file_size, max_total_size, durable
                    )
            except UnsafeArchiveError:
                _raise_if_corrupt_copy(archive, reader, expected_digest)
                raise
            if expected_digest is not None and not reader.matches(expected_digest):
                raise _mismatch(archive, expected_digest)
            with storage(dest):
                moved = _move_contents(private, dest)
                if durable:
                    for directory in {dest, *moved}:
                        fsync_directory(directory)
            return files
        finally:
            shutil.rmtree(private, ignore_errors=True)


def _raise_if_corrupt_copy(
    archive: Path, reader: _DigestingReader, expected_digest: str | None
) -> None:
    """An archive refused because the copy is corrupt says so, so that it is fetched again."""
    if expected_digest is not None and not reader.matches(expected_digest):
        raise _mismatch(archive, expected_digest) from None


def _mismatch(archive: Path, expected_digest: str) -> DigestMismatchError:
    return DigestMismatchError(
        f"{archive}: content does not match its digest {expected_digest}",
        hint="the cached or stored copy is corrupt or was tampered with; nothing was extracted",
    )


def fsync_directory(path: Path) -> None:
    """Make the directory's entries (renames into it) durable; a directory that cannot be
    opened (gone already) has nothing to make durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _checked_member(
    archive: Path,
    member: tarfile.TarInfo,
    count: int,
    total: int,
    max_file_size: int,
    max_total_size: int,
) -> tuple[PurePosixPath | None, int]:
    """The member's relative path and the running total of file sizes, or a refusal."""
    if count > MAX_ENTRIES:
        raise _refuse(archive, f"more than {MAX_ENTRIES} entries")
    problem = _kind_problem(member)
    if problem:
        raise _refuse(archive, problem)
    relative = _safe_relative(archive, member.name)
    if member.isdir():
        return relative, total
    if member.size > max_file_size:
        raise _refuse(archive, f"{member.name!r} is {member.size} bytes (limit {max_file_size})")
    total += member.size
    if total > max_total_size:
        raise _refuse(archive, f"the files total over {max_total_size} bytes")
    return relative, total


def _check_headers(archive: Path, max_file_size: int, max_total_size: int) -> None:
    """Every refusal the headers allow, before anything is written: entry count, kinds,
    names, sizes. (A corrupt stream is left to the extracting pass, which says whether the
    copy or the archive is at fault.)"""
    total = 0
    try:
        with open(archive, "rb") as handle:
            reader = _DigestingReader(handle, hashing=False)
            tar = tarfile.open(fileobj=_Inflater(reader), mode="r:")  # type: ignore[call-overload]  # noqa: SIM115
            with tar:
                for count, member in enumerate(tar, start=1):
                    _, total = _checked_member(
                        archive, member, count, total, max_file_size, max_total_size
                    )
    except (tarfile.TarError, EOFError, OSError, zlib.error):
        return


def _extract_into(
    archive: Path,
    stream: _DigestingReader,
    root: Path,
    max_file_size: int,
    max_total_size: int,
    durable: bool,
) -> list[ExtractedFile]:
    files: dict[Path, ExtractedFile] = {}
    total = 0
    try:
        # Read once, front to back: the digest covers exactly what was read.
        tar = tarfile.open(fileobj=_Inflater(stream), mode="r:")  # type: ignore[call-overload]  # noqa: SIM115
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise _refuse(archive, f"not a readable tar.gz ({error})") from error
    with tar:
        try:
            for count, member in enumerate(tar, start=1):
                relative, total = _checked_member(
                    archive, member, count, total, max_file_size, max_total_size
                )
                if relative is None:
                    continue
                target = root / relative
                if member.isdir():
                    with storage(root):
                        target.mkdir(parents=True, exist_ok=True)
                    continue
                # A full or read-only disk is the user's to fix, not a corrupt archive.
                with storage(root):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    sha256, size = _copy_member(tar, member, target, durable)
                files[Path(relative)] = ExtractedFile(Path(relative), sha256, size)
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            raise _refuse(archive, f"corrupt archive ({error})") from error
    return list(files.values())


def _move_contents(source: Path, dest: Path) -> set[Path]:
    """Move each entry of source into dest (same filesystem: renames), merging directories.
    Returns the directories that received entries."""
    touched = {dest}
    for entry in sorted(source.iterdir()):
        target = dest / entry.name
        if entry.is_dir() and target.is_dir() and not target.is_symlink():
            touched |= _move_contents(entry, target)
        else:
            moved_directory = entry.is_dir()
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
            if moved_directory:
                touched |= {target, *(p for p in target.rglob("*") if p.is_dir())}
    return touched
