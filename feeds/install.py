"""`artifact install`: resolve -> plan -> fetch (digest-checked, cached) -> verify -> extract
into staging on the target filesystem -> validate -> one journaled commit -> state.

Nothing in the target directories changes until every artifact of the plan has been fetched,
verified and extracted; a failure before the commit leaves the previous files untouched.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
    fsync_tree,
    recover,
    staging_dir,
    sweep_stale_staging,
)

if TYPE_CHECKING:
    from feeds.context import FeedsContext
    from registry.artifacts import ArtifactConfig, ResolvedArtifact
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

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "recovered_interrupted_install": self.recovered,
            "artifacts": [a.to_json() for a in self.artifacts],
            "selection": self.selection,
        }


@dataclass(frozen=True)
class Selection:
    """Which rules to enable (Falco's enable-by-tag meaning), as install/follow/run take it."""

    compliance: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    maturity: str | None = None
    min_priority: str | None = None

    def __bool__(self) -> bool:
        return bool(self.compliance or self.tags or self.maturity or self.min_priority)

    def validate(self) -> None:
        from feeds.compliance.selection import build_criteria

        build_criteria(list(self.compliance), self.tags, self.maturity, self.min_priority)


@dataclass
class _Candidate:
    planned: PlannedArtifact
    user_ref: UserRef
    store: ArtifactStore
    resolved: ResolvedArtifact
    config: ArtifactConfig


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
) -> InstallReport:
    refs = refs or list(context.config["artifact.install.refs"])
    if not refs:
        raise InstallError("nothing to install", "give refs, or set artifact.install.refs")
    allowed = allowed_types or list(context.config["artifact.allowed_types"]) or []
    for kind in allowed:
        if kind not in ARTIFACT_TYPES:
            raise TypeNotAllowedError(
                f"unknown artifact type {kind!r}", "allowed types are rulesfile, plugin, asset"
            )
    platform = platform or context.config["artifact.platform"] or None
    state_dir = context.state_dir
    recovered = recover(state_dir)
    with InstallLock(state_dir):
        sweep_stale_staging(dirs.all())
        state = StateStore(state_dir)
        if selection:
            selection.validate()  # before anything is fetched or written
        no_verify = no_verify or bool(context.config["artifact.no_verify"])
        candidates = [
            _plan_one(context, text, state, platform, no_verify, require_signature) for text in refs
        ]
        _refuse_disallowed(candidates, allowed)
        _refuse_duplicates(candidates)
        report = InstallReport([c.planned for c in candidates], dry_run, recovered)
        if dry_run:
            return report
        _apply(candidates, dirs, state_dir, state, validator)
        if selection:
            report.selection = _write_selection(dirs, state, selection)
        return report


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


def _plan_one(
    context: FeedsContext,
    text: str,
    state: StateStore,
    platform: str | None,
    no_verify: bool,
    require_signature: bool,
) -> _Candidate:
    from registry.artifacts import fetch_config
    from registry.reference import parse_reference
    from registry.store import open_store

    user_ref = parse_user_ref(text, context.indexes)
    if user_ref.version_range:
        raise InstallError(
            f"version ranges need the resolver: {text}",
            "use a tag (name:5) or a digest (name@sha256:...)",
        )
    reference = parse_reference(user_ref.full)
    store = open_store(reference, context.client_options(reference.registry))
    config, _, resolved = fetch_config(store, reference.target, platform)
    installed = state.get(config.name)
    planned = PlannedArtifact(
        ref=text,
        name=config.name,
        type=resolved.artifact_type,
        version=config.version,
        digest=resolved.root.digest,
        reference=f"{reference.locator}@{resolved.root.digest}",
        reason="requested",
        action=_action(installed, config.version, resolved.root.digest),
        installed_version=installed.version if installed else None,
        platform=resolved.platform,
    )
    planned.verification = _verify(context, user_ref, store, planned, no_verify, require_signature)
    return _Candidate(planned, user_ref, store, resolved, config)


def _verify(
    context: FeedsContext,
    user_ref: UserRef,
    store: ArtifactStore,
    planned: PlannedArtifact,
    no_verify: bool,
    require_signature: bool,
) -> dict[str, Any]:
    """Check the signature of the exact root digest that is then downloaded, before any blob
    is fetched. Raises VerificationError when a policy is not met."""
    from feeds.verify_policy import config_verify, resolve_policy
    from registry.signatures import UNVERIFIED, verify_artifact

    signature = user_ref.entry.signature if user_ref.entry else None
    policy = resolve_policy(
        user_ref.full,
        signature,
        config_verify(context.config),
        no_verify=no_verify,
        require_signature=require_signature,
    )
    result = verify_artifact(store, store.reference, planned.digest, policy)
    if result.verdict == UNVERIFIED:
        log.warning("%s is unverified: %s", planned.ref, result.reason or "no policy applies")
    return {
        "verdict": result.verdict,
        "key_fingerprint": result.key_fingerprint,
        "policy": result.policy_origin,
        "reason": result.reason,
    }


def _action(installed: InstalledArtifact | None, version: str, digest: str) -> str:
    if installed is None:
        return "install"
    if installed.digest == digest and _files_intact(installed):
        return "keep"
    from feeds.versions_compare import compare_versions

    order = compare_versions(version, installed.version)
    return "upgrade" if order > 0 else "downgrade" if order < 0 else "reinstall"


def _files_intact(record: InstalledArtifact) -> bool:
    return all(item.unchanged_on_disk() for item in record.files)


def _refuse_disallowed(candidates: list[_Candidate], allowed: list[str]) -> None:
    for candidate in candidates:
        if allowed and candidate.planned.type not in allowed:
            raise TypeNotAllowedError(
                f"{candidate.planned.ref} is a {candidate.planned.type}, not one of the allowed "
                f"types ({', '.join(allowed)})",
                "change --allowed-types",
            )


def _refuse_duplicates(candidates: list[_Candidate]) -> None:
    seen: dict[str, str] = {}
    for candidate in candidates:
        name = candidate.planned.name
        if name in seen and seen[name] != candidate.planned.digest:
            raise InstallError(
                f"{name} is requested twice with different versions",
                "ask for one version of each artifact",
            )
        seen[name] = candidate.planned.digest


def _apply(
    candidates: list[_Candidate],
    dirs: InstallDirs,
    state_dir: Path,
    state: StateStore,
    validator: Validator | None,
) -> None:
    plan = Plan()
    work = Path(tempfile.mkdtemp(prefix="falconet-pull-"))
    try:
        to_fetch = []
        for candidate in candidates:
            if candidate.planned.action == "keep":
                record = state.get(candidate.planned.name)
                candidate.planned.files = [f.path for f in record.files] if record else []
            else:
                to_fetch.append(candidate)
        # Fetching, hashing and inflating release the GIL: artifacts are staged concurrently.
        with ThreadPoolExecutor(max_workers=FETCH_CONCURRENCY) as pool:
            futures = [pool.submit(_stage, c, dirs, work, state) for c in to_fetch]
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


def _stage(candidate: _Candidate, dirs: InstallDirs, work: Path, state: StateStore) -> Plan:
    from registry.artifacts import pull_artifact
    from registry.extract import extract_targz

    planned = candidate.planned
    pulled = pull_artifact(
        candidate.store, work / planned.name, planned.digest, planned.platform or None
    )
    planned.downloaded_blobs = pulled.downloaded_blobs
    target_dir = dirs.for_type(planned.type)
    stage = staging_dir(target_dir)
    plan = Plan(staging_dirs=[str(stage)])
    relative: list[Path] = []
    try:
        for archive in pulled.files:
            relative += extract_targz(archive, stage)
        fsync_tree(stage)  # durable before the journal makes the commit irrevocable
    except BaseException:
        discard(plan)
        raise
    files: list[InstalledFile] = []
    for rel in relative:
        source, target = stage / rel, target_dir / rel
        plan.moves.append(Move(str(source), str(target)))
        stat = source.stat()  # rename keeps size and mtime
        files.append(
            InstalledFile(str(target), sha256_file(source), stat.st_size, stat.st_mtime_ns)
        )
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
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
