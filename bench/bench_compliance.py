"""Compliance figures on the upstream rules (../shared/upstream-rules), measured side by side:

- reading rules for compliance (engine reader + collector, no compile) vs a full engine load
  (compile every condition): the ratio says what the compliance commands save by not compiling;
- overlay generation, selection for every framework, one coverage report (in-process);
- the overlay's effect on a full engine load (upstream files alone vs upstream + overlay);
- for each framework and strength, over Falco's own rules (stable + incubating + sandbox) and over
  every upstream file: the rules `--compliance F --strength S` selects and the controls covered
  (the table in docs/compliance.md).

Run: .venv/bin/python bench/bench_compliance.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.loader import load_rules_files  # noqa: E402
from feeds.compliance.catalogue import load_catalogue  # noqa: E402
from feeds.compliance.coverage import build_report  # noqa: E402
from feeds.compliance.operations import coverage_summary, generate_overlay  # noqa: E402
from feeds.compliance.rulesfile import read_rules  # noqa: E402
from feeds.compliance.selection import select_rules  # noqa: E402

RUNS = 5
UPSTREAM = ROOT.parent / "shared" / "upstream-rules"


FALCO_OWN = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")


def median_seconds(action: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def strength_table(files: list[str], label: str) -> None:
    """Rules selected and controls covered per framework and strength (Markdown table)."""
    wall, cpu = time.perf_counter(), time.process_time()
    rows = coverage_summary(files)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    total = rows[0]["rules"]
    print(
        f"\n{label}: {total} rules; summary took {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU"
    )
    print("| framework | strength | rules selected | controls covered |")
    print("|---|---|---:|---:|")
    for row in rows:
        print(
            f"| {row['framework']} | {row['strength']} | {row['rules_selected']}/{total} "
            f"| {row['controls_covered']}/{row['controls']} |"
        )


def main() -> None:
    if not UPSTREAM.is_dir():
        sys.exit(f"{UPSTREAM} is absent: the benchmark needs the upstream rules files")
    files = [*sorted(str(p) for p in UPSTREAM.glob("*.yaml"))]
    files.append(str(UPSTREAM / "k8saudit-gke" / "k8s_audit_rules_gke.yaml"))
    load_catalogue()  # one-time data load and schema validation, reported separately below
    rules = read_rules(files)
    frameworks = list(load_catalogue().frameworks)

    read = median_seconds(lambda: read_rules(files))
    full = median_seconds(lambda: load_rules_files(files, use_cache=False))
    overlay = median_seconds(lambda: generate_overlay(files))
    selection = median_seconds(lambda: [select_rules(rules, f) for f in frameworks])
    report = median_seconds(lambda: build_report(rules, "nist-800-53"))
    with tempfile.TemporaryDirectory() as tmp:
        overlay_path = Path(tmp) / "overlay.yaml"
        overlay_path.write_text(generate_overlay(files).text)
        with_overlay = median_seconds(
            lambda: load_rules_files([*files, str(overlay_path)], use_cache=False)
        )

    print(f"upstream rules: {len(rules)} rules in {len(files)} files; median of {RUNS} runs")
    print(f"read for compliance (no compile): {read * 1000:8.1f} ms")
    ratio = read / full
    print(f"full engine load (compile):       {full * 1000:8.1f} ms   read/full = {ratio:.2f}")
    print(f"overlay generation:               {overlay * 1000:8.1f} ms")
    print(f"selection, all {len(frameworks)} frameworks:     {selection * 1000:8.1f} ms")
    print(f"coverage report (NIST 800-53):    {report * 1000:8.1f} ms")
    print(
        f"engine load with overlay:         {with_overlay * 1000:8.1f} ms   "
        f"ratio with/without = {with_overlay / full:.2f}"
    )
    strength_table([str(UPSTREAM / name) for name in FALCO_OWN], "Falco's own rules")
    strength_table(files, "every upstream rules file")


if __name__ == "__main__":
    main()
