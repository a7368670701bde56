"""The settings of a detection run that live in the layered configuration (flags > FALCONET_*
> falconet.yaml > defaults), checked before anything runs: the live capture's base_syscalls and
ring buffer size, and Falco's syscall_event_drops. Errors name where the bad value came from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feeds.config import Config

if TYPE_CHECKING:
    from bpf.options import LiveOptions
    from engine.drops_monitor import DropsConfig
    from engine.sources.plugin_host import PluginConfig

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


def _origin_text(key: str, origin: str) -> str:
    if origin == "flag":
        return "--" + key.rsplit(".", 1)[-1].replace("_", "-")
    if origin.startswith("file:"):
        return f"{origin.removeprefix('file:')}: {key}"
    if origin.startswith("env:"):
        return origin.removeprefix("env:")
    return key
