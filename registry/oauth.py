"""OAuth2 client-credentials for registries (`registry auth oauth`), as falcoctl stores them.

The file is a JSON map `registry -> {ClientID, ClientSecret, TokenURL, Scopes}` (the field
names of golang.org/x/oauth2/clientcredentials.Config, which falcoctl serialises), mode 0600.
The access token is sent as the registry's bearer token.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from registry.auth import token_lifetime
from registry.errors import AuthError, RegistryError
from registry.options import ClientOptions
from registry.transfer import (
    DEFAULT_LIMITS,
    MAX_TOKEN_RESPONSE_SIZE,
    TransferLimits,
    fetch_document,
    is_loopback_url,
)

# (token_url, client_id, scopes) -> (access token, monotonic expiry)
_TOKENS: dict[tuple[str, str, str], tuple[str, float]] = {}


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    client_secret: str
    token_url: str
    scopes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "ClientID": self.client_id,
            "ClientSecret": self.client_secret,
            "TokenURL": self.token_url,
            "Scopes": list(self.scopes),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> OAuthClient:
        scopes = data.get("Scopes") or []
        return cls(
            client_id=str(data.get("ClientID", "")),
            client_secret=str(data.get("ClientSecret", "")),
            token_url=str(data.get("TokenURL", "")),
            scopes=tuple(str(s) for s in scopes) if isinstance(scopes, list) else (),
        )


def load_clients(path: Path) -> dict[str, OAuthClient]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise RegistryError(f"cannot read OAuth client credentials {path}: {error}") from error
    return {host: OAuthClient.from_json(value) for host, value in raw.items()}


def save_client(path: Path, host: str, client: OAuthClient) -> None:
    from registry.credentials import write_private_json

    clients = load_clients(path)
    clients[host] = client
    write_private_json(path, {h: c.to_json() for h, c in sorted(clients.items())})


def fetch_token(
    client: OAuthClient,
    verify: bool | str = True,
    timeout: float = 10.0,
    limits: TransferLimits = DEFAULT_LIMITS,
) -> str:
    """Run the client-credentials grant; raise AuthError when the token endpoint refuses."""
    key = (client.token_url, client.client_id, " ".join(client.scopes))
    cached = _TOKENS.get(key)
    if cached and cached[1] > time.monotonic():
        return cached[0]
    form = {"grant_type": "client_credentials"}
    if client.scopes:
        form["scope"] = " ".join(client.scopes)
    # The client secret never crosses the network in clear (loopback is this machine).
    if not client.token_url.lower().startswith("https://") and not is_loopback_url(
        client.token_url
    ):
        raise AuthError(
            f"refusing to send the client secret to {client.token_url}: not HTTPS",
            hint="use an https:// token URL",
        )
    fetched = fetch_document(
        "POST",
        client.token_url,
        f"token URL {client.token_url}",
        max_size=MAX_TOKEN_RESPONSE_SIZE,
        limits=limits,
        connect_timeout=timeout,
        data=form,
        auth=(client.client_id, client.client_secret),
        verify=verify,
    )
    if fetched.status != 200:
        raise AuthError(
            f"token URL {client.token_url} refused the client credentials (HTTP {fetched.status})",
            hint="check --client-id, --client-secret and --scopes",
        )
    try:
        body = json.loads(fetched.body)
        token = body["access_token"]
        if not isinstance(token, str):
            raise TypeError("access_token is not text")
    except (ValueError, KeyError, TypeError) as error:
        raise AuthError(f"token URL {client.token_url} returned no access_token") from error
    lifetime = token_lifetime(body.get("expires_in") or 300)
    # Renew a little early so a token never expires between check and use.
    _TOKENS[key] = (token, time.monotonic() + max(lifetime - 10, 1))
    return token


def access_token_for(host: str, options: ClientOptions) -> str | None:
    if options.oauth_credentials_file is None:
        return None
    client = load_clients(options.oauth_credentials_file).get(host)
    if client is None:
        return None
    from registry.client import tls_verify

    return fetch_token(
        client,
        verify=tls_verify(options),
        timeout=options.connect_timeout,
        limits=options.transfer,
    )
