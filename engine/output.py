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
from collections.abc import Iterable
from dataclasses import dataclass
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
        return self.name.capitalize()

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


# -- format compilation ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    literal: str | None  # set for literal text
    key: str = ""  # output_fields key (canonical field text)
    value: CompiledValue | None = None
    width: int = 0


@dataclass(frozen=True)
class OutputFormat:
    """A compiled output format: render text, or the typed values of its fields."""

    format: str
    tokens: tuple[_Token, ...]

    @property
    def field_names(self) -> tuple[str, ...]:
        """The `output_fields` keys, in order of first appearance."""
        return tuple(dict.fromkeys(t.key for t in self.tokens if t.literal is None))

    def render(self, event: Any) -> str:
        parts: list[str] = []
        for token in self.tokens:
            if token.literal is not None:
                parts.append(token.literal)
                continue
            assert token.value is not None
            text = value_text(token.value.extract(event), token.value)
            if token.width:
                text = text[: token.width].ljust(token.width)
            parts.append(text)
        return "".join(parts)

    def render_with_fields(self, event: Any) -> tuple[str, dict[str, Any]]:
        """`render` and `field_values` together, each field extracted once (the alert path)."""
        parts: list[str] = []
        values: dict[str, Any] = {}
        for token in self.tokens:
            if token.literal is not None:
                parts.append(token.literal)
                continue
            compiled = token.value
            assert compiled is not None
            value = compiled.extract(event)
            text = value_text(value, compiled)
            if token.width:
                text = text[: token.width].ljust(token.width)
            parts.append(text)
            if token.key not in values:
                values[token.key] = json_value(value)
        return "".join(parts), values

    def field_values(self, event: Any) -> dict[str, Any]:
        """Typed JSON values of the format's fields (None when missing)."""
        values: dict[str, Any] = {}
        for token in self.tokens:
            if token.literal is None and token.key not in values:
                assert token.value is not None
                values[token.key] = json_value(token.value.extract(event))
        return values


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
    return json.dumps(alert, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
