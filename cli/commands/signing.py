"""`falconet artifact sign` and `falconet artifact verify`: cosign-compatible key signatures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

Output = Annotated[str, typer.Option("-o", "--output", help="text|json")]
PlainHttp = Annotated[
    bool, typer.Option("--plain-http", help="Talk plain HTTP to the registry (no TLS).")
]


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["artifact"].command("sign")(sign)
    groups["artifact"].command("verify")(verify)


def sign(
    reference: Annotated[str, typer.Argument(help="Index name or host/repo:tag to sign.")],
    key: Annotated[Path, typer.Option("--key", help="Private key (cosign format or PKCS#8).")],
    annotation: Annotated[
        list[str] | None,
        typer.Option("--annotation", "-a", help="k=v stored in the signed payload (repeatable)."),
    ] = None,
    passphrase_file: Annotated[
        Path | None, typer.Option("--passphrase-file", help="Passphrase of an encrypted key.")
    ] = None,
    plain_http: PlainHttp = False,
    output: Output = "text",
) -> None:
    """Sign an artifact's digest in cosign's layout (tag sha256-<hex>.sig, same repository)."""
    from cli.context import ENV
    from cli.passphrase import read_passphrase
    from cli.render import emit_json, emit_text
    from feeds.context import FeedsContext, TransportFlags
    from feeds.signing import sign_reference

    annotations = _parse_annotations(annotation or [])
    context = FeedsContext.load(ENV.config_path, transport=TransportFlags(plain_http=plain_http))
    result = sign_reference(
        context,
        reference,
        key,
        lambda: read_passphrase(passphrase_file, confirm=False),
        annotations,
    )
    if output == "json":
        emit_json(vars(result))
        return
    state = "already signed by this key" if result.already_signed else "signed"
    emit_text(
        f"{result.reference}@{result.digest} {state}\n"
        f"  key:       {result.key_fingerprint}\n"
        f"  signature: {result.signature_tag} (layer {result.layer} of {result.layers})"
    )


def verify(
    reference: Annotated[str, typer.Argument(help="Index name or host/repo:tag to verify.")],
    key: Annotated[
        str | None,
        typer.Option(
            "--key", help="Public key: path, https URL or PEM. Default: the configured policy."
        ),
    ] = None,
    plain_http: PlainHttp = False,
    output: Output = "text",
) -> None:
    """Verify an artifact's cosign signature offline (no TUF, no Rekor)."""
    from cli.context import ENV
    from cli.render import emit_json, emit_text
    from feeds.context import FeedsContext, TransportFlags
    from feeds.signing import verify_reference

    context = FeedsContext.load(ENV.config_path, transport=TransportFlags(plain_http=plain_http))
    result = verify_reference(context, reference, key)
    if output == "json":
        emit_json(result.to_json())
        return
    emit_text(
        f"Verified OK: {result.reference}@{result.digest}\n"
        f"  key:       {result.key_fingerprint} ({result.policy_origin})\n"
        f"  signature: {result.signature_tag} layer {result.layer}\n"
        f"  payload:   {result.identity}@{result.payload_digest}"
    )


def _parse_annotations(items: list[str]) -> dict[str, str]:
    annotations: dict[str, str] = {}
    for item in items:
        name, separator, value = item.partition("=")
        if not separator or not name:
            raise typer.BadParameter(f"{item!r} is not k=v", param_hint="--annotation")
        annotations[name] = value
    return annotations
