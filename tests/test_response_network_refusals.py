"""network:block refuses what would cut the host off, in a real network namespace with a real
default gateway, a real DNS server setting (/etc/netns/NAME/resolv.conf, what `ip netns exec`
uses) and real nftables: nothing is added for a refused address, and a rule's
dangerously_allow is the only way past a refusal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_response_network import (
    B_ADDRESS,
    alert,
    engine_for,
    ip,
    namespaces,  # noqa: F401  (fixture)
    nft_ruleset,
    pytestmark,  # noqa: F401  (same skip reasons)
    reachable,
)

DNS_SERVER = "198.18.99.53"


@pytest.fixture
def gateway_and_dns(namespaces: tuple[str, str]) -> Iterator[str]:  # noqa: F811
    a, _ = namespaces
    ip("-n", a, "route", "add", "default", "via", B_ADDRESS)
    resolv = Path("/etc/netns") / a / "resolv.conf"
    resolv.parent.mkdir(parents=True, exist_ok=True)
    resolv.write_text(f"nameserver {DNS_SERVER}\n")
    try:
        yield a
    finally:
        resolv.unlink()
        resolv.parent.rmdir()


@pytest.mark.parametrize(
    ("address", "why"),
    [
        (B_ADDRESS, "default gateway"),
        (f"::ffff:{B_ADDRESS}", "default gateway"),  # IPv4-mapped IPv6 is the same host
        ("198.18.77.1", "own addresses"),
        ("198.18.77.3", "broadcast"),
        (DNS_SERVER, "DNS server"),
        ("169.254.169.254", "link-local"),
        ("fe80::1%fnveth-a", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("255.255.255.255", "broadcast"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
    ],
)
def test_protected_addresses_are_refused(gateway_and_dns: str, address: str, why: str) -> None:
    engine = engine_for(gateway_and_dns, addresses=[address])
    try:
        (outcome,) = engine.handle(alert(B_ADDRESS))
    finally:
        engine.close()
    assert outcome.status == "refused", outcome.error
    assert why in (outcome.error or "") and "dangerously_allow" in (outcome.error or "")
    assert "elements" not in nft_ruleset(gateway_and_dns)


def test_dangerously_allow_lets_a_rule_block_its_gateway(gateway_and_dns: str) -> None:
    a = gateway_and_dns
    assert reachable(a, B_ADDRESS)
    engine = engine_for(
        a,
        addresses=[f"::ffff:{B_ADDRESS}"],
        dangerously_allow=[B_ADDRESS],
        remove_on_shutdown=True,
    )
    try:
        (outcome,) = engine.handle(alert(B_ADDRESS))
        assert outcome.status == "succeeded", outcome.error
        assert outcome.changed["blocked"] == [B_ADDRESS]  # normalised to IPv4
        assert not reachable(a, B_ADDRESS)
    finally:
        engine.close()
    assert reachable(a, B_ADDRESS)


def test_event_data_cannot_widen_dangerously_allow() -> None:
    from engine.response.errors import ResponseRulesError

    with pytest.raises(ResponseRulesError, match="literal addresses"):
        engine_for("none", dangerously_allow=["${fd.rip}"])
