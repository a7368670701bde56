"""How Keycloak events reach the `keycloak` source.

Push: the endpoint Keycloak's `keycloak-events-falco-exporter` event listener POSTs to, one
JSON event per request (as the keycloak plugin's webhook accepts them: any content type, 10 MiB
cap, 200 on success), optionally over TLS and with a shared secret sent by the exporter as an
additional header (`FALCO_ADDITIONAL_HEADERS="Authorization=Bearer <secret>"`).

Pull: Keycloak's admin REST API, `GET /admin/realms/{realm}/events` and `/admin-events`, polled
oldest first (`direction=asc`, Keycloak 24+) from the last seen time (`dateFrom`, epoch ms,
inclusive) and paged with `first`/`max`. The cursor is the last seen time plus the ids (or
content digests, for events without an id) already delivered at that millisecond, saved in a
cursor file after every page: a restarted run re-reads that millisecond and skips what it
delivered, so nothing is lost or repeated. The bearer token comes from OAuth client credentials
(refreshed before it expires, and once on a 401) or from a token file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from engine.sources.connectors import (
    AlertCallback,
    Backoff,
    CursorFile,
    EventsCallback,
    SourceOptionsError,
)
from engine.sources.errors import SourceError
from engine.sources.formats import EventFactory
from engine.sources.keycloak import SOURCE
from engine.sources.webhooks import (
    Endpoint,
    Refused,
    TlsFiles,
    WebhookServer,
    _json_body,
)

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/keycloak"
# The plugin's limit (webServerMaxPayloadSize: 1025 * 1024 * 10 bytes).
WEBHOOK_MAX_BODY = 1025 * 1024 * 10
KINDS = ("events", "admin-events")
DEFAULT_PAGE = 100
DEFAULT_MAX_PAGE_BYTES = 32 * 1024 * 1024
# Ids remembered at the cursor's millisecond; more events than this in one ms is not plausible
# for one realm, and past it the oldest are forgotten (counted, alerted).
MAX_IDS_AT_CURSOR = 10_000
TOKEN_MARGIN_S = 30
TOKEN_MAX_BYTES = 1024 * 1024


class KeycloakAuthError(SourceError):
    exit_status = "auth"


# Push --------------------------------------------------------------------------------------


class KeycloakEndpoint(Endpoint):
    """One Keycloak event (user or admin) per POST; the exporter sends no JSON content type."""

    def __init__(self, path: str, on_events: EventsCallback, max_body: int, secret: str) -> None:
        super().__init__(SOURCE, path, on_events, max_body)
        self._expected = f"Bearer {secret}".encode() if secret else None

    def document(self, headers: Any, body: bytes) -> Any:
        if self._expected is not None:
            given = (headers.get("Authorization") or "").strip().encode()
            if not hmac.compare_digest(given, self._expected):
                raise Refused(HTTPStatus.UNAUTHORIZED, "missing or wrong Authorization bearer")
        document = _json_body(body)
        if type(document) is not dict:
            raise Refused(HTTPStatus.BAD_REQUEST, "bad request: one Keycloak event (an object)")
        return document


@dataclass
class KeycloakWebhook:
    """The push transport as a connector: serves the endpoint until `stop`."""

    listen: str
    secret: str = ""
    path: str = WEBHOOK_PATH
    max_body: int = WEBHOOK_MAX_BODY
    tls: TlsFiles | None = None
    source: str = SOURCE
    server: WebhookServer | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise SourceOptionsError(f"invalid webhook path {self.path!r}", hint="e.g. /keycloak")
        if self.max_body <= 0:
            raise SourceOptionsError("the webhook body cap must be positive")

    def open(self, deliver: EventsCallback) -> WebhookServer:
        endpoint = KeycloakEndpoint(self.path, deliver, self.max_body, self.secret)
        self.server = WebhookServer(endpoint, self.listen, self.tls)
        return self.server

    def run(self, deliver: EventsCallback, stop: threading.Event, alert: AlertCallback) -> None:
        with self.open(deliver):
            while not stop.wait(0.5):
                pass


# Pull --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeycloakOptions:
    server: str  # base URL, with Keycloak's path prefix if any (https://id.example.com/auth)
    realm: str
    client_id: str = ""
    client_secret: str = ""
    auth_realm: str = ""  # the client's realm; default: `realm`
    token: str = ""  # a bearer token instead of client credentials
    kinds: tuple[str, ...] = KINDS
    page_size: int = DEFAULT_PAGE
    interval: float = 10.0
    timeout: float = 30.0
    max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES
    ca_file: str | None = None
    cursor: Path | None = None
    start_ms: int | None = None  # first run without a cursor: from here (default: now)
    backoff_initial: float = 1.0
    backoff_max: float = 60.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceOptionsError(
                f"invalid Keycloak server URL {self.server!r}", hint="e.g. https://id.example.com"
            )
        if not self.realm:
            raise SourceOptionsError("the Keycloak realm is required", hint="give --realm NAME")
        if not self.token and not (self.client_id and self.client_secret):
            raise SourceOptionsError(
                "polling Keycloak needs credentials",
                hint="give a client id and its secret file (client credentials with the "
                "view-events role), or a token file",
            )
        unknown = set(self.kinds) - set(KINDS)
        if unknown or not self.kinds:
            raise SourceOptionsError(
                f"unknown Keycloak event kinds {sorted(unknown)}", hint="use events, admin-events"
            )
        if not 1 <= self.page_size <= 10_000 or self.interval <= 0 or self.max_page_bytes <= 0:
            raise SourceOptionsError(
                "page size must be 1-10000, the interval and page cap positive",
                hint="e.g. page 100, interval 10 s",
            )

    @property
    def base(self) -> str:
        return self.server.rstrip("/")


@dataclass
class PollStats:
    polls: int = 0
    pages: int = 0
    events: int = 0
    duplicates: int = 0
    failures: int = 0
    token_refreshes: int = 0
    forgotten_ids: int = 0


@dataclass
class _Position:
    time: int
    ids: list[str] = field(default_factory=list)

    def seen(self, when: int, key: str) -> bool:
        return when < self.time or (when == self.time and key in self.ids)

    def advance(self, when: int, key: str) -> bool:
        """Record a delivered event; True when an id had to be forgotten."""
        if when > self.time:
            self.time, self.ids = when, [key]
            return False
        self.ids.append(key)
        if len(self.ids) > MAX_IDS_AT_CURSOR:
            del self.ids[0]
            return True
        return False


def event_key(event: dict[str, Any]) -> str:
    """An event's identity: its id, or a digest of its content (Keycloak before 23 sends none)."""
    ident = event.get("id")
    if type(ident) is str and ident:
        return ident
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


class _Token:
    def __init__(self, options: KeycloakOptions, session: requests.Session, stats: PollStats):
        self.options = options
        self.session = session
        self.stats = stats
        self._value = options.token
        self._expires = float("inf") if options.token else 0.0

    def header(self) -> dict[str, str]:
        if time.monotonic() >= self._expires - TOKEN_MARGIN_S:
            self.refresh()
        return {"Authorization": f"Bearer {self._value}"}

    def refresh(self) -> None:
        options = self.options
        if options.token:
            raise KeycloakAuthError(
                "Keycloak refused the bearer token", hint="renew the token file's token"
            )
        realm = quote(options.auth_realm or options.realm, safe="")
        url = f"{options.base}/realms/{realm}/protocol/openid-connect/token"
        response = self.session.post(
            url,
            data={
                "grant_type": "client_credentials",
                "client_id": options.client_id,
                "client_secret": options.client_secret,
            },
            timeout=options.timeout,
            stream=True,
        )
        with response:
            body = read_capped(response, TOKEN_MAX_BYTES, options.timeout)
        if response.status_code in (400, 401, 403):
            raise KeycloakAuthError(
                f"Keycloak refused the client credentials of {options.client_id!r} "
                f"(HTTP {response.status_code})",
                hint="check the client id and secret, and that the client has service accounts",
            )
        if response.status_code == 404:
            raise SourceError(
                f"Keycloak has no realm {options.auth_realm or options.realm!r} at {options.base}",
                hint="check the server URL (and its path prefix) and the client's realm",
            )
        if response.status_code != 200:
            raise requests.HTTPError(f"token endpoint: HTTP {response.status_code}")
        try:
            body = json.loads(body)
            self._value = str(body["access_token"])
            lifetime = float(body.get("expires_in", 60))
        except (ValueError, KeyError, TypeError) as error:
            raise requests.HTTPError(f"token endpoint: unexpected answer: {error}") from error
        self._expires = time.monotonic() + lifetime
        self.stats.token_refreshes += 1


class _PageTooLarge(Exception):
    pass


class KeycloakPoller:
    """The `keycloak` source's admin REST API connector (see the module docstring)."""

    source = SOURCE

    def __init__(self, options: KeycloakOptions) -> None:
        self.options = options
        self.stats = PollStats()
        self.factory = EventFactory(SOURCE)
        self._cursor = CursorFile(options.cursor) if options.cursor else None
        self._positions = self._load_positions()
        self.session = requests.Session()
        if options.ca_file:
            self.session.verify = options.ca_file
        self._token = _Token(options, self.session, self.stats)
        self._alert: AlertCallback | None = None

    def _load_positions(self) -> dict[str, _Position]:
        saved = self._cursor.load() if self._cursor else None
        start = self.options.start_ms
        if start is None:
            start = time.time_ns() // 1_000_000
        positions = {}
        for kind in self.options.kinds:
            entry = (saved or {}).get(kind)
            if entry is None:
                positions[kind] = _Position(start)
                continue
            ids = entry.get("ids") if type(entry) is dict else None
            when = entry.get("time") if type(entry) is dict else None
            if type(when) is not int or type(ids) is not list:
                raise SourceError(
                    f"{self.options.cursor}: corrupt cursor file ({kind})",
                    hint="delete it to start from now",
                )
            positions[kind] = _Position(when, [str(i) for i in ids])
        return positions

    def _save(self) -> None:
        if self._cursor is not None:
            self._cursor.save(
                {kind: {"time": p.time, "ids": p.ids} for kind, p in self._positions.items()}
            )

    def run(self, deliver: EventsCallback, stop: threading.Event, alert: AlertCallback) -> None:
        self._alert = alert
        backoff = Backoff(self.options.backoff_initial, self.options.backoff_max)
        succeeded = False
        try:
            while not stop.is_set():
                try:
                    self.poll(deliver, stop)
                except KeycloakAuthError:
                    if not succeeded:
                        raise
                    self.stats.failures += 1
                    log.warning("keycloak: credentials refused; retrying", exc_info=True)
                    delay = backoff.next_delay()
                except SourceError:
                    raise
                except (requests.RequestException, ValueError, _PageTooLarge) as error:
                    self.stats.failures += 1
                    log.warning("keycloak: polling failed (%s); retrying", error)
                    delay = backoff.next_delay()
                else:
                    succeeded = True
                    backoff.reset()
                    delay = self.options.interval
                if stop.wait(delay):
                    break
        finally:
            self.session.close()

    def poll(self, deliver: EventsCallback, stop: threading.Event | None = None) -> int:
        """One poll of every kind: deliver what is new, oldest first; returns the count."""
        self.stats.polls += 1
        total = 0
        for kind in self.options.kinds:
            total += self._poll_kind(kind, deliver, stop)
        return total

    def _poll_kind(self, kind: str, deliver: EventsCallback, stop: threading.Event | None) -> int:
        position = self._positions[kind]
        since = position.time
        size = self.options.page_size
        first = 0
        delivered = 0
        while stop is None or not stop.is_set():
            page = self._page(kind, since, first, size)
            self.stats.pages += 1
            fresh = []
            previous = None
            forgotten = 0
            for event in page:
                when = event.get("time")
                if type(when) is not int:
                    continue  # not an event Keycloak would list
                if previous is not None and when < previous:
                    raise SourceError(
                        f"Keycloak listed {kind} newest first",
                        hint="polling needs Keycloak 24 or later (direction=asc)",
                    )
                previous = when
                key = event_key(event)
                if position.seen(when, key):
                    self.stats.duplicates += 1
                    continue
                if position.advance(when, key):
                    forgotten += 1
                fresh.append(event)
            if forgotten:
                self._forgot(kind, forgotten)
            if fresh:
                events = list(self.factory.from_document(fresh))
                deliver(events)
                delivered += len(events)
                self.stats.events += len(events)
            self._save()  # after delivery: a crash before this re-reads, never skips
            if len(page) < size:
                break
            first += len(page)
        return delivered

    def _forgot(self, kind: str, count: int) -> None:
        """More events in one millisecond than the cursor remembers: after a restart, the
        forgotten ones would be evaluated again (duplicates, never losses). Said, not silent."""
        self.stats.forgotten_ids += count
        message = (
            f"keycloak: over {MAX_IDS_AT_CURSOR} {kind} in one millisecond; "
            f"{count} ids forgotten (a restart may evaluate them again)"
        )
        log.warning(message)
        if self._alert is not None:
            self._alert(message, {"source": SOURCE, "n_forgotten_total": self.stats.forgotten_ids})

    def _page(self, kind: str, since: int, first: int, size: int) -> list[dict[str, Any]]:
        options = self.options
        url = f"{options.base}/admin/realms/{quote(options.realm, safe='')}/{kind}"
        params = {"dateFrom": str(since), "direction": "asc", "first": first, "max": size}
        for attempt in (1, 2):
            response = self.session.get(
                url,
                params=params,
                headers=self._token.header(),
                timeout=options.timeout,
                stream=True,
            )
            with response:
                if response.status_code == 401 and attempt == 1:
                    self._token.refresh()  # expired early or revoked: one fresh token
                    continue
                if response.status_code in (401, 403):
                    raise KeycloakAuthError(
                        f"Keycloak refused to list {kind} of realm {options.realm} "
                        f"(HTTP {response.status_code})",
                        hint="the client's service account needs realm-management's view-events",
                    )
                if response.status_code == 404:
                    raise SourceError(
                        f"Keycloak has no realm {options.realm!r} at {options.base}",
                        hint="check the server URL (and its path prefix) and the realm",
                    )
                response.raise_for_status()
                try:
                    body = read_capped(response, options.max_page_bytes, 2 * options.timeout)
                except _PageTooLarge as error:
                    if self._alert is not None:
                        self._alert(
                            str(error), {"source": SOURCE, "max_page_bytes": options.max_page_bytes}
                        )
                    raise
            page = json.loads(body)
            if type(page) is not list or any(type(e) is not dict for e in page):
                raise ValueError(f"{kind}: not a list of events")
            return page
        raise AssertionError("unreachable")


def read_capped(response: requests.Response, cap: int, deadline_s: float) -> bytes:
    """A response body of at most `cap` bytes, read within `deadline_s` (a server dripping
    bytes cannot hold the poller longer)."""
    deadline = time.monotonic() + deadline_s
    body = bytearray()
    for chunk in response.iter_content(64 * 1024):
        body += chunk
        if len(body) > cap:
            raise _PageTooLarge(
                f"keycloak: an answer over {cap} bytes was refused; lower the page size"
            )
        if time.monotonic() > deadline:
            raise requests.Timeout(f"keycloak: the answer took over {deadline_s:g} s")
    return bytes(body)


__all__ = [
    "KeycloakAuthError",
    "KeycloakEndpoint",
    "KeycloakOptions",
    "KeycloakPoller",
    "KeycloakWebhook",
    "event_key",
]
