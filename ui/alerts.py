"""Falco JSON alerts as posted to the UI: parsed, bounded and normalised into store rows.

Accepted shapes, as senders post them: one alert object (Falco's http_output, falcosidekick's
webhook output, falconet --output-http), a JSON array of alerts, or JSON lines. Every string is
kept as text (the pages escape it); sizes are capped so one alert cannot grow the store
without bound.
"""

from __future__ import annotations

import calendar
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from engine.output import Priority
from ui.errors import IngestError

MAX_ALERT_BYTES = 64 * 1024  # one stored alert document; falcosidekick's default is larger
MAX_FIELD = 512  # rule, hostname, source, one tag
MAX_TAGS = 64
REQUIRED = ("rule", "priority", "output")

_TIME = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)?$"
)


@dataclass(frozen=True)
class AlertRow:
    """One alert as the store keeps it: the filter columns beside the whole document."""

    time_ns: int
    priority: str
    priority_level: int
    rule: str
    source: str
    hostname: str
    tags: str  # "|a|b|": a tag filter is one LIKE '%|tag|%'
    output: str
    document: str  # the alert's JSON, as received (normalised), at most MAX_ALERT_BYTES
    response_rule: str  # for response outcomes (source `response`): the alert rule acted on

    def as_values(self, received_ns: int) -> dict[str, Any]:
        return {
            "time_ns": self.time_ns,
            "received_ns": received_ns,
            "priority": self.priority,
            "priority_level": self.priority_level,
            "rule": self.rule,
            "source": self.source,
            "hostname": self.hostname,
            "tags": self.tags,
            "output": self.output,
            "size": len(self.document),
            "alert_rule": self.response_rule or None,
        }


def parse_time(value: Any, default_ns: int) -> int:
    """Falco's `time` (RFC 3339 with nanoseconds) as ns since the epoch; absent: `default_ns`."""
    if value is None or value == "":
        return default_ns
    if not isinstance(value, str):
        raise IngestError("alert field 'time' must be an RFC 3339 string")
    match = _TIME.match(value.strip())
    if not match:
        raise IngestError(f"alert field 'time' is not RFC 3339: {value[:40]!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    seconds = calendar.timegm(
        (int(year), int(month), int(day), int(hour), int(minute), int(second), 0, 0, 0)
    )
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    nanos = int((fraction or "0").ljust(9, "0"))
    return seconds * 1_000_000_000 + nanos


def _text(document: dict[str, Any], key: str, default: str = "") -> str:
    value = document.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise IngestError(f"alert field {key!r} must be a string")
    return value[:MAX_FIELD]


def to_row(document: Any, now_ns: int | None = None) -> AlertRow:
    """One alert object -> its row; IngestError (400) when it is not a Falco alert."""
    if not isinstance(document, dict):
        raise IngestError("an alert must be a JSON object")
    missing = [key for key in REQUIRED if key not in document]
    if missing:
        raise IngestError(f"not a Falco alert: missing {', '.join(missing)}")
    now_ns = now_ns if now_ns is not None else time.time_ns()
    priority_text = _text(document, "priority")
    try:
        priority = Priority.parse(priority_text)
    except ValueError as error:
        raise IngestError(str(error)) from None
    tags = document.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise IngestError("alert field 'tags' must be a list of strings")
    fields = document.get("output_fields") or {}
    if not isinstance(fields, dict):
        raise IngestError("alert field 'output_fields' must be an object")
    output = document.get("output")
    if not isinstance(output, str):
        raise IngestError("alert field 'output' must be a string")
    text = json.dumps(document, sort_keys=True, ensure_ascii=False)
    if len(text) > MAX_ALERT_BYTES:
        raise IngestError(f"alert larger than {MAX_ALERT_BYTES} bytes", status=413)
    clean_tags = [t[:MAX_FIELD].replace("|", "/") for t in tags[:MAX_TAGS]]
    source = _text(document, "source", "syscall") or "syscall"
    acted_on = fields.get("alert.rule") if source == "response" else None
    return AlertRow(
        time_ns=parse_time(document.get("time"), now_ns),
        priority=priority.falco_name,
        priority_level=int(priority),
        rule=_text(document, "rule"),
        source=source,
        hostname=_text(document, "hostname"),
        tags="|" + "|".join(clean_tags) + "|" if clean_tags else "",
        output=output[:MAX_ALERT_BYTES],
        document=text,
        response_rule=acted_on[:MAX_FIELD] if isinstance(acted_on, str) else "",
    )


def parse_body(body: bytes) -> list[Any]:
    """The alert objects of a posted body: an object, an array, or JSON lines. IngestError
    (400) when it is none of these."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise IngestError("body is not UTF-8 JSON") from None
    stripped = text.strip()
    if not stripped:
        raise IngestError("empty body: post a Falco JSON alert")
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        value = None
        lines = [line for line in stripped.splitlines() if line.strip()]
        if len(lines) > 1:
            try:
                return [json.loads(line) for line in lines]
            except json.JSONDecodeError as error:
                raise IngestError(f"malformed JSON line: {error.msg}") from None
        raise IngestError("malformed JSON: post a Falco JSON alert") from None
    return value if isinstance(value, list) else [value]
