"""Helpers of the follow tests: publish rules artifact versions to a real registry."""

from __future__ import annotations

from pathlib import Path

from registry.artifacts import PushSpec, Requirement, push_artifact
from registry.options import ClientOptions
from registry.reference import parse_reference
from registry.store import open_store
from registry.tarball import targz_bytes
from tests.support.registry_server import RegistryServer

REPO = "app-rules"


def rule_yaml(name: str, condition: str = "evt.type = open") -> str:
    return (
        f"- rule: {name}\n"
        f"  desc: {name}\n"
        f"  condition: {condition}\n"
        f'  output: "{name} %proc.name"\n'
        f"  priority: WARNING\n"
    )


def publish(
    server: RegistryServer,
    tmp: Path,
    version: str,
    files: dict[str, str],
    repo: str = REPO,
    sign_with: object | None = None,
    engine_semver: str | None = None,
) -> str:
    """Push a rules artifact holding `files` as host/repo:latest (and :version)."""
    store = open_store(
        parse_reference(f"{server.host}/{repo}:latest"), ClientOptions(plain_http=True)
    )
    archive = tmp / f"{repo}-{version}.tar.gz"
    archive.write_bytes(targz_bytes({n: c.encode() for n, c in files.items()}))
    requires = (Requirement("engine_version_semver", engine_semver),) if engine_semver else ()
    spec = PushSpec("rulesfile", [archive], version, tags=(version,), requirements=requires)
    digest = push_artifact(store, spec).digest
    if sign_with is not None:
        from registry.signatures import sign_artifact

        sign_artifact(store, store.reference, digest, sign_with)  # type: ignore[arg-type]
    return digest
