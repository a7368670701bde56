"""The framework catalogue: frameworks, control families and controls, loaded from data files.

The data lives in feeds/compliance/frameworks/*.yaml (one framework per file) and is validated
against schemas/compliance-catalogue.schema.json when loaded. FedRAMP is derived: its controls are
`<Baseline>_<NIST id>` for each NIST control the NIST -> FedRAMP mapping places in a baseline.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import yaml

import schemas
from feeds.compliance.errors import ComplianceError, UnknownFrameworkError

FEDRAMP = "fedramp"
NIST = "nist-800-53"
MITRE = "mitre-attack"


@dataclass(frozen=True)
class Control:
    framework: str
    id: str
    family: str
    title: str
    kind: str | None = None
    tactics: tuple[str, ...] = ()
    matrices: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)  # identity hash: cached lookups key on it
class Framework:
    id: str
    name: str
    version: str
    source: str
    aliases: tuple[str, ...]
    families: dict[str, str]
    controls: dict[str, Control]

    def control(self, control_id: str) -> Control | None:
        """The entry of `control_id`, or of its base control for an enhancement (AC-2(4))."""
        found = self.controls.get(control_id)
        if found is None and "(" in control_id and self.id == NIST:
            found = self.controls.get(control_id.split("(", 1)[0])
        return found


@dataclass(frozen=True, eq=False)  # identity hash: cached lookups key on it
class Catalogue:
    frameworks: dict[str, Framework]
    fedramp_baselines: dict[str, tuple[str, ...]]  # NIST control id -> baselines selecting it

    def framework(self, name: str) -> Framework:
        """Resolve a framework id or alias (case-insensitive, `_` and `-` equivalent)."""
        wanted = _fold(name)
        for framework in self.frameworks.values():
            if wanted in {_fold(framework.id), *(_fold(a) for a in framework.aliases)}:
                return framework
        known = list(self.frameworks)
        by_name = {_fold(a): f.id for f in self.frameworks.values() for a in (f.id, *f.aliases)}
        close = difflib.get_close_matches(wanted, list(by_name), n=1)
        hint = f"did you mean {by_name[close[0]]}?" if close else f"known: {', '.join(known)}"
        raise UnknownFrameworkError(f"unknown compliance framework {name!r}", hint)


def _fold(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _read_data(package: str, name: str) -> Any:
    text = resources.files(package).joinpath(name).read_text("utf-8")
    return yaml.safe_load(text)


def validated(data: Any, schema_name: str, where: str) -> Any:
    try:
        jsonschema.validate(data, schemas.load(schema_name))
    except jsonschema.ValidationError as error:
        path = "/".join(str(p) for p in error.absolute_path)
        raise ComplianceError(f"{where}: {path}: {error.message}") from error
    return data


def catalogue_files() -> list[str]:
    package = resources.files("feeds.compliance.frameworks")
    return sorted(p.name for p in package.iterdir() if p.name.endswith(".yaml"))


def load_catalogue_file(name: str) -> dict[str, Any]:
    """One catalogue data file, validated against its schema."""
    data = _read_data("feeds.compliance.frameworks", name)
    return validated(data, "compliance-catalogue", f"frameworks/{name}")


def load_fedramp_baselines() -> dict[str, tuple[str, ...]]:
    data = _read_data("feeds.compliance.mappings", "nist-800-53-to-fedramp.yaml")
    rows = validated(data, "compliance-mapping", "mappings/nist-800-53-to-fedramp.yaml")
    return {row["nist"]: tuple(row["baselines"]) for row in rows["mappings"]}


def _framework_from(data: dict[str, Any], controls: list[Control]) -> Framework:
    return Framework(
        id=data["framework"],
        name=data["name"],
        version=data["version"],
        source=data["source"],
        aliases=tuple(data.get("aliases", ())),
        families=dict(data["families"]),
        controls={c.id: c for c in controls},
    )


def _listed_controls(data: dict[str, Any]) -> list[Control]:
    where = f"catalogue of {data['framework']}"
    controls = []
    for entry in data["controls"]:
        if entry["family"] not in data["families"]:
            raise ComplianceError(f"{where}: control {entry['id']} has unknown family")
        controls.append(
            Control(
                framework=data["framework"],
                id=entry["id"],
                family=entry["family"],
                title=entry["title"],
                kind=entry.get("kind"),
                tactics=tuple(entry.get("tactics", ())),
                matrices=tuple(entry.get("matrices", ())),
            )
        )
    return controls


def _fedramp_controls(nist: Framework, baselines: dict[str, tuple[str, ...]]) -> list[Control]:
    """`<Baseline>_<NIST id>` controls, in baseline order then NIST catalogue order."""
    controls = []
    for baseline in ("Low", "Moderate", "High"):
        for nist_id, nist_control in nist.controls.items():
            if baseline in baselines.get(nist_id, ()):
                controls.append(
                    Control(FEDRAMP, f"{baseline}_{nist_id}", baseline, nist_control.title)
                )
    return controls


@cache
def load_catalogue() -> Catalogue:
    """Every framework of the catalogue, validated; cached for the process."""
    raw = [load_catalogue_file(name) for name in catalogue_files()]
    baselines = load_fedramp_baselines()
    frameworks: dict[str, Framework] = {}
    for data in raw:
        if not data.get("derived_from"):
            frameworks[data["framework"]] = _framework_from(data, _listed_controls(data))
    for nist_id in baselines:
        if nist_id not in frameworks[NIST].controls:
            raise ComplianceError(f"NIST -> FedRAMP mapping names {nist_id}, not in the catalogue")
    for data in raw:
        if data.get("derived_from") == NIST and data["framework"] == FEDRAMP:
            controls = _fedramp_controls(frameworks[NIST], baselines)
            frameworks[FEDRAMP] = _framework_from(data, controls)
    order = [d["framework"] for d in raw]
    return Catalogue({k: frameworks[k] for k in sorted(frameworks, key=order.index)}, baselines)
