"""`artifact install`: resolve -> plan -> fetch (digest-checked, cached) -> verify -> extract
into staging on the target filesystem -> validate -> one journaled commit -> state.

Nothing in the target directories changes until every artifact of the plan has been fetched,
verified and extracted; a failure before the commit leaves the previous files untouched.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feeds.errors import FeedsError
from feeds.resolve import UserRef, parse_user_ref
from feeds.state import InstalledArtifact, InstalledFile, StateStore
from feeds.transaction import (
    InstallLock,
    Move,
    Plan,
    commit,
    discard,
    recover,
    staging_dir,
    sweep_stale_staging,
)

if TYPE_CHECKING:
    from feeds.context import FeedsContext
    from registry.artifacts import ResolvedArtifact
    from registry.store import ArtifactStore

log = logging.getLogger(__name__)

ARTIFACT_TYPES = ("rulesfile", "plugin", "asset")
FETCH_CONCURRENCY = 4


class InstallError(FeedsError):
    exit_status = "error"


class TypeNotAllowedError(FeedsError):
    exit_status = "usage"


@dataclass(frozen=True)
class InstallDirs:
    rulesfiles: Path
    plugins: Path
    assets: Path

    def for_type(self, artifact_type: str) -> Path:
        return {"rulesfile": self.rulesfiles, "plugin": self.plugins, "asset": self.assets}[
            artifact_type
        ]

    def all(self) -> list[Path]:
        return [self.rulesfiles, self.plugins, self.assets]


@dataclass
class PlannedArtifact:
    """One line of the plan: what will be installed, from where, and why."""

    ref: str  # as the user (or a dependency) asked for it
    name: str
    type: str
    version: str
    digest: str  # root digest (manifest, or image index for plugins)
    reference: str  # locator@digest: exactly what is fetched
    reason: str  # "requested", "dependency of X", "alternative for Y"
    action: str  # install | upgrade | downgrade | reinstall | keep
    installed_version: str | None = None
    platform: str = ""
    verification: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    downloaded_blobs: int = 0

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


@dataclass
class InstallReport:
    artifacts: list[PlannedArtifact]
    dry_run: bool
    recovered: bool = False
    selection: dict[str, Any] | None = None
    lock_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "recovered_interrupted_install": self.recovered,
            "artifacts": [a.to_json() for a in self.artifacts],
            "selection": self.selection,
            "lock_file": self.lock_file,
        }


@dataclass(frozen=True)
class Selection:
    """Which rules to enable (Falco's enable-by-tag meaning), as install/follow/run take it."""

    compliance: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    maturity: str | None = None
    min_priority: str | None = None
    strength: str | None = None  # minimum rule -> control link strength (None: `technique`)

    def __bool__(self) -> bool:
        return bool(self.compliance or self.tags or self.maturity or self.min_priority)

    def validate(self) -> None:
        from feeds.compliance.selection import build_criteria

        build_criteria(
            list(self.compliance),
            self.tags,
            self.maturity,
            self.min_priority,
            strength=self.strength,
        )


@dataclass
class _Candidate:
    planned: PlannedArtifact
    user_ref: UserRef | None  # None for dependencies
    # Set for the artifacts that will be fetched:
    store: ArtifactStore | None = None
    resolved: ResolvedArtifact | None = None


# A validator gets the staged rules files (with the other installed ones) and raises on error.
Validator = Callable[[list[Path]], None]


def install_dirs_from(
    context: FeedsContext,
    rulesfiles_dir: str | None = None,
    plugins_dir: str | None = None,
    assets_dir: str | None = None,
) -> InstallDirs:
    cfg = context.config
    return InstallDirs(
        Path(rulesfiles_dir or cfg["artifact.install.rulesfiles_dir"]),
        Path(plugins_dir or cfg["artifact.install.plugins_dir"]),
        Path(assets_dir or cfg["artifact.install.assets_dir"]),
    )


@dataclass(frozen=True)
class ResolveOptions:
    """How install resolves what to fetch (feeds.planner): ranges, dependencies, requirements
    of the target engine, the lock file, downgrades."""

    engine_versions: str | None = None  # Falco /versions URL or FILE; None: falconet's engine
    allow_downgrade: bool = False
    pre: bool = False
    update: tuple[str, ...] = ()  # lock entries to re-resolve
    locked: bool = False  # install exactly the locked digests, resolve nothing
    resolve_deps: bool | None = None  # None: artifact.install.resolve_deps (default true)
    lock_path: Path | None = None  # default: <state dir>/falconet.lock


def default_lock_path(context: FeedsContext) -> Path:
    return context.state_dir / "falconet.lock"


def install(
    context: FeedsContext,
    refs: list[str],
    dirs: InstallDirs,
    *,
    allowed_types: list[str] | None = None,
    platform: str | None = None,
    dry_run: bool = False,
    validator: Validator | None = None,
    no_verify: bool = False,
    require_signature: bool = False,
    selection: Selection | None = None,
    resolve: ResolveOptions | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> InstallReport:
    resolve = resolve or ResolveOptions()
    if resolve.resolve_deps is None:
        resolve = replace(
            resolve, resolve_deps=bool(context.config["artifact.install.resolve_deps"])
        )
    refs = refs or ([] if resolve.locked else list(context.config["artifact.install.refs"]))
    if not refs and not resolve.locked:
        raise InstallError("nothing to install", "give refs, or set artifact.install.refs")
    allowed = allowed_types or list(context.config["artifact.allowed_types"]) or []
    for kind in allowed:
        if kind not in ARTIFACT_TYPES:
            raise TypeNotAllowedError(
                f"unknown artifact type {kind!r}", "allowed types are rulesfile, plugin, asset"
            )
    platform = platform or context.config["artifact.platform"] or None
    lock_path = resolve.lock_path or default_lock_path(context)
    state_dir = context.state_dir
    recovered = recover(state_dir)
    with InstallLock(state_dir):
        sweep_stale_staging(dirs.all())
        state = StateStore(state_dir)
        if selection:
            selection.validate()  # before anything is fetched or written
        no_verify = no_verify or bool(context.config["artifact.no_verify"])
        outcome = None
        try:
            candidates = _unchanged_candidates(
                context, refs, dirs, state, resolve, platform, lock_path
            )
            if candidates is None:
                if resolve.locked:
                    from feeds.planner import locked_plan

                    install_plan = locked_plan(context, lock_path, refs, resolve.allow_downgrade)
                else:
                    outcome = _resolve(context, refs, resolve, platform, lock_path)
                    install_plan = outcome.plan
                install_plan.check()  # never a silent downgrade
                candidates = _candidates(
                    context, install_plan, outcome, refs, state, platform, dirs
                )
            _refuse_disallowed(candidates, allowed)
            for candidate in candidates:
                if candidate.store is not None:
                    candidate.planned.verification = _verify(
                        context, candidate, no_verify, require_signature
                    )
            report = InstallReport([c.planned for c in candidates], dry_run, recovered)
            if dry_run:
                return report
            _apply(candidates, dirs, state_dir, state, validator, progress)
            if outcome is not None:
                from feeds.lockfile import write_lock

                write_lock(lock_path, outcome.lock)
                _stamp_resolution(context, refs, state, resolve, platform, lock_path, outcome)
            report.lock_file = str(lock_path)
        finally:
            if outcome is not None:
                outcome.catalog.close()
        if selection:
            report.selection = _write_selection(dirs, state, selection)
        return report


def _resolve(
    context: FeedsContext,
    refs: list[str],
    resolve: ResolveOptions,
    platform: str | None,
    lock_path: Path,
) -> Any:
    from feeds.planner import PlanOptions, plan_install

    options = PlanOptions(
        engine_versions=resolve.engine_versions,
        allow_downgrade=resolve.allow_downgrade,
        pre=resolve.pre,
        update=resolve.update,
        lock_path=lock_path if lock_path.is_file() else None,
        platform=platform,
        resolve_deps=resolve.resolve_deps,
    )
    return plan_install(context, refs, options)


def _unchanged_candidates(
    context: FeedsContext,
    refs: list[str],
    dirs: InstallDirs,
    state: StateStore,
    resolve: ResolveOptions,
    platform: str | None,
    lock_path: Path,
) -> list[_Candidate] | None:
    """Every requested artifact kept as installed, without resolving: when the stamp of the
    last resolution still matches all its inputs (feeds.install_stamp), every ref is pinned (a
    tag or a digest), its registry still maps it to the installed digest (one HEAD each: a
    moved tag is seen) and the installed files are intact. None: resolve in full."""
    records = {record.name: record for record in state.all()}
    user_refs = _refs_of_unchanged_resolution(context, refs, records, resolve, platform, lock_path)
    if user_refs is None:
        return None
    ordered = sorted(user_refs, key=lambda ref: ref.name)  # the plan's order
    if not all(_kept_in_place(records[ref.name], dirs) for ref in ordered):
        return None
    stores = [_open_repository(context, ref.full) for ref in ordered]
    with ThreadPoolExecutor(max_workers=FETCH_CONCURRENCY) as pool:
        current = list(pool.map(_current_digest, stores, ordered))
    if any(
        digest != records[ref.name].digest for digest, ref in zip(current, ordered, strict=True)
    ):
        return None  # a tag moved: resolve, which replaces the artifact
    log.debug("every requested artifact is installed and current: nothing to resolve")
    return [
        _Candidate(_kept(ref, records[ref.name]), ref, store)
        for ref, store in zip(ordered, stores, strict=True)
    ]


def _refs_of_unchanged_resolution(
    context: FeedsContext,
    refs: list[str],
    records: dict[str, InstalledArtifact],
    resolve: ResolveOptions,
    platform: str | None,
    lock_path: Path,
) -> list[UserRef] | None:
    """The parsed refs when the stamp matches every input of this install but the registry's
    answers (checked by the caller), else None."""
    from feeds.install_stamp import file_sha256, read_stamp, resolution_inputs

    if resolve.locked or resolve.update or resolve.engine_versions is not None:
        return None
    stamp = read_stamp(context.state_dir)
    if stamp is None or stamp.lock_sha256 != file_sha256(lock_path):
        return None
    if stamp.inputs != resolution_inputs(platform, resolve.pre, resolve.resolve_deps):
        return None
    user_refs = [parse_user_ref(text, context.indexes) for text in refs]
    if {ref.text: ref.full for ref in user_refs} != stamp.refs:
        return None
    if any(ref.version_range or not (ref.tag or ref.digest) for ref in user_refs):
        return None  # ranges and bare names resolve against the registry's releases
    installed = {name: record.digest for name, record in records.items()}
    if installed != stamp.installed or set(installed) != {ref.name for ref in user_refs}:
        return None
    return user_refs


def _current_digest(store: ArtifactStore, ref: UserRef) -> str:
    return store.resolve(ref.digest or ref.tag or "latest").digest


def _kept(user_ref: UserRef, record: InstalledArtifact) -> PlannedArtifact:
    """The plan line of an artifact kept as installed, as a full resolution writes it."""
    return PlannedArtifact(
        ref=user_ref.text,
        name=record.name,
        type=record.type,
        version=record.version,
        digest=record.digest,
        reference=f"{user_ref.locator}@{record.digest}",
        reason="requested",
        action="keep",
        installed_version=record.version,
        files=[f.path for f in record.files],
    )


def _open_repository(context: FeedsContext, full_reference: str) -> ArtifactStore:
    from registry.reference import parse_reference

    return context.open_store(parse_reference(full_reference))


def _stamp_resolution(
    context: FeedsContext,
    refs: list[str],
    state: StateStore,
    resolve: ResolveOptions,
    platform: str | None,
    lock_path: Path,
    outcome: Any,
) -> None:
    """Record the inputs of this resolution for the next install's fast path, when it is one
    the fast path can reproduce: falconet's engine, no dependencies, and exactly the requested
    artifacts installed."""
    from feeds.install_stamp import (
        clear_stamp,
        has_dependencies,
        resolution_inputs,
        write_stamp,
    )

    user_refs = [parse_user_ref(text, context.indexes) for text in refs]
    installed = {record.name: record.digest for record in state.all()}
    if (
        resolve.engine_versions is not None
        or has_dependencies(outcome.lock.artifacts.values())
        or set(installed) != {ref.name for ref in user_refs}
    ):
        clear_stamp(context.state_dir)
        return
    write_stamp(
        context.state_dir,
        {ref.text: ref.full for ref in user_refs},
        installed,
        lock_path,
        resolution_inputs(platform, resolve.pre, resolve.resolve_deps),
    )


def _candidates(
    context: FeedsContext,
    install_plan: Any,
    outcome: Any,
    refs: list[str],
    state: StateStore,
    platform: str | None,
    dirs: InstallDirs,
) -> list[_Candidate]:
    """One candidate per plan entry; those that change the disk carry their store, resolved
    manifest and config (fetched while solving; for --locked, fetched here by digest)."""
    from feeds.plan import CHANGING, KEEP
    from feeds.versions import parse_version

    asked = {}
    for text in refs:
        user_ref = parse_user_ref(text, context.indexes)
        asked[user_ref.name] = user_ref
    candidates = []
    for entry in install_plan.entries:
        user_ref = asked.get(entry.name)
        record = state.get(entry.name)
        action = entry.action
        if action == KEEP and record is not None and not _kept_in_place(record, dirs):
            action = "repair"  # same digest, but the files are changed, gone or elsewhere
        planned = PlannedArtifact(
            ref=user_ref.text if user_ref else entry.name,
            name=entry.name,
            type=record.type if record else "",
            version=entry.version,
            digest=entry.digest or "",
            reference=entry.reference or "",
            reason=entry.reason,
            action=action,
            installed_version=entry.installed_version,
        )
        candidate = _Candidate(planned, user_ref)
        if action == KEEP and outcome is not None:
            candidate.store = outcome.catalog.store(entry.name)  # verified, not fetched
        if action in CHANGING or action == "repair":
            if outcome is not None:
                version = parse_version(entry.version)
                candidate.store = outcome.catalog.store(entry.name)
                candidate.resolved = outcome.catalog.resolved(entry.name, version)
            else:
                candidate.store, candidate.resolved = _fetch_locked(context, entry, platform)
            planned.type = candidate.resolved.artifact_type
            planned.platform = candidate.resolved.platform
        elif record is not None:
            planned.files = [f.path for f in record.files]
        candidates.append(candidate)
    return candidates


def _fetch_locked(context: FeedsContext, entry: Any, platform: str | None) -> tuple[Any, Any]:
    """The store and manifest of a locked digest; its config is read too, so a malformed one
    is refused as on a resolved install."""
    from registry.artifacts import fetch_config

    store = _open_repository(context, entry.reference)
    _, _, resolved = fetch_config(store, entry.digest, platform)
    return store, resolved


def _write_selection(dirs: InstallDirs, state: StateStore, selection: Selection) -> dict[str, Any]:
    """Write the compliance overlay and the selection next to the installed rules, and record
    the selection in the state of every installed rules artifact."""
    from feeds.compliance.operations import OVERLAY_NAME, write_selection_files

    records = [r for r in state.all() if r.type == "rulesfile"]
    paths = sorted(
        f.path
        for r in records
        for f in r.files
        if f.path.endswith((".yaml", ".yml")) and Path(f.path).name != OVERLAY_NAME
    )
    files = write_selection_files(
        dirs.rulesfiles,
        paths,
        list(selection.compliance),
        list(selection.tags),
        selection.maturity,
        selection.min_priority,
        selection.strength,
    )
    summary = {
        "criteria": files.criteria,
        "overlay": str(files.overlay),
        "selection_file": str(files.selection),
        "selected_rules": len(files.rules),
    }
    for record in records:
        record.selection = summary
        state.put(record)
    return summary


def _verify(
    context: FeedsContext, candidate: _Candidate, no_verify: bool, require_signature: bool
) -> dict[str, Any]:
    """Check the signature of the exact root digest that is then downloaded, before any blob
    is fetched. Raises VerificationError when a policy is not met."""
    from feeds.verify_policy import config_verify, resolve_policy
    from registry.signatures import verify_artifact

    planned, user_ref = candidate.planned, candidate.user_ref
    entry = user_ref.entry if user_ref else None
    if entry is None and user_ref is None:  # a dependency: its index entry's policy, if any
        entry = context.indexes.lookup(planned.name)
    policy = resolve_policy(
        planned.reference,
        entry.signature if entry else None,
        config_verify(context.config),
        no_verify=no_verify,
        require_signature=require_signature,
        index_name=entry.index if entry else "",
    )
    assert candidate.store is not None
    # Named by repository and digest: the store's own tag is a placeholder. verify_artifact
    # warns about an unverified artifact itself.
    reference = candidate.store.reference.with_tag(None)
    result = verify_artifact(candidate.store, reference, planned.digest, policy)
    return {
        "verdict": result.verdict,
        "key_fingerprint": result.key_fingerprint,
        "policy": result.policy_origin,
        "reason": result.reason,
        "statement": result.statement,
    }


def _kept_in_place(record: InstalledArtifact, dirs: InstallDirs) -> bool:
    """Installed files still as installed, in the directory this install targets."""
    target = dirs.for_type(record.type) if record.type in ARTIFACT_TYPES else None
    return all(
        item.unchanged_on_disk() and (target is None or Path(item.path).parent == target)
        for item in record.files
    )


def _refuse_disallowed(candidates: list[_Candidate], allowed: list[str]) -> None:
    for candidate in candidates:
        kind = candidate.planned.type
        if allowed and kind and candidate.planned.action != "provided" and kind not in allowed:
            raise TypeNotAllowedError(
                f"{candidate.planned.ref} is a {candidate.planned.type}, not one of the allowed "
                f"types ({', '.join(allowed)})",
                "change --allowed-types",
            )


def _apply(
    candidates: list[_Candidate],
    dirs: InstallDirs,
    state_dir: Path,
    state: StateStore,
    validator: Validator | None,
    progress: Callable[[str, int, int], None] | None = None,
) -> None:
    plan = Plan()
    work = Path(tempfile.mkdtemp(prefix="falconet-pull-"))
    try:
        to_fetch = [c for c in candidates if c.resolved is not None]
        # Fetching, hashing and inflating release the GIL: artifacts are staged concurrently.
        with ThreadPoolExecutor(max_workers=FETCH_CONCURRENCY) as pool:
            futures = [pool.submit(_stage, c, dirs, work, state, progress) for c in to_fetch]
        failure: BaseException | None = None
        for future in futures:  # merge every success first, so a failure discards them all
            if future.exception() is not None:
                failure = failure or future.exception()
                continue
            staged_plan = future.result()
            plan.moves += staged_plan.moves
            plan.deletes += staged_plan.deletes
            plan.records += staged_plan.records
            plan.staging_dirs += staged_plan.staging_dirs
        if failure is not None:
            raise failure
        _refuse_file_clashes(plan)
        if validator is not None:
            staged_rules = [
                Path(m.source) for m in plan.moves if Path(m.target).parent == dirs.rulesfiles
            ]
            validator(staged_rules)
        if plan.moves or plan.records:
            commit(plan, state_dir)
    except BaseException:
        discard(plan)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _stage(
    candidate: _Candidate,
    dirs: InstallDirs,
    work: Path,
    state: StateStore,
    progress: Callable[[str, int, int], None] | None = None,
) -> Plan:
    from registry.artifacts import extract_artifact

    planned = candidate.planned
    assert candidate.store is not None and candidate.resolved is not None
    from registry.storage import storage

    target_dir = dirs.for_type(planned.type)
    stage = staging_dir(target_dir)
    plan = Plan(staging_dirs=[str(stage)])
    try:
        # durable: files and staging directories are fsynced before the journal makes the
        # commit irrevocable (the roll-forward after a crash needs every staged file).
        with storage(target_dir):  # errors name the target directory, not the staging one
            extracted = extract_artifact(
                candidate.store, candidate.resolved, stage, work, progress, durable=True
            )
    except BaseException:
        discard(plan)
        raise
    planned.downloaded_blobs = extracted.downloaded_blobs
    files: list[InstalledFile] = []
    for item in extracted.files:
        source, target = stage / item.path, target_dir / item.path
        plan.moves.append(Move(str(source), str(target)))
        stat = source.stat()  # rename keeps size and mtime
        files.append(InstalledFile(str(target), item.sha256, stat.st_size, stat.st_mtime_ns))
    previous = state.get(planned.name)
    if previous is not None:
        plan.deletes += [f.path for f in previous.files]
    planned.files = [f.path for f in files]
    record = InstalledArtifact(
        name=planned.name,
        type=planned.type,
        ref=planned.ref,
        reference=planned.reference,
        version=planned.version,
        digest=planned.digest,
        files=files,
        installed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        verification=planned.verification,
    )
    plan.records.append(record.to_dict())
    return plan


def _refuse_file_clashes(plan: Plan) -> None:
    seen: set[str] = set()
    for move in plan.moves:
        if move.target in seen:
            raise InstallError(
                f"two artifacts ship the same file {move.target}",
                "install them separately or into different directories",
            )
        seen.add(move.target)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file (as recorded in the state)."""
    from registry.digests import digest_file

    return digest_file(path)[0].split(":", 1)[1]


def uninstall(context: FeedsContext, name: str) -> InstalledArtifact:
    """Remove an installed artifact's files (those still as installed) and its record."""
    state_dir = context.state_dir
    recover(state_dir)
    with InstallLock(state_dir):
        state = StateStore(state_dir)
        record = state.get(name)
        if record is None:
            from feeds.errors import NotFoundError

            raise NotFoundError(f"{name} is not installed", "see `falconet artifact installed`")
        plan = Plan(removed_records=[name])
        for item in record.files:
            path = Path(item.path)
            if path.is_file() and not item.unchanged_on_disk():
                log.warning("keeping %s: it was changed after install", path)
                continue
            plan.deletes.append(item.path)
        commit(plan, state_dir)
        return record


def installed(context: FeedsContext) -> list[InstalledArtifact]:
    return StateStore(context.state_dir).all()
