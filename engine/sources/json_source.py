"""The `json` source and the json plugin's fields (`json.*`, `jevt.*`).

In Falco the json plugin extracts from the events of every JSON-producing source, so
`add_json_fields` is also called by k8s_audit, aws_cloudtrail, gcp_auditlog, github and okta.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from engine.fields import Extractor, FieldCatalog, FieldSpec, register_source
from engine.sources import provide_plugin
from engine.sources.formats import RecordFormat, arrival_time, register_format
from engine.sources.json_event import (
    JsonEvent,
    add_event_fields,
    add_shared,
    memoized,
    on_object,
)
from engine.sources.jsonpath import MISSING, compile_pointer, steps_getter, to_json_text

SOURCE = "json"
PLUGIN = "json"
PLUGIN_VERSION = "0.7.4"


def _value_extractor(pointer: str | None) -> Extractor:
    # The json plugin marks the argument required, but renders the whole document for an empty
    # one; both spellings ("json.value[]" is rejected by the parser anyway) end up here.
    get = steps_getter(compile_pointer(pointer or ""))

    def extract(event: JsonEvent) -> str | None:
        value = get(event.data)
        if type(value) is str:
            return value
        return None if value is MISSING else to_json_text(value)

    return memoized(extract)


def json_obj(event: JsonEvent) -> str:
    """The whole event as indented JSON text (the plugin runs Go's json.Indent on the raw
    bytes; re-serialising the parsed document gives the same text for well-formed input)."""
    if event.raw is not None:
        try:
            return json.dumps(json.loads(event.raw), indent=2, ensure_ascii=False)
        except ValueError:
            return event.raw.decode("utf-8", "replace")
    return json.dumps(event.data, indent=2, ensure_ascii=False)


def raw_text(event: JsonEvent) -> str:
    """The event as the plugins' String() shows it: its JSON text."""
    if event.raw is not None:
        return event.raw.decode("utf-8", "replace")
    return json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)


def add_json_fields(catalog: FieldCatalog) -> None:
    for prefix, alias in (("json", ""), ("jevt", "Alias for json.*, kept for compatibility. ")):
        add_shared(
            catalog,
            FieldSpec(
                f"{prefix}.value",
                "string",
                alias + "A value of a JSON input, by RFC 6901 JSON pointer: json.value[/a/b]",
                arg="required",
            ),
            _value_extractor,
        )
        catalog.add_simple(
            FieldSpec(f"{prefix}.obj", "string", alias + "The full JSON message as text"), json_obj
        )
        catalog.add_simple(
            FieldSpec(f"{prefix}.rawtime", "string", alias + "The event time, as evt.rawtime"),
            memoized(lambda event: str(event.time)),
        )


def plugin_catalog(
    source: str,
    plugin: str,
    string_fields: Iterable[tuple[str, str, Callable[[dict[str, Any]], Any]]] = (),
    info: Callable[[JsonEvent], str] = raw_text,
) -> FieldCatalog:
    """The fields every JSON-producing plugin source starts with, in Falco's order: libsinsp's
    evt.* fields, the json plugin's, then the plugin's own string fields (name, description,
    extractor over the event object)."""
    catalog = FieldCatalog(source)
    add_event_fields(catalog, plugin, info)
    add_json_fields(catalog)
    for name, desc, extract in string_fields:
        catalog.add_simple(FieldSpec(name, "string", desc), on_object(extract))
    return catalog


def build_catalog() -> FieldCatalog:
    return plugin_catalog(SOURCE, PLUGIN)


register_source(SOURCE, build_catalog)
# Any JSON document is one event, stamped on arrival.
register_format(RecordFormat(SOURCE, lambda document: (document,), arrival_time))
provide_plugin(PLUGIN, PLUGIN_VERSION)
