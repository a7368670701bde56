"""Where falconet reads and writes: FALCONET_HOME roots everything (hermetic runs), else the
system locations as root and the XDG locations for other users."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _is_root() -> bool:
    return os.geteuid() == 0


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


@dataclass(frozen=True)
class Paths:
    config_file: Path
    config_dir: Path
    cache_dir: Path
    state_dir: Path
    rulesfiles_dir: Path
    plugins_dir: Path
    assets_dir: Path

    @property
    def blob_cache(self) -> Path:
        return self.cache_dir

    @property
    def index_cache(self) -> Path:
        return self.cache_dir / "indexes"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "falconet.lock"


def falconet_home() -> Path | None:
    value = os.environ.get("FALCONET_HOME")
    return Path(value) if value else None


def default_paths() -> Paths:
    home = falconet_home()
    if home is not None:
        return Paths(
            config_file=home / "config" / "falconet.yaml",
            config_dir=home / "config",
            cache_dir=home / "cache",
            state_dir=home / "state",
            rulesfiles_dir=home / "rules",
            plugins_dir=home / "plugins",
            assets_dir=home / "assets",
        )
    if _is_root():
        return Paths(
            config_file=Path("/etc/falconet/falconet.yaml"),
            config_dir=Path("/etc/falconet"),
            cache_dir=Path("/var/cache/falconet"),
            state_dir=Path("/var/lib/falconet"),
            rulesfiles_dir=Path("/etc/falco"),
            plugins_dir=Path("/usr/share/falco/plugins"),
            assets_dir=Path("/etc/falco/assets"),
        )
    config = _xdg("XDG_CONFIG_HOME", ".config") / "falconet"
    data = _xdg("XDG_DATA_HOME", ".local/share") / "falconet"
    return Paths(
        config_file=config / "falconet.yaml",
        config_dir=config,
        cache_dir=_xdg("XDG_CACHE_HOME", ".cache") / "falconet",
        state_dir=_xdg("XDG_STATE_HOME", ".local/state") / "falconet",
        rulesfiles_dir=data / "rules",
        plugins_dir=data / "plugins",
        assets_dir=data / "assets",
    )


def docker_config_path() -> Path:
    """Docker's config.json, where registry credentials live (DOCKER_CONFIG honoured)."""
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"
