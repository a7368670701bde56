"""The garbage collector's settings while a live capture runs.

A live capture allocates a few objects per event (the event, its parameters, fd entries) at up to
hundreds of thousands of events a second, and almost all of them are freed by reference counting
once their batch is evaluated. With CPython's default first-generation threshold (700 net
allocations) a collection runs every couple of hundred events, walks the batch still being
evaluated and promotes it, so older collections keep walking short-lived events too; and every
full collection walks the ruleset and the process table bootstrapped from /proc, which live as
long as the capture. While a capture runs, the collector therefore:

- freezes what exists when it starts (gc.freeze: the ruleset, the bootstrap state), after one
  collection, so collections no longer walk it (it is still freed by reference counting);
- collects the first generation every GEN0_THRESHOLD allocations, more than a batch makes.

The previous settings come back when the last capture stops. bench/bench_bpf_decode.py measures
both settings side by side (`--default-gc`).
"""

from __future__ import annotations

import gc
import threading

GEN0_THRESHOLD = 20_000

_lock = threading.Lock()
_active = 0
_saved: tuple[int, int, int] | None = None


def capture_started() -> None:
    global _active, _saved
    with _lock:
        _active += 1
        if _active > 1:
            return
        _saved = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(max(GEN0_THRESHOLD, _saved[0]), _saved[1], _saved[2])


def capture_stopped() -> None:
    global _active, _saved
    with _lock:
        if _active == 0:
            return
        _active -= 1
        if _active == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            gc.unfreeze()
            _saved = None
