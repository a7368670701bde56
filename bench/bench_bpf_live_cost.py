"""The userspace CPU cost of a live event (root + BPF): an openat storm at a fixed rate while the
reader thread runs what `falconet run --source syscall` runs per event (ring buffer -> decode ->
state tracker -> upstream stable ruleset); the reader thread's own CPU time per delivered event.

    sudo PYTHONPATH=. .venv/bin/python bench/bench_bpf_live_cost.py [--rate 100000] [--seconds 3]

bench_bpf_storm.py part 1 measures capacity in wall-clock terms, which on a shared machine
mostly measures how much CPU the reader thread was given. CPU time per event does not depend on
that (the reader sleeps when the ring is empty): 1e6 / (us per event) is the rate one otherwise
idle core sustains. The whole machine's events count (other processes' opens too).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bpf.capture import LiveSource
from engine.loader import load_valid_rules, rulesets_for
from engine.sources.syscall.state import StateTracker

HERE = Path(__file__).resolve().parent
RULES = HERE.parent.parent / "shared" / "upstream-rules" / "falco_rules.yaml"


class Reader:
    """The run loop's per-event work in a thread that counts its own CPU time."""

    def __init__(self, source: LiveSource, tracker: StateTracker, rulesets) -> None:
        self.source = source
        self.process = tracker.process
        self.evaluate = rulesets.by_source["syscall"].evaluate
        self.stop = threading.Event()
        self.events = 0
        self.cpu = 0.0
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        started = time.thread_time()
        poll, process, evaluate = self.source.poll, self.process, self.evaluate
        while not self.stop.is_set():
            events = poll(20)
            for event in events:
                process(event)
                evaluate(event)
            self.events += len(events)
        self.cpu = time.thread_time() - started


def caught_up(source: LiveSource) -> None:
    """Waits until what the kernel counted is delivered or dropped (or stops moving)."""
    last = -1
    while True:
        time.sleep(0.3)
        stats = source.stats()
        seen = stats.delivered + stats.kernel.total_dropped
        if seen >= stats.kernel.total_counted or seen == last:
            return
        last = seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100_000, help="storm events/s (2 per op)")
    parser.add_argument("--seconds", type=float, default=3.0)
    options = parser.parse_args()
    rulesets = rulesets_for(load_valid_rules([RULES]))
    tracker = StateTracker()
    with tempfile.TemporaryDirectory() as tmp:
        storm = Path(tmp) / "storm"
        subprocess.run(["gcc", "-O2", "-o", str(storm), str(HERE / "storm.c")], check=True)
        source = LiveSource(rulesets.event_types("syscall"), tracker=tracker)
        with source:
            reader = Reader(source, tracker, rulesets)
            reader.thread.start()
            print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
            subprocess.run(
                [str(storm), "openat", str(options.rate / 2), str(options.seconds)],
                check=True,
                capture_output=True,
            )
            caught_up(source)
            print("load average after:  {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
            reader.stop.set()
            reader.thread.join()
            stats = source.stats()
    counted, dropped = stats.kernel.total_counted, stats.kernel.total_dropped
    per_event = reader.cpu / reader.events * 1e6 if reader.events else float("nan")
    print(
        f"storm {options.rate:,.0f} events/s for {options.seconds} s: delivered {stats.delivered:,}"
        f" / counted {counted:,} (dropped {dropped:,}), ratio {stats.delivered / counted:.4f}"
    )
    print(
        f"reader thread: {reader.cpu:.2f} CPU-s for {reader.events:,} events = "
        f"{per_event:.2f} us/event = {1e6 / per_event:,.0f} events per CPU-second"
    )


if __name__ == "__main__":
    main()
