"""How each JSON source turns parsed documents into events: which records a document holds, the
time of a record, and any per-stream state. Source modules register their `RecordFormat`; the file
readers and the HTTP endpoints create events through an `EventFactory`, so both produce the same
events (numbered per stream, timestamped as the upstream plugin does).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from engine.sources.errors import InputFormatError, UnknownSourceError
from engine.sources.json_event import JsonEvent, now_ns, parse_rfc3339_ns

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordFormat:
    source: str
    # A parsed document -> its records; raise InputFormatError when the shape is not recognised.
    split: Callable[[Any], Iterable[Any]]
    # A record -> its time in ns since the epoch; raise ValueError to drop the record.
    timestamp: Callable[[Any], int]
    # Per-stream state, handed to every event of the stream as `event.context`.
    new_context: Callable[[], Any] = lambda: None
    # Called with each new event, in order (stateful sources update their state here).
    observe: Callable[[JsonEvent], None] | None = None


_FORMATS: dict[str, RecordFormat] = {}


def register_format(record_format: RecordFormat) -> None:
    _FORMATS[record_format.source] = record_format


def record_format(source: str) -> RecordFormat:
    from engine.fields import known_sources

    known_sources()  # import the built-in sources, which register their formats
    found = _FORMATS.get(source)
    if found is None:
        names = ", ".join(sorted(_FORMATS))
        raise UnknownSourceError(
            f"unknown JSON event source {source!r}", hint=f"choose one of: {names}"
        )
    return found


def single_or_array(document: Any) -> Iterable[Any]:
    """Records given one by one or as a JSON array of them."""
    return document if isinstance(document, list) else (document,)


def arrival_time(record: Any) -> int:
    return now_ns()


def rfc3339_at(key: str, or_arrival: bool = False) -> Callable[[Any], int]:
    """The record's RFC 3339 `key` as its time; without a valid one the record is dropped, or
    (`or_arrival`) stamped with the time of arrival."""

    def timestamp(record: Any) -> int:
        try:
            if not isinstance(record, dict) or key not in record:
                raise ValueError(f"the record has no {key}")
            return parse_rfc3339_ns(record[key])
        except ValueError:
            if or_arrival:
                return now_ns()
            raise

    return timestamp


class EventFactory:
    """Creates the events of one stream (one file replay, one endpoint)."""

    def __init__(self, source: str) -> None:
        self.format = record_format(source)
        self.source = source
        self.context = self.format.new_context()
        self._numbers = itertools.count(1)
        self.events = 0
        self.dropped = 0

    def from_document(self, document: Any) -> Iterator[JsonEvent]:
        """The events of a parsed document; records the plugin would refuse are dropped (and
        counted), as upstream logs and skips them. Raises InputFormatError for a document of
        the wrong shape."""
        for record in self.format.split(document):
            try:
                time_ns = self.format.timestamp(record)
            except (ValueError, TypeError) as error:
                self.dropped += 1
                log.warning("%s: dropped a record: %s", self.source, error)
                continue
            event = JsonEvent(record, time_ns, self.source, next(self._numbers), None, self.context)
            if self.format.observe is not None:
                self.format.observe(event)
            self.events += 1
            yield event


__all__ = [
    "EventFactory",
    "InputFormatError",
    "RecordFormat",
    "arrival_time",
    "record_format",
    "register_format",
    "rfc3339_at",
    "single_or_array",
]
