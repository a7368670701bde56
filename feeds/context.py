"""Everything an artifact operation needs, built once from configuration and flags."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feeds.config import Config, load_config
from feeds.indexes import IndexStore, parse_duration, transfer_limits
from feeds.paths import Paths, default_paths

if TYPE_CHECKING:
    from registry.options import ClientOptions
    from registry.reference import Reference
    from registry.store import ArtifactStore


@dataclass(frozen=True)
class TransportFlags:
    """Command-line transport options; None = not given (configuration decides)."""

    plain_http: bool = False
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    insecure_skip_tls_verify: bool = False


@dataclass
class FeedsContext:
    config: Config
    paths: Paths
    transport: TransportFlags = field(default_factory=TransportFlags)
    _indexes: IndexStore | None = None

    @classmethod
    def load(
        cls,
        config_path: str | None = None,
        flags: dict[str, Any] | None = None,
        transport: TransportFlags | None = None,
    ) -> FeedsContext:
        return cls(load_config(config_path, flags), default_paths(), transport or TransportFlags())

    @property
    def indexes(self) -> IndexStore:
        if self._indexes is None:
            self._indexes = IndexStore(
                self.paths.config_dir,
                Path(self.config["cache.dir"]),
                self.config["indexes"],
                include_defaults=self.config["index.defaults"],
                ttl_seconds=parse_duration(self.config["index.ttl"]),
                limits=transfer_limits(self.config),
            )
        return self._indexes

    @property
    def cache_dir(self) -> Path:
        return Path(self.config["cache.dir"])

    @property
    def state_dir(self) -> Path:
        return Path(self.config["artifact.install.state_dir"])

    def client_options(self, registry: str = "") -> ClientOptions:
        """Transport options for one registry: flags > per-registry config > defaults."""
        from registry.options import ClientOptions

        per = (self.config["registries"] or {}).get(registry) or {}
        docker_config = self.config["credentials.docker_config"]
        options = ClientOptions(
            plain_http=self.transport.plain_http or bool(per.get("plain_http")),
            ca_file=_path(self.transport.ca_file or per.get("ca_file")),
            client_cert=_path(self.transport.client_cert or per.get("client_cert")),
            client_key=_path(self.transport.client_key or per.get("client_key")),
            insecure_skip_tls_verify=self.transport.insecure_skip_tls_verify
            or bool(per.get("insecure_skip_tls_verify")),
            cache_dir=self.cache_dir,
            oauth_credentials_file=self.paths.config_dir / "clientcredentials.json",
            transfer=transfer_limits(self.config),
        )
        if docker_config:
            options = replace(options, docker_config_dir=Path(docker_config).parent)
        return options

    def open_store(self, reference: Reference) -> ArtifactStore:
        """The registry repository or OCI layout of `reference`, with its registry's options."""
        from registry.store import open_store

        return open_store(reference, self.client_options(reference.registry))


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None
