"""Addresses a `network:block` must never block unless a rule says so explicitly: what would
cut the host off its own network or let event data turn the response against the host.

An address from an alert is normalised first (an IPv4-mapped or IPv4-compatible IPv6 address
is the IPv4 address it carries; a scope id is dropped), then refused when it is loopback,
link-local (169.254.0.0/16, including the cloud metadata address 169.254.169.254, and
fe80::/10), multicast, broadcast (255.255.255.255 and the broadcast address of every local
IPv4 network), unspecified, reserved, or one of the host's own addresses, its default gateways
or its DNS servers (in the network namespace the block applies to).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable
from pathlib import Path

from engine.response.errors import ActionError, ActionRefused

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
BROADCAST = ipaddress.IPv4Address("255.255.255.255")
THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")


def normalise(value: object) -> Address:
    """The address a value names, IPv4 when an IPv6 form carries one; ActionError otherwise."""
    text = str(value).strip()
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        raise ActionError(
            f"no usable address in the alert ({value!r})", "add %fd.rip to the rule's output"
        ) from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        # ::a.b.c.d (IPv4-compatible, deprecated) still reaches a.b.c.d on some stacks.
        packed = address.packed
        if packed[:12] == bytes(12) and int(address) > 1:
            return ipaddress.IPv4Address(packed[12:])
    return address


def parse_allowed(values: Iterable[object]) -> list[Network]:
    """The networks a rule explicitly allows (`dangerously_allow`); ActionError when bad."""
    allowed = []
    for value in values:
        try:
            network = ipaddress.ip_network(str(value).strip(), strict=False)
        except ValueError:
            raise ActionError(
                f"dangerously_allow: {value!r} is not an address or network"
            ) from None
        allowed.append(network)
    return allowed


def _category(address: Address) -> str | None:
    if address.is_unspecified or address in THIS_NETWORK:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (cloud metadata lives at 169.254.169.254)"
    if address.is_multicast:
        return "multicast"
    if address == BROADCAST:
        return "broadcast"
    if address.is_reserved:
        return "reserved"
    return None


def _ip_json(netns: str | None, *args: str) -> list[dict]:
    command = ["ip", *(["-n", netns] if netns else []), "-j", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        raise ActionError(
            "cannot list the host's addresses and routes: `ip` is not installed",
            "install iproute2 (network:block refuses to act blind)",
        ) from None
    if done.returncode != 0:
        raise ActionError(f"`{' '.join(command)}` failed: {done.stderr.strip()}")
    try:
        return json.loads(done.stdout or "[]")
    except json.JSONDecodeError:
        raise ActionError(f"`{' '.join(command)}` printed no JSON") from None


def _resolv_conf_paths(netns: str | None) -> list[Path]:
    if netns:  # what `ip netns exec` bind-mounts over /etc/resolv.conf in that namespace
        own = Path("/etc/netns") / netns / "resolv.conf"
        if own.exists():
            return [own]
    return [Path("/etc/resolv.conf"), Path("/run/systemd/resolve/resolv.conf")]


def dns_servers(netns: str | None) -> set[Address]:
    servers: set[Address] = set()
    for path in _resolv_conf_paths(netns):
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split()
            if len(words) >= 2 and words[0] == "nameserver":
                try:
                    servers.add(normalise(words[1]))
                except ActionError:
                    continue
    return servers


def _broadcasts(info: dict) -> list[Address]:
    """The broadcast address `ip` lists, and the one of the network (IPv4, prefix < 31)."""
    found = [normalise(info["broadcast"])] if info.get("broadcast") else []
    if info.get("family") == "inet" and info.get("local") and info.get("prefixlen", 32) < 31:
        network = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").network
        found.append(network.broadcast_address)
    return found


def host_addresses(netns: str | None) -> dict[Address, str]:
    """The host's own addresses, local broadcast addresses, default gateways and DNS servers
    (in `netns`), each with why it is protected."""
    protected: dict[Address, str] = {}
    for link in _ip_json(netns, "addr", "show"):
        for info in link.get("addr_info", []):
            if info.get("local"):
                protected.setdefault(normalise(info["local"]), "one of the host's own addresses")
            for broadcast in _broadcasts(info):
                protected.setdefault(broadcast, "a local broadcast address")
    for family in ("-4", "-6"):
        for route in _ip_json(netns, family, "route", "show", "default"):
            if route.get("gateway"):
                protected.setdefault(normalise(route["gateway"]), "a default gateway")
    for server in dns_servers(netns):
        protected.setdefault(server, "a DNS server of the host")
    return protected


def check_blockable(
    address: Address, protected: dict[Address, str], allowed: list[Network]
) -> None:
    """ActionRefused unless `address` may be blocked (or a rule's dangerously_allow covers it)."""
    why = _category(address) or protected.get(address)
    if why is None:
        return
    if any(address.version == net.version and address in net for net in allowed):
        return
    raise ActionRefused(
        f"refusing to block {address}: {why}",
        "if this is really intended, list it under the action's dangerously_allow",
    )
