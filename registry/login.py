"""`registry login/logout/auth`: credentials are checked against the registry before they are
stored, so a wrong password is refused at login time rather than at the next pull."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from registry.client import RegistryClient, tls_verify
from registry.credentials import erase_credentials, store_credentials
from registry.errors import AuthError, ReferenceError_
from registry.oauth import OAuthClient, fetch_token, save_client
from registry.options import ClientOptions
from registry.reference import HOST_RE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoginResult:
    registry: str
    username: str
    stored_in: str


def check_host(host: str) -> str:
    host = host.strip()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix) :]
    host = host.rstrip("/")
    if not host or "/" in host or not HOST_RE.match(host):
        raise ReferenceError_(
            f"{host!r} is not a registry host", hint="give host[:port], e.g. ghcr.io"
        )
    return host


def verify_basic(host: str, username: str, password: str, options: ClientOptions) -> None:
    """GET /v2/ with these credentials only (never the stored ones); AuthError if refused."""
    if not username or not password:
        raise AuthError(
            "a username and a password are required", hint="pass -u and --password-stdin"
        )
    client = RegistryClient(host, options.with_credentials(username, password))
    try:
        client.ping()
    except AuthError as error:
        raise AuthError(
            f"{host} refused the credentials of {username!r} ({error})",
            hint="check the username and password; nothing was stored",
        ) from error
    finally:
        client.close()
    if not client.auth.challenged:
        log.warning("%s answered without asking for credentials: they could not be verified", host)


def login(host: str, username: str, password: str, options: ClientOptions) -> LoginResult:
    host = check_host(host)
    verify_basic(host, username, password, options)
    where = store_credentials(host, username, password, options)
    return LoginResult(registry=host, username=username, stored_in=where)


def logout(host: str, options: ClientOptions) -> bool:
    return erase_credentials(check_host(host), options)


def login_oauth(
    host: str,
    client: OAuthClient,
    credentials_file: Path,
    options: ClientOptions,
) -> Path:
    """Validate the client credentials at the token URL, then store them (0600)."""
    host = check_host(host)
    fetch_token(client, verify=tls_verify(options), timeout=options.connect_timeout)
    save_client(credentials_file, host, client)
    return credentials_file
