"""The live input of the keycloak and nomad sources, from the layered configuration (flags >
FALCONET_* > falconet.yaml `sources.*` > defaults), checked before anything runs: a Keycloak
webhook (`--listen`) or admin-API poller (`--server`), or a Nomad event stream. Secrets are read
from files (bounded); resume cursors live under `sources.cursor_dir`, one per server and scope.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from feeds.config import Config
from feeds.errors import ConfigError

if TYPE_CHECKING:
    from engine.sources.connectors import Connector

LIVE_SOURCES = ("keycloak", "nomad")
SECRET_MAX_BYTES = 64 * 1024
KC = "sources.keycloak."
NOMAD = "sources.nomad."


def source_flags(
    source: str | None,
    server: str | None = None,
    realm: str | None = None,
    client_id: str | None = None,
    client_secret_file: str | None = None,
    token_file: str | None = None,
    topics: list[str] | None = None,
    namespace: str | None = None,
    webhook_secret_file: str | None = None,
) -> dict[str, object]:
    """Command-line options as configuration keys of the source they apply to."""
    given = {
        "--server": server,
        "--realm": realm,
        "--client-id": client_id,
        "--client-secret-file": client_secret_file,
        "--token-file": token_file,
        "--topic": topics,
        "--namespace": namespace,
        "--webhook-secret-file": webhook_secret_file,
    }
    used = [name for name, value in given.items() if value]
    if not used:
        return {}
    if source not in LIVE_SOURCES:
        raise ConfigError(
            f"{used[0]} applies to the keycloak and nomad sources",
            "give --source keycloak or --source nomad",
        )
    own = {
        "keycloak": (
            "--server",
            "--realm",
            "--client-id",
            "--client-secret-file",
            "--token-file",
            "--webhook-secret-file",
        ),
        "nomad": ("--server", "--token-file", "--topic", "--namespace"),
    }[source]
    for name in used:
        if name not in own:
            raise ConfigError(
                f"{name} does not apply to the {source} source", "see falconet run --help"
            )
    if source == "nomad":
        return {
            NOMAD + "address": server,
            NOMAD + "token_file": token_file,
            NOMAD + "topics": topics or None,
            NOMAD + "namespace": namespace,
        }
    return {
        KC + "server": server,
        KC + "realm": realm,
        KC + "client_id": client_id,
        KC + "client_secret_file": client_secret_file,
        KC + "token_file": token_file,
        KC + "webhook_secret_file": webhook_secret_file,
    }


def connector_for(
    config: Config, source: str | None, replay: str | None, listen: str | None
) -> Connector | None:
    """The live input `falconet run --source keycloak|nomad` reads, or None (a replay, another
    source). Raises ConfigError/SourceOptionsError (usage) for what cannot work."""
    if replay or source not in LIVE_SOURCES:
        return None
    if source == "nomad":
        if listen:
            raise ConfigError(
                "the nomad source reads Nomad's event stream; it has no webhook",
                "drop --listen; give --server http://NOMAD:4646 (or --replay FILE)",
            )
        return _nomad(config)
    if listen:
        return _keycloak_webhook(config, listen)
    if not config[KC + "server"]:
        raise ConfigError(
            "the keycloak source needs --server URL (poll the admin API), --listen ADDR "
            "(the exporter's webhook) or --replay PATH",
            "e.g. --server https://id.example.com --realm acme --client-id falconet "
            "--client-secret-file secret.txt",
        )
    return _keycloak_poller(config)


def _nomad(config: Config) -> Connector:
    from engine.sources.nomad_stream import NomadOptions, NomadStream

    address = config[NOMAD + "address"]
    namespace = config[NOMAD + "namespace"]
    topics = tuple(str(t) for t in config[NOMAD + "topics"])
    options = NomadOptions(
        address=address,
        token=_secret(config, NOMAD + "token_file"),
        namespace=namespace,
        topics=topics,
        max_frame=config[NOMAD + "max_frame"],
        max_buffer=config[NOMAD + "max_buffer"],
        ca_file=_path(config, NOMAD + "ca_file"),
        client_cert=_path(config, NOMAD + "client_cert"),
        client_key=_path(config, NOMAD + "client_key"),
        cursor=_cursor(config, "nomad", address, namespace, *sorted(topics)),
    )
    return NomadStream(options)


def _keycloak_poller(config: Config) -> Connector:
    from engine.sources.keycloak_transport import KeycloakOptions, KeycloakPoller

    server, realm = config[KC + "server"], config[KC + "realm"]
    options = KeycloakOptions(
        server=server,
        realm=realm,
        client_id=config[KC + "client_id"],
        client_secret=_secret(config, KC + "client_secret_file"),
        auth_realm=config[KC + "auth_realm"],
        token=_secret(config, KC + "token_file"),
        kinds=tuple(str(k) for k in config[KC + "kinds"]),
        page_size=config[KC + "page_size"],
        interval=float(config[KC + "poll_interval"]),
        ca_file=_path(config, KC + "ca_file"),
        cursor=_cursor(config, "keycloak", server.rstrip("/"), realm),
    )
    return KeycloakPoller(options)


def _keycloak_webhook(config: Config, listen: str) -> Connector:
    from engine.sources.keycloak_transport import KeycloakWebhook
    from engine.sources.webhooks import TlsFiles

    certificate = _path(config, KC + "tls_cert")
    key = _path(config, KC + "tls_key")
    if key and not certificate:
        raise ConfigError(f"{KC}tls_key is set without {KC}tls_cert", "set both, or neither")
    return KeycloakWebhook(
        listen,
        secret=_secret(config, KC + "webhook_secret_file"),
        path=config[KC + "webhook_path"],
        max_body=config[KC + "webhook_max_body"],
        tls=TlsFiles(Path(certificate), Path(key) if key else None) if certificate else None,
    )


def _path(config: Config, key: str) -> str | None:
    value = config[key]
    if not value:
        return None
    if not Path(value).is_file():
        raise ConfigError(f"{_where(config, key)}: {value} is not a file", "give an existing file")
    return str(value)


def _secret(config: Config, key: str) -> str:
    """The first line of a secret file ("" when the setting is empty)."""
    path = _path(config, key)
    if path is None:
        return ""
    try:
        with open(path, "rb") as file:
            data = file.read(SECRET_MAX_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{_where(config, key)}: cannot read {path}: {error.strerror}") from error
    if len(data) > SECRET_MAX_BYTES:
        raise ConfigError(f"{_where(config, key)}: {path} is over {SECRET_MAX_BYTES} bytes")
    secret = data.decode("utf-8", "replace").strip().splitlines()
    if not secret or not secret[0].strip():
        raise ConfigError(f"{_where(config, key)}: {path} is empty", "put the secret on one line")
    return secret[0].strip()


def _cursor(config: Config, source: str, *scope: str) -> Path:
    digest = hashlib.sha256("\0".join(scope).encode()).hexdigest()[:16]
    return Path(config["sources.cursor_dir"]) / f"{source}-{digest}.json"


def _where(config: Config, key: str) -> str:
    origin = config.values[key].origin
    if origin == "flag":
        return "--" + key.rsplit(".", 1)[-1].replace("_", "-")
    if origin.startswith("env:"):
        return origin.removeprefix("env:")
    return key
