"""Stdout alert latency with a stalled HTTP collector beside it, against stdout alone, in the
same run: the cost of a sink that accepts connections and never answers, for the sinks that
are not it. CPU seconds of the process beside wall time for each phase.

    PYTHONPATH=. .venv/bin/python bench/bench_sink_isolation.py [--alerts 6000] [--rate 1000]
        [--repeat 3]

Each phase puts `--alerts` alerts into a fresh OutputQueue at `--rate` alerts/s (the detection
side) and records, for each alert, the time from `put` to the stdout sink's write (its stream
is /dev/null, timed per line). Phase "stdout alone": [stdout]. Phase "stalled http beside":
[stdout, http -> a local stand-in collector that accepts and never answers (deadline 2 s,
retries 2, breaker after 3 failures)]. The phases alternate `--repeat` times; the figures are
the medians of each phase's p50/p99, and the ratio stalled/alone.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.output import Priority
from engine.sinks import HttpSink, OutputQueue, StdoutSink, internal_alert
from tests.support.stalled_server import StalledServer


class TimedNull(io.TextIOBase):
    """/dev/null that notes when each alert line was written (by its sequence number)."""

    def __init__(self, written: dict[int, float]) -> None:
        self.written = written
        self._null = open(os.devnull, "w")  # noqa: SIM115

    def write(self, text: str) -> int:
        now = time.perf_counter()
        for line in text.splitlines():
            marker = line.rfind("seq=")
            if marker >= 0:
                self.written[int(line[marker + 4 :])] = now
        return self._null.write(text)

    def flush(self) -> None:
        self._null.flush()


def phase(alerts: int, rate: float, stalled_url: str | None) -> dict[str, float]:
    written: dict[int, float] = {}
    sinks = [StdoutSink(stream=TimedNull(written))]
    if stalled_url:
        sinks.append(HttpSink(stalled_url, timeout=2.0, retries=2, breaker_failures=3))
    outputs = OutputQueue(sinks, capacity=10_000)
    prepared = [
        internal_alert("Bench", f"bench alert seq={i}", Priority.WARNING, {"seq": i}, "host")
        for i in range(alerts)
    ]
    put_at: list[float] = []
    cpu, wall = time.process_time(), time.perf_counter()
    start = time.perf_counter()
    for i, alert in enumerate(prepared):
        due = start + i / rate
        while (now := time.perf_counter()) < due:
            time.sleep(min(0.001, due - now))
        put_at.append(time.perf_counter())
        outputs.put(alert)
    deadline = time.perf_counter() + 30
    while len(written) < alerts and time.perf_counter() < deadline:
        time.sleep(0.01)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    latencies = sorted((written[i] - put_at[i]) * 1000 for i in range(alerts) if i in written)
    outputs.close(timeout=0.5)  # a stalled sink's leftovers are abandoned, not waited for
    http = outputs.sink_stats().get("http")

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1],
        "written": len(latencies),
        "wall_s": wall,
        "cpu_s": cpu,
        "http_failed": http.failed if http else 0,
        "http_dropped": http.dropped if http else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=6000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = StalledServer().start()
    results: dict[str, list[dict[str, float]]] = {"alone": [], "stalled": []}
    try:
        for _ in range(args.repeat):
            results["alone"].append(phase(args.alerts, args.rate, None))
            results["stalled"].append(phase(args.alerts, args.rate, server.url))
    finally:
        server.stop()
    summary = {
        name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for name, runs in results.items()
    }
    print(
        f"{args.alerts} alerts at {args.rate:g}/s, {args.repeat} alternating repetitions (medians)"
    )
    for name, label in (("alone", "stdout alone"), ("stalled", "stdout + stalled http")):
        s = summary[name]
        print(
            f"{label:24s} p50 {s['p50_ms']:.3f} ms  p99 {s['p99_ms']:.3f} ms  "
            f"max {s['max_ms']:.3f} ms  written {s['written']:.0f}  "
            f"wall {s['wall_s']:.2f} s  cpu {s['cpu_s']:.2f} s  "
            f"http failed {s['http_failed']:.0f} dropped {s['http_dropped']:.0f}"
        )
    alone, stalled = summary["alone"], summary["stalled"]
    print(
        f"ratio stalled/alone: p50 {stalled['p50_ms'] / alone['p50_ms']:.2f}x  "
        f"p99 {stalled['p99_ms'] / alone['p99_ms']:.2f}x  "
        f"cpu {stalled['cpu_s'] / alone['cpu_s']:.2f}x"
    )


if __name__ == "__main__":
    main()
