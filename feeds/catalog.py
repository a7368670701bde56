"""What the solver may choose from: for each artifact name, the versions that exist and the
config of each (dependencies, requirements). An in-memory catalog for tests and benchmarks; the
registry-backed one lives in feeds/registry_catalog.py. Configs are registry.artifacts'
ArtifactConfig (the solver only reads the ConfigLike attributes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from feeds.errors import NotFoundError
from feeds.versions import Version, release_versions
from registry.artifacts import ArtifactConfig, Dependency, Requirement, parse_requirement


class RequirementLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...


class DependencyLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def alternatives(self) -> Sequence[RequirementLike]: ...


class ConfigLike(Protocol):
    """The parts of registry.artifacts.ArtifactConfig the solver reads."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def dependencies(self) -> Sequence[DependencyLike]: ...

    @property
    def requirements(self) -> Sequence[RequirementLike]: ...


class Catalog(Protocol):
    def versions(self, name: str) -> dict[Version, str]:
        """{version: tag} for the release tags of `name`'s repository; NotFoundError if unknown."""
        ...

    def config(self, name: str, version: Version) -> ConfigLike: ...

    def digest(self, name: str, version: Version) -> str | None:
        """The manifest digest of that version when known (None: not fetched yet)."""
        ...

    def reference(self, name: str, version: Version) -> str:
        """Where that version is pulled from (repository:tag)."""
        ...

    def prefetch(self, names: Iterable[str]) -> None:
        """A hint that `versions(name)` will be asked soon (lets a remote catalog overlap I/O)."""
        ...


def dependency(text: str) -> Dependency:
    """`name:version|alt:version|...` as falcoctl's --depends-on writes it, with tolerant
    versions (`json:1`): configs written by other tools carry them, so tests need them too
    (registry.artifacts.parse_dependency accepts strict semver only, as `registry push` must)."""
    first, *alternatives = (part.strip() for part in text.split("|"))
    name, version = first.split(":", 1)
    alts = tuple(Requirement(*alt.split(":", 1)) for alt in alternatives)
    return Dependency(name, version, alts)


class MemoryCatalog:
    """Artifacts held in memory: {name: {version text: config}}. Tags are the version texts."""

    def __init__(self, artifacts: Mapping[str, Mapping[str, ConfigLike]] | None = None) -> None:
        self._configs: dict[str, dict[str, ConfigLike]] = {}
        self.config_reads = 0
        for name, by_version in (artifacts or {}).items():
            for version, config in by_version.items():
                self.add(name, version, config)

    def add(self, name: str, version: str, config: ConfigLike | None = None) -> None:
        self._configs.setdefault(name, {})[version] = config or ArtifactConfig(name, version)

    def publish(
        self,
        name: str,
        version: str,
        depends_on: Iterable[str] = (),
        requires: Iterable[str] = (),
    ) -> None:
        """Add `name:version` with falcoctl-style `--depends-on` and `--requires` strings."""
        deps = tuple(dependency(text) for text in depends_on)
        reqs = tuple(parse_requirement(text) for text in requires)
        self.add(name, version, ArtifactConfig(name, version, deps, reqs))

    def versions(self, name: str) -> dict[Version, str]:
        if name not in self._configs:
            raise NotFoundError(f"no artifact named {name!r} in the catalog")
        return release_versions(self._configs[name])

    def config(self, name: str, version: Version) -> ConfigLike:
        self.config_reads += 1
        return self._configs[name][self.versions(name)[version]]

    def digest(self, name: str, version: Version) -> str | None:
        return None

    def reference(self, name: str, version: Version) -> str:
        return f"memory/{name}:{self.versions(name)[version]}"

    def prefetch(self, names: Iterable[str]) -> None:
        return None
