"""From what the user typed to a checked plan, before anything is fetched beyond configs:
references -> requests (ranges, or the version a tag/digest holds) -> registry catalog ->
solver (dependencies, alternatives, requirements of the target engine, lock preferences) ->
plan (actions, downgrade refusal) -> the lock file the install would write.

`install` calls `plan_install`, shows the plan on --dry-run, and after its commit writes
`outcome.lock`; `install --locked` calls `locked_artifacts` instead and never resolves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from feeds.errors import FeedsError, NotFoundError
from feeds.lockfile import LockedArtifact, LockFile, lock_from, read_lock, require_lock
from feeds.plan import PROVIDED, InstalledLike, Plan, PlanEntry, build_plan, plan_action
from feeds.registry_catalog import RegistryCatalog
from feeds.requirements import EngineVersions, load_engine_versions
from feeds.resolve import UserRef, parse_user_ref
from feeds.solver import Request, Resolution, resolve
from feeds.state import InstalledArtifact, StateStore
from feeds.versions import (
    ANY,
    CARET,
    LATEST_COMPATIBLE,
    VersionRange,
    parse_range,
    try_parse_version,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from feeds.context import FeedsContext
    from registry.artifacts import ArtifactConfig, ResolvedArtifact
    from registry.store import ArtifactStore


@dataclass(frozen=True)
class PlanOptions:
    engine_versions: str | None = None  # Falco /versions URL or FILE; None: falconet's engine
    allow_downgrade: bool = False
    pre: bool = False
    update: Sequence[str] = ()  # lock entries to re-resolve (install --update NAME)
    lock_path: Path | None = None  # falconet.lock to honour; None: no lock
    platform: str | None = None
    policy: str = CARET
    resolve_deps: bool = True  # False: only the requested artifacts (falcoctl --resolve-deps=false)
    # Keep installed artifacts in the resolution, so a new install cannot break what they
    # depend on (it may upgrade them when it must; downgrades are refused by the plan).
    keep_installed: bool = True


@dataclass
class PlanOutcome:
    plan: Plan
    resolution: Resolution
    lock: LockFile  # what falconet.lock becomes once the plan is installed
    engine: EngineVersions
    catalog: RegistryCatalog  # stores and resolved manifests for the installer; close() it
    requests: list[Request] = field(default_factory=list)

    def to_fetch(self) -> list[FetchTarget]:
        """What the installer must download: the entries whose action changes the disk, each
        with its store, resolved manifest and config (already fetched while solving)."""
        targets = []
        for entry in self.plan.changes:
            version = self.resolution.selected[entry.name].version
            targets.append(
                FetchTarget(
                    entry,
                    self.catalog.store(entry.name),
                    self.catalog.resolved(entry.name, version),
                    self.catalog.config(entry.name, version),
                )
            )
        return targets


@dataclass(frozen=True)
class FetchTarget:
    entry: PlanEntry
    store: ArtifactStore
    resolved: ResolvedArtifact
    config: ArtifactConfig


def plan_install(context: FeedsContext, refs: Sequence[str], options: PlanOptions) -> PlanOutcome:
    engine = load_engine_versions(options.engine_versions)
    # falconet's own engine stands in for some plugins; an external Falco loads .so files,
    # which are installed like any other dependency.
    provided = dict(engine.plugin_versions) if options.engine_versions is None else {}
    previous = read_lock(options.lock_path) if options.lock_path else None
    user_refs = [parse_user_ref(text, context.indexes) for text in refs]
    explicit = {ref.name: ref.locator for ref in user_refs}

    def locate(name: str) -> str:
        return explicit[name] if name in explicit else context.indexes.find(name).locator

    installed_records = {record.name: record for record in StateStore(context.state_dir).all()}
    for name, record in installed_records.items():
        explicit.setdefault(name, record.reference.split("@", 1)[0])
    catalog = RegistryCatalog(locate, _store_opener(context), options.platform)
    try:
        _prefetch(user_refs, installed_records, options, catalog)
        requests = [_request(ref, catalog) for ref in user_refs]
        installed = {
            name: version
            for name, record in installed_records.items()
            if (version := try_parse_version(record.version)) is not None
        }
        # Installing something must not move what is installed unless it has to: installed
        # versions are preferred, then the lock's; --update lifts both for the names given.
        still = {n: v for n, v in installed.items() if n not in set(options.update)}
        prefer = {**still, **(previous.locked_versions(options.update) if previous else {})}
        if options.keep_installed and options.resolve_deps:
            requested = {request.name for request in requests}
            requests += _installed_requests(installed_records, requested, catalog)
        resolution = resolve(
            requests,
            catalog,
            engine=engine,
            installed=installed,
            provided=provided,
            pre=options.pre,
            policy=options.policy,
            prefer=prefer,
            resolve_deps=options.resolve_deps,
        )
        plan = build_plan(resolution, catalog, installed_records, options.allow_downgrade)
    except BaseException:
        catalog.close()
        raise
    lock = lock_from(resolution, plan, previous)
    return PlanOutcome(plan, resolution, lock, engine, catalog, requests)


def locked_artifacts(lock_path: Path, refs: Sequence[str]) -> list[LockedArtifact]:
    """install --locked: exactly what the lock names for `refs` (all refs when none given)."""
    lock = require_lock(lock_path)
    return lock.closure(list(refs) or sorted(lock.refs))


def locked_plan(
    context: FeedsContext, lock_path: Path, refs: Sequence[str], allow_downgrade: bool = False
) -> Plan:
    """The plan for install --locked: the locked digests, each confirmed present in its
    registry (one HEAD each), compared with what is installed. Nothing is resolved."""
    from registry.errors import NotFoundError as RegistryNotFound

    open_repository = _store_opener(context)
    installed = {record.name: record for record in StateStore(context.state_dir).all()}
    entries = []
    for artifact in locked_artifacts(lock_path, refs):
        if artifact.provided_by_engine:
            entries.append(_locked_entry(artifact, PROVIDED, installed))
            continue
        if not artifact.reference or not artifact.digest:
            raise NotFoundError(
                f"{lock_path}: {artifact.name} has no digest to install exactly",
                f"re-resolve it: install --update {artifact.name}",
            )
        locator = artifact.reference.split("@", 1)[0]
        try:
            open_repository(locator).resolve(artifact.digest)
        except RegistryNotFound:
            raise NotFoundError(
                f"locked {artifact.name} {artifact.version} ({artifact.digest}) is gone from "
                f"{locator}",
                f"re-resolve it: install --update {artifact.name}",
            ) from None
        action = plan_action(
            artifact.version, artifact.digest, installed.get(artifact.name), allow_downgrade
        )
        entries.append(_locked_entry(artifact, action, installed))
    return Plan(tuple(entries))


def _locked_entry(
    artifact: LockedArtifact, action: str, installed: Mapping[str, InstalledLike]
) -> PlanEntry:
    current = installed.get(artifact.name)
    return PlanEntry(
        name=artifact.name,
        version=artifact.version,
        digest=artifact.digest,
        reference=artifact.reference,
        reason="locked",
        action=action,
        installed_version=current.version if current else None,
        dependencies=artifact.dependencies,
    )


def _installed_requests(
    records: Mapping[str, InstalledArtifact], requested: set[str], catalog: RegistryCatalog
) -> list[Request]:
    """Installed artifacts not asked for, at any version (their installed one preferred).
    One whose digest is gone from its registry is left out with a warning: it cannot be
    re-resolved, but it must not block installing something else."""
    from registry.errors import RegistryError

    kept = []
    for name, record in sorted(records.items()):
        if name in requested or not record.digest:
            continue
        try:
            catalog.add_fixed(name, record.digest)
        except (RegistryError, FeedsError) as error:
            log.warning(
                "installed %s %s left out of the resolution: %s", name, record.version, error
            )
            continue
        kept.append(Request(name, ANY, name, installed=True))
    return kept


def _prefetch(
    user_refs: Sequence[UserRef],
    installed: Mapping[str, InstalledArtifact],
    options: PlanOptions,
    catalog: RegistryCatalog,
) -> None:
    """Start every fetch the requests below will wait for, so they overlap: the configs of
    pinned refs (and of installed artifacts kept in the resolution), the tag lists of the
    others."""
    pinned = [ref for ref in user_refs if (ref.digest or ref.tag) and not ref.version_range]
    catalog.prefetch_fixed((ref.name, ref.digest or ref.tag or "") for ref in pinned)
    catalog.prefetch(ref.name for ref in user_refs if ref not in pinned)
    if options.keep_installed and options.resolve_deps:
        requested = {ref.name for ref in user_refs}
        catalog.prefetch_fixed(
            (name, record.digest)
            for name, record in sorted(installed.items())
            if name not in requested and record.digest
        )


def _request(ref: UserRef, catalog: RegistryCatalog) -> Request:
    if ref.version_range:
        return Request(ref.name, parse_range(ref.version_range), ref.text)
    if not ref.digest and not ref.tag and catalog.versions(ref.name):
        # A bare name means the newest release the target engine can run, not whatever the
        # floating `latest` tag points at (rules#293); `latest` only when there are no releases.
        return Request(ref.name, parse_range(LATEST_COMPATIBLE), ref.text)
    target = ref.digest or ref.tag or "latest"
    version = catalog.add_fixed(ref.name, target)
    return Request(ref.name, _exactly(str(version)), ref.text)


def _exactly(version: str) -> VersionRange:
    return parse_range(f"={version}")


def _store_opener(context: FeedsContext) -> Callable[[str], ArtifactStore]:
    from registry.reference import parse_reference

    def open_repository(locator: str) -> ArtifactStore:
        return context.open_store(parse_reference(f"{locator}:latest"))

    return open_repository
