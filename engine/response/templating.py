"""Action parameters rendered from an alert: `${proc.pid}`, `${rule}`, `${output_fields.fd.name}`.

A placeholder names an output field (`${fd.name}`), a top-level alert key (`${rule}`,
`${priority}`, `${hostname}`, `${source}`, `${time}`, `${output}`, `${tags}`), or one of the
event's own process fields the engine knows whatever the output prints (`${proc.pid}`,
`${proc.pid.ts}`, `${thread.tid}`, syscall alerts only). A string that is
exactly one placeholder keeps the value's JSON type (so `${proc.pid}` stays a number); inside
longer text, values are inserted as text. A field the alert lacks renders as null / `<NA>`, like
Falco's outputs. Nested lists and mappings are rendered item by item.

Commands (`exec:script`) follow a stricter rule, `render_argv`: the command is split into
arguments first (a string like POSIX sh words, with shlex; a list as given), and only then is
each argument rendered, as text, on its own. A value is never split, joined or re-parsed, and
no shell ever sees it: whatever quotes, spaces or semicolons an event field carries, it ends up
inside the one argument whose template named it. The program (the first argument) may not
contain a placeholder: event data never chooses what runs.
"""

from __future__ import annotations

import re
import shlex
import string
from collections.abc import Mapping
from typing import Any

from engine.output import NOT_AVAILABLE
from engine.response.errors import ResponseRulesError

_ALERT_KEYS = ("rule", "priority", "hostname", "source", "time", "output", "tags")
# The event's own process identity (engine.sinks.Alert.origin), added by the response engine to
# the alert it hands actions: `${proc.pid}` resolves even when the output does not print it.
EVENT_KEY = "falconet.event"


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
    return (alert.get(EVENT_KEY) or {}).get(name)


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


def _split_command(command: Any) -> list[str]:
    if isinstance(command, str):
        try:
            return shlex.split(command)
        except ValueError as error:
            raise ResponseRulesError(f"cannot split command {command!r}: {error}") from None
    if isinstance(command, list):
        return [str(item) for item in command]
    raise ResponseRulesError(f"a command is a string or a list, not {type(command).__name__}")


def check_argv(command: Any) -> None:
    """Raise ResponseRulesError (load time) for a command that cannot be split, is empty, or
    takes its program from a placeholder."""
    argv = _split_command(command)
    if not argv:
        raise ResponseRulesError("the command is empty")
    if "$" in argv[0] and _FieldTemplate(argv[0]).get_identifiers():
        raise ResponseRulesError(
            f"the program {argv[0]!r} contains a placeholder",
            "name the program literally; pass event fields as its arguments",
        )
    for argument in argv:
        check_template(argument)


def render_argv(command: Any, alert: Mapping[str, Any]) -> list[str]:
    """The argument vector of `command` for `alert`: split first, then each argument rendered
    as text on its own (see the module's rule). One argument in, one argument out."""
    argv = _split_command(command)
    check_argv(argv)
    rendered = [argv[0]]
    for argument in argv[1:]:
        try:
            rendered.append(_FieldTemplate(argument).substitute(_AlertLookup(alert)))
        except ValueError as error:
            raise ResponseRulesError(f"bad placeholder in {argument!r}: {error}") from error
    return rendered
