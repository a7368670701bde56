"""The internal alert of a full state table: the syscall source's thread and fd tables evict
under pressure (engine.sources.syscall.state) instead of refusing new entries, and detection
must not degrade silently, so the first eviction raises "Falco internal: state table full", and
then at most one alert per `interval` seconds, each with the totals so far."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from engine.output import Priority, alert_hostname
from engine.sinks import Alert, internal_alert

ALERT_RULE = "Falco internal: state table full"
ALERT_INTERVAL = 60.0


class StatePressure:
    """Counts evictions by table and emits the rate-limited internal alert through `emit`."""

    def __init__(
        self,
        emit: Callable[[Alert], Any],
        interval: float = ALERT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emit = emit
        self.interval = interval
        self.clock = clock
        self.evicted: Counter[str] = Counter()
        self.alerts = 0
        self._next_alert = float("-inf")
        self._lock = threading.Lock()

    def note(self, table: str, count: int) -> None:
        """The tracker's eviction hook: `count` entries of `table` ("threads", "fds") evicted."""
        with self._lock:
            self.evicted[table] += count
            now = self.clock()
            if now < self._next_alert:
                return
            self._next_alert = now + self.interval
            self.alerts += 1
            totals = dict(self.evicted)
        what = ", ".join(f"{n} {name}" for name, n in sorted(totals.items()))
        self.emit(
            internal_alert(
                ALERT_RULE,
                f"Falco internal: state table full, least recently active entries evicted "
                f"({what} so far); detection continues, but evicted processes lose their "
                "history (ancestry, fds)",
                Priority.WARNING,
                {f"evicted.{name}": n for name, n in totals.items()},
                alert_hostname(),
            )
        )
