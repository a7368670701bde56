"""Registry authentication: the scheme comes from the registry's WWW-Authenticate challenge.

Basic challenges get the stored username/password; Bearer challenges go through the token
flow (realm, service, scope) and the token is cached per (registry, scope, identity) until it
expires. Once a registry has challenged, later requests authenticate up front, saving the
401 round trip on every call.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from registry.credentials import Credentials
from registry.errors import AuthError

_PARAM_RE = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
DEFAULT_TOKEN_LIFETIME = 60.0


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenge(header: str) -> Challenge | None:
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _PARAM_RE.finditer(rest)}
    return Challenge(scheme=scheme.lower(), params=params)


def basic_header(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def merge_scopes(*scopes: str) -> str:
    """Union of `repository:name:actions` scopes, actions merged per resource, sorted."""
    actions: dict[str, set[str]] = {}
    for scope_list in scopes:
        for scope in scope_list.split():
            resource, _, acts = scope.rpartition(":")
            if not resource:
                continue
            actions.setdefault(resource, set()).update(a for a in acts.split(",") if a)
    return " ".join(f"{res}:{','.join(sorted(acts))}" for res, acts in sorted(actions.items()))


TokenFetcher = Callable[..., requests.Response]


class Authenticator:
    """Per-process authentication state for one registry host."""

    def __init__(
        self,
        host: str,
        load_credentials: Callable[[], Credentials | None],
        get: TokenFetcher,
    ) -> None:
        self.host = host
        self._load_credentials = load_credentials
        self._credentials: Credentials | None = None
        self._credentials_loaded = False
        self._get = get
        self._challenge: Challenge | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    @property
    def credentials(self) -> Credentials | None:
        if not self._credentials_loaded:
            self._credentials = self._load_credentials()
            self._credentials_loaded = True
        return self._credentials

    @property
    def challenged(self) -> bool:
        return self._challenge is not None

    def header_for(self, scope: str) -> str | None:
        """The Authorization header to send up front, once the registry has told its scheme."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self.credentials
            return basic_header(creds) if creds and creds.has_basic else None
        if challenge.scheme == "bearer":
            cached = self._tokens.get(scope)
            if cached and cached[1] > time.monotonic():
                return f"Bearer {cached[0]}"
            return f"Bearer {self._fetch_token(challenge, scope)}"
        return None

    def on_challenge(self, header: str, scope: str) -> str:
        """Record a 401's challenge and return the header to retry with (or raise AuthError)."""
        challenge = parse_challenge(header)
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            raise AuthError(
                f"{self.host} asked for authentication with an unsupported scheme: {header!r}"
            )
        with self._lock:
            self._challenge = challenge
            if challenge.scheme == "basic":
                creds = self.credentials
                if creds is None or not creds.has_basic:
                    raise AuthError(
                        f"{self.host} requires a username and password",
                        hint=f"run `falconet registry login {self.host}`",
                    )
                return basic_header(creds)
            wanted = merge_scopes(scope, challenge.params.get("scope", ""))
            self._tokens.pop(wanted, None)
            return f"Bearer {self._fetch_token(challenge, wanted)}"

    def _fetch_token(self, challenge: Challenge, scope: str) -> str:
        creds = self.credentials
        if creds is not None and creds.access_token:
            return creds.access_token
        if not challenge.realm:
            raise AuthError(f"{self.host} sent a Bearer challenge without a realm")
        params = {"service": challenge.params.get("service", "")}
        if scope:
            params["scope"] = scope
        auth = None
        if creds is not None and creds.has_basic:
            auth = (creds.username, creds.password)
        if creds is not None and creds.identity_token:
            response = self._post_refresh(challenge, scope, creds.identity_token)
        else:
            response = self._get(challenge.realm, params=params, auth=auth)
        if response.status_code in (401, 403):
            raise AuthError(
                f"{self.host}: the token service {challenge.realm} refused the credentials",
                hint=f"check them with `falconet registry login {self.host}`",
            )
        if response.status_code != 200:
            raise AuthError(
                f"{self.host}: the token service {challenge.realm} answered "
                f"HTTP {response.status_code}"
            )
        try:
            body = response.json()
        except ValueError as error:
            raise AuthError(f"{self.host}: the token service returned no JSON") from error
        token = body.get("token") or body.get("access_token")
        if not token:
            raise AuthError(f"{self.host}: the token service returned no token")
        lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        self._tokens[scope] = (token, time.monotonic() + max(lifetime - 5, 1))
        return str(token)

    def _post_refresh(self, challenge: Challenge, scope: str, refresh: str) -> requests.Response:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": challenge.params.get("service", ""),
            "scope": scope,
            "client_id": "falconet",
        }
        return self._get(challenge.realm, method="POST", data=form)
