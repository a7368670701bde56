"""HTTP endpoints of the push sources, yielding events to a callback:

- k8s_audit: the kube-apiserver's audit webhook backend POSTs an EventList (or single Events, or a
  JSON array) as application/json, as the k8saudit plugin accepts them (default path /k8s-audit);
- github: GitHub webhook deliveries, accepted only with a valid `X-Hub-Signature-256` (HMAC-SHA256
  of the body with the shared secret); the `X-GitHub-Event` header becomes `webhook_type`.

The callback receives each request's events as one list, one request at a time and in order (a
lock serialises them), so the engine behind it needs no locking of its own. The endpoint answers
only after the callback returns: a sender that gets 200 knows its events were evaluated.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import ssl
import threading
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
K8S_AUDIT_PATH = "/k8s-audit"
GITHUB_PATH = "/webhook"
SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"


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
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

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


def _handler_for(endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the apiserver reuses its connection
        # Without TCP_NODELAY, a small response written after the headers waits for the client's
        # delayed ACK (~40 ms per request on Linux): the endpoint's throughput was latency-bound.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            try:
                if urlsplit(self.path).path != endpoint.path:
                    raise Refused(HTTPStatus.NOT_FOUND, f"no endpoint at {self.path}")
                count = endpoint.deliver(self.headers, self._body())
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
            endpoint.stats.count_request()
            self._answer(HTTPStatus.OK, f"{count} events")

        def _refuse_method(self) -> None:
            endpoint.stats.count_request(refused=HTTPStatus.METHOD_NOT_ALLOWED)
            self._answer(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} method not allowed")

        do_GET = do_PUT = do_DELETE = do_PATCH = _refuse_method

        def _body(self) -> bytes:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdecimal():
                raise Refused(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            if int(length) > endpoint.max_body:
                self.close_connection = True  # the unread body cannot be skipped safely
                raise Refused(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {endpoint.max_body} bytes"
                )
            return self.rfile.read(int(length))

        def _answer(self, status: HTTPStatus, message: str) -> None:
            body = (message + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


class WebhookServer:
    """An endpoint served over HTTP(S) from a background thread."""

    def __init__(self, endpoint: Endpoint, listen: str, tls: TlsFiles | None = None) -> None:
        self.endpoint = endpoint
        host, port = parse_listen(listen)
        try:
            self._server = ThreadingHTTPServer((host, port), _handler_for(endpoint))
        except OSError as error:
            raise SourceError(
                f"cannot listen on {listen}: {error.strerror}",
                hint="choose a free port, or stop what is using it",
            ) from error
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:
            self._server.socket = _tls_context(tls).wrap_socket(
                self._server.socket, server_side=True
            )
            self.scheme = "https"
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
    max_body: int = DEFAULT_MAX_BODY,
    tls: TlsFiles | None = None,
) -> WebhookServer:
    """The kube-apiserver audit webhook endpoint (not started: use start() or `with`)."""
    return WebhookServer(K8sAuditEndpoint("k8s_audit", path, on_events, max_body), listen, tls)


def github_webhook(
    listen: str,
    on_events: EventsCallback,
    secret: str,
    path: str = GITHUB_PATH,
    max_body: int = DEFAULT_MAX_BODY,
    tls: TlsFiles | None = None,
) -> WebhookServer:
    """The GitHub webhook endpoint, refusing deliveries without a valid signature."""
    return WebhookServer(GithubEndpoint(path, on_events, max_body, secret), listen, tls)
