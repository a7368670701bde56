"""Registry authentication: the scheme comes from the registry's WWW-Authenticate challenge.

Basic challenges get the stored username/password; Bearer challenges go through the token
flow (realm, service, scope) and the token is cached per (registry, scope, identity) until it
expires. Once a registry has challenged, later requests authenticate up front, saving the
401 round trip on every call.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from registry.credentials import Credentials
from registry.errors import AuthError
from registry.transfer import MAX_TOKEN_RESPONSE_SIZE

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
BodyReader = Callable[[requests.Response, str, int], bytes]


def token_lifetime(value: object) -> float:
    """expires_in as seconds; a missing or nonsensical value means the spec's default."""
    try:
        lifetime = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return DEFAULT_TOKEN_LIFETIME
    return lifetime if 0 < lifetime < 1e9 else DEFAULT_TOKEN_LIFETIME


def _read_whole(response: requests.Response, what: str, max_size: int) -> bytes:
    from registry.transfer import read_body

    with response:
        return read_body(response, what, max_size=max_size)


def credentials_allowed(realm: str, registry_host: str, registry_scheme: str) -> str | None:
    """Why credentials must not go to this token realm, or None when they may.

    The rule (docs/security.md): over HTTPS, any host (the registry names its token service,
    as Docker Hub names auth.docker.io); over plain HTTP, only when the registry itself is
    reached over plain HTTP (the user opted in for that host) and the realm is on the same
    host name. An https registry pointing its realm at http:// never gets them."""
    parsed = urllib.parse.urlsplit(realm)
    scheme = parsed.scheme.lower()
    if scheme == "https":
        return None
    if scheme != "http":
        return f"the token realm {realm!r} is not an http(s) URL"
    if registry_scheme != "http":
        return f"the HTTPS registry points its token realm to plain HTTP ({realm})"
    registry_name = urllib.parse.urlsplit(f"//{registry_host}").hostname or ""
    if (parsed.hostname or "").lower() != registry_name.lower():
        return f"the token realm {realm} is plain HTTP on another host than {registry_host}"
    return None


class Authenticator:
    """Per-process authentication state for one registry host."""

    def __init__(
        self,
        host: str,
        load_credentials: Callable[[], Credentials | None],
        get: TokenFetcher,
        registry_scheme: str = "https",
        read: BodyReader = _read_whole,
    ) -> None:
        self.host = host
        self.registry_scheme = registry_scheme
        self._read = read
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
        withheld = None
        if creds is not None and (creds.has_basic or creds.identity_token):
            withheld = credentials_allowed(challenge.realm, self.host, self.registry_scheme)
            if withheld is not None:
                creds = None  # ask anonymously: a public repository still works
        auth = None
        if creds is not None and creds.has_basic:
            auth = (creds.username, creds.password)
        if creds is not None and creds.identity_token:
            response = self._post_refresh(challenge, scope, creds.identity_token)
        else:
            response = self._get(challenge.realm, params=params, auth=auth)
        if response.status_code != 200:
            response.close()
            if withheld is not None:
                raise AuthError(
                    f"{self.host}: credentials withheld: {withheld}",
                    hint="falconet sends credentials to a token service only over HTTPS, or "
                    "over plain HTTP to the registry's own host when it is configured plain_http",
                )
            if response.status_code in (401, 403):
                raise AuthError(
                    f"{self.host}: the token service {challenge.realm} refused the credentials",
                    hint=f"check them with `falconet registry login {self.host}`",
                )
            raise AuthError(
                f"{self.host}: the token service {challenge.realm} answered "
                f"HTTP {response.status_code}"
            )
        data = self._read(response, f"token response of {challenge.realm}", MAX_TOKEN_RESPONSE_SIZE)
        try:
            body = json.loads(data)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            raise AuthError(f"{self.host}: the token service returned no JSON object") from error
        token = body.get("token") or body.get("access_token")
        if not token:
            raise AuthError(f"{self.host}: the token service returned no token")
        if not isinstance(token, str):
            raise AuthError(f"{self.host}: the token service returned a token that is not text")
        lifetime = token_lifetime(body.get("expires_in"))
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
