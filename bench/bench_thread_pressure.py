#!/usr/bin/env python3
"""Thread-table pressure: a replay of PROCESSES never-exiting processes (default 200,000, above
the table's 131,072 cap), then `cat /etc/shadow` from one more. Side by side in one run:

- the bounded table (the default cap, evicting the least recently active threads), events/s
  before the table fills and after (while it evicts), wall and CPU seconds;
- the same stream with a cap no replay reaches (nothing evicted): the cost of the evictions;
- alerts raised (the read of /etc/shadow must be one) and threads evicted.

    python bench/bench_thread_pressure.py [--processes 200000] [--rules FILE]

Rules: upstream's falco_rules.yaml when ../shared is there, else a one-rule stand-in.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.loader import load_valid_rules, rulesets_for
from engine.sources.syscall.replay import open_replay
from engine.sources.syscall.state import StateTracker
from tests.support.pressure_stream import write_pressure_stream

UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "upstream-rules" / "falco_rules.yaml"
STAND_IN = """\
- rule: Shadow read by cat
  desc: stand-in for upstream's Read sensitive file untrusted
  condition: evt.type = openat and fd.name = /etc/shadow and proc.name = cat
  output: shadow read (proc=%proc.name file=%fd.name)
  priority: WARNING
"""


def replay(path: Path, rules: Path, max_threads: int) -> dict[str, float]:
    rulesets = rulesets_for(load_valid_rules([rules]))
    tracker = StateTracker(max_threads=max_threads)
    alerts = 0
    fill_at: tuple[int, float, float] | None = None
    events = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    with open_replay(path, tracker) as source:
        for event in source.events():
            events += 1
            alerts += len(rulesets.evaluate(event, "syscall"))
            if fill_at is None and len(tracker.threads) >= max_threads:
                fill_at = (events, time.perf_counter(), time.process_time())
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    result = {
        "events": events,
        "alerts": alerts,
        "evicted": tracker.counters.threads_evicted,
        "wall": wall,
        "cpu": cpu,
        "eps_before": events / wall,
        "eps_after": 0.0,
    }
    if fill_at is not None:
        n, t, c = fill_at
        result["eps_before"] = n / (t - started)
        result["eps_after"] = (events - n) / max(1e-9, time.perf_counter() - t)
        result["cpu_before"], result["cpu_after"] = c - cpu_started, cpu - (c - cpu_started)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=200_000)
    parser.add_argument("--rules", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "pressure.fncap"
        write_pressure_stream(stream, args.processes)
        rules = args.rules
        if rules is None:
            rules = UPSTREAM if UPSTREAM.exists() else Path(tmp) / "stand-in.yaml"
            if rules != UPSTREAM:
                rules.write_text(STAND_IN)
        print(
            f"stream: {args.processes:,} never-exiting processes + cat /etc/shadow; rules: {rules}"
        )
        bounded = replay(stream, rules, StateTracker().max_threads)
        unbounded = replay(stream, rules, 10 * args.processes)
    print(f"{'table':>24} {'events':>8} {'alerts':>6} {'evicted':>8} {'wall s':>7} {'CPU s':>6} "
          f"{'ev/s before fill':>16} {'ev/s after fill':>15}")  # fmt: skip
    for name, r in (("bounded (131,072)", bounded), ("never full", unbounded)):
        after = f"{r['eps_after']:>15,.0f}" if r["eps_after"] else f"{'-':>15}"
        print(f"{name:>24} {r['events']:>8,} {r['alerts']:>6} {r['evicted']:>8,} "
              f"{r['wall']:>7.2f} {r['cpu']:>6.2f} {r['eps_before']:>16,.0f} {after}")  # fmt: skip
    if bounded["eps_after"]:
        n_after = bounded["events"] - StateTracker().max_threads
        per_cpu_before = StateTracker().max_threads / max(1e-9, bounded["cpu_before"])
        per_cpu_after = n_after / max(1e-9, bounded["cpu_after"])
        print(
            f"events per CPU second: {per_cpu_before:,.0f} before the table fills, "
            f"{per_cpu_after:,.0f} after ({per_cpu_after / per_cpu_before:.2f}x); whole replay "
            f"CPU {bounded['cpu']:.2f} s bounded vs {unbounded['cpu']:.2f} s never full "
            f"({bounded['cpu'] / unbounded['cpu']:.2f}x)"
        )
    print("alert still raised once the table is full:", "yes" if bounded["alerts"] else "NO")
    return 0 if bounded["alerts"] else 1


if __name__ == "__main__":
    sys.exit(main())
