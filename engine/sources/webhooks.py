"""HTTP endpoints of the push sources, yielding events to a callback:

- k8s_audit: the kube-apiserver's audit webhook backend POSTs an EventList (or single Events, or a
  JSON array) as application/json, as the k8saudit plugin accepts them (default path /k8s-audit);
- github: GitHub webhook deliveries, accepted only with a valid `X-Hub-Signature-256` (HMAC-SHA256
  of the body with the shared secret); the `X-GitHub-Event` header becomes `webhook_type`.

The callback receives each request's events as one list, one request at a time and in order (a
lock serialises them), so the engine behind it needs no locking of its own. The endpoint answers
only after the callback returns: a sender that gets 200 knows its events were evaluated.

Every connection is hostile until bounded (WebhookLimits): at most `max_connections` at once
(more are answered 503 and closed at once); a connection idle for `idle_timeout` is closed; a
request, once its first byte arrived, must deliver its request line and headers (at most
`max_header_bytes`) and its body within `request_timeout` plus `Content-Length /
min_body_rate` seconds, whatever its pace, or it is dropped (slowloris, slow body); bodies
buffered by all connections together stay under `max_buffered_bytes` (a request that would go
over is answered 503). TLS handshakes happen on the connection's own thread, under the same
idle timeout, so a client that never finishes one holds nothing but its own slot.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from engine.sources.errors import InputFormatError, SourceError
from engine.sources.formats import EventFactory
from engine.sources.json_event import JsonEvent

log = logging.getLogger(__name__)

EventsCallback = Callable[[list[JsonEvent]], None]
# The k8saudit plugin's default webhook_max_batch_size.
DEFAULT_MAX_BODY = 12 * 1024 * 1024
# A body refused for the buffer budget is read and dropped up to this size (so the client gets
# its 503, not a reset); a larger one closes the connection.
DISCARD_LIMIT = 64 * 1024
K8S_AUDIT_PATH = "/k8s-audit"
GITHUB_PATH = "/webhook"
SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"


@dataclass(frozen=True)
class WebhookLimits:
    """The bounds of one webhook listener (docs/security.md lists them and how to raise them)."""

    max_connections: int = 64
    idle_timeout: float = 10.0  # seconds without a byte before a connection is closed
    request_timeout: float = 30.0  # request line + headers + body, from the request's first byte
    min_body_rate: int = 64 * 1024  # bytes/s a body may be sent at, added to request_timeout
    max_header_bytes: int = 64 * 1024  # request line and headers of one request
    max_body: int = DEFAULT_MAX_BODY  # one request body
    max_buffered_bytes: int = 4 * DEFAULT_MAX_BODY  # bodies held by all connections at once

    def body_seconds(self, length: int) -> float:
        return self.request_timeout + length / max(1, self.min_body_rate)


class SlowClient(Exception):
    """A client dropped for its pace: idle, too slow, or headers over their cap."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _ConnectionClock:
    """What a connection's reads may still take: the idle timeout for each read, within the
    current request's deadline (set when its first byte arrives), and a header byte budget."""

    def __init__(self, limits: WebhookLimits) -> None:
        self.limits = limits
        self.deadline: float | None = None
        self.header_bytes = 0
        self.in_body = False

    def next_request(self) -> None:
        self.deadline, self.header_bytes, self.in_body = None, 0, False

    def start_body(self, length: int) -> None:
        self.in_body = True
        assert self.deadline is not None
        self.deadline += length / max(1, self.limits.min_body_rate)

    def timeout(self) -> float:
        idle = self.limits.idle_timeout
        if self.deadline is None:
            return idle
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise SlowClient(
                "request not received within its deadline"
                f" ({self.limits.request_timeout:g} s + body at "
                f"{self.limits.min_body_rate} bytes/s)"
            )
        return min(idle, left)

    def received(self, count: int) -> None:
        if self.deadline is None:
            self.deadline = time.monotonic() + self.limits.request_timeout
        if not self.in_body:
            self.header_bytes += count
            if self.header_bytes > self.limits.max_header_bytes:
                raise SlowClient(f"request headers over {self.limits.max_header_bytes} bytes")


class _ClockedReader(io.RawIOBase):
    """The connection's raw input: each read waits at most what the clock allows."""

    def __init__(self, sock: socket.socket, clock: _ConnectionClock) -> None:
        self._sock, self._clock = sock, clock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._clock.timeout())
        try:
            count = self._sock.recv_into(buffer)
        except TimeoutError:
            if self._clock.deadline is None:
                raise SlowClient(f"idle for {self._clock.limits.idle_timeout:g} s") from None
            raise SlowClient("too slow: no byte within the idle timeout") from None
        if count:
            self._clock.received(count)
        return count


class _BufferBudget:
    """Body bytes held by all connections of a listener together."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._lock = threading.Lock()

    def reserve(self, count: int) -> bool:
        with self._lock:
            if self.used + count > self.limit:
                return False
            self.used += count
            return True

    def release(self, count: int) -> None:
        with self._lock:
            self.used -= count


class Refused(Exception):
    """A request the endpoint refuses: HTTP status + one-line reason."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class EndpointStats:
    requests: int = 0
    events: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    # connections closed for their pace or size: idle, slow, headers, busy (connection cap)
    dropped: dict[str, int] = field(default_factory=dict)
    active_connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_drop(self, reason: str) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "events": self.events,
                "refused": {str(status): n for status, n in sorted(self.refused.items())},
                "dropped": dict(sorted(self.dropped.items())),
                "active_connections": self.active_connections,
            }

    def count_request(self, refused: int | None = None) -> None:
        # Handler threads run concurrently; keep the counters exact.
        with self._lock:
            self.requests += 1
            if refused is not None:
                self.refused[refused] = self.refused.get(refused, 0) + 1


@dataclass(frozen=True)
class TlsFiles:
    certificate: Path
    key: Path | None = None  # None: the key is in the certificate file (as the plugin allows)


def parse_listen(listen: str) -> tuple[str, int]:
    """ "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdecimal() or int(port) > 65535:
        raise SourceError(
            f"invalid listen address {listen!r}", hint="use HOST:PORT, e.g. 127.0.0.1:9765"
        )
    return host.strip("[]") or "0.0.0.0", int(port)


class Endpoint:
    """One webhook: turns an accepted request body into events for the callback."""

    def __init__(self, source: str, path: str, on_events: EventsCallback, max_body: int) -> None:
        self.factory = EventFactory(source)
        self.path = path
        self.on_events = on_events
        self.max_body = max_body
        self.stats = EndpointStats()
        self._lock = threading.Lock()

    def document(self, headers: Any, body: bytes) -> Any:
        """The JSON document of an accepted request (raise Refused otherwise)."""
        raise NotImplementedError

    def deliver(self, headers: Any, body: bytes) -> int:
        document = self.document(headers, body)
        with self._lock:
            try:
                events = list(self.factory.from_document(document))
            except InputFormatError as error:
                raise Refused(HTTPStatus.BAD_REQUEST, str(error)) from error
            if events:
                self.on_events(events)
            self.stats.events += len(events)
        return len(events)


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise Refused(HTTPStatus.BAD_REQUEST, f"bad request: body is not JSON: {error}") from error


class K8sAuditEndpoint(Endpoint):
    def document(self, headers: Any, body: bytes) -> Any:
        if "application/json" not in (headers.get("Content-Type") or ""):
            raise Refused(HTTPStatus.BAD_REQUEST, "wrong Content Type")
        return _json_body(body)


class GithubEndpoint(Endpoint):
    def __init__(self, path: str, on_events: EventsCallback, max_body: int, secret: str) -> None:
        if not secret:
            raise SourceError(
                "the github webhook needs a shared secret",
                hint="set the secret configured in the repository's webhook settings",
            )
        super().__init__("github", path, on_events, max_body)
        self._key = secret.encode()

    def document(self, headers: Any, body: bytes) -> Any:
        check_signature(self._key, body, headers.get(SIGNATURE_HEADER))
        event_type = headers.get(EVENT_HEADER)
        if not event_type:
            raise Refused(HTTPStatus.BAD_REQUEST, f"missing {EVENT_HEADER} header")
        content_type = headers.get("Content-Type") or ""
        if "application/x-www-form-urlencoded" in content_type:
            # GitHub's form encoding: the JSON is the `payload` parameter.
            payload = parse_qs(body.decode("utf-8", "replace")).get("payload", [""])[0]
            document = _json_body(payload.encode())
        elif "application/json" in content_type:
            document = _json_body(body)
        else:
            raise Refused(HTTPStatus.BAD_REQUEST, "wrong Content Type")
        if not isinstance(document, dict):
            raise Refused(HTTPStatus.BAD_REQUEST, "a webhook payload is a JSON object")
        document["webhook_type"] = event_type
        return document


def signature(key: bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for `body`."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def check_signature(key: bytes, body: bytes, header: str | None) -> None:
    if not header:
        raise Refused(HTTPStatus.UNAUTHORIZED, f"missing {SIGNATURE_HEADER} header")
    if not hmac.compare_digest(signature(key, body).encode(), header.strip().encode()):
        raise Refused(HTTPStatus.UNAUTHORIZED, "signature mismatch")


def _handler_for(
    endpoint: Endpoint, limits: WebhookLimits, budget: _BufferBudget
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the apiserver reuses its connection
        # Without TCP_NODELAY, a small response written after the headers waits for the client's
        # delayed ACK (~40 ms per request on Linux): the endpoint's throughput was latency-bound.
        disable_nagle_algorithm = True
        timeout = limits.idle_timeout  # writes too: a client that never reads its answer

        def setup(self) -> None:
            super().setup()
            self.clock = _ConnectionClock(limits)
            self.rfile.close()  # replaced: every read now answers to the connection's clock
            self.rfile = io.BufferedReader(_ClockedReader(self.connection, self.clock))

        def handle_one_request(self) -> None:
            self.clock.next_request()
            try:
                super().handle_one_request()
            except SlowClient as slow:
                reason = "idle" if slow.reason.startswith("idle") else "slow"
                if "headers over" in slow.reason:
                    reason = "headers"
                endpoint.stats.count_drop(reason)
                if reason != "idle":  # an idle keep-alive connection closing is routine
                    log.warning("%s dropped: %s", self.address_string(), slow.reason)
                self.close_connection = True
            except OSError as error:  # the client went away mid-request
                log.debug("%s: %s", self.address_string(), error)
                self.close_connection = True

        def do_POST(self) -> None:
            reserved = 0
            try:
                if urlsplit(self.path).path != endpoint.path:
                    raise Refused(HTTPStatus.NOT_FOUND, f"no endpoint at {self.path}")
                body, reserved = self._body()
                count = endpoint.deliver(self.headers, body)
            except SlowClient:
                raise
            except Refused as refused:
                endpoint.stats.count_request(refused=refused.status)
                log.warning("%s %s refused: %s", self.command, self.path, refused.reason)
                self._answer(refused.status, refused.reason)
                return
            except Exception:  # a failing callback must not kill the endpoint
                endpoint.stats.count_request(refused=HTTPStatus.INTERNAL_SERVER_ERROR)
                log.exception("processing a request to %s failed", self.path)
                self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")
                return
            finally:
                budget.release(reserved)
            endpoint.stats.count_request()
            self._answer(HTTPStatus.OK, f"{count} events")

        def _refuse_method(self) -> None:
            endpoint.stats.count_request(refused=HTTPStatus.METHOD_NOT_ALLOWED)
            self._answer(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} method not allowed")

        do_GET = do_PUT = do_DELETE = do_PATCH = _refuse_method

        def _body(self) -> tuple[bytes, int]:
            """The body, and the bytes reserved for it in the listener's budget."""
            length = self.headers.get("Content-Length")
            if length is None or not length.isdecimal():
                raise Refused(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            size = int(length)
            if size > endpoint.max_body:
                self.close_connection = True  # the unread body cannot be skipped safely
                raise Refused(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {endpoint.max_body} bytes"
                )
            if not budget.reserve(size):
                endpoint.stats.count_drop("buffer")
                self._discard(size)
                raise Refused(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    f"over {budget.limit} bytes of request bodies buffered: retry later",
                )
            try:
                self.clock.start_body(size)
                body = self.rfile.read(size)
            except BaseException:
                budget.release(size)
                raise
            if len(body) != size:
                budget.release(size)
                raise SlowClient("connection closed before the end of the body")
            return body, size

        def _discard(self, size: int) -> None:
            """Read and drop a refused body of at most DISCARD_LIMIT bytes, a chunk at a time
            (nothing buffered), so the client reads its answer instead of a reset; a larger one
            closes the connection after the answer."""
            if size > DISCARD_LIMIT:
                self.close_connection = True
                return
            self.clock.start_body(size)
            left = size
            while left:
                chunk = self.rfile.read(min(left, 8192))
                if not chunk:
                    raise SlowClient("connection closed before the end of the body")
                left -= len(chunk)

        def _answer(self, status: HTTPStatus, message: str) -> None:
            # The reads left the socket with what the request deadline had left: the answer
            # gets the idle timeout of its own.
            self.connection.settimeout(limits.idle_timeout)
            body = (message + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 26\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
    b"too many open connections\n"
)


class _BoundedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a cap on concurrent connections, and TLS handshakes on the
    connection's own thread (a handshake in accept() would let one silent client stop all)."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        limits: WebhookLimits,
        stats: EndpointStats,
        tls: ssl.SSLContext | None,
    ) -> None:
        super().__init__(address, handler)
        self.limits, self.stats, self.tls = limits, stats, tls
        self._count_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._count_lock:
            busy = self.stats.active_connections >= self.limits.max_connections
            if not busy:
                self.stats.active_connections += 1
        if busy:
            self.stats.count_drop("busy")
            if self.tls is None:  # a TLS client could not read a plain answer
                try:
                    request.setblocking(False)
                    request.send(_BUSY)
                except OSError:
                    pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        with self._count_lock:
            self.stats.active_connections -= 1

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            if self.tls is not None:
                wrapped = self._handshake(request)
                if wrapped is None:
                    self.shutdown_request(request)
                    return
                request = wrapped
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _handshake(self, request: socket.socket) -> ssl.SSLSocket | None:
        """The TLS handshake under the idle timeout per read and the request deadline in all;
        None (counted) when the client fails or stalls it."""
        assert self.tls is not None
        deadline = time.monotonic() + self.limits.request_timeout
        try:
            request.settimeout(0.0)
            wrapped = self.tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
            while True:
                try:
                    wrapped.do_handshake()
                    break
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as want:
                    left = deadline - time.monotonic()
                    wait = min(self.limits.idle_timeout, left)
                    reading = isinstance(want, ssl.SSLWantReadError)
                    ready = select.select(
                        [wrapped] if reading else [], [] if reading else [wrapped], [], wait
                    )
                    if wait <= 0 or not (ready[0] or ready[1]):
                        self.stats.count_drop("slow")
                        log.warning(
                            "%s dropped: TLS handshake too slow", client_address_text(request)
                        )
                        return None
            wrapped.settimeout(self.limits.idle_timeout)
            return wrapped
        except (OSError, ValueError) as error:
            log.debug("TLS handshake failed: %s", error)
            return None


def client_address_text(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return "client"


class WebhookServer:
    """An endpoint served over HTTP(S) from a background thread, within `limits`."""

    def __init__(
        self,
        endpoint: Endpoint,
        listen: str,
        tls: TlsFiles | None = None,
        limits: WebhookLimits | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.limits = limits or WebhookLimits()
        host, port = parse_listen(listen)
        context = _tls_context(tls) if tls is not None else None
        budget = _BufferBudget(self.limits.max_buffered_bytes)
        handler = _handler_for(endpoint, self.limits, budget)
        try:
            self._server = _BoundedServer(
                (host, port), handler, self.limits, endpoint.stats, context
            )
        except OSError as error:
            raise SourceError(
                f"cannot listen on {listen}: {error.strerror}",
                hint="choose a free port, or stop what is using it",
            ) from error
        self.scheme = "https" if context is not None else "http"
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{host}:{self.port}{self.endpoint.path}"

    @property
    def stats(self) -> EndpointStats:
        return self.endpoint.stats

    def start(self) -> WebhookServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="webhook", daemon=True
        )
        self._thread.start()
        log.info("listening on %s", self.url)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tls_context(tls: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.certificate, tls.key)
    except (OSError, ssl.SSLError) as error:
        raise SourceError(
            f"cannot load the TLS certificate {tls.certificate}: {error}",
            hint="give a PEM certificate and its private key",
        ) from error
    return context


def k8s_audit_webhook(
    listen: str,
    on_events: EventsCallback,
    path: str = K8S_AUDIT_PATH,
    max_body: int | None = None,  # default: limits.max_body
    tls: TlsFiles | None = None,
    limits: WebhookLimits | None = None,
) -> WebhookServer:
    """The kube-apiserver audit webhook endpoint (not started: use start() or `with`)."""
    limits = limits or WebhookLimits()
    max_body = limits.max_body if max_body is None else max_body
    endpoint = K8sAuditEndpoint("k8s_audit", path, on_events, max_body)
    return WebhookServer(endpoint, listen, tls, limits)


def github_webhook(
    listen: str,
    on_events: EventsCallback,
    secret: str,
    path: str = GITHUB_PATH,
    max_body: int | None = None,  # default: limits.max_body
    tls: TlsFiles | None = None,
    limits: WebhookLimits | None = None,
) -> WebhookServer:
    """The GitHub webhook endpoint, refusing deliveries without a valid signature."""
    limits = limits or WebhookLimits()
    max_body = limits.max_body if max_body is None else max_body
    endpoint = GithubEndpoint(path, on_events, max_body, secret)
    return WebhookServer(endpoint, listen, tls, limits)
