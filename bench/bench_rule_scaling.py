#!/usr/bin/env python3
"""Rule evaluation cost against the number of enabled custom rules, side by side.

    python bench/bench_rule_scaling.py [--events 300000] [--repeat 2] [--reference] [--cpu N]
                                       [--counts 10,100,1000,5000,10000]

The events are the busy-host stream of gen_syscall_stream.py, decoded into memory; the rules
are gen_custom_rules.py's varied custom rules (evt.type in varied syscalls; proc.name, proc.pname
and fd.name with =, in, startswith, endswith, contains, glob, regex, pmatch; mostly not
matching). Each timed pass is bench_eval.py's run loop (replay merge, state tracking,
`ruleset.evaluate` on exit events) on one pinned core. Printed per configuration:
  load       seconds to read, compile and index the rules file (CPU), plus the lazy per-type
             builds paid by the first pass
  loop       events per CPU-second of the whole loop, and its ratio to the empty ruleset
  eval       events per CPU-second of rule evaluation alone: events / (loop CPU - empty CPU)
Also `startswith100` against `regex100`: 100 rules `fd.name startswith /opt/appN/` against the
same rules written `fd.name regex '/opt/appN/.*'`. With --reference, the 10/100/1000 rule sets
run again with the candidate index disabled (every rule of a type evaluated in one chain, the
previous engine) for comparison.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from bench_eval import decode, timed_pass  # noqa: E402
from gen_custom_rules import generate_rules  # noqa: E402
from gen_syscall_stream import generate  # noqa: E402

import engine.ruleset  # noqa: E402

DEFAULT_INDEX_MIN = engine.ruleset.INDEX_MIN_RULES


def load(path: Path, indexed: bool) -> tuple[Any, float]:
    from engine.loader import clear_caches, load_rules_files, rulesets_for

    clear_caches()
    engine.ruleset.INDEX_MIN_RULES = DEFAULT_INDEX_MIN if indexed else 1 << 30
    started = time.process_time()
    rulesets = rulesets_for(load_rules_files([path]))
    return rulesets, time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--counts", default="10,100,1000,5000,10000")
    parser.add_argument("--reference", action="store_true", help="also run without the index")
    parser.add_argument("--cpu", type=int, default=None, help="core to pin to (default: any one)")
    args = parser.parse_args(argv)
    cpu = args.cpu if args.cpu is not None else min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    counts = [int(c) for c in args.counts.split(",") if c]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        capture = workdir / "busy.fncap"
        generate(capture, args.events, args.seed)
        files: dict[str, tuple[Path, bool]] = {}

        def add(name: str, text: str, indexed: bool = True) -> None:
            path = workdir / f"{name}.yaml"
            path.write_text(text)
            files[name] = (path, indexed)

        add("empty", "- list: nothing\n  items: []\n")
        for count in counts:
            add(f"custom{count}", generate_rules(count, args.seed))
            if args.reference and count <= 1000:
                add(f"chain{count}", generate_rules(count, args.seed), indexed=False)
        add("startswith100", generate_rules(100, args.seed, "startswith"))
        add("regex100", generate_rules(100, args.seed, "regex"))
        loaded = {name: load(path, indexed) for name, (path, indexed) in files.items()}
        best: dict[str, tuple[int, int, float, float]] = {}
        first_cpu: dict[str, float] = {}
        for _ in range(args.repeat):  # interleaved, so load changes hit every configuration
            for name, (_, indexed) in files.items():
                engine.ruleset.INDEX_MIN_RULES = DEFAULT_INDEX_MIN if indexed else 1 << 30
                result = timed_pass(decode(capture), loaded[name][0])
                first_cpu.setdefault(name, result[3])
                if name not in best or result[3] < best[name][3]:
                    best[name] = result
    print(f"pinned to CPU {cpu}; {args.events:,} events generated; best of {args.repeat} passes")
    empty_cpu = best["empty"][3]
    empty_rate = best["empty"][0] / empty_cpu
    for name in files:
        events, matches, wall, cpu_s = best[name]
        rules = len(loaded[name][0].by_source.get("syscall", ()))
        eval_cpu = max(cpu_s - empty_cpu, 1e-9)
        builds = max(first_cpu[name] - cpu_s, 0.0)
        print(
            f"{name:<14} {rules:>6} rules  load {loaded[name][1]:6.3f}s +{builds:5.3f}s  "
            f"wall {wall:6.3f}s CPU {cpu_s:6.3f}s  loop {events / cpu_s:>10,.0f} ev/CPU-s "
            f"({events / cpu_s / empty_rate:4.2f} of empty)  eval {events / eval_cpu:>12,.0f} "
            f"ev/CPU-s  matches {matches:,}"
        )
    regex, prefix = best["regex100"], best["startswith100"]
    ratio = (prefix[3] - empty_cpu) / max(regex[3] - empty_cpu, 1e-9)
    print(f"ratio regex100/startswith100 (evaluation rate): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
