"""Does an artifact fit the engine that will load it? Requirement checks against a Falco
`/versions` document (`engine_version_semver`, `engine_version`, `plugin_api_version`,
`plugin_versions`), and a rules file's `required_plugin_versions` against the plugins present.

Comparison semantics are falcoctl's follow (`checkRequirements`) and Falco's loader:
- a required version that is a bare integer (`26`) compares as an integer against the engine's
  value for that key (falcoctl), or against the minor of `engine_version_semver` when only that
  is served (Falco reads integer N as 0.N.0);
- otherwise both are strict semver, the majors must be equal and the engine at least the required
  version (libsinsp `compatible_with`);
- an unknown requirement name is unmet: the engine does not say it provides it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import semver

from feeds.errors import ConfigError, FeedsError, NotFoundError, RequirementUnmetError
from feeds.versions import falco_compatible, try_parse_version

log = logging.getLogger(__name__)

_INTEGER = re.compile(r"^(0|[1-9]\d*)$")
_FETCH_TIMEOUT_SECONDS = 10.0


class EngineVersionsNetworkError(FeedsError):
    exit_status = "network"


class NamedVersion(Protocol):
    """A requirement or dependency entry of an artifact config (registry.artifacts shapes)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...


@dataclass(frozen=True)
class EngineVersions:
    """What an engine serves at /versions; `values` holds every string-valued key."""

    values: Mapping[str, str]
    plugin_versions: Mapping[str, str] = field(default_factory=dict)
    source: str = "falconet engine"

    @classmethod
    def from_document(cls, document: Mapping[str, Any], source: str) -> EngineVersions:
        if not isinstance(document, Mapping):
            raise ConfigError(
                f"{source}: not a Falco /versions document (expected a JSON object)",
                "give the JSON served at http://FALCO:8765/versions",
            )
        plugins = document.get("plugin_versions") or {}
        if not isinstance(plugins, Mapping):
            raise ConfigError(f"{source}: plugin_versions must be an object of name: version")
        values = {k: str(v) for k, v in document.items() if isinstance(v, str | int)}
        return cls(values, {str(k): str(v) for k, v in plugins.items()}, source)

    @classmethod
    def local(cls) -> EngineVersions:
        """falconet's own engine: the same document its /versions endpoint serves."""
        from engine.versions import versions_document

        return cls.from_document(versions_document(), "falconet engine")

    @property
    def engine_version_text(self) -> str:
        """How the engine is named in messages: its semver, else its integer version."""
        return self.values.get("engine_version_semver") or self.values.get("engine_version", "?")


def load_engine_versions(location: str | None) -> EngineVersions:
    """The target engine: falconet's own (None), a Falco /versions URL, or a JSON file."""
    if not location:
        return EngineVersions.local()
    if location.startswith(("http://", "https://")):
        return EngineVersions.from_document(_fetch_json(location), location)
    path = Path(location)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NotFoundError(
            f"engine versions file {location} does not exist",
            "give a file holding Falco's /versions JSON, or its URL",
        ) from None
    except OSError as error:
        message = f"cannot read engine versions file {location}: {error.strerror}"
        raise ConfigError(message) from None
    return EngineVersions.from_document(_decode(text, location), location)


def _fetch_json(url: str) -> Any:
    from registry.errors import RegistryError
    from registry.transfer import MAX_JSON_DOCUMENT_SIZE, fetch_document

    try:
        fetched = fetch_document(
            "GET",
            url,
            "engine versions",
            max_size=MAX_JSON_DOCUMENT_SIZE,
            connect_timeout=_FETCH_TIMEOUT_SECONDS,
            read_timeout=_FETCH_TIMEOUT_SECONDS,
        )
    except RegistryError as error:
        raise EngineVersionsNetworkError(
            f"cannot read engine versions from {url}: {error}",
            "check that Falco's webserver is enabled and reachable (webserver.enabled: true)",
        ) from None
    if fetched.status != 200:
        raise EngineVersionsNetworkError(
            f"cannot read engine versions from {url}: HTTP {fetched.status}",
            "the URL must serve Falco's /versions JSON",
        )
    return _decode(fetched.body.decode("utf-8", "replace"), url)


def _decode(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{source}: not JSON ({error.msg} at line {error.lineno})",
            "give the JSON served at http://FALCO:8765/versions",
        ) from None


@dataclass(frozen=True)
class Unmet:
    """One requirement the engine does not meet, with the engine's side of it."""

    name: str
    required: str
    available: str | None
    reason: str

    def __str__(self) -> str:
        have = f"engine has {self.available}" if self.available else "engine does not provide it"
        return f"requires {self.name} {self.required} ({have}: {self.reason})"


def check_requirement(name: str, required: str, engine: EngineVersions) -> Unmet | None:
    """None when the engine meets `name: required`, else why not."""
    available = engine.values.get(name)
    if _INTEGER.match(required.strip()):
        return _check_integer(name, int(required), available, engine)
    if available is None:
        return Unmet(name, required, None, "unrecognized requirement")
    want = _strict(required)
    have = _strict(available)
    if want is None:
        return Unmet(name, required, available, "required version is not semver")
    if have is None:
        return Unmet(name, required, available, "engine version is not semver")
    if have.major != want.major:
        return Unmet(name, required, available, "major version mismatch")
    if have < want:
        return Unmet(name, required, available, "engine is older")
    return None


def _check_integer(
    name: str, required: int, available: str | None, engine: EngineVersions
) -> Unmet | None:
    if available is None and name == "engine_version":
        semver_text = engine.values.get("engine_version_semver")
        parsed = _strict(semver_text) if semver_text else None
        if parsed is not None and parsed.major == 0:
            available = str(parsed.minor)
    if available is None:
        return Unmet(name, str(required), None, "unrecognized requirement")
    if not _INTEGER.match(available.strip()):
        return Unmet(name, str(required), available, "engine version is not an integer")
    if int(available) < required:
        return Unmet(name, str(required), available, "engine is older")
    return None


def _strict(text: str) -> semver.Version | None:
    try:
        return semver.Version.parse(text.strip())
    except (ValueError, TypeError):
        return None


def unmet_requirements(requirements: Iterable[NamedVersion], engine: EngineVersions) -> list[Unmet]:
    found = (check_requirement(r.name, r.version, engine) for r in requirements)
    return [unmet for unmet in found if unmet is not None]


def ensure_requirements(
    artifact: str, requirements: Iterable[NamedVersion], engine: EngineVersions
) -> None:
    """Raise RequirementUnmetError naming every unmet requirement and the engine's version."""
    unmet = unmet_requirements(requirements, engine)
    if unmet:
        raise RequirementUnmetError(
            f"{artifact} {'; '.join(str(u) for u in unmet)} [target: {engine.source}]",
            "pick a version this engine supports (@latest-compatible) or upgrade the engine",
        )


@dataclass(frozen=True)
class PluginRequirement:
    """One `required_plugin_versions` entry: the plugin or any alternative satisfies it."""

    name: str
    version: str
    alternatives: tuple[tuple[str, str], ...] = ()

    @property
    def choices(self) -> list[tuple[str, str]]:
        return [(self.name, self.version), *self.alternatives]

    def describe(self) -> str:
        return ", ".join(f"{name} (>= {version})" for name, version in self.choices)


def parse_required_plugin_versions(items: Iterable[Mapping[str, Any]]) -> list[PluginRequirement]:
    """Rules-file `required_plugin_versions` entries -> PluginRequirement (Falco's shape)."""
    parsed: list[PluginRequirement] = []
    for item in items:
        if not isinstance(item, Mapping) or "name" not in item or "version" not in item:
            raise ConfigError(
                "required_plugin_versions entries need a name and a version",
                "e.g. - name: json\n  version: 0.7.0",
            )
        alternatives = tuple(
            (str(alt["name"]), str(alt["version"])) for alt in item.get("alternatives") or ()
        )
        names = [str(item["name"]), *(name for name, _ in alternatives)]
        if len(set(names)) != len(names):
            raise ConfigError(f"required_plugin_versions entry {item['name']!r} repeats a name")
        parsed.append(PluginRequirement(str(item["name"]), str(item["version"]), alternatives))
    return parsed


def unmet_plugin_requirements(
    required: Iterable[PluginRequirement], plugins: Mapping[str, str]
) -> list[PluginRequirement]:
    """Entries that no present plugin satisfies (same major and at least the version)."""
    return [entry for entry in required if not _plugin_satisfied(entry, plugins)]


def _plugin_satisfied(entry: PluginRequirement, plugins: Mapping[str, str]) -> bool:
    for name, version in entry.choices:
        have = try_parse_version(plugins[name]) if name in plugins else None
        want = try_parse_version(version)
        if have is not None and want is not None and falco_compatible(have, want):
            return True
    return False


def ensure_plugin_requirements(
    source: str, required: Iterable[PluginRequirement], plugins: Mapping[str, str]
) -> None:
    """Falco's check after loading rules: every entry needs one compatible plugin loaded."""
    unmet = unmet_plugin_requirements(required, plugins)
    if unmet:
        loaded = ", ".join(f"{n} {v}" for n, v in sorted(plugins.items())) or "none"
        raise RequirementUnmetError(
            f"{source}: plugin requirement not satisfied, must load one of: "
            + "; one of: ".join(entry.describe() for entry in unmet)
            + f" (loaded: {loaded})",
            "install the plugin as well (dependencies are resolved unless --no-deps)",
        )
