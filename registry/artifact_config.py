"""The artifact config blob: falcoctl's JSON, byte for byte, and where its values come from.

`{name, version, dependencies[{name, version, alternatives[]}], requirements[{name, version}]}`
with empty fields left out and lists sorted by name (falcoctl's Set* helpers), serialised as
Go's encoding/json does. Also the flag spellings (`--depends-on`, `--requires`) and a rules
file's own `required_plugin_versions` / `required_engine_version`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from registry.errors import ReferenceError_, RegistryError
from registry.store import parse_manifest

SOURCE = "org.opencontainers.image.source"

# falcoctl's strict semver (pkg/artifact/artifact.go): no leading v, no build metadata.
_SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$"
)
_DEP_NAME_RE = re.compile(r"^[a-z]+[a-z0-9-_]*$")


@dataclass(frozen=True)
class Requirement:
    name: str
    version: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class Dependency:
    name: str
    version: str
    alternatives: tuple[Requirement, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.alternatives:
            data["alternatives"] = [a.to_json() for a in sorted_by_name(self.alternatives)]
        return data


T = TypeVar("T", Requirement, Dependency)


def sorted_by_name(items: Iterable[T]) -> list[T]:
    """Upsert by name (last wins) and sort by name, as falcoctl's Set* helpers keep them."""
    by_name: dict[str, T] = {}
    for item in items:
        by_name[item.name] = item
    return [by_name[name] for name in sorted(by_name)]


@dataclass(frozen=True)
class ArtifactConfig:
    name: str = ""
    version: str = ""
    dependencies: tuple[Dependency, ...] = ()
    requirements: tuple[Requirement, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.name:
            data["name"] = self.name
        if self.version:
            data["version"] = self.version
        if self.dependencies:
            data["dependencies"] = [d.to_json() for d in sorted_by_name(self.dependencies)]
        if self.requirements:
            data["requirements"] = [r.to_json() for r in sorted_by_name(self.requirements)]
        return data

    def to_bytes(self) -> bytes:
        return go_json(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArtifactConfig:
        def requirement(raw: dict[str, Any]) -> Requirement:
            return Requirement(str(raw.get("name", "")), str(raw.get("version", "")))

        return cls(
            name=str(data.get("name") or ""),
            version=str(data.get("version") or ""),
            dependencies=tuple(
                Dependency(
                    str(d.get("name", "")),
                    str(d.get("version", "")),
                    tuple(requirement(a) for a in d.get("alternatives") or ()),
                )
                for d in data.get("dependencies") or ()
            ),
            requirements=tuple(requirement(r) for r in data.get("requirements") or ()),
        )

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "artifact config") -> ArtifactConfig:
        return cls.from_json(parse_manifest(data, what))


def go_json(value: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, UTF-8, HTML characters escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def check_version(version: str) -> str:
    if not _SEMVER_RE.match(version):
        raise ReferenceError_(
            f"version {version!r} is not a strict semver X.Y.Z[-pre]",
            hint="falcoctl's rule: no leading 'v', no build metadata, all three numbers",
        )
    return version


def _name_version(text: str, what: str) -> Requirement:
    name, sep, version = text.partition(":")
    if not sep or not _DEP_NAME_RE.match(name):
        raise ReferenceError_(
            f"invalid {what} {text!r}", hint="use name:version, e.g. k8saudit:0.7.0"
        )
    return Requirement(name, check_version(version))


def parse_dependency(text: str) -> Dependency:
    """`name:ver|alt:ver|...`: the first is the dependency, the rest its alternatives."""
    first, *alternatives = (part.strip() for part in text.split("|"))
    head = _name_version(first, "dependency")
    return Dependency(
        head.name, head.version, tuple(_name_version(a, "alternative") for a in alternatives)
    )


def parse_requirement(text: str) -> Requirement:
    name, sep, version = text.partition(":")
    if not sep or not name or not version:
        raise ReferenceError_(
            f"invalid requirement {text!r}",
            hint="use name:version, e.g. engine_version_semver:0.26.0",
        )
    return Requirement(name, version)


# Short keys for the common OCI annotations (`--annotation created=...`).
ANNOTATION_ALIASES = {
    "created": "org.opencontainers.image.created",
    "source": SOURCE,
    "revision": "org.opencontainers.image.revision",
    "description": "org.opencontainers.image.description",
    "licenses": "org.opencontainers.image.licenses",
}


def parse_annotations(items: Iterable[str]) -> dict[str, str]:
    annotations: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ReferenceError_(
                f"invalid annotation {item!r}",
                hint="use KEY=VALUE, e.g. created=2026-01-01T00:00:00Z",
            )
        annotations[ANNOTATION_ALIASES.get(key.strip(), key.strip())] = value
    return annotations


def rulesfile_metadata(path: Path) -> tuple[tuple[Dependency, ...], tuple[Requirement, ...]]:
    """Dependencies and requirements declared by a rules YAML, as falcoctl's push reads them."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        document = yaml.load(path.read_text(), Loader=loader)
    except (OSError, yaml.YAMLError) as error:
        raise RegistryError(f"cannot read rules file {path}: {error}") from error
    dependencies: list[Dependency] = []
    requirements: list[Requirement] = []
    for item in document if isinstance(document, list) else ():
        if not isinstance(item, dict):
            continue
        if "required_engine_version" in item:
            requirements.append(
                Requirement(
                    "engine_version_semver", _engine_semver(item["required_engine_version"])
                )
            )
        for plugin in item.get("required_plugin_versions") or ():
            try:
                dependencies.append(
                    Dependency(
                        str(plugin["name"]),
                        str(plugin["version"]),
                        tuple(
                            Requirement(str(a["name"]), str(a["version"]))
                            for a in plugin.get("alternatives") or ()
                        ),
                    )
                )
            except (KeyError, TypeError, AttributeError) as error:
                raise RegistryError(
                    f"{path}: malformed required_plugin_versions entry {plugin!r}",
                    hint="each entry needs name and version (alternatives likewise), "
                    "or pass --depends-on",
                ) from error
    return tuple(sorted_by_name(dependencies)), tuple(sorted_by_name(requirements))


def _engine_semver(value: Any) -> str:
    if isinstance(value, int):
        return f"0.{value}.0"
    text = str(value).strip()
    if text.isdigit():
        return f"0.{int(text)}.0"
    return check_version(text)
