"""Live inputs of the pull and push sources that are not plain files: a connector runs until the
run's `stop` event, handing each batch of events to `deliver` in order and reporting lost or
refused input through `alert` (the runner turns it into a `Falco internal:` alert), so that no
cap degrades detection silently. Shared pieces: the persisted cursor and reconnect backoff.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from engine.sources.errors import SourceError
from engine.sources.json_event import JsonEvent

log = logging.getLogger(__name__)

EventsCallback = Callable[[list[JsonEvent]], None]
# (what happened, its counters): e.g. ("nomad: frame over 16777216 bytes dropped", {...}).
AlertCallback = Callable[[str, dict[str, Any]], None]
CURSOR_MAX_BYTES = 1024 * 1024


class SourceOptionsError(SourceError):
    """A live source's options are wrong (found before any connection is made)."""

    exit_status = "usage"


class Connector(Protocol):
    source: str

    def run(self, deliver: EventsCallback, stop: threading.Event, alert: AlertCallback) -> None:
        """Deliver events until `stop` is set; raise SourceError for what retrying cannot fix."""


def no_alert(message: str, fields: dict[str, Any]) -> None:
    log.warning("%s %s", message, fields)


class CursorFile:
    """A small JSON document (a stream's resume position) persisted atomically, so a restarted
    run resumes where the last one stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        try:
            with self.path.open("rb") as file:
                data = file.read(CURSOR_MAX_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise SourceError(f"{self.path}: cannot read the cursor: {error.strerror}") from error
        try:
            if len(data) > CURSOR_MAX_BYTES:
                raise ValueError("too large")
            document = json.loads(data)
            if type(document) is not dict:
                raise ValueError("not a JSON object")
        except ValueError as error:
            # Starting over silently could skip or repeat events: the user decides.
            raise SourceError(
                f"{self.path}: corrupt cursor file: {error}",
                hint="delete it to start from now (events since the last run are then skipped)",
            ) from error
        return document

    def save(self, document: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".cursor-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as file:
                json.dump(document, file, separators=(",", ":"))
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class Backoff:
    """Exponential reconnect delays with jitter, reset after a healthy connection."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * (2**self.failures))
        self.failures += 1
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.failures = 0
