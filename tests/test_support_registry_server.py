"""The test registry itself: a port taken between free_port() and the registry's bind."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import requests

from tests.support.registry_server import RegistryServer


def test_a_taken_port_is_replaced_by_a_free_one(
    registry_factory: Callable[..., RegistryServer], tmp_path: Path
) -> None:
    registry_factory  # noqa: B018 - only for its skip when docker-registry is missing
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))  # bound, not listening: a connect is refused
        taken = squatter.getsockname()[1]
        server = RegistryServer(tmp_path / "registry", port=taken).start()
        try:
            assert server.port != taken
            assert requests.get(f"{server.url}/v2/", timeout=5).status_code == 200
        finally:
            server.stop()
