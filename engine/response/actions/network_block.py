"""`network:block`: drop traffic to and from an address with nftables, for a TTL.

Addresses are normalised and checked first (engine.response.protected_addresses): loopback,
link-local, multicast, broadcast, unspecified, the host's own addresses, gateways and DNS
servers are refused unless the rule lists them under `dangerously_allow`.

Addresses go into timeout sets of a table falconet owns (`inet falconet`), so the kernel itself
removes an element when its TTL expires; the chains drop traffic whose source or destination is
in a set. On shutdown, the elements this engine added are deleted when `remove_on_shutdown`.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Mapping
from typing import Any

from engine.response.actions.base import Action, Param, register_action
from engine.response.errors import ActionError, ResponseRulesError
from engine.response.protected_addresses import (
    check_blockable,
    host_addresses,
    normalise,
    parse_allowed,
)
from engine.response.templating import check_template

log = logging.getLogger(__name__)

_TABLE = """
table inet {table} {{
  set blocked4 {{ type ipv4_addr; flags timeout; }}
  set blocked6 {{ type ipv6_addr; flags timeout; }}
  chain input {{
    type filter hook input priority filter - 10; policy accept;
    ip saddr @blocked4 drop
    ip6 saddr @blocked6 drop
  }}
  chain forward {{
    type filter hook forward priority filter - 10; policy accept;
    ip saddr @blocked4 drop
    ip daddr @blocked4 drop
    ip6 saddr @blocked6 drop
    ip6 daddr @blocked6 drop
  }}
  chain output {{
    type filter hook output priority filter - 10; policy accept;
    ip daddr @blocked4 drop
    ip6 daddr @blocked6 drop
  }}
}}
"""


def run_nft(script: str, netns: str | None = None) -> str:
    """Run an nft script (stdin); ActionError with nft's message on failure."""
    command = ["nft", "-f", "-"]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    try:
        done = subprocess.run(command, input=script, capture_output=True, text=True, timeout=10)
    except FileNotFoundError as error:
        raise ActionError("nft is not installed", "install the nftables package") from error
    if done.returncode != 0:
        raise ActionError(f"nft failed: {done.stderr.strip()}")
    return done.stdout


@register_action
class BlockAddress(Action):
    name = "network:block"
    summary = "nftables drop of traffic to/from fd.rip (or given addresses) for a TTL."
    params = (
        Param("addresses", "list", "addresses to block", ["${fd.rip}"]),
        Param("ttl", "integer", "seconds before the kernel removes the block", 3600),
        Param("table", "string", "nftables table (family inet) owned by falconet", "falconet"),
        Param("remove_on_shutdown", "boolean", "delete the blocks when falconet stops", False),
        Param("netns", "string", "named network namespace to apply the rule in", None),
        Param(
            "dangerously_allow",
            "list",
            "addresses or networks (written in the rule, never from the alert) that may be "
            "blocked although protected: loopback, link-local, the host's own, gateways, DNS",
            [],
        ),
    )

    @classmethod
    def check_parameters(cls, given: Mapping[str, Any]) -> None:
        allowed = given.get("dangerously_allow") or []
        if not isinstance(allowed, list) or any("$" in str(item) for item in allowed):
            raise ResponseRulesError(
                "network:block: dangerously_allow is a list of literal addresses",
                "event data never decides what may be blocked",
            )
        check_template(dict(given))

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: set[tuple[str | None, str]] = set()
        self._added: list[tuple[str | None, str, str, str]] = []  # netns, table, set, address

    def _ensure_table(self, netns: str | None, table: str) -> None:
        if (netns, table) in self._tables:
            return
        try:
            run_nft(f"list table inet {table}", netns)
        except ActionError:
            run_nft(_TABLE.format(table=table), netns)
        self._tables.add((netns, table))

    def run(self, params: dict[str, Any], alert: Mapping[str, Any]) -> dict[str, Any]:
        raw = params["addresses"]
        values = raw if isinstance(raw, list) else [raw]
        addresses = list(dict.fromkeys(normalise(v) for v in values if v is not None))
        if not addresses:
            raise ActionError("no address to block", "add %fd.rip to the rule's output")
        ttl = int(params["ttl"])
        netns, table = params["netns"], str(params["table"])
        allowed = parse_allowed(params["dangerously_allow"] or [])
        protected = host_addresses(netns)
        for address in addresses:
            check_blockable(address, protected, allowed)
        lines = []
        for address in addresses:
            set_name = "blocked4" if address.version == 4 else "blocked6"
            lines.append(f"add element inet {table} {set_name} {{ {address} timeout {ttl}s }}")
        with self._lock:
            self._ensure_table(netns, table)
            run_nft("\n".join(lines) + "\n", netns)
            if params["remove_on_shutdown"]:
                for address in addresses:
                    set_name = "blocked4" if address.version == 4 else "blocked6"
                    self._added.append((netns, table, set_name, str(address)))
        return {
            "table": f"inet {table}",
            "blocked": [str(a) for a in addresses],
            "ttl": ttl,
            **({"netns": netns} if netns else {}),
        }

    def close(self) -> None:
        with self._lock:
            added, self._added = self._added, []
        for netns, table, set_name, address in added:
            try:
                run_nft(f"delete element inet {table} {set_name} {{ {address} }}\n", netns)
            except ActionError as error:  # already expired: nothing to remove
                log.debug("unblock %s: %s", address, error)
