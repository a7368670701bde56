"""A real sink for tests: behind the real output queue, it keeps every alert delivered to it."""

from __future__ import annotations

from engine.sinks import Alert, Sink


class CollectingSink(Sink):
    kind = "collect"

    def __init__(self) -> None:
        super().__init__()
        self.alerts: list[Alert] = []

    def write(self, alert: Alert) -> None:
        self.alerts.append(alert)
