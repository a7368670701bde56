"""The response engine as an alert sink, so `falconet run` wires it like any output: alerts reach
it through the OutputQueue worker (already off the detection path) and it queues the matching
ones to its own workers. Outcome events (source `response`) go back to the outputs through the
engine's `on_outcome`; the engine never acts on them, so there is no loop.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

from engine.response.engine import ResponseEngine
from engine.response.errors import ResponseRulesError
from engine.response.rules import load_rules
from engine.sinks import Alert, Sink

log = logging.getLogger(__name__)


class ResponseSink(Sink):
    kind: ClassVar[str] = "response"

    def __init__(self, engine: ResponseEngine) -> None:
        super().__init__(True)
        self.engine = engine

    def write(self, alert: Alert) -> None:
        self.engine.submit(alert)

    def close(self) -> None:
        self.engine.close()


def reload_rules(engine: ResponseEngine, path: str | Path) -> bool:
    """Hot reload from `path`: swap when the file loads, keep the current rules otherwise
    (logged), as a bad rules file does not stop detection either. True when swapped."""
    try:
        rules = load_rules(path)
    except ResponseRulesError as error:
        log.error("response rules not reloaded, keeping the previous ones: %s", error)
        return False
    engine.swap(rules)
    return True
