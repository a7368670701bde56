"""`falconet artifact sign` and `falconet artifact verify`: cosign-compatible key signatures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.commands.registry import CaFile, Insecure, Output, PlainHttp

if TYPE_CHECKING:
    from feeds.context import FeedsContext
    from registry.signatures import VerificationResult


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
    certificate_identity: Annotated[
        str | None,
        typer.Option("--certificate-identity", help="Keyless: the signer's exact SAN."),
    ] = None,
    certificate_identity_regexp: Annotated[
        str | None,
        typer.Option(
            "--certificate-identity-regexp", help="Keyless: RE2 regexp the SAN must match."
        ),
    ] = None,
    certificate_oidc_issuer: Annotated[
        str | None,
        typer.Option("--certificate-oidc-issuer", help="Keyless: the exact OIDC issuer."),
    ] = None,
    certificate_oidc_issuer_regexp: Annotated[
        str | None,
        typer.Option("--certificate-oidc-issuer-regexp", help="Keyless: issuer RE2 regexp."),
    ] = None,
    plain_http: PlainHttp = False,
    ca_file: CaFile = None,
    insecure_skip_tls_verify: Insecure = False,
    output: Output = "text",
) -> None:
    """Verify an artifact's cosign signature offline: a key, or a keyless (Sigstore) signer
    checked against the pinned trusted root (no TUF, no Rekor, no network)."""
    from cli.render import emit_json, emit_text
    from feeds.signing import verify_reference

    keyless = {
        name: value
        for name, value in (
            ("certificate-identity", certificate_identity),
            ("certificate-identity-regexp", certificate_identity_regexp),
            ("certificate-oidc-issuer", certificate_oidc_issuer),
            ("certificate-oidc-issuer-regexp", certificate_oidc_issuer_regexp),
        )
        if value
    }
    if keyless and key:
        raise typer.BadParameter("give either --key or --certificate-* options", param_hint="--key")
    context = _context(plain_http, ca_file, insecure_skip_tls_verify)
    result = verify_reference(context, reference, key, keyless or None)
    if output == "json":
        emit_json(result.to_json())
        return
    if result.keyless:
        emit_text(_keyless_text(result))
        return
    emit_text(
        f"Verified OK: {result.reference}@{result.digest}\n"
        f"  verdict:   {result.statement}\n"
        f"  key:       {result.key_fingerprint} ({result.policy_origin})\n"
        f"  signature: {result.signature_tag} layer {result.layer}\n"
        f"  payload:   {result.identity}@{result.payload_digest}"
    )


def _keyless_text(result: VerificationResult) -> str:
    report = result.keyless or {}
    where = result.signature_tag if result.signature_tag else "OCI referrer bundle"
    lines = [
        f"Verified OK: {result.reference}@{result.digest} (keyless, {result.policy_origin})",
        f"  signer:    {', '.join(report.get('identities') or [])}",
        f"  issuer:    {report.get('issuer')}",
        f"  rekor:     log index {report.get('log_index')} at {report.get('integrated_time_utc')}",
        f"  signature: {where} ({report.get('layout')})",
        f"  trust:     {report.get('trusted_root')}",
    ]
    return "\n".join(lines)


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
