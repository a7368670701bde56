"""A token bucket: at most `count` actions per `per` seconds, refilled continuously."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    count: int
    per: float


class TokenBucket:
    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._tokens = float(limit.count)
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Consume one token; False when the limit is reached."""
        with self._lock:
            now = self._clock()
            refill = (now - self._stamp) * self.limit.count / self.limit.per
            self._tokens = min(float(self.limit.count), self._tokens + refill)
            self._stamp = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True
