"""Action parameters rendered from an alert: `${proc.pid}`, `${rule}`, `${output_fields.fd.name}`.

A placeholder names an output field (`${fd.name}`) or a top-level alert key (`${rule}`,
`${priority}`, `${hostname}`, `${source}`, `${time}`, `${output}`, `${tags}`). A string that is
exactly one placeholder keeps the value's JSON type (so `${proc.pid}` stays a number); inside
longer text, values are inserted as text. A field the alert lacks renders as null / `<NA>`, like
Falco's outputs. Nested lists and mappings are rendered item by item.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from engine.output import NOT_AVAILABLE
from engine.response.errors import ResponseRulesError

_ALERT_KEYS = ("rule", "priority", "hostname", "source", "time", "output", "tags")


class _FieldTemplate(string.Template):
    # Field names carry dots, brackets (proc.aname[2]) and slashes (ka.req.pod.labels/app).
    idpattern = r"[A-Za-z_][A-Za-z0-9_.\[\]/-]*"


_WHOLE = re.compile(r"^\$\{(" + _FieldTemplate.idpattern + r")\}$")


def alert_value(alert: Mapping[str, Any], name: str) -> Any:
    """The value a placeholder stands for, None when the alert does not carry it."""
    fields = alert.get("output_fields") or {}
    if name in fields:
        return fields[name]
    if name.startswith("output_fields."):
        return fields.get(name.removeprefix("output_fields."))
    if name in _ALERT_KEYS:
        return alert.get(name)
    return None


def _text(value: Any) -> str:
    if value is None:
        return NOT_AVAILABLE
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return str(value)


class _AlertLookup(dict[str, str]):
    def __init__(self, alert: Mapping[str, Any]) -> None:
        super().__init__()
        self.alert = alert

    def __missing__(self, key: str) -> str:
        return _text(alert_value(self.alert, key))


def render(value: Any, alert: Mapping[str, Any]) -> Any:
    """Render every string inside `value` (parameters of an action) against `alert`."""
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole is not None:
            return alert_value(alert, whole.group(1))
        try:
            return _FieldTemplate(value).substitute(_AlertLookup(alert))
        except ValueError as error:
            raise ResponseRulesError(f"bad placeholder in {value!r}: {error}") from error
    if isinstance(value, Mapping):
        return {key: render(item, alert) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, alert) for item in value]
    return value


def check_template(value: Any) -> None:
    """Raise ResponseRulesError for a malformed placeholder, at load time."""
    render(value, {})
