"""The UI's HTTP side: pages, the JSON API, the live stream (server-sent events) and ingest.

`UiApp.handle(handler, method)` answers one request on a stdlib BaseHTTPRequestHandler and
returns False for paths it does not own: `falconet ui` serves it alone (ui.server), `falconet
run --ui` mounts it beside /healthz /metrics /versions /rules (engine.web).

Routes (docs/ui.md):
    GET  /ui/<page>                 alerts | feeds | compliance | responses | rules
    GET  /ui/static/app.js|app.css  local assets (no CDN)
    GET  /ui/api/...                alerts, alerts/<id>, stats, stream, feeds, frameworks,
                                    compliance, responses, rules, status
    POST /ingest                    Falco JSON alerts (object, array or JSON lines)
    POST /ingest/status             a node's status document (falconet run --report-to)
    POST /ui/login, /ui/logout      when --login-file is given

Security: ingest needs credentials (bearer or basic, ui.auth) and a JSON content type (a
cross-site form cannot send one without a CORS preflight, which is never granted); browser
POSTs carry a double-submit CSRF token and must come from this origin; every response has a
strict Content-Security-Policy (scripts only from /ui/static) and nosniff.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from ui.alerts import parse_body
from ui.auth import CSRF_COOKIE, SESSION_COOKIE, Credentials, Sessions, csrf_ok, new_csrf_token
from ui.errors import IngestError, UiError
from ui.ingest import Ingest
from ui.pages import PAGES, login_html, page_html
from ui.status import MAX_STATUS_BYTES, check_status
from ui.store import AlertFilter, AlertStore
from ui.views import LocalViews

log = logging.getLogger(__name__)

MAX_BODY = 4 << 20  # one ingest POST
MAX_FORM = 4096  # login/logout forms
MAX_STREAMS = 32  # live pages at once
STREAM_KEEPALIVE = 15.0
STREAM_MIN_GAP = 0.25  # at most 4 wake-ups a second per page, however fast alerts arrive
JSON_TYPES = ("application/json", "application/x-ndjson", "application/jsonlines")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


@dataclass
class UiOptions:
    ingest_auth: Credentials | None = None  # None: ingest refused (401) with a hint
    login: Credentials | None = None  # None: pages open (bind to loopback, the default)
    max_body: int = MAX_BODY
    max_streams: int = MAX_STREAMS
    stream_keepalive: float = STREAM_KEEPALIVE


class _Reply(Exception):
    """Ends a request with this status and JSON error body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class UiApp:
    def __init__(
        self,
        store: AlertStore,
        ingest: Ingest,
        views: LocalViews,
        options: UiOptions | None = None,
    ) -> None:
        self.store, self.ingest, self.views = store, ingest, views
        self.options = options or UiOptions()
        self.sessions = Sessions()
        self._streams = 0
        self._streams_lock = threading.Lock()
        self._static = {name: (resources.files("ui.static") / name).read_bytes() for name in STATIC}

    # -- dispatch -------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> bool:
        parts = urlsplit(handler.path)
        path = parts.path
        if not (path == "/" or path == "/ui" or path.startswith(("/ui/", "/ingest"))):
            return False
        query = dict(parse_qsl(parts.query)[:64])
        try:
            if method == "POST":
                self._post(handler, path)
            elif method in ("GET", "HEAD"):
                self._get(handler, path, query)
            else:
                raise _Reply(405, f"{method} not allowed", {"Allow": "GET, POST"})
        except _Reply as reply:
            self._json(handler, reply.status, {"error": reply.message}, reply.headers)
        except UiError as error:
            status = getattr(error, "status", 400)
            self._json(handler, status, {"error": str(error)})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away
        except Exception as error:
            log.exception("ui: %s %s failed", method, path)
            self._json(handler, 500, {"error": f"internal error: {type(error).__name__}"})
        return True

    def _get(self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, str]) -> None:
        if path in ("/", "/ui", "/ui/"):
            return self._redirect(handler, "/ui/alerts")
        if path.startswith("/ui/static/"):
            return self._asset(handler, path.removeprefix("/ui/static/"))
        if path == "/ui/login":
            return self._login_page(handler, query.get("next", "/ui/alerts"), False)
        user = self._user(handler)
        name = path.removeprefix("/ui/")
        if name in PAGES:
            if self.options.login and user is None:
                return self._redirect(handler, "/ui/login?next=" + quote(path))
            return self._page(handler, name, user)
        if name.startswith("api/"):
            if self.options.login and user is None:
                raise _Reply(401, "log in first")
            return self._api(handler, name.removeprefix("api/"), query)
        raise _Reply(404, f"no page {path}")

    def _post(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        if path in ("/ingest", "/ingest/"):
            return self._ingest_alerts(handler)
        if path == "/ingest/status":
            return self._ingest_status(handler)
        if path in ("/ui/login", "/ui/logout"):
            return self._form_post(handler, path)
        raise _Reply(404, f"nothing to post to at {path}")

    # -- API --------------------------------------------------------------------------------

    def _api(self, handler: BaseHTTPRequestHandler, name: str, query: dict[str, str]) -> None:
        if name == "alerts":
            where = AlertFilter.from_query(query)
            # Read before the query: a page then asking for after_id=latest_id misses nothing
            # stored meanwhile (it may see an alert twice, which it drops).
            latest = self.store.latest_id()
            body: Any = {"alerts": self.store.alerts(where), "latest_id": latest}
        elif name.startswith("alerts/"):
            ident = name.removeprefix("alerts/")
            found = self.store.alert(int(ident)) if ident.isdigit() else None
            if found is None:
                raise _Reply(404, f"no alert {ident[:20]}")
            body = found
        elif name == "stats":
            body = self.store.stats_for(AlertFilter.from_query(query))
        elif name == "stream":
            return self._stream(handler)
        elif name == "feeds":
            body = {"local": self.views.feeds(), "nodes": self.store.nodes()}
        elif name == "frameworks":
            body = {"frameworks": self.views.frameworks()}
        elif name == "compliance":
            framework = query.get("framework", "")
            if not framework:
                raise _Reply(400, "framework= is required (see /ui/api/frameworks)")
            report = self.views.compliance(framework[:64])
            # The drill-down shows each rule's tags (the coverage report names the rules).
            tags = {rule["name"]: rule["tags"] for rule in self.views.rules({})}
            rules = report.get("rules") or {}
            body = {**report, "rule_tags": {name: tags.get(name, []) for name in rules}}
        elif name == "responses":
            body = {"responses": self.store.responses()}
        elif name == "rules":
            body = {"rules": self.views.rules(self.store.counts_by_rule())}
        elif name == "status":
            body = {
                "store": {"dialect": self.store.dialect, "schema_version": self.store.version},
                "ingest": {**self.ingest.counters.as_dict(), "queue_depth": self.ingest.depth},
                "retention": {
                    "pruned_age": self.store.stats.pruned_age,
                    "pruned_size": self.store.stats.pruned_size,
                },
                "streams": self._streams,
            }
        else:
            raise _Reply(404, f"no API {name}")
        self._json(handler, 200, body)

    def _stream(self, handler: BaseHTTPRequestHandler) -> None:
        """Server-sent events: `alerts` with the latest stored id whenever alerts are stored
        (the page then asks /ui/api/alerts?after_id=... with its own filters)."""
        with self._streams_lock:
            if self._streams >= self.options.max_streams:
                raise _Reply(503, "too many live pages open", {"Retry-After": "10"})
            self._streams += 1
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream")
            handler.send_header("Cache-Control", "no-store")
            handler.send_header("X-Accel-Buffering", "no")
            handler.end_headers()
            handler.close_connection = True
            notifier = self.ingest.notifier
            seen = notifier.generation
            # The latest id at once: alerts stored between the page's first query and this
            # connection are fetched now, not at the next store.
            data = json.dumps({"latest_id": self.store.latest_id()})
            handler.wfile.write(f"retry: 2000\n\nevent: alerts\ndata: {data}\n\n".encode())
            handler.wfile.flush()
            while not notifier.closed:
                generation = notifier.wait(seen, self.options.stream_keepalive)
                if generation == seen:
                    handler.wfile.write(b": keepalive\n\n")
                else:
                    seen = generation
                    data = json.dumps({"latest_id": self.store.latest_id()})
                    handler.wfile.write(f"event: alerts\ndata: {data}\n\n".encode())
                handler.wfile.flush()
                time.sleep(STREAM_MIN_GAP)
        finally:
            with self._streams_lock:
                self._streams -= 1

    # -- ingest -----------------------------------------------------------------------------

    def _authorised_ingest(self, handler: BaseHTTPRequestHandler) -> None:
        auth = self.options.ingest_auth
        if auth is None:
            self.ingest.counters.unauthorized += 1
            raise _Reply(401, "ingest is off: start the UI with --auth-file to accept alerts")
        if not auth.check_header(handler.headers.get("Authorization")):
            self.ingest.counters.unauthorized += 1
            raise _Reply(
                401,
                "missing or wrong credentials (bearer token or basic auth)",
                {"WWW-Authenticate": 'Basic realm="falconet ingest", charset="UTF-8"'},
            )
        content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type not in JSON_TYPES:
            raise _Reply(415, "Content-Type must be application/json")
        self._same_origin(handler)

    def _ingest_alerts(self, handler: BaseHTTPRequestHandler) -> None:
        self._authorised_ingest(handler)
        try:
            documents = parse_body(self._body(handler, self.options.max_body))
            accepted, dropped = self.ingest.submit_documents(documents)
        except IngestError:
            self.ingest.count_invalid()
            raise
        if accepted == 0 and dropped:
            raise _Reply(503, f"ingest queue full: {dropped} alerts dropped", {"Retry-After": "1"})
        self._json(handler, 202, {"accepted": accepted, "dropped": dropped})

    def _ingest_status(self, handler: BaseHTTPRequestHandler) -> None:
        self._authorised_ingest(handler)
        body = self._body(handler, min(self.options.max_body, MAX_STATUS_BYTES))
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise IngestError("malformed JSON: post a falconet status document") from None
        document = check_status(document)
        self.store.put_node(document["hostname"], document)
        self._json(handler, 202, {"stored": document["hostname"]})

    def _body(self, handler: BaseHTTPRequestHandler, cap: int) -> bytes:
        if handler.headers.get("Transfer-Encoding"):
            raise _Reply(411, "send a Content-Length (chunked bodies are not accepted)")
        length = handler.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise _Reply(411, "Content-Length required")
        size = int(length)
        if size > cap:
            handler.close_connection = True
            raise _Reply(413, f"body of {size} bytes is over the {cap}-byte limit")
        return handler.rfile.read(size)

    # -- pages, login -------------------------------------------------------------------------

    def _cookies(self, handler: BaseHTTPRequestHandler) -> dict[str, str]:
        cookie = SimpleCookie()
        try:
            cookie.load(handler.headers.get("Cookie") or "")
        except CookieError:
            return {}
        return {key: morsel.value for key, morsel in cookie.items()}

    def _user(self, handler: BaseHTTPRequestHandler) -> str | None:
        if self.options.login is None:
            return None
        return self.sessions.user(self._cookies(handler).get(SESSION_COOKIE))

    def _csrf(self, handler: BaseHTTPRequestHandler) -> tuple[str, dict[str, str]]:
        """The browser's CSRF token, and a Set-Cookie header when it had none."""
        token = self._cookies(handler).get(CSRF_COOKIE)
        if token:
            return token, {}
        token = new_csrf_token()
        return token, {"Set-Cookie": f"{CSRF_COOKIE}={token}; Path=/ui; SameSite=Strict; HttpOnly"}

    def _page(self, handler: BaseHTTPRequestHandler, name: str, user: str | None) -> None:
        token, headers = self._csrf(handler)
        self._send(handler, 200, page_html(name, user, token).encode(), "text/html", headers)

    def _login_page(self, handler: BaseHTTPRequestHandler, next_path: str, failed: bool) -> None:
        if self.options.login is None:
            return self._redirect(handler, "/ui/alerts")
        token, headers = self._csrf(handler)
        body = login_html(token, _local_path(next_path), failed).encode()
        self._send(handler, 401 if failed else 200, body, "text/html", headers)

    def _form_post(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        self._same_origin(handler)
        form = dict(parse_qsl(self._body(handler, MAX_FORM).decode("utf-8", "replace")))
        if not csrf_ok(self._cookies(handler).get(CSRF_COOKIE), form.get("csrf")):
            raise _Reply(403, "missing or wrong CSRF token: reload the page and try again")
        if path == "/ui/logout":
            self.sessions.end(self._cookies(handler).get(SESSION_COOKIE))
            expired = f"{SESSION_COOKIE}=; Path=/; Max-Age=0; SameSite=Strict; HttpOnly"
            return self._redirect(handler, "/ui/login", {"Set-Cookie": expired})
        login = self.options.login
        if login is None:
            raise _Reply(404, "login is off")
        user, password = form.get("user", "")[:256], form.get("password", "")[:256]
        if not login.check_user(user, password):
            return self._login_page(handler, form.get("next", "/ui/alerts"), True)
        session = self.sessions.create(user)
        cookie = f"{SESSION_COOKIE}={session}; Path=/; SameSite=Strict; HttpOnly"
        self._redirect(handler, _local_path(form.get("next", "/ui/alerts")), {"Set-Cookie": cookie})

    def _same_origin(self, handler: BaseHTTPRequestHandler) -> None:
        """A browser's POST names its origin: it must be this server."""
        origin = handler.headers.get("Origin")
        if origin is None:
            return  # not a browser (Falco, falcosidekick, curl)
        host = handler.headers.get("Host", "")
        if urlsplit(origin).netloc != host:
            raise _Reply(403, "cross-origin request refused")

    def _asset(self, handler: BaseHTTPRequestHandler, name: str) -> None:
        if name not in STATIC:
            raise _Reply(404, f"no asset {name}")
        headers = {"Cache-Control": "max-age=300"}
        self._send(handler, 200, self._static[name], STATIC[name], headers)

    # -- responses ------------------------------------------------------------------------------

    def _redirect(
        self, handler: BaseHTTPRequestHandler, where: str, headers: dict[str, str] | None = None
    ) -> None:
        self._send(handler, 303, b"", "text/plain", {"Location": where, **(headers or {})})

    def _json(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        self._send(handler, status, data, "application/json", headers)

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        handler.send_response(status)
        merged = {**SECURITY_HEADERS, **(headers or {})}
        if not content_type.startswith("text/javascript") and "charset" not in content_type:
            content_type += "; charset=utf-8"
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for key, value in merged.items():
            handler.send_header(key, value)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)


def _local_path(path: str) -> str:
    """Only a path on this server (no open redirect)."""
    return path if path.startswith("/ui/") and not path.startswith("//") else "/ui/alerts"
