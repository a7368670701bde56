"""The probe is attached to the per-syscall tracepoints of exactly the selected syscalls, and
follows a ruleset change in place (root + BPF only)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_ebpf import skip_reason

pytestmark = pytest.mark.usefixtures("live_ebpf_shared")

WAIT_S = 2.0


@pytest.fixture(scope="module")
def source() -> Iterator[object]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    from bpf.capture import LiveSource
    from bpf.options import BaseSyscalls

    # custom_set replaces the state set: the selection is exactly {openat}
    with LiveSource({"openat"}, base=BaseSyscalls(("openat",)), bootstrap=False) as live:
        yield live


def _child_events(source, script: str, until: str) -> list:
    """Runs `script` in a child Python and returns its events, polling until one of type
    `until` arrives (or WAIT_S passes)."""
    subprocess.run([sys.executable, "-c", script], check=True)
    events: list = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        events += source.poll(50)
        if any(e.info.name == until and _mine(e, script) for e in events):
            break
    return [e for e in events if _mine(e, script)]


def _mine(event, script: str) -> bool:
    params = event.params
    return any(isinstance(v, str) and v and v in script for v in params.values())


def test_only_the_selected_syscalls_are_attached(source) -> None:
    placement = source.placement()
    assert placement.per_syscall == {"openat"}
    assert not placement.raw


def test_a_syscall_not_attached_is_not_seen_even_if_the_map_allows_it(source, tmp_path) -> None:
    # The in-kernel map says yes to mkdir; its tracepoint is not attached, so nothing runs.
    source._write_interesting(source.selection.syscalls | {"mkdir"})
    try:
        made, opened = tmp_path / "made", tmp_path / "opened"
        events = _child_events(
            source, f"import os; os.mkdir({str(made)!r}); open({str(opened)!r}, 'w')", "openat"
        )
    finally:
        source._write_interesting(source.selection.syscalls)
    names = {e.info.name for e in events}
    assert "openat" in names
    assert "mkdir" not in names


def test_a_ruleset_change_attaches_a_newly_selected_syscall_without_reload(
    source, tmp_path: Path
) -> None:
    programs = {name: fn.fd for name, fn in source._bpf.funcs.items()}
    source.update_interesting({"openat", "mkdir"})
    try:
        assert source.placement().per_syscall == {"openat", "mkdir"}
        made = tmp_path / "made-after-swap"
        events = _child_events(source, f"import os; os.mkdir({str(made)!r})", "mkdir")
        assert [e.params["path"] for e in events if e.info.name == "mkdir"] == [str(made)]
        assert {name: fn.fd for name, fn in source._bpf.funcs.items()} == programs
    finally:
        source.update_interesting({"openat"})
    assert source.placement().per_syscall == {"openat"}
    again = tmp_path / "made-after-detach"
    events = _child_events(
        source, f"import os; os.mkdir({str(again)!r}); open({str(again)!r} + '.f', 'w')", "openat"
    )
    assert "mkdir" not in {e.info.name for e in events}


CONNECT = """
import socket
server = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(server.getsockname())
print(*client.getsockname(), *server.getsockname())
"""


def test_tcp_connect_carries_its_local_address(source) -> None:
    from engine.sources.syscall.params import AF_INET

    source.update_interesting({"openat", "connect"})
    try:
        out = subprocess.run(
            [sys.executable, "-c", CONNECT], capture_output=True, text=True, check=True
        )
        local_ip, local_port, server_ip, server_port = out.stdout.split()
        connects: list = []
        deadline = time.monotonic() + WAIT_S
        while not connects and time.monotonic() < deadline:
            connects = [
                e
                for e in source.poll(50)
                # The probe sees every process: other connects (unix sockets, failures) carry
                # no inet tuple.
                if e.info.name == "connect"
                and e.params["tuple"] is not None
                and getattr(e.params["tuple"], "dest_port", None) == int(server_port)
            ]
    finally:
        source.update_interesting({"openat"})
    assert len(connects) == 1
    sock = connects[0].params["tuple"]
    assert sock.family == AF_INET
    assert (str(sock.source), sock.source_port) == (local_ip, int(local_port))
    assert (str(sock.dest), sock.dest_port) == (server_ip, int(server_port))
