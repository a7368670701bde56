"""Ingest: posted alerts go onto one bounded queue; one writer thread stores them in batches,
prunes by the retention policy, and wakes the live pages.

A burst larger than the queue is not lost silently: every alert refused is counted (`dropped`),
and the writer stores an internal alert saying how many (at most one per DROP_REPORT_PERIOD),
the way Falco reports its own output-queue drops.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ui.alerts import AlertRow, to_row
from ui.store import AlertStore

log = logging.getLogger(__name__)

QUEUE_SIZE = 50_000
BATCH = 2_000
PRUNE_PERIOD = 60.0
DROP_REPORT_PERIOD = 10.0


@dataclass
class IngestCounters:
    accepted: int = 0  # queued
    stored: int = 0
    dropped: int = 0  # refused because the queue was full
    invalid: int = 0  # not Falco alerts (answered 400)
    failed: int = 0  # lost to a store error (logged)
    unauthorized: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class Notifier:
    """Wakes live pages: each waiter sees a generation number grow when new alerts are stored."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.generation = 0
        self.closed = False

    def notify(self) -> None:
        with self._condition:
            self.generation += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        with self._condition:
            self._condition.wait_for(
                lambda: self.generation != seen or self.closed, timeout=timeout
            )
            return self.generation

    def close(self) -> None:
        with self._condition:
            self.closed = True
            self._condition.notify_all()


class Ingest:
    def __init__(self, store: AlertStore, queue_size: int = QUEUE_SIZE) -> None:
        self.store = store
        self.counters = IngestCounters()
        self.notifier = Notifier()
        self._queue: queue.Queue[AlertRow | None] = queue.Queue(queue_size)
        self._lock = threading.Lock()
        self._last_drop_report = 0.0
        self._reported_drops = 0
        self._thread = threading.Thread(target=self._loop, name="ui-ingest", daemon=True)
        self._next_prune = 0.0

    def start(self) -> Ingest:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Store what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        self.notifier.close()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def submit_documents(self, documents: Iterable[Any]) -> tuple[int, int]:
        """Validate every document first (IngestError on the first that is not an alert: the
        body is refused whole), then queue them. Returns (accepted, dropped)."""
        now_ns = time.time_ns()
        return self.submit([to_row(document, now_ns) for document in documents])

    def count_invalid(self) -> None:
        with self._lock:
            self.counters.invalid += 1

    def submit(self, rows: list[AlertRow]) -> tuple[int, int]:
        accepted = dropped = 0
        for row in rows:
            try:
                self._queue.put_nowait(row)
                accepted += 1
            except queue.Full:
                dropped += 1
        with self._lock:
            self.counters.accepted += accepted
            self.counters.dropped += dropped
        return accepted, dropped

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            batch: list[AlertRow] = []
            if first is None:
                stopping = True
            else:
                batch.append(first)
            while len(batch) < BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            batch.extend(self._drop_report())
            self._store(batch)
            self._maybe_prune()

    def _store(self, batch: list[AlertRow]) -> None:
        if not batch:
            return
        try:
            self.store.insert(batch)
        except Exception:  # the store is away (PostgreSQL restarting): counted, logged, go on
            log.exception("alert store: %d alerts not stored", len(batch))
            with self._lock:
                self.counters.failed += len(batch)
            return
        with self._lock:
            self.counters.stored += len(batch)
        self.notifier.notify()

    def _drop_report(self) -> list[AlertRow]:
        """An internal alert for drops since the last report, at most one per period."""
        with self._lock:
            dropped = self.counters.dropped
        now = time.monotonic()
        if dropped == self._reported_drops or now - self._last_drop_report < DROP_REPORT_PERIOD:
            return []
        new = dropped - self._reported_drops
        self._reported_drops, self._last_drop_report = dropped, now
        from engine.output import Priority, alert_hostname
        from engine.sinks import internal_alert

        alert = internal_alert(
            "Falco internal: UI ingest queue full",
            f"Falco internal: UI ingest queue full, {new} alerts dropped ({dropped} in total)",
            Priority.ERROR,
            {"ui.dropped": new, "ui.dropped_total": dropped},
            alert_hostname(),
        )
        return [to_row(alert.document)]

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_PERIOD
        try:
            self.store.prune()
            self.store.analyze()
        except Exception:
            log.exception("alert store: retention failed (retried in %.0f s)", PRUNE_PERIOD)
