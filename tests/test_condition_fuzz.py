"""Fuzzing: random and mutated conditions only ever raise the language's own errors, and every
condition of the upstream rules files parses."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.condition.ast import to_text
from engine.condition.compiler import compile_condition
from engine.condition.errors import ConditionError
from engine.condition.evttypes import event_type_set
from engine.condition.parser import parse
from engine.testing import make_event, synthetic_catalog

CATALOG = synthetic_catalog()
SEEDS = json.loads(
    (Path(__file__).parent / "data" / "condition" / "filter_parser_cases.json").read_text()
)["accept"] + [
    "test.str = a and test.int > 3",
    "test.list in (a, b)",
    "tolower(test.str) = val(test.str2)",
    "test.path pmatch (/a/*, /b)",
    "test.net in (10.0.0.0/8)",
    "test.str startswith oneof (a, b)",
    'getopt(test.list, "nt:")[t] = v',
    'join(",", test.list) = "a,b"',
    "test.anc = x and test.buf bcontains 00ff",
    "len(test.list) > 2 or b64(test.str) exists",
    "test.str regex 'a.*' and test.str glob '[a-'",
]
FIELDS = ["test.str", "test.int", "test.list", "test.ip", "test.net", "test.buf", "test.bool"]
FIELDS += ["test.path", "test.anc", "test.anc[1]", "test.map[x]", "evt.type", "test.port"]
TOKENS = [*"()[]\"'\\,=!<>. \t\nabc019-*?/:", "and", "or", "not", "in", "exists"]
TOKENS += ["contains", "glob", "val(", "tolower(", "oneof ", "pmatch", "\\x4", "\0", *FIELDS]
EVENT = make_event(
    test_str="abc",
    test_int=3,
    test_list=["a", "b"],
    test_ip="1.2.3.4",
    test_net="10.0.0.1",
    test_buf=b"\x00\xff",
    test_bool=True,
    test_path="/a/b",
    test_anc=["x", "y"],
    test_map={"x": "1"},
    evt_type="open",
)
OTHER_EVENT = make_event(test_str="a.b", test_list=[], test_ip="::1", test_anc=["a"], evt_type="x")


def exercise(text: str) -> None:
    """Parse, print, derive event types, compile and run: only ConditionError may escape."""
    try:
        node = parse(text)
    except ConditionError as error:
        assert error.position is not None and 0 <= error.position <= len(text)
        return
    # libsinsp's printer does not quote every value (e.g. ""), so neither does ours.
    with contextlib.suppress(ConditionError):
        parse(to_text(node))
    with contextlib.suppress(ConditionError):
        event_type_set(node)
    try:
        compiled = compile_condition(node, CATALOG)
    except ConditionError:
        return
    # Sharing extractions between checks never changes a result.
    unshared = compile_condition(node, CATALOG, share_extractions=False)
    for event in (EVENT, OTHER_EVENT, {}):
        result = compiled(event)
        assert isinstance(result, bool)
        assert result is unshared(event)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=30).map("".join))
def test_random_token_soup(text: str) -> None:
    exercise(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_random_unicode_text(text: str) -> None:
    exercise(text)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    if draw(st.booleans()):
        text = text.replace("test.str", draw(st.sampled_from(FIELDS)))
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        token = draw(st.sampled_from(TOKENS))
        if kind == "insert":
            text = text[:position] + token + text[position:]
        elif kind == "delete":
            text = text[:position] + text[position + 1 :]
        else:
            text = text[:position] + token + text[position + 1 :]
    return text


@settings(max_examples=600, deadline=None)
@given(mutated())
def test_mutated_conditions(text: str) -> None:
    exercise(text)


def test_every_upstream_condition_parses(shared_dir: Path) -> None:
    conditions = {}
    for path in sorted((shared_dir / "upstream-rules").rglob("*.yaml")):
        for item in yaml.safe_load(path.read_text()) or []:
            if isinstance(item, dict) and "condition" in item:
                conditions[item.get("rule") or item.get("macro")] = str(item["condition"])
    assert len(conditions) >= 600
    not_reparsable = set()
    for name, condition in conditions.items():
        node = parse(condition)
        # The canonical text (Falco's condition_compiled) parses back to the same tree, except
        # where libsinsp's printer itself loses information: an empty string prints as nothing
        # and a trailing escaped backslash ("\\") cannot be lexed back.
        try:
            assert parse(to_text(node)) == node
        except ConditionError:
            not_reparsable.add(name)
    assert not_reparsable == {
        "Delete Bucket Public Access Block",
        "known_user_in_container",
        "Sudo Potential Privilege Escalation",
        "Polkit Local Privilege Escalation Vulnerability (CVE-2021-4034)",
        "mount_info",
    }
