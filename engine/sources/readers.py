"""File readers of the JSON sources: a file (plain or gzipped) or a directory of them, holding one
JSON document (a k8s EventList, a CloudTrail {"Records": [...]}, an Okta API page, ...) or JSON
lines (one document per line). Documents become events through the source's EventFactory.

Lines that are not JSON, documents of the wrong shape and records the upstream plugin would refuse
are skipped, counted and logged, as the plugins do (a live source must not stop on one bad event);
a missing path, an unreadable file or a broken whole-file document is an error.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it is gzip data (whatever its name)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise InputNotFoundError(f"{path}: no such file", hint="check the --replay path") from error
    except OSError as error:
        raise SourceError(f"{path}: cannot read: {error.strerror}") from error
    if data.startswith(GZIP_MAGIC):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise InputFormatError(f"{path}: corrupt gzip data: {error}") from error
    return data


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


def documents(data: bytes, origin: str, on_bad_line: Callable[[int, str], None]) -> Iterator[Any]:
    """The JSON documents of a file: the whole file if it is one document, else its lines."""
    text = data.decode("utf-8", "replace")
    if not text.strip():
        return
    try:
        yield json.loads(text)
        return
    except json.JSONDecodeError as error:
        # JSON lines parse as a first document followed by "Extra data"; a broken first line
        # fails on line 1. Anything else is one broken document.
        if error.msg != "Extra data" and error.lineno != 1:
            raise InputFormatError(f"{origin}: not JSON: {error}") from error
    for number, line in enumerate(text.splitlines(), start=1):
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

        for document in documents(read_bytes(file), origin, bad_line):
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
