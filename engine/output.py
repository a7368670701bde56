"""Rule outputs: Falco's priorities, output format strings (`%field`, `%N` widths, transformers),
the text alert line and the JSON alert.

An output format compiles once against a catalog (libsinsp's `sinsp_evt_formatter::set_format`:
after `%`, the longest text that parses and compiles as a field or transformer is taken, the rest
is literal). Falco always formats with `*`, so a missing value renders `<NA>` in text and `null`
in JSON `output_fields`.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.condition import ast
from engine.condition.compiler import CompiledValue, compile_value
from engine.condition.errors import ConditionError
from engine.condition.parser import parse_field_or_transformer
from engine.errors import EngineError
from engine.fields import FieldCatalog

NOT_AVAILABLE = "<NA>"


class OutputFormatError(EngineError):
    """An output format that libsinsp's formatter would reject."""

    exit_status = "usage"


class Priority(enum.IntEnum):
    """Falco's priorities; a lower value is more severe (falco_common.h)."""

    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFORMATIONAL = 6
    DEBUG = 7

    @property
    def falco_name(self) -> str:
        """The name Falco prints: "Warning", "Informational"..."""
        return _FALCO_NAMES[self]

    @classmethod
    def parse(cls, text: str) -> Priority:
        """Case-insensitive, `info` accepted for Informational; ValueError otherwise."""
        lowered = text.strip().lower()
        if lowered == "info":
            return cls.INFORMATIONAL
        for priority in cls:
            if priority.name.lower() == lowered:
                return priority
        names = ", ".join(p.falco_name for p in cls)
        raise ValueError(f"Unknown priority '{text}': expected one of {names}")

    def at_least(self, minimum: Priority) -> bool:
        """Whether this priority passes a minimum-priority filter (as severe or more)."""
        return self <= minimum


_FALCO_NAMES = {priority: priority.name.capitalize() for priority in Priority}


# -- format compilation ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    literal: str | None  # set for literal text
    key: str = ""  # output_fields key (canonical field text)
    value: CompiledValue | None = None
    width: int = 0


# A field's text in an output is cut at this many characters, and so is a string value in
# JSON output_fields: an event field can be as large as its source allows (a k8s audit request
# object, an argument buffer), an alert line must stay bounded. Far above anything the upstream
# rules print (proc.cmdline is itself capped at 4096 bytes by the drivers).
MAX_FIELD_CHARS = 8192
TRUNCATION_MARKER = "...(truncated)"


def truncate_text(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """`text`, or its first `limit` characters followed by TRUNCATION_MARKER."""
    return text if len(text) <= limit else text[:limit] + TRUNCATION_MARKER


@dataclass(frozen=True)
class OutputFormat:
    """A compiled output format: render text, or the typed values of its fields.

    The rendering is compiled once per format into one generated function (each field
    extracted once, literal parts pre-joined, a string value used as is), as libsinsp prepares
    a formatter once per rule."""

    format: str
    tokens: tuple[_Token, ...]
    _render: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Compiled on the first alert: a load compiles every rule's format, few ever alert.
        object.__setattr__(self, "_render", self._first_render)

    def _first_render(self, event: Any) -> tuple[str, dict[str, Any]]:
        render = _compile_renderer(self.tokens)
        object.__setattr__(self, "_render", render)
        return render(event)

    @property
    def field_names(self) -> tuple[str, ...]:
        """The `output_fields` keys, in order of first appearance."""
        return tuple(dict.fromkeys(t.key for t in self.tokens if t.literal is None))

    def render(self, event: Any) -> str:
        return self._render(event)[0]

    def render_with_fields(self, event: Any) -> tuple[str, dict[str, Any]]:
        """`render` and `field_values` together, each field extracted once (the alert path)."""
        return self._render(event)

    def field_values(self, event: Any) -> dict[str, Any]:
        """Typed JSON values of the format's fields (None when missing)."""
        return self._render(event)[1]


def _field_text(value: Any, compiled: CompiledValue) -> str:
    if type(value) is tuple and compiled.to_text is None and all(type(v) is str for v in value):
        return truncate_text("(" + ",".join(value) + ")")  # value_text's list form, shortcut
    return truncate_text(value_text(value, compiled))


def _field_json(value: Any) -> Any:
    value = json_value(value)
    return truncate_text(value) if type(value) is str else value


def _compile_renderer(tokens: Sequence[_Token]) -> Callable[[Any], tuple[str, dict[str, Any]]]:
    """`render(event) -> (text, output_fields)` for these tokens, as generated code."""
    namespace: dict[str, Any] = {
        "__builtins__": {"type": type, "str": str, "len": len},
        "NA": NOT_AVAILABLE,
        "LIMIT": MAX_FIELD_CHARS,
        "cut": truncate_text,
        "text_of": _field_text,
        "json_of": _field_json,
    }
    lines = ["def render(e):"]
    pieces: list[str] = []
    variables: dict[str, str] = {}  # output_fields key -> value variable
    for number, token in enumerate(tokens):
        if token.literal is not None:
            namespace[f"l{number}"] = token.literal
            pieces.append(f"l{number}")
            continue
        compiled = token.value
        assert compiled is not None
        namespace[f"x{number}"] = compiled.extract
        namespace[f"c{number}"] = compiled
        v, t = f"v{number}", f"t{number}"
        lines.append(f"    {v} = x{number}(e)")
        if compiled.to_text is not None:
            lines.append(f"    {t} = NA if {v} is None else text_of({v}, c{number})")
        else:
            lines += [
                f"    if {v} is None:",
                f"        {t} = NA",
                f"    elif type({v}) is str:",
                f"        {t} = {v} if len({v}) <= LIMIT else cut({v})",
                "    else:",
                f"        {t} = text_of({v}, c{number})",
            ]
        if token.width:
            lines.append(f"    {t} = {t}[:{token.width}].ljust({token.width})")
        pieces.append(t)
        variables.setdefault(token.key, v)
    namespace["keys"] = tuple(variables)
    fields = ", ".join(
        f"keys[{i}]: ({v} if type({v}) is str and len({v}) <= LIMIT else json_of({v}))"
        for i, v in enumerate(variables.values())
    )
    text = " + ".join(pieces) or "''"
    lines.append(f"    return {text}, {{{fields}}}")
    exec(compile("\n".join(lines) + "\n", "<falco output>", "exec"), namespace)  # ours
    return namespace["render"]


_WIDTH = re.compile(r"[0-9]+")


def compile_output(fmt: str, catalog: FieldCatalog) -> OutputFormat:
    """Compile an output format; raise OutputFormatError with libsinsp's messages."""
    if not fmt:
        raise OutputFormatError("empty formatting token")
    text = fmt[1:] if fmt.startswith("*") else fmt
    tokens: list[_Token] = []
    literal_start = 0
    index = 0
    while index < len(text):
        if text[index] != "%":
            index += 1
            continue
        if literal_start != index:
            tokens.append(_Token(text[literal_start:index]))
        if index == len(text) - 1:
            raise OutputFormatError("invalid formatting syntax: formatting cannot end with a %")
        width = 0
        match = _WIDTH.match(text, index + 1)
        if match is not None:
            if match.end() >= len(text):
                raise OutputFormatError(
                    "invalid formatting syntax: formatting cannot end with a number"
                )
            width = int(match.group())
            index = match.end() - 1
        node, value, length = _longest_field(text[index + 1 :], catalog)
        tokens.append(_Token(None, ast.to_text(node), value, width))
        index += 1 + length
        literal_start = index
    if literal_start != len(text):
        tokens.append(_Token(text[literal_start:]))
    return OutputFormat(fmt, tuple(tokens))


def _longest_field(
    rest: str, catalog: FieldCatalog
) -> tuple[ast.Field | ast.Transformer, CompiledValue, int]:
    """The longest prefix of `rest` that parses and compiles as a field or transformer."""
    size = len(rest)
    while True:
        try:
            node, length = parse_field_or_transformer(rest[:size])
            return node, compile_value(node, catalog), length
        except ConditionError as error:
            size -= 1
            if size <= 0:
                # Falco 0.34's wording (what its test suite expects), with libsinsp's detail.
                raise OutputFormatError(
                    f"invalid formatting token {rest}", hint=f"unknown filter: {error.message}"
                ) from None


# -- value rendering ---------------------------------------------------------------------------


def value_text(value: Any, compiled: CompiledValue | None = None) -> str:
    """libsinsp's tostring(): the text form of an extracted value, `<NA>` when missing."""
    if value is None:
        return NOT_AVAILABLE
    if compiled is not None and compiled.to_text is not None:
        return compiled.to_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "(" + ",".join(value_text(v) for v in value) + ")"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def json_value(value: Any) -> Any:
    """The typed JSON form of an extracted value (numbers stay numbers, null when missing)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    return str(value)


# -- alerts ------------------------------------------------------------------------------------


def iso8601_utc(time_ns: int, suffix: str = "Z") -> str:
    """`2016-08-04T16:17:57.881781397Z` (JSON `time`) or with suffix "+0000" (text line)."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return f"{_utc_stamp(seconds)}.{nanos:09d}{suffix}"


def local_clock(time_ns: int) -> str:
    """Falco's default %evt.time: local `HH:MM:SS.nnnnnnnnn`."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return f"{_local_stamp(seconds)}.{nanos:09d}"


# Alerts come in bursts within the same second: formatting a second once is the hot path's
# saving (strftime and localtime cost more than the rest of a time stamp).
@functools.lru_cache(maxsize=64)
def _utc_stamp(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@functools.lru_cache(maxsize=64)
def _local_stamp(seconds: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(seconds))


def escape_control(text: str) -> str:
    """Falco passes the text line through a JSON string encoder: control characters are
    escaped (as in JSON), everything else is kept."""
    if text.isprintable():
        return text
    encoded = json.dumps(text, ensure_ascii=False)[1:-1]
    return encoded.replace('\\"', '"').replace("\\\\", "\\")


def time_prefix(time_ns: int, iso8601: bool) -> str:
    return iso8601_utc(time_ns, "+0000") if iso8601 else local_clock(time_ns)


def text_line(time_ns: int, priority: Priority, output: str, iso8601: bool = False) -> str:
    """Falco's text alert: `<time>: <Priority> <output>`."""
    return escape_control(f"{time_prefix(time_ns, iso8601)}: {priority.falco_name} {output}")


@dataclass(frozen=True)
class JsonOptions:
    """falco.yaml's json_include_* switches."""

    include_output: bool = True
    include_output_fields: bool = True
    include_tags: bool = True
    include_message: bool = False


def json_alert(
    *,
    time_ns: int,
    priority: Priority,
    rule: str,
    source: str,
    output: str,
    output_fields: dict[str, Any],
    tags: Iterable[str],
    hostname: str,
    iso8601: bool = False,
    options: JsonOptions | None = None,
    line: str | None = None,
) -> dict[str, Any]:
    """Falco's JSON alert as a dict (serialise with `json_alert_text`).

    `output` is the rendered rule output (without time and priority); `output_fields` its typed
    values. The time field of the text prefix is added to output_fields as Falco does. `line`
    is the alert's text line when the caller already has it."""
    options = options or JsonOptions()
    alert: dict[str, Any] = {
        "hostname": hostname,
        "priority": priority.falco_name,
        "rule": rule,
        "source": source,
        "time": iso8601_utc(time_ns),
    }
    if options.include_output:
        if line is None:
            line = text_line(time_ns, priority, output, iso8601)
        alert["output"] = line
    if options.include_output_fields:
        time_key = "evt.time.iso8601" if iso8601 else "evt.time"
        alert["output_fields"] = {time_key: time_ns, **output_fields}
    if options.include_tags:
        alert["tags"] = sorted(set(tags))
    if options.include_message:
        alert["message"] = escape_control(output)
    return alert


def alert_hostname() -> str:
    """The `hostname` of alerts: Falco's FALCO_HOSTNAME override, else the machine's name (the
    override keeps alerts comparable across machines and containers)."""
    import os
    import socket

    return os.environ.get("FALCO_HOSTNAME") or socket.gethostname()


def json_alert_text(alert: dict[str, Any]) -> str:
    """One line, keys sorted as Falco's JSON library writes them."""
    template = getattr(alert, "template", None)
    if template is not None:
        return template.text(alert)
    return _dumps(alert)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_encode_string = json.encoder.encode_basestring  # what json.dumps uses with ensure_ascii=False


def _json_scalar(value: Any) -> str:
    """json.dumps(value) for one output_fields value, the common types without the encoder."""
    kind = type(value)
    if kind is str:
        return _encode_string(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is list and all(type(item) is str for item in value):
        return "[" + ",".join(map(_encode_string, value)) + "]"
    return _dumps(value)


class AlertDocument(dict):  # type: ignore[type-arg]
    """A JSON alert made by an AlertTemplate, serialised from the template's pre-encoded parts
    (json_alert_text). Changing the top-level dict drops it back to the generic encoder;
    output_fields is read as it is at serialisation time."""

    __slots__ = ("template",)

    def _changed(self) -> None:
        self.template = None

    def __setitem__(self, key: Any, value: Any) -> None:
        self._changed()
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._changed()
        super().__delitem__(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._changed()
        super().update(*args, **kwargs)

    def pop(self, *args: Any) -> Any:
        self._changed()
        return super().pop(*args)

    def popitem(self) -> Any:
        self._changed()
        return super().popitem()

    def setdefault(self, *args: Any) -> Any:
        self._changed()
        return super().setdefault(*args)

    def clear(self) -> None:
        self._changed()
        super().clear()

    def __reduce__(self) -> Any:  # pickles (and copies) as a plain dict
        return (dict, (dict(self),))


class AlertTemplate:
    """The constant part of one rule's JSON alert, prepared once: hostname, priority, rule,
    source and tags pre-encoded, the key order fixed. `document` builds the alert json_alert
    would build; `text` serialises it as json_alert_text would, byte for byte."""

    def __init__(
        self,
        *,
        priority: Priority,
        rule: str,
        source: str,
        tags: Iterable[str],
        hostname: str,
        iso8601: bool = False,
        options: JsonOptions | None = None,
    ) -> None:
        self.options = options or JsonOptions()
        self.time_key = "evt.time.iso8601" if iso8601 else "evt.time"
        self.constants: dict[str, Any] = {
            "hostname": hostname,
            "priority": priority.falco_name,
            "rule": rule,
            "source": source,
        }
        if self.options.include_tags:
            self.constants["tags"] = sorted(set(tags))
        keys = set(self.constants) | {"time"}
        if self.options.include_output:
            keys.add("output")
        if self.options.include_output_fields:
            keys.add("output_fields")
        if self.options.include_message:
            keys.add("message")
        # (pre-encoded `"key":` with the constant value, or None for a per-alert value, key)
        self.plan = tuple(
            (
                _encode_string(key) + ":" + _dumps(self.constants[key])
                if key in self.constants
                else None,
                key,
            )
            for key in sorted(keys)
        )
        self.prefixes = {key: _encode_string(key) + ":" for key in keys}
        self.field_orders: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}
        self.text = self._compile_text()

    def document(
        self, time_ns: int, line: str, output: str, output_fields: dict[str, Any]
    ) -> AlertDocument:
        values = dict(self.constants, time=iso8601_utc(time_ns))
        options = self.options
        if options.include_output:
            values["output"] = line
        if options.include_output_fields:
            values["output_fields"] = {self.time_key: time_ns, **output_fields}
        if options.include_message:
            values["message"] = escape_control(output)
        if options.include_tags:
            values["tags"] = list(self.constants["tags"])  # each alert its own list
        alert = AlertDocument(values)
        alert.template = self
        return alert

    def _compile_text(self) -> Callable[[dict[str, Any]], str]:
        """`text(alert)`: one concatenation of the constant parts and the per-alert values."""
        namespace: dict[str, Any] = {
            "__builtins__": {},
            "scalar": _json_scalar,
            "fields": self.fields_text,
        }
        pieces = []
        for number, (constant, key) in enumerate(self.plan):
            separator = "," if number else ""
            if constant is not None:
                pieces.append(repr("{" if not number else "") + " + " + repr(separator + constant))
                continue
            namespace[f"k{number}"] = key
            head = repr(("{" if not number else separator) + self.prefixes[key])
            convert = "fields" if key == "output_fields" else "scalar"
            pieces.append(f"{head} + {convert}(a[k{number}])")
        source = "def text(a):\n    return " + " + ".join(pieces) + " + '}'\n"
        exec(compile(source, "<falco alert json>", "exec"), namespace)  # our generated code
        return namespace["text"]  # type: ignore[no-any-return]

    def fields_text(self, fields: dict[str, Any]) -> str:
        # The keys of a rule's output_fields come in the same order on every alert: their
        # sorted, pre-encoded form is remembered per order (a handful per rule).
        shape = tuple(fields)
        order = self.field_orders.get(shape)
        if order is None:
            order = tuple((key, _encode_string(key) + ":") for key in sorted(fields))
            if len(self.field_orders) < 64:
                self.field_orders[shape] = order
        encode, scalar = _encode_string, _json_scalar
        return (
            "{"
            + ",".join(
                [
                    prefix + (encode(value) if type(value) is str else scalar(value))
                    for key, prefix in order
                    for value in (fields[key],)
                ]
            )
            + "}"
        )
