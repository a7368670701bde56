"""`falconet key generate`: a cosign-format ECDSA P-256 key pair."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["key"].command("generate")(generate)


def generate(
    output_prefix: Annotated[
        Path, typer.Option("--output-prefix", help="Write PREFIX.key and PREFIX.pub.")
    ] = Path("cosign"),
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--passphrase-file",
            help="Read the passphrase from this file (else FALCONET_KEY_PASSWORD, else a prompt).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing pair.")] = False,
    output: Annotated[str, typer.Option("-o", "--output", help="text|json")] = "text",
) -> None:
    """Generate a key pair in cosign's format (cosign and skopeo read it; so does falconet)."""
    from cli.passphrase import read_passphrase
    from cli.render import emit_json, emit_text
    from registry.keys import write_key_pair

    passphrase = read_passphrase(passphrase_file, confirm=True)
    files = write_key_pair(output_prefix, passphrase, overwrite=force)
    if output == "json":
        emit_json(
            {
                "private_key": str(files.private_path),
                "public_key": str(files.public_path),
                "fingerprint": files.fingerprint,
            }
        )
        return
    emit_text(
        f"Private key written to {files.private_path}\n"
        f"Public key written to {files.public_path}\n"
        f"Fingerprint: {files.fingerprint}"
    )
