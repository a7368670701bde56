"""Response figures, measured in one run:

- alert-to-action latency for process:terminate (a real `sleep` process per alert, terminated
  with SIGTERM) and http:webhook (POST to a local HTTP server): from `submit(alert)` on the
  detection path to the outcome event, median and p99 over 1,000 alerts each;
- alert handling throughput on the detection path (build Falco's JSON alert, then hand it to
  the response engine) with 20 response rules loaded vs without, side by side; matching actions
  run in dry-run mode on the worker pool so that nothing is changed.

Run (as root for process:terminate on any process): .venv/bin/python bench/bench_response.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.output import Priority, json_alert  # noqa: E402
from engine.response.actions.process_terminate import start_time_ns  # noqa: E402
from engine.response.engine import ResponseEngine  # noqa: E402
from engine.response.rules import parse_rules  # noqa: E402
from engine.sinks import Alert  # noqa: E402

ALERTS = 1_000
THROUGHPUT_ALERTS = 50_000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Timed:
    """Outcome callback: wakes the measuring loop and notes when the outcome arrived."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.at = 0.0
        self.status = ""

    def __call__(self, outcome: Alert) -> None:
        self.at = time.perf_counter()
        self.status = outcome.document["output_fields"]["response.status"]
        self.event.set()


def latencies(engine: ResponseEngine, timed: Timed, make_alert: Any) -> list[float]:
    values = []
    for index in range(ALERTS):
        alert = make_alert(index)
        timed.event.clear()
        start = time.perf_counter()
        engine.submit(alert)
        if not timed.event.wait(10):
            raise RuntimeError("no outcome within 10 s")
        if timed.status != "succeeded":
            raise RuntimeError(f"action {timed.status}")
        values.append((timed.at - start) * 1000)
    return values


def rules_for(action: str, **parameters: Any) -> Any:
    return parse_rules(
        {
            "rules": [
                {
                    "name": "bench",
                    "match": {},
                    "actions": [{"action": action, "parameters": parameters}],
                }
            ]
        }
    )


def terminate_latency() -> list[float]:
    timed = Timed()
    engine = ResponseEngine(rules_for("process:terminate", grace_period=5), timed)
    children: list[subprocess.Popen[bytes]] = []

    def make_alert(index: int) -> dict[str, Any]:
        child = subprocess.Popen(["sleep", "60"])
        children.append(child)
        fields = {"proc.pid": child.pid, "proc.pid.ts": start_time_ns(child.pid)}
        return {
            "rule": "Bench",
            "priority": "Critical",
            "source": "syscall",
            "output_fields": fields,
        }

    try:
        return latencies(engine, timed, make_alert)
    finally:
        engine.close()
        for child in children:
            child.kill()
            child.wait()


def webhook_latency() -> list[float]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real webhook receiver

        def log_message(self, *args: object) -> None:
            return None

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    timed = Timed()
    engine = ResponseEngine(rules_for("http:webhook", url=url), timed)

    def make_alert(index: int) -> dict[str, Any]:
        return {
            "rule": "Bench",
            "priority": "Critical",
            "source": "syscall",
            "output_fields": {"n": index},
        }

    try:
        return latencies(engine, timed, make_alert)
    finally:
        engine.close()
        server.shutdown()
        server.server_close()


def throughput_rules(prefix: str = "Bench rule") -> Any:
    rules = [
        {
            "name": f"rule {n}",
            "match": {
                "rules": [f"{prefix} {n}:*"],
                "priority": "Warning",
                "output_fields": "fd.rip startswith 10. and proc.name in (curl, wget, nc)",
            },
            "actions": [{"action": "exec:script", "parameters": {"command": ["true"]}}],
        }
        for n in range(20)
    ]
    return parse_rules({"settings": {"dry_run": True}, "rules": rules})


def make_alerts() -> list[Alert]:
    alerts = []
    for n in range(THROUGHPUT_ALERTS):
        document = json_alert(
            time_ns=time.time_ns(),
            priority=Priority.CRITICAL,
            rule=f"Bench rule {n % 40}: outbound connection",  # half have a response rule
            source="syscall",
            output="connection",
            output_fields={"fd.rip": f"10.0.{n % 250}.1", "proc.name": "curl", "proc.pid": n},
            tags=("network",),
            hostname="bench",
        )
        alerts.append(Alert("", document))
    return alerts


def handling_rate(engine: ResponseEngine | None, alerts: list[Alert]) -> float:
    start = time.perf_counter()
    for alert in alerts:
        json_alert(
            time_ns=0,
            priority=Priority.CRITICAL,
            rule=alert.document["rule"],
            source="syscall",
            output="connection",
            output_fields=alert.document["output_fields"],
            tags=("network",),
            hostname="bench",
        )
        if engine is not None:
            engine.submit(alert)
    return len(alerts) / (time.perf_counter() - start)


def main() -> None:
    for name, measure in (
        ("process:terminate", terminate_latency),
        ("http:webhook", webhook_latency),
    ):
        values = measure()
        print(
            f"{name:18} alert-to-action over {len(values)} alerts: "
            f"median {statistics.median(values):.2f} ms, p99 {percentile(values, 0.99):.2f} ms"
        )
    alerts = make_alerts()
    handling_rate(None, alerts[:2000])  # warm-up
    without = handling_rate(None, alerts)
    print(f"alert handling on the detection path without response rules: {without:,.0f} alerts/s")
    for label, prefix in (("none acted upon", "Other rule"), ("half acted upon", "Bench rule")):
        engine = ResponseEngine(throughput_rules(prefix))
        try:
            rate = handling_rate(engine, alerts)
        finally:
            engine.close()
        print(
            f"  with 20 response rules, {label}: {rate:,.0f} alerts/s "
            f"(ratio {rate / without:.2f}; dry-run actions {engine.stats['dry_run']:,}, "
            f"dropped {engine.stats['dropped']:,})"
        )


if __name__ == "__main__":
    main()
