"""The settings of a detection run that live in the layered configuration (flags > FALCONET_*
> falconet.yaml > defaults), checked before anything runs: the live capture's base_syscalls and
ring buffer size, and Falco's syscall_event_drops. Errors name where the bad value came from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feeds.config import Config
from feeds.errors import ConfigError

if TYPE_CHECKING:
    from bpf.options import LiveOptions
    from engine.drops_monitor import DropsConfig
    from engine.sources.plugin_host import PluginConfig
    from engine.sources.webhooks import WebhookLimits

LIVE_SETTINGS = (
    "base_syscalls.custom_set",
    "base_syscalls.repair",
    "base_syscalls.all",
    "engine.ringbuf_size",
)


def live_options(config: Config) -> LiveOptions:
    """base_syscalls and the ring buffer size (the flag is `engine.ringbuf_size`'s)."""
    from bpf.options import LiveOptions

    origins = {key: _origin_text(key, config.values[key].origin) for key in LIVE_SETTINGS}
    return LiveOptions.checked(
        config["base_syscalls.custom_set"],
        config["base_syscalls.repair"],
        config["base_syscalls.all"],
        config["engine.ringbuf_size"],
        origins,
    )


def drops_config(config: Config) -> DropsConfig:
    """falconet.yaml's syscall_event_drops, checked as Falco does."""
    from engine.drops_monitor import CONFIG_KEY, DropsConfig

    prefix = CONFIG_KEY + "."
    section = {k[len(prefix) :]: v for k, v in config.values.items() if k.startswith(prefix)}
    values = {key: value.value for key, value in section.items()}
    return DropsConfig.parse(values, {key: value.origin for key, value in section.items()})


def plugin_settings(
    config: Config, extra: list[str] | None = None
) -> tuple[list[PluginConfig], list[str], str]:
    """falconet.yaml's `plugins` entries, the names to load and the plugins directory `artifact
    install` fills. As in Falco, `load_plugins` given (even empty) loads only those entries, and
    without it every `plugins` entry loads; `--plugin` names are added either way."""
    from engine.sources.plugin_host import PluginConfig

    configs = [PluginConfig.from_mapping(entry) for entry in config["plugins"]]
    if config.values["load_plugins"].origin == "default":
        load = [c.name for c in configs]
    else:
        load = list(config["load_plugins"])
    load += extra or []
    return configs, load, config["artifact.install.plugins_dir"]


WEBHOOK_SETTINGS = (
    "max_connections",
    "idle_timeout",
    "request_timeout",
    "min_body_rate",
    "max_header_bytes",
    "max_body",
    "max_buffered_bytes",
)
HTTP_OUTPUT_SETTINGS = ("timeout", "retries", "breaker_failures", "breaker_cooldown")


def webhook_limits(config: Config) -> WebhookLimits:
    """The webhook listener's bounds (`webhook.*`); each must be positive."""
    from engine.sources.webhooks import WebhookLimits

    return WebhookLimits(
        **{name: _positive(config, f"webhook.{name}") for name in WEBHOOK_SETTINGS}
    )


def output_queue_capacity(config: Config) -> int:
    return int(_positive(config, "outputs.queue_capacity"))


def http_output_options(config: Config) -> dict[str, float]:
    """Options of the HTTP sink (`outputs.http.*`), as engine.sinks.HttpSink takes them."""
    options = {name: config[f"outputs.http.{name}"] for name in HTTP_OUTPUT_SETTINGS}
    for name, value in options.items():
        minimum = 0 if name == "retries" else 1e-9
        if value < minimum:
            key = f"outputs.http.{name}"
            raise ConfigError(
                f"{_origin_text(key, config.values[key].origin)}: {value} is too small",
                hint="retries may be 0; the others must be positive",
            )
    return options


def _positive(config: Config, key: str) -> float:
    value = config[key]
    if value <= 0:
        raise ConfigError(
            f"{_origin_text(key, config.values[key].origin)}: {value} must be positive",
            hint=f"see `falconet config show` for {key}'s default",
        )
    return value


def _origin_text(key: str, origin: str) -> str:
    if origin == "flag":
        return "--" + key.rsplit(".", 1)[-1].replace("_", "-")
    if origin.startswith("file:"):
        return f"{origin.removeprefix('file:')}: {key}"
    if origin.startswith("env:"):
        return origin.removeprefix("env:")
    return key
