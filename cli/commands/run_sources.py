"""`falconet run` options of the live keycloak and nomad sources (their config keys are
`sources.keycloak.*` and `sources.nomad.*`; docs/sources.md)."""

from __future__ import annotations

from typing import Annotated

import typer

Server = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="keycloak: base URL whose admin API is polled; nomad: the agent's HTTP address.",
    ),
]
Realm = Annotated[str | None, typer.Option("--realm", help="keycloak: the realm to poll.")]
ClientId = Annotated[
    str | None, typer.Option("--client-id", help="keycloak: OAuth client (client credentials).")
]
ClientSecretFile = Annotated[
    str | None,
    typer.Option("--client-secret-file", help="keycloak: file holding the client's secret."),
]
TokenFile = Annotated[
    str | None,
    typer.Option("--token-file", help="nomad: ACL token file; keycloak: a bearer token file."),
]
Topic = Annotated[
    list[str] | None,
    typer.Option("--topic", help="nomad: Topic or Topic:key to stream (repeatable; default *)."),
]
Namespace = Annotated[
    str | None, typer.Option("--namespace", help="nomad: namespace filter (default *).")
]
WebhookSecretFile = Annotated[
    str | None,
    typer.Option(
        "--webhook-secret-file",
        help="keycloak --listen: shared secret the exporter sends as Authorization: Bearer.",
    ),
]
