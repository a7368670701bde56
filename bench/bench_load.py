"""Rules loading figures: load + compile of the upstream stable + incubating + sandbox files, cold
and through the compile cache (a reload of unchanged files).

Run from the repository root:  PYTHONPATH=. python bench/bench_load.py [--repeat N]
Goals (issue 5): cold <= 0.3 s, cached reload <= 0.05 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

RULES_DIR = Path(__file__).resolve().parents[2] / "shared" / "upstream-rules"
FILES = ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--rules-dir", type=Path, default=RULES_DIR)
    args = parser.parse_args()
    paths = [args.rules_dir / name for name in FILES]
    if not all(p.is_file() for p in paths):
        print(f"upstream rules not found under {args.rules_dir}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    from engine.loader import load_rules_files  # import cost reported separately

    import_seconds = time.perf_counter() - started

    started = time.perf_counter()
    first = load_rules_files(paths, use_cache=False)
    first_seconds = time.perf_counter() - started
    if not first.successful:
        print("the upstream files did not load:", file=sys.stderr)
        for result in first.results:
            for error in result.errors:
                print(f"  {result.name}: {error.code.name}: {error.message}", file=sys.stderr)
        return 1

    cold = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        load_rules_files(paths, use_cache=False)
        cold.append(time.perf_counter() - started)

    load_rules_files(paths)  # fill the cache
    cached = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        load_rules_files(paths)
        cached.append(time.perf_counter() - started)

    rules = len(first.rules)
    print(
        f"files: {', '.join(FILES)}  ({rules} rules, {len(first.macros)} macros, "
        f"{len(first.lists)} lists)"
    )
    print(f"import engine.loader:               {import_seconds:8.4f} s")
    print(f"first load (cold process):          {first_seconds:8.4f} s   goal <= 0.3 s")
    print(
        f"load + compile, median of {args.repeat:<3}:      {statistics.median(cold):8.4f} s   "
        f"goal <= 0.3 s"
    )
    print(
        f"reload unchanged (cache), median:   {statistics.median(cached):8.4f} s   goal <= 0.05 s"
    )
    ratio = statistics.median(cached) / statistics.median(cold)
    print(f"cached / cold ratio:                {ratio:8.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
