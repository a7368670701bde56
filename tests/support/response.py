"""Run one response action through the real ResponseEngine, as the engine would on an alert."""

from __future__ import annotations

from typing import Any

from engine.response.engine import ResponseEngine
from engine.response.rules import parse_rules


def respond_once(
    action: str, alert: dict[str, Any], match: dict[str, Any] | None = None, **parameters: Any
) -> Any:
    """The one outcome of a single rule `match` (default: every alert) -> `action`."""
    rule = {
        "name": "respond",
        "match": match or {},
        "actions": [{"action": action, "parameters": parameters}],
    }
    engine = ResponseEngine(parse_rules({"rules": [rule]}))
    try:
        (outcome,) = engine.handle(alert)
    finally:
        engine.close()
    return outcome
