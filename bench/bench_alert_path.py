#!/usr/bin/env python3
"""The alert path on the k8s audit stream, side by side in one run (CPU seconds beside wall).

    python bench/bench_alert_path.py [--events 20000] [--repeat 3]

The events are the upstream Kubernetes audit events (../shared/upstream-events/k8s_audit,
mostly attacks: about one alert per event with the upstream k8saudit rules, rule_matching all)
repeated to --events records of a JSON lines file. Printed:
  in process   per-event CPU of json.loads alone; of making events; of making and evaluating
               them; and, timed alone, every alert of freshly evaluated events formatted (text
               line, JSON document) and serialised: the alert path's cost per alert
  end to end   `falconet run --source k8s_audit --replay FILE -o json > OUT`
               (CPU of the child process, start-up included) against json.loads of the same
               file in this process: the ratio of their event rates (goal >= 0.5)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
RULES = SHARED / "upstream-rules" / "k8s_audit_rules.yaml"
EVENTS = SHARED / "upstream-events" / "k8s_audit"


def audit_records() -> list[dict[str, Any]]:
    records = []
    for path in sorted(EVENTS.glob("*.json")):
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                if isinstance(record, dict) and record.get("kind") == "Event":
                    records.append(record)
    return records


def write_stream(path: Path, count: int) -> None:
    records = audit_records()
    with path.open("w") as out:
        for number in range(count):
            record = dict(records[number % len(records)], auditID=f"bench-{number}")
            out.write(json.dumps(record) + "\n")


def cpu_of(action: Any) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def in_process(path: Path, repeat: int) -> dict[str, Any]:
    from engine.loader import load_valid_rules, rulesets_for
    from engine.ruleset import SelectionStep
    from engine.runner import AlertFormatter
    from engine.sinks import Alert
    from engine.sources.formats import EventFactory

    lines = path.read_text().splitlines()
    loaded = load_valid_rules([RULES])
    steps = [SelectionStep(enable=True, rule="*")]
    ruleset = rulesets_for(loaded, steps, matching="all").by_source["k8s_audit"]
    formatter = AlertFormatter(hostname="bench")

    def parse() -> list[Any]:
        return [json.loads(line) for line in lines]

    def events() -> list[Any]:
        factory = EventFactory("k8s_audit")
        return [event for record in parse() for event in factory.from_document(record)]

    def evaluate(batch: list[Any]) -> int:
        return sum(len(ruleset.evaluate(event)) for event in batch)

    def matched(batch: list[Any]) -> list[tuple[Any, Any]]:
        return [(rule, event) for event in batch for rule in ruleset.evaluate(event)]

    def alert(pairs: list[tuple[Any, Any]]) -> int:
        for rule, event in pairs:
            rendered: Alert = formatter.alert(rule, event, "k8s_audit")
            rendered.json_text  # noqa: B018 - the serialisation is what is measured
        return len(pairs)

    best: dict[str, float] = {}
    alerts = 0
    for _ in range(repeat):
        for name, action in (
            ("json.loads", parse),
            ("evaluate", lambda: evaluate(events())),
            # the alerts of freshly evaluated events (as in a run), timed alone
            ("alerts", lambda pairs=matched(events()): alert(pairs)),
            ("events", events),
        ):
            _, cpu, result = cpu_of(action)
            if name == "alerts":
                alerts = result
            best[name] = min(best.get(name, cpu), cpu)
    best["alert_count"] = alerts
    return best


def end_to_end(path: Path, workdir: Path) -> tuple[float, float, float]:
    """(child CPU seconds, child wall seconds, json.loads CPU seconds of the same file)."""
    out = workdir / "alerts.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT), FALCO_HOSTNAME="bench")
    env["FALCONET_HOME"] = str(workdir / "home")
    command = [sys.executable, "-m", "cli", "run", "--source", "k8s_audit", "--replay", str(path)]
    command += ["-r", str(RULES), "-o", "json", "--rule-matching", "all"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    with out.open("w") as alerts:  # stdout to a file, as `falconet run ... -o json > FILE`
        subprocess.run(command, check=True, stdout=alerts, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = path.read_text()
    _, floor, _ = cpu_of(lambda: [json.loads(line) for line in text.splitlines()])
    written = sum(1 for _ in out.open()) if out.exists() else 0
    print(f"end to end: {written:,} alerts written")
    return child_cpu, wall, floor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if not RULES.exists():
        print(f"needs the upstream rules and events in {SHARED}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        stream = workdir / "audit.jsonl"
        write_stream(stream, args.events)
        best = in_process(stream, args.repeat)
        count = args.events
        alerts = best["alert_count"] or 1
        print(f"in process, {count:,} events, {int(alerts):,} alerts, best of {args.repeat}:")
        for name in ("json.loads", "events", "evaluate", "alerts"):
            print(f"  {name:<16} CPU {best[name]:7.3f}s  {1e6 * best[name] / count:6.2f} us/event")
        per_alert = best["alerts"] / alerts
        print(f"  alert path: {1e6 * per_alert:.2f} us/alert (format + JSON text)")
        child_cpu, wall, floor = end_to_end(stream, workdir)
        print(
            f"end to end: falconet run CPU {child_cpu:.3f}s (wall {wall:.3f}s), "
            f"json.loads CPU {floor:.3f}s; ratio of rates {floor / child_cpu:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
