"""Where alerts go: stdout, a file (reopened on SIGUSR1 for logrotate), HTTP POST of Falco's
JSON alert (falcosidekick-compatible), a long-lived program's stdin, syslog.

Sinks sit behind one bounded queue drained by a worker thread: a slow sink never blocks
detection. An overflow is counted and reported as a rate-limited internal alert (source
`internal`), the way Falco reports its own troubles.

Sink types are registered by name in SINK_TYPES (a new sink is one class + one entry).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import queue
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO
from urllib.parse import urlsplit

from engine.errors import EngineError
from engine.output import Priority, alert_hostname, json_alert, json_alert_text, text_line

log = logging.getLogger(__name__)


class SinkError(EngineError):
    exit_status = "usage"


class SinkUnavailable(SinkError):
    """A sink that refuses work for now (an open circuit breaker): its alerts are dropped."""


@dataclass(frozen=True)
class Alert:
    """One alert in both of Falco's shapes."""

    text: str  # `<time>: <Priority> <output>`
    document: dict[str, Any]  # Falco's JSON alert
    # The event's own process (`proc.pid`, `proc.pid.ts`, `thread.tid`), known to the engine
    # whatever the output prints; only the response engine reads it (never serialised).
    origin: Mapping[str, Any] | None = None

    @property
    def json_text(self) -> str:
        return json_alert_text(self.document)

    def line(self, json_output: bool) -> str:
        return self.json_text if json_output else self.text


class Sink:
    """Base of every sink: `write` one alert; `reopen` (SIGUSR1) and `close` when it matters."""

    kind: ClassVar[str] = ""
    # True: the worker hands alerts one at a time and counts each (a sink whose alerts can
    # fail one by one, e.g. HTTP); False: a whole batch per write_batch call.
    one_at_a_time: ClassVar[bool] = False

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
        self.closed = False  # the reader went away (`falconet run ... | head`)

    def write(self, alert: Alert) -> None:
        self.write_batch([alert])

    def write_batch(self, alerts: list[Alert]) -> None:
        if self.closed:
            return
        try:
            self.stream.write(_lines(alerts, self.json_output))
            self.stream.flush()
        except BrokenPipeError:
            # As a shell tool: a closed pipe ends this output quietly (no error per alert);
            # other sinks and the run go on. Pointing the descriptor at /dev/null keeps the
            # interpreter's final flush from failing too.
            self.closed = True
            self._silence()

    def _silence(self) -> None:
        try:
            fileno = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fileno)
        finally:
            os.close(devnull)


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


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; while open, `allow()` is False until
    `cooldown` seconds have passed, then one attempt is let through (half-open): its success
    closes the breaker, its failure opens it for another cooldown."""

    def __init__(
        self, threshold: int, cooldown: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold, self.cooldown, self._clock = threshold, cooldown, clock
        self.failures = 0
        self.opened_at: float | None = None
        self.trips = 0

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def allow(self) -> bool:
        return self.opened_at is None or self._clock() - self.opened_at >= self.cooldown

    def succeeded(self) -> None:
        self.failures, self.opened_at = 0, None

    def failed(self) -> None:
        self.failures += 1
        if self.opened_at is not None or self.failures >= self.threshold:
            if self.opened_at is None:
                self.trips += 1
            self.opened_at = self._clock()


class _Deadline:
    """Shuts a socket down when a request's deadline passes: a peer that accepts and never
    answers, or trickles its answer a byte at a time, costs at most the deadline (a per-read
    timeout alone would let a trickle last forever)."""

    def __init__(self, seconds: float) -> None:
        self._timer: threading.Timer | None = None
        self._seconds = seconds
        self.expired = False

    def watch(self, sock: socket.socket) -> None:
        def expire() -> None:
            self.expired = True
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

        self._timer = threading.Timer(self._seconds, expire)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class HttpSink(Sink):
    """POST each alert as Falco's JSON (falcosidekick's input), keep-alive.

    Each attempt has a deadline (`timeout`, covering connect, send and the whole answer); a
    failed attempt is retried `retries` times with a short backoff. After `breaker_failures`
    alerts in a row could not be posted, the circuit breaker opens: for `breaker_cooldown`
    seconds alerts are dropped at once (SinkUnavailable, counted for this sink) instead of each
    waiting for the deadline. The sink has its own worker, so none of this delays other sinks.
    """

    kind = "http"
    one_at_a_time = True
    MAX_ANSWER = 64 * 1024  # bytes of an answer body read (and ignored)

    def __init__(
        self,
        url: str,
        json_output: bool = True,
        ca_file: str | None = None,
        insecure: bool = False,
        timeout: float = 5.0,
        retries: int = 2,
        headers: Mapping[str, str] | None = None,
        breaker_failures: int = 3,
        breaker_cooldown: float = 30.0,
        ca_path: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        compress: bool = False,
    ) -> None:
        super().__init__(True)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SinkError(f"invalid alert URL {url!r}", "use http:// or https://")
        credentials: dict[str, str] = {}
        if parts.username is not None:
            # user:password@ in the URL is basic auth, as curl (Falco's http_output) and
            # falcosidekick read it; the URL kept for messages carries no password.
            import base64
            from urllib.parse import unquote

            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            credentials["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
            url = parts._replace(netloc=netloc).geturl()
        self.url, self.timeout, self.retries = url, float(timeout), int(retries)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": "falconet",
            **credentials,
            **(headers or {}),
        }
        self._context: ssl.SSLContext | None = None
        if self._https:
            try:
                self._context = ssl.create_default_context(cafile=ca_file, capath=ca_path)
                if client_cert:  # mutual TLS (falco.yaml's http_output.mtls)
                    self._context.load_cert_chain(client_cert, client_key or None)
            except (OSError, ssl.SSLError) as error:
                raise SinkError(
                    f"alert URL {url}: TLS files: {error}", "check the CA and client cert paths"
                ) from error
            if insecure:
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE
        self.compress = compress  # gzip bodies (falco.yaml's http_output.compress_uploads)
        if compress:
            self._headers["Content-Encoding"] = "gzip"
        self.breaker = CircuitBreaker(int(breaker_failures), float(breaker_cooldown))
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout, context=self._context
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout
                )
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _post_once(self, body: bytes) -> int:
        """One attempt under the deadline; the HTTP status, or OSError/HTTPException."""
        deadline = _Deadline(self.timeout)
        connection = self._connect()
        try:
            if connection.sock is None:
                connection.connect()  # bounded by the socket timeout (= the deadline)
            assert connection.sock is not None
            deadline.watch(connection.sock)
            connection.request("POST", self._target, body=body, headers=self._headers)
            response = connection.getresponse()
            response.read(self.MAX_ANSWER)
            if deadline.expired:  # the shutdown cut the answer short: not an answer
                raise TimeoutError("cut off")
            if not response.isclosed():  # an answer longer than we read: do not reuse
                self._drop_connection()
            return response.status
        except (OSError, http.client.HTTPException) as error:
            self._drop_connection()
            if deadline.expired:
                raise TimeoutError(f"no answer within {self.timeout:g} s") from error
            raise
        finally:
            deadline.cancel()

    def write(self, alert: Alert) -> None:
        if not self.breaker.allow():
            raise SinkUnavailable(
                f"{self.url} failed {self.breaker.failures} times in a row: "
                f"circuit open for {self.breaker.cooldown:g} s"
            )
        body = alert.json_text.encode()
        if self.compress:
            import gzip

            body = gzip.compress(body)
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(1.0, 0.1 * 2 ** (attempt - 1)))
            try:
                status = self._post_once(body)
            except (OSError, http.client.HTTPException) as error:
                problem = f"cannot post alert to {self.url}: {error}"
                continue
            if status < 400:
                self.breaker.succeeded()
                return
            if status < 500 and status != 429:  # the collector refuses this alert: no retry
                self.breaker.succeeded()  # it answered: the endpoint is alive
                raise SinkError(f"{self.url} refused the alert: HTTP {status}")
            problem = f"{self.url} answered HTTP {status}"
        self.breaker.failed()
        raise SinkError(f"{problem}; alert dropped after {self.retries + 1} attempts")

    def close(self) -> None:
        self._drop_connection()


class ProgramSink(Sink):
    """Alerts piped, one per line, to a long-lived command (restarted if it exits)."""

    kind = "program"

    def __init__(self, command: str, json_output: bool = False, keep_alive: bool = True) -> None:
        super().__init__(json_output)
        self.command = command
        # False: one process per alert (falco.yaml's program_output.keep_alive: false)
        self.keep_alive = keep_alive
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
        if not self.keep_alive:
            self.close()
            self._process = None

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
class SinkStats:
    """One sink's counters: alerts written, lost to a full queue or an open breaker, failed."""

    delivered: int = 0  # written by the sink
    dropped: int = 0  # never handed to the sink: its queue was full, or its breaker open
    failed: int = 0  # handed to the sink, which raised
    queued: int = 0  # waiting in its queue (updated on read)

    def as_json(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "dropped": self.dropped,
            "failed": self.failed,
            "queued": self.queued,
        }


@dataclass
class QueueStats:
    """The queue's counters; `overflow` counts alerts that at least one sink lost."""

    overflow: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # by sink kind
    sinks: dict[str, SinkStats] = field(default_factory=dict)  # by sink name
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def delivered(self) -> int:
        """Alerts every sink was handed (written or failed): the slowest sink's count."""
        handled = [s.delivered + s.failed for s in self.sinks.values()]
        return min(handled) if handled else 0


DRAIN_BATCH = 256
# Each sink's queue in a live or webhook run (alerts beyond it are dropped, counted per sink).
LIVE_QUEUE_CAPACITY = 10_000
# Each sink's queue in a replay: the reader waits for room (backpressure) instead of dropping.
REPLAY_QUEUE_CAPACITY = 10_000
# How long a blocking put (replay backpressure) waits for room before it re-checks whether the
# worker is still alive: a dead worker must not hang the reader.
_BLOCK_POLL = 0.5


class _SinkWorker:
    """One sink, its own bounded queue and its own thread: a sink that stalls only delays and
    drops its own alerts."""

    def __init__(self, sink: Sink, name: str, capacity: int, stats: QueueStats) -> None:
        self.sink, self.name = sink, name
        self.stats = stats.sinks.setdefault(name, SinkStats())
        self._queue_stats = stats
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()
        self._stopping = False
        self._in_hand = 0
        self.thread = threading.Thread(target=self._drain, name=f"falconet-output-{name}")
        self.thread.daemon = True
        self.thread.start()

    @property
    def depth(self) -> int:
        """Alerts waiting for this sink: queued, plus taken but not yet written."""
        return self._queue.qsize() + self._in_hand

    def offer(self, alert: Alert, block: bool) -> bool:
        """Queue `alert`; without `block`, False (counted) when the queue is full. With
        `block` (replay), wait for room while the worker lives: backpressure on the reader."""
        try:
            if not block:
                self._queue.put_nowait(alert)
                return True
            while True:
                try:
                    self._queue.put(alert, timeout=_BLOCK_POLL)
                    return True
                except queue.Full:
                    if not self.thread.is_alive():
                        raise
        except queue.Full:
            self._add("dropped", 1)
            return False

    def _add(self, counter: str, count: int) -> None:
        with self._lock:
            setattr(self.stats, counter, getattr(self.stats, counter) + count)

    def _drain(self) -> None:
        while True:
            batch, closing = self._next_batch()
            if batch:
                self._deliver(batch)
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
        self._in_hand = len(batch)
        if not self.sink.one_at_a_time:
            self._write(batch)
        else:
            for alert in batch:
                self._write([alert])
                self._in_hand -= 1
        self._in_hand = 0

    def _write(self, batch: list[Alert]) -> None:
        try:
            self.sink.write_batch(batch)
        except SinkUnavailable as error:  # breaker open: dropped without trying
            self._add("dropped", len(batch))
            log.debug("output %s dropped %d alerts: %s", self.name, len(batch), error)
        except Exception as error:  # a broken sink must not stop its worker
            self._add("failed", len(batch))
            with self._queue_stats.lock:  # shared by the workers of sinks of one kind
                failures = self._queue_stats.failures
                failures[self.sink.kind] = failures.get(self.sink.kind, 0) + len(batch)
            log.error("output %s failed: %s", self.name, error)
        else:
            self._add("delivered", len(batch))

    def stop(self, deadline: float | None = None) -> bool:
        """Ask the worker to finish what is queued. Without `deadline`, never blocks; with
        one, waits until then for room for the sentinel (a stalled sink's full queue). True
        once the sentinel is queued."""
        if self._stopping:
            return True
        while True:
            try:
                if deadline is None:
                    self._queue.put_nowait(None)
                else:
                    wait = min(_BLOCK_POLL, max(0.0, deadline - time.monotonic()))
                    self._queue.put(None, timeout=wait)
                self._stopping = True
                return True
            except queue.Full:
                if deadline is None or time.monotonic() >= deadline:
                    return False
                if not self.thread.is_alive():
                    return False

    def abandon(self) -> int:
        """The alerts still queued when close() gave up on a stalled sink (counted dropped)."""
        lost = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            lost += item is not None
        self._add("dropped", lost)
        return lost


def _sink_names(sinks: list[Sink]) -> list[str]:
    """Each sink's name in the stats and metrics: its kind, `kind#2`... for repeats."""
    names, seen = [], Counter[str]()
    for sink in sinks:
        seen[sink.kind] += 1
        names.append(sink.kind if seen[sink.kind] == 1 else f"{sink.kind}#{seen[sink.kind]}")
    return names


class OutputQueue:
    """The sinks, each behind its own bounded queue and worker thread.

    `put` never blocks by default (live and webhook runs): a sink whose queue is full loses the
    alert, counted for that sink only, and a rate-limited internal alert (`Falco internal:
    output queue overflow`, naming the sink) goes to every sink that has room. With
    `block=True` (replays) `put` waits for room instead, so a replay slows down to what its
    sinks absorb rather than growing memory; a sink that refuses work (an HTTP sink whose
    breaker is open) drains at once, so it cannot hold a replay back for long."""

    def __init__(
        self,
        sinks: list[Sink],
        capacity: int = LIVE_QUEUE_CAPACITY,
        overflow_alert_interval: float = 10.0,
        block: bool = False,
    ) -> None:
        if capacity <= 0:
            # queue.Queue reads 0 as unbounded: every queue here has a bound.
            capacity, block = REPLAY_QUEUE_CAPACITY, True
        self.sinks = sinks
        self.stats = QueueStats()
        self.block = block
        self._interval = overflow_alert_interval
        self._report_lock = threading.Lock()
        self._last_report = 0.0
        self._reported: dict[str, int] = {}
        self._hostname = alert_hostname()
        self._capacity = capacity
        self._workers: list[_SinkWorker] = []
        self._sync_workers()

    def _sync_workers(self) -> None:
        """A worker for every sink, including sinks appended to `sinks` after construction."""
        with self._report_lock:
            names = _sink_names(self.sinks)
            for index in range(len(self._workers), len(self.sinks)):
                worker = _SinkWorker(self.sinks[index], names[index], self._capacity, self.stats)
                self._workers.append(worker)

    @property
    def depth(self) -> int:
        """The deepest sink queue (the alerts the slowest sink has yet to take)."""
        return max((worker.depth for worker in self._workers), default=0)

    def sink_stats(self) -> dict[str, SinkStats]:
        """Per-sink counters, with each queue's current depth."""
        for worker in self._workers:
            worker.stats.queued = worker.depth
        return dict(self.stats.sinks)

    def put(self, alert: Alert, block: bool | None = None) -> bool:
        """Hand `alert` to every sink's queue. False (and counted) when a sink's queue was
        full; never blocks unless the queue was built with `block=True` (`block` overrides
        that for one call: the response engine's outcomes never wait for a slow sink)."""
        if len(self._workers) != len(self.sinks):
            self._sync_workers()
        wait = self.block if block is None else block
        lost = False
        for worker in self._workers:
            if not worker.offer(alert, wait):
                lost = True
        if lost:
            with self._report_lock:
                self.stats.overflow += 1
        self._maybe_report_overflow()
        return not lost

    def _maybe_report_overflow(self) -> None:
        now = time.monotonic()
        if now - self._last_report < self._interval:
            return
        with self._report_lock:
            if now - self._last_report < self._interval:
                return
            lost = {
                worker.name: worker.stats.dropped - self._reported.get(worker.name, 0)
                for worker in self._workers
            }
            lost = {name: count for name, count in lost.items() if count > 0}
            if not lost:
                return
            self._last_report = now
            for name in lost:
                self._reported[name] = self.stats.sinks[name].dropped
        total = sum(lost.values())
        names = ", ".join(f"{name}: {count}" for name, count in sorted(lost.items()))
        alert = internal_alert(
            "Falco internal: output queue overflow",
            f"Falco internal: output queue overflow, {total} alerts dropped ({names}; "
            f"total {self.stats.overflow})",
            Priority.CRITICAL,
            {
                "n_drops": total,
                "n_drops_total": self.stats.overflow,
                "n_drops_by_sink": lost,
            },
            self._hostname,
        )
        for worker in self._workers:
            worker.offer(alert, block=False)

    def reopen(self) -> None:
        for sink in self.sinks:
            sink.reopen()

    def close(self, timeout: float = 10.0) -> None:
        """Drain what is queued (SIGTERM path), within `timeout` for all sinks together, then
        close the sinks. A sink that cannot finish in time loses its queue (counted dropped)."""
        self._sync_workers()
        self._maybe_report_overflow()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.stop()
        for worker in self._workers:
            worker.stop(deadline)
        for worker in self._workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
            if worker.thread.is_alive():
                lost = worker.abandon()
                if lost:
                    log.error("output %s: %d alerts undelivered at stop", worker.name, lost)
        # Last added first: a sink that still emits while closing (the response engine's last
        # outcomes) finds the outputs added before it open.
        for sink in reversed(self.sinks):
            sink.close()
