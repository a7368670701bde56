"""network:block with real nftables, inside two network namespaces made by the test and joined
by a veth pair (addresses from 198.18.0.0/15, the benchmarking range, exist only inside them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from engine.response.engine import ResponseEngine
from engine.response.rules import parse_rules
from tests.support.waiting import wait_for

A_ADDRESS, B_ADDRESS = "198.18.77.1", "198.18.77.2"


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces and nftables rules"
    if shutil.which("nft") is None:
        return "needs the nft command (Debian package nftables)"
    if shutil.which("ip") is None:
        return "needs the ip command (Debian package iproute2)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True)
    if probe.returncode != 0:
        return f"`ip netns` unavailable: {probe.stderr.decode().strip()}"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    a, b = f"fnresp-a-{os.getpid()}", f"fnresp-b-{os.getpid()}"
    listener: subprocess.Popen[str] | None = None
    try:
        ip("netns", "add", a)
        ip("netns", "add", b)
        ip("link", "add", "fnveth-a", "netns", a, "type", "veth", "peer", "fnveth-b", "netns", b)
        ip("-n", a, "addr", "add", f"{A_ADDRESS}/30", "dev", "fnveth-a")
        ip("-n", b, "addr", "add", f"{B_ADDRESS}/30", "dev", "fnveth-b")
        for ns, dev in ((a, "fnveth-a"), (b, "fnveth-b")):
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        listener = subprocess.Popen(
            ["ip", "netns", "exec", b, sys.executable, "-c", LISTENER],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        yield a, b
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


LISTENER = (
    "import socket; s = socket.create_server(('0.0.0.0', 7077)); print('ready', flush=True)\n"
    "while True: s.accept()[0].close()"
)
CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], 7077), timeout=1).close()"


def reachable(namespace: str, address: str) -> bool:
    """A TCP connect with a one-second timeout from inside `namespace` (no ping installed)."""
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", CONNECT, address],
        capture_output=True,
    )
    return done.returncode == 0


def engine_for(namespace: str, **parameters: Any) -> ResponseEngine:
    rules = parse_rules(
        {
            "rules": [
                {
                    "name": "block",
                    "match": {"output_fields": "fd.rip startswith 198.18."},
                    "actions": [
                        {
                            "action": "network:block",
                            "parameters": {"netns": namespace, **parameters},
                        }
                    ],
                }
            ]
        }
    )
    return ResponseEngine(rules)


def alert(rip: str) -> dict[str, Any]:
    return {
        "rule": "Outbound connection to C2 server",
        "priority": "Critical",
        "source": "syscall",
        "output_fields": {"fd.rip": rip, "fd.sip": A_ADDRESS},
    }


def nft_ruleset(namespace: str) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, "nft", "list", "ruleset"], capture_output=True, text=True
    )
    return done.stdout


def test_block_drops_traffic_between_veth_ends_and_is_removed_on_shutdown(
    namespaces: tuple[str, str],
) -> None:
    a, _ = namespaces
    assert reachable(a, B_ADDRESS), "the veth pair should pass traffic before any block"
    engine = engine_for(a, remove_on_shutdown=True)
    (outcome,) = engine.handle(alert(B_ADDRESS))
    assert outcome.status == "succeeded", outcome.error
    assert outcome.changed["blocked"] == [B_ADDRESS]
    assert "table inet falconet" in nft_ruleset(a) and B_ADDRESS in nft_ruleset(a)
    assert not reachable(a, B_ADDRESS)
    engine.close()  # remove_on_shutdown
    assert B_ADDRESS not in nft_ruleset(a)
    assert reachable(a, B_ADDRESS)


def test_block_expires_after_its_ttl(namespaces: tuple[str, str]) -> None:
    a, _ = namespaces
    engine = engine_for(a, ttl=1)
    try:
        (outcome,) = engine.handle(alert(B_ADDRESS))
        assert outcome.status == "succeeded", outcome.error
        assert B_ADDRESS in nft_ruleset(a)
        # the kernel removes the set element when its timeout runs out
        wait_for(lambda: B_ADDRESS not in nft_ruleset(a))
        assert reachable(a, B_ADDRESS)
    finally:
        engine.close()


def test_block_refuses_loopback_and_missing_addresses(namespaces: tuple[str, str]) -> None:
    a, _ = namespaces
    engine = engine_for(a, addresses=["${fd.rip}"])
    try:
        missing = engine.handle({**alert(B_ADDRESS), "output_fields": {"fd.rip": "198.18.x"}})
        assert [o.status for o in missing] == ["failed"]
        refused = engine_for(a, addresses=["127.0.0.1"]).handle(alert(B_ADDRESS))
        assert [o.status for o in refused] == ["refused"]
    finally:
        engine.close()
    assert reachable(a, B_ADDRESS)
