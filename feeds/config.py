"""Layered configuration: flags > FALCONET_* environment > falconet.yaml > defaults.

Every value remembers where it came from (`falconet config show`). Unknown keys are errors that
name the closest valid key: falcoctl silently ignores them (falcosecurity/rules#303).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from feeds.errors import ConfigError
from feeds.falcoctl_config import (
    SYSTEM_FALCOCTL_CONFIG,
    falcoctl_env,
    falcoctl_file,
    read_falcoctl_file,
)
from feeds.paths import default_paths, falconet_home

_KIND_CHECKS: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "bool": bool,
    "int": int,
    "float": (int, float),
    "list": list,
    "map": dict,
    "records": list,
}


# The keyless signer keys a verify.policies entry may carry (falcoctl's index names).
KEYLESS_POLICY_KEYS = (
    "certificate-identity",
    "certificate-identity-regexp",
    "certificate-oidc-issuer",
    "certificate-oidc-issuer-regexp",
    "certificate-github-workflow-trigger",
    "certificate-github-workflow-sha",
    "certificate-github-workflow-name",
    "certificate-github-workflow-repository",
    "certificate-github-workflow-ref",
)


@dataclass(frozen=True)
class Setting:
    key: str
    kind: str
    default: Any
    help: str
    # For "map" (keyed by a free name) and "records" (list of mappings): the allowed inner keys.
    inner_keys: tuple[str, ...] = ()

    @property
    def env_var(self) -> str:
        return "FALCONET_" + self.key.upper().replace(".", "_").replace("-", "_")


def _settings() -> list[Setting]:
    paths = default_paths()
    return [
        Setting(
            "indexes",
            "records",
            [],
            "Extra indexes: [{name, url, backend}] (falcoctl's "
            "config shape); the embedded feed and falcosecurity's index are always there.",
            ("name", "url", "backend", "insecure"),
        ),
        Setting("index.ttl", "str", "6h", "How long a cached index is used before revalidating."),
        # Every transfer from a registry, index, key URL or token endpoint (docs/security.md).
        Setting(
            "transfer.low_speed_limit",
            "int",
            1024,
            "Bytes/s below which (averaged over transfer.low_speed_time) a transfer is given up.",
        ),
        Setting(
            "transfer.low_speed_time",
            "str",
            "30s",
            "Window (Go duration) over which transfer.low_speed_limit is averaged.",
        ),
        Setting(
            "transfer.timeout",
            "str",
            "15m",
            "Deadline (Go duration) of one transfer, all its retries included.",
        ),
        Setting(
            "index.defaults",
            "bool",
            True,
            "Include the default indexes (embedded feed, falcosecurity).",
        ),
        Setting(
            "registries",
            "map",
            {},
            "Per-registry options keyed by host[:port].",
            ("plain_http", "ca_file", "client_cert", "client_key", "insecure_skip_tls_verify"),
        ),
        Setting(
            "artifact.allowed_types",
            "list",
            [],
            "Artifact types install/follow accept (rulesfile, plugin, asset); empty = all.",
        ),
        Setting("artifact.platform", "str", "", "os/arch of plugins to install; default host."),
        Setting("artifact.no_verify", "bool", False, "Skip signature verification (warned)."),
        Setting(
            "artifact.install.refs",
            "list",
            ["falconet-rules"],
            "Refs `artifact install` uses with no args (default: the embedded feed).",
        ),
        Setting(
            "artifact.install.rulesfiles_dir",
            "str",
            str(paths.rulesfiles_dir),
            "Where rules files are installed.",
        ),
        Setting(
            "artifact.install.plugins_dir",
            "str",
            str(paths.plugins_dir),
            "Where plugins are installed.",
        ),
        Setting(
            "artifact.install.assets_dir",
            "str",
            str(paths.assets_dir),
            "Where assets are installed.",
        ),
        Setting(
            "artifact.install.state_dir",
            "str",
            str(paths.state_dir),
            "Where install state and the lock file live.",
        ),
        Setting(
            "artifact.install.resolve_deps",
            "bool",
            True,
            "Install the artifacts' dependencies too (--resolve-deps/--no-resolve-deps).",
        ),
        Setting("artifact.follow.refs", "list", [], "Refs to follow."),
        Setting(
            "artifact.follow.engine_versions",
            "str",
            "",
            "Falco /versions URL or file requirements are checked against (falcoctl's "
            "falcoversions); empty: falconet's own engine.",
        ),
        Setting("artifact.follow.every", "str", "6h", "Follow interval (Go duration)."),
        Setting("artifact.follow.cron", "str", "", "Follow schedule as a cron expression."),
        Setting("artifact.follow.startup", "str", "jitter", "immediate|skip|jitter."),
        Setting(
            "artifact.follow.compliance",
            "list",
            [],
            "Enable only rules covering these framework[:control prefix] (e.g. pci-dss:10.2).",
        ),
        Setting(
            "artifact.follow.strength",
            "str",
            "",
            "Minimum compliance link strength: explicit|technique|tactic (empty: technique).",
        ),
        Setting(
            "verify.require", "bool", False, "Refuse artifacts that no signature policy covers."
        ),
        Setting(
            "verify.policies",
            "records",
            [],
            "Signature policies: [{match: registry/repository glob, key: path|URL|PEM, "
            "require: bool}], or a keyless signer instead of key: certificate-identity(-regexp), "
            "certificate-oidc-issuer(-regexp), certificate-github-workflow-*.",
            ("match", "key", "require", *KEYLESS_POLICY_KEYS),
        ),
        Setting(
            "verify.trusted_root",
            "str",
            "",
            "Sigstore trusted_root.json for keyless signatures (default: the one installed by "
            "`falconet trust update`, else the production root embedded in sigstore).",
        ),
        Setting("cache.dir", "str", str(paths.cache_dir), "Blob and index cache."),
        # falco.yaml's syscall_event_drops, same keys and defaults (docs/syscall-event-drops.md)
        Setting(
            "syscall_event_drops.threshold",
            "float",
            0.1,
            "Drop fraction of a second's syscall events (0-1) above which actions are taken.",
        ),
        Setting(
            "syscall_event_drops.actions",
            "list",
            ["log", "alert"],
            "What to do on drops: ignore, log, alert (internal alert), exit.",
        ),
        Setting(
            "syscall_event_drops.rate",
            "float",
            0.03333,
            "Token bucket refill: actions per second (0.03333 = one per 30 s).",
        ),
        Setting(
            "syscall_event_drops.max_burst", "float", 1, "Token bucket size: actions in a burst."
        ),
        Setting(
            "syscall_event_drops.simulate_drops",
            "bool",
            False,
            "Fake one drop per second (testing the actions).",
        ),
        Setting(
            "base_syscalls.custom_set",
            "list",
            [],
            "Live capture (Falco's base_syscalls): syscalls traced besides the rules' ones, "
            "replacing the state set; '!name' removes one even when rules use it.",
        ),
        Setting(
            "base_syscalls.repair",
            "bool",
            False,
            "Live capture: add only what the state tracker needs for the selected syscalls.",
        ),
        Setting("base_syscalls.all", "bool", False, "Live capture: trace every captured syscall."),
        Setting(
            "engine.ringbuf_size",
            "str",
            "32MiB",
            "Live capture ring buffer: bytes or MiB, a power of two (`--ringbuf-size`).",
        ),
        *_source_settings(paths.state_dir),
        # Falco's plugins / load_plugins (docs/plugins.md)
        Setting(
            "plugins",
            "records",
            [],
            "Native plugins: [{name, library_path, init_config, open_params}] (falco.yaml's "
            "shape); library_path defaults to lib<name>.so in the plugins directory.",
            ("name", "library_path", "init_config", "open_params"),
        ),
        Setting(
            "load_plugins",
            "list",
            [],
            "Names of the `plugins` entries `falconet run` loads (unset: all of them; "
            "`--plugin NAME` adds one).",
        ),
        # Bounds of `falconet run`'s I/O (docs/security.md "Sinks, webhooks and responses")
        Setting("webhook.max_connections", "int", 64, "Webhook: connections served at once."),
        Setting(
            "webhook.idle_timeout", "float", 10.0, "Webhook: seconds without a byte before close."
        ),
        Setting(
            "webhook.request_timeout",
            "float",
            30.0,
            "Webhook: seconds for a request's line, headers and body (+ the body-rate allowance).",
        ),
        Setting(
            "webhook.min_body_rate",
            "int",
            65536,
            "Webhook: bytes/s a body may be sent at (Content-Length / rate added to the deadline).",
        ),
        Setting(
            "webhook.max_header_bytes", "int", 65536, "Webhook: request line + headers, in bytes."
        ),
        Setting("webhook.max_body", "int", 12 * 1024 * 1024, "Webhook: one request body, bytes."),
        Setting(
            "webhook.max_buffered_bytes",
            "int",
            48 * 1024 * 1024,
            "Webhook: request bodies held by all connections together, bytes.",
        ),
        Setting(
            "outputs.queue_capacity",
            "int",
            10_000,
            "Alerts queued per output sink (live: dropped beyond it, counted; replay: waits).",
        ),
        Setting("outputs.http.timeout", "float", 5.0, "HTTP output: deadline of one attempt, s."),
        Setting("outputs.http.retries", "int", 2, "HTTP output: retries of a failed attempt."),
        Setting(
            "outputs.http.breaker_failures",
            "int",
            3,
            "HTTP output: failed alerts in a row that open the circuit breaker.",
        ),
        Setting(
            "outputs.http.breaker_cooldown",
            "float",
            30.0,
            "HTTP output: seconds the breaker stays open (alerts dropped, counted).",
        ),
        Setting(
            "credentials.docker_config",
            "str",
            "",
            "Docker config.json with registry credentials (default: DOCKER_CONFIG or "
            "~/.docker/config.json).",
        ),
    ]


def _source_settings(state_dir: Path) -> list[Setting]:
    """The live inputs of the keycloak and nomad sources (docs/sources.md); secrets come from
    files, never from the configuration itself."""
    kc, nomad = "sources.keycloak.", "sources.nomad."
    return [
        Setting(
            "sources.cursor_dir",
            "str",
            str(state_dir / "sources"),
            "Where live sources keep their resume cursors between runs.",
        ),
        Setting(kc + "server", "str", "", "Keycloak base URL to poll (`--server`)."),
        Setting(kc + "realm", "str", "", "Realm whose events are polled (`--realm`)."),
        Setting(kc + "auth_realm", "str", "", "Realm of the polling client (default: realm)."),
        Setting(kc + "client_id", "str", "", "OAuth client (client credentials, view-events)."),
        Setting(kc + "client_secret_file", "str", "", "File holding the client's secret."),
        Setting(kc + "token_file", "str", "", "File holding a bearer token (instead of a client)."),
        Setting(kc + "kinds", "list", ["events", "admin-events"], "Which event lists to poll."),
        Setting(kc + "page_size", "int", 100, "Events per page (`max`)."),
        Setting(kc + "poll_interval", "float", 10.0, "Seconds between polls."),
        Setting(kc + "ca_file", "str", "", "CA bundle for an https server."),
        Setting(kc + "webhook_path", "str", "/keycloak", "Path of the webhook (`--listen`)."),
        Setting(
            kc + "webhook_secret_file",
            "str",
            "",
            "File holding the shared secret the exporter sends as `Authorization: Bearer`.",
        ),
        Setting(kc + "webhook_max_body", "int", 1025 * 1024 * 10, "Largest webhook body (bytes)."),
        Setting(kc + "tls_cert", "str", "", "Webhook TLS certificate (PEM; enables https)."),
        Setting(kc + "tls_key", "str", "", "Webhook TLS private key (default: in tls_cert)."),
        Setting(nomad + "address", "str", "http://127.0.0.1:4646", "Nomad HTTP API address."),
        Setting(nomad + "token_file", "str", "", "File holding the ACL token (X-Nomad-Token)."),
        Setting(nomad + "namespace", "str", "*", "Namespace filter (`*`: all)."),
        Setting(nomad + "topics", "list", ["*"], "Topic or Topic:key filters."),
        Setting(nomad + "max_frame", "int", 16 * 1024 * 1024, "Largest event-stream frame."),
        Setting(nomad + "max_buffer", "int", 64 * 1024 * 1024, "Frames waiting for the engine."),
        Setting(nomad + "ca_file", "str", "", "CA bundle for an https address."),
        Setting(nomad + "client_cert", "str", "", "Client certificate (mutual TLS)."),
        Setting(nomad + "client_key", "str", "", "Client certificate's key (default: in it)."),
    ]


@dataclass(frozen=True)
class Value:
    value: Any
    origin: str  # "default", "file:<path>", "env:<VAR>", "flag:<--name>"


@dataclass
class Config:
    values: dict[str, Value] = field(default_factory=dict)
    file: Path | None = None
    # Every configuration file looked for, in the order read: (path, "read" | "absent" |
    # "read as falcoctl's"), so `config show` can say where it looked.
    looked_for: list[tuple[str, str]] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.values[key].value

    def get(self, key: str, default: Any = None) -> Any:
        found = self.values.get(key)
        return default if found is None else found.value

    def as_rows(self) -> list[tuple[str, Any, str]]:
        return [(k, v.value, v.origin) for k, v in sorted(self.values.items())]


def config_file_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("FALCONET_CONFIG")
    return Path(env) if env else default_paths().config_file


def load_config(explicit_path: str | None = None, flags: Mapping[str, Any] | None = None) -> Config:
    """Merge the layers. `flags` maps setting keys to values given on the command line (None =
    not given)."""
    settings = {s.key: s for s in _settings()}
    config = Config({key: Value(s.default, "default") for key, s in settings.items()})
    path = config_file_path(explicit_path)
    if explicit_path and not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist",
            "create it, or drop --config/FALCONET_CONFIG to use the defaults",
        )
    falcoctl_path = falcoctl_file(
        path if explicit_path or os.environ.get("FALCONET_CONFIG") else None,
        confined=falconet_home() is not None,
    )
    if falcoctl_path is not None:
        config.looked_for.append((str(falcoctl_path), "read as falcoctl's"))
        for key, value, origin in read_falcoctl_file(falcoctl_path):
            config.values[key] = Value(_checked(settings[key], value, falcoctl_path), origin)
    elif falconet_home() is None and not explicit_path:
        config.looked_for.append((str(SYSTEM_FALCOCTL_CONFIG), "absent"))
    if path != falcoctl_path:
        config.looked_for.append((str(path), "read" if path.is_file() else "absent"))
    if path.is_file() and path != falcoctl_path:
        config.file = path
        for key, value in _read_file(path, settings).items():
            config.values[key] = Value(value, f"file:{path}")
    for key, raw, origin in falcoctl_env(dict(os.environ)):
        config.values[key] = Value(_from_env(settings[key], raw), origin)
    for key, setting in settings.items():
        raw = os.environ.get(setting.env_var)
        if raw is not None:
            config.values[key] = Value(_from_env(setting, raw), f"env:{setting.env_var}")
    for key, value in (flags or {}).items():
        if value is None:
            continue
        if key not in settings:
            raise ConfigError(f"internal: flag for unknown setting {key}")
        config.values[key] = Value(value, "flag")
    return config


def with_file_values(config: Config, values: Mapping[str, Any], path: Path) -> Config:
    """`config` with settings read from another file (falco.yaml's base_syscalls, plugins...)
    laid over it, each checked as falconet.yaml's would be; values given as flags stay."""
    settings = {s.key: s for s in _settings()}
    merged = dict(config.values)
    for key, value in values.items():
        if merged[key].origin != "flag":
            merged[key] = Value(_checked(settings[key], value, path), f"file:{path}")
    return Config(merged, config.file, config.looked_for)


def _read_file(path: Path, settings: dict[str, Setting]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {error.start})", "save it as UTF-8 YAML"
        ) from None
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(error, "problem", error)).split())  # one line
        raise ConfigError(
            f"{path}{where}: not valid YAML ({problem})", "fix the YAML syntax"
        ) from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping", "see `falconet config show`")
    found: dict[str, Any] = {}
    _collect(data, "", settings, path, found)
    return found


def _collect(
    node: dict[str, Any],
    prefix: str,
    settings: dict[str, Setting],
    path: Path,
    found: dict[str, Any],
) -> None:
    for raw_key, value in node.items():
        key = f"{prefix}{raw_key}"
        setting = settings.get(key)
        if setting is not None:
            found[key] = _checked(setting, value, path)
        elif isinstance(value, dict) and any(k.startswith(key + ".") for k in settings):
            _collect(value, key + ".", settings, path, found)
        else:
            raise _unknown_key(key, settings, path)


def _unknown_key(key: str, settings: dict[str, Setting], path: Path) -> ConfigError:
    close = difflib.get_close_matches(key, list(settings), n=1, cutoff=0.5)
    if not close:  # compare by the last component too: `artifact.allowedTypes`
        leaf = {k.rsplit(".", 1)[-1].replace("_", "").lower(): k for k in settings}
        guess = leaf.get(key.rsplit(".", 1)[-1].replace("_", "").lower())
        close = [guess] if guess else []
    hint = f"did you mean '{close[0]}'?" if close else "see `falconet config show` for valid keys"
    return ConfigError(f"{path}: unknown key '{key}'", hint)


def _checked(setting: Setting, value: Any, path: Path) -> Any:
    expected = _KIND_CHECKS[setting.kind]
    if setting.kind == "str" and isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, expected) or (
        setting.kind in ("int", "float") and isinstance(value, bool)
    ):
        raise ConfigError(
            f"{path}: '{setting.key}' must be a {setting.kind}, got {value!r}", setting.help
        )
    if setting.kind == "records":
        for item in value:
            _check_inner(setting, item, path)
    if setting.kind == "map":
        for item in value.values():
            _check_inner(setting, item or {}, path)
    return value


def _check_inner(setting: Setting, item: Any, path: Path) -> None:
    if not isinstance(item, dict):
        raise ConfigError(f"{path}: each entry of '{setting.key}' must be a mapping", setting.help)
    for inner in item:
        if inner not in setting.inner_keys:
            close = difflib.get_close_matches(str(inner), setting.inner_keys, n=1)
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else f"valid: {', '.join(setting.inner_keys)}"
            )
            raise ConfigError(f"{path}: unknown key '{setting.key}.{inner}'", hint)


def _from_env(setting: Setting, raw: str) -> Any:
    if setting.kind == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{setting.env_var}={raw!r} is not a boolean", "use true or false")
    if setting.kind == "int":
        try:
            return int(raw)
        except ValueError as error:
            raise ConfigError(f"{setting.env_var}={raw!r} is not an integer") from error
    if setting.kind == "float":
        try:
            return float(raw)
        except ValueError as error:
            raise ConfigError(f"{setting.env_var}={raw!r} is not a number") from error
    if setting.kind == "list":
        return [item for item in raw.replace(",", ";").split(";") if item]
    if setting.kind == "records":
        # falcoctl's spelling: items separated by ';', fields by ',' in inner_keys order.
        records = []
        for item in filter(None, raw.split(";")):
            parts = item.split(",")
            records.append(dict(zip(setting.inner_keys, parts, strict=False)))
        return records
    if setting.kind == "map":
        raise ConfigError(
            f"{setting.env_var}: maps cannot be set from the environment",
            "put them in falconet.yaml",
        )
    return raw


def setting_help() -> dict[str, str]:
    return {s.key: s.help for s in _settings()}
