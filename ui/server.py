"""`falconet ui`: the UI (ui.app) on a server of its own, with its store and ingest writer.

`build_ui(...)` assembles store + ingest + views + app (also used by `falconet run --ui`);
`UiServer` serves it on a ThreadingHTTPServer (127.0.0.1 unless told otherwise).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from signal import SIGINT, SIGTERM
from typing import Any

from ui.app import UiApp, UiOptions
from ui.errors import UsageError
from ui.ingest import QUEUE_SIZE, Ingest
from ui.status import FollowLog
from ui.store import AlertStore, Retention
from ui.views import LocalViews

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 30.0  # a client that stops sending mid-request is dropped
MAX_CONNECTIONS = 128  # connections served at once (one thread each); beyond, closed at once


class _BoundedServer(ThreadingHTTPServer):
    """One thread per connection, at most MAX_CONNECTIONS of them: a flood of connections is
    refused (closed, counted) instead of growing threads without bound."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.refused = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


@dataclass
class Ui:
    store: AlertStore
    ingest: Ingest
    views: LocalViews
    app: UiApp

    def close(self) -> None:
        self.ingest.stop()
        self.store.close()


def build_ui(
    store: str,
    *,
    options: UiOptions | None = None,
    retention: Retention | None = None,
    config_path: str | None = None,
    rules_files: list[str] | None = None,
    follow_log: FollowLog | None = None,
    queue_size: int = QUEUE_SIZE,
) -> Ui:
    alert_store = AlertStore(store, retention)
    ingest = Ingest(alert_store, queue_size).start()
    views = LocalViews(config_path, rules_files, follow_log)
    return Ui(alert_store, ingest, views, UiApp(alert_store, ingest, views, options))


class UiServer:
    def __init__(self, app: UiApp, host: str = "127.0.0.1", port: int = 8766) -> None:
        try:
            self._server = _BoundedServer((host, port), _handler(app))
        except OSError as error:
            raise UsageError(
                f"cannot listen on {host}:{port}: {error.strerror}",
                "choose another address with --listen HOST:PORT",
            ) from None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> UiServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="falconet-ui", daemon=True
        )
        self._thread.start()
        log.debug("web UI on %s/ui/", self.url)
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


def _handler(app: UiApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT
        server_version = "falconet-ui"
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:
            log.debug("ui: " + format, *args)

        def _dispatch(self, method: str) -> None:
            if not app.handle(self, method):
                body = b'{"error":"not found"}'
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_HEAD(self) -> None:
            self._dispatch("HEAD")

        def do_POST(self) -> None:
            self._dispatch("POST")

    return Handler


def parse_address(text: str, option: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"{option}: {text!r} is not HOST:PORT", "for example 127.0.0.1:8766")
    return host.strip("[]"), int(port)


@dataclass
class UiSettings:
    """What `falconet ui` takes: each from a flag (docs/ui.md)."""

    listen: str = "127.0.0.1:8766"
    store: str | None = None  # None: <state dir>/ui/alerts.db
    auth_file: str | None = None
    login_file: str | None = None
    rules_files: list[str] | None = None
    retention: str = "30d"
    max_size_mb: int = 1024
    queue_size: int = QUEUE_SIZE
    config_path: str | None = None


def default_store(config_path: str | None) -> str:
    from feeds.context import FeedsContext

    return str(FeedsContext.load(config_path).state_dir / "ui" / "alerts.db")


def start_ui(settings: UiSettings) -> tuple[Ui, UiServer]:
    """The store opened (and migrated), ingest started and the server listening."""
    from feeds.indexes import parse_duration
    from ui.auth import Credentials

    host, port = parse_address(settings.listen, "--listen")
    if settings.max_size_mb <= 0 or settings.queue_size <= 0:
        raise UsageError("--max-size-mb and --queue-size must be positive")
    options = UiOptions(
        ingest_auth=Credentials.from_file(settings.auth_file) if settings.auth_file else None,
        login=Credentials.from_file(settings.login_file) if settings.login_file else None,
    )
    retention = Retention(parse_duration(settings.retention), settings.max_size_mb << 20)
    ui = build_ui(
        settings.store or default_store(settings.config_path),
        options=options,
        retention=retention,
        config_path=settings.config_path,
        rules_files=settings.rules_files,
        queue_size=settings.queue_size,
    )
    try:
        server = UiServer(ui.app, host, port).start()
    except BaseException:
        ui.close()
        raise
    return ui, server


def serve(settings: UiSettings, on_ready: Callable[[str], None] | None = None) -> None:
    """`falconet ui`: serve until SIGTERM or SIGINT, then store what is queued and stop."""
    ui, server = start_ui(settings)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (SIGTERM, SIGINT)}
    try:
        if on_ready is not None:
            on_ready(f"{server.url}/ui/")
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
        ui.close()
