"""Sinks `falconet run` adds for the UI: alerts into the local store's ingest queue, and a
count of response outcomes for the status report."""

from __future__ import annotations

import threading
from typing import ClassVar

from engine.sinks import Alert, Sink
from ui.alerts import to_row
from ui.ingest import Ingest


class StoreSink(Sink):
    """Alerts of the run into the UI's store (through the bounded ingest queue: a slow store
    drops and counts, it never stalls the outputs)."""

    kind: ClassVar[str] = "ui"

    def __init__(self, ingest: Ingest) -> None:
        super().__init__(True)
        self.ingest = ingest

    def write(self, alert: Alert) -> None:
        self.write_batch([alert])

    def write_batch(self, alerts: list[Alert]) -> None:
        rows = []
        for alert in alerts:
            try:
                rows.append(to_row(alert.document))
            except Exception:  # an alert too large to store: counted like a malformed post
                self.ingest.count_invalid()
        self.ingest.submit(rows)


class ResponseCounter(Sink):
    """Response outcomes by status (succeeded, failed, refused, rate_limited, dry_run...)."""

    kind: ClassVar[str] = "response-counter"

    def __init__(self) -> None:
        super().__init__(True)
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def write(self, alert: Alert) -> None:
        document = alert.document
        if document.get("source") != "response":
            return
        status = str((document.get("output_fields") or {}).get("response.status", "unknown"))
        with self._lock:
            self._counts[status] = self._counts.get(status, 0) + 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
