"""Verify a Sigstore bundle (v0.1-v0.3) offline through sigstore-python, with falconet's
identity policy (anchored RE2 regexps, both issuer OIDs, GitHub claims) and trust root.

cosign v3 stores an image signature as a DSSE envelope around an in-toto Statement whose
subject is the image digest, in an OCI 1.1 referrer manifest (artifactType
`application/vnd.dev.sigstore.bundle.v0.3+json`, one layer: the bundle JSON). `find_bundles`
finds them through the referrers tag schema (`sha256-<hex>` tag -> image index), which is what
cosign writes to registries without the referrers API.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from registry.errors import NotFoundError
from registry.keyless.identity import KeylessPolicy, signer_identity
from registry.keyless.legacy import KeylessError, KeylessVerdict
from registry.keyless.trust_root import TrustRoot

if TYPE_CHECKING:
    from registry.store import ArtifactStore

BUNDLE_ARTIFACT_TYPES = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
)
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
MAX_BUNDLE_BYTES = 1 << 20
MAX_REFERRERS = 64


def find_bundles(store: ArtifactStore, artifact_digest: str) -> list[bytes]:
    """The bundle documents that refer to `artifact_digest`, read with size caps."""
    from registry.store import Descriptor

    algorithm, _, hex_digest = artifact_digest.partition(":")
    try:
        data, _ = store.fetch_manifest(f"{algorithm}-{hex_digest}")
    except NotFoundError:
        return []
    try:
        index = json.loads(data)
        manifests = index.get("manifests") or []
    except (ValueError, AttributeError):
        return []
    bundles = []
    for entry in manifests[:MAX_REFERRERS]:
        if not isinstance(entry, dict) or entry.get("artifactType") not in BUNDLE_ARTIFACT_TYPES:
            continue
        try:
            manifest_bytes, _ = store.fetch_manifest(str(entry.get("digest")))
            manifest = json.loads(manifest_bytes)
            subject = (manifest.get("subject") or {}).get("digest")
            if subject != artifact_digest:
                continue
            layer = Descriptor.from_json(manifest["layers"][0])
            if layer.size > MAX_BUNDLE_BYTES:
                continue
            bundles.append(store.fetch_blob_bytes(layer, MAX_BUNDLE_BYTES))
        except (NotFoundError, ValueError, KeyError, IndexError, TypeError, AttributeError):
            continue
        except Exception as error:  # the registry's base error for a bad referrer
            if error.__class__.__module__.startswith("registry."):
                continue
            raise
    return bundles


class _Policy:
    """sigstore-python's VerificationPolicy protocol over a KeylessPolicy."""

    def __init__(self, policy: KeylessPolicy) -> None:
        self.policy = policy

    def verify(self, cert: Any) -> None:
        from sigstore.errors import VerificationError

        why = self.policy.mismatch(signer_identity(cert))
        if why is not None:
            raise VerificationError(f"signer not accepted: {why}")


def _verifier(trust: TrustRoot) -> Any:
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier
    from sigstore_models.trustroot import v1 as trustroot_v1

    try:
        inner = trustroot_v1.TrustedRoot.from_json(trust.raw)
        return Verifier(trusted_root=TrustedRoot(inner))
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise KeylessError(
            f"trusted root refused by the bundle verifier: {_one_line(error)}"
        ) from error


def verify_bundle(
    bundle_json: bytes,
    trust: TrustRoot,
    policy: KeylessPolicy,
    *,
    artifact_digest: str | None = None,
    artifact: bytes | None = None,
) -> KeylessVerdict:
    """Verify a bundle against an OCI artifact digest (DSSE in-toto subject) or, for a message
    signature, against the artifact's bytes. Raises KeylessError with the failing step."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle

    if len(bundle_json) > MAX_BUNDLE_BYTES:
        raise KeylessError(f"bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        bundle = Bundle.from_json(bundle_json)
    except (SigstoreError, ValueError) as error:
        raise KeylessError(f"malformed Sigstore bundle: {_one_line(error)}") from error
    verifier = _verifier(trust)
    predicate = None
    try:
        if bundle._dsse_envelope is not None:  # the public API exposes no accessor
            payload_type, payload = verifier.verify_dsse(bundle, _Policy(policy))
            predicate = _check_statement(payload_type, payload, artifact_digest, artifact)
        else:
            if artifact is None:
                raise KeylessError("a message-signature bundle needs the signed bytes")
            verifier.verify_artifact(artifact, bundle, _Policy(policy))
    except SigstoreError as error:
        raise KeylessError(_one_line(error)) from error
    entry = bundle.log_entry._inner
    signer = signer_identity(bundle.signing_certificate)
    key_id = entry.log_id.key_id if entry.log_id else b""
    log_id = (key_id if isinstance(key_id, bytes) else base64.b64decode(key_id)).hex()
    tlog = trust.tlog(bytes.fromhex(log_id)) if log_id else None
    verdict = KeylessVerdict(
        "bundle", signer, int(entry.log_index), int(entry.integrated_time or 0), log_id,
        tlog.base_url if tlog else "", "",
    )  # fmt: skip
    return verdict if predicate is None else _with_predicate(verdict, predicate)


def _with_predicate(verdict: KeylessVerdict, predicate: str) -> KeylessVerdict:
    # The predicate type is reported in the layout field ("bundle <predicate>") so a reader sees
    # whether a signature or an attestation was verified.
    layout = "bundle" if predicate == COSIGN_SIGN_PREDICATE else f"bundle ({predicate})"
    return KeylessVerdict(layout, verdict.signer, verdict.log_index, verdict.integrated_time,
                          verdict.log_id, verdict.log_url, verdict.ca)  # fmt: skip


def _check_statement(
    payload_type: str, payload: bytes, artifact_digest: str | None, artifact: bytes | None
) -> str:
    import hashlib

    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise KeylessError(f"DSSE payload type {payload_type!r} is not an in-toto statement")
    try:
        statement = json.loads(payload)
        subjects = statement["subject"]
        predicate = str(statement.get("predicateType", ""))
    except (ValueError, KeyError, TypeError) as error:
        raise KeylessError("DSSE payload is not an in-toto statement") from error
    wanted = None
    if artifact_digest is not None:
        wanted = artifact_digest.partition(":")[2]
    elif artifact is not None:
        wanted = hashlib.sha256(artifact).hexdigest()
    if wanted is None:
        raise KeylessError("no artifact digest to compare the statement's subject with")
    digests = [
        (subject.get("digest") or {}).get("sha256")
        for subject in subjects
        if isinstance(subject, dict)
    ]
    if wanted not in digests:
        raise KeylessError(f"the signed statement's subject is not this artifact (sha256:{wanted})")
    return predicate


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300] or error.__class__.__name__
