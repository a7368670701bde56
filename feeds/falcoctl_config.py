"""falcoctl's configuration read as falconet's: falcoctl.yaml (camelCase keys, matched
case-insensitively as viper does) and `FALCOCTL_*` variables, so falconet can replace falcoctl
where a Falco deployment (the official Helm chart, the falcoctl systemd unit) configured it.

Precedence, lowest first: defaults < falcoctl.yaml < falconet.yaml < FALCOCTL_* < FALCONET_* <
flags. falcoctl.yaml is read from `--config` when that file is falcoctl's (named falcoctl.yaml,
or every key in it is a falcoctl key), else from /etc/falcoctl/falcoctl.yaml when falconet is
not confined to FALCONET_HOME. Keys falcoctl has that falconet does not apply are reported as
ignored, one log line each; keys neither tool has are errors with a suggestion, as for
falconet.yaml.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SYSTEM_FALCOCTL_CONFIG = Path("/etc/falcoctl/falcoctl.yaml")

# falcoctl key, as its docs spell it (matched case-insensitively, as viper does) -> falconet
# setting. falconet installs
# and follows into one set of directories, so follow's directory keys map onto install's.
KEY_MAP: dict[str, str] = {
    "artifact.allowedTypes": "artifact.allowed_types",
    "artifact.noVerify": "artifact.no_verify",
    "artifact.install.refs": "artifact.install.refs",
    "artifact.install.rulesfilesDir": "artifact.install.rulesfiles_dir",
    "artifact.install.pluginsDir": "artifact.install.plugins_dir",
    "artifact.install.assetsDir": "artifact.install.assets_dir",
    "artifact.install.stateDir": "artifact.install.state_dir",
    "artifact.install.resolveDeps": "artifact.install.resolve_deps",
    "artifact.follow.refs": "artifact.follow.refs",
    "artifact.follow.every": "artifact.follow.every",
    "artifact.follow.cron": "artifact.follow.cron",
    "artifact.follow.startupBehavior": "artifact.follow.startup",
    "artifact.follow.falcoversions": "artifact.follow.engine_versions",
    "artifact.follow.rulesfilesDir": "artifact.install.rulesfiles_dir",
    "artifact.follow.pluginsDir": "artifact.install.plugins_dir",
    "artifact.follow.assetsDir": "artifact.install.assets_dir",
    "artifact.follow.stateDir": "artifact.install.state_dir",
    "indexes": "indexes",
    "registry.creds.config": "credentials.docker_config",
}
# falcoctl keys falconet accepts without applying them, and why.
IGNORED: dict[str, str] = {
    "artifact.follow.tmpDir": "falconet stages downloads next to their target directory",
    "artifact.install.platform": "give --platform or artifact.platform",
    "driver": "falconet builds and loads its own eBPF probe",
    "registry.auth.basic": "store credentials with `falconet registry login` (docker config)",
    "registry.auth.oauth": "store them with `falconet registry auth oauth`",
    "registry.auth.gcp": "GCP registries: use a docker credential helper",
}


_MAPPED = {key.lower(): target for key, target in KEY_MAP.items()}
_IGNORED = {key.lower(): why for key, why in IGNORED.items()}
_SPELLING = {key.lower(): key for key in [*KEY_MAP, *IGNORED]}


def falcoctl_file(explicit: Path | None, confined: bool) -> Path | None:
    """Which falcoctl.yaml applies: `explicit` when it is falcoctl's, else the system one."""
    if explicit is not None:
        return explicit if is_falcoctl_file(explicit) else None
    if not confined and SYSTEM_FALCOCTL_CONFIG.is_file():
        return SYSTEM_FALCOCTL_CONFIG
    return None


def is_falcoctl_file(path: Path) -> bool:
    if path.name in ("falcoctl.yaml", "falcoctl.yml"):
        return True
    data = _load(path)
    keys = list(_leaf_keys(data)) if isinstance(data, dict) else []
    return (
        bool(keys)
        and all(_known(key) for key in keys)
        and any(key.lower() not in _FALCONET_SPELLINGS for key in keys)
    )


def read_falcoctl_file(path: Path) -> Iterator[tuple[str, Any, str]]:
    """(falconet setting, value, origin) for each applied key of a falcoctl.yaml."""
    from feeds.errors import ConfigError

    data = _load(path)
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping", "see falcoctl's config")
    for key, value in _leaf_pairs(data):
        lowered = key.lower()
        target = _MAPPED.get(lowered)
        if target is not None:
            yield target, value, f"falcoctl:{path}"
            continue
        ignored = next((why for k, why in _IGNORED.items() if _under(lowered, k)), None)
        if ignored is not None:
            log.info("%s: falcoctl key '%s' ignored: %s", path, key, ignored)
            continue
        close = difflib.get_close_matches(lowered, list(_SPELLING), n=1, cutoff=0.6)
        raise ConfigError(
            f"{path}: unknown falcoctl key '{key}'",
            f"did you mean '{_SPELLING[close[0]]}'?" if close else "see falcoctl's config keys",
        )


def falcoctl_env(environ: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """(falconet setting, raw value, origin) for each FALCOCTL_* variable falconet applies.
    falcoctl's names: FALCOCTL_ + key path upper-cased with '.' as '_'."""
    for key, target in KEY_MAP.items():
        name = "FALCOCTL_" + key.upper().replace(".", "_")
        if name in environ:
            yield target, environ[name], f"env:{name}"


def _load(path: Path) -> Any:
    import yaml

    from feeds.errors import ConfigError

    try:
        return yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}", "check the path") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})", "fix the YAML syntax") from error


def _leaf_pairs(node: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for raw_key, value in node.items():
        key = f"{prefix}{raw_key}"
        if _mapped_or_ignored(key.lower()) or not isinstance(value, dict):
            yield key, value
        else:
            yield from _leaf_pairs(value, key + ".")


def _leaf_keys(node: dict[str, Any]) -> Iterator[str]:
    for key, _ in _leaf_pairs(node):
        yield key


def _mapped_or_ignored(lowered: str) -> bool:
    return lowered in _MAPPED or lowered in _IGNORED


def _under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


def _known(key: str) -> bool:
    lowered = key.lower()
    return lowered in _MAPPED or any(_under(lowered, k) for k in _IGNORED)


# falcoctl keys spelled the same in falconet.yaml: a file of only these is falconet's.
_FALCONET_SPELLINGS = {"artifact.install.refs", "artifact.follow.refs", "artifact.follow.every",
                       "artifact.follow.cron", "indexes"}  # fmt: skip
