#!/usr/bin/env python3
"""A running daemon offered hostile rulesets: RSS and /healthz latency while hostile candidates
(macro bomb, list bomb, alias bomb, huge condition, a ruleset within the budgets but costly to
compile) arrive one after the other, against the same daemon with no hostile candidate, in one
run. Candidates arrive as edits of the daemon's rules file (`-r` reloads); follow's dry run and
SIGHUP go through the same guarded compilation (engine.compile_guard).

    python bench/bench_hostile_feed.py [--seconds 15]

Prints, per phase: /healthz p50/p99, the daemon's peak RSS, the daemon's CPU seconds and its
children's (the compile guard's) beside wall time, refused reloads, and whether a posted event
was still detected.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.hostile_rules import (  # noqa: E402 - after the path set-up
    alias_bomb,
    costly_rules,
    list_bomb,
    macro_bomb,
)
from tests.support.k8s_audit_event import EVENT  # noqa: E402

RULE = (
    "- rule: Pod created\n  desc: d\n  condition: ka.verb=create and ka.target.resource=pods\n"
    "  output: pod (user=%ka.user.name)\n  priority: WARNING\n  source: k8s_audit\n"
)


def _k8s(text: str) -> str:
    return text.replace("proc.name", "ka.verb").replace("evt.type = open", "ka.verb = create")


def hostile_rulesets() -> dict[str, str]:
    condition = " or ".join(f"ka.user.name = u{i}" for i in range(20_000))
    return {
        "macro bomb": _k8s(macro_bomb()),
        "list bomb": _k8s(list_bomb()),
        "alias bomb": _k8s(alias_bomb()),
        "huge condition": RULE.replace("ka.verb=create", f"({condition}) and ka.verb=create"),
        "costly (within budgets)": costly_rules(),
    }


def _get(url: str) -> tuple[float, str]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read().decode()
    return time.perf_counter() - started, body


def _post(url: str) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(EVENT).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def _proc(pid: int) -> tuple[int, float, float]:
    """(VmHWM kB, own CPU s, reaped children's CPU s)."""
    hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / tick
    children = (int(fields[13]) + int(fields[14])) / tick
    return hwm, own, children


def _alerts(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def phase(
    name: str, daemon: subprocess.Popen[str], web: str, hook: str, alerts: Path,
    rules: Path, seconds: float, candidates: list[str],
) -> dict[str, object]:  # fmt: skip
    latencies: list[float] = []
    _, cpu0, child0 = _proc(daemon.pid)
    started = time.perf_counter()
    refused0 = sum(1 for a in _alerts(alerts) if "reload failed" in str(a["rule"]))
    detected0 = sum(1 for a in _alerts(alerts) if a["rule"] == "Pod created")
    pending = list(candidates)
    offered = 0
    next_offer = started
    refused = 0
    while time.perf_counter() - started < seconds or refused < len(candidates):
        now = time.perf_counter()
        refused = sum(1 for a in _alerts(alerts) if "reload failed" in str(a["rule"])) - refused0
        if pending and (offered == refused) and now >= next_offer:
            rules.write_text(pending.pop(0))
            offered += 1
            next_offer = now + 0.5
        latency, body = _get(f"{web}/healthz")
        assert "ok" in body
        latencies.append(latency)
        time.sleep(0.02)
        if time.perf_counter() - started > seconds + 180:
            break
    _post(hook)
    deadline = time.monotonic() + 30
    while sum(1 for a in _alerts(alerts) if a["rule"] == "Pod created") == detected0:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    wall = time.perf_counter() - started
    hwm, cpu1, child1 = _proc(daemon.pid)
    latencies.sort()
    return {
        "phase": name,
        "healthz_p50_ms": 1000 * statistics.median(latencies),
        "healthz_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "peak_rss_mb": hwm / 1024,
        "cpu_s": cpu1 - cpu0,
        "children_cpu_s": child1 - child0,
        "wall_s": wall,
        "refused": sum(1 for a in _alerts(alerts) if "reload failed" in str(a["rule"])) - refused0,
        "detected": sum(1 for a in _alerts(alerts) if a["rule"] == "Pod created") > detected0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rules, alerts = Path(tmp) / "rules.yaml", Path(tmp) / "alerts.json"
        rules.write_text(RULE)
        env = dict(os.environ, PYTHONPATH=str(REPO), FALCONET_HOME=str(Path(tmp) / "home"))
        env.setdefault("FALCONET_COMPILE_MAX_CPU_SECONDS", "5")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "cli", "run", "--source", "k8s_audit", "-o", "json",
             "--listen", "127.0.0.1:0", "--output-file", str(alerts), "--web", "127.0.0.1:0",
             "-r", str(rules)],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
        )  # fmt: skip
        urls: dict[str, str] = {}
        assert daemon.stderr is not None
        for line in daemon.stderr:
            for what in ("listening on", "web endpoints on"):
                if f"{what} http" in line:
                    urls[what] = line.split()[-1]
            if len(urls) == 2:
                break
        try:
            hook, web = urls["listening on"], urls["web endpoints on"]
            quiet = phase("no hostile feed", daemon, web, hook, alerts, rules, args.seconds, [])
            hostile = phase(
                "hostile feed", daemon, web, hook, alerts, rules, args.seconds,
                list(hostile_rulesets().values()),
            )  # fmt: skip
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
    print("hostile candidates offered:", ", ".join(hostile_rulesets()))
    print(
        f"{'phase':>16} {'healthz p50 ms':>14} {'p99 ms':>7} {'peak RSS MB':>11} "
        f"{'daemon CPU s':>12} {'guard CPU s':>11} {'wall s':>7} {'refused':>7} {'detects':>7}"
    )
    for r in (quiet, hostile):
        detects = "yes" if r["detected"] else "NO"
        print(
            f"{r['phase']:>16} {r['healthz_p50_ms']:>14.2f} {r['healthz_p99_ms']:>7.2f} "
            f"{r['peak_rss_mb']:>11.1f} {r['cpu_s']:>12.2f} {r['children_cpu_s']:>11.2f} "
            f"{r['wall_s']:>7.1f} {r['refused']:>7} {detects:>7}"
        )
    print(
        f"hostile/quiet: healthz p99 {hostile['healthz_p99_ms'] / quiet['healthz_p99_ms']:.2f}x, "
        f"peak RSS {hostile['peak_rss_mb'] / quiet['peak_rss_mb']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
