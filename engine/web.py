"""falconet's HTTP endpoints, as Falco's webserver serves them (plus /metrics and /rules).

    /healthz   {"status": "ok"} (Falco's shape), 503 when the health callback says otherwise
    /versions  engine.versions.versions_document(): falcoctl's `follow` can target falconet
    /metrics   Prometheus text from engine.metrics.Metrics
    /rules     what the `rules` callback returns (see rules_document)

`WebServer(host, port)` with port 0 picks a free port (tests); start() serves in a daemon
thread, stop() shuts it down.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.metrics import Metrics

log = logging.getLogger(__name__)

RulesProvider = Callable[[], dict[str, Any]]
HealthProvider = Callable[[], bool]
# More routes on the same server (`falconet run --ui`): called with the request handler and the
# method for every path not served here; returns True when it answered.
ExtraRoutes = Callable[[BaseHTTPRequestHandler, str], bool]
CORE_PATHS = ("/healthz", "/versions", "/metrics", "/rules")


class WebServerError(EngineError):
    exit_status = "usage"


def rules_document(
    files: Iterable[Path], enabled_rules: int, versions: dict[str, str] | None = None
) -> dict[str, Any]:
    """/rules: the loaded files (path, sha256, artifact version when known) and the count of
    enabled rules. `versions` maps a file path to the version of the artifact that shipped it."""
    versions = versions or {}
    entries = []
    for path in files:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else ""
        entries.append(
            {"path": str(path), "sha256": digest, "version": versions.get(str(path), "")}
        )
    return {"files": entries, "enabled_rules": enabled_rules}


class WebServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8765,
        metrics: Metrics | None = None,
        rules: RulesProvider | None = None,
        healthy: HealthProvider | None = None,
        extra: ExtraRoutes | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.extra = extra
        self.rules = rules or (lambda: rules_document([], 0))
        self.healthy = healthy or (lambda: True)
        try:
            self._server = ThreadingHTTPServer((host, port), self._handler())
        except OSError as error:
            raise WebServerError(
                f"cannot listen on {host}:{port}: {error.strerror}",
                "choose another address with --web HOST:PORT, or --no-web",
            ) from None
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> WebServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="falconet-web", daemon=True
        )
        self._thread.start()
        log.info("web endpoints on %s", self.url)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def _respond(self, path: str) -> tuple[int, bytes, str]:
        if path == "/healthz":
            ok = self.healthy()
            body = {"status": "ok" if ok else "unhealthy"}
            return (200 if ok else 503), _json(body), "application/json"
        if path == "/versions":
            from engine.versions import versions_document

            return 200, _json(versions_document()), "application/json"
        if path == "/metrics":
            body, content_type = self.metrics.render()
            return 200, body, content_type
        if path == "/rules":
            return 200, _json(self.rules()), "application/json"
        return 404, _json({"error": f"no endpoint {path}"}), "application/json"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                log.debug("web: " + format, *args)

            def do_POST(self) -> None:
                if server.extra is None or not server.extra(self, "POST"):
                    self.send_error(405 if self.path in CORE_PATHS else 404)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if (
                    path not in CORE_PATHS
                    and server.extra is not None
                    and server.extra(self, "GET")
                ):
                    return
                try:
                    status, body, content_type = server._respond(self.path.split("?", 1)[0])
                except Exception as error:  # an endpoint failing must not kill the server
                    log.exception("web: %s failed", self.path)
                    status, body, content_type = 500, _json({"error": str(error)}), "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2).encode() + b"\n"
