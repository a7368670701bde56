"""Errors of the native plugin host. Every message names the plugin (`plugin NAME: ...`), so a
misbehaving plugin is one line on the terminal, not a Python traceback."""

from __future__ import annotations

from engine.sources.errors import SourceError


class PluginError(SourceError):
    """A plugin that cannot be loaded or used, or that broke the ABI's contract at run time."""

    def __init__(self, plugin: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"plugin {plugin}: {message}", hint)
        self.plugin = plugin


class PluginNotFoundError(PluginError):
    exit_status = "not_found"


class PluginApiVersionError(PluginError):
    """The plugin needs a plugin API this host does not implement."""

    exit_status = "requirement_unmet"


class PluginConfigError(PluginError):
    """Bad configuration for a plugin: init_config against its schema, unknown names."""

    exit_status = "usage"
