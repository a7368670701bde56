"""Rule selection cases transcribed from Falco's unit_tests/engine/test_enable_rule.cpp, run on
rules loaded by the real loader. A Falco custom ruleset starts with no rule enabled: here that is
a selection beginning with `disable: {rule: "*"}`; the default ruleset starts from the files."""

from __future__ import annotations

import pytest

from engine.fields import catalog
from engine.ruleset import parse_selection, select_enabled

SINGLE_RULE = """
- rule: test rule
  desc: A test rule
  condition: evt.type=execve
  output: A test rule matched (evt.type=%evt.type)
  priority: INFO
  source: syscall
  tags: [process]
- rule: disabled rule
  desc: A disabled rule
  condition: evt.type=execve
  output: A disabled rule matched (evt.type=%evt.type)
  priority: INFO
  source: syscall
  enabled: false
  tags: [exec process]
"""
MULTI_RULE = """
- rule: first actual rule
  desc: A test rule
  condition: evt.type=execve
  output: A test rule matched (evt.type=%evt.type)
  priority: INFO
  source: syscall
  tags: [process]
- rule: second disabled rule
  desc: A disabled rule
  condition: evt.type=execve
  output: A disabled 2 rule matched (evt.type=%evt.type)
  priority: INFO
  source: syscall
  enabled: false
  tags: [exec process]
- rule: third disabled rule
  desc: A disabled rule
  condition: evt.type=execve
  output: A disabled 3 rule matched (evt.type=%evt.type)
  priority: INFO
  source: syscall
  enabled: false
  tags: [exec]
"""
CUSTOM = {"disable": {"rule": "*"}}  # a Falco custom ruleset starts empty


def enabled_count(text: str, steps: list[dict[str, dict[str, str]]]) -> int:
    if catalog("syscall") is None:
        pytest.skip("the syscall field catalog is not registered in this tree yet")
    from engine.loader import load_contents

    loaded = load_contents([("rules.yaml", text)])
    assert loaded.successful
    return len(select_enabled(loaded.rules, parse_selection(steps)))


def test_default_ruleset_follows_the_files() -> None:
    assert enabled_count(SINGLE_RULE, []) == 1
    assert enabled_count(MULTI_RULE, []) == 1


def test_enable_rule_tags() -> None:
    assert enabled_count(SINGLE_RULE, [CUSTOM, {"enable": {"tag": "process"}}]) == 1
    assert (
        enabled_count(
            SINGLE_RULE,
            [CUSTOM, {"enable": {"tag": "process"}}, {"disable": {"tag": "process"}}],
        )
        == 0
    )


def test_enable_disabled_rule_by_tag() -> None:
    # "exec process" is one tag (with a space), carried only by the disabled rule.
    assert enabled_count(SINGLE_RULE, [{"enable": {"tag": "exec process"}}]) == 2


def test_enable_rule_name_exact() -> None:
    assert enabled_count(SINGLE_RULE, [CUSTOM, {"enable": {"rule": "test rule"}}]) == 1
    # A substring is not a match without a wildcard.
    assert enabled_count(SINGLE_RULE, [CUSTOM, {"enable": {"rule": "test"}}]) == 0


@pytest.mark.parametrize(
    ("pattern", "count"),
    [("first actual rule", 1), ("*rule", 3), ("*second*r*", 1), ("*", 3)],
)
def test_enable_rule_name_wildcard(pattern: str, count: int) -> None:
    assert enabled_count(MULTI_RULE, [CUSTOM, {"enable": {"rule": pattern}}]) == count
