#!/usr/bin/env python3
"""Replay throughput of the syscall source with and without rules, side by side.

    python bench/gen_syscall_stream.py /tmp/busy.fncap --events 10000000
    python bench/bench_replay.py /tmp/busy.fncap [--rules FILE ...] [--limit N]

For each configuration the capture is replayed through the state tracker, every decoded event
evaluated against the syscall ruleset (alerts rendered with the rule's output format, as the run
loop would), on one core. Configurations:
  empty     no rules: only the events the state tracker needs are decoded
  upstream  falco_rules + falco-incubating_rules + falco-sandbox_rules (../shared/upstream-rules,
            or --rules): the events those rules or the tracker need are decoded and evaluated
  all       upstream rules, every event decoded (no type skipping): the worst case
Prints events/s, alerts by rule, and RSS sampled every million events (flat = bounded state).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

UPSTREAM = Path(__file__).resolve().parent.parent.parent / "shared" / "upstream-rules"
UPSTREAM_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def _load_ruleset(files: list[Path]) -> Any:
    from engine.loader import load_valid_rules, rulesets_for

    loaded = load_valid_rules(files)
    return rulesets_for(loaded).by_source.get("syscall")


def replay(path: Path, ruleset: Any, skip: bool, limit: int | None) -> dict[str, Any]:
    from engine.sources.syscall.replay import open_replay

    alerts: Counter[str] = Counter()
    rss: list[float] = []
    started = time.perf_counter()
    cpu_started = time.process_time()
    with open_replay(path) as capture:
        rule_types = ruleset.event_types() if ruleset is not None else frozenset()
        wanted = capture.needed_events(rule_types) if skip else None
        evaluate = ruleset.evaluate if ruleset is not None else None
        next_sample = 1_000_000
        for event in capture.events(wanted):
            if evaluate is not None:
                for rule in evaluate(event):
                    alerts[rule.name] += 1
                    if rule.output is not None:
                        rule.output.render(event)
            if event.num >= next_sample:
                rss.append(_rss_mb())
                next_sample += 1_000_000
                if limit is not None and event.num >= limit:
                    break
        events = min(capture.stats.events, limit) if limit else capture.stats.events
        decoded = getattr(capture.stats, "decoded", events)
        counters = capture.tracker.counters
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return {
        "cpu": cpu,
        "cpu_rate": events / cpu,
        "events": events,
        "decoded": decoded,
        "seconds": seconds,
        "rate": events / seconds,
        "alerts": alerts,
        "rss": rss,
        "threads_removed": counters.threads_removed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=Path)
    parser.add_argument("--rules", type=Path, action="append")
    parser.add_argument("--limit", type=int, help="stop after this many events")
    parser.add_argument("--configs", default="empty,upstream,all")
    args = parser.parse_args(argv)
    files = args.rules or [UPSTREAM / name for name in UPSTREAM_FILES]
    configs = args.configs.split(",")
    # Wall-clock rates depend on what else runs; the load shows how shared the machine was.
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    ruleset = _load_ruleset(files) if {"upstream", "all"} & set(configs) else None
    if ruleset is not None:
        print(
            f"rules: {len(ruleset)} enabled syscall rules from {', '.join(f.name for f in files)}"
        )
        print(f"rule event types: {len(ruleset.event_types() or ())}")
    results = {}
    for config in configs:
        rules = None if config == "empty" else ruleset
        results[config] = result = replay(
            args.capture, rules, skip=config != "all", limit=args.limit
        )
        rss = (
            ", ".join(f"{v:.0f}" for v in result["rss"][:3])
            + " ... "
            + ", ".join(f"{v:.0f}" for v in result["rss"][-3:])
        )
        print(
            f"{config:9} {result['events']:>12,} events  {result['decoded']:>11,} decoded  "
            f"{result['seconds']:7.2f} s  {result['rate']:>11,.0f} events/s  "
            f"(CPU {result['cpu']:6.2f} s: {result['cpu_rate']:>11,.0f} events/CPU-s)  "
            f"alerts {sum(result['alerts'].values()):,}  RSS MB [{rss}]"
        )
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    if "empty" in results and "upstream" in results:
        ratio = results["upstream"]["cpu_rate"] / results["empty"]["cpu_rate"]
        print(f"upstream/empty throughput ratio (per CPU-second): {ratio:.2f}")
    for config, result in results.items():
        if result["alerts"]:
            print(f"alerts ({config}):")
            for rule, count in result["alerts"].most_common():
                print(f"  {count:>8,}  {rule}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
