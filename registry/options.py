"""How to talk to registries: transport, TLS, credentials and cache locations.

Core code never guesses where the user's files are: callers (the CLI, feeds/paths.py) pass
directories in. `for_registry` applies per-registry settings such as plain HTTP for one host.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from registry.transfer import DEFAULT_LIMITS, TransferLimits


@dataclass(frozen=True)
class ClientOptions:
    plain_http: bool = False
    # Hosts (host[:port]) reached over plain HTTP even when plain_http is False.
    plain_http_registries: frozenset[str] = frozenset()
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    insecure_skip_tls_verify: bool = False
    # Explicit credentials win over every store.
    username: str | None = None
    password: str | None = None
    # Directory of docker's config.json; None means $DOCKER_CONFIG or ~/.docker.
    docker_config_dir: Path | None = None
    # falcoctl-style OAuth2 client credentials (registry auth oauth), a JSON file.
    oauth_credentials_file: Path | None = None
    # Root of the content-addressed blob cache (blobs/sha256/<hex>); None disables it.
    cache_dir: Path | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    # A Retry-After longer than this is an error rather than a wait.
    retry_after_max: float = 30.0
    # Minimum rate and deadline of every transfer (registry/transfer.py, config `transfer.*`).
    transfer: TransferLimits = DEFAULT_LIMITS
    user_agent: str = "falconet"

    def uses_plain_http(self, registry: str) -> bool:
        return self.plain_http or registry in self.plain_http_registries

    def with_credentials(self, username: str | None, password: str | None) -> ClientOptions:
        return replace(self, username=username, password=password)
