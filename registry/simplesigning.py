"""Cosign's legacy signature layout, as bytes: the simple-signing payload, ECDSA-SHA256 over it,
and the `.sig` manifest (one layer per signature). No I/O here; registry/signatures.py moves these
bytes to and from a store.

Byte-compatibility matters: the payload is what gets signed, so it is serialised the way Go's
`json.Marshal` serialises cosign's `SimpleContainerImage` (compact, field order critical/optional
and identity/image/type, map keys sorted).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from registry.digests import digest_bytes
from registry.keys import PrivateKey, PublicKey

SIGNATURE_TYPE = "cosign container image signature"
SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
# A payload is a few hundred bytes; anything much larger is not a signature layer.
MAX_PAYLOAD_SIZE = 1 << 20


@dataclass(frozen=True)
class Payload:
    """The fields of a simple-signing payload that verification looks at."""

    docker_reference: str
    manifest_digest: str
    type: str
    optional: dict[str, Any] | None


class PayloadError(ValueError):
    """The payload bytes are not a simple-signing document."""


def build_payload(
    docker_reference: str, manifest_digest: str, annotations: Mapping[str, str] | None = None
) -> bytes:
    document = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": dict(sorted(annotations.items())) if annotations else None,
    }
    return _go_json(document)


def parse_payload(data: bytes) -> Payload:
    try:
        document = json.loads(data)
        critical = document["critical"]
        payload = Payload(
            docker_reference=critical["identity"]["docker-reference"],
            manifest_digest=critical["image"]["docker-manifest-digest"],
            type=critical["type"],
            optional=document.get("optional"),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise PayloadError(f"not a simple-signing payload ({error})") from error
    if not all(isinstance(v, str) for v in (payload.docker_reference, payload.manifest_digest)):
        raise PayloadError("identity and digest must be strings")
    return payload


def sign_payload(private_key: PrivateKey, payload: bytes) -> bytes:
    """ASN.1 DER ECDSA signature over SHA-256 of the exact payload bytes."""
    return private_key.sign(payload, ec.ECDSA(hashes.SHA256()))


def signature_matches(public_key: PublicKey, payload: bytes, der_signature: bytes) -> bool:
    try:
        public_key.verify(der_signature, payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def encode_signature(der_signature: bytes) -> str:
    return base64.b64encode(der_signature).decode()


def decode_signature(annotation: str) -> bytes:
    """Standard base64, as cosign writes it; strict, so a garbage annotation is reported rather
    than half-decoded."""
    try:
        return base64.b64decode(annotation, validate=True)
    except (binascii.Error, ValueError) as error:
        raise PayloadError("the signature annotation is not base64") from error


def signature_layer(payload: bytes, der_signature: bytes) -> dict[str, Any]:
    return {
        "mediaType": SIMPLESIGNING_MEDIA_TYPE,
        "digest": digest_bytes(payload),
        "size": len(payload),
        "annotations": {SIGNATURE_ANNOTATION: encode_signature(der_signature)},
    }


def signature_config(layers: list[dict[str, Any]]) -> bytes:
    """The minimal image config cosign/containers-image write (verifiers ignore it; registries
    and skopeo want a well-formed one). The payload is stored uncompressed, so diff_id = digest."""
    document = {
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
    }
    return _go_json(document)


def signature_manifest(config: bytes, layers: list[dict[str, Any]]) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": OCI_CONFIG_MEDIA_TYPE,
            "digest": digest_bytes(config),
            "size": len(config),
        },
        "layers": layers,
    }
    return _go_json(document)


def manifest_layers(manifest: bytes) -> list[dict[str, Any]]:
    """The layer descriptors of an existing `.sig` manifest."""
    try:
        document = json.loads(manifest)
        layers = document.get("layers", [])
    except (ValueError, AttributeError) as error:
        raise PayloadError("the signature manifest is not JSON") from error
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise PayloadError("the signature manifest's layers are not a list of descriptors")
    return layers


def _go_json(document: Any) -> bytes:
    # Go's encoding/json: compact, UTF-8, and it escapes <, > and & inside strings.
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()
