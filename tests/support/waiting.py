"""Waiting for something another process or thread does, without guessing how long it takes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.05) -> T:
    """Polls `predicate` until it returns a true value, and returns that value. The timeout is
    only a bound for a broken run (a loaded machine is slow, not wrong): it fails the test."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {predicate}")
        time.sleep(interval)
    return value
