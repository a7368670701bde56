"""Content digests: computing them, and writing streams to disk only when they match.

Every byte falconet takes from a registry or a layout goes through `write_verified`: the data
lands in a temporary file next to the destination and is renamed into place only after its
size and sha256 match the descriptor, so a mismatch or an interrupted transfer leaves nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from registry.errors import DigestMismatchError

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


def write_verified(
    chunks: Iterable[bytes], dest: Path, digest: str, size: int | None, what: str
) -> None:
    """Stream chunks into dest atomically; a mismatch raises DigestMismatchError, dest untouched."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    written = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                hasher.update(chunk)
                written += len(chunk)
                if size is not None and written > size:
                    raise DigestMismatchError(
                        f"{what}: more than the {size} bytes its descriptor declares",
                        hint="the registry or the layout holds corrupted or tampered data",
                    )
                out.write(chunk)
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest or (size is not None and written != size):
            raise DigestMismatchError(
                f"{what}: content digest {actual} ({written} bytes) does not match the expected "
                f"{digest} ({size} bytes)",
                hint="the registry or the layout holds corrupted or tampered data; "
                "nothing was written",
            )
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_chunks(path: Path) -> Iterable[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk
