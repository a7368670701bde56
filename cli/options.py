"""Command-line options shared by several commands: one definition, one help text."""

from __future__ import annotations

from typing import Annotated

import typer

Output = Annotated[str, typer.Option("-o", "--output", help="text|json")]
Platform = Annotated[
    str | None, typer.Option("--platform", help="os/arch of a plugin (default: this host)")
]
PlainHttp = Annotated[
    bool, typer.Option("--plain-http", help="Talk to the registry over plain HTTP.")
]
CaFile = Annotated[str | None, typer.Option("--ca-file", help="CA bundle for registry TLS.")]
Insecure = Annotated[
    bool, typer.Option("--insecure-skip-tls-verify", help="Do not verify registry TLS (unsafe).")
]
RulesfilesDir = Annotated[str | None, typer.Option("--rulesfiles-dir")]
PluginsDir = Annotated[str | None, typer.Option("--plugins-dir")]
AssetsDir = Annotated[str | None, typer.Option("--assets-dir")]
StateDir = Annotated[str | None, typer.Option("--state-dir")]
AllowedTypes = Annotated[
    list[str] | None,
    typer.Option("--allowed-types", help="rulesfile,plugin,asset (repeat or comma list)"),
]
NoVerify = Annotated[
    bool, typer.Option("--no-verify", help="Skip signature verification (warned).")
]
RequireSignature = Annotated[
    bool, typer.Option("--require-signature", help="Refuse artifacts no policy covers.")
]
EngineVersions = Annotated[
    str | None,
    typer.Option(
        "--engine-versions",
        help="Falco /versions URL or JSON file of the target engine (default: falconet's own).",
    ),
]
Strength = Annotated[
    str | None,
    typer.Option(
        "--strength",
        help="With --compliance: minimum evidence of a rule -> control link, "
        "explicit|technique|tactic (default technique).",
    ),
]
RingbufSize = Annotated[
    str | None,
    typer.Option(
        "--ringbuf-size",
        help="Live capture ring buffer: bytes or MiB, a power of two "
        "(default: falconet.yaml engine.ringbuf_size, 32MiB).",
    ),
]
