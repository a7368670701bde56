"""The compiled alert path: output formats rendered by generated code, huge fields truncated,
JSON alerts serialised from per-rule templates byte for byte as json.dumps would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.output import (
    MAX_FIELD_CHARS,
    TRUNCATION_MARKER,
    AlertTemplate,
    JsonOptions,
    Priority,
    compile_output,
    json_alert,
    json_alert_text,
    text_line,
    value_text,
)
from engine.testing import make_event, synthetic_catalog


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_a_huge_field_is_truncated_with_a_marker_in_text_and_json() -> None:
    output = compile_output("user=%test.str path=%test.path n=%test.int", synthetic_catalog())
    huge = "A" * (MAX_FIELD_CHARS * 20)
    text, fields = output.render_with_fields(make_event(test_str=huge, test_int=3))
    assert text == (f"user={'A' * MAX_FIELD_CHARS}{TRUNCATION_MARKER} path=<NA> n=3")
    assert fields == {
        "test.str": "A" * MAX_FIELD_CHARS + TRUNCATION_MARKER,
        "test.path": None,
        "test.int": 3,
    }
    # A value at the limit is kept whole.
    exact = "B" * MAX_FIELD_CHARS
    assert output.render(make_event(test_str=exact)).startswith(f"user={exact} path=")


def test_a_huge_list_field_is_truncated_too() -> None:
    output = compile_output("%test.list", synthetic_catalog())
    text = output.render(make_event(test_list=["x" * 1000] * 100))
    assert len(text) == MAX_FIELD_CHARS + len(TRUNCATION_MARKER)
    assert text.endswith(TRUNCATION_MARKER)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.none(), st.text(max_size=30)),
    st.one_of(st.none(), st.integers(-(2**63), 2**63)),
    st.one_of(st.none(), st.booleans()),
    st.one_of(st.none(), st.lists(st.text(max_size=5), max_size=3)),
    st.one_of(st.none(), st.floats(allow_nan=False)),
    st.text(max_size=20),
)
def test_rendering_matches_the_reference_text_and_values(
    string: str | None,
    number: int | None,
    flag: bool | None,
    items: list[str] | None,
    double: float | None,
    literal: str,
) -> None:
    # A literal right after a field must not continue its name (Falco reads `%a.b2` as the
    # field a.b2): it starts with a separator.
    literal = " " + literal.replace("%", "")
    fmt = f"{literal}%test.str|%5test.int|%test.bool|%test.list|%test.double %test.str{literal}"
    output = compile_output(fmt, synthetic_catalog())
    values = {"test.str": string, "test.int": number, "test.bool": flag}
    values |= {"test.list": tuple(items) if items is not None else None, "test.double": double}
    event = {key: value for key, value in values.items() if value is not None}
    text, fields = output.render_with_fields(event)

    def shown(key: str, width: int = 0) -> str:
        rendered = value_text(values[key])
        return rendered[:width].ljust(width) if width else rendered

    expected = (
        f"{literal}{shown('test.str')}|{shown('test.int', 5)}|{shown('test.bool')}|"
        f"{shown('test.list')}|{shown('test.double')} {shown('test.str')}{literal}"
    )
    assert text == expected
    assert fields == {
        key: list(value) if isinstance(value, tuple) else value for key, value in values.items()
    }


_OPTIONS = [
    JsonOptions(),
    JsonOptions(include_output=False),
    JsonOptions(include_output_fields=False, include_message=True),
    JsonOptions(include_tags=False, include_message=True),
]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(_OPTIONS),
    st.booleans(),
    st.text(),
    st.dictionaries(
        st.text(min_size=1, max_size=12),
        st.one_of(
            st.none(),
            st.text(),
            st.integers(-(2**70), 2**70),
            st.booleans(),
            st.floats(allow_nan=False),
            st.lists(st.one_of(st.text(max_size=4), st.integers())),
        ),
        max_size=6,
    ),
    st.frozensets(st.text(max_size=8), max_size=4),
    st.integers(0, 2**63),
)
def test_template_documents_and_text_equal_json_alert(
    options: JsonOptions,
    iso8601: bool,
    output: str,
    fields: dict[str, Any],
    tags: frozenset[str],
    time_ns: int,
) -> None:
    common = {
        "priority": Priority.WARNING,
        "rule": 'Rule "x" \u00e9\n',
        "source": "k8s_audit",
        "tags": tags,
        "hostname": "h\tost",
        "iso8601": iso8601,
        "options": options,
    }
    line = text_line(time_ns, Priority.WARNING, output, iso8601)
    template = AlertTemplate(**common)
    document = template.document(time_ns, line, output, fields)
    reference = json_alert(
        time_ns=time_ns, output=output, output_fields=fields, line=line, **common
    )
    assert document == reference
    assert json_alert_text(document) == _dumps(reference)


def test_a_changed_document_is_serialised_as_changed() -> None:
    template = AlertTemplate(
        priority=Priority.ERROR, rule="r", source="syscall", tags=["b", "a"], hostname="h"
    )
    document = template.document(1, "line", "out", {"proc.name": "cat"})
    document["webhook_type"] = "x"
    assert json_alert_text(document) == _dumps(dict(document))
    document.pop("webhook_type")
    document["output_fields"]["proc.name"] = "vi"  # read when serialised, whatever the template
    assert json.loads(json_alert_text(document))["output_fields"]["proc.name"] == "vi"


def test_upstream_k8s_alerts_are_the_json_alert_ones(shared_dir: Path) -> None:
    from engine.loader import load_valid_rules, rulesets_for
    from engine.ruleset import SelectionStep
    from engine.runner import AlertFormatter
    from engine.sources.formats import EventFactory

    loaded = load_valid_rules([shared_dir / "upstream-rules" / "k8s_audit_rules.yaml"])
    steps = [SelectionStep(enable=True, rule="*")]
    ruleset = rulesets_for(loaded, steps, matching="all").by_source["k8s_audit"]
    factory = EventFactory("k8s_audit")
    formatter = AlertFormatter(hostname="node-1")
    compared = 0
    for path in sorted((shared_dir / "upstream-events" / "k8s_audit").glob("*.json")):
        for raw in path.read_text().splitlines():
            record = json.loads(raw) if raw.strip() else None
            if not isinstance(record, dict) or record.get("kind") != "Event":
                continue
            for event in factory.from_document(record):
                for rule in ruleset.evaluate(event):
                    alert = formatter.alert(rule, event, "k8s_audit")
                    output, fields = rule.output.render_with_fields(event)
                    reference = json_alert(
                        time_ns=event.ts,
                        priority=formatter.priority(rule),
                        rule=rule.name,
                        source="k8s_audit",
                        output=output,
                        output_fields=fields,
                        tags=rule.tags,
                        hostname="node-1",
                    )
                    assert alert.document == reference
                    assert alert.json_text == _dumps(reference)
                    compared += 1
    assert compared > 20


@pytest.mark.parametrize("priority", list(Priority))
def test_priority_names(priority: Priority) -> None:
    assert priority.falco_name == priority.name.capitalize()
