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

import requests

from registry.errors import AuthError, NetworkError, RegistryError
from registry.options import ClientOptions

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


def fetch_token(client: OAuthClient, verify: bool | str = True, timeout: float = 10.0) -> str:
    """Run the client-credentials grant; raise AuthError when the token endpoint refuses."""
    key = (client.token_url, client.client_id, " ".join(client.scopes))
    cached = _TOKENS.get(key)
    if cached and cached[1] > time.monotonic():
        return cached[0]
    form = {"grant_type": "client_credentials"}
    if client.scopes:
        form["scope"] = " ".join(client.scopes)
    try:
        response = requests.post(
            client.token_url,
            data=form,
            auth=(client.client_id, client.client_secret),
            timeout=(timeout, 60.0),
            verify=verify,
        )
    except requests.RequestException as error:
        raise NetworkError(f"cannot reach token URL {client.token_url}: {error}") from error
    if response.status_code != 200:
        raise AuthError(
            f"token URL {client.token_url} refused the client credentials "
            f"(HTTP {response.status_code})",
            hint="check --client-id, --client-secret and --scopes",
        )
    try:
        body = response.json()
        token = str(body["access_token"])
    except (ValueError, KeyError) as error:
        raise AuthError(f"token URL {client.token_url} returned no access_token") from error
    lifetime = float(body.get("expires_in") or 300)
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

    return fetch_token(client, verify=tls_verify(options), timeout=options.connect_timeout)
