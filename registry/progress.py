"""Transfer progress reporting without printing: core code calls a callback the CLI supplies.

`Progress(label, advanced_bytes, total_bytes)` is called as data moves; the CLI turns it into
progress bars when stderr is a terminal, and passes None otherwise.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry.store import Descriptor

Progress = Callable[[str, int, int], None]


def label_of(descriptor: Descriptor) -> str:
    return descriptor.title or descriptor.digest[:19]


def report_chunks(
    chunks: Iterable[bytes], descriptor: Descriptor, progress: Progress | None
) -> Iterator[bytes]:
    label = label_of(descriptor)
    for chunk in chunks:
        if progress is not None:
            progress(label, len(chunk), descriptor.size)
        yield chunk


class _ReportingReader(io.RawIOBase):
    """A file wrapper requests streams from (it knows the length, so no chunked encoding)."""

    def __init__(self, handle: io.BufferedReader, size: int, label: str, progress: Progress):
        self._handle, self._size, self._label, self._progress = handle, size, label, progress

    def __len__(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        if data:
            self._progress(self._label, len(data), self._size)
        return data


@contextlib.contextmanager
def upload_body(
    source: Path | bytes, descriptor: Descriptor, progress: Progress | None
) -> Iterator[bytes | io.IOBase]:
    """The body of a blob upload: bytes as is, a file streamed from disk (never read whole)."""
    if isinstance(source, bytes):
        yield source
        return
    with open(source, "rb") as handle:
        if progress is None:
            yield handle
        else:
            yield _ReportingReader(handle, descriptor.size, label_of(descriptor), progress)
