"""`falconet registry push|pull|login|logout|auth`: falcoctl's registry commands, plus TLS flags.

Full references only (`host[:port]/repo[:tag]` or `oci-layout:DIR[:tag]`); index names are
for `artifact` commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.options import NoVerify, Output, RequireSignature

if TYPE_CHECKING:
    from registry.store import ArtifactStore

PlainHttp = Annotated[
    bool, typer.Option("--plain-http", help="Talk HTTP, not HTTPS, to the registry.")
]
CaFile = Annotated[
    Path | None, typer.Option("--ca-file", help="PEM bundle of CAs to trust for the registry.")
]
# --client-cert/--client-key (falconet.yaml's client_cert/client_key): `--key` is the signing
# key everywhere (artifact sign/verify), so the TLS client key has its own name.
CertFile = Annotated[
    Path | None, typer.Option("--client-cert", help="Client certificate (PEM) for mTLS.")
]
KeyFile = Annotated[Path | None, typer.Option("--client-key", help="Client key (PEM) for mTLS.")]
Insecure = Annotated[
    bool,
    typer.Option("--insecure-skip-tls-verify", help="Do not verify the registry's certificate."),
]


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = groups["registry"]
    group.command("push")(push)
    group.command("pull")(pull)
    group.command("login")(login)
    group.command("logout")(logout)
    auth = typer.Typer(no_args_is_help=True, help="Store registry credentials (falcoctl spelling).")
    auth.command("basic", help="falcoctl's `registry auth basic`: same as `registry login`.")(login)
    auth.command("oauth")(auth_oauth)
    group.add_typer(auth, name="auth")


def _options(
    registry: str,
    plain_http: bool = False,
    ca_file: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    insecure: bool = False,
) -> Any:
    """ClientOptions for one registry: flags > per-registry configuration > defaults."""
    from cli.context import ENV
    from feeds.context import FeedsContext, TransportFlags

    flags = TransportFlags(
        plain_http=plain_http,
        ca_file=str(ca_file) if ca_file else None,
        client_cert=str(cert) if cert else None,
        client_key=str(key) if key else None,
        insecure_skip_tls_verify=insecure,
    )
    return FeedsContext.load(ENV.config_path, transport=flags).client_options(registry)


def _store(reference: str, **transport: Any) -> ArtifactStore:
    from registry.reference import parse_reference
    from registry.store import open_store

    ref = parse_reference(reference)
    return open_store(ref, _options(ref.registry, **transport))


def _read_password(password: str | None, password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.read().rstrip("\r\n")
    if password is not None:
        return password
    return str(typer.prompt("Password", hide_input=True))


def push(
    reference: Annotated[
        str, typer.Argument(help="host[:port]/repo[:tag] or oci-layout:DIR[:tag]")
    ],
    files: Annotated[list[Path], typer.Argument(help="Files to push (one per platform).")],
    artifact_type: Annotated[str, typer.Option("--type", help="rulesfile|plugin|asset")],
    version: Annotated[str, typer.Option("--version", help="Artifact version (strict semver).")],
    platform: Annotated[
        list[str] | None, typer.Option("--platform", help="os/arch of each file (plugins).")
    ] = None,
    depends_on: Annotated[
        list[str] | None,
        typer.Option("-d", "--depends-on", help="name:version[|alt:version...] (repeatable)."),
    ] = None,
    requires: Annotated[
        # Long form only: `-r` is the rules file everywhere (run, as in Falco).
        list[str] | None, typer.Option("--requires", help="name:version (repeatable).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("-t", "--tag", help="Extra tag.")] = None,
    add_floating_tags: Annotated[
        bool, typer.Option("--add-floating-tags", help="Also tag X.Y.Z, X and X.Y.")
    ] = False,
    annotation_source: Annotated[
        str | None, typer.Option("--annotation-source", help="org.opencontainers.image.source")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Artifact name (default: last repo element).")
    ] = None,
    annotation: Annotated[
        list[str] | None,
        typer.Option(
            "--annotation",
            help="Manifest annotation KEY=VALUE (repeatable); `created=...` sets "
            "org.opencontainers.image.created (none by default: reproducible digests).",
        ),
    ] = None,
    plain_http: PlainHttp = False,
    ca_file: CaFile = None,
    cert: CertFile = None,
    key: KeyFile = None,
    insecure_skip_tls_verify: Insecure = False,
    sign_key: Annotated[
        Path | None,
        typer.Option("--sign-key", help="Also sign the pushed digest (cosign key, see `key`)."),
    ] = None,
    output: Output = "text",
) -> None:
    """Push a rulesfile, plugin or asset in falcoctl's format."""
    from cli.progress import transfer_progress
    from cli.render import emit_json, emit_text
    from feeds.publish import compliance_annotations
    from registry.artifacts import (
        PushSpec,
        parse_annotations,
        parse_dependency,
        parse_requirement,
        push_artifact,
    )

    spec = PushSpec(
        artifact_type=artifact_type,
        files=files,
        version=version,
        name=name,
        platforms=platform or (),
        dependencies=[parse_dependency(d) for d in depends_on] if depends_on else None,
        requirements=[parse_requirement(r) for r in requires] if requires else None,
        tags=tag or (),
        add_floating_tags=add_floating_tags,
        annotation_source=annotation_source,
        annotations={
            **compliance_annotations(artifact_type, files),
            **parse_annotations(annotation or ()),
        },
    )
    store = _store(
        reference,
        plain_http=plain_http,
        ca_file=ca_file,
        cert=cert,
        key=key,
        insecure=insecure_skip_tls_verify,
    )
    # Opened before pushing: a wrong passphrase pushes nothing.
    signing_key = _signing_key(sign_key)
    with transfer_progress() as progress:
        result = push_artifact(store, spec, progress)
    signed = _sign_pushed(store, result.digest, signing_key)
    if output == "json":
        emit_json({**result.to_json(), **({"signature": vars(signed)} if signed else {})})
        return
    lines = [
        f"pushed {result.reference}",
        f"digest: {result.digest}",
        f"tags: {', '.join(result.tags)}",
    ]
    for layer in result.layers:
        where = f" [{layer.platform}]" if layer.platform else ""
        lines.append(f"layer: {layer.title}{where} {layer.digest} ({layer.size} bytes)")
    if signed:
        lines.append(f"signed: {signed.signature_tag} (key {signed.key_fingerprint})")
    emit_text("\n".join(lines))


def _signing_key(path: Path | None) -> Any:
    if path is None:
        return None
    from cli.passphrase import load_signing_key

    return load_signing_key(path)


def _sign_pushed(store: ArtifactStore, digest: str, private_key: Any) -> Any:
    """Sign the root digest just pushed (the image index for a multi-platform plugin)."""
    if private_key is None:
        return None
    from registry.signatures import sign_artifact

    return sign_artifact(store, store.reference, digest, private_key)


def pull(
    reference: Annotated[str, typer.Argument(help="host[:port]/repo[:tag|@digest] or oci-layout:")],
    dest_dir: Annotated[
        # Long form only: `-o` is the output format everywhere (falcoctl's pull has -o here).
        Path, typer.Option("--dest-dir", help="Where to write the layer tarball(s).")
    ] = Path("."),
    platform: Annotated[
        str | None, typer.Option("--platform", help="os/arch for plugins (default: this host).")
    ] = None,
    plain_http: PlainHttp = False,
    ca_file: CaFile = None,
    cert: CertFile = None,
    key: KeyFile = None,
    insecure_skip_tls_verify: Insecure = False,
    no_verify: NoVerify = False,
    require_signature: RequireSignature = False,
    output_format: Output = "text",
) -> None:
    """Pull an artifact's layer tarball(s), named by their title (no extraction).

    The signature policies of falconet.yaml apply: the digest is verified before any layer is
    fetched."""
    from cli.context import ENV
    from cli.progress import transfer_progress
    from cli.render import emit_json, emit_text
    from feeds.context import FeedsContext
    from feeds.pull import verified_pull

    store = _store(
        reference,
        plain_http=plain_http,
        ca_file=ca_file,
        cert=cert,
        key=key,
        insecure=insecure_skip_tls_verify,
    )
    context = FeedsContext.load(ENV.config_path)
    with transfer_progress() as progress:
        result, verification = verified_pull(
            context, store, dest_dir, platform, no_verify, require_signature, progress
        )
    if output_format == "json":
        emit_json({**result.to_json(), "verification": verification})
        return
    lines = [
        f"pulled {result.reference} ({result.artifact_type} {result.config.name} "
        f"{result.config.version})",
        f"digest: {result.digest}",
        f"signature: {verification['verdict']} ({verification['policy']})",
    ]
    lines += [f"wrote {path}" for path in result.files]
    emit_text("\n".join(lines))


def login(
    host: Annotated[str, typer.Argument(help="Registry host[:port].")],
    username: Annotated[str | None, typer.Option("-u", "--username")] = None,
    password: Annotated[str | None, typer.Option("-p", "--password")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    plain_http: PlainHttp = False,
    ca_file: CaFile = None,
    insecure_skip_tls_verify: Insecure = False,
) -> None:
    """Check credentials against the registry, then store them (docker credential store)."""
    from cli.render import emit_text
    from registry.login import check_host
    from registry.login import login as check_and_store

    registry = check_host(host)
    if password_stdin and not username:
        raise typer.BadParameter("--password-stdin needs --username", param_hint="-u")
    user = username or str(typer.prompt("Username"))
    secret = _read_password(password, password_stdin)
    options = _options(
        registry, plain_http=plain_http, ca_file=ca_file, insecure=insecure_skip_tls_verify
    )
    result = check_and_store(registry, user, secret, options)
    emit_text(
        f"login succeeded for {result.username}@{result.registry} (stored in {result.stored_in})"
    )


def logout(host: Annotated[str, typer.Argument(help="Registry host[:port].")]) -> None:
    """Remove stored credentials for a registry."""
    from cli.render import emit_text
    from registry.login import check_host
    from registry.login import logout as erase

    registry = check_host(host)
    if erase(registry, _options(registry)):
        emit_text(f"removed credentials for {registry}")
    else:
        emit_text(f"no stored credentials for {registry}")


def auth_oauth(
    host: Annotated[str, typer.Argument(help="Registry host[:port].")],
    token_url: Annotated[str, typer.Option("--token-url", help="OAuth2 token endpoint.")],
    client_id: Annotated[str, typer.Option("--client-id")],
    client_secret: Annotated[str, typer.Option("--client-secret")],
    scopes: Annotated[
        str, typer.Option("--scopes", help="Comma-separated scopes to request.")
    ] = "",
    ca_file: CaFile = None,
    insecure_skip_tls_verify: Insecure = False,
) -> None:
    """Store OAuth2 client credentials for a registry after fetching a token with them."""
    from cli.render import emit_text
    from registry.login import check_host, login_oauth
    from registry.oauth import OAuthClient

    registry = check_host(host)
    options = _options(registry, ca_file=ca_file, insecure=insecure_skip_tls_verify)
    assert options.oauth_credentials_file is not None
    client = OAuthClient(
        client_id=client_id,
        client_secret=client_secret,
        token_url=token_url,
        scopes=tuple(s.strip() for s in scopes.split(",") if s.strip()),
    )
    where = login_oauth(registry, client, options.oauth_credentials_file, options)
    emit_text(f"client credentials for {registry} validated and stored in {where}")
