"""The candidate index (engine.condition.index) against straightforward per-rule evaluation.

Differential: for hypothesis-generated rulesets and events, for generated custom rules over a
busy-host syscall stream, and for the upstream rules over the upstream captures and audit
events, the indexed rulesets raise exactly the alerts, in the same order, that evaluating every
rule's own compiled condition in definition order raises (rule_matching first and all)."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import re2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine.ruleset
from engine.condition.index import glob_literals, plan_index, regex_literals
from engine.condition.operators import compile_glob, compile_regex
from engine.loader import load_contents, rulesets_for
from engine.ruleset import CompiledRule, Ruleset

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def indexed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event-type bucket behind the index, however small."""
    monkeypatch.setattr(engine.ruleset, "INDEX_MIN_RULES", 1)


def reference(ruleset: Ruleset, event: Any) -> list[str]:
    """Per-rule evaluation: each candidate rule's own condition, in definition order."""
    matched = []
    for rule in ruleset.candidates(event):
        if rule.matches(event):
            matched.append(rule.name)
            if ruleset.matching == "first":
                break
    return matched


def names(rules: Iterable[CompiledRule]) -> list[str]:
    return [rule.name for rule in rules]


# -- literal prefilters are sound -------------------------------------------------------------

_REGEX_ATOMS = st.sampled_from(
    ["a", "b", "ab", ".", "[ab]", "[.]", "[^a]", "(a|b)", "(ab)", "x", "/", "\\.", "[a-b]"]
)


@st.composite
def regexes(draw: st.DrawFn) -> str:
    parts = []
    for atom in draw(st.lists(_REGEX_ATOMS, min_size=1, max_size=6)):
        parts.append(atom + draw(st.sampled_from(["", "", "*", "+", "?", "{0,2}"])))
    return ("|" if draw(st.booleans()) and len(parts) > 2 else "").join(parts)


@settings(max_examples=300, deadline=None)
@given(regexes(), st.lists(st.text(alphabet="ab./x", max_size=8), min_size=20, max_size=20))
def test_regex_literals_are_in_every_full_match(pattern: str, texts: list[str]) -> None:
    try:
        matches = compile_regex(pattern)
    except ValueError:
        return
    literals = regex_literals(pattern)
    for text in [*texts, re2.sub(r"[^ab./x]", "", pattern)]:
        if matches(text) is not None:
            assert all(literal in text for literal in literals), (pattern, text, literals)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="ab/*?[]!", max_size=8),
    st.lists(st.text(alphabet="ab/", max_size=8), min_size=20, max_size=20),
)
def test_glob_literals_are_in_every_full_match(pattern: str, texts: list[str]) -> None:
    prefix, runs = glob_literals(pattern)
    matches = compile_glob(pattern)
    for text in texts:
        if matches(text) is not None:
            assert text.startswith(prefix) and all(run in text for run in runs), (pattern, text)


# -- hypothesis-generated k8s audit rulesets and events --------------------------------------

_FIELDS = {
    "ka.verb": ["create", "delete", "get", "patch", "Create"],
    "ka.user.name": ["admin", "system:anonymous", "bob", "ADMIN", "<NA>"],
    "ka.target.resource": ["pods", "secrets", "configmaps", "pods/exec"],
    "ka.target.namespace": ["default", "kube-system", "prod"],
    "ka.uri": ["/api/v1/pods", "/api/v1/namespaces/default/secrets", "/apis/apps/v1", "/"],
}
_OPERATORS = [
    "=", "!=", "in", "startswith", "endswith", "contains", "icontains", "glob", "iglob",
    "regex", "pmatch", "exists", "startswith oneof", "= anyof",
]  # fmt: skip


def _quoted(value: str) -> str:
    return "'" + value + "'"


@st.composite
def checks(draw: st.DrawFn) -> str:
    field = draw(st.sampled_from(sorted(_FIELDS)))
    values = _FIELDS[field]
    op = draw(st.sampled_from(_OPERATORS))
    left = f"tolower({field})" if draw(st.integers(0, 7)) == 0 else field
    if op == "exists":
        return f"{field} exists"
    value = draw(st.sampled_from(values))
    if op in ("startswith", "endswith", "contains", "icontains"):
        cut = draw(st.integers(0, len(value)))
        value = value[:cut] if op == "startswith" else value[cut:] if op == "endswith" else value
        value = value or "a"
    elif op in ("glob", "iglob"):
        value = draw(st.sampled_from([value, value[:2] + "*", "*" + value[-2:], "?" + value[1:]]))
    elif op == "regex":
        value = draw(st.sampled_from([value, value[:3] + ".*", "(a|" + value + ")", "[a-z]+"]))
    elif op == "pmatch":
        value = draw(st.sampled_from(["/api", "/api/v1", "/apis", "/"]))
    if op in ("in", "pmatch", "startswith oneof", "= anyof"):
        extra = draw(st.lists(st.sampled_from(values), max_size=3))
        items = [value, *extra] if op != "pmatch" else [value]
        return f"{left} {op} ({', '.join(_quoted(v) for v in items)})"
    return f"{left} {op} {_quoted(value)}"


def conditions() -> st.SearchStrategy[str]:
    return st.recursive(
        checks(),
        lambda inner: st.one_of(
            st.tuples(inner, inner).map(lambda t: f"({t[0]} and {t[1]})"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]} or {t[1]})"),
            inner.map(lambda c: f"not {c}"),
        ),
        max_leaves=5,
    )


def _rules_text(bodies: list[tuple[str, bool]]) -> str:
    parts = []
    for number, (condition, exception) in enumerate(bodies):
        text = (
            f"- rule: r{number}\n  desc: d\n  condition: {json.dumps(condition)}\n"
            f"  output: o %ka.verb\n  priority: WARNING\n  source: k8s_audit\n"
        )
        if exception:
            text += (
                "  exceptions:\n    - name: e\n      fields: [ka.user.name, ka.verb]\n"
                "      comps: [=, startswith]\n      values: [[admin, cr]]\n"
            )
        parts.append(text)
    return "\n".join(parts)


@st.composite
def audit_events(draw: st.DrawFn) -> dict[str, Any]:
    def pick(field: str) -> str | None:
        return draw(st.one_of(st.none(), st.sampled_from(_FIELDS[field])))

    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "stage": "ResponseComplete",
        "stageTimestamp": "2024-01-01T00:00:00.000000Z",
        "auditID": "x",
    }
    if (verb := pick("ka.verb")) is not None:
        event["verb"] = verb
    if (user := pick("ka.user.name")) is not None:
        event["user"] = {"username": user}
    if (uri := pick("ka.uri")) is not None:
        event["requestURI"] = uri
    reference_ = {}
    if (resource := pick("ka.target.resource")) is not None:
        reference_["resource"] = resource
    if (namespace := pick("ka.target.namespace")) is not None:
        reference_["namespace"] = namespace
    if reference_:
        event["objectRef"] = reference_
    return event


def _audit_events(documents: list[dict[str, Any]]) -> Iterator[Any]:
    from engine.sources.formats import EventFactory

    factory = EventFactory("k8s_audit")
    for document in documents:
        # The upstream files hold a few records the source refuses (tested elsewhere).
        if isinstance(document, dict) and document.get("kind") in ("Event", "EventList"):
            yield from factory.from_document(document)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(st.tuples(conditions(), st.booleans()), min_size=1, max_size=12),
    st.lists(audit_events(), min_size=1, max_size=25),
    st.sampled_from(["first", "all"]),
)
def test_generated_rulesets_match_per_rule_evaluation(
    bodies: list[tuple[str, bool]], documents: list[dict[str, Any]], matching: str
) -> None:
    engine.ruleset.INDEX_MIN_RULES, saved = 1, engine.ruleset.INDEX_MIN_RULES
    try:
        loaded = load_contents([("generated.yaml", _rules_text(bodies))], use_cache=False)
        ruleset = rulesets_for(loaded, matching=matching).by_source.get("k8s_audit")  # type: ignore[arg-type]
        if ruleset is None:
            return
        for event in _audit_events(documents):
            assert names(ruleset.evaluate(event)) == reference(ruleset, event)
    finally:
        engine.ruleset.INDEX_MIN_RULES = saved


def test_the_index_is_used_for_generated_rules(indexed: None) -> None:
    """The differential tests above exercise the index, not only the chain fallback."""
    from engine import condition_backend

    loaded = load_contents(
        [("r.yaml", _rules_text([("ka.verb = create", False), ("ka.uri startswith /api", False)]))],
        use_cache=False,
    )
    rules = [r.info["expanded_condition"] for r in loaded.rules]
    plan = plan_index(rules, condition_backend.catalog_for("k8s_audit"))
    assert plan.anchored == 2


# -- upstream rules over upstream data ---------------------------------------------------------


@pytest.mark.parametrize("sample", [10**9, 8])
@pytest.mark.parametrize("matching", ["first", "all"])
def test_upstream_k8s_audit_rules_on_upstream_events(
    shared_dir: Path, matching: str, sample: int, indexed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also with a bucket deciding after 8 events whether its index pays (these attack events
    select most rules: the bucket switches to the shared chain mid-stream)."""
    monkeypatch.setattr(engine.ruleset, "SAMPLE_EVENTS", sample)
    loaded = load_contents(
        [("k8s.yaml", (shared_dir / "upstream-rules" / "k8s_audit_rules.yaml").read_text())],
        use_cache=False,
    )
    from engine.ruleset import SelectionStep

    ruleset = rulesets_for(
        loaded,
        [SelectionStep(enable=True, rule="*")],
        matching=matching,  # type: ignore[arg-type]
    ).by_source["k8s_audit"]
    documents = [
        json.loads(line)
        for path in sorted((shared_dir / "upstream-events" / "k8s_audit").glob("*.json"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    alerts = 0
    for event in _audit_events(documents):
        expected = reference(ruleset, event)
        assert names(ruleset.evaluate(event)) == expected
        alerts += len(expected)
    assert alerts > 10  # the comparison saw detections, not only silence


def _syscall_ruleset(files: list[tuple[str, str]], matching: str) -> Ruleset:
    from engine.ruleset import SelectionStep

    loaded = load_contents(files, use_cache=False)
    steps = [SelectionStep(enable=True, rule="*")]
    return rulesets_for(loaded, steps, matching=matching).by_source["syscall"]  # type: ignore[arg-type]


def _compare_over_replay(ruleset: Ruleset, replay: Any) -> tuple[int, int]:
    events = alerts = 0
    for event in replay.events():
        if event.dir == ">":
            continue
        events += 1
        expected = reference(ruleset, event)
        assert names(ruleset.evaluate(event)) == expected, event
        alerts += len(expected)
    return events, alerts


@pytest.mark.parametrize("matching", ["first", "all"])
def test_upstream_syscall_rules_on_upstream_captures(
    shared_dir: Path, matching: str, indexed: None
) -> None:
    from engine.sources.syscall.replay import open_replay

    rules = shared_dir / "upstream-rules"
    files = [
        (name, (rules / name).read_text())
        for name in ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")
    ]
    ruleset = _syscall_ruleset(files, matching)
    total = alerts = 0
    for capture in sorted((shared_dir / "upstream-captures").glob("*.scap")):
        with open_replay(capture) as replay:
            seen, found = _compare_over_replay(ruleset, replay)
        total, alerts = total + seen, alerts + found
    assert total > 1000 and alerts > 0


@pytest.mark.parametrize("matching", ["first", "all"])
def test_generated_custom_rules_on_a_busy_host_stream(
    tmp_path: Path, matching: str, indexed: None
) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from gen_custom_rules import generate_rules
        from gen_syscall_stream import generate
    finally:
        sys.path.remove(str(BENCH))
    from engine.sources.syscall.replay import open_replay

    capture = tmp_path / "busy.fncap"
    generate(capture, 20_000, 3)
    seed = random.Random(matching).randrange(1000)
    ruleset = _syscall_ruleset([("custom.yaml", generate_rules(600, seed))], matching)
    with open_replay(capture) as replay:
        events, alerts = _compare_over_replay(ruleset, replay)
    assert events > 5000 and alerts > 0
