"""Follow refs: a cheap check per ref on every tick, the transactional install on a change.

Each tick, per ref: one HEAD of the followed tag on a store kept across ticks (so its registry
token is reused). The digest is compared with the one last applied (kept in
<state>/follow.json, so a restart does not re-download). Unchanged: nothing else is requested.
Changed: feeds.install (resolver, signature verification, requirement checks against the engine,
re-read on every attempt) stages every file, compiles the staged ruleset (the dry run), then
commits in one journaled transaction; the set it replaced is kept as last-good
(feeds.lastgood). Any failure keeps what runs, is logged and reported through `on_alert`, and
is retried on the next tick; a registry that keeps failing (429/5xx, down) is backed off.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from feeds import lastgood
from feeds.errors import FeedsError
from feeds.install import InstallDirs, ResolveOptions, Selection, Validator, install
from feeds.resolve import UserRef, parse_user_ref
from feeds.schedule import Schedule
from feeds.state import StateStore

if TYPE_CHECKING:
    from feeds.context import FeedsContext
    from registry.store import ArtifactStore

log = logging.getLogger(__name__)

FOLLOW_STATE = "follow.json"
BACKOFF_BASE = 5.0  # seconds, doubled per consecutive network failure
BACKOFF_MAX = 3600.0

UpdateCallback = Callable[[list[Path]], None]  # the rules files now installed, in load order
AlertCallback = Callable[[str, str], None]  # (ref, why the update was refused)
TickCallback = Callable[[list["CheckResult"]], None]  # every tick's results


class FollowMetrics(Protocol):
    def follow_checked(self, ref: str) -> None: ...
    def follow_succeeded(self, ref: str) -> None: ...
    def follow_updated(self, ref: str) -> None: ...
    def follow_failed(self, ref: str) -> None: ...


@dataclass(frozen=True)
class FollowOptions:
    refs: tuple[str, ...]
    dirs: InstallDirs
    engine_versions: str | None = None  # Falco /versions URL or FILE; None: falconet's engine
    no_verify: bool = False
    require_signature: bool = False
    allowed_types: tuple[str, ...] = ()
    platform: str | None = None
    selection: Selection | None = None
    validate: bool = True  # compile the staged ruleset before the swap


@dataclass
class CheckResult:
    ref: str
    status: str  # unchanged | updated | held | backoff | failed
    digest: str | None = None
    version: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class _Watch:
    """One followed ref and what is kept about it between ticks."""

    text: str
    user_ref: UserRef | None = None
    store: ArtifactStore | None = None
    failures: int = 0
    not_before: float = 0.0
    tag: str = "latest"


class RulesRefusedError(FeedsError):
    """The staged ruleset does not compile: the update is refused."""

    exit_status = "error"


def ruleset_validator(rules_dir: Path) -> Validator:
    """The dry run: compile the staged rules files together with the other rules files of the
    directory, in Falco's load order (by file name), and raise on any error."""

    def validate(staged: list[Path]) -> None:
        from engine.compile_guard import vet_rules_files
        from engine.errors import EngineError

        staged_names = {p.name for p in staged}
        others = [p for p in rules_files(rules_dir) if p.name not in staged_names]
        paths = sorted([*others, *staged], key=lambda p: p.name)
        if not paths:
            return
        try:
            # In a resource-limited child: the daemon's follow thread runs this on whatever
            # a feed serves, and the daemon's memory and time are not the feed's to take.
            vet_rules_files(paths)
        except EngineError as error:
            # Name the files as they would be installed, not their staging copies.
            message = str(error)
            for path in staged:
                message = message.replace(str(path), str(rules_dir / path.name))
            raise RulesRefusedError(message, error.hint) from error

    return validate


def rules_files(rules_dir: Path) -> list[Path]:
    """Rules files of a directory in the order Falco loads them."""
    if not rules_dir.is_dir():
        return []
    return sorted(p for p in rules_dir.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))


class Follower:
    def __init__(
        self,
        context: FeedsContext,
        options: FollowOptions,
        schedule: Schedule,
        *,
        on_update: UpdateCallback | None = None,
        on_alert: AlertCallback | None = None,
        metrics: FollowMetrics | None = None,
        on_tick: TickCallback | None = None,
    ) -> None:
        self.context = context
        self.options = options
        self.schedule = schedule
        self.on_update = on_update
        self.on_alert = on_alert
        self.metrics = metrics
        self.on_tick = on_tick
        self.watches = [_Watch(text) for text in options.refs]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop --------------------------------------------------------------------------

    def run(self, ticks: int | None = None) -> None:
        """Check on the schedule until stop() (or `ticks` checks have run)."""
        delay = self.schedule.first_delay()
        done = 0
        while not self._stop.wait(delay):
            results = self.check()
            if self.on_tick is not None:
                self.on_tick(results)
            done += 1
            if ticks is not None and done >= ticks:
                return
            delay = self.schedule.next_delay()

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="falconet-follow", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- one tick --------------------------------------------------------------------------

    def check(self) -> list[CheckResult]:
        """One tick: check every ref (and update the changed ones)."""
        return [self._check_ref(watch) for watch in self.watches]

    def _check_ref(self, watch: _Watch) -> CheckResult:
        now = time.monotonic()
        if now < watch.not_before:
            return CheckResult(watch.text, "backoff")
        self._count("follow_checked", watch.text)
        try:
            digest = self._remote_digest(watch)
            result = self._compare_and_update(watch, digest)
        except Exception as error:  # every failure keeps what runs and is retried
            return self._failed(watch, error)
        watch.failures = 0
        self._count("follow_succeeded", watch.text)
        return result

    def _remote_digest(self, watch: _Watch) -> str:
        """The one conditional request of an unchanged tick: HEAD of the followed tag."""
        if watch.store is None:
            from registry.reference import parse_reference

            user_ref = parse_user_ref(watch.text, self.context.indexes)
            if user_ref.digest:
                watch.tag = user_ref.digest
            else:
                watch.tag = user_ref.tag or "latest"
            reference = parse_reference(f"{user_ref.locator}:{user_ref.tag or 'latest'}")
            watch.store = self.context.open_store(reference)
            watch.user_ref = user_ref
        return watch.store.resolve(watch.tag).digest

    def _compare_and_update(self, watch: _Watch, digest: str) -> CheckResult:
        state_dir = self.context.state_dir
        if digest == self._applied_digest(watch.text):
            return CheckResult(watch.text, "unchanged", digest)
        name = watch.user_ref.name if watch.user_ref else watch.text
        if lastgood.holds(state_dir).get(name) == digest:
            log.info("%s: %s was rolled back from; not reapplying it", watch.text, digest)
            return CheckResult(watch.text, "held", digest)
        log.info("%s: new digest %s", watch.text, digest)
        return self._update(watch, digest)

    def _update(self, watch: _Watch, digest: str) -> CheckResult:
        options = self.options
        state_dir = self.context.state_dir
        snapshot = lastgood.snapshot(state_dir, StateStore(state_dir).all())
        try:
            report = install(
                self.context,
                [watch.text],
                options.dirs,
                allowed_types=list(options.allowed_types) or None,
                platform=options.platform,
                validator=ruleset_validator(options.dirs.rulesfiles) if options.validate else None,
                no_verify=options.no_verify,
                require_signature=options.require_signature,
                selection=options.selection,
                # The followed artifact moves to what its tag now names (not the installed
                # or locked version the resolver would otherwise prefer).
                resolve=ResolveOptions(
                    engine_versions=options.engine_versions, update=self._unlock(watch)
                ),
            )
        except BaseException:
            lastgood.drop(snapshot)
            raise
        changed = [a.name for a in report.artifacts if a.action not in ("keep", "provided")]
        lastgood.promote(state_dir, snapshot, changed)
        for name in changed:
            lastgood.release_hold(state_dir, name)
        self._record_applied(watch.text, digest)
        requested = next((a for a in report.artifacts if a.ref == watch.text), None)
        self._count("follow_updated", watch.text)
        if changed and self.on_update is not None:
            self.on_update(rules_files(options.dirs.rulesfiles))
        return CheckResult(watch.text, "updated", digest, requested.version if requested else None)

    def _unlock(self, watch: _Watch) -> tuple[str, ...]:
        """The lock entry to re-resolve: the followed artifact, once it is locked."""
        from feeds.install import default_lock_path
        from feeds.lockfile import read_lock

        lock_path = default_lock_path(self.context)
        if watch.user_ref is None or not lock_path.is_file():
            return ()
        lock = read_lock(lock_path)
        locked = lock is not None and watch.user_ref.name in lock.artifacts
        return (watch.user_ref.name,) if locked else ()

    def _failed(self, watch: _Watch, error: Exception) -> CheckResult:
        from feeds.requirements import EngineVersionsNetworkError
        from registry.errors import NetworkError

        message = str(error)
        hint = getattr(error, "hint", None)
        log.error("follow %s: %s%s", watch.text, message, f" ({hint})" if hint else "")
        self._count("follow_failed", watch.text)
        if isinstance(error, NetworkError | EngineVersionsNetworkError):
            # The registry is rate limiting, failing or away: space the next attempts out.
            watch.failures += 1
            ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (watch.failures - 1))
            watch.not_before = time.monotonic() + random.uniform(ceiling / 2, ceiling)
        if self.on_alert is not None:
            self.on_alert(watch.text, message)
        return CheckResult(watch.text, "failed", error=message)

    def _count(self, what: str, ref: str) -> None:
        if self.metrics is not None:
            getattr(self.metrics, what)(ref)

    # -- what was applied ------------------------------------------------------------------

    def _state_path(self) -> Path:
        return self.context.state_dir / FOLLOW_STATE

    def _applied(self) -> dict[str, str]:
        from feeds.state import load_json_record

        path = self._state_path()
        if not path.is_file():
            return {}
        return load_json_record(
            path, "follow state", f"delete {path} (follow re-checks every ref on its next tick)"
        )

    def _applied_digest(self, ref: str) -> str | None:
        """The digest last applied for this ref: follow's record, else an install of the same
        ref (so following what `artifact install` put there downloads nothing)."""
        applied = self._applied().get(ref)
        if applied:
            return applied
        record = next((r for r in StateStore(self.context.state_dir).all() if r.ref == ref), None)
        return record.digest if record else None

    def _record_applied(self, ref: str, digest: str) -> None:
        values = {**self._applied(), ref: digest}
        path = self._state_path()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(values, indent=2, sort_keys=True))
        os.replace(tmp, path)


def follower_from_config(
    context: FeedsContext,
    dirs: InstallDirs,
    *,
    refs: tuple[str, ...] = (),
    engine_versions: str | None = None,
    on_update: UpdateCallback | None = None,
    on_alert: AlertCallback | None = None,
    metrics: FollowMetrics | None = None,
    on_tick: TickCallback | None = None,
    **options: Any,
) -> Follower | None:
    """A Follower as configured (artifact.follow.refs|every|cron|startup|compliance|strength), or
    None when there is nothing to follow. `options` go to FollowOptions (no_verify, platform...)."""
    config = context.config
    followed = tuple(refs or config["artifact.follow.refs"])
    if not followed:
        return None
    schedule = Schedule.parse(
        config["artifact.follow.every"],
        config["artifact.follow.cron"] or None,
        config["artifact.follow.startup"],
    )
    compliance = tuple(config["artifact.follow.compliance"])
    strength = config["artifact.follow.strength"] or None
    follow_options = FollowOptions(
        refs=followed,
        dirs=dirs,
        engine_versions=engine_versions or config["artifact.follow.engine_versions"] or None,
        selection=Selection(compliance, strength=strength) if compliance else None,
        **options,
    )
    return Follower(
        context,
        follow_options,
        schedule,
        on_update=on_update,
        on_alert=on_alert,
        metrics=metrics,
        on_tick=on_tick,
    )


def installed_file_versions(state_dir: Path) -> dict[str, str]:
    """{installed file path: version of the artifact that shipped it}, for the /rules endpoint
    (engine.web.rules_document)."""
    return {f.path: r.version for r in StateStore(state_dir).all() for f in r.files}
