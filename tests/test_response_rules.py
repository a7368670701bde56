"""Response rules: loading and validation, matching, continue/stop, on_failure, rate limits,
dry run, hot reload, outcome events. Actions here are real (exec:script runs `true`/`false`)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.response.engine import ResponseEngine
from engine.response.errors import ResponseRulesError
from engine.response.rules import load_rules, parse_rules
from engine.sinks import Alert

OK = {"action": "exec:script", "parameters": {"command": ["true"]}}
FAIL = {"action": "exec:script", "parameters": {"command": ["false"]}}


def alert(rule: str = "Terminal shell in container", **extra: Any) -> dict[str, Any]:
    document = {
        "hostname": "host",
        "priority": "Warning",
        "rule": rule,
        "source": "syscall",
        "time": "2026-01-01T00:00:00.000000000Z",
        "tags": ["container", "shell"],
        "output_fields": {"proc.pid": 4242, "proc.name": "bash", "fd.rip": "10.1.2.3"},
    }
    document.update(extra)
    return document


def rules_of(*rules: dict[str, Any], **settings: Any) -> Any:
    return parse_rules({"rules": list(rules), **({"settings": settings} if settings else {})})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def statuses(outcomes: list[Any]) -> list[tuple[str, str]]:
    return [(o.response_rule, o.status) for o in outcomes]


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"rules": "Terminal shell*"}, True),
        ({"rules": ["Other", "*shell in*"]}, True),
        ({"rules": "terminal shell*"}, False),  # case matters, as rule names do in Falco
        ({"tags": ["container", "shell"]}, True),
        ({"tags": ["container", "mitre_execution"]}, False),
        ({"priority": "Warning"}, True),
        ({"priority": "error"}, False),
        ({"source": "syscall"}, True),
        ({"source": ["k8s_audit", "aws_cloudtrail"]}, False),
        ({"output_fields": "fd.rip startswith 10."}, True),
        ({"output_fields": "fd.rip startswith 192.168."}, False),
        ({"output_fields": ["proc.pid > 4000", "proc.name in (sh, bash)"]}, True),
        ({"output_fields": "proc.pid < 4000"}, False),
        ({"output_fields": "k8s.pod.name exists"}, False),  # the alert does not carry it
        ({}, True),
    ],
)
def test_match_criteria(match: dict[str, Any], expected: bool) -> None:
    rules = rules_of({"name": "r", "match": match, "actions": [OK]})
    assert bool(rules.matching(alert())) is expected


def test_continue_false_stops_later_rules_and_on_failure_stop_skips_actions() -> None:
    rules = rules_of(
        {"name": "first", "match": {}, "actions": [{**FAIL, "on_failure": "stop"}, OK]},
        {"name": "second", "match": {}, "actions": [FAIL, OK], "continue": False},
        {"name": "third", "match": {}, "actions": [OK]},
    )
    engine = ResponseEngine(rules)
    try:
        outcomes = engine.handle(alert())
    finally:
        engine.close()
    assert statuses(outcomes) == [
        ("first", "failed"),
        ("first", "skipped"),
        ("second", "failed"),  # on_failure defaults to continue
        ("second", "succeeded"),
    ]
    assert "exited with status 1" in (outcomes[0].error or "")


def test_per_rule_and_global_rate_limits() -> None:
    clock = FakeClock()
    rules = rules_of(
        {"name": "limited", "match": {}, "actions": [OK], "rate_limit": {"count": 2, "per": 10}},
        {"name": "free", "match": {}, "actions": [OK]},
        rate_limit={"count": 5, "per": 10},
    )
    engine = ResponseEngine(rules, clock=clock)
    try:
        rounds = [statuses(engine.handle(alert())) for _ in range(4)]
        clock.now += 5  # half the window: one token back for `limited`, 2.5 for the global
        after_refill = statuses(engine.handle(alert()))
    finally:
        engine.close()
    assert rounds[0] == [("limited", "succeeded"), ("free", "succeeded")]
    assert rounds[1] == [("limited", "succeeded"), ("free", "succeeded")]
    assert rounds[2] == [("limited", "rate_limited"), ("free", "succeeded")]
    # the global bucket (5) is exhausted by the fifth action
    assert rounds[3] == [("limited", "rate_limited"), ("free", "rate_limited")]
    assert after_refill == [("limited", "succeeded"), ("free", "succeeded")]


def test_dry_run_at_each_level_renders_but_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    touch = {"action": "exec:script", "parameters": {"command": ["touch", str(marker)]}}
    for rules in (
        rules_of({"name": "r", "match": {}, "actions": [touch]}, dry_run=True),
        rules_of({"name": "r", "match": {}, "actions": [touch], "dry_run": True}),
        rules_of({"name": "r", "match": {}, "actions": [{**touch, "dry_run": True}]}),
    ):
        engine = ResponseEngine(rules)
        outcomes = engine.handle(alert())
        engine.close()
        assert [o.status for o in outcomes] == ["dry_run"]
        assert outcomes[0].parameters["command"] == ["touch", str(marker)]
    assert not marker.exists()


def test_outcomes_are_response_events_with_timing_and_changes() -> None:
    events: list[Alert] = []
    rules = rules_of(
        {
            "name": "echo",
            "match": {},
            "actions": [{"action": "exec:script", "parameters": {"command": ["cat"]}}],
        }
    )
    engine = ResponseEngine(rules, on_outcome=events.append)
    engine.handle(alert())
    engine.close()
    (event,) = events
    document = event.document
    assert document["source"] == "response"
    assert document["priority"] == "Notice"
    fields = document["output_fields"]
    assert fields["response.status"] == "succeeded"
    assert fields["alert.rule"] == "Terminal shell in container"
    assert fields["response.duration_ms"] > 0
    # the script received the alert on stdin and echoed it back
    assert json.loads(fields["response.changed"]["stdout"])["output_fields"]["proc.pid"] == 4242
    assert "exec:script succeeded" in event.text


def test_submit_runs_off_the_caller_thread_and_swap_hot_reloads() -> None:
    done = threading.Event()
    seen: list[tuple[str, str]] = []

    def collect(event: Alert) -> None:
        fields = event.document["output_fields"]
        seen.append((fields["response.rule"], threading.current_thread().name))
        done.set()

    engine = ResponseEngine(rules_of({"name": "old", "match": {}, "actions": [OK]}), collect)
    try:
        assert engine.submit(Alert("text", alert())) is True
        assert done.wait(10)
        done.clear()
        engine.swap(rules_of({"name": "new", "match": {"rules": "Other"}, "actions": [OK]}))
        assert engine.submit(alert()) is False  # no longer matches
        assert engine.submit(alert(rule="Other")) is True
        assert done.wait(10)
    finally:
        engine.close()
    assert [name for name, _ in seen] == ["old", "new"]
    assert all(thread.startswith("falconet-response") for _, thread in seen)


def test_swap_keeps_the_rate_limit_state_of_unchanged_rules() -> None:
    clock = FakeClock()
    limited = {"name": "r", "match": {}, "actions": [OK], "rate_limit": {"count": 1, "per": 60}}
    engine = ResponseEngine(rules_of(limited), clock=clock)
    try:
        assert statuses(engine.handle(alert())) == [("r", "succeeded")]
        engine.swap(rules_of(limited))
        assert statuses(engine.handle(alert())) == [("r", "rate_limited")]
        engine.swap(rules_of({**limited, "rate_limit": {"count": 2, "per": 60}}))
        assert statuses(engine.handle(alert())) == [("r", "succeeded")]
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"rules": [{"name": "r", "match": {}, "actions": []}]}, "rules/0/actions"),
        ({"rules": [{"name": "r", "match": {"rule": "x"}, "actions": [OK]}]}, "rules/0/match"),
        ({"rules": [{"name": "r", "match": {}, "actions": [{"action": "proc:kill"}]}]}, "proc"),
        (
            {"rules": [{"name": "r", "match": {}, "actions": [{"action": "process:terminate"}]}]},
            None,
        ),
        (
            {"rules": [{"name": "r", "match": {}, "actions": [{"action": "process:terminat"}]}]},
            "did you mean 'process:terminate'",
        ),
        (
            {
                "rules": [
                    {
                        "name": "r",
                        "match": {},
                        "actions": [{"action": "process:terminate", "parameters": {"grace": 1}}],
                    }
                ]
            },
            "did you mean 'grace_period'",
        ),
        ({"rules": [{"name": "r", "match": {}, "actions": [{"action": "http:webhook"}]}]}, "url"),
        (
            {
                "rules": [
                    {"name": "r", "match": {"output_fields": "fd.rip startswith"}, "actions": [OK]}
                ]
            },
            "invalid output_fields condition",
        ),
        ({"rules": [{"name": "r", "match": {"priority": "loud"}, "actions": [OK]}]}, "loud"),
        ({"rules": [{"name": "r", "match": {}, "actions": [OK]}] * 2}, "defined twice"),
    ],
)
def test_invalid_rules_are_refused_with_a_clear_message(
    document: dict[str, Any], message: str | None
) -> None:
    if message is None:  # a valid rule: defaults fill every parameter
        rules = parse_rules(document)
        assert rules.rules[0].actions[0].parameters["pid"] == "${proc.pid}"
        return
    with pytest.raises(ResponseRulesError) as raised:
        parse_rules(document)
    assert message in str(raised.value) + str(raised.value.hint)
    assert raised.value.exit_status == "usage"


def test_load_rules_from_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "response.yaml"
    path.write_text(yaml.safe_dump({"rules": [{"name": "r", "match": {}, "actions": [OK]}]}))
    assert [r.name for r in load_rules(path).rules] == ["r"]
    path.write_text("rules: [\n")
    with pytest.raises(ResponseRulesError, match="invalid YAML"):
        load_rules(path)


def test_wired_as_a_sink_actions_run_and_outcomes_reach_the_outputs(tmp_path: Path) -> None:
    """The `falconet run --response` wiring: alerts through a real OutputQueue to the response
    sink; outcome events back to the same outputs (a real file); no response to a response."""
    from engine.response.sink import ResponseSink, reload_rules
    from engine.sinks import FileSink, OutputQueue

    log_file = tmp_path / "alerts.json"
    outputs = OutputQueue([FileSink(str(log_file), json_output=True)])
    rules_file = tmp_path / "response.yaml"
    catch_all = {"rules": [{"name": "first", "match": {}, "actions": [OK]}]}
    rules_file.write_text(yaml.safe_dump(catch_all))
    emitted = threading.Event()

    def to_outputs(event: Alert) -> None:
        outputs.put(event)
        emitted.set()

    engine = ResponseEngine(load_rules(rules_file), on_outcome=to_outputs)
    outputs.sinks.append(ResponseSink(engine))
    outputs.put(Alert("text", alert()))
    assert emitted.wait(10)
    rules_file.write_text("rules: {broken")
    assert reload_rules(engine, rules_file) is False  # the previous rules stay
    assert [r.name for r in engine.rules.rules] == ["first"]
    outputs.close()
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    # the catch-all rule acted once on the syscall alert, never on its own outcome event
    assert [d["source"] for d in lines] == ["syscall", "response"]
    assert lines[1]["output_fields"]["response.status"] == "succeeded"
    assert engine.stats["succeeded"] == 1


def test_a_plugin_registered_by_a_third_party_is_found_and_its_bugs_are_contained() -> None:
    from engine.response.actions.base import ACTIONS, Action, Param, register_action

    class Buggy(Action):
        name = "test:buggy"
        summary = "raises a KeyError (a bug)"
        params = (Param("key", "string", "key to look up", "${proc.name}"),)

        def run(self, params: dict[str, Any], alert: Any) -> dict[str, Any]:
            return {"value": {}[params["key"]]}

    if "test:buggy" not in ACTIONS:
        register_action(Buggy)
    rules = rules_of({"name": "r", "match": {}, "actions": [{"action": "test:buggy"}, OK]})
    engine = ResponseEngine(rules)
    try:
        outcomes = engine.handle(alert())
    finally:
        engine.close()
    assert statuses(outcomes) == [("r", "failed"), ("r", "succeeded")]
    assert outcomes[0].error == "'bash'" and outcomes[0].parameters == {"key": "bash"}
