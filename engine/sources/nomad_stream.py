"""A live Nomad event stream: `GET /v1/event/stream` (newline-delimited JSON frames over a
chunked response), read by one thread into a bounded buffer and delivered in order.

- Query: `index` (resume point), `namespace`, one `topic=Topic:key` per topic; the ACL token
  goes in `X-Nomad-Token`.
- Heartbeats (`{}`, at connect and every 30 s) are skipped; a connection silent for longer than
  `heartbeat_timeout` is considered dead.
- Reconnects (dropped connection, server restart, 5xx) back off exponentially and resume with
  `index=last+1`: Nomad starts a stream at the closest index at or after the one asked for, and
  frames at or below the last delivered index are skipped, so no frame is lost or repeated.
  With a cursor file the index also survives a restart of falconet (saved at most once a second
  and at exit: after a crash the last second's frames may be delivered again, never lost).
- Bounds: one frame at most `max_frame` bytes (a longer one is skipped, counted and alerted),
  at most `max_buffer` bytes of frames waiting for the detector (the reader then waits: TCP
  back-pressure, nothing dropped here).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from engine.sources.connectors import (
    AlertCallback,
    Backoff,
    CursorFile,
    EventsCallback,
    SourceOptionsError,
)
from engine.sources.errors import InputFormatError, SourceError
from engine.sources.formats import EventFactory
from engine.sources.json_event import JsonEvent
from engine.sources.nomad import SOURCE, is_heartbeat

log = logging.getLogger(__name__)

STREAM_PATH = "/v1/event/stream"
TOKEN_HEADER = "X-Nomad-Token"
DEFAULT_ADDRESS = "http://127.0.0.1:4646"
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
DEFAULT_MAX_BUFFER = 64 * 1024 * 1024
READ_SIZE = 64 * 1024
CURSOR_SAVE_INTERVAL = 1.0


class StreamAuthError(SourceError):
    exit_status = "auth"


@dataclass(frozen=True)
class NomadOptions:
    address: str = DEFAULT_ADDRESS
    token: str = ""
    namespace: str = "*"
    topics: tuple[str, ...] = ("*",)
    max_frame: int = DEFAULT_MAX_FRAME
    max_buffer: int = DEFAULT_MAX_BUFFER
    connect_timeout: float = 10.0
    heartbeat_timeout: float = 45.0  # Nomad heartbeats every 30 s
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    ca_file: str | None = None
    # mutual TLS (a Nomad agent with verify_https_client): the client certificate and its key
    client_cert: str | None = None
    client_key: str | None = None
    cursor: Path | None = None  # where the last delivered index is kept between runs
    start_index: int = 0

    def __post_init__(self) -> None:
        parts = urlsplit(self.address)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceOptionsError(
                f"invalid Nomad address {self.address!r}", hint="e.g. http://127.0.0.1:4646"
            )
        for topic in self.topics:
            name, _, key = topic.partition(":")
            if not name or (name != "*" and not name.isalpha()) or (":" in topic and not key):
                raise SourceOptionsError(
                    f"invalid Nomad topic {topic!r}",
                    hint="use Topic or Topic:key, e.g. Allocation, Job:web, *",
                )
        if self.client_key and not self.client_cert:
            raise SourceOptionsError(
                "a Nomad client key without its certificate", hint="give both, or neither"
            )
        if self.max_frame <= 0 or self.max_buffer < self.max_frame:
            raise SourceOptionsError(
                "the Nomad buffer must hold at least one frame",
                hint="give a positive max frame size no larger than the buffer",
            )

    def query(self, index: int) -> str:
        topics = [t if ":" in t else f"{t}:*" for t in self.topics]
        pairs = [("index", str(index)), ("namespace", self.namespace)]
        return urlencode(pairs + [("topic", topic) for topic in topics])


@dataclass
class StreamStats:
    connections: int = 0
    reconnects: int = 0
    frames: int = 0
    events: int = 0
    heartbeats: int = 0
    duplicate_frames: int = 0
    oversized_frames: int = 0
    bad_frames: int = 0
    last_index: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def as_json(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


class _Buffer:
    """Frames waiting for the detector, bounded in bytes (a put waits while it is full)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: deque[tuple[list[JsonEvent], int, int]] = deque()
        self._bytes = 0
        self._cond = threading.Condition()

    def put(self, events: list[JsonEvent], index: int, size: int, halt: threading.Event) -> bool:
        with self._cond:
            while self._items and self._bytes + size > self.max_bytes:
                if halt.is_set():
                    return False
                self._cond.wait(0.2)
            self._items.append((events, index, size))
            self._bytes += size
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> tuple[list[JsonEvent], int] | None:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            events, index, size = self._items.popleft()
            self._bytes -= size
            self._cond.notify_all()
            return events, index


class _ConnectionLost(Exception):
    pass


class NomadStream:
    """The `nomad` source's live connector (see the module docstring)."""

    source = SOURCE

    def __init__(self, options: NomadOptions) -> None:
        self.options = options
        self.stats = StreamStats()
        self.factory = EventFactory(SOURCE)
        self._cursor = CursorFile(options.cursor) if options.cursor else None
        saved = self._cursor.load() if self._cursor else None
        self.stats.last_index = max(options.start_index, _saved_index(saved, options.cursor))
        self._delivered = self.stats.last_index
        self._buffer = _Buffer(options.max_buffer)
        self._halt = threading.Event()
        self._socket: socket.socket | None = None
        self._failure: BaseException | None = None
        self._alert: AlertCallback | None = None

    # The detector's side -------------------------------------------------------------------

    def run(self, deliver: EventsCallback, stop: threading.Event, alert: AlertCallback) -> None:
        self._alert = alert
        self._halt.clear()
        reader = threading.Thread(target=self._read_forever, name="nomad-stream", daemon=True)
        reader.start()
        saved_at = time.monotonic()
        try:
            while True:
                if stop.is_set() or (not reader.is_alive() and self._failure is not None):
                    break
                item = self._buffer.get(0.2)
                if item is None:
                    continue
                events, index = item
                if events:
                    deliver(events)
                self._delivered = index
                if self._cursor and time.monotonic() - saved_at >= CURSOR_SAVE_INTERVAL:
                    self._save()
                    saved_at = time.monotonic()
        finally:
            self._halt.set()
            self._interrupt()
            reader.join(timeout=10)
            if self._cursor:
                self._save()
        if self._failure is not None:
            raise self._failure

    def _save(self) -> None:
        assert self._cursor is not None
        self._cursor.save({"index": self._delivered, "address": self.options.address})

    def _interrupt(self) -> None:
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # The reader thread --------------------------------------------------------------------

    def _read_forever(self) -> None:
        backoff = Backoff(self.options.backoff_initial, self.options.backoff_max)
        ever_connected = False
        while not self._halt.is_set():
            try:
                self._stream_once(backoff)
                log.warning("nomad: the event stream ended; reconnecting")
            except SourceError as error:  # refused token, bad topic: fatal only at start
                if not ever_connected:
                    self._failure = error
                    return
                log.warning("nomad: %s; retrying", error)
            except (OSError, http.client.HTTPException, _ConnectionLost) as error:
                if self._halt.is_set():
                    return
                log.warning("nomad: event stream connection lost (%s); reconnecting", error)
            except BaseException as error:  # reported by run(), not lost
                self._failure = error
                return
            finally:
                self._socket = None
            ever_connected = ever_connected or self.stats.connections > 0
            if self._halt.wait(backoff.next_delay()):
                return
            self.stats.reconnects += 1

    def _connection(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.options.address)
        timeout = self.options.connect_timeout
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=self.options.ca_file)
            if self.options.client_cert:
                context.load_cert_chain(self.options.client_cert, self.options.client_key)
            return http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=timeout, context=context
            )
        return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)

    def _stream_once(self, backoff: Backoff) -> None:
        options = self.options
        index = self.stats.last_index + 1 if self.stats.last_index else 0
        path = urlsplit(options.address).path.rstrip("/") + STREAM_PATH + "?" + options.query(index)
        headers = {"Accept": "application/json"}
        if options.token:
            headers[TOKEN_HEADER] = options.token
        connection = self._connection()
        try:
            connection.request("GET", path, headers=headers)
            self._socket = connection.sock
            if self._halt.is_set():
                return
            response = connection.getresponse()
            if response.status in (401, 403):
                raise StreamAuthError(
                    f"the Nomad server refused the ACL token ({response.status}): "
                    + _reason(response),
                    hint="give a token with read access to the event stream (--token-file)",
                )
            if response.status != 200:
                message = f"GET {STREAM_PATH}: HTTP {response.status}: {_reason(response)}"
                if 400 <= response.status < 500:
                    raise SourceError(message, hint="check the topics and the namespace")
                raise _ConnectionLost(message)
            if connection.sock is not None:
                connection.sock.settimeout(options.heartbeat_timeout)
            self.stats.connections += 1
            log.info("nomad: streaming events from %s (index %d)", options.address, index)
            self._read_frames(response, backoff)
        finally:
            connection.close()

    def _read_frames(self, response: http.client.HTTPResponse, backoff: Backoff) -> None:
        limit = self.options.max_frame
        pending = bytearray()
        skipping = False  # inside a frame over the limit: dropped up to its newline
        while not self._halt.is_set():
            try:
                chunk = response.read1(READ_SIZE)
            except TimeoutError as error:
                raise _ConnectionLost("no heartbeat within the timeout") from error
            if not chunk:
                raise _ConnectionLost("the server closed the stream")
            start = 0
            while True:
                newline = chunk.find(b"\n", start)
                end = len(chunk) if newline == -1 else newline
                if not skipping:
                    pending += chunk[start:end]
                    if len(pending) > limit:
                        skipping = True
                        pending.clear()
                if newline == -1:
                    break
                if skipping:
                    skipping = False
                    self._oversized()
                elif pending:
                    self._frame(bytes(pending), backoff)
                    pending.clear()
                start = newline + 1

    def _frame(self, line: bytes, backoff: Backoff) -> None:
        try:
            frame = json.loads(line)
        except ValueError as error:
            self._bad(f"a frame that is not JSON ({error})")
            return
        backoff.reset()  # the server speaks the protocol: the next failure starts afresh
        if is_heartbeat(frame):
            self.stats.heartbeats += 1
            return
        index = frame.get("Index") if type(frame) is dict else None
        if type(index) is not int:
            self._bad("a frame without an Index")
            return
        if index <= self.stats.last_index:
            self.stats.duplicate_frames += 1
            return
        try:
            events = list(self.factory.from_document(frame))
        except InputFormatError as error:
            self._bad(f"a frame of the wrong shape ({error})")
            return
        if not self._buffer.put(events, index, len(line), self._halt):
            return  # stopping: this frame is fetched again by the next run (index not saved)
        self.stats.frames += 1
        self.stats.events += len(events)
        self.stats.last_index = index

    def _oversized(self) -> None:
        self.stats.oversized_frames += 1
        self._dropped(
            f"nomad: an event-stream frame over {self.options.max_frame} bytes was dropped",
            {"max_frame": self.options.max_frame, "n_drops_total": self.stats.oversized_frames},
        )

    def _bad(self, what: str) -> None:
        self.stats.bad_frames += 1
        self._dropped(f"nomad: {what} was dropped", {"n_drops_total": self.stats.bad_frames})

    def _dropped(self, message: str, fields: dict[str, Any]) -> None:
        """Input lost here is logged and raised as an internal alert, never silent."""
        log.warning(message)
        if self._alert is not None:
            self._alert(message, {"source": SOURCE, **fields})


def _reason(response: http.client.HTTPResponse) -> str:
    body = response.read(512).decode("utf-8", "replace").strip().splitlines()
    return body[0] if body else response.reason


def _saved_index(saved: dict[str, Any] | None, path: Path | None) -> int:
    if saved is None:
        return 0
    index = saved.get("index")
    if type(index) is not int or index < 0:
        raise SourceError(
            f"{path}: corrupt cursor file: no index", hint="delete it to start from now"
        )
    return index


__all__ = ["NomadOptions", "NomadStream", "StreamAuthError", "StreamStats"]
