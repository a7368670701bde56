"""The native Falco plugin host: plugin shared libraries loaded through the C ABI (ctypes),
registered as event sources and field extractors of the engine. See docs/plugins.md."""

from engine.sources.plugin_host.errors import PluginError
from engine.sources.plugin_host.host import (
    PluginConfig,
    PluginSet,
    activate,
    activated,
    active_plugins,
    describe_plugin,
    load_plugins,
)
from engine.sources.plugin_host.library import HOST_API_VERSION, Plugin

__all__ = [
    "HOST_API_VERSION",
    "Plugin",
    "PluginConfig",
    "PluginError",
    "PluginSet",
    "activate",
    "activated",
    "active_plugins",
    "describe_plugin",
    "load_plugins",
]
