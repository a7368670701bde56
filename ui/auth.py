"""Who may post alerts (ingest) and who may see the pages (optional login).

Credentials file (mode 0600 advised), one credential a line, `#` comments:
    s3cr3t-token-value          a bearer token:  Authorization: Bearer s3cr3t-token-value
    node-1:pa55word             basic auth:      Authorization: Basic base64(node-1:pa55word)
                                (Falco's http_output: http://node-1:pa55word@ui:8766/ingest)
Comparisons are constant-time. Sessions (UI login) are random 256-bit ids kept in memory,
bounded and expiring; browser state changes carry a double-submit CSRF token.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ui.errors import AuthFileError

MAX_FILE = 64 * 1024
MAX_SESSIONS = 1000
SESSION_SECONDS = 12 * 3600
SESSION_COOKIE = "falconet_session"
CSRF_COOKIE = "falconet_csrf"


@dataclass(frozen=True)
class Credentials:
    tokens: tuple[str, ...] = ()
    users: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_file(cls, path: str | Path) -> Credentials:
        file = Path(path)
        try:
            if file.stat().st_size > MAX_FILE:
                raise AuthFileError(f"credentials file {file} is larger than {MAX_FILE} bytes")
            lines = file.read_text("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise AuthFileError(
                f"cannot read credentials file {file}: {error}",
                "one bearer token or USER:PASSWORD per line (docs/ui.md)",
            ) from None
        tokens, users = [], []
        for line in lines:
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if ":" in text:
                user, _, password = text.partition(":")
                users.append((user, password))
            else:
                tokens.append(text)
        if not tokens and not users:
            raise AuthFileError(
                f"credentials file {file} holds no credential",
                "one bearer token or USER:PASSWORD per line (docs/ui.md)",
            )
        return cls(tuple(tokens), tuple(users))

    def check_header(self, header: str | None) -> bool:
        """An Authorization header carrying one of these credentials."""
        if not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return any(_same(value, token) for token in self.tokens)
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
            except ValueError:
                return False
            return self.check_user(user, password)
        return False

    def check_user(self, user: str, password: str) -> bool:
        found = False
        for known_user, known_password in self.users:  # no early exit: constant work
            found |= _same(user, known_user) & _same(password, known_password)
        return found


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class Sessions:
    """Logged-in browsers: session id -> (user, expiry), the oldest evicted past MAX_SESSIONS."""

    def __init__(self) -> None:
        self._sessions: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, user: str) -> str:
        session = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[session] = (user, time.monotonic() + SESSION_SECONDS)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return session

    def user(self, session: str | None) -> str | None:
        if not session:
            return None
        with self._lock:
            found = self._sessions.get(session)
            if found is None:
                return None
            if found[1] < time.monotonic():
                del self._sessions[session]
                return None
            return found[0]

    def end(self, session: str | None) -> None:
        with self._lock:
            self._sessions.pop(session or "", None)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(cookie: str | None, submitted: str | None) -> bool:
    """Double submit: the form's token equals the cookie's (a cross-site page can send the
    cookie, SameSite aside, but cannot read it to put it in the form)."""
    return bool(cookie) and bool(submitted) and _same(cookie or "", submitted or "")
