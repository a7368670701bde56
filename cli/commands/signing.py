"""`falconet artifact sign` and `falconet artifact verify`: cosign-compatible key signatures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.commands.registry import CaFile, Insecure, Output, PlainHttp

if TYPE_CHECKING:
    from feeds.context import FeedsContext


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
    ca_file: CaFile = None,
    insecure_skip_tls_verify: Insecure = False,
    output: Output = "text",
) -> None:
    """Sign an artifact's digest in cosign's layout (tag sha256-<hex>.sig, same repository)."""
    from cli.passphrase import load_signing_key
    from cli.render import emit_json, emit_text
    from feeds.signing import sign_reference

    annotations = _parse_annotations(annotation or [])
    # Opened before the registry is contacted: a wrong passphrase costs no round trip.
    private_key = load_signing_key(key, passphrase_file)
    context = _context(plain_http, ca_file, insecure_skip_tls_verify)
    result = sign_reference(
        context,
        reference,
        private_key,
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
    ca_file: CaFile = None,
    insecure_skip_tls_verify: Insecure = False,
    output: Output = "text",
) -> None:
    """Verify an artifact's cosign signature offline (no TUF, no Rekor)."""
    from cli.render import emit_json, emit_text
    from feeds.signing import verify_reference

    context = _context(plain_http, ca_file, insecure_skip_tls_verify)
    result = verify_reference(context, reference, key)
    if output == "json":
        emit_json(result.to_json())
        return
    emit_text(
        f"Verified OK: {result.reference}@{result.digest}\n"
        f"  verdict:   {result.statement}\n"
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


def _context(plain_http: bool, ca_file: Path | None, insecure: bool) -> FeedsContext:
    """Configuration plus the transport flags (mTLS comes from falconet.yaml `registries`:
    `--key` here is the signing key)."""
    from cli.context import ENV
    from feeds.context import FeedsContext, TransportFlags

    flags = TransportFlags(
        plain_http=plain_http,
        ca_file=str(ca_file) if ca_file else None,
        insecure_skip_tls_verify=insecure,
    )
    return FeedsContext.load(ENV.config_path, transport=flags)
