"""`registry pull` with the signature policy applied: the root digest is verified before any
layer is fetched, and exactly that digest is then pulled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feeds.context import FeedsContext
    from registry.artifacts import PullResult
    from registry.store import ArtifactStore


def verified_pull(
    context: FeedsContext,
    store: ArtifactStore,
    dest_dir: Path,
    platform: str | None = None,
    no_verify: bool = False,
    require_signature: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[PullResult, dict[str, Any]]:
    from feeds.verify_policy import config_verify, resolve_policy
    from registry.artifacts import DEFAULT_TAG, pull_artifact
    from registry.signatures import verify_artifact

    _, root = store.fetch_manifest(store.reference.target or DEFAULT_TAG)
    policy = resolve_policy(
        str(store.reference),
        None,
        config_verify(context.config),
        no_verify=no_verify or bool(context.config["artifact.no_verify"]),
        require_signature=require_signature,
    )
    verdict = verify_artifact(store, store.reference, root.digest, policy)
    result = pull_artifact(store, dest_dir, root.digest, platform, progress)
    return result, {
        "verdict": verdict.verdict,
        "policy": verdict.policy_origin,
        "key_fingerprint": verdict.key_fingerprint,
        "statement": verdict.statement,
    }
