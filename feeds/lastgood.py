"""Last-good sets: copies of what ran before the latest update, and `rollback` to them.

Layout under the state directory (OPA keeps its last-good bundle the same way):
    last-good/<name>/record.json   the state record of the previous version
    last-good/<name>/files/<i>     its files, by position in record.files
    last-good/holds.json           {name: digest}: a digest rolled back from, which follow skips
A rollback is one journaled transaction (feeds.transaction), so a crash leaves the complete
current set or the complete last-good set; the lock file then names the restored version.
The set it replaces becomes the new last-good, so a rollback can itself be undone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from feeds.errors import NotFoundError
from feeds.state import InstalledArtifact, StateStore
from feeds.transaction import InstallLock, Move, Plan, commit, discard, recover, staging_dir

log = logging.getLogger(__name__)

LAST_GOOD = "last-good"
HOLDS = "holds.json"


def _root(state_dir: Path) -> Path:
    return state_dir / LAST_GOOD


def snapshot(state_dir: Path, records: list[InstalledArtifact]) -> Path:
    """Copy each record and its files into a fresh directory under the state dir (same
    filesystem: promote() is then a rename)."""
    root = _root(state_dir)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    work = Path(tempfile.mkdtemp(prefix=".snapshot-", dir=root))
    for record in records:
        _copy_record(record, work / record.name)
    return work


def _copy_record(record: InstalledArtifact, target: Path) -> None:
    files = target / "files"
    files.mkdir(parents=True)
    for position, item in enumerate(record.files):
        if Path(item.path).is_file():
            shutil.copy2(item.path, files / str(position))  # copy2 keeps mtime for the state
    (target / "record.json").write_text(json.dumps(record.to_dict(), indent=2, sort_keys=True))


def promote(state_dir: Path, work: Path, names: list[str]) -> None:
    """Make the snapshot of these names the last-good set; drop the rest of the snapshot."""
    root = _root(state_dir)
    for name in names:
        source = work / name
        if not source.is_dir():
            continue
        target = root / name
        old = root / f".old-{name}"
        if target.exists():
            os.replace(target, old)
        os.replace(source, target)
        shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)


def drop(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)


def last_good(state_dir: Path, name: str) -> InstalledArtifact | None:
    path = _root(state_dir) / name / "record.json"
    if not path.is_file():
        return None
    from feeds.state import StateStore

    return StateStore._load(path)


def holds(state_dir: Path) -> dict[str, str]:
    from feeds.state import load_json_record

    path = _root(state_dir) / HOLDS
    if not path.is_file():
        return {}
    return load_json_record(
        path, "rollback holds", f"delete {path} (it only remembers digests rolled back from)"
    )


def _write_holds(state_dir: Path, values: dict[str, str]) -> None:
    path = _root(state_dir) / HOLDS
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(values, indent=2, sort_keys=True))
    os.replace(tmp, path)


def release_hold(state_dir: Path, name: str) -> None:
    values = holds(state_dir)
    if values.pop(name, None) is not None:
        _write_holds(state_dir, values)


def rollback(state_dir: Path, name: str, validator: object | None = None) -> InstalledArtifact:
    """Restore the last-good set of `name`; hold the digest rolled back from.

    `validator(rules_paths)` (as feeds.install's) checks the restored rules before the swap.
    """
    recover(state_dir)
    with InstallLock(state_dir):
        previous = last_good(state_dir, name)
        if previous is None:
            raise NotFoundError(
                f"no last-good set of {name}",
                "a last-good set is kept when follow (or rollback) replaces a version",
            )
        store = StateStore(state_dir)
        current = store.get(name)
        plan = _restore_plan(state_dir / LAST_GOOD / name / "files", previous, current)
        try:
            if validator is not None:
                rules = [Path(m.source) for m in plan.moves if m.target.endswith((".yaml", ".yml"))]
                validator(rules)  # type: ignore[operator]
            work = snapshot(state_dir, [current] if current else [])
        except BaseException:
            discard(plan)
            raise
        commit(plan, state_dir)
        promote(state_dir, work, [name])
        _lock_restored(state_dir / "falconet.lock", previous)
        if current is not None:
            _write_holds(state_dir, {**holds(state_dir), name: current.digest})
        log.debug("rolled %s back to %s (%s)", name, previous.version, previous.digest)
        return previous


def _lock_restored(lock_path: Path, previous: InstalledArtifact) -> None:
    """Point the lock entry at the restored version, so `install --locked` keeps it."""
    from dataclasses import replace

    from feeds.lockfile import read_lock, write_lock

    lock = read_lock(lock_path) if lock_path.is_file() else None
    if lock is None or previous.name not in lock.artifacts:
        return
    entry = lock.artifacts[previous.name]
    lock.artifacts[previous.name] = replace(
        entry, version=previous.version, digest=previous.digest, reference=previous.reference
    )
    write_lock(lock_path, lock)


def _restore_plan(
    saved: Path, previous: InstalledArtifact, current: InstalledArtifact | None
) -> Plan:
    plan = Plan(records=[previous.to_dict()])
    stages: dict[Path, Path] = {}
    try:
        for position, item in enumerate(previous.files):
            target = Path(item.path)
            if target.parent not in stages:
                stages[target.parent] = staging_dir(target.parent)
                plan.staging_dirs.append(str(stages[target.parent]))
            staged = stages[target.parent] / target.name
            shutil.copy2(saved / str(position), staged)
            plan.moves.append(Move(str(staged), str(target)))
    except BaseException:
        discard(plan)
        raise
    if current is not None:
        plan.deletes = [f.path for f in current.files]
    return plan
