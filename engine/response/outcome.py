"""What an action did, and its form as an event of source `response` (a Falco JSON alert)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.output import Priority, alert_hostname, json_alert, text_line
from engine.sinks import Alert

SOURCE = "response"
EVENT_RULE = "Falconet response action"

# succeeded/failed: the action ran. refused: it declined for safety. dry_run: it would have run.
# rate_limited: a limit held it back. skipped: an earlier action of the rule failed with stop.
STATUSES = ("succeeded", "failed", "refused", "dry_run", "rate_limited", "skipped")

_PRIORITY = {
    "succeeded": Priority.NOTICE,
    "dry_run": Priority.INFORMATIONAL,
    "skipped": Priority.INFORMATIONAL,
    "rate_limited": Priority.WARNING,
    "refused": Priority.WARNING,
    "failed": Priority.ERROR,
}


@dataclass(frozen=True)
class ActionOutcome:
    response_rule: str
    action: str
    status: str
    alert_rule: str
    parameters: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    duration_ms: float = 0.0
    time_ns: int = field(default_factory=time.time_ns)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        detail = self.error or ", ".join(f"{k}={v}" for k, v in self.changed.items())
        return (
            f"Response action {self.action} {self.status} for response rule "
            f"'{self.response_rule}' (alert '{self.alert_rule}') in {self.duration_ms:.1f} ms"
            + (f": {detail}" if detail else "")
        )

    def as_event(self, hostname: str | None = None) -> Alert:
        """The outcome as an alert of source `response`, for the outputs."""
        priority = _PRIORITY[self.status]
        output = self.summary()
        document = json_alert(
            time_ns=self.time_ns,
            priority=priority,
            rule=EVENT_RULE,
            source=SOURCE,
            output=output,
            output_fields={
                "response.rule": self.response_rule,
                "response.action": self.action,
                "response.status": self.status,
                "response.duration_ms": round(self.duration_ms, 3),
                "response.parameters": self.parameters,
                "response.changed": self.changed,
                "response.error": self.error,
                "alert.rule": self.alert_rule,
            },
            tags=("response", self.status),
            hostname=hostname or alert_hostname(),
        )
        return Alert(text_line(self.time_ns, priority, output), document)
