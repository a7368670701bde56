"""Content-addressed blob cache: `<root>/blobs/sha256/<hex>`, the OCI layout's blob layout.

Blobs enter only through `write_verified`, so whatever the cache holds matches its name; a
re-pull of the same digests is served from here with no download.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from registry.digests import FILE_MODE, read_chunks, write_verified
from registry.errors import DigestMismatchError

log = logging.getLogger(__name__)


class BlobCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, digest: str) -> Path:
        algorithm, hexdigest = digest.split(":", 1)
        return self.root / "blobs" / algorithm / hexdigest

    def has(self, digest: str, size: int | None = None) -> bool:
        path = self.path_for(digest)
        try:
            return size is None or path.stat().st_size == size
        except FileNotFoundError:
            return False

    def ingest(self, chunks: Iterable[bytes], digest: str, size: int | None, what: str) -> Path:
        path = self.path_for(digest)
        write_verified(chunks, path, digest, size, what)
        return path


def copy_atomically(source: Path, dest: Path) -> None:
    """Copy a (verified) file to dest through a temporary name, so dest is never half-written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fetch_through_cache(
    cache: BlobCache | None,
    digest: str,
    size: int | None,
    dest: Path,
    download: Callable[[Path], None],
    what: str,
) -> bool:
    """Write the blob to dest, calling download(target) only on a cache miss.

    download must write target atomically and verified (a VerifiedWriter). Returns True when
    the blob was downloaded.
    """
    if cache is not None and cache.has(digest, size):
        cached = cache.path_for(digest)
        try:
            # Re-hashed on the way out: a cache edited behind our back is never trusted.
            write_verified(read_chunks(cached), dest, digest, size, what)
            log.debug("%s: served from the blob cache", what)
            return False
        except DigestMismatchError:
            log.warning("%s: cached copy is corrupt; downloading it again", what)
            cached.unlink(missing_ok=True)
    if cache is None:
        download(dest)
        return True
    cached = cache.path_for(digest)
    download(cached)
    copy_atomically(cached, dest)
    return True
