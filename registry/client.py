"""HTTP transport to one registry: TLS, timeouts, bounded retries, authentication.

Retries (exponential backoff with jitter) cover 5xx, 429 (Retry-After honoured) and
connections reset mid-way; a refused connection or a TLS failure is reported at once, naming
the host, because retrying cannot fix either. Proxies come from the environment (requests).
"""

from __future__ import annotations

import email.utils
import errno
import json
import logging
import os
import random
import re
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests
import requests.adapters

from registry.auth import Authenticator
from registry.credentials import load_credentials
from registry.errors import AuthError, NetworkError, NotFoundError, RegistryError
from registry.options import ClientOptions
from registry.transfer import (
    MAX_ERROR_BODY_SIZE,
    Pace,
    read_body,
    read_prefix,
    redirect_loop,
    watched,
    watched_session,
)

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Registries whose API lives on another host than the name users write.
API_HOSTS = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}
BodyFactory = Callable[[], bytes | Iterable[bytes] | Any]


def _refused(error: BaseException) -> bool:
    """True when nothing listens (or the name does not resolve): retrying will not help."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        if isinstance(current, OSError) and current.errno in (errno.ECONNREFUSED,):
            return True
        text = str(current)
        if "Connection refused" in text or "Name or service not known" in text:
            return True
        nested = getattr(current, "reason", None) or current.__cause__ or current.__context__
        current = nested if isinstance(nested, BaseException) else None
    return False


def system_ca_bundle() -> bool | str:
    """The operating system's CA bundle (where corporate CAs get installed), else certifi's.

    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, when set, still win, as requests users expect.
    """
    if os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"):
        return True
    cafile = ssl.get_default_verify_paths().cafile
    return cafile if cafile and os.path.isfile(cafile) else True


def tls_verify(options: ClientOptions) -> bool | str:
    """requests' `verify` for these options: skip (only when asked), --ca-file, or the system's."""
    if options.insecure_skip_tls_verify:
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        return False
    if options.ca_file is not None:
        return str(options.ca_file)
    return system_ca_bundle()


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RegistryClient:
    """Sends requests to one registry host, authenticating as its challenges require."""

    def __init__(self, registry: str, options: ClientOptions) -> None:
        self.registry = registry
        self.options = options
        scheme = "http" if options.uses_plain_http(registry) else "https"
        self.base_url = f"{scheme}://{API_HOSTS.get(registry, registry)}"
        # A watched session: `watched()` in _send_once can cut a trickled answer short.
        self.session = watched_session(pool_connections=4, pool_maxsize=8)
        self.session.headers["User-Agent"] = options.user_agent
        # Passed on every request: requests lets REQUESTS_CA_BUNDLE override session.verify.
        self.verify = tls_verify(options)
        if options.client_cert is not None:
            self.session.cert = (
                (str(options.client_cert), str(options.client_key))
                if options.client_key
                else str(options.client_cert)
            )
        self.auth = Authenticator(
            registry,
            lambda: load_credentials(registry, options),
            self._raw_request,
            registry_scheme=scheme,
            read=self.read,
        )

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.options.connect_timeout, self.options.read_timeout)

    def close(self) -> None:
        self.session.close()

    def _raw_request(self, url: str, method: str = "GET", **kwargs: Any) -> requests.Response:
        """Used by the token flow: one request with the same TLS settings and error mapping."""
        return self._send_once(method, url, timeout=self.timeout, **kwargs)

    def read(
        self, response: requests.Response, what: str, max_size: int, pace: Pace | None = None
    ) -> bytes:
        """A response's whole body, bounded and paced (registry/transfer.py), then closed."""
        with response:
            return read_body(
                response, what, max_size=max_size, pace=pace, limits=self.options.transfer
            )

    def _send_once(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("verify", self.verify)
        # Always streamed: a body is only ever read through registry/transfer.py, bounded.
        kwargs["stream"] = True
        try:
            # Up to the end of the headers; the body is paced as it is read (transfer.py).
            with watched(f"{self.registry}: {method} {url}", self.options.transfer.timeout):
                return self.session.request(method, url, **kwargs)
        except requests.exceptions.TooManyRedirects as error:
            raise redirect_loop(f"{self.registry}: {method}", url) from error
        except requests.exceptions.SSLError as error:
            if _CLIENT_CERT_RE.search(str(error)):
                raise NetworkError(
                    f"{self.registry} refused the TLS client certificate "
                    f"({'none was given' if self.session.cert is None else 'not trusted'})",
                    hint="pass --client-cert and --client-key with a certificate the registry "
                    "trusts",
                ) from error
            raise NetworkError(
                f"TLS connection to {self.registry} failed: {_short(error)}",
                hint="pass --ca-file with the registry's CA, or --plain-http if it speaks HTTP "
                "(--insecure-skip-tls-verify only for tests)",
            ) from error
        except requests.exceptions.ConnectTimeout as error:
            raise NetworkError(
                f"cannot connect to {self.registry}: no answer within "
                f"{self.options.connect_timeout:g} s",
                hint="check the address, firewalls and HTTPS_PROXY/NO_PROXY",
            ) from error
        except requests.exceptions.ConnectionError as error:
            if _refused(error):
                raise NetworkError(
                    f"cannot connect to {self.registry}: connection refused or host unknown",
                    hint="check the registry address and that it is running",
                ) from error
            raise _TransientError(f"connection to {self.registry} failed: {_short(error)}") from (
                error
            )
        except requests.exceptions.Timeout as error:
            raise _TransientError(f"{self.registry} timed out: {_short(error)}") from error

    def request(
        self,
        method: str,
        url: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        body: BodyFactory | None = None,
        params: Mapping[str, str] | None = None,
        stream: bool = False,
        retry: bool = True,
    ) -> requests.Response:
        """Send with auth and bounded retries; return the final response (any status).

        Every response is streamed whatever `stream` says: its body is read only through
        `read` (registry/transfer.py), bounded and paced.

        With retry=False a reset raises TransientNetworkError and a 5xx/429 is returned as is,
        for callers that must restart a larger unit (an upload session) themselves.
        """
        if not url.startswith(("http://", "https://")):
            url = self.base_url + url
        attempt = 0
        auth_retried = False
        while True:
            request_headers = dict(headers or {})
            preemptive = self.auth.header_for(scope)
            if preemptive:
                request_headers["Authorization"] = preemptive
            try:
                response = self._send_once(
                    method,
                    url,
                    headers=request_headers,
                    data=body() if body is not None else None,
                    params=params,
                    stream=stream,
                    timeout=self.timeout,
                    allow_redirects=True,
                )
            except _TransientError as error:
                if not retry:
                    raise TransientNetworkError(str(error)) from error
                if attempt >= self.options.max_retries:
                    raise NetworkError(
                        f"{error} (gave up after {attempt + 1} attempts)",
                        hint="the registry or the network is unstable; try again later",
                    ) from error
                self.sleep_before_retry(attempt, None, str(error))
                attempt += 1
                continue
            if response.status_code == 401 and not auth_retried:
                challenge = response.headers.get("WWW-Authenticate", "")
                response.close()
                self.auth.on_challenge(challenge, scope)
                auth_retried = True
                continue
            if (
                retry
                and response.status_code in RETRY_STATUSES
                and attempt < self.options.max_retries
            ):
                wait = _retry_after(response) if response.status_code in (429, 503) else None
                if wait is not None and wait > self.options.retry_after_max:
                    return response
                response.close()
                self.sleep_before_retry(attempt, wait, f"HTTP {response.status_code}")
                attempt += 1
                continue
            return response

    def sleep_before_retry(self, attempt: int, retry_after: float | None, why: str) -> None:
        if retry_after is not None:
            delay = retry_after
        else:
            ceiling = min(self.options.backoff_max, self.options.backoff_base * (2**attempt))
            delay = random.uniform(ceiling / 2, ceiling)
        log.info("%s: %s; retrying in %.1fs", self.registry, why, delay)
        time.sleep(delay)

    def check(self, response: requests.Response, what: str) -> requests.Response:
        """Raise the typed error for a failed response."""
        status = response.status_code
        if 200 <= status < 300:
            return response
        detail = _error_detail(response, self.options)
        response.close()
        if status == 401:
            raise AuthError(
                f"{self.registry}: authentication failed for {what}{detail}",
                hint=f"log in with `falconet registry login {self.registry}`",
            )
        if status == 403:
            raise AuthError(f"{self.registry}: access denied to {what}{detail}")
        if status == 404:
            raise NotFoundError(f"{what} not found on {self.registry}{detail}")
        if status == 400 and "HTTP request to an HTTPS server" in detail:
            raise NetworkError(
                f"{self.registry} speaks HTTPS, not plain HTTP", hint="drop --plain-http"
            )
        if status == 429:
            raise NetworkError(
                f"{self.registry}: too many requests for {what}{detail}",
                hint="the registry is rate limiting; try again later",
            )
        if status >= 500:
            raise NetworkError(f"{self.registry}: server error HTTP {status} for {what}{detail}")
        raise RegistryError(f"{self.registry}: HTTP {status} for {what}{detail}")

    def ping(self) -> None:
        """GET /v2/ with authentication: proves the registry is there and accepts us."""
        response = self.request("GET", "/v2/", scope="")
        self.check(response, "the registry API (/v2/)")
        response.close()


class _TransientError(Exception):
    """A failure worth retrying (reset, timeout); becomes NetworkError when retries run out."""


class TransientNetworkError(NetworkError):
    """A reset or timeout reported to a caller that retries a larger unit itself."""


_REASON_RE = re.compile(
    r"(certificate verify failed[^()'\"]*|wrong version number|"
    r"Connection reset by peer|Read timed out|Connection aborted)"
)


# TLS alerts a server sends when it wants (another) client certificate.
_CLIENT_CERT_RE = re.compile(r"alert (bad certificate|certificate required|unknown ca)", re.I)


def _short(error: BaseException) -> str:
    """The telling part of urllib3's long nested messages, e.g. 'certificate verify failed'."""
    text = str(error)
    match = _REASON_RE.search(text)
    if match:
        return match.group(1).strip().rstrip(":")
    return text if len(text) < 200 else text[:200] + "..."


def _error_detail(response: requests.Response, options: ClientOptions) -> str:
    """The registry's error code and message, from at most the start of the body."""
    if response.request is not None and response.request.method == "HEAD":
        return ""
    raw = read_prefix(response, MAX_ERROR_BODY_SIZE, options.transfer)
    text = raw.decode("utf-8", "replace")
    try:
        errors = json.loads(text).get("errors") or []
        if errors:
            first = errors[0]
            detail = f"{first.get('code', '')} {first.get('message', '')}".rstrip()
            return f": {printable(detail)[:500]}"
    except (ValueError, AttributeError, TypeError):
        pass
    text = printable(text.strip())[:500]
    return f": {text}" if text else ""


def printable(text: str) -> str:
    """Text from a server made safe for one line of a terminal or a table: control characters
    (newlines, escapes) are shown escaped, so a server cannot forge lines or colours."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)
