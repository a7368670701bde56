"""Output formats, alert lines and JSON alerts (libsinsp eventformatter.ut.cpp cases, Falco's
expected outputs from its 0.34.1 regression suite)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.fields import FieldCatalog, FieldSpec, with_text
from engine.output import (
    JsonOptions,
    OutputFormatError,
    Priority,
    compile_output,
    iso8601_utc,
    json_alert,
    json_alert_text,
    text_line,
)
from engine.testing import make_event, synthetic_catalog

CATALOG = synthetic_catalog()


def render(fmt: str, **event: Any) -> str:
    return compile_output(fmt, CATALOG).render(make_event(**event))


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("start %test.str end", "start init end"),
        ("start %2test.str end", "start in end"),
        ("start %10test.str end", "start init       end"),
        ("start %test.str %test.int end", "start init 1 end"),
        ("start%test.strand%test.intend", "startinitand1end"),
        ("start %test.str %test.uint end", "start init <NA> end"),
        ("*start %test.str %test.uint end", "start init <NA> end"),
        ("start end", "start end"),
        ("start %test.anc[0] end", "start init end"),
        ("start %test.anc end", "start init end"),  # candidates print the first one
        ("start%test.anc[0]and%test.anc[1]end", "startinitandsystemdend"),
        ("start %toupper(test.str) end", "start INIT end"),
        ("start %toupper( test.str ) end", "start INIT end"),
        ("start %toupper( tolower( test.str ) ) end", "start INIT end"),
        ("start %tolower(toupper(test.str)) end", "start init end"),
        ("(command=%test.str)", "(command=init)"),
        ("%test.str.", "init."),  # longest prefix that is a field; the rest is literal
        ("%test.map[HOME]:%test.dotted.flags", "/root:O_RDONLY"),
        ("%test.bool %test.ip %test.list", "true 10.0.0.1 (a,b)"),
    ],
)
def test_render_matches_libsinsp_formatter(fmt: str, expected: str) -> None:
    event = {
        "test_str": "init",
        "test_int": 1,
        "test_anc": ["init", "systemd"],
        "test_map": {"HOME": "/root"},
        "test_dotted": {"flags": "O_RDONLY"},
        "test_bool": True,
        "test_ip": "10.0.0.1",
        "test_list": ["a", "b"],
    }
    assert render(fmt, **event) == expected
    output = compile_output(fmt, CATALOG)
    # The alert path renders and collects the typed values in one pass: the same results.
    assert output.render_with_fields(make_event(**event)) == (
        expected,
        output.field_values(make_event(**event)),
    )


@pytest.mark.parametrize(
    "fmt",
    [
        "",
        "start %some.field end",
        "start %a end",
        "start % end",
        "start %test.str %",
        "start %12",
        "start %some_transformer(test.str) end",
        "start %val(test.str) end",
        "start %(test.str) end",
        "start %toupper(test.str",
        "start %toupper(tolower)",
        "start %toupper(tolower(test.str)",
        "start %toupper(val(test.str))",
        "start %touper(",
        "start %(",
        "start %toupper(test.int) end",
        "start %toupper (test.str) end",
    ],
)
def test_invalid_formats_are_rejected(fmt: str) -> None:
    with pytest.raises(OutputFormatError):
        compile_output(fmt, CATALOG)


def test_unknown_field_message_is_falcos() -> None:
    with pytest.raises(OutputFormatError) as info:
        compile_output("An open was seen %not_a_real_field", CATALOG)
    assert str(info.value) == "invalid formatting token not_a_real_field"
    with pytest.raises(OutputFormatError, match="cannot end with a %"):
        compile_output("abc %", CATALOG)


def test_field_values_are_typed_with_null_for_missing() -> None:
    output = compile_output(
        "%test.str %test.int %test.bool %test.ip %test.list %test.uint %test.str", CATALOG
    )
    assert output.field_names == (
        "test.str",
        "test.int",
        "test.bool",
        "test.ip",
        "test.list",
        "test.uint",
    )
    values = output.field_values(
        make_event(test_str="x", test_int=-3, test_bool=False, test_ip="::1", test_list=["a"])
    )
    assert values == {
        "test.str": "x",
        "test.int": -3,
        "test.bool": False,
        "test.ip": "::1",
        "test.list": ["a"],
        "test.uint": None,
    }


@pytest.mark.parametrize(
    ("text", "priority"),
    [
        ("WARNING", Priority.WARNING),
        ("warning", Priority.WARNING),
        ("Informational", Priority.INFORMATIONAL),
        ("info", Priority.INFORMATIONAL),
        ("INFO", Priority.INFORMATIONAL),
        ("Emergency", Priority.EMERGENCY),
        ("debug", Priority.DEBUG),
    ],
)
def test_priority_parsing(text: str, priority: Priority) -> None:
    assert Priority.parse(text) is priority


def test_priority_order_and_names() -> None:
    assert [p.falco_name for p in sorted(Priority)] == [
        "Emergency",
        "Alert",
        "Critical",
        "Error",
        "Warning",
        "Notice",
        "Informational",
        "Debug",
    ]
    assert Priority.ERROR.at_least(Priority.WARNING)
    assert not Priority.NOTICE.at_least(Priority.WARNING)
    with pytest.raises(ValueError, match="Unknown priority 'loud'"):
        Priority.parse("loud")


def test_time_formats() -> None:
    assert iso8601_utc(1470327477881781397) == "2016-08-04T16:17:57.881781397Z"
    assert iso8601_utc(5) == "1970-01-01T00:00:00.000000005Z"
    line = text_line(1470327477881781397, Priority.NOTICE, "x", iso8601=False)
    assert line.endswith(".881781397: Notice x") and line[2] == ":" and line[5] == ":"
    # Stamps are cached per second: the next second and a second seen earlier stay right.
    assert iso8601_utc(1470327478000000001) == "2016-08-04T16:17:58.000000001Z"
    assert iso8601_utc(1470327477000000000) == "2016-08-04T16:17:57.000000000Z"


def test_control_characters_are_escaped_in_the_text_line() -> None:
    line = text_line(0, Priority.ERROR, "a\nb\tc", iso8601=True)
    assert line == "1970-01-01T00:00:00.000000000+0000: Error a\\nb\\tc"


def test_json_alert_options_and_sorted_tags() -> None:
    alert = json_alert(
        time_ns=1,
        priority=Priority.DEBUG,
        rule="r",
        source="k8s_audit",
        output="out",
        output_fields={"ka.verb": None},
        tags=["z", "a", "z"],
        hostname="h",
        options=JsonOptions(include_output=False, include_message=True),
    )
    assert alert["tags"] == ["a", "z"]
    assert alert["message"] == "out"
    assert "output" not in alert
    assert alert["output_fields"] == {"evt.time": 1, "ka.verb": None}
    assert list(json.loads(json_alert_text(alert))) == sorted(alert)


def _cmdline_catalog() -> FieldCatalog:
    catalog = FieldCatalog("mini")
    catalog.add_simple(FieldSpec("proc.cmdline", "string"), lambda e: e.get("proc.cmdline"))
    clock = with_text(lambda e: e.get("evt.rawtime"), lambda ns: iso8601_utc(ns, "+0000"))
    catalog.add_simple(FieldSpec("evt.time.iso8601", "abstime"), clock)
    return catalog


def test_matches_falcos_expected_output(shared_dir: Path) -> None:
    expected_dir = shared_dir / "upstream-events" / "expected-output"
    json_lines = (expected_dir / "single_rule_with_cat_write.json").read_text().splitlines()
    text_lines = (expected_dir / "single_rule_with_cat_write.txt").read_text().splitlines()
    output = compile_output("An open was seen (command=%proc.cmdline)", _cmdline_catalog())
    assert len(json_lines) == len(text_lines) == 8
    for json_line, text in zip(json_lines, text_lines, strict=True):
        expected = json.loads(json_line)
        time_ns = expected["output_fields"]["evt.time.iso8601"]
        event = {"proc.cmdline": "cat /dev/null", "evt.rawtime": time_ns}
        rendered = output.render(event)
        alert = json_alert(
            time_ns=time_ns,
            priority=Priority.parse("WARNING"),
            rule="open_from_cat",
            source="syscall",
            output=rendered,
            output_fields=output.field_values(event),
            tags=["testing", "process", "filesystem"],
            hostname="test-falco-hostname",
            iso8601=True,
        )
        assert alert == expected
        assert text_line(time_ns, Priority.WARNING, rendered, iso8601=True) == text


def test_field_specific_text_form_is_used_in_text_but_not_json() -> None:
    output = compile_output("at %evt.time.iso8601", _cmdline_catalog())
    event = {"evt.rawtime": 1470327477881781397}
    assert output.render(event) == "at 2016-08-04T16:17:57.881781397+0000"
    assert output.field_values(event) == {"evt.time.iso8601": 1470327477881781397}
