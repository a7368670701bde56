"""Falco's LOAD_UNSAFE_NA_CHECK: comparing a ka.*/jevt.* field with `<NA>` warns, also when the
field is wrapped in transformers (Falco's warning visitor looks through them)."""

from __future__ import annotations

import json

import pytest

from engine.loader import load_contents


def _warnings(condition: str) -> list[str]:
    text = (
        f"- rule: r\n  desc: d\n  condition: {json.dumps(condition)}\n  output: o\n"
        "  priority: WARNING\n  source: k8s_audit\n"
    )
    loaded = load_contents([("na.yaml", text)], use_cache=False)
    return [w.code.name for result in loaded.results for w in result.warnings]


@pytest.mark.parametrize(
    "condition",
    [
        "ka.user.name = <NA>",
        "tolower(ka.user.name) = <NA>",
        "toupper(tolower(ka.user.name)) != <NA>",
        "b64(jevt.value[/user/username]) = <NA>",
        "ka.verb = create and tolower(ka.target.namespace) in (default, <NA>)",
    ],
)
def test_unsafe_na_comparisons_warn(condition: str) -> None:
    assert "LOAD_UNSAFE_NA_CHECK" in _warnings(condition)


@pytest.mark.parametrize(
    "condition",
    [
        "tolower(ka.user.name) = admin",
        "tolower(ka.user.name) startswith <NA>",
        "ka.user.name exists",
    ],
)
def test_other_comparisons_do_not(condition: str) -> None:
    assert "LOAD_UNSAFE_NA_CHECK" not in _warnings(condition)
