"""`falconet response test`: which actions a rules file would run for alerts, rendered, with
nothing run (the core of the command)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.response.engine import PlannedAction, ResponseEngine
from engine.response.errors import ResponseRulesError
from engine.response.rules import load_rules


@dataclass(frozen=True)
class AlertPreview:
    alert_rule: str
    priority: str
    source: str
    actions: list[PlannedAction]

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert": {"rule": self.alert_rule, "priority": self.priority, "source": self.source},
            "actions": [a.as_dict() for a in self.actions],
        }


def read_alerts(path: str) -> list[dict[str, Any]]:
    """One JSON alert, a JSON array of alerts, or JSON lines (Falco's json_output)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ResponseRulesError(f"cannot read alert {path}: {error.strerror}") from error
    try:
        document = json.loads(text)
        alerts = document if isinstance(document, list) else [document]
    except json.JSONDecodeError:
        try:
            alerts = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise ResponseRulesError(
                f"{path}: not a JSON alert: {error}", "give Falco's JSON alert (json_output)"
            ) from None
    if not alerts or not all(isinstance(a, dict) and "rule" in a for a in alerts):
        raise ResponseRulesError(
            f"{path}: not a Falco JSON alert (no 'rule' key)", "give Falco's JSON alert"
        )
    return alerts


def preview_file(rules_path: str, alert_path: str) -> list[AlertPreview]:
    rules = load_rules(rules_path)
    alerts = read_alerts(alert_path)
    engine = ResponseEngine(rules)
    try:
        return [
            AlertPreview(
                str(alert.get("rule")),
                str(alert.get("priority")),
                str(alert.get("source")),
                engine.plan(alert),
            )
            for alert in alerts
        ]
    finally:
        engine.close()
