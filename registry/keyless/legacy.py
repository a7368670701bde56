"""Verify one keyless layer of cosign's legacy `sha256-<hex>.sig` manifest, offline.

The steps (facts: cosign pkg/cosign/verify.go, sigstore-python verify/verifier.py):
1. the signature over the exact payload bytes, with the leaf certificate's key;
2. the chain leaf -> intermediate -> root, built only from the pinned trusted root's CAs (the
   `chain` annotation is informational), with the code-signing EKU on the leaf;
3. the Rekor signed entry timestamp (SET) with the pinned Rekor key named by its log id;
4. the leaf and its CAs valid at the SET's integrated time (used only once the SET verified);
5. the Rekor entry's body agrees with the layer: payload hash, signature, certificate;
6. the certificate's embedded SCT with the pinned CT log key (RFC 6962 precert entry);
7. the signer (SAN, OIDC issuer, GitHub claims) accepted by the policy;
8. the payload signs this artifact: `docker-manifest-digest` equals its digest. falcoctl's
   legacy path never compares them (keyless.md section 3): a valid signature of another
   artifact would pass there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from registry.errors import VerificationError
from registry.keyless.identity import KeylessPolicy, SignerIdentity, signer_identity
from registry.keyless.trust_root import TrustRoot

CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CODE_SIGNING_EKU = "1.3.6.1.5.5.7.3.3"
SIGNATURE_TYPE = "cosign container image signature"
# Rekor's clock and ours may differ a little; an entry further in the future is forged.
MAX_CLOCK_SKEW_SECONDS = 300
# Annotation values are attacker-supplied: bound them before parsing.
MAX_ANNOTATION_BYTES = 64 * 1024


class KeylessError(VerificationError):
    """A keyless signature does not verify; the message says which step failed."""


@dataclass(frozen=True)
class KeylessVerdict:
    layout: str  # "legacy" (.sig tag) or "bundle" (OCI referrer)
    signer: SignerIdentity
    log_index: int
    integrated_time: int
    log_id: str
    log_url: str
    ca: str

    def to_json(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            **self.signer.to_json(),
            "log_index": self.log_index,
            "integrated_time": self.integrated_time,
            "integrated_time_utc": datetime.fromtimestamp(self.integrated_time, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "log_id": self.log_id,
            "log_url": self.log_url,
            "certificate_authority": self.ca,
        }


def is_keyless_layer(annotations: dict[str, Any]) -> bool:
    return CERTIFICATE_ANNOTATION in annotations


def verify_legacy_layer(
    annotations: dict[str, Any],
    payload: bytes,
    artifact_digest: str,
    trust: TrustRoot,
    policy: KeylessPolicy,
    now: float | None = None,
) -> KeylessVerdict:
    """Run steps 1-8 on one layer; raise KeylessError naming the first failed step."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    leaf_pem = _annotation(annotations, CERTIFICATE_ANNOTATION).encode()
    try:
        leaf = x509.load_pem_x509_certificate(leaf_pem)
    except ValueError as error:
        raise KeylessError(f"certificate annotation is not a PEM certificate ({error})") from error
    try:
        signature = base64.b64decode(_annotation(annotations, SIGNATURE_ANNOTATION), validate=True)
    except binascii.Error as error:
        raise KeylessError("signature annotation is not base64") from error
    # 1. signature
    leaf_key = leaf.public_key()
    try:
        if not isinstance(leaf_key, ec.EllipticCurvePublicKey):
            raise KeylessError(f"unsupported certificate key type {type(leaf_key).__name__}")
        leaf_key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as error:
        raise KeylessError(
            "signature does not match the payload under the certificate's key"
        ) from error
    # 3. SET (before trusting its integrated time)
    bundle = _rekor_bundle(annotations)
    entry = bundle["Payload"]
    integrated_time = _int(entry, "integratedTime")
    log_index = _int(entry, "logIndex")
    if log_index < 0:
        raise KeylessError("Rekor entry has a negative log index")
    log_id_hex = str(entry.get("logID", ""))
    try:
        log_id = bytes.fromhex(log_id_hex)
    except ValueError as error:
        raise KeylessError(f"Rekor logID {log_id_hex!r} is not hex") from error
    tlog = trust.tlog(log_id)
    if tlog is None:
        raise KeylessError(f"Rekor log {log_id_hex} is not in the trusted root")
    moment = datetime.fromtimestamp(integrated_time, UTC)
    if not tlog.window.contains(moment):
        raise KeylessError(
            f"Rekor key of {tlog.base_url} was not valid at {moment:%Y-%m-%dT%H:%M:%SZ}"
        )
    canonical = json.dumps(
        {"body": entry.get("body"), "integratedTime": integrated_time, "logID": log_id_hex,
         "logIndex": log_index},
        sort_keys=True, separators=(",", ":"),
    ).encode()  # fmt: skip
    try:
        set_signature = base64.b64decode(str(bundle.get("SignedEntryTimestamp", "")), validate=True)
        tlog.public_key().verify(set_signature, canonical, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError) as error:
        raise KeylessError("Rekor signed entry timestamp (SET) does not verify") from error
    if integrated_time > (now if now is not None else time.time()) + MAX_CLOCK_SKEW_SECONDS:
        raise KeylessError("Rekor integrated time is in the future")
    # 2 + 4. chain from the pinned CAs, validity at the integrated time
    ca_uri, issuer_certificate = _verify_chain(leaf, trust, moment)
    # 5. body consistency
    _check_body(entry.get("body"), payload, signature, leaf)
    # 6. SCT
    _verify_sct(leaf, issuer_certificate, trust)
    # 7. identity
    signer = signer_identity(leaf)
    why = policy.mismatch(signer)
    if why is not None:
        raise KeylessError(f"signer not accepted: {why}")
    # 8. claims
    _check_claims(payload, artifact_digest)
    return KeylessVerdict("legacy", signer, log_index, integrated_time, log_id_hex,
                          tlog.base_url, ca_uri)  # fmt: skip


def _annotation(annotations: dict[str, Any], key: str) -> str:
    value = annotations.get(key)
    if not isinstance(value, str) or not value:
        raise KeylessError(f"layer has no {key} annotation")
    if len(value) > MAX_ANNOTATION_BYTES:
        raise KeylessError(f"{key} annotation is larger than {MAX_ANNOTATION_BYTES} bytes")
    return value


def _rekor_bundle(annotations: dict[str, Any]) -> dict[str, Any]:
    text = annotations.get(BUNDLE_ANNOTATION)
    if not isinstance(text, str) or not text:
        raise KeylessError(
            "layer has no Rekor bundle: a keyless signature without a transparency-log entry "
            "cannot be verified offline"
        )
    try:
        bundle = json.loads(_annotation(annotations, BUNDLE_ANNOTATION))
    except ValueError as error:
        raise KeylessError(f"Rekor bundle annotation is not JSON ({error})") from error
    if not isinstance(bundle, dict) or not isinstance(bundle.get("Payload"), dict):
        raise KeylessError("Rekor bundle annotation has no Payload")
    return bundle


def _int(entry: dict[str, Any], key: str) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise KeylessError(f"Rekor entry {key} is not an integer")
    return value


def _verify_chain(leaf: Any, trust: TrustRoot, moment: datetime) -> tuple[str, Any]:
    """(CA uri, the leaf's issuing certificate) for the first pinned CA that issued `leaf`."""
    from cryptography import x509

    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as error:
        raise KeylessError("certificate lacks key usage or extended key usage") from error
    if CODE_SIGNING_EKU not in {oid.dotted_string for oid in eku} or not ku.digital_signature:
        raise KeylessError("certificate is not a code-signing certificate")
    if not (leaf.not_valid_before_utc <= moment <= leaf.not_valid_after_utc):
        raise KeylessError(
            f"certificate ({leaf.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} to "
            f"{leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}) was not valid at the Rekor "
            f"integrated time {moment:%Y-%m-%dT%H:%M:%SZ}"
        )
    reasons = []
    for authority in trust.certificate_authorities:
        # cosign checks the chain at the certificate's issuance; the CA's window must hold then.
        if not authority.window.contains(leaf.not_valid_before_utc):
            continue
        chain = authority.certificates()
        try:
            _chain_issued(leaf, chain, moment)
        except (KeylessError, ValueError, TypeError) as error:
            reasons.append(str(error))
            continue
        return authority.uri, chain[0]
    detail = f" ({'; '.join(reasons)})" if reasons else ""
    raise KeylessError(f"certificate does not chain to a pinned Fulcio CA{detail}")


def _chain_issued(leaf: Any, chain: list[Any], moment: datetime) -> None:
    from cryptography.exceptions import InvalidSignature

    current = leaf
    for issuer in [*chain, chain[-1]]:
        try:
            current.verify_directly_issued_by(issuer)
        except InvalidSignature as error:
            raise KeylessError(f"not issued by {issuer.subject.rfc4514_string()}") from error
        if not (issuer.not_valid_before_utc <= moment <= issuer.not_valid_after_utc):
            raise KeylessError(f"CA {issuer.subject.rfc4514_string()} not valid at that time")
        current = issuer


def _check_body(body_b64: Any, payload: bytes, signature: bytes, leaf: Any) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        body = json.loads(base64.b64decode(str(body_b64), validate=True))
        spec = body["spec"]
        kind = body["kind"]
        hash_value = spec["data"]["hash"]["value"]
        hash_algorithm = spec["data"]["hash"].get("algorithm", "sha256")
        logged_signature = base64.b64decode(spec["signature"]["content"], validate=True)
        logged_key = base64.b64decode(spec["signature"]["publicKey"]["content"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise KeylessError(f"Rekor entry body is malformed ({error})") from error
    if kind not in ("hashedrekord", "rekord"):
        raise KeylessError(f"Rekor entry kind {kind!r} is not a signature entry")
    if hash_algorithm != "sha256" or hash_value != hashlib.sha256(payload).hexdigest():
        raise KeylessError("Rekor entry logs another payload (hash differs)")
    if logged_signature != signature:
        raise KeylessError("Rekor entry logs another signature")
    try:
        logged = x509.load_pem_x509_certificate(logged_key)
    except ValueError as error:
        raise KeylessError("Rekor entry's public key is not a certificate") from error
    encoding = serialization.Encoding.DER
    if logged.public_bytes(encoding) != leaf.public_bytes(encoding):
        raise KeylessError("Rekor entry logs another certificate")


def _verify_sct(leaf: Any, issuer: Any, trust: TrustRoot) -> None:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        scts = leaf.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps
        ).value
    except x509.ExtensionNotFound as error:
        raise KeylessError(
            "certificate has no embedded SCT (certificate transparency proof)"
        ) from error
    issuer_spki = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    issuer_key_hash = hashlib.sha256(issuer_spki).digest()
    tbs = leaf.tbs_precertificate_bytes
    reasons = []
    for sct in scts:
        ctlog = trust.ctlog(sct.log_id)
        if ctlog is None:
            reasons.append(f"CT log {sct.log_id.hex()} is not in the trusted root")
            continue
        timestamp_ms = int(sct.timestamp.replace(tzinfo=UTC).timestamp() * 1000)
        extensions = sct.extension_bytes
        signed = (
            b"\x00\x00"
            + timestamp_ms.to_bytes(8, "big")
            + b"\x00\x01"
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + len(extensions).to_bytes(2, "big")
            + extensions
        )
        key = ctlog.public_key()
        try:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                reasons.append(f"CT log key type {type(key).__name__} unsupported")
                continue
            key.verify(sct.signature, signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            reasons.append(f"SCT from {ctlog.base_url} does not verify")
            continue
        return
    raise KeylessError("no valid SCT: " + "; ".join(reasons))


def _check_claims(payload: bytes, artifact_digest: str) -> None:
    try:
        document = json.loads(payload)
        critical = document["critical"]
        kind = critical["type"]
        digest = critical["image"]["docker-manifest-digest"]
    except (ValueError, KeyError, TypeError) as error:
        raise KeylessError(
            f"signed payload is not a cosign simple-signing payload ({error})"
        ) from error
    if kind != SIGNATURE_TYPE:
        raise KeylessError(f"signed payload type is {kind!r}, not {SIGNATURE_TYPE!r}")
    if digest != artifact_digest:
        raise KeylessError(f"signed payload names {digest}, not this artifact ({artifact_digest})")
