"""A stand-in for the parts of Keycloak's HTTP API the keycloak source polls, as Keycloak's
admin REST API documents them. It is not Keycloak: events are whatever the test adds.

- `POST /realms/{realm}/protocol/openid-connect/token` with `grant_type=client_credentials`:
  a bearer token valid `token_lifetime` seconds (`expires_in`); 401 for wrong credentials.
- `GET /admin/realms/{realm}/events` and `/admin-events` with a valid bearer: the events with
  `time >= dateFrom` (epoch ms), ordered by time (`direction=asc`, else newest first, as
  Keycloak before 24), then `first`/`max` (default 100).
- Faults: `revoke_tokens()` (401 for every token issued so far), `fail_next` (that many 503s),
  `restart()` (a new server on the same port: issued tokens are forgotten, events kept, as
  Keycloak's database keeps them).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class KeycloakStandIn:
    realm: str = "acme"
    client_id: str = "falconet"
    client_secret: str = "s3cr3t"
    token_lifetime: float = 300.0
    events: list[dict[str, Any]] = field(default_factory=list)
    admin_events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    ignores_direction: bool = False  # Keycloak before 24: always newest first
    port: int = 0
    _tokens: dict[str, float] = field(default_factory=dict)
    _numbers: Any = field(default_factory=lambda: itertools.count(1))
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def start(self) -> KeycloakStandIn:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                path = urlsplit(self.path).path
                outer.requests.append({"method": "POST", "path": path})
                if path != f"/realms/{outer.realm}/protocol/openid-connect/token":
                    self._json(404, {"error": "Realm does not exist"})
                    return
                given = (form.get("client_id", [""])[0], form.get("client_secret", [""])[0])
                if form.get("grant_type") != ["client_credentials"] or given != (
                    outer.client_id,
                    outer.client_secret,
                ):
                    self._json(401, {"error": "unauthorized_client"})
                    return
                token = f"tok-{next(outer._numbers)}"
                with outer._lock:
                    outer._tokens[token] = time.monotonic() + outer.token_lifetime
                self._json(
                    200,
                    {
                        "access_token": token,
                        "expires_in": outer.token_lifetime,
                        "token_type": "Bearer",
                    },
                )

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                outer.requests.append({"method": "GET", "path": url.path, "query": query})
                if outer.fail_next > 0:
                    outer.fail_next -= 1
                    self._json(503, {"error": "unavailable"})
                    return
                prefix = f"/admin/realms/{outer.realm}/"
                kind = url.path.removeprefix(prefix)
                if not url.path.startswith(prefix) or kind not in ("events", "admin-events"):
                    self._json(404, {"error": "Realm not found."})
                    return
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                with outer._lock:
                    expiry = outer._tokens.get(token)
                if expiry is None or expiry < time.monotonic():
                    self._json(401, {"error": "HTTP 401 Unauthorized"})
                    return
                source = outer.events if kind == "events" else outer.admin_events
                since = int(query.get("dateFrom", "0"))
                chosen = sorted(
                    (e for e in source if e["time"] >= since),
                    key=lambda e: e["time"],
                    reverse=outer.ignores_direction or query.get("direction") != "asc",
                )
                first, size = int(query.get("first", "0")), int(query.get("max", "100"))
                self._json(200, chosen[first : first + size])

            def _json(self, status: int, document: Any) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def restart(self) -> None:
        self.stop()
        self.revoke_tokens()
        self.start()
