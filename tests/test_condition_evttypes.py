"""Event-type derivation, against libsinsp's filter_ppm_codes.ut.cpp cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.condition.errors import ConditionCompileError
from engine.condition.evttypes import event_type_set, event_types
from engine.condition.parser import parse

CASES = json.loads(
    (Path(__file__).parent / "data" / "condition" / "ppm_codes_cases.json").read_text()
)
UNIVERSE = frozenset(
    {"openat", "close", "mmap", "execve", "connect", "accept", "container", "open"}
)
NAMED_SETS = {
    "openat_only": frozenset({"openat"}),
    "not_openat": UNIVERSE - {"openat"},
    "openat_close_only": frozenset({"openat", "close"}),
    "not_openat_close": UNIVERSE - {"openat", "close"},
    "all_events": UNIVERSE,
    "no_events": frozenset(),
}


def resolved(condition: str) -> frozenset[str]:
    return event_type_set(parse(condition)).resolve(UNIVERSE)


@pytest.mark.parametrize(("condition", "expected"), CASES["set_cases"])
def test_upstream_event_sets(condition: str, expected: str) -> None:
    assert resolved(condition) == NAMED_SETS[expected]


@pytest.mark.parametrize(("left", "right"), CASES["equal_cases"])
def test_upstream_set_equalities(left: str, right: str) -> None:
    assert resolved(left) == resolved(right)


@pytest.mark.parametrize(("condition", "raises"), CASES["throw_cases"])
def test_transformers_on_evt_type_are_rejected(condition: str, raises: bool) -> None:
    if raises:
        with pytest.raises(ConditionCompileError, match="event code search"):
            event_type_set(parse(condition))
    else:
        event_type_set(parse(condition))


def test_case_counts() -> None:
    assert (len(CASES["set_cases"]), len(CASES["equal_cases"]), len(CASES["throw_cases"])) == (
        88,
        55,
        32,
    )


@pytest.mark.parametrize(
    ("condition", "universe", "expected"),
    [
        ("evt.type = open", None, frozenset({"open"})),
        ("evt.type in (open, openat) and proc.name = cat", None, frozenset({"open", "openat"})),
        ("syscall.type = execve", None, frozenset({"execve"})),
        ("proc.name = cat", None, None),
        ("evt.type != open", None, None),  # a complement needs the universe to be listed
        ("evt.type != open", UNIVERSE, UNIVERSE - {"open"}),
        ("evt.type = nosuchevent", UNIVERSE, frozenset()),
        ("evt.type in (open, nosuchevent)", UNIVERSE, frozenset({"open"})),
        ("proc.name = cat", UNIVERSE, None),
        ("evt.type[x] = open", None, None),  # an argument makes it another field
        ("evt.type startswith op", None, None),  # only = == != in narrow
        ("evt.type in some_list", None, frozenset({"some_list"})),
        ("some_macro and evt.type = open", None, frozenset({"open"})),
    ],
)
def test_event_types_api(
    condition: str, universe: frozenset[str] | None, expected: frozenset[str] | None
) -> None:
    assert event_types(parse(condition), universe) == expected
