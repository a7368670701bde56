"""Fuzzing the loader: random and mutated rules content never raises; every problem is a load
error or warning whose position lies inside the content."""

from __future__ import annotations

import importlib.util

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.fields import catalog
from engine.loader import load_contents

SEED = """\
- required_engine_version: 0.26.0
- list: shells
  items: [bash, sh, "a b"]
- macro: spawned
  condition: evt.type in (execve, execveat) and proc.name in (shells)
- rule: r
  desc: d
  condition: spawned and not proc.pname = sshd
  output: shell %proc.name
  priority: WARNING
  tags: [t]
  exceptions:
    - name: e
      fields: [proc.name, fd.name]
      comps: [=, startswith]
      values: [[bash, /etc]]
- rule: r
  condition: or proc.name = zsh
  override: {condition: append}
"""
NEEDED_MODULES = ("engine.condition.compiler", "engine.condition.evttypes", "engine.output")


def _need_compiler() -> None:
    if catalog("syscall") is None:
        pytest.skip("the syscall field catalog is not registered in this tree yet")
    for module in NEEDED_MODULES:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not in this tree yet")


def _check(text: str) -> None:
    loaded = load_contents([("fuzz.yaml", text)], use_cache=False)
    (result,) = loaded.results
    for message in result.errors + result.warnings:
        assert message.message or message.code.name == "LOAD_UNSAFE_NA_CHECK"
        for location in message.context.locations:
            if location.name == "fuzz.yaml":
                assert 0 <= location.position.offset <= len(text)
        message.context.snippet(loaded.contents)  # renders without raising


@st.composite
def mutated_seed(draw: st.DrawFn) -> str:
    text = SEED
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(
            st.text(alphabet=st.sampled_from(list(" -:[]{}()\"',=!&*|>\n\tabc%.")), max_size=4)
        )
        if action == "insert":
            text = text[:position] + chunk + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + len(chunk) + 1 :]
        else:
            text = text[:position] + chunk + text[position + len(chunk) :]
    return text


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text(max_size=200))
def test_random_text_only_gives_load_results(text: str) -> None:
    _need_compiler()
    _check(text)


@FUZZ
@given(mutated_seed())
def test_mutated_rules_only_give_load_results(text: str) -> None:
    _need_compiler()
    _check(text)


def test_large_list_and_deep_condition_load() -> None:
    _need_compiler()
    items = ", ".join(f"bin{i}" for i in range(10_000))
    deep = "(" * 100 + "proc.name = x" + ")" * 100
    text = (
        f"- list: many\n  items: [{items}]\n"
        "- rule: big\n  desc: d\n"
        f"  condition: evt.type = execve and proc.name in (many) and {deep}\n"
        "  output: o\n  priority: INFO\n"
    )
    loaded = load_contents([("big.yaml", text)], use_cache=False)
    assert loaded.successful, [e.message for r in loaded.results for e in r.errors]
    assert len(loaded.lists["many"].items) == 10_000
