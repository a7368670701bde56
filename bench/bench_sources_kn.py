#!/usr/bin/env python3
"""Keycloak and Nomad sources: events/s through each source with its rules, against
`json.loads` of the same events, side by side in one run (wall and CPU seconds).

    python bench/bench_sources_kn.py [--events 100000] [--live]

Per source, the same serialized events (one JSON document per line, as the webhook body, the
API page entries or the event-stream frames carry them) go through:
  json.loads  parsing only: the floor any JSON source pays
  source      json.loads + the source's EventFactory (keycloak: the admin representation parsed
              into Representation; nomad: frames split into plugin-shaped events) + evaluation
              against its rules, alerts rendered as the run loop renders them
  live        (--live) the same events through the real transport from a stand-in server on
              127.0.0.1 (nomad: the event stream; keycloak: the admin API poller), then the
              rules: the stand-in runs in this process, so its CPU is counted too
Rules: keycloak: the plugin's upstream rules file (macros) + falconet's keycloak rules; nomad:
the upstream nomad rules (../shared/upstream-plugins). About 1 event in 10 raises an alert.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
UPSTREAM = ROOT.parent / "shared" / "upstream-plugins"
T0 = 1_717_000_000_000


def keycloak_events(count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for n in range(count):
        if n % 4 == 3:
            events.append(
                {
                    "id": f"a{n}",
                    "time": T0 + n,
                    "realmId": "acme",
                    "authDetails": {
                        "realmId": "master",
                        "clientId": "admin-cli",
                        "userId": "root",
                        "ipAddress": "192.0.2.7",
                    },
                    "resourceType": "USER" if n % 40 == 3 else "CLIENT",
                    "operationType": "CREATE" if n % 40 == 3 else "UPDATE",
                    "resourcePath": f"users/u{n}",
                    "representation": json.dumps({"username": f"user{n}", "enabled": True}),
                }
            )
            continue
        events.append(
            {
                "id": f"e{n}",
                "time": T0 + n,
                "type": "LOGIN_ERROR" if n % 10 == 0 else "LOGIN",
                "realmId": "acme",
                "clientId": "portal",
                "userId": f"u{n % 500}",
                "sessionId": f"s{n}",
                "ipAddress": "203.0.113.9",
                "error": "user_temporarily_disabled" if n % 20 == 0 else "",
                "details": {"auth_method": "openid-connect", "username": f"user{n % 500}"},
            }
        )
    return events


def nomad_frames(count: int) -> list[dict[str, Any]]:
    frames = []
    for n in range(1, count + 1):
        image = (
            "redis:7.2"
            if n % 10 == 0
            else "123456789123.dkr.ecr.eu-central-1.amazonaws.com/subpath/api:1"
        )
        allocation = {
            "ID": f"alloc-{n}",
            "Namespace": "default",
            "Name": f"web.cache[{n}]",
            "JobID": "web",
            "ClientStatus": "running",
            "Resources": {"CPU": 100, "MemoryMB": 128, "DiskMB": 300, "IOPS": 0},
            "TaskStates": {
                "cache": {
                    "State": "running",
                    "Events": [
                        {"Type": "Received", "Details": {}},
                        {"Type": "Driver", "Details": {"image": image}},
                        {"Type": "Started", "Details": {}},
                    ],
                }
            },
        }
        frames.append(
            {
                "Index": n,
                "Events": [
                    {
                        "Topic": "Allocation",
                        "Type": "AllocationUpdated",
                        "Key": f"alloc-{n}",
                        "Namespace": "default",
                        "FilterKeys": ["web"],
                        "Index": n,
                        "Payload": {"Allocation": allocation},
                    }
                ],
            }
        )
    return frames


def ruleset(source: str, files: list[Path]) -> Any:
    from engine.loader import load_rules_files, rulesets_for

    loaded = load_rules_files(files, use_cache=False)
    problems = [e.message for r in loaded.results for e in r.errors]
    if problems:
        raise SystemExit(f"rules do not load: {problems}")
    return rulesets_for(loaded).by_source[source]


def timed(work: Callable[[], int]) -> tuple[int, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    count = work()
    return count, time.perf_counter() - wall, time.process_time() - cpu


def evaluate(rules: Any, events: Iterable[Any], alerts: list[int]) -> int:
    count = 0
    for event in events:
        count += 1
        for rule in rules.evaluate(event):
            alerts[0] += 1
            if rule.output is not None:
                rule.output.render_with_fields(event)
    return count


def through_source(source: str, rules: Any, lines: list[bytes], alerts: list[int]) -> int:
    from engine.sources.formats import EventFactory

    factory = EventFactory(source)

    def events() -> Iterable[Any]:
        for line in lines:
            yield from factory.from_document(json.loads(line))

    return evaluate(rules, events(), alerts)


def live_nomad(rules: Any, frames: list[dict[str, Any]], alerts: list[int]) -> int:
    from engine.sources.nomad_stream import NomadOptions, NomadStream
    from tests.support.nomad_standin import NomadStandIn

    server = NomadStandIn(heartbeat_interval=1.0).start()
    server.publish(*frames)
    stream = NomadStream(NomadOptions(address=server.address))
    stop = threading.Event()
    seen = [0]

    def deliver(events: list[Any]) -> None:
        seen[0] += evaluate(rules, events, alerts)
        if seen[0] >= len(frames):
            stop.set()

    try:
        stream.run(deliver, stop, lambda message, fields: None)
    finally:
        server.stop()
    return seen[0]


def live_keycloak(rules: Any, events: list[dict[str, Any]], alerts: list[int]) -> int:
    from engine.sources.keycloak_transport import KeycloakOptions, KeycloakPoller
    from tests.support.keycloak_standin import KeycloakStandIn

    server = KeycloakStandIn().start()
    server.events = [e for e in events if "resourceType" not in e]
    server.admin_events = [e for e in events if "resourceType" in e]
    poller = KeycloakPoller(
        KeycloakOptions(
            server=server.url,
            realm=server.realm,
            client_id=server.client_id,
            client_secret=server.client_secret,
            page_size=1000,
            start_ms=T0,
        )
    )
    seen = [0]

    def deliver(batch: list[Any]) -> None:
        seen[0] += evaluate(rules, batch, alerts)

    try:
        poller.poll(deliver)
    finally:
        server.stop()
    return seen[0]


def report(name: str, rows: list[tuple[str, int, float, float, int]]) -> None:
    base_wall = rows[0][1] / rows[0][2]
    base_cpu = rows[0][1] / rows[0][3]
    print(f"\n{name}")
    for label, count, wall, cpu, alerts in rows:
        rate, cpu_rate = count / wall, count / cpu
        print(
            f"  {label:11} {count:>9,} events  wall {wall:7.3f} s {rate:>11,.0f}/s "
            f"({rate / base_wall:5.3f} of json.loads)  CPU {cpu:7.3f} s {cpu_rate:>11,.0f}/s "
            f"({cpu_rate / base_cpu:5.3f})  alerts {alerts:,}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--live", action="store_true", help="also through the transports")
    args = parser.parse_args(argv)
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    from engine.sources import keycloak

    kc_rules = ruleset(
        "keycloak",
        [
            Path(keycloak.__file__).with_name("falconet_keycloak_rules.yaml"),
            UPSTREAM / "keycloak" / "keycloak_rules.yaml",
        ],
    )
    nomad_rules = ruleset("nomad", [UPSTREAM / "nomad" / "nomad_rules.yaml"])
    for name, source, rules, documents in (
        ("keycloak", "keycloak", kc_rules, keycloak_events(args.events)),
        ("nomad", "nomad", nomad_rules, nomad_frames(args.events)),
    ):
        lines = [json.dumps(d).encode() for d in documents]
        rows = []
        count, wall, cpu = timed(lambda lines=lines: sum(1 for line in lines if json.loads(line)))
        rows.append(("json.loads", count, wall, cpu, 0))
        alerts = [0]
        count, wall, cpu = timed(
            lambda s=source, r=rules, lines=lines, a=alerts: through_source(s, r, lines, a)
        )
        rows.append(("source", count, wall, cpu, alerts[0]))
        if args.live:
            live = live_keycloak if name == "keycloak" else live_nomad
            alerts = [0]
            count, wall, cpu = timed(lambda r=rules, d=documents, a=alerts, f=live: f(r, d, a))
            rows.append(("live", count, wall, cpu, alerts[0]))
        report(f"{name} ({len(rules)} rules)", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
