#!/usr/bin/env python3
"""Replay throughput through `falconet run`'s loop (engine.runner.run), side by side.

    python bench/gen_syscall_stream.py /tmp/busy.fncap --events 1000000
    python bench/bench_run.py /tmp/busy.fncap [--profile]

Two configurations on one core, each a full run (capture decoding, state tracking, evaluation
through the RulesetSwitch, alert formatting, the output queue and a sink):
  empty     a rules file with no rules
  default   falco_rules + falco-incubating_rules + falco-sandbox_rules (../shared) as shipped:
            the rules their files enable
  all       the same files with every rule enabled (`enabled: false` ones too, as a -t on all
            their tags would)
Alerts go to a file in a temporary directory (stdout would measure the terminal). Prints
events/s for each, their ratio, and with --profile the top functions of the `all` run.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

UPSTREAM = Path(__file__).resolve().parent.parent.parent / "shared" / "upstream-rules"
UPSTREAM_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")


def _run(capture: Path, rules: list[Path], enable_all: bool, workdir: Path) -> Any:
    from engine.runner import RunRequest, Selection, run

    # `enable_all`: every rule on, whatever its `enabled:` says (tags cover every rule).
    tags = _all_tags(rules) if enable_all else ()
    request = RunRequest(
        rules,
        source="syscall",
        replay=str(capture),
        stdout=False,
        selection=Selection(tags=tags),
        outputs=[{"type": "file", "path": str(workdir / "alerts.txt")}],
    )
    cpu = time.process_time()
    stats = run(request)
    stats.cpu_seconds = time.process_time() - cpu  # the output thread's CPU included
    return stats


def _all_tags(rules: list[Path]) -> tuple[str, ...]:
    from engine.loader import load_rules_files

    return tuple(sorted({tag for rule in load_rules_files(rules).rules for tag in rule.tags}))


def _print(name: str, stats: Any) -> None:
    print(
        f"{name:<8} {stats.events:>10,} events {stats.seconds:7.2f}s "
        f"{stats.events_per_second:>12,.0f} events/s "
        f"({stats.events / stats.cpu_seconds:>12,.0f} events/CPU-s)  alerts {stats.alerts:,}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=Path)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        empty = workdir / "empty.yaml"
        empty.write_text("- list: nothing\n  items: []\n")
        upstream = [UPSTREAM / name for name in UPSTREAM_FILES]
        base = _run(args.capture, [empty], False, workdir)
        _print("empty", base)
        default = _run(args.capture, upstream, False, workdir)
        _print("default", default)
        profile = cProfile.Profile() if args.profile else None
        if profile:
            profile.enable()
        full = _run(args.capture, upstream, True, workdir)
        if profile:
            profile.disable()
        _print("all", full)
        for name, stats in (("default", default), ("all", full)):
            ratio = (stats.events / stats.cpu_seconds) / (base.events / base.cpu_seconds)
            print(f"ratio {name}/empty (per CPU-second): {ratio:.2f}")
        for rule, count in full.alerts_by_rule.most_common(10):
            print(f"  {count:>8,}  {rule}")
        if profile:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
