"""The json source and its helpers: JSON pointers as the json plugin reads them, value rendering,
RFC 3339 event times."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.sources.json_event import JsonEvent, parse_rfc3339_ns
from tests.support.source_fields import extract

DOCUMENT = {
    "a/b": {"m~n": "escaped"},
    "list": [{"name": "zero"}, {"name": "one", "flag": True}],
    "num": 1000,
    "nothing": None,
    "text": "é",
}


@pytest.mark.parametrize(
    ("pointer", "value"),
    [
        ("/a~1b/m~0n", "escaped"),
        ("/list/1/name", "one"),
        ("/list/1/flag", "true"),
        ("/list/0", '{"name":"zero"}'),
        ("/num", "1000"),
        ("/nothing", "null"),  # present, JSON null
        ("/text", "é"),
        ("list/0/name", "zero"),  # the leading "/" is optional, as upstream
        ("/list/2/name", None),
        ("/list/x", None),
        ("/num/0", None),
        ("/missing", None),
    ],
)
def test_json_value_pointers(pointer: str, value: str | None) -> None:
    event = JsonEvent(DOCUMENT, 0, "json")
    assert extract("json", f"json.value[{pointer}]", event) == value
    assert extract("json", f"jevt.value[{pointer}]", event) == value


def test_whole_document_fields() -> None:
    event = JsonEvent(DOCUMENT, 1_700_000_000_123_456_789, "json", num=7)
    assert json.loads(extract("json", "json.obj", event)) == DOCUMENT
    assert extract("json", "json.obj", event).startswith('{\n  "a/b"')  # indented as json.Indent
    assert extract("json", "json.rawtime", event) == "1700000000123456789"
    assert extract("json", "evt.num", event) == 7
    assert extract("json", "evt.time.iso8601", event) == "2023-11-14T22:13:20.123456789Z"
    assert extract("json", "evt.source", event) == "json"
    assert extract("json", "evt.pluginname", event) == "json"


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2018-10-25T13:58:49.736141Z", 1_540_475_929_736_141_000),
        ("2018-10-25T13:58:49Z", 1_540_475_929_000_000_000),
        ("2018-10-25T15:58:49.123456789123+02:00", 1_540_475_929_123_456_789),
        ("2018-10-25T08:58:49-05:00", 1_540_475_929_000_000_000),
    ],
)
def test_rfc3339_times(text: str, ns: int) -> None:
    assert parse_rfc3339_ns(text) == ns


@pytest.mark.parametrize("text", ["2018-10-25T13:58:49", "2018-10-25 13:58:49Z", "yesterday", 17])
def test_rfc3339_refusals(text: object) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339_ns(text)  # type: ignore[arg-type]


@given(
    value=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=8,
    )
)
def test_json_text_is_compact_json_for_every_value(value: object) -> None:
    from engine.sources.jsonpath import to_json_text

    assert to_json_text(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
