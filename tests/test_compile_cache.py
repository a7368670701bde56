"""The on-disk cache of loaded rules (engine.compile_cache): a second load of unchanged files
reads no rules file again and gives the same rules, warnings and alerts; an entry anyone else
could have written is never unpickled."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from engine import compile_cache, loader
from engine.loader import clear_caches, load_rules_files, rulesets_for
from engine.ruleset import SelectionStep

RULES = """\
- macro: creating
  condition: ka.verb = create
- rule: pod created
  desc: d
  condition: creating and ka.target.resource = pods and ka.user.name != <NA>
  output: "pod by %ka.user.name (%ka.target.namespace)"
  priority: NOTICE
  source: k8s_audit
- rule: secret read
  desc: d
  condition: ka.verb = get and ka.target.resource = secrets
  output: secret %ka.target.name
  priority: WARNING
  source: k8s_audit
"""


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "rules"


def _fresh_process() -> None:
    """What a new process starts with: no load remembered in memory."""
    clear_caches()


def _no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("the rules were loaded again")

    monkeypatch.setattr(loader.RulesLoader, "load", refuse)


def _alerts(loaded: loader.LoadedRules) -> list[tuple[str, str]]:
    from engine.sources.formats import EventFactory

    ruleset = rulesets_for(loaded, [SelectionStep(enable=True, rule="*")], matching="all")
    record = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "auditID": "a1",
        "verb": "create",
        "stage": "ResponseComplete",
        "stageTimestamp": "2024-01-01T00:00:00.000000Z",
        "user": {"username": "alice"},
        "objectRef": {"resource": "pods", "namespace": "prod"},
    }
    events = list(EventFactory("k8s_audit").from_document(record))
    return [
        (rule.name, rule.output.render(event))
        for event in events
        for rule in ruleset.evaluate(event, "k8s_audit")
    ]


def test_a_second_load_reads_the_disk_cache(
    rules_file: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_rules_files([rules_file], cache_dir=cache_dir)
    entries = list(cache_dir.glob("*.pickle"))
    assert len(entries) == 1
    assert stat.S_IMODE(entries[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    _fresh_process()
    _no_loading(monkeypatch)
    second = load_rules_files([rules_file], cache_dir=cache_dir)
    assert second is not first
    assert [r.name for r in second.rules] == [r.name for r in first.rules]
    assert [w.code for res in second.results for w in res.warnings] == [
        w.code for res in first.results for w in res.warnings
    ]
    assert [res.as_json(second.contents) for res in second.results] == [
        res.as_json(first.contents) for res in first.results
    ]
    assert _alerts(second) == _alerts(first) == [("pod created", "pod by alice (prod)")]
    assert second.rules[0].output.field_names == first.rules[0].output.field_names


def test_changed_content_is_a_miss(rules_file: Path, cache_dir: Path) -> None:
    load_rules_files([rules_file], cache_dir=cache_dir)
    rules_file.write_text(RULES.replace("NOTICE", "ERROR"))
    _fresh_process()
    loaded = load_rules_files([rules_file], cache_dir=cache_dir)
    assert loaded.rules[0].priority == "Error"
    assert len(list(cache_dir.glob("*.pickle"))) == 2


def _poison(cache_dir: Path) -> Path:
    """Replace the entry with a pickle that runs code when loaded."""
    (entry,) = cache_dir.glob("*.pickle")
    marker = cache_dir.parent / "pwned"
    payload = (
        b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    )  # os.system("touch ...") when unpickled
    entry.write_bytes(payload)
    return marker


def test_a_group_writable_cache_directory_is_never_read(rules_file: Path, cache_dir: Path) -> None:
    load_rules_files([rules_file], cache_dir=cache_dir)
    marker = _poison(cache_dir)
    cache_dir.chmod(0o770)
    _fresh_process()
    loaded = load_rules_files([rules_file], cache_dir=cache_dir)
    assert not marker.exists()
    assert [r.name for r in loaded.rules] == ["pod created", "secret read"]


def test_a_world_writable_entry_is_never_read(rules_file: Path, cache_dir: Path) -> None:
    load_rules_files([rules_file], cache_dir=cache_dir)
    marker = _poison(cache_dir)
    (entry,) = cache_dir.glob("*.pickle")
    entry.chmod(0o666)
    _fresh_process()
    load_rules_files([rules_file], cache_dir=cache_dir)
    assert not marker.exists()


def test_a_symlinked_entry_is_never_read(rules_file: Path, cache_dir: Path) -> None:
    load_rules_files([rules_file], cache_dir=cache_dir)
    marker = _poison(cache_dir)
    (entry,) = cache_dir.glob("*.pickle")
    elsewhere = cache_dir.parent / "elsewhere.pickle"
    entry.rename(elsewhere)
    entry.symlink_to(elsewhere)
    _fresh_process()
    load_rules_files([rules_file], cache_dir=cache_dir)
    assert not marker.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_an_entry_owned_by_another_user_is_never_read(rules_file: Path, cache_dir: Path) -> None:
    load_rules_files([rules_file], cache_dir=cache_dir)
    marker = _poison(cache_dir)
    (entry,) = cache_dir.glob("*.pickle")
    os.chown(entry, 65534, 65534)
    _fresh_process()
    load_rules_files([rules_file], cache_dir=cache_dir)
    assert not marker.exists()


def test_a_damaged_entry_is_a_miss(rules_file: Path, cache_dir: Path) -> None:
    load_rules_files([rules_file], cache_dir=cache_dir)
    (entry,) = cache_dir.glob("*.pickle")
    entry.write_bytes(b"\x80\x05garbage")
    _fresh_process()
    loaded = load_rules_files([rules_file], cache_dir=cache_dir)
    assert [r.name for r in loaded.rules] == ["pod created", "secret read"]


def test_cli_run_twice_gives_the_same_alerts(
    run_cli: Any, falconet_home: Path, tmp_path: Path, rules_file: Path
) -> None:
    events = tmp_path / "audit.json"
    events.write_text(
        json.dumps(
            {
                "kind": "Event",
                "apiVersion": "audit.k8s.io/v1",
                "auditID": "a1",
                "verb": "create",
                "stage": "ResponseComplete",
                "stageTimestamp": "2024-01-01T00:00:00.000000Z",
                "user": {"username": "bob"},
                "objectRef": {"resource": "pods", "namespace": "dev"},
            }
        )
    )
    args = ["run", "--source", "k8s_audit", "--replay", str(events), "-r", str(rules_file)]
    first = run_cli(*args, "-o", "json")
    assert list((falconet_home / "cache" / "rules").glob("*.pickle"))
    second = run_cli(*args, "-o", "json")
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert json.loads(second.stdout.splitlines()[0])["output_fields"]["ka.user.name"] == "bob"


def test_snapshot_keeps_no_compiled_code(rules_file: Path) -> None:
    loaded = load_rules_files([rules_file], use_cache=False)
    snapshot = compile_cache._snapshot(loaded)
    assert all(isinstance(r.matches, compile_cache.LazyCondition) for r in snapshot.rules)
