"""`artifact sign` and `artifact verify` on what a user types: an index name or a full reference
is resolved to its root digest in its store, then signed or verified (registry/signatures.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from feeds.errors import ConfigError
from feeds.resolve import UserRef, parse_user_ref
from feeds.verify_policy import config_verify, resolve_policy
from registry.keys import PrivateKey
from registry.reference import Reference, parse_reference
from registry.signatures import (
    Policy,
    SignResult,
    VerificationResult,
    sign_artifact,
    verify_artifact,
)
from registry.store import ArtifactStore

if TYPE_CHECKING:
    from feeds.context import FeedsContext


def sign_reference(
    context: FeedsContext,
    ref_text: str,
    private_key: PrivateKey,
    annotations: Mapping[str, str] | None = None,
) -> SignResult:
    """Sign the digest `ref_text` resolves to now (the index digest for a multi-platform
    plugin)."""
    reference, store = _open(context, _user_ref(context, ref_text))
    root_digest = store.resolve(reference.target or "latest").digest
    return sign_artifact(store, reference, root_digest, private_key, annotations)


def verify_reference(
    context: FeedsContext,
    ref_text: str,
    key_ref: str | None = None,
    keyless: Mapping[str, str] | None = None,
) -> VerificationResult:
    """Verify what `ref_text` resolves to with `key_ref`, a keyless signer (`keyless`: the
    certificate-* policy fields), or else the configured policy; a signature is required
    either way (this is an explicit check)."""
    user_ref = _user_ref(context, ref_text)
    if key_ref is not None:
        policy = Policy(key_ref=key_ref, require=True, origin="--key", key_source="flag")
    elif keyless:
        settings = config_verify(context.config)
        policy = Policy(
            require=True, origin="--certificate-* options", keyless=dict(keyless),
            trusted_root=settings.get("trusted_root"),
        )  # fmt: skip
    else:
        signature = user_ref.entry.signature if user_ref.entry else None
        policy = resolve_policy(
            user_ref.full,
            signature,
            config_verify(context.config),
            require_signature=True,
            index_name=user_ref.entry.index if user_ref.entry else "",
        )
    reference, store = _open(context, user_ref)
    root_digest = store.resolve(reference.target or "latest").digest
    return verify_artifact(store, reference, root_digest, policy)


def _user_ref(context: FeedsContext, ref_text: str) -> UserRef:
    user_ref = parse_user_ref(ref_text, context.indexes)
    if user_ref.version_range:
        raise ConfigError(
            f"{ref_text!r} names a version range; signatures apply to one digest",
            "give a tag or a digest (name:tag, name@sha256:...)",
        )
    return user_ref


def _open(context: FeedsContext, user_ref: UserRef) -> tuple[Reference, ArtifactStore]:
    reference = parse_reference(user_ref.full)
    return reference, context.open_store(reference)
