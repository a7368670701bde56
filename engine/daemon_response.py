"""The response engine inside `falconet run`: alerts reach it through the OutputQueue (as a
sink), its outcome events (source `response`) go back to the outputs and are counted in
`falconet_response_actions{action,status}`; the rules file hot-reloads with the rules.

Shutdown order: the OutputQueue drains, then closes its sinks last-added first, so this sink
closes (and its engine finishes the actions under way) while the request's outputs are still
open; outcomes arriving after the queue's worker stopped are written to them directly.
"""

from __future__ import annotations

import threading
from typing import ClassVar

from engine.metrics import Metrics
from engine.response.engine import ResponseEngine
from engine.response.rules import load_rules
from engine.response.sink import reload_rules
from engine.sinks import Alert, OutputQueue, Sink


class DaemonResponseSink(Sink):
    kind: ClassVar[str] = "response"

    def __init__(self, path: str, metrics: Metrics) -> None:
        super().__init__(True)
        self.path = path
        self.metrics = metrics
        self.outputs: OutputQueue | None = None  # set when the run loop has built it
        self._closing = threading.Event()
        self.engine = ResponseEngine(load_rules(path), on_outcome=self._outcome)

    def write(self, alert: Alert) -> None:
        self.engine.submit(alert)

    def reload(self) -> bool:
        return reload_rules(self.engine, self.path)

    def _outcome(self, event: Alert) -> None:
        fields = event.document.get("output_fields", {})
        self.metrics.response_action(
            str(fields.get("response.action", "")), str(fields.get("response.status", ""))
        )
        if self.outputs is None:
            return
        if not self._closing.is_set():
            self.outputs.put(event, block=False)  # a slow sink must not hold the responder
            return
        for sink in self.outputs.sinks:  # the queue's worker has stopped: deliver directly
            if sink is not self:
                sink.write(event)

    def close(self) -> None:
        self._closing.set()
        self.engine.close()
