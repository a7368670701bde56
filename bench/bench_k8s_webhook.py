"""k8s audit webhook throughput on loopback, measured side by side in one run:

- accepted only: the apiserver-style client POSTs EventLists, the endpoint parses them into
  events and hands them to a callback that does nothing;
- accepted and evaluated: the same, the callback evaluating every event against the upstream
  k8saudit rules (../shared/upstream-rules/k8s_audit_rules.yaml, rule_matching all);
- end to end: a real `falconet run --source k8s_audit --listen ... -o json` process, alerts
  written to a file (the upstream events are all attacks: ~1.3 alerts per event, so this is
  also the alert path's figure). Its CPU time is read from /proc before it is stopped.

The client runs in its own process (keep-alive connection, batches of BATCH events made from the
upstream audit events with distinct auditIDs) so it does not share the server's GIL. Goal: >= 20,000
audit events/s accepted and evaluated.

Run: .venv/bin/python bench/bench_k8s_webhook.py [total_events]
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.loader import load_rules_files, rulesets_for  # noqa: E402
from engine.sources.json_event import JsonEvent  # noqa: E402
from engine.sources.webhooks import k8s_audit_webhook  # noqa: E402

SHARED = ROOT.parent / "shared"
EVENTS_DIR = SHARED / "upstream-events" / "k8s_audit"
RULES = SHARED / "upstream-rules" / "k8s_audit_rules.yaml"
BATCH = 500


def upstream_events() -> list[dict]:
    events = []
    for path in sorted(EVENTS_DIR.glob("*.json")):
        for line in path.read_text().splitlines():
            document = json.loads(line) if line.strip() else None
            if isinstance(document, dict) and "auditID" in document:
                events.append(document)
    return events


def batches(total: int) -> list[bytes]:
    pool = upstream_events()
    bodies = []
    for start in range(0, total, BATCH):
        items = []
        for index in range(start, min(start + BATCH, total)):
            item = dict(pool[index % len(pool)])
            item["auditID"] = f"bench-{index}"
            items.append(item)
        bodies.append(
            json.dumps(
                {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
            ).encode()
        )
    return bodies


def client(port: int, bodies: list[bytes], result: multiprocessing.Queue) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    started = time.perf_counter()
    for body in bodies:
        connection.request("POST", "/k8s-audit", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status}")
    result.put(time.perf_counter() - started)


def measure(callback, bodies: list[bytes]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(wall seconds seen by the client, CPU seconds the server process spent)."""
    with k8s_audit_webhook("127.0.0.1:0", callback) as server:
        result: multiprocessing.Queue = multiprocessing.Queue()
        process = multiprocessing.Process(target=client, args=(server.port, bodies, result))
        cpu_before = time.process_time()
        process.start()
        elapsed = result.get(timeout=600)
        cpu = time.process_time() - cpu_before
        process.join()
    return elapsed, cpu


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"falconet run exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("falconet run did not start listening")


def measure_falconet_run(bodies: list[bytes]) -> tuple[float, float, int]:
    """(client wall seconds, falconet's CPU seconds while serving, alert lines written)."""
    port = free_port()
    falconet = Path(sys.executable).with_name("falconet")
    with tempfile.TemporaryDirectory() as home, open(Path(home) / "alerts.json", "w+") as alerts:
        env = dict(os.environ, FALCONET_HOME=home)
        command = [str(falconet), "run", "-r", str(RULES), "--source", "k8s_audit",
                   "--listen", f"127.0.0.1:{port}", "--no-web", "-o", "json",
                   "--rule-matching", "all"]  # fmt: skip
        process = subprocess.Popen(command, stdout=alerts, stderr=subprocess.DEVNULL, env=env)
        try:
            wait_for_port(port, process)
            cpu_before = process_cpu_seconds(process.pid)
            result: multiprocessing.Queue = multiprocessing.Queue()
            client(port, bodies, result)
            elapsed = result.get()
            cpu = process_cpu_seconds(process.pid) - cpu_before
        finally:
            process.terminate()
            process.wait(timeout=60)
        alerts.seek(0)
        return elapsed, cpu, sum(1 for _ in alerts)


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    bodies = batches(total)
    loaded = load_rules_files([RULES])
    rulesets = rulesets_for(loaded, matching="all")
    alerts: Counter[str] = Counter()

    def accept(events: list[JsonEvent]) -> None:
        pass

    def evaluate(events: list[JsonEvent]) -> None:
        for event in events:
            for rule in rulesets.evaluate(event, "k8s_audit"):
                alerts[rule.name] += 1

    enabled = sum(1 for rule in loaded.rules if rule.enabled and rule.source == "k8s_audit")
    print(f"{total} audit events in {len(bodies)} EventLists of {BATCH}, {enabled} k8saudit rules")
    with open("/proc/loadavg") as loadavg:
        load = loadavg.read().split()[0]
    print(f"load average before: {load} on {multiprocessing.cpu_count()} cores")
    accepted, accepted_cpu = measure(accept, bodies)
    evaluated, evaluated_cpu = measure(evaluate, bodies)
    end_to_end, end_to_end_cpu, lines = measure_falconet_run(bodies)
    # Wall-clock rates suffer from other load on the machine; the server's CPU time does less.
    for label, wall, cpu in (
        ("accepted only", accepted, accepted_cpu),
        ("accepted and evaluated", evaluated, evaluated_cpu),
        ("falconet run end to end", end_to_end, end_to_end_cpu),
    ):
        print(
            f"{label:24} {total / wall:9,.0f} events/s wall ({wall:.2f} s), "
            f"{total / cpu:9,.0f} events per server CPU-second"
        )
    wall_ratio, cpu_ratio = evaluated / accepted, evaluated_cpu / accepted_cpu
    print(f"evaluated/accepted-only: {wall_ratio:.2f} wall, {cpu_ratio:.2f} CPU")
    print(f"alerts: {sum(alerts.values())} ({len(alerts)} rules), e.g. {alerts.most_common(3)}")
    print(f"falconet run wrote {lines} alert lines (expected {sum(alerts.values())})")


if __name__ == "__main__":
    main()
