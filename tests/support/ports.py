"""Loopback ports for servers the tests start as other processes."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on right now. The server binds it later, so another socket can
    take it in between: callers that start a server retry with a new port when it is taken."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
