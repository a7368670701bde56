"""Evaluation throughput of compiled conditions on synthetic events, side by side with the same
loop calling an empty condition (`lambda e: False`), which is the floor of the loop's own cost.

Events come from engine/testing.py's synthetic source with a busy host's shape: mostly
open/read/write-like events, process names and paths drawn from realistic pools, some fields
missing. Conditions are typical of upstream rules: event-type gates, `in` lists of 60 items,
startswith/contains/pmatch on paths, a regex, a CIDR check, negated macros-like exceptions.
For each condition, 5 rounds over 200,000 events; the medians and the ratio
condition/empty (1.0 = free) are printed.

    PYTHONPATH=$PWD /work/main/.venv/bin/python bench/bench_condition.py
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.condition.compiler import compile_condition  # noqa: E402
from engine.condition.parser import parse  # noqa: E402
from engine.testing import make_event, synthetic_catalog  # noqa: E402

EVENTS = 200_000
ROUNDS = 5
SHELLS = ["bash", "sh", "zsh", "dash", "ksh", "fish", "csh", "tcsh"]
PROCS = ["nginx", "java", "python3", "node", "postgres", "sshd", "containerd", "kubelet", "cat"]
PATHS = ["/etc/passwd", "/etc/shadow", "/var/log/syslog", "/tmp/x.sock", "/usr/lib/libc.so.6"]
PATHS += ["/proc/self/status", "/home/user/.bashrc", "/opt/app/data/file.db", "/dev/null"]
TYPES = ["open", "openat", "read", "write", "close", "execve", "connect", "accept", "mmap"]
BINARIES = ", ".join([*SHELLS, *PROCS, *(f"tool{i}" for i in range(43))])  # 60 names

CONDITIONS = {
    "evt.type = open": "evt.type = open",
    "exec of shell": "evt.type = execve and test.str in (bash, sh, zsh, dash, ksh)",
    "sensitive file open": (
        "evt.type in (open, openat) and test.path startswith /etc/ "
        "and test.path in (/etc/shadow, /etc/sudoers, /etc/pam.conf) "
        f"and not test.str in ({BINARIES})"
    ),
    "write below etc (pmatch)": (
        "evt.type in (open, openat, write) and test.path pmatch (/etc, /usr/lib, /boot) "
        "and not test.str startswith kube and not test.anc in (containerd, systemd)"
    ),
    "outbound connect": (
        "evt.type = connect and not test.net in (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16) "
        "and test.port in (22, 23, 3389)"
    ),
    "macro-style, 5 reads of 1 field": (
        "evt.type in (execve, open) and not (test.str in (sshd, containerd) "
        "or test.str startswith kube or test.str endswith d or test.str contains ython "
        "or test.str = cat)"
    ),
    "regex + contains": (
        "evt.type = execve and test.str2 contains \"-e \" and test.str2 regex '.*(nc|ncat) .*'"
    ),
}


def synthetic_events(count: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    events = []
    for _ in range(count):
        fields: dict[str, Any] = {
            "evt_type": rng.choice(TYPES),
            "test_str": rng.choice(SHELLS + PROCS),
            "test_path": rng.choice(PATHS),
            "test_anc": [rng.choice(PROCS), "systemd"],
            "test_port": rng.choice([22, 80, 443, 5432, 8080]),
            "test_net": f"{rng.choice([10, 52, 192])}.{rng.randint(0, 255)}.0.1",
        }
        if rng.random() < 0.7:
            fields["test_str2"] = rng.choice(["-c ls", "-e /bin/sh", "nc -e sh 1.2.3.4", "run"])
        events.append(make_event(**fields))
    return events


def events_per_second(evaluate: Callable[[Any], bool], events: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    for event in events:
        evaluate(event)
    return len(events) / (time.perf_counter() - start)


def main() -> None:
    catalog = synthetic_catalog()
    events = synthetic_events(EVENTS)

    def empty(event: Any) -> bool:
        return False

    print(f"{EVENTS:,} synthetic events x {ROUNDS} rounds, one core, medians")
    print(f"{'condition':<32} {'events/s':>12} {'empty loop':>12} {'ratio':>7}  matches")
    for label, text in CONDITIONS.items():
        compiled = compile_condition(parse(text), catalog)
        rates, floors = [], []
        for _ in range(ROUNDS):
            floors.append(events_per_second(empty, events))
            rates.append(events_per_second(compiled.evaluate, events))
        rate, floor = statistics.median(rates), statistics.median(floors)
        matches = sum(1 for e in events if compiled.evaluate(e))
        print(f"{label:<32} {rate:>12,.0f} {floor:>12,.0f} {rate / floor:>7.2f}  {matches:,}")


if __name__ == "__main__":
    main()
