"""The event of every JSON source, and the generic `evt.*` fields Falco offers on plugin events.

A JSON event is the parsed document plus what the plugin framework attaches to it: a timestamp
(`time`, ns since the epoch), a sequence number (`num`), the source name, and optionally the raw
bytes it was read from and a per-stream context (stateful sources such as okta keep their
counters there, so state belongs to a stream, not to the process).
"""

from __future__ import annotations

import functools
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.fields import ExtractorFactory, FieldCatalog, FieldSpec

# Falco gives every plugin event this type (PPME_PLUGINEVENT_E).
PLUGIN_EVENT_TYPE = "pluginevent"


@dataclass(slots=True)
class JsonEvent:
    data: Any
    time: int
    source: str
    num: int = 0
    raw: bytes | None = None
    context: Any = None
    # Values of the hottest fields, computed once per event: dozens of rules test the same
    # few fields (ka.verb, jevt.value[/stage]...) on every event.
    memo: dict[object, Any] = field(default_factory=dict)

    @property
    def ts(self) -> int:
        """The time under the name syscall events use (outputs read either)."""
        return self.time


def parse_rfc3339_ns(text: str) -> int:
    """RFC 3339 timestamp (any fraction precision, "Z" or an offset) -> ns since the epoch.
    Raises ValueError for anything else."""
    if not isinstance(text, str) or "T" not in text:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    head, _, rest = text.partition(".")
    fraction = ""
    zone = ""
    if rest:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
    else:
        for sign in ("Z", "z", "+", "-"):
            position = head.rfind(sign, 10)
            if position != -1:
                head, zone = head[:position], head[position:]
                break
    nanos = int(fraction.ljust(9, "0")[:9]) if fraction else 0
    return _epoch_seconds(head, zone) * 1_000_000_000 + nanos


@functools.lru_cache(maxsize=4096)
def _epoch_seconds(head: str, zone: str) -> int:
    # Cached: a stream's events share their seconds (a webhook batch often all of them).
    moment = datetime.fromisoformat(head + ("+00:00" if zone in ("Z", "z") else zone))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {head}")
    return int(moment.timestamp())


def now_ns() -> int:
    return _time.time_ns()


def _local_datetime(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(seconds)) + f".{nanos:09d}"


def index_argument(arg: str | None) -> int | None:
    """An index argument (`field[2]`), checked at compile time; None when absent."""
    if arg is None:
        return None
    if not arg.isdecimal():
        raise ValueError("the argument must be an index (a non-negative integer)")
    return int(arg)


_UNSET = object()


def memoized(extract: Callable[[JsonEvent], Any]) -> Callable[[JsonEvent], Any]:
    """`extract`, computed at most once per event."""
    token = object()
    unset = _UNSET

    def cached(event: JsonEvent) -> Any:
        value = event.memo.get(token, unset)
        if value is unset:
            value = event.memo[token] = extract(event)
        return value

    return cached


def add_shared(catalog: FieldCatalog, spec: FieldSpec, factory: ExtractorFactory) -> None:
    """Register a field whose factory returns one extractor per argument, shared by every rule
    that uses it, so that `memoized` extractors share their per-event value across rules."""
    catalog.add(spec, functools.cache(factory))


def on_object(extract: Callable[[dict[str, Any]], Any]) -> Callable[[JsonEvent], Any]:
    """A (memoized) extractor over the event's document, which must be a JSON object (the
    plugins extract nothing from anything else)."""

    def on_event(event: JsonEvent) -> Any:
        data = event.data
        return extract(data) if type(data) is dict else None

    return memoized(on_event)


def add_event_fields(
    catalog: FieldCatalog, plugin_name: str, info: Callable[[JsonEvent], str]
) -> None:
    """The `evt.*` fields libsinsp extracts from any plugin event. `info` renders
    evt.plugininfo (the plugin's String() of the event)."""
    from engine.output import iso8601_utc, local_clock  # the alert line's own time formats

    simple: list[tuple[str, str, str, Callable[[JsonEvent], Any]]] = [
        ("evt.num", "uint", "event number", lambda e: e.num),
        (
            "evt.time",
            "string",
            "event timestamp, local time with nanoseconds",
            lambda e: local_clock(e.time),
        ),
        (
            "evt.time.s",
            "string",
            "event timestamp, local time without nanoseconds",
            lambda e: local_clock(e.time)[:8],
        ),
        (
            "evt.time.iso8601",
            "string",
            "event timestamp in ISO 8601 (UTC, nanoseconds)",
            lambda e: iso8601_utc(e.time),
        ),
        (
            "evt.datetime",
            "string",
            "event timestamp with date, local time",
            lambda e: _local_datetime(e.time),
        ),
        (
            "evt.datetime.s",
            "string",
            "event timestamp with date, without nanoseconds",
            lambda e: _local_datetime(e.time)[:19],
        ),
        (
            "evt.rawtime",
            "abstime",
            "absolute event timestamp, ns since the epoch",
            lambda e: e.time,
        ),
        (
            "evt.rawtime.s",
            "abstime",
            "integer part of the event timestamp",
            lambda e: e.time // 1_000_000_000,
        ),
        (
            "evt.rawtime.ns",
            "abstime",
            "fractional part of the event timestamp",
            lambda e: e.time % 1_000_000_000,
        ),
        (
            "evt.type",
            "string",
            "event type (every plugin event is a pluginevent)",
            lambda e: PLUGIN_EVENT_TYPE,
        ),
        ("evt.source", "string", "name of the source that produced the event", lambda e: e.source),
        (
            "evt.pluginname",
            "string",
            "name of the plugin that generated the event",
            lambda e: plugin_name,
        ),
        ("evt.plugininfo", "string", "summary of the event as the plugin renders it", info),
        ("evt.is_async", "bool", "whether the event is asynchronous", lambda e: False),
    ]
    for name, kind, desc, extract in simple:
        catalog.add_simple(FieldSpec(name, kind, desc), extract)
