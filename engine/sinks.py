"""Where alerts go: stdout, a file (reopened on SIGUSR1 for logrotate), HTTP POST of Falco's
JSON alert (falcosidekick-compatible), a long-lived program's stdin, syslog.

Sinks sit behind one bounded queue drained by a worker thread: a slow sink never blocks
detection. An overflow is counted and reported as a rate-limited internal alert (source
`internal`), the way Falco reports its own troubles.

Sink types are registered by name in SINK_TYPES (a new sink is one class + one entry).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO

from engine.errors import EngineError
from engine.output import Priority, alert_hostname, json_alert, json_alert_text, text_line

log = logging.getLogger(__name__)


class SinkError(EngineError):
    exit_status = "usage"


@dataclass(frozen=True)
class Alert:
    """One alert in both of Falco's shapes."""

    text: str  # `<time>: <Priority> <output>`
    document: dict[str, Any]  # Falco's JSON alert

    @property
    def json_text(self) -> str:
        return json_alert_text(self.document)

    def line(self, json_output: bool) -> str:
        return self.json_text if json_output else self.text


class Sink:
    """Base of every sink: `write` one alert; `reopen` (SIGUSR1) and `close` when it matters."""

    kind: ClassVar[str] = ""

    def __init__(self, json_output: bool = False) -> None:
        self.json_output = json_output

    def write(self, alert: Alert) -> None:
        raise NotImplementedError

    def write_batch(self, alerts: list[Alert]) -> None:
        """Every alert the queue had ready; line-oriented sinks write them in one call."""
        for alert in alerts:
            self.write(alert)

    def reopen(self) -> None:
        return None

    def close(self) -> None:
        return None


def _lines(alerts: list[Alert], json_output: bool) -> str:
    return "".join(alert.line(json_output) + "\n" for alert in alerts)


class StdoutSink(Sink):
    kind = "stdout"

    def __init__(self, json_output: bool = False, stream: TextIO | None = None) -> None:
        super().__init__(json_output)
        self.stream = stream or sys.stdout

    def write(self, alert: Alert) -> None:
        self.write_batch([alert])

    def write_batch(self, alerts: list[Alert]) -> None:
        self.stream.write(_lines(alerts, self.json_output))
        self.stream.flush()


class FileSink(Sink):
    kind = "file"

    def __init__(self, path: str, json_output: bool = False, keep_alive: bool = True) -> None:
        super().__init__(json_output)
        self.path = Path(path)
        self._lock = threading.Lock()
        self._handle: TextIO | None = None
        try:
            self._open()
        except OSError as error:
            raise SinkError(
                f"cannot open alert file {path}: {error.strerror}",
                "check the path and its permissions",
            ) from error

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, alert: Alert) -> None:
        self.write_batch([alert])

    def write_batch(self, alerts: list[Alert]) -> None:
        with self._lock:
            assert self._handle is not None
            self._handle.write(_lines(alerts, self.json_output))
            self._handle.flush()

    def reopen(self) -> None:
        """logrotate moved the file away: continue in a new file at the same path."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
            self._open()

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


class HttpSink(Sink):
    """POST each alert as Falco's JSON (falcosidekick's input), keep-alive, retried."""

    kind = "http"

    def __init__(
        self,
        url: str,
        json_output: bool = True,
        ca_file: str | None = None,
        insecure: bool = False,
        timeout: float = 10.0,
        retries: int = 3,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(True)
        import requests

        if not url.startswith(("http://", "https://")):
            raise SinkError(f"invalid alert URL {url!r}", "use http:// or https://")
        self.url, self.timeout, self.retries = url, timeout, retries
        self.session = requests.Session()
        self.session.headers.update(
            {"Content-Type": "application/json", "User-Agent": "falconet", **(headers or {})}
        )
        self.session.verify = False if insecure else (ca_file or True)

    def write(self, alert: Alert) -> None:
        import requests

        body = alert.json_text.encode()
        for attempt in range(self.retries + 1):
            try:
                response = self.session.post(self.url, data=body, timeout=self.timeout)
                if response.status_code < 500 and response.status_code != 429:
                    if response.status_code >= 400:
                        raise SinkError(
                            f"{self.url} refused the alert: HTTP {response.status_code}"
                        )
                    return
            except requests.RequestException as error:
                if attempt == self.retries:
                    raise SinkError(f"cannot post alert to {self.url}: {error}") from error
            time.sleep(min(2.0, 0.1 * 2**attempt))
        raise SinkError(f"{self.url} kept failing; alert dropped")

    def close(self) -> None:
        self.session.close()


class ProgramSink(Sink):
    """Alerts piped, one per line, to a long-lived command (restarted if it exits)."""

    kind = "program"

    def __init__(self, command: str, json_output: bool = False) -> None:
        super().__init__(json_output)
        self.command = command
        self._process: subprocess.Popen[str] | None = None

    def _ensure(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                self.command, shell=True, stdin=subprocess.PIPE, text=True
            )
        return self._process

    def write(self, alert: Alert) -> None:
        process = self._ensure()
        assert process.stdin is not None
        try:
            process.stdin.write(alert.line(self.json_output) + "\n")
            process.stdin.flush()
        except BrokenPipeError as error:
            self._process = None
            raise SinkError(f"alert program {self.command!r} exited") from error

    def close(self) -> None:
        if self._process is not None and self._process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()


_SYSLOG_SEVERITY = {
    Priority.EMERGENCY: 0,
    Priority.ALERT: 1,
    Priority.CRITICAL: 2,
    Priority.ERROR: 3,
    Priority.WARNING: 4,
    Priority.NOTICE: 5,
    Priority.INFORMATIONAL: 6,
    Priority.DEBUG: 7,
}


class SyslogSink(Sink):
    """RFC 3164 messages to /dev/log (or a host:port over UDP), facility user."""

    kind = "syslog"
    FACILITY_USER = 1

    def __init__(self, address: str = "/dev/log", json_output: bool = False) -> None:
        super().__init__(json_output)
        if ":" in address and not address.startswith("/"):
            host, port = address.rsplit(":", 1)
            self._target: Any = (host, int(port))
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        else:
            self._target = address
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def write(self, alert: Alert) -> None:
        priority = Priority.parse(str(alert.document.get("priority", "warning")))
        pri = self.FACILITY_USER * 8 + _SYSLOG_SEVERITY[priority]
        message = f"<{pri}>falconet: {alert.line(self.json_output)}".encode()
        try:
            self._socket.sendto(message, self._target)
        except OSError as error:
            raise SinkError(f"syslog at {self._target}: {error.strerror}") from error

    def close(self) -> None:
        self._socket.close()


SINK_TYPES: dict[str, Callable[..., Sink]] = {
    cls.kind: cls for cls in (StdoutSink, FileSink, HttpSink, ProgramSink, SyslogSink)
}


def build_sink(spec: Mapping[str, Any]) -> Sink:
    """A sink from its configuration, e.g. {"type": "file", "path": "/var/log/falconet.json"}."""
    options = dict(spec)
    kind = options.pop("type", None)
    factory = SINK_TYPES.get(str(kind))
    if factory is None:
        raise SinkError(
            f"unknown output type {kind!r}", f"valid types: {', '.join(sorted(SINK_TYPES))}"
        )
    try:
        return factory(**options)
    except TypeError as error:
        raise SinkError(f"bad options for output {kind}: {error}") from error


def internal_alert(
    rule: str,
    output: str,
    priority: Priority,
    fields: dict[str, Any],
    hostname: str,
    time_ns: int | None = None,
    fields_in_text: bool = False,
) -> Alert:
    """An alert about falconet itself (Falco's `Falco internal: ...` alerts). `time_ns` defaults
    to now; `fields_in_text` appends ` (k=v k=v)` to the text line, as Falco's handle_msg."""
    now = time.time_ns() if time_ns is None else time_ns
    document = json_alert(
        time_ns=now,
        priority=priority,
        rule=rule,
        source="internal",
        output=output,
        output_fields=fields,
        tags=(),
        hostname=hostname,
    )
    text = output
    if fields_in_text:
        text += " (" + " ".join(f"{k}={v}" for k, v in sorted(fields.items())) + ")"
    return Alert(text_line(now, priority, text), document)


@dataclass
class QueueStats:
    delivered: int = 0
    overflow: int = 0
    failures: dict[str, int] = field(default_factory=dict)


DRAIN_BATCH = 256


class OutputQueue:
    """A bounded queue in front of the sinks, drained by one worker thread."""

    def __init__(
        self, sinks: list[Sink], capacity: int = 10_000, overflow_alert_interval: float = 10.0
    ) -> None:
        self.sinks = sinks
        self.stats = QueueStats()
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=capacity)
        self._interval = overflow_alert_interval
        self._last_report = 0.0
        self._reported_overflow = 0
        self._hostname = alert_hostname()
        self._worker = threading.Thread(target=self._drain, name="falconet-outputs", daemon=True)
        self._worker.start()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def put(self, alert: Alert) -> bool:
        """Never blocks. Returns False (and counts) when the queue is full."""
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.stats.overflow += 1
            return False
        self._maybe_report_overflow()
        return True

    def _maybe_report_overflow(self) -> None:
        now = time.monotonic()
        lost = self.stats.overflow - self._reported_overflow
        if lost <= 0 or now - self._last_report < self._interval:
            return
        self._last_report, self._reported_overflow = now, self.stats.overflow
        alert = internal_alert(
            "Falco internal: output queue overflow",
            f"Falco internal: output queue overflow, {lost} alerts dropped "
            f"(total {self.stats.overflow})",
            Priority.CRITICAL,
            {"n_drops": lost, "n_drops_total": self.stats.overflow},
            self._hostname,
        )
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(alert)

    def _drain(self) -> None:
        while True:
            batch, closing = self._next_batch()
            if batch:
                self._deliver(batch)
            for _ in range(len(batch) + closing):
                self._queue.task_done()
            if closing:
                return

    def _next_batch(self) -> tuple[list[Alert], bool]:
        """Waits for one alert, then takes what else is ready (up to DRAIN_BATCH): under load one
        write and one flush carry many alerts instead of one each. True when closing."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < DRAIN_BATCH:
            try:
                alert = self._queue.get_nowait()
            except queue.Empty:
                break
            if alert is None:
                return batch, True
            batch.append(alert)
        return batch, False

    def _deliver(self, batch: list[Alert]) -> None:
        for sink in self.sinks:
            try:
                sink.write_batch(batch)
            except Exception as error:  # a broken sink must not stop the others
                failed = self.stats.failures.get(sink.kind, 0) + len(batch)
                self.stats.failures[sink.kind] = failed
                log.error("output %s failed: %s", sink.kind, error)
        self.stats.delivered += len(batch)

    def reopen(self) -> None:
        for sink in self.sinks:
            sink.reopen()

    def close(self, timeout: float = 10.0) -> None:
        """Drain what is queued (SIGTERM path), then close the sinks."""
        self._maybe_report_overflow()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._queue.put(None, timeout=max(0.01, deadline - time.monotonic()))
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    break
        self._worker.join(max(0.0, deadline - time.monotonic()))
        # Last added first: a sink that still emits while closing (the response engine's last
        # outcomes) finds the outputs added before it open.
        for sink in reversed(self.sinks):
            sink.close()
