"""Drop accounting: the kernel counts every failed ring-buffer reservation per CPU; this turns
the counters into Falco's "syscall event drop" internal alert, rate limited like Falco's
syscall_event_drops (threshold on the fraction dropped in the last second, token bucket).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

DROP_RULE = "Falco internal: syscall event drop"


@dataclass(frozen=True)
class KernelCounters:
    counted: tuple[int, ...]  # per CPU: events the kernel tried to send
    dropped: tuple[int, ...]  # per CPU: failed reservations

    @property
    def total_counted(self) -> int:
        return sum(self.counted)

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped)


@dataclass
class DropMonitor:
    """Falco's defaults: threshold .1, rate .03333/s (one alert per 30 s), max_burst 1."""

    threshold: float = 0.1
    rate: float = 1 / 30
    max_burst: float = 1.0
    _tokens: float = field(default=1.0, init=False)
    _last_refill: float | None = field(default=None, init=False)
    _previous: KernelCounters | None = field(default=None, init=False)
    suppressed: int = field(default=0, init=False)

    def _take_token(self, now: float) -> bool:
        elapsed = 0.0 if self._last_refill is None else max(0.0, now - self._last_refill)
        self._tokens = min(self.max_burst, self._tokens + elapsed * self.rate)
        self._last_refill = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self.suppressed += 1
        return False

    def check(self, counters: KernelCounters, now: float | None = None) -> dict[str, Any] | None:
        """Call about once a second: an internal alert when the drops since the last call pass
        the threshold and the bucket allows one, else None. Drops below the threshold are
        still in the counters (stats), never silent."""
        previous, self._previous = self._previous, counters
        if previous is None:
            previous = KernelCounters((0,) * len(counters.counted), (0,) * len(counters.dropped))
        drops = counters.total_dropped - previous.total_dropped
        events = counters.total_counted - previous.total_counted
        if drops <= 0 or drops / max(events, 1) < self.threshold:
            return None
        if not self._take_token(time.monotonic() if now is None else now):
            return None
        return drop_alert(drops, events, counters)


def drop_alert(drops: int, events: int, counters: KernelCounters) -> dict[str, Any]:
    """The internal alert, in Falco's JSON alert shape (time and hostname added by outputs)."""
    message = f"{DROP_RULE}. {drops} system calls dropped in last second."
    return {
        "rule": DROP_RULE,
        "priority": "Debug",
        "source": "syscall",
        "output": message,
        "output_fields": {
            "ebpf_enabled": "1",
            "n_drops": str(drops),
            "n_drops_buffer": str(drops),
            "n_evts": str(events),
            "n_drops_buffer_total": str(counters.total_dropped),
            "n_drops_per_cpu": ",".join(str(d) for d in counters.dropped),
        },
        "tags": [],
    }
