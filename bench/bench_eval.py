#!/usr/bin/env python3
"""Rule evaluation throughput on a busy host's synthetic syscall events, side by side.

    python bench/bench_eval.py [--events 200000] [--repeat 3] [--cpu N] [--profile]

The events are bench/gen_syscall_stream.py's busy-host mix (its generator, same seed), decoded
into memory before timing so disk and decoding are out of the figure. Each timed pass is what
`falconet run` does per event after decoding: the replay's enter/exit merge and state tracking
(engine.sources.syscall.replay.Replay over a fresh tracker seeded from the snapshot), then the
run loop's `ruleset.evaluate(event)` on exit events. Configurations, same loop, same process,
pinned to one core:
  empty     a rules file with no rules (the loop without evaluation work)
  default   falco_rules + falco-incubating_rules + falco-sandbox_rules (../shared) as shipped
  all       the same files with every rule enabled
Prints events/s by wall time and by CPU time (the machine is shared: CPU time is the steadier
figure), the best of --repeat passes, and each configuration's ratio to `empty`.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from gen_syscall_stream import generate  # noqa: E402

UPSTREAM = ROOT.parent.parent / "shared" / "upstream-rules"
UPSTREAM_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")


@dataclass
class InMemorySource:
    """A decoded capture held in memory: the replay's source protocol (snapshot, events)."""

    snapshot: Any
    decoded: list[Any]
    stats: Any = None

    def events(self) -> Iterator[Any]:
        return iter(self.decoded)

    def close(self) -> None:
        pass


def decode(capture: Path) -> InMemorySource:
    """Fresh event objects (the tracker binds state into them, so each pass needs its own)."""
    from engine.sources.syscall.capture import CaptureReader

    reader = CaptureReader(capture)
    try:
        return InMemorySource(reader.snapshot, list(reader.events()))
    finally:
        reader.close()


def load(config: str, workdir: Path) -> Any:
    from engine.loader import load_rules_files, rulesets_for
    from engine.ruleset import SelectionStep

    if config == "empty":
        empty = workdir / "empty.yaml"
        empty.write_text("- list: nothing\n  items: []\n")
        return rulesets_for(load_rules_files([empty]))
    loaded = load_rules_files([UPSTREAM / name for name in UPSTREAM_FILES])
    steps = [SelectionStep(enable=True, rule="*")] if config == "all" else []
    return rulesets_for(loaded, steps)


def timed_pass(source: InMemorySource, rulesets: Any) -> tuple[int, int, float, float]:
    """(events, matches, wall seconds, CPU seconds) of the run loop over the events."""
    from engine.sources.syscall.replay import Replay

    replay = Replay(source)
    ruleset = rulesets.by_source.get("syscall")
    count = matches = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for event in replay.events():
        count += 1
        if event.dir == ">" or ruleset is None:  # as engine.runner.Detector.process
            continue
        matched = ruleset.evaluate(event)
        if matched:
            matches += len(matched)
    return count, matches, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cpu", type=int, default=None, help="core to pin to (default: any one)")
    parser.add_argument("--profile", action="store_true", help="profile one `all` pass")
    args = parser.parse_args(argv)
    if not UPSTREAM.is_dir():
        print(f"needs the upstream rules in {UPSTREAM}", file=sys.stderr)
        return 2
    cpu = args.cpu if args.cpu is not None else min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    configs = ("empty", "default", "all")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        capture = workdir / "busy.fncap"
        generate(capture, args.events, args.seed)
        rulesets = {config: load(config, workdir) for config in configs}
        best: dict[str, tuple[int, int, float, float]] = {}
        for _ in range(args.repeat):  # interleaved, so load changes hit every configuration
            for config in configs:
                result = timed_pass(decode(capture), rulesets[config])
                if config not in best or result[3] < best[config][3]:
                    best[config] = result
        if args.profile:
            source = decode(capture)
            profile = cProfile.Profile()
            profile.enable()
            timed_pass(source, rulesets["all"])
            profile.disable()
    print(f"pinned to CPU {cpu}; best of {args.repeat} passes")
    base = best["empty"]
    for config in configs:
        events, matches, wall, cpu_s = best[config]
        count = len(rulesets[config].by_source.get("syscall", ()))
        print(
            f"{config:<8} {count:>3} rules {events:>9,} events  wall {wall:6.3f}s "
            f"{events / wall:>11,.0f} ev/s  CPU {cpu_s:6.3f}s {events / cpu_s:>11,.0f} ev/CPU-s  "
            f"matches {matches:,}"
        )
    for config in configs[1:]:
        ratio = (best[config][0] / best[config][3]) / (base[0] / base[3])
        print(f"ratio {config}/empty (per CPU-second): {ratio:.2f}")
    if args.profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
