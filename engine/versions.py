"""The engine's versions: what rules' requirements are checked against and what /versions serves.

falconet implements the Falco rules language as the engine with this semver reports; rules files
that declare `required_engine_version` up to it load (upstream rules 5.x require 0.57.0).
"""

from __future__ import annotations

ENGINE_VERSION_SEMVER = "0.57.0"
# Falco's legacy integer engine version is the semver's minor number.
ENGINE_VERSION = int(ENGINE_VERSION_SEMVER.split(".")[1])
# The plugin API version the native plugin host implements (libs today: 3.12.0); plugins that
# require up to it load (engine.sources.plugin_host), and plugin artifacts are resolved against it.
PLUGIN_API_VERSION = "3.12.0"


def falconet_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("falconet")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0.0.0+source"


def plugin_versions() -> dict[str, str]:
    """The upstream plugins the built-in sources stand in for, and the native plugins loaded
    (which take the place of a stand-in of the same name): {plugin name: version}."""
    from engine.fields import known_sources
    from engine.sources import provided_plugins

    known_sources()  # import every built-in source so each has registered what it provides
    return dict(provided_plugins())


def versions_document() -> dict[str, object]:
    """Falco's /versions JSON shape (falcoctl's follow reads the string-valued keys)."""
    return {
        "falco_version": falconet_version(),
        "libs_version": falconet_version(),
        "plugin_api_version": PLUGIN_API_VERSION,
        "engine_version": str(ENGINE_VERSION),
        "engine_version_semver": ENGINE_VERSION_SEMVER,
        "plugin_versions": plugin_versions(),
    }
