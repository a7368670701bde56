"""Per-key event timestamps for "how many in the last N seconds" fields (okta's MFA counters,
keycloak's login-failure counters): real per-stream state, bounded like the okta plugin's cache.

Each key keeps a capped, de-duplicated list of event times; a key expires after `expiration_s`
of event time without a new entry, and at most `max_keys` keys are kept (the least recently fed
one is evicted and counted in `evicted`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from engine.fields import Extractor, ExtractorFactory
from engine.sources.json_event import JsonEvent, index_argument

NS = 1_000_000_000
# (the stream's counters, the event's document, its time in ns, the window in s) -> a count.
Count = Callable[[Any, dict[str, Any], int, int], int | None]


class KeyedWindows:
    def __init__(self, expiration_s: int, per_key: int, max_keys: int) -> None:
        self._expiration_ns = expiration_s * NS
        self._per_key = per_key
        self._max_keys = max_keys
        self._entries: OrderedDict[str, tuple[int, list[int]]] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, key: str, time_ns: int) -> None:
        stamps = self._live(key, time_ns)
        if time_ns not in stamps:
            stamps.append(time_ns)
            if len(stamps) > self._per_key:
                del stamps[0]
        self._entries[key] = (time_ns, stamps)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_keys:
            self._entries.popitem(last=False)
            self.evicted += 1

    def count(self, key: str, time_ns: int, window_s: int) -> int:
        """Entries of `key` newer than `window_s` before `time_ns`, up to it."""
        oldest = time_ns - window_s * NS
        return sum(1 for stamp in self._live(key, time_ns) if oldest < stamp <= time_ns)

    def _live(self, key: str, time_ns: int) -> list[int]:
        entry = self._entries.get(key)
        if entry is None or time_ns - entry[0] > self._expiration_ns:
            return []
        return entry[1]


def countlast_field(context_type: type, count: Count) -> ExtractorFactory:
    """The factory of a `...countlast[N]` field: N (seconds) is required, and the extractor asks
    `count` with the event's stream counters (an instance of `context_type`, see
    formats.RecordFormat.new_context); nothing for other events."""

    def factory(arg: str | None) -> Extractor:
        window_s = index_argument(arg)
        if window_s is None:
            raise ValueError("the argument (a window in seconds) is required")

        def extract(event: JsonEvent) -> int | None:
            context = event.context
            if not isinstance(context, context_type) or type(event.data) is not dict:
                return None
            return count(context, event.data, event.time, window_s)

        return extract

    return factory
