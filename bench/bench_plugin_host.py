"""Native plugin host throughput: events/s through falconet's test source plugin (testsrc, built
from tests/data/plugins with the system cc) with a rule extracting 3 plugin fields per event,
against the same events as JSON lines through the built-in `json` source with a rule over the
same 3 values (json.value[...]), in the same run. Goal: plugin path >= 0.5 of the built-in.
The plugin is measured as a typical source plugin (sourcing + extraction, -DNO_PARSE) and as the
test suite's build, which also has parse_event (one more call into the plugin per event).

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
    """libtestsrc.so as the test suite builds it (sourcing, extraction, parsing, async), and
    libtestsrc_noparse.so without parse_event (sourcing and extraction, as k8saudit, cloudtrail
    or json are)."""
    import subprocess

    from tests.support.test_plugins import SOURCES

    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        sys.exit("no C compiler (cc): cannot build the test plugin")
    for name, flags in (("testsrc", []), ("testsrc_noparse", ["-DNO_PARSE"])):
        library = directory / f"lib{name}.so"
        source = str(SOURCES / "testsrc.c")
        command = [compiler, "-shared", "-fPIC", "-O2", *flags, "-o", str(library), source]
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
        requests = {
            name: RunRequest(
                [work / "plugin.yaml"],
                stdout=False,
                plugins=[PluginConfig(name, open_params=f"{args.events} 512")],
                load_plugins=[name],
                plugins_dir=str(plugins_dir),
            )
            for name in ("testsrc_noparse", "testsrc")
        }
        requests["json"] = RunRequest(
            [work / "json.yaml"], source="json", replay=str(events), stdout=False
        )
        best: dict[str, tuple[float, float, int]] = {}
        for _ in range(args.repeat):
            for name, request in requests.items():
                figure = timed(request)
                if name not in best or figure[1] < best[name][1]:
                    best[name] = figure
    print(f"events per path: {args.events} (best of {args.repeat})")
    labels = {
        "testsrc_noparse": "plugin (source+extract) + 3",
        "testsrc": "plugin (+parse_event) + 3",
        "json": "built-in json + 3",
    }
    for name, label in labels.items():
        wall, cpu, count = best[name]
        print(
            f"  {label:<30} {count / wall:>10,.0f} events/s wall ({wall:.3f}s), "
            f"{count / cpu:>10,.0f} events/s CPU ({cpu:.3f}s)"
        )
    for name in ("testsrc_noparse", "testsrc"):
        wall = best["json"][0] / best[name][0] if best[name][0] else 0.0
        cpu = best["json"][1] / best[name][1] if best[name][1] else 0.0
        print(f"{labels[name]} / built-in: {wall:.2f} wall, {cpu:.2f} CPU (goal >= 0.5)")


if __name__ == "__main__":
    main()
