"""Built-in event sources. Each module registers its FieldCatalog (engine.fields.register_source)
and the upstream plugins it stands in for (provide_plugin), at import time.

Adding a source = one module here + one import line below (see docs/sources.md).
"""

from __future__ import annotations

_PROVIDED: dict[str, str] = {}


def provide_plugin(name: str, version: str) -> None:
    """Declare that a built-in source stands in for upstream plugin `name` at `version`, so a
    rules file's `required_plugin_versions` entry for it is satisfied as Falco checks it."""
    _PROVIDED[name] = version


def provided_plugins() -> dict[str, str]:
    return dict(_PROVIDED)


def restore_provided(provided: dict[str, str]) -> None:
    """Put back what provided_plugins() returned (when loaded native plugins are unloaded)."""
    _PROVIDED.clear()
    _PROVIDED.update(provided)


# Source modules register themselves on import; keep this list sorted.
SOURCE_MODULES: list[str] = [
    "engine.sources.cloudtrail",
    "engine.sources.gcp_audit",
    "engine.sources.github",
    "engine.sources.json_source",
    "engine.sources.k8s_audit",
    "engine.sources.keycloak",
    "engine.sources.nomad",
    "engine.sources.okta",
    "engine.sources.syscall",
]


def _import_sources() -> None:
    import importlib

    for module in SOURCE_MODULES:
        importlib.import_module(module)


_import_sources()
