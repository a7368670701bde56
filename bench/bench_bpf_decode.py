"""Where a live event's userspace time goes (no root needed): decoding ring-buffer records into
exit events, the state tracker, the upstream stable ruleset; events per second for each stage
alone and for the three together, on openat/close records like the storm's.

    PYTHONPATH=. .venv/bin/python bench/bench_bpf_decode.py [--events 200000]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bpf import procfs
from bpf.records import HDR, KIND_SYSCALL, SA_MAX, STR_MAX, RecordDecoder
from engine.loader import load_valid_rules, rulesets_for
from engine.sources.syscall.state import StateTracker

RULES = Path(__file__).resolve().parent.parent.parent / "shared/upstream-rules/falco_rules.yaml"
AT_FDCWD = 2**64 - 100


def storm_records(count: int) -> list[bytes]:
    pid = os.getpid()
    path = b"/etc/hostname\0"
    body = path.ljust(STR_MAX, b"\0") + bytes(STR_MAX + SA_MAX)
    openat = HDR.pack(0, pid, pid, 0, 0, 257, KIND_SYSCALL, len(path), 0, 0, 0, 3,
                      AT_FDCWD, 0, 0, 0, 0, 0, b"storm\0")  # fmt: skip
    close = HDR.pack(
        0, pid, pid, 0, 0, 3, KIND_SYSCALL, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, b"storm\0"
    )
    return [openat + body, close + bytes(len(body))] * (count // 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    count = parser.parse_args().events
    records = storm_records(count)
    rulesets = rulesets_for(load_valid_rules([RULES]))
    tracker = StateTracker()
    for thread in procfs.live_threads():
        tracker.add_thread(thread)

    started = time.perf_counter()
    events = list(RecordDecoder().decode(records))
    decoded = time.perf_counter()
    for event in events:
        tracker.process(event)
    tracked = time.perf_counter()
    for event in events:
        rulesets.evaluate(event, "syscall")
    evaluated = time.perf_counter()
    total = evaluated - started
    for label, seconds in (
        ("decode", decoded - started),
        ("state tracker", tracked - decoded),
        ("ruleset (upstream stable)", evaluated - tracked),
        ("all three", total),
    ):
        print(
            f"{label:<26} {count / seconds:>10,.0f} events/s  {seconds / count * 1e6:6.2f} us/event"
        )


if __name__ == "__main__":
    main()
