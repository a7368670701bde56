"""Signing and verifying artifacts in a store, in cosign's legacy layout (tag `sha256-<hex>.sig`
in the artifact's own repository).

Verification is offline by design: apart from the store holding the artifact it contacts nothing
(no TUF, no Rekor), unlike falcoctl, which fetches Sigstore's trusted root even for key-based
checks (falcosecurity/falcoctl#382). Keyless signatures (Fulcio certificates) are verified
against a pinned trusted root (registry/keyless). It verifies the digest it is given, which
callers then download, so what is verified is what gets installed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from registry.digests import digest_bytes
from registry.errors import DigestMismatchError, NotFoundError, VerificationError
from registry.tags import signature_tag

# Key handling and the simple-signing payload import cryptography (~50 ms): they are imported
# where a key is actually used, so installs without a key policy never load them.
if TYPE_CHECKING:
    from registry import simplesigning
    from registry.keys import PrivateKey, PublicKey
    from registry.reference import Reference
    from registry.store import ArtifactStore
    from registry.transfer import TransferLimits

log = logging.getLogger(__name__)

VERIFIED = "verified"
UNVERIFIED = "unverified"  # no policy applies
UNSIGNED = "unsigned"  # a key applies, the signature is optional, and there is none
SKIPPED = "skipped"  # --no-verify


@dataclass(frozen=True)
class Policy:
    """Which key must have signed an artifact, and whether a signature is mandatory.

    `key_ref` is a path, an http(s) URL to a PEM, or inline PEM. With a key, a `.sig` that exists
    must verify whatever `require` says; `require` decides what a missing `.sig` means. Without
    a key, `require` refuses the artifact (nothing can be verified)."""

    key_ref: str | None = None
    require: bool = False
    skip: bool = False
    origin: str = "no policy"
    # Who chose the key: "config" (the user's verify.policies), "flag" (--key), "index" (an
    # index entry's signature block: trusted because the index was). Reported in verdicts.
    key_source: str = ""
    # Who published the key when key_source is "index": "index <name>".
    publisher: str = ""
    # Keyless (Fulcio certificate) policy: falcoctl's index keys (certificate-identity(-regexp),
    # certificate-oidc-issuer(-regexp), certificate-github-workflow-*), verified offline against
    # the trusted root at `trusted_root` (None: the embedded production root).
    keyless: dict[str, Any] | None = None
    trusted_root: str | None = None


@dataclass(frozen=True)
class LayerCheck:
    index: int
    digest: str
    ok: bool
    reason: str


@dataclass(frozen=True)
class VerificationResult:
    verdict: str
    reference: str
    digest: str
    policy_origin: str
    reason: str = ""
    key_fingerprint: str | None = None
    signature_tag: str | None = None
    layer: int | None = None
    identity: str | None = None
    payload_digest: str | None = None
    optional: dict[str, Any] | None = None
    layers: tuple[LayerCheck, ...] = field(default_factory=tuple)
    # A keyless verdict: signer identities, OIDC issuer, GitHub claims, Rekor log index and
    # integrated time, layout (legacy .sig or OCI-referrer bundle).
    keyless: dict[str, Any] | None = None
    key_source: str = ""
    publisher: str = ""

    @property
    def verified(self) -> bool:
        return self.verdict == VERIFIED

    @property
    def statement(self) -> str:
        """One sentence for people: whose key verified it, or why it is not verified."""
        if self.verdict != VERIFIED:
            return f"{self.verdict}: {self.reason}" if self.reason else self.verdict
        if self.keyless is not None:
            signer = ", ".join(self.keyless.get("identities") or [])
            who = (
                f"the signer {self.publisher or 'an index entry'} names"
                if self.key_source == "index"
                else f"the signer you configured ({self.policy_origin})"
            )
            return f"verified keyless: signed by {signer}, {who}, against the pinned Sigstore root"
        if self.key_source == "index":
            return f"verified with the key published by {self.publisher or 'an index entry'}"
        return f"verified with the key you configured ({self.policy_origin})"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["layers"] = [asdict(check) for check in self.layers]
        data["statement"] = self.statement
        return data


@dataclass(frozen=True)
class SignResult:
    reference: str
    digest: str
    signature_tag: str
    manifest_digest: str
    key_fingerprint: str
    layer: int
    layers: int
    payload_digest: str
    already_signed: bool


def sign_artifact(
    store: ArtifactStore,
    reference: Reference,
    root_digest: str,
    private_key: PrivateKey,
    annotations: Mapping[str, str] | None = None,
) -> SignResult:
    """Add a signature layer for `root_digest` to its `.sig` manifest, keeping existing layers.

    Signing the same digest again with the same key and annotations changes nothing (cosign's
    duplicate detection), so re-running a release job does not grow the manifest."""
    from registry import simplesigning
    from registry.keys import fingerprint
    from registry.store import Descriptor

    tag = signature_tag(root_digest)
    public_key = private_key.public_key()
    key_id = fingerprint(public_key)
    layers = _existing_layers(store, tag)
    for index, layer in enumerate(layers):
        if _same_signature(store, layer, public_key, root_digest, annotations):
            log.debug(
                "%s@%s is already signed by %s (layer %d)", reference, root_digest, key_id, index
            )
            return SignResult(
                str(reference), root_digest, tag, _tag_digest(store, tag), key_id, index,
                len(layers), layer["digest"], already_signed=True,
            )  # fmt: skip
    payload = simplesigning.build_payload(_identity(reference), root_digest, annotations)
    signature = simplesigning.sign_payload(private_key, payload)
    new_layer = simplesigning.signature_layer(payload, signature)
    layers = [*layers, new_layer]
    config = simplesigning.signature_config(layers)
    store.push_blob(payload, Descriptor.from_json(new_layer))
    store.push_blob(
        config,
        Descriptor(simplesigning.OCI_CONFIG_MEDIA_TYPE, digest_bytes(config), len(config)),
    )
    manifest = simplesigning.signature_manifest(config, layers)
    pushed = store.push_manifest(manifest, simplesigning.OCI_MANIFEST_MEDIA_TYPE, tag=tag)
    log.debug("signed %s@%s with %s as layer %d of %s", reference, root_digest, key_id,
             len(layers) - 1, tag)  # fmt: skip
    return SignResult(
        str(reference), root_digest, tag, pushed.digest, key_id, len(layers) - 1, len(layers),
        new_layer["digest"], already_signed=False,
    )  # fmt: skip


def verify_artifact(
    store: ArtifactStore, reference: Reference, root_digest: str, policy: Policy
) -> VerificationResult:
    """Verify `root_digest` (the manifest, or the image index of a multi-platform plugin) under
    `policy`. Raises VerificationError when the policy is not satisfied; otherwise returns the
    verdict (verified, unverified, unsigned or skipped) for the caller to report."""
    base = {
        "reference": str(reference),
        "digest": root_digest,
        "policy_origin": policy.origin,
        "key_source": policy.key_source,
        "publisher": policy.publisher,
    }
    if policy.skip:
        log.warning("signature verification of %s@%s skipped (--no-verify)", reference, root_digest)
        return VerificationResult(SKIPPED, reason="verification disabled (--no-verify)", **base)
    if policy.key_ref is None and policy.keyless:
        return _verify_keyless(store, reference, root_digest, policy, base)
    if policy.key_ref is None:
        return _without_key(reference, root_digest, policy, base)
    from registry import simplesigning
    from registry.keys import fingerprint, read_public_key
    from registry.simplesigning import PayloadError

    public_key = read_public_key(policy.key_ref, _transfer_limits(store))
    key_id = fingerprint(public_key)
    tag = signature_tag(root_digest)
    manifest = _fetch_signature_manifest(store, tag)
    if manifest is None:
        return _without_signature(reference, root_digest, policy, tag, key_id, base)
    try:
        layers = simplesigning.manifest_layers(manifest)
    except PayloadError as error:
        raise VerificationError(
            f"{reference}@{root_digest}: {tag}: {error}", _TAMPER_HINT
        ) from error
    checks: list[LayerCheck] = []
    for index, layer in enumerate(layers):
        check, payload = _check_layer(store, index, layer, public_key, root_digest)
        checks.append(check)
        if check.ok and payload is not None:
            return VerificationResult(
                VERIFIED, key_fingerprint=key_id, signature_tag=tag, layer=index,
                identity=payload.docker_reference, payload_digest=payload.manifest_digest,
                optional=payload.optional, layers=tuple(checks), **base,
            )  # fmt: skip
    raise _failure(reference, root_digest, tag, key_id, policy, checks)


_TAMPER_HINT = (
    "the artifact or its signature changed after signing, or another key signed it; "
    "do not install it, and check the key with the publisher"
)


def _verify_keyless(
    store: ArtifactStore,
    reference: Reference,
    root_digest: str,
    policy: Policy,
    base: dict[str, Any],
) -> VerificationResult:
    """Keyless: the legacy `.sig` layers first (no sigstore import needed), then OCI-referrer
    bundles. The first layer or bundle that passes every step verifies the artifact."""
    from pathlib import Path

    from registry.keyless.identity import KeylessPolicy
    from registry.keyless.legacy import KeylessError
    from registry.keyless.trust_root import load_trust_root

    try:
        keyless_policy = KeylessPolicy.from_fields(dict(policy.keyless or {}), policy.origin)
    except ValueError as error:
        raise VerificationError(
            f"{reference}: keyless policy: {error}",
            "a keyless policy needs certificate-identity(-regexp) and "
            "certificate-oidc-issuer(-regexp)",
        ) from error
    trust = load_trust_root(Path(policy.trusted_root) if policy.trusted_root else None)
    tag = signature_tag(root_digest)
    checks: list[LayerCheck] = []
    manifest = _fetch_signature_manifest(store, tag)
    if manifest is not None:
        from registry import simplesigning
        from registry.simplesigning import PayloadError

        try:
            layers = simplesigning.manifest_layers(manifest)
        except PayloadError as error:
            raise VerificationError(
                f"{reference}@{root_digest}: {tag}: {error}", _TAMPER_HINT
            ) from error
        for index, layer in enumerate(layers):
            check, verdict = _check_keyless_layer(
                store, index, layer, root_digest, trust, keyless_policy
            )
            checks.append(check)
            if verdict is not None:
                return _keyless_result(verdict, policy, tag, index, tuple(checks), trust, base)
    from registry.keyless.bundle import find_bundles, verify_bundle

    for number, document in enumerate(find_bundles(store, root_digest)):
        try:
            verdict = verify_bundle(document, trust, keyless_policy, artifact_digest=root_digest)
        except KeylessError as error:
            checks.append(LayerCheck(len(checks), f"bundle {number}", False, str(error)))
            continue
        checks.append(LayerCheck(len(checks), f"bundle {number}", True, VERIFIED))
        return _keyless_result(verdict, policy, None, None, tuple(checks), trust, base)
    if not checks:
        return _without_signature(
            reference, root_digest, policy, tag, f"keyless {keyless_policy.describe()}", base
        )
    details = "; ".join(f"{c.digest if c.digest.startswith('bundle') else f'layer {c.index}'}: "
                        f"{c.reason}" for c in checks)  # fmt: skip
    raise VerificationError(
        f"keyless signature verification failed for {reference}@{root_digest}: {details}",
        f"expected a signature by {keyless_policy.describe()} (policy: {policy.origin}); "
        "do not install it",
    )


def _check_keyless_layer(
    store: ArtifactStore,
    index: int,
    layer: dict[str, Any],
    root_digest: str,
    trust: Any,
    keyless_policy: Any,
) -> tuple[LayerCheck, Any]:
    from registry import simplesigning
    from registry.keyless.legacy import KeylessError, is_keyless_layer, verify_legacy_layer

    digest = str(layer.get("digest", ""))
    annotations = layer.get("annotations") or {}
    if layer.get("mediaType") != simplesigning.SIMPLESIGNING_MEDIA_TYPE:
        return LayerCheck(index, digest, False, "not a simple-signing layer"), None
    if not isinstance(annotations, dict) or not is_keyless_layer(annotations):
        return LayerCheck(index, digest, False, "key-based signature (no certificate)"), None
    payload, why = _fetch_payload(store, layer)
    if payload is None:
        return LayerCheck(index, digest, False, why), None
    try:
        verdict = verify_legacy_layer(annotations, payload, root_digest, trust, keyless_policy)
    except KeylessError as error:
        return LayerCheck(index, digest, False, str(error)), None
    return LayerCheck(index, digest, True, VERIFIED), verdict


def _keyless_result(
    verdict: Any,
    policy: Policy,
    tag: str | None,
    layer: int | None,
    checks: tuple[LayerCheck, ...],
    trust: Any,
    base: dict[str, Any],
) -> VerificationResult:
    report = {**verdict.to_json(), "trusted_root": trust.source}
    return VerificationResult(
        VERIFIED, signature_tag=tag, layer=layer, identity=", ".join(verdict.signer.sans),
        payload_digest=None, layers=checks, keyless=report,
        reason=f"keyless: signed by {', '.join(verdict.signer.sans)} "
        f"(issuer {verdict.signer.issuer}), Rekor log index {verdict.log_index}",
        **base,
    )  # fmt: skip


def _without_key(
    reference: Reference, root_digest: str, policy: Policy, base: dict[str, Any]
) -> VerificationResult:
    reason = "no signature policy applies"
    if policy.require:
        raise VerificationError(
            f"{reference}@{root_digest}: a signature is required but {reason}",
            "add a verify.policies entry with the publisher's public key (falconet.yaml), or "
            "pass --key",
        )
    log.warning("%s@%s is unverified: %s", reference, root_digest, reason)
    return VerificationResult(UNVERIFIED, reason=reason, **base)


def _without_signature(
    reference: Reference,
    root_digest: str,
    policy: Policy,
    tag: str,
    key_id: str,
    base: dict[str, Any],
) -> VerificationResult:
    if policy.require:
        raise VerificationError(
            f"{reference}@{root_digest} is not signed: no {tag} in {reference.locator} "
            f"(policy: {policy.origin})",
            "sign it with `falconet artifact sign`, or install from a source that publishes "
            "signatures",
        )
    log.warning("%s@%s has no signature (%s); allowed by %s", reference, root_digest, tag,
                policy.origin)  # fmt: skip
    return VerificationResult(
        UNSIGNED, reason=f"no {tag}", key_fingerprint=key_id, signature_tag=tag, **base
    )


def _check_layer(
    store: ArtifactStore,
    index: int,
    layer: dict[str, Any],
    public_key: PublicKey,
    root_digest: str,
) -> tuple[LayerCheck, simplesigning.Payload | None]:
    """One signature layer: payload digest, then signature, then what the payload names."""
    from registry import simplesigning
    from registry.simplesigning import PayloadError

    digest = str(layer.get("digest", ""))

    def failed(reason: str) -> tuple[LayerCheck, None]:
        log.debug("signature layer %d (%s): %s", index, digest, reason)
        return LayerCheck(index, digest, False, reason), None

    annotations = layer.get("annotations") or {}
    if layer.get("mediaType") != simplesigning.SIMPLESIGNING_MEDIA_TYPE:
        return failed(f"not a simple-signing layer (media type {layer.get('mediaType')!r})")
    if simplesigning.CERTIFICATE_ANNOTATION in annotations:
        return failed("keyless signature (a Fulcio certificate), not one by this key")
    encoded = annotations.get(simplesigning.SIGNATURE_ANNOTATION)
    if not isinstance(encoded, str) or not encoded:
        return failed("no signature annotation")
    try:
        signature = simplesigning.decode_signature(encoded)
    except PayloadError as error:
        return failed(str(error))
    payload_bytes, why = _fetch_payload(store, layer)
    if payload_bytes is None:
        return failed(why)
    if not simplesigning.signature_matches(public_key, payload_bytes, signature):
        return failed("signature does not match the payload under this key")
    try:
        payload = simplesigning.parse_payload(payload_bytes)
    except PayloadError as error:
        return failed(f"signed payload is malformed: {error}")
    if payload.type != simplesigning.SIGNATURE_TYPE:
        return failed(f"payload type is {payload.type!r}, not a container image signature")
    if payload.manifest_digest != root_digest:
        return failed(f"payload signs {payload.manifest_digest}, not this artifact")
    return LayerCheck(index, digest, True, VERIFIED), payload


def _fetch_payload(store: ArtifactStore, layer: dict[str, Any]) -> tuple[bytes | None, str]:
    from registry import simplesigning
    from registry.store import Descriptor

    try:
        descriptor = Descriptor.from_json(layer)
    except Exception as error:  # from_json raises the registry's base error
        return None, f"malformed layer descriptor ({error})"
    if descriptor.size > simplesigning.MAX_PAYLOAD_SIZE:
        return None, f"payload of {descriptor.size} bytes is too large for a signature"
    try:
        data = store.fetch_blob_bytes(descriptor, simplesigning.MAX_PAYLOAD_SIZE)
    except DigestMismatchError as error:
        return None, f"payload blob does not match its digest ({error})"
    except NotFoundError:
        return None, f"payload blob {descriptor.digest} is missing"
    # Stores check digests already; the check is repeated here because it is the one the
    # signature's meaning rests on, whatever store implementation served the bytes.
    if digest_bytes(data) != descriptor.digest:
        return None, f"payload blob does not match its digest {descriptor.digest}"
    return data, ""


def _failure(
    reference: Reference,
    root_digest: str,
    tag: str,
    key_id: str,
    policy: Policy,
    checks: list[LayerCheck],
) -> VerificationError:
    details = "; ".join(f"layer {c.index}: {c.reason}" for c in checks) or "it has no layers"
    if checks and all(c.reason.startswith("keyless") for c in checks):
        hint = (
            "only keyless (Sigstore) signatures are present: verify them with a keyless policy "
            "(--certificate-identity(-regexp) and --certificate-oidc-issuer, or verify.policies)"
            " instead of a key"
        )
    else:
        hint = _TAMPER_HINT + f" (expected key {key_id}, from {policy.origin})"
    return VerificationError(
        f"signature verification failed for {reference}@{root_digest} ({tag}): {details}", hint
    )


def _fetch_signature_manifest(store: ArtifactStore, tag: str) -> bytes | None:
    try:
        data, _ = store.fetch_manifest(tag)
    except NotFoundError:
        return None
    return data


def _existing_layers(store: ArtifactStore, tag: str) -> list[dict[str, Any]]:
    from registry import simplesigning
    from registry.simplesigning import PayloadError

    manifest = _fetch_signature_manifest(store, tag)
    if manifest is None:
        return []
    try:
        return simplesigning.manifest_layers(manifest)
    except PayloadError as error:
        raise VerificationError(
            f"the existing {tag} is not a signature manifest: {error}",
            "inspect it (`falconet artifact info`); falconet will not overwrite it",
        ) from error


def _same_signature(
    store: ArtifactStore,
    layer: dict[str, Any],
    public_key: PublicKey,
    root_digest: str,
    annotations: Mapping[str, str] | None,
) -> bool:
    check, payload = _check_layer(store, 0, layer, public_key, root_digest)
    return check.ok and payload is not None and (payload.optional or {}) == dict(annotations or {})


def _identity(reference: Reference) -> str:
    """The payload's docker-reference: the repository, as cosign writes it. A layout has no
    registry; its repository name alone still parses as a docker reference for cosign, whereas
    `oci-layout:/path` would not."""
    return reference.repository if reference.is_layout else reference.locator


def _transfer_limits(store: ArtifactStore) -> TransferLimits:
    """The store's transfer limits (a key URL is read under the same rules as the registry)."""
    from registry.transfer import DEFAULT_LIMITS

    options = getattr(store, "options", None)
    return getattr(options, "transfer", None) or DEFAULT_LIMITS


def _tag_digest(store: ArtifactStore, tag: str) -> str:
    return store.resolve(tag).digest
