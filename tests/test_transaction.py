"""The install transaction: all-or-nothing replacement, crash recovery by roll-forward."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from feeds.state import StateStore
from feeds.transaction import (
    JOURNAL,
    InstallLock,
    Move,
    Plan,
    TransactionError,
    _plan_to_dict,
    commit,
    recover,
    staging_dir,
    sweep_stale_staging,
)
from tests.conftest import REPO_ROOT


def _record(name: str, files: list[Path]) -> dict:
    return {
        "name": name,
        "type": "rulesfile",
        "ref": name,
        "reference": f"r/{name}@sha256:x",
        "version": "1.0.0",
        "digest": "sha256:x",
        "files": [{"path": str(f), "sha256": "0"} for f in files],
    }


def _stage(target: Path, files: dict[str, str]) -> tuple[Plan, Path]:
    stage = staging_dir(target)
    plan = Plan(staging_dirs=[str(stage)])
    for name, text in files.items():
        (stage / name).write_text(text)
        plan.moves.append(Move(str(stage / name), str(target / name)))
    return plan, stage


def test_commit_replaces_files_deletes_dropped_ones_and_records_state(tmp_path: Path) -> None:
    rules, state = tmp_path / "rules", tmp_path / "state"
    rules.mkdir()
    (rules / "a.yaml").write_text("old a")
    (rules / "gone.yaml").write_text("old only")
    (rules / "falco.yaml").write_text("not ours")
    plan, stage = _stage(rules, {"a.yaml": "new a", "b.yaml": "new b"})
    plan.deletes = [str(rules / "a.yaml"), str(rules / "gone.yaml")]
    plan.records = [_record("set", [rules / "a.yaml", rules / "b.yaml"])]
    commit(plan, state)
    assert sorted(p.name for p in rules.iterdir()) == ["a.yaml", "b.yaml", "falco.yaml"]
    assert (rules / "a.yaml").read_text() == "new a"
    assert not stage.exists() and not (state / JOURNAL).exists()
    assert StateStore(state).get("set").version == "1.0.0"


def test_missing_staged_file_aborts_before_touching_anything(tmp_path: Path) -> None:
    rules, state = tmp_path / "rules", tmp_path / "state"
    rules.mkdir()
    (rules / "a.yaml").write_text("old a")
    plan, stage = _stage(rules, {"a.yaml": "new a"})
    plan.moves.append(Move(str(stage / "missing.yaml"), str(rules / "m.yaml")))
    with pytest.raises(TransactionError):
        commit(plan, state)
    assert (rules / "a.yaml").read_text() == "old a"
    assert not (state / JOURNAL).exists()


def test_kill_during_commit_recovers_to_the_complete_new_set(tmp_path: Path) -> None:
    """A real process is SIGKILLed between two renames; recover() finishes the commit."""
    rules, state = tmp_path / "rules", tmp_path / "state"
    rules.mkdir()
    for i in range(20):
        (rules / f"r{i}.yaml").write_text("old")
    plan, _ = _stage(rules, {f"r{i}.yaml": "new" for i in range(20)})
    plan.records = [_record("set", [rules / f"r{i}.yaml" for i in range(20)])]
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(_plan_to_dict(plan)))
    script = f"""
import json, os, signal, sys
sys.path.insert(0, {str(REPO_ROOT)!r})
import feeds.transaction as t
real_replace = os.replace
count = 0
def replace_then_die(a, b):
    global count
    real_replace(a, b)
    if str(b).endswith('.yaml'):
        count += 1
        if count == 7:
            os.kill(os.getpid(), signal.SIGKILL)
t.os.replace = replace_then_die
plan = t._plan_from_dict(json.loads(open({str(plan_file)!r}).read()))
t.commit(plan, t.Path({str(state)!r}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    contents = {(rules / f"r{i}.yaml").read_text() for i in range(20)}
    assert contents == {"old", "new"}  # the crash left a mix on disk...
    assert (state / JOURNAL).exists()
    assert recover(state) is True  # ...which recovery turns into the complete new set
    assert {(rules / f"r{i}.yaml").read_text() for i in range(20)} == {"new"}
    assert StateStore(state).get("set") is not None
    assert recover(state) is False


def test_stale_staging_without_journal_is_swept(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text("old a")
    _stage(rules, {"a.yaml": "half written"})
    sweep_stale_staging([rules])
    assert os.listdir(rules) == ["a.yaml"]
    assert (rules / "a.yaml").read_text() == "old a"


def test_second_installer_is_refused_while_the_lock_is_held(tmp_path: Path) -> None:
    with InstallLock(tmp_path), pytest.raises(TransactionError, match="another falconet"):
        InstallLock(tmp_path).__enter__()
    with InstallLock(tmp_path):  # released: can be taken again
        pass
