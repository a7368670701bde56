"""The install plan: what a resolution means for what is installed, decided before anything is
written. Each artifact gets a reason (requested / dependency of X / alternative for Y) and an
action; replacing an installed newer artifact with an older one is refused unless allowed
(falcoctl#780 downgraded plugins silently)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from feeds.catalog import Catalog
from feeds.errors import FeedsError
from feeds.solver import Resolution
from feeds.versions import try_parse_version

INSTALL = "install"
UPGRADE = "upgrade"
KEEP = "keep"
REPLACE = "replace"  # same version, different digest (a re-pushed tag)
DOWNGRADE = "downgrade"  # older than installed, allowed by allow_downgrade
REFUSED = "downgrade-refused"
PROVIDED = "provided"  # the target engine already provides it: nothing to install

CHANGING = (INSTALL, UPGRADE, REPLACE, DOWNGRADE)


class DowngradeRefusedError(FeedsError):
    exit_status = "requirement_unmet"


class InstalledLike(Protocol):
    """What the plan reads from an installed-state record (feeds.state.InstalledArtifact)."""

    @property
    def version(self) -> str: ...

    @property
    def digest(self) -> str: ...


@dataclass(frozen=True)
class PlanEntry:
    name: str
    version: str
    digest: str | None
    reference: str | None
    reason: str
    action: str
    installed_version: str | None = None
    dependencies: tuple[str, ...] = ()
    note: str | None = None  # e.g. a newer release held back by the engine's version

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["dependencies"] = list(self.dependencies)
        return data


@dataclass(frozen=True)
class Plan:
    entries: tuple[PlanEntry, ...]  # sorted by name

    @property
    def refused(self) -> list[PlanEntry]:
        return [e for e in self.entries if e.action == REFUSED]

    @property
    def changes(self) -> list[PlanEntry]:
        return [e for e in self.entries if e.action in CHANGING]

    def entry(self, name: str) -> PlanEntry:
        return next(e for e in self.entries if e.name == name)

    def check(self) -> None:
        """Raise DowngradeRefusedError when the plan would replace newer installed artifacts."""
        refused = self.refused
        if refused:
            listed = ", ".join(f"{e.name} {e.installed_version} -> {e.version}" for e in refused)
            raise DowngradeRefusedError(
                f"refusing to downgrade {listed} (installed is newer than resolved)",
                "pass --allow-downgrade to accept, or ask for a range that includes the "
                "installed version",
            )

    def to_json(self) -> dict[str, Any]:
        return {"artifacts": [e.to_json() for e in self.entries]}


def build_plan(
    resolution: Resolution,
    catalog: Catalog,
    installed: Mapping[str, InstalledLike] | None = None,
    allow_downgrade: bool = False,
) -> Plan:
    installed = installed or {}
    entries = []
    for name, selected in sorted(resolution.selected.items()):
        current = installed.get(name)
        if selected.provided_by_engine:
            digest = reference = None
            action = PROVIDED
        else:
            digest = catalog.digest(name, selected.version)
            reference = catalog.reference(name, selected.version)
            action = plan_action(str(selected.version), digest, current, allow_downgrade)
        entries.append(
            PlanEntry(
                name=name,
                version=str(selected.version),
                digest=digest,
                reference=reference,
                reason=selected.reason,
                action=action,
                installed_version=current.version if current else None,
                dependencies=selected.dependencies,
                note=selected.held_back,
            )
        )
    return Plan(tuple(entries))


def plan_action(
    version: str, digest: str | None, current: InstalledLike | None, allow_downgrade: bool
) -> str:
    """What installing `version` (at `digest`) means given the installed record."""
    if current is None:
        return INSTALL
    have = try_parse_version(current.version)
    want = try_parse_version(version)
    if have is None or want is None or want > have:
        # An installed record without a semver version cannot be "newer": replace it.
        return UPGRADE
    if want < have:
        return DOWNGRADE if allow_downgrade else REFUSED
    if digest is not None and current.digest and digest != current.digest:
        return REPLACE
    return KEEP
