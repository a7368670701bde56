"""Native plugin host throughput: events/s through falconet's test source plugin (testsrc, built
from tests/data/plugins with the system cc) with a rule extracting 3 plugin fields per event,
against the same events as JSON lines through the built-in `json` source with a rule over the
same 3 values (json.value[...]), in the same run. Goal: plugin path >= 0.5 of the built-in.

    PYTHONPATH=. .venv/bin/python bench/bench_plugin_host.py [--events 100000] [--repeat 3]

Both paths run through engine.runner.run (rules compiled, Detector, no sink), so the figures
compare the sources and their extraction. Each path's figure is its best repetition (wall and
process CPU seconds printed side by side).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from engine.runner import RunRequest, native_plugins, run
from engine.sources.plugin_host import PluginConfig

USERS = ("alice", "bob", "mallory")

PLUGIN_RULE = """
- rule: three plugin fields
  desc: reads testsrc.n, testsrc.user and testsrc.action on every event, fires on none
  condition: testsrc.n > 0 and testsrc.user != nobody and testsrc.action = nothing
  output: "%testsrc.user"
  priority: INFO
  source: testsrc
"""
JSON_RULE = """
- rule: three json fields
  desc: reads /n, /user and /action on every event, fires on none
  condition: json.value[/n] != "" and json.value[/user] != nobody and json.value[/action] = nothing
  output: "%json.value[/user]"
  priority: INFO
  source: json
"""


def build_testsrc(directory: Path) -> Path:
    from tests.support.test_plugins import SOURCES

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        sys.exit("no C compiler (cc): cannot build the test plugin")
    library = directory / "libtestsrc.so"
    command = [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(SOURCES / "testsrc.c")]
    import subprocess

    subprocess.run(command, check=True, timeout=120)
    return directory


def json_lines(path: Path, count: int) -> None:
    # The very payloads testsrc produces (n from 1, user users[n % 3], delete every 5th).
    with path.open("w") as out:
        for n in range(1, count + 1):
            action = "delete" if n % 5 == 0 else "read"
            out.write(
                json.dumps({"n": n, "user": USERS[n % 3], "action": action}, separators=(",", ":"))
                + "\n"
            )


def timed(request: RunRequest) -> tuple[float, float, int]:
    """(wall seconds of the event loop as the run measures it, process CPU seconds of the whole
    run including loading the plugin and compiling the rule, events)."""
    with native_plugins(request):
        cpu = time.process_time()
        stats = run(request)
        cpu = time.process_time() - cpu
    return stats.seconds, cpu, stats.events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plugins_dir = build_testsrc(work)
        (work / "plugin.yaml").write_text(PLUGIN_RULE)
        (work / "json.yaml").write_text(JSON_RULE)
        events = work / "events.jsonl"
        json_lines(events, args.events)
        plugin_request = RunRequest(
            [work / "plugin.yaml"],
            stdout=False,
            plugins=[PluginConfig("testsrc", open_params=f"{args.events} 512")],
            load_plugins=["testsrc"],
            plugins_dir=str(plugins_dir),
        )
        json_request = RunRequest(
            [work / "json.yaml"], source="json", replay=str(events), stdout=False
        )
        best: dict[str, tuple[float, float, int]] = {}
        for _ in range(args.repeat):
            for name, request in (("plugin", plugin_request), ("json", json_request)):
                figure = timed(request)
                if name not in best or figure[1] < best[name][1]:
                    best[name] = figure
    print(f"events per path: {args.events} (best of {args.repeat})")
    for name, label in (("plugin", "testsrc plugin + 3 fields"), ("json", "built-in json + 3")):
        wall, cpu, count = best[name]
        print(
            f"  {label:<28} {count / wall:>10,.0f} events/s wall ({wall:.3f}s), "
            f"{count / cpu:>10,.0f} events/s CPU ({cpu:.3f}s)"
        )
    ratio_wall = (best["json"][0] / best["plugin"][0]) if best["plugin"][0] else 0.0
    ratio_cpu = (best["json"][1] / best["plugin"][1]) if best["plugin"][1] else 0.0
    print(f"plugin / built-in throughput: {ratio_wall:.2f} wall, {ratio_cpu:.2f} CPU (goal >= 0.5)")


if __name__ == "__main__":
    main()
