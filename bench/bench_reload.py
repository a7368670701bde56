"""Hot reload figures of `falconet run` (engine/daemon.py).

1. Reload latency: from a new ruleset digest seen (files changed on disk) to the new rules active
   (loaded, compiled, swapped), for the upstream stable + incubating + sandbox rules. Goal <= 1 s.
2. Swaps during a fast replay: 100 rulesets, each with one catch-all rule named after its
   generation, swapped in one after the other while a k8s_audit replay runs. Every event must
   raise exactly one alert (events lost or duplicated = 0), and generations must only go forward
   in the alert stream (no event evaluated against an older ruleset after a newer one).

Run from the repository root:  PYTHONPATH=. python bench/bench_reload.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import ClassVar

from engine.daemon import Reloader, rules_digest
from engine.metrics import Metrics
from engine.ruleset import RulesetSwitch
from engine.runner import RunRequest, load_rulesets, run
from engine.sinks import Alert, Sink

RULES_DIR = Path(__file__).resolve().parents[2] / "shared" / "upstream-rules"
FILES = ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"]
EVENT = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "a362d22b",
    "requestURI": "/api/v1/namespaces/default/pods",
    "responseStatus": {"code": 201},
    "stage": "ResponseComplete",
    "timestamp": "2018-10-25T14:09:12Z",
    "stageTimestamp": "2018-10-25T14:09:12.581541Z",
    "verb": "create",
    "user": {"username": "alice"},
    "objectRef": {"resource": "pods", "namespace": "default", "name": "web"},
}


def reload_latency(tmp: Path, repeat: int) -> None:
    copies = [tmp / name for name in FILES]
    for name, copy in zip(FILES, copies, strict=True):
        copy.write_text((RULES_DIR / name).read_text())
    reloader = Reloader(RunRequest(rules_files=[str(c) for c in copies]), Metrics())
    reloader.load_initial()
    seconds = []
    for round_ in range(repeat):
        # A real change each round (a new digest), as a follow update or an edit brings.
        copies[0].write_text(copies[0].read_text() + f"\n# change {round_}\n")
        started = time.perf_counter()
        digest = rules_digest(copies)  # the daemon sees a new digest...
        assert reloader.reload(copies)  # ...and the new rules are active
        seconds.append(time.perf_counter() - started)
        assert digest
    print(
        f"reload latency (stable+incubating+sandbox, {reloader.enabled_rules} rules): "
        f"median {statistics.median(seconds):.3f} s, max {max(seconds):.3f} s over {repeat} "
        "(goal <= 1 s)"
    )


class GenerationCounter(Sink):
    kind: ClassVar[str] = "bench"

    def __init__(self) -> None:
        super().__init__(True)
        self.by_generation: Counter[int] = Counter()
        self.backwards = 0
        self._last = 0

    def write(self, alert: Alert) -> None:
        generation = int(alert.document["rule"].split("-")[1])
        self.backwards += generation < self._last
        self._last = generation
        self.by_generation[generation] += 1


def swaps_during_replay(tmp: Path, events: int, swaps: int) -> None:
    replay = tmp / "events.jsonl"
    replay.write_text((json.dumps(EVENT) + "\n") * events)
    rulesets = []
    for generation in range(swaps + 1):
        path = tmp / f"gen-{generation}.yaml"
        path.write_text(
            f"- rule: gen-{generation}\n  desc: catch-all\n  condition: ka.verb=create\n"
            "  output: seen\n  priority: WARNING\n  source: k8s_audit\n"
        )
        rulesets.append(load_rulesets([str(path)], RunRequest(rules_files=[]).selection)[1])
    switch = RulesetSwitch(rulesets[0])
    counter = GenerationCounter()
    request = RunRequest(rules_files=[], source="k8s_audit", replay=str(replay), stdout=False)
    stats: list[object] = []
    runner = threading.Thread(target=lambda: stats.append(run(request, switch, [counter])))
    runner.start()
    done = 0
    while done < swaps and runner.is_alive():
        time.sleep(0.001)
        done += 1
        switch.swap(rulesets[done])
    runner.join()
    processed = stats[0].events  # type: ignore[attr-defined]
    alerts = sum(counter.by_generation.values())
    print(
        f"{done} swaps during a replay of {processed} events "
        f"({stats[0].events_per_second:,.0f} events/s): "  # type: ignore[attr-defined]
        f"alerts {alerts}, generations seen {len(counter.by_generation)}, "
        f"events lost or duplicated {processed - alerts}, generation went backwards "
        f"{counter.backwards} times"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--events", type=int, default=100_000)
    arguments = parser.parse_args()
    if not RULES_DIR.is_dir():
        print(f"{RULES_DIR} is absent: the upstream rules are only in the project's workspace")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        reload_latency(Path(tmp), arguments.repeat)
        swaps_during_replay(Path(tmp), arguments.events, 100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
