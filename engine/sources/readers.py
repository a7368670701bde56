"""File readers of the JSON sources: a file (plain or gzipped) or a directory of them, holding one
JSON document (a k8s EventList, a CloudTrail {"Records": [...]}, an Okta API page, ...) or JSON
lines (one document per line). Documents become events through the source's EventFactory.

Lines that are not JSON, documents of the wrong shape and records the upstream plugin would refuse
are skipped, counted and logged, as the plugins do (a live source must not stop on one bad event);
a missing path, an unreadable file or a broken whole-file document is an error.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import logging
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from engine.sources.errors import InputFormatError, InputNotFoundError, SourceError
from engine.sources.formats import EventFactory
from engine.sources.json_event import JsonEvent

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
# Directory entries read, in name order; other files (READMEs, digests...) are ignored.
READABLE_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz", ".gz", ".log", ".ndjson")


@dataclass
class ReadStats:
    files: int = 0
    events: int = 0
    # Lines that were not JSON, plus records the source refused (see formats.EventFactory).
    skipped: int = 0
    skipped_by_file: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """The file as UTF-8 text, gunzipped on the fly when it is gzip data (whatever its name)."""
    try:
        with path.open("rb") as probe:
            gzipped = probe.read(2) == GZIP_MAGIC
    except FileNotFoundError as error:
        raise InputNotFoundError(f"{path}: no such file", hint="check the --replay path") from error
    except OSError as error:
        raise SourceError(f"{path}: cannot read: {error.strerror}") from error
    opener = gzip.open if gzipped else open
    with (
        opener(path, "rb") as raw,
        io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as text,
    ):
        try:
            yield text
        except (OSError, EOFError, zlib.error) as error:
            # What was read before the damage has been delivered; stop with a clear error.
            raise InputFormatError(f"{path}: corrupt or truncated gzip data: {error}") from error


def input_files(path: Path) -> list[Path]:
    """The files a path designates: itself, or a directory's readable files (recursively, in
    name order)."""
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*") if p.is_file() and p.name.endswith(READABLE_SUFFIXES)
        )
    if not path.exists():
        raise InputNotFoundError(
            f"{path}: no such file or directory", hint="check the --replay path"
        )
    return [path]


def documents(text: TextIO, origin: str, on_bad_line: Callable[[int, str], None]) -> Iterator[Any]:
    """The JSON documents of a file, streamed: JSON lines one by one (so audit logs of any size
    read in constant memory), or the whole file when it is one multi-line document."""
    number, first = 0, ""
    for number, first in enumerate(text, start=1):  # noqa: B007 - the loop finds the first line
        if first.strip():
            break
    else:
        return
    try:
        document = json.loads(first)
    except json.JSONDecodeError:
        whole = first + text.read()
        try:
            yield json.loads(whole)
            return
        except json.JSONDecodeError as error:
            # A broken first line of JSON lines fails on that line; anything else is one
            # broken document.
            if error.lineno != 1 or "\n" not in whole.strip():
                raise InputFormatError(f"{origin}: not JSON: {error}") from error
        yield from _lines(io.StringIO(whole), number - 1, on_bad_line)
        return
    yield document
    yield from _lines(text, number, on_bad_line)


def _lines(
    text: Iterable[str], skipped: int, on_bad_line: Callable[[int, str], None]
) -> Iterator[Any]:
    for number, line in enumerate(text, start=skipped + 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as error:
            on_bad_line(number, str(error))


def read_events(
    source: str, path: Path | str, stats: ReadStats | None = None
) -> Iterator[JsonEvent]:
    """Every event of `source` in a file or directory, in file-name then file order."""
    stats = stats if stats is not None else ReadStats()
    factory = EventFactory(source)
    for file in input_files(Path(path)):
        stats.files += 1
        origin = str(file)
        dropped_before = factory.dropped

        def bad_line(number: int, message: str, origin: str = origin) -> None:
            stats.skipped += 1
            stats.skipped_by_file[origin] = stats.skipped_by_file.get(origin, 0) + 1
            log.warning("%s:%d: skipped a line that is not JSON: %s", origin, number, message)

        with open_text(file) as text:
            for document in documents(text, origin, bad_line):
                try:
                    for event in factory.from_document(document):
                        stats.events += 1
                        yield event
                except InputFormatError as error:
                    # As the plugins do: log the unrecognised document and go on.
                    stats.skipped += 1
                    stats.skipped_by_file[origin] = stats.skipped_by_file.get(origin, 0) + 1
                    log.warning("%s: %s", origin, error)
        dropped = factory.dropped - dropped_before
        if dropped:
            stats.skipped += dropped
            stats.skipped_by_file[origin] = stats.skipped_by_file.get(origin, 0) + dropped


def replay(source: str, path: Path | str, on_event: Callable[[JsonEvent], None]) -> ReadStats:
    """Feed every event of a file or directory to `on_event`; return what was read."""
    stats = ReadStats()
    for event in read_events(source, path, stats):
        on_event(event)
    return stats
