"""Transactional file replacement on the target filesystem.

Staged files live in a hidden directory inside each target directory (same filesystem, so a
rename is atomic). Commit writes a journal first, then renames every file into place, removes the
files the previous versions shipped and the new ones do not, and records the new state. A crash
at any point is repaired by `recover()`: with the journal present the commit is rolled forward,
so the directory holds the complete new set; without it nothing was touched (complete old set).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feeds.errors import FeedsError

log = logging.getLogger(__name__)

STAGING_PREFIX = ".falconet-staging-"
JOURNAL = "transaction.json"


class TransactionError(FeedsError):
    exit_status = "error"


@dataclass
class Move:
    source: str  # staged file
    target: str  # final path


@dataclass
class Plan:
    moves: list[Move] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # state records to write
    removed_records: list[str] = field(default_factory=list)  # artifact names to forget
    staging_dirs: list[str] = field(default_factory=list)


def staging_dir(target_dir: Path) -> Path:
    """A fresh staging directory on the same filesystem as target_dir."""
    from registry.storage import storage

    with storage(target_dir):
        target_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target_dir))


def commit(plan: Plan, state_dir: Path) -> None:
    """Apply the plan atomically from the caller's point of view (see module docstring)."""
    for move in plan.moves:
        if not Path(move.source).is_file():
            raise TransactionError(f"staged file {move.source} is missing")
    from registry.storage import storage

    journal = state_dir / JOURNAL
    tmp = journal.with_suffix(".tmp")
    try:
        with storage(state_dir):
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(tmp, "w") as handle:
                json.dump(_plan_to_dict(plan), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, journal)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no journal: nothing was touched
        raise
    from registry.extract import fsync_directory  # tarfile & co. only when installing

    fsync_directory(state_dir)
    _apply(plan, state_dir)
    journal.unlink()


def recover(state_dir: Path) -> bool:
    """Roll an interrupted commit forward. Returns True when there was one to finish."""
    journal = state_dir / JOURNAL
    if not journal.is_file():
        return False
    from feeds.errors import StateError
    from feeds.state import load_json_record

    fix = (
        f"delete {journal}, then run `falconet artifact install` again (files of the "
        "interrupted install may be missing until it completes)"
    )
    data = load_json_record(journal, "install journal", fix)
    try:
        plan = _plan_from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise StateError(f"install journal {journal} is damaged ({error!r})", fix) from None
    log.warning("finishing an install interrupted before it completed (%d files)", len(plan.moves))
    _apply(plan, state_dir)
    journal.unlink()
    return True


def _apply(plan: Plan, state_dir: Path) -> None:
    from feeds.state import InstalledArtifact, StateStore

    touched_dirs: set[Path] = set()
    for move in plan.moves:
        source, target = Path(move.source), Path(move.target)
        if source.is_file():  # already moved when rolling forward
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            touched_dirs.add(target.parent)
    new_targets = {m.target for m in plan.moves}
    for path in plan.deletes:
        if path not in new_targets:
            Path(path).unlink(missing_ok=True)
            touched_dirs.add(Path(path).parent)
    from registry.extract import fsync_directory

    for directory in touched_dirs:
        fsync_directory(directory)
    store = StateStore(state_dir)
    for name in plan.removed_records:
        store.delete(name)
    for record in plan.records:
        store.put(InstalledArtifact.from_dict(record))
    for directory in plan.staging_dirs:
        shutil.rmtree(directory, ignore_errors=True)


def discard(plan: Plan) -> None:
    for directory in plan.staging_dirs:
        shutil.rmtree(directory, ignore_errors=True)


def _plan_to_dict(plan: Plan) -> dict[str, Any]:
    return {
        "moves": [vars(m) for m in plan.moves],
        "deletes": plan.deletes,
        "records": plan.records,
        "removed_records": plan.removed_records,
        "staging_dirs": plan.staging_dirs,
    }


def _plan_from_dict(data: dict[str, Any]) -> Plan:
    return Plan(
        moves=[Move(**m) for m in data["moves"]],
        deletes=list(data["deletes"]),
        records=list(data["records"]),
        removed_records=list(data.get("removed_records", [])),
        staging_dirs=list(data["staging_dirs"]),
    )


def sweep_stale_staging(target_dirs: list[Path]) -> None:
    """Remove staging directories left by a crash before commit (they hold nothing that
    counts: without a journal, the old set is the complete set)."""
    for directory in target_dirs:
        if directory.is_dir():
            for stale in directory.glob(STAGING_PREFIX + "*"):
                shutil.rmtree(stale, ignore_errors=True)


class InstallLock:
    """An exclusive lock on the state directory: one install/follow/rollback at a time."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "lock"
        self._fd: int | None = None

    def __enter__(self) -> InstallLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise TransactionError(
                f"another falconet is installing into {self.path.parent}",
                "wait for it to finish (the lock is released when it exits)",
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
