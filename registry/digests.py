"""Content digests: computing them, and writing streams to disk only when they match.

Every byte falconet takes from a registry or a layout goes through `write_verified`: the data
lands in a temporary file next to the destination and is renamed into place only after its
size and sha256 match the descriptor, so a mismatch or an interrupted transfer leaves nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from registry.errors import DigestMismatchError
from registry.storage import storage

CHUNK_SIZE = 1 << 20


def _file_mode() -> int:
    """0666 minus the umask: what open() would give, where mkstemp gives 0600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_file(path: Path) -> tuple[str, int]:
    """The sha256 digest and size of a file, read in chunks."""
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            hasher.update(chunk)
            size += len(chunk)
    return "sha256:" + hasher.hexdigest(), size


def verify_bytes(data: bytes, digest: str, what: str) -> None:
    actual = digest_bytes(data)
    if actual != digest:
        raise DigestMismatchError(
            f"{what}: content digest {actual} does not match the expected {digest}",
            hint="the registry or the layout holds corrupted or tampered data; nothing was written",
        )


class VerifiedWriter:
    """A temporary file next to dest that becomes dest only if size and digest match.

    Resumable: after an interrupted transfer the caller continues from `written` (an HTTP
    Range request), or calls `restart()` when the server sends the whole blob again.
    """

    def __init__(self, dest: Path, digest: str, size: int | None, what: str) -> None:
        self.dest, self.digest, self.size, self.what = dest, digest, size, what
        with storage(dest.parent):
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{dest.name}.", suffix=".part", dir=dest.parent
            )
        self.tmp = Path(tmp_name)
        self._out = os.fdopen(fd, "wb")
        self._hasher = hashlib.sha256()
        self.written = 0

    def write(self, chunk: bytes) -> None:
        self._hasher.update(chunk)
        self.written += len(chunk)
        if self.size is not None and self.written > self.size:
            raise DigestMismatchError(
                f"{self.what}: more than the {self.size} bytes its descriptor declares",
                hint="the registry or the layout holds corrupted or tampered data",
            )
        with storage(self.dest.parent):
            self._out.write(chunk)

    def restart(self) -> None:
        self._out.seek(0)
        self._out.truncate()
        self._hasher = hashlib.sha256()
        self.written = 0

    def commit(self) -> None:
        with storage(self.dest.parent):
            self._out.close()  # flushes: a full disk may only show here
        actual = "sha256:" + self._hasher.hexdigest()
        if actual != self.digest or (self.size is not None and self.written != self.size):
            raise DigestMismatchError(
                f"{self.what}: content digest {actual} ({self.written} bytes) does not match "
                f"the expected {self.digest} ({self.size} bytes)",
                hint="the registry or the layout holds corrupted or tampered data; "
                "nothing was written",
            )
        os.chmod(self.tmp, FILE_MODE)
        os.replace(self.tmp, self.dest)

    def abort(self) -> None:
        # The flush of an abandoned file may fail (a full disk): it is deleted anyway.
        with contextlib.suppress(OSError):
            self._out.close()
        self.tmp.unlink(missing_ok=True)


def write_verified(
    chunks: Iterable[bytes], dest: Path, digest: str, size: int | None, what: str
) -> None:
    """Stream chunks into dest atomically; a mismatch raises DigestMismatchError, dest untouched."""
    writer = VerifiedWriter(dest, digest, size, what)
    try:
        for chunk in chunks:
            writer.write(chunk)
        writer.commit()
    except BaseException:
        writer.abort()
        raise


def read_chunks(path: Path) -> Iterable[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk
