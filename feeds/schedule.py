"""When `follow` checks its refs: every DURATION or on a cron expression, with a startup mode.

Startup `jitter` (the default) delays the first check by a random share of one period so a fleet
restarted together does not hit the registry in the same second; `immediate` checks at once;
`skip` waits one full period.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from feeds.errors import ConfigError
from feeds.indexes import parse_duration

STARTUP_MODES = ("immediate", "skip", "jitter")


@dataclass(frozen=True)
class Schedule:
    every: float | None = None  # seconds
    cron: str | None = None
    startup: str = "jitter"

    @classmethod
    def parse(cls, every: str | None, cron: str | None, startup: str = "jitter") -> Schedule:
        if startup not in STARTUP_MODES:
            raise ConfigError(f"invalid startup mode {startup!r}", "use immediate, skip or jitter")
        if cron:
            from croniter import croniter

            if not croniter.is_valid(cron):
                raise ConfigError(
                    f"invalid cron expression {cron!r}", "use five fields, e.g. '0 */6 * * *'"
                )
            return cls(cron=cron, startup=startup)
        seconds = parse_duration(every or "6h")
        if seconds <= 0:
            raise ConfigError(f"invalid interval {every!r}", "give a positive duration")
        return cls(every=seconds, startup=startup)

    def next_delay(self, now: float | None = None) -> float:
        """Seconds from now until the next regular check."""
        now = time.time() if now is None else now
        if self.cron:
            from croniter import croniter

            return max(0.0, croniter(self.cron, now).get_next(float) - now)
        assert self.every is not None
        return self.every

    def first_delay(self, now: float | None = None) -> float:
        """Seconds from start-up until the first check, as the startup mode says."""
        if self.startup == "immediate":
            return 0.0
        period = self.next_delay(now)
        if self.startup == "skip":
            return period
        return random.uniform(0.0, period)

    def describe(self) -> str:
        what = f"cron {self.cron!r}" if self.cron else f"every {self.every:g}s"
        return f"{what}, startup {self.startup}"
