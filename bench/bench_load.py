"""Rules loading figures: load + compile of the upstream stable + incubating + sandbox files, cold
and through the caches (a reload of unchanged files; a reload after a small local change).

Run from the repository root:  PYTHONPATH=. python bench/bench_load.py [--repeat N]
Goals (issue 5): cold <= 0.3 s, cached reload <= 0.05 s. Each figure is the median over N runs,
as CPU time of this process (what the loader costs, whatever else the machine runs) and as wall
time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

RULES_DIR = Path(__file__).resolve().parents[2] / "shared" / "upstream-rules"
FILES = ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"]


def measure(action: Callable[[int], object], repeat: int, before: Callable[[], object]) -> str:
    cpu, wall = [], []
    for round_ in range(repeat):
        before()
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        action(round_)
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started_wall)
    return f"{statistics.median(cpu):8.4f} s cpu {statistics.median(wall):8.4f} s wall"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--rules-dir", type=Path, default=RULES_DIR)
    args = parser.parse_args()
    paths = [args.rules_dir / name for name in FILES]
    if not all(p.is_file() for p in paths):
        print(f"upstream rules not found under {args.rules_dir}", file=sys.stderr)
        return 2

    started = time.process_time()
    from engine.loader import clear_caches, load_contents, load_rules_files, read_rules_files

    import_seconds = time.process_time() - started
    started = time.process_time()
    first = load_rules_files(paths, use_cache=False)
    first_seconds = time.process_time() - started
    if not first.successful:
        print("the upstream files did not load:", file=sys.stderr)
        for result in first.results:
            for error in result.errors:
                print(f"  {result.name}: {error.code.name}: {error.message}", file=sys.stderr)
        return 1

    def nothing() -> None:
        return None

    cold = measure(lambda _: load_rules_files(paths, use_cache=False), args.repeat, clear_caches)
    load_rules_files(paths)  # fill the cache
    cached = measure(lambda _: load_rules_files(paths), args.repeat, nothing)
    # A hot reload after a small local change: one more file appending to a list, so the content
    # hash differs but the unchanged files and conditions are remembered.
    files = read_rules_files(paths)

    def reload_changed(round_: int) -> None:
        local = f"- list: shell_binaries\n  items: [sh{round_}]\n  override: {{items: append}}\n"
        load_contents([*files, ("local.yaml", local)])

    changed = measure(reload_changed, args.repeat, nothing)

    print(
        f"files: {', '.join(FILES)}  ({len(first.rules)} rules, {len(first.macros)} macros, "
        f"{len(first.lists)} lists), median of {args.repeat}"
    )
    print(f"import engine.loader (cpu):         {import_seconds:8.4f} s")
    print(f"first load in a process (cpu):      {first_seconds:8.4f} s   (builds field catalogs)")
    print(f"load + compile, cold caches:        {cold}   goal <= 0.3 s")
    print(f"reload unchanged (cache):           {cached}   goal <= 0.05 s")
    print(f"reload with a changed local file:   {changed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
