"""The web UI's figures, SQLite and PostgreSQL side by side in one run:

- ingest: a client process POSTs Falco JSON alerts (batches of BATCH, bearer token) to
  /ingest of an in-process UI until all are stored. Goal: >= 5,000 alerts/s into each store.
- fill: ALERTS alerts (default 1,000,000, spread over 30 days, 50 rules, 200 hosts) inserted
  through the store's batch insert (the ingest writer's path).
- query: the alerts page's query (newest 100, time range + one filter) over the filled store,
  median of REPEAT runs per filter. Goal: <= 200 ms with a filter.
- first page load from a warm server: the page's HTML + app.js + app.css + its two API calls
  (alerts, stats for the last 24 h), as a browser's first visit makes them. Goal: <= 300 ms.

CPU seconds are printed beside wall time: the bench process (UI server, store writer), the
client process, and PostgreSQL's processes (read from /proc) for the PostgreSQL store.
PostgreSQL is started like the tests start it (tests/support/postgres.py: initdb into a temp
dir, loopback port, fsync off: a scratch server).

Run: .venv/bin/python bench/bench_ui.py [--alerts 1000000] [--ingest 50000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.postgres import missing_reason, postgres_server  # noqa: E402
from ui.alerts import to_row  # noqa: E402
from ui.app import UiOptions  # noqa: E402
from ui.auth import Credentials  # noqa: E402
from ui.server import UiServer, build_ui  # noqa: E402
from ui.store import AlertFilter, AlertStore, Retention  # noqa: E402

BATCH = 500
FILL_BATCH = 10_000
REPEAT = 15
TOKEN = "bench-token"
NS = 1_000_000_000
RULES = [f"Bench rule {i:02d}" for i in range(50)]
HOSTS = [f"node-{i:03d}" for i in range(200)]
PRIORITIES = ["Critical", "Error", "Warning", "Warning", "Notice", "Notice", "Informational"]


def make_alert(index: int, time_ns: int, rng: random.Random) -> dict:
    rule = RULES[min(int(rng.expovariate(0.15)), len(RULES) - 1)]  # a few rules dominate
    seconds, nanos = divmod(time_ns, NS)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"
    priority = rng.choice(PRIORITIES)
    return {
        "hostname": rng.choice(HOSTS),
        "priority": priority,
        "rule": rule,
        "source": "syscall",
        "output": f"{priority} {rule} (user=root proc.name=bash proc.pid={index} "
        f"container.id={index % 9973:012x} fd.name=/etc/shadow cmdline=cat /etc/shadow)",
        "output_fields": {
            "proc.name": "bash",
            "proc.pid": index,
            "user.name": "root",
            "container.id": f"{index % 9973:012x}",
            "fd.name": "/etc/shadow",
        },
        "tags": ["container", "filesystem", f"T{1000 + index % 50}"],
        "time": stamp,
    }


def cpu_of(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / ticks


def postgres_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def client(port: int, bodies: list[bytes], result: multiprocessing.Queue) -> None:
    started_cpu = time.process_time()
    for body in bodies:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request(
            "POST",
            "/ingest",
            body,
            {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        answer = connection.getresponse()
        answer.read()
        if answer.status != 202:
            raise SystemExit(f"ingest answered {answer.status}")
        connection.close()
    result.put(time.process_time() - started_cpu)


def bench_ingest(store_url: str, total: int, is_pg: bool) -> dict:
    rng = random.Random(1)
    now = time.time_ns()
    alerts = [make_alert(i, now - rng.randrange(86400 * NS), rng) for i in range(total)]
    bodies = [json.dumps(alerts[i : i + BATCH]).encode() for i in range(0, total, BATCH)]
    ui = build_ui(
        store_url,
        options=UiOptions(ingest_auth=Credentials((TOKEN,))),
        rules_files=[],
        retention=Retention(None, None),
        queue_size=max(50_000, BATCH * 4),
    )
    server = UiServer(ui.app, "127.0.0.1", 0).start()
    port = int(server.url.rsplit(":", 1)[1])
    results: multiprocessing.Queue = multiprocessing.Queue()
    pg_before = cpu_of(postgres_pids()) if is_pg else 0.0
    cpu_before = time.process_time()
    started = time.perf_counter()
    process = multiprocessing.Process(target=client, args=(port, bodies, results))
    process.start()
    client_cpu = results.get()
    process.join()
    while ui.ingest.counters.stored < total:
        time.sleep(0.005)
    wall = time.perf_counter() - started
    figures = {
        "alerts": total,
        "wall_s": wall,
        "rate": total / wall,
        "server_cpu_s": time.process_time() - cpu_before,
        "client_cpu_s": client_cpu,
        "postgres_cpu_s": cpu_of(postgres_pids()) - pg_before if is_pg else None,
        "dropped": ui.ingest.counters.dropped,
    }
    server.stop()
    ui.close()
    return figures


def fill(store: AlertStore, total: int) -> dict:
    rng = random.Random(2)
    now = time.time_ns()
    span = 30 * 86400 * NS
    cpu_before = time.process_time()
    started = time.perf_counter()
    for start in range(0, total, FILL_BATCH):
        count = min(FILL_BATCH, total - start)
        rows = [
            to_row(make_alert(i, now - rng.randrange(span), rng), now)
            for i in range(start, start + count)
        ]
        store.insert(rows, received_ns=now)
    wall = time.perf_counter() - started
    return {
        "alerts": total,
        "wall_s": wall,
        "rate": total / wall,
        "cpu_s": time.process_time() - cpu_before,
    }


def timed(action, repeat: int = REPEAT) -> tuple[float, float]:
    """Median wall ms and median CPU ms of `repeat` runs (after one warm-up run)."""
    action()
    walls, cpus = [], []
    for _ in range(repeat):
        cpu = time.process_time()
        started = time.perf_counter()
        action()
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


QUERIES = {
    "24h, rule": {"range": "24h", "rule": RULES[7]},
    "7d, host": {"range": "7d", "hostname": HOSTS[42]},
    "30d, priority>=Error": {"range": "30d", "priority": "Error"},
    "all, tag": {"range": "all", "tag": "T1007"},
    "24h, rare rule": {"range": "24h", "rule": RULES[-1]},
    "24h, free text": {"range": "24h", "text": "proc.pid=4242 "},
}


def bench_queries(store: AlertStore) -> dict:
    found = {}
    for name, params in QUERIES.items():
        where = AlertFilter.from_query(params)
        found[name] = timed(lambda w=where: store.alerts(w))
    found["stats 24h"] = timed(lambda: store.stats_for(AlertFilter.from_query({"range": "24h"})))
    return found


def bench_page(store_url: str) -> tuple[float, float]:
    ui = build_ui(store_url, rules_files=[], retention=Retention(None, None))
    server = UiServer(ui.app, "127.0.0.1", 0).start()
    port = int(server.url.rsplit(":", 1)[1])
    paths = [
        "/ui/alerts",
        "/ui/static/app.js",
        "/ui/static/app.css",
        "/ui/api/alerts?range=24h",
        "/ui/api/stats?range=24h",
    ]

    def load() -> None:
        for path in paths:  # a browser runs the two API calls in parallel: this is sequential
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("GET", path)
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200, (path, answer.status)
            connection.close()

    figures = timed(load)
    server.stop()
    ui.close()
    return figures


def run_store(name: str, url: str, args: argparse.Namespace, is_pg: bool) -> None:
    print(f"== {name}")
    ingest = bench_ingest(url, args.ingest, is_pg)
    pg = f", postgres CPU {ingest['postgres_cpu_s']:.1f} s" if is_pg else ""
    print(
        f"ingest over HTTP: {ingest['alerts']} alerts in {ingest['wall_s']:.2f} s = "
        f"{ingest['rate']:,.0f} alerts/s (goal >= 5,000: {ingest['rate'] / 5000:.1f}x), "
        f"{ingest['alerts'] / ingest['server_cpu_s']:,.0f} per UI CPU-second; "
        f"CPU: UI {ingest['server_cpu_s']:.1f} s, client {ingest['client_cpu_s']:.1f} s{pg}; "
        f"dropped {ingest['dropped']}"
    )
    store = AlertStore(url, Retention(None, None))
    filled = fill(store, args.alerts)
    # The steady state of a running UI: its writer refreshes SQLite's statistics every minute;
    # PostgreSQL's autovacuum analyzes (and sets the visibility map) after such a load.
    store.analyze()
    if is_pg:
        with store.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.exec_driver_sql("VACUUM ANALYZE")
    print(
        f"fill: {filled['alerts']:,} alerts in {filled['wall_s']:.1f} s = "
        f"{filled['rate']:,.0f} alerts/s (CPU {filled['cpu_s']:.1f} s)"
    )
    for query, (wall, cpu) in bench_queries(store).items():
        goal = f" (goal <= 200 ms: {200 / wall:.1f}x headroom)" if "stats" not in query else ""
        print(
            f"query over {args.alerts:,} alerts, {query}: {wall:.1f} ms wall, "
            f"{cpu:.1f} ms CPU{goal}"
        )
    store.close()
    wall, cpu = bench_page(url)
    print(
        f"first page load, warm server (HTML+JS+CSS+2 API calls): {wall:.1f} ms wall, "
        f"{cpu:.1f} ms CPU (goal <= 300 ms: {300 / wall:.1f}x headroom)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--ingest", type=int, default=50_000)
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="falconet-bench-ui-") as scratch:
        if args.only != "postgresql":
            run_store("SQLite", str(Path(scratch) / "ingest.db"), args, False)
        if args.only == "sqlite":
            return
        reason = missing_reason()
        if reason:
            print(f"== PostgreSQL: skipped ({reason})")
            return
        with postgres_server() as server:
            run_store("PostgreSQL", server.new_database(), args, True)


if __name__ == "__main__":
    main()
