"""Hostile rules and hostile event streams against the engine's budgets (issue 14): macro, list
and alias bombs are refused with a load error naming the item, a daemon refuses a hostile
candidate ruleset while it keeps detecting and answering /healthz, and a full thread table
evicts instead of blinding detection."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.loader import load_contents
from engine.rule_limits import RulesLimits
from tests.conftest import CliRunner
from tests.support.hostile_rules import RULE_TAIL, alias_bomb, costly_rules, list_bomb, macro_bomb
from tests.support.pressure_stream import write_pressure_stream
from tests.support.waiting import wait_for
from tests.test_daemon import Daemon, _get, _rule, daemon  # noqa: F401 - the fixture is used


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _validate(run_cli: CliRunner, path: str) -> tuple[int, str]:
    done = run_cli("rules", "validate", path, timeout=60)  # a hang guard, not a timing
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout


def test_macro_bomb_is_refused_naming_the_macro(run_cli: CliRunner, tmp_path: Path) -> None:
    status, out = _validate(run_cli, _write(tmp_path / "bomb.yaml", macro_bomb()))
    assert status == 1
    assert "    macro 'm15': (" in out  # the first macro over the budget (2**16 - 1 nodes)
    assert "condition expands to more than 50000 nodes through macro 'm14'" in out
    assert "FALCONET_RULES_MAX_CONDITION_NODES" in out


def test_list_bomb_is_refused_naming_the_list(run_cli: CliRunner, tmp_path: Path) -> None:
    status, out = _validate(run_cli, _write(tmp_path / "bomb.yaml", list_bomb()))
    assert status == 1
    assert "    rule 'r': (" in out
    assert "condition is longer than 262144 characters once list 'l" in out


def test_alias_bomb_is_refused_by_validate_and_by_a_load(
    run_cli: CliRunner, tmp_path: Path
) -> None:
    status, out = _validate(run_cli, _write(tmp_path / "bomb.yaml", alias_bomb()))
    assert status == 1
    assert "LOAD_ERR_YAML_PARSE" in out
    assert "more than 500000 nodes once its aliases are expanded" in out
    # The same reader refuses it for the engine (a run, the daemon), not only for validate.
    loaded = load_contents([("bomb.yaml", alias_bomb())], use_cache=False)
    assert not loaded.successful
    assert "aliases are expanded" in loaded.results[0].errors[0].message


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    loaded = load_contents([("loop.yaml", "- &a [*a]\n")], use_cache=False)
    message = loaded.results[0].errors[0].message
    assert message == "yaml: an alias refers to a node that contains it"  # no limit to raise


def test_each_limit_can_be_raised_and_lowered(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = "".join(f"- list: l{i}\n  items: [a]\n" for i in range(5))
    monkeypatch.setenv("FALCONET_RULES_MAX_ITEMS", "4")
    loaded = load_contents([("five.yaml", rules)], use_cache=False)
    assert "rules file has more than 4 items" in loaded.results[0].errors[0].message
    monkeypatch.setenv("FALCONET_RULES_MAX_ITEMS", "5")
    assert load_contents([("five.yaml", rules)], use_cache=False).successful
    monkeypatch.setenv("FALCONET_RULES_MAX_FILE_BYTES", "10")
    loaded = load_contents([("five.yaml", rules)], use_cache=False)
    assert "rules file of 120 bytes is too large" in loaded.results[0].errors[0].message
    monkeypatch.setenv("FALCONET_RULES_MAX_CONDITION_NODES", "100000000")
    assert RulesLimits.from_environment().condition_nodes == 100_000_000


def test_a_condition_over_the_character_budget_is_refused(tmp_path: Path) -> None:
    condition = " or ".join(f"proc.name = p{i}" for i in range(20_000))  # ~360,000 characters
    rules = f"- rule: big\n  condition: evt.type = open and ({condition})\n" + RULE_TAIL
    loaded = load_contents([("big.yaml", rules)], use_cache=False)
    message = loaded.results[0].errors[0].message
    assert "condition is longer than 262144 characters" in message


def test_a_rules_file_over_the_size_budget_is_not_read_whole(
    run_cli: CliRunner, tmp_path: Path
) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as stream:
        stream.truncate(64 * 1024 * 1024)  # sparse: nothing is written, the size is there
    done = run_cli("rules", "validate", str(big), timeout=60)
    assert done.returncode != 0
    assert "is larger than 16777216 bytes" in done.stderr
    assert "Traceback" not in done.stderr


# -- the daemon and hostile candidates ----------------------------------------------------------


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("hostile", ["macro_bomb", "costly"])
def test_a_hostile_reload_is_refused_while_detection_and_healthz_go_on(
    daemon: Callable[..., Daemon],  # noqa: F811 - the fixture
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    hostile: str,
) -> None:
    monkeypatch.setenv("FALCONET_COMPILE_MAX_CPU_SECONDS", "2")
    rules = tmp_path / "rules.yaml"
    rules.write_text(_rule("Pod One", "first"))
    run = daemon("-r", str(rules))
    run.post()
    wait_for(lambda: run.rules_fired() == ["Pod One"])
    peak_before = _peak_rss_kb(run.process.pid)

    if hostile == "macro_bomb":
        rules.write_text(
            macro_bomb()
            .replace("proc.name", "ka.verb")
            .replace("evt.type = open", "ka.verb = create")
        )
        why = "through macro 'm14'"
    else:
        rules.write_text(costly_rules())
        # Refused by whichever bound it reaches first: the child's CPU limit, or the load's
        # node budget (conditions are counted at load and turned into code on first use).
        why = ("s of CPU to compile: refused", "condition nodes together")
    # While the candidate compiles (in the guard's child), /healthz answers.
    deadline = time.monotonic() + 60
    while not any("reload failed" in a["rule"] for a in run.alerts_written()):
        assert json.loads(_get(f"{run.web}/healthz")) == {"status": "ok"}
        assert time.monotonic() < deadline, "no reload-failed alert"
        time.sleep(0.05)
    refused = next(a for a in run.alerts_written() if "reload failed" in a["rule"])
    assert any(
        reason in refused["output"] for reason in (why if isinstance(why, tuple) else (why,))
    )
    run.post()
    wait_for(lambda: run.rules_fired()[-1] == "Pod One")  # the running rules still detect
    # The candidate's cost was the child's: the daemon's peak memory barely moved (an
    # in-process compile of the costly candidate takes hundreds of MB).
    assert _peak_rss_kb(run.process.pid) - peak_before < 100_000
    assert run.stop()[0] == 0


# -- the thread table under pressure ------------------------------------------------------------

SHADOW_RULE = """\
- rule: Shadow read by cat
  desc: the stand-in for upstream's Read sensitive file untrusted (used when ../shared is absent)
  condition: evt.type = openat and fd.name = /etc/shadow and proc.name = cat and proc.pname = bash
  output: shadow read (proc=%proc.name parent=%proc.pname file=%fd.name)
  priority: WARNING
"""
UPSTREAM_RULES = Path(__file__).resolve().parents[2] / "shared" / "upstream-rules"


@pytest.fixture(scope="module")
def pressure_stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pressure") / "pressure.fncap"
    write_pressure_stream(path, 200_000)
    return path


def test_200000_never_exiting_processes_do_not_blind_detection(
    run_cli: CliRunner, tmp_path: Path, pressure_stream: Path
) -> None:
    upstream = Path(os.environ.get("FALCONET_UPSTREAM_RULES", UPSTREAM_RULES)) / "falco_rules.yaml"
    if upstream.exists():
        rules, expected = str(upstream), "Read sensitive file untrusted"
    else:
        rules, expected = _write(tmp_path / "shadow.yaml", SHADOW_RULE), "Shadow read by cat"
    done = run_cli("run", "-r", rules, "--replay", str(pressure_stream), "-o", "json", timeout=300)
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    fired = [a["rule"] for a in alerts]
    assert expected in fired
    shadow = next(a for a in alerts if a["rule"] == expected)
    assert shadow["output_fields"]["proc.name"] == "cat"
    # The evictions are counted and said: once in the summary, once as a rate-limited alert.
    assert fired.count("Falco internal: state table full") == 1
    summary = next(
        json.loads(line) for line in done.stderr.splitlines() if line.startswith('{"alerts"')
    )
    assert summary["state"]["threads_evicted"] >= 200_000 - 131_072
    assert summary["state"]["threads_added"] == 200_003


def test_yaml_data_from_outside_is_alias_bounded_too() -> None:
    # The same check for YAML data: an index file (from an index URL) and response rules.
    from feeds.errors import FeedsError
    from feeds.indexes import parse_index

    # An index refuses aliases outright (feeds.indexes): it never needs them.
    with pytest.raises(FeedsError, match="aliases are not accepted in an index"):
        parse_index(alias_bomb(), "http://127.0.0.1/index.yaml", "hostile")
    from engine.yamlfile import safe_load

    assert safe_load("a: &x [1]\nb: *x\n") == {"a": [1], "b": [1]}
