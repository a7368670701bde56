#!/usr/bin/env python3
"""What Falco's syscall_event_drops monitoring costs the run loop, measured side by side.

    python bench/bench_drops_monitor.py [--events 2000000]

- per event: a replay with `simulate_drops` shows every event's time to the monitor (Falco's
  per-event hook). The same stream of events (1 ms apart) is iterated bare and through the
  monitored generator the run loop uses, alternately, three times each. Printed: ns per event
  for both and the ratio. Without simulate_drops a replay does not wrap its events at all (a
  capture file has no drop counters), so the cost there is zero.
- per check: a live capture calls `check()` once a second with the kernel's per-CPU counters;
  printed: microseconds per check (with drops and an alert built every time, the worst case).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.drops_monitor import CaptureCounts, DropsConfig, DropsMonitor, monitored


def _events(count: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(ts=1_000_000 * i) for i in range(count)]


def _bare(events: list[SimpleNamespace]) -> Iterator[SimpleNamespace]:
    yield from events


def _time_iteration(stream: Iterator[SimpleNamespace]) -> float:
    started = time.process_time()
    for _ in stream:
        pass
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    args = parser.parse_args()
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    events = _events(args.events)
    config = DropsConfig(actions=("alert",), max_burst=1e9, simulate_drops=True)
    bare_times, monitored_times = [], []
    for _ in range(3):
        bare_times.append(_time_iteration(_bare(events)))
        monitor = DropsMonitor(config, emit=lambda alert: None, ebpf=False, hostname="bench")
        counts = CaptureCounts(len(events))
        stream = monitored(_bare(events), monitor, lambda counts=counts: counts)
        monitored_times.append(_time_iteration(stream))
    bare, watched = min(bare_times), min(monitored_times)
    per_event = 1e9 / args.events
    print(f"events: {args.events:,} (1 ms apart: {monitor.occurrences:,} checks, all acted on)")
    print(f"bare iteration:      {bare * per_event:7.1f} ns/event (CPU time, best of 3)")
    print(f"monitored iteration: {watched * per_event:7.1f} ns/event")
    added = (watched - bare) * per_event
    print(f"monitored / bare: {watched / bare:.2f}; added {added:.1f} ns/event")

    live = DropsMonitor(DropsConfig(threshold=0.0, actions=("alert",), max_burst=1e9))
    live.emit = lambda alert: None
    checks = 20_000
    started = time.process_time()
    for second in range(1, checks + 1):
        dropped = (second * 5, second * 7)
        live.check(SimpleNamespace(total_counted=second * 1000, total_dropped=sum(dropped),
                                   dropped=dropped), now=float(second))  # fmt: skip
    spent = time.process_time() - started
    print(f"live check with an alert: {spent / checks * 1e6:.1f} us/check (once a second)")
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
