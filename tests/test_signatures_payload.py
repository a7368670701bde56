"""The simple-signing payload and its ECDSA signature, checked against an independent
implementation (openssl) in both directions, and the `.sig` manifest builders."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry import keys, simplesigning
from registry.digests import digest_bytes

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
DIGEST = "sha256:" + "ab" * 32


def test_payload_is_cosigns_go_serialisation() -> None:
    payload = simplesigning.build_payload("127.0.0.1:5000/rules/app", DIGEST)
    # Field order and compactness are what cosign's Go json.Marshal produces.
    assert payload == (
        b'{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/rules/app"},'
        b'"image":{"docker-manifest-digest":"' + DIGEST.encode() + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )
    annotated = simplesigning.build_payload("r/x", DIGEST, {"z": "1", "a": "<b>"})
    assert annotated.endswith(b'"optional":{"a":"\\u003cb\\u003e","z":"1"}}')
    parsed = simplesigning.parse_payload(annotated)
    assert parsed.manifest_digest == DIGEST and parsed.optional == {"a": "<b>", "z": "1"}


@pytest.mark.parametrize(
    "data", [b"", b"[]", b'{"critical":{}}', b'{"critical":{"identity":{"docker-reference":1}}}']
)
def test_parse_payload_refuses_non_payloads(data: bytes) -> None:
    with pytest.raises(simplesigning.PayloadError):
        simplesigning.parse_payload(data)


def test_signature_checks_fail_on_every_alteration() -> None:
    key, other = keys.generate_private_key(), keys.generate_private_key()
    payload = simplesigning.build_payload("r/x", DIGEST)
    signature = simplesigning.sign_payload(key, payload)
    public = key.public_key()
    assert simplesigning.signature_matches(public, payload, signature)
    flipped = bytearray(signature)
    flipped[len(flipped) // 2] ^= 0x01
    assert not simplesigning.signature_matches(public, payload, bytes(flipped))
    assert not simplesigning.signature_matches(public, payload.replace(b"r/x", b"r/y"), signature)
    assert not simplesigning.signature_matches(other.public_key(), payload, signature)
    assert not simplesigning.signature_matches(public, payload, b"\x30\x00garbage")


@needs_openssl
def test_openssl_verifies_our_signature(tmp_path: Path) -> None:
    files = keys.write_key_pair(tmp_path / "k", b"pw")
    key = keys.read_private_key(files.private_path, lambda: b"pw")
    payload = simplesigning.build_payload("127.0.0.1:5000/rules/app", DIGEST)
    (tmp_path / "payload.json").write_bytes(payload)
    annotation = simplesigning.encode_signature(simplesigning.sign_payload(key, payload))
    (tmp_path / "sig.der").write_bytes(simplesigning.decode_signature(annotation))
    result = _openssl_verify(files.public_path, tmp_path / "sig.der", tmp_path / "payload.json")
    assert result.stdout.strip() == "Verified OK"
    (tmp_path / "payload.json").write_bytes(payload + b" ")
    assert _openssl_verify(
        files.public_path, tmp_path / "sig.der", tmp_path / "payload.json"
    ).returncode


@needs_openssl
def test_we_verify_an_openssl_signature(tmp_path: Path) -> None:
    key = keys.generate_private_key()
    (tmp_path / "key.pem").write_bytes(keys.private_key_pkcs8_pem(key))
    payload = simplesigning.build_payload("127.0.0.1:5000/rules/app", DIGEST)
    (tmp_path / "payload.json").write_bytes(payload)
    subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-sign",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "sig.der"),
            str(tmp_path / "payload.json"),
        ],
        check=True,
    )
    signature = (tmp_path / "sig.der").read_bytes()
    assert simplesigning.signature_matches(key.public_key(), payload, signature)


def test_signature_manifest_layout() -> None:
    key = keys.generate_private_key()
    payloads = [simplesigning.build_payload("r/x", DIGEST, {"n": str(i)}) for i in range(2)]
    layers = [
        simplesigning.signature_layer(p, simplesigning.sign_payload(key, p)) for p in payloads
    ]
    config = simplesigning.signature_config(layers)
    manifest = json.loads(simplesigning.signature_manifest(config, layers))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert manifest["config"]["digest"] == digest_bytes(config)
    assert [layer["digest"] for layer in manifest["layers"]] == [digest_bytes(p) for p in payloads]
    assert json.loads(config)["rootfs"]["diff_ids"] == [layer["digest"] for layer in layers]
    for layer, payload in zip(manifest["layers"], payloads, strict=True):
        assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
        assert layer["size"] == len(payload)
        signature = simplesigning.decode_signature(
            layer["annotations"]["dev.cosignproject.cosign/signature"]
        )
        assert simplesigning.signature_matches(key.public_key(), payload, signature)


def _openssl_verify(public: Path, signature: Path, data: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            str(public),
            "-signature",
            str(signature),
            str(data),
        ],
        capture_output=True,
        text=True,
    )


@given(
    reference=st.text(min_size=1, max_size=80),
    annotations=st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=5),
)
def test_payload_round_trips_any_text(reference: str, annotations: dict[str, str]) -> None:
    payload = simplesigning.build_payload(reference, DIGEST, annotations)
    parsed = simplesigning.parse_payload(payload)
    assert parsed.docker_reference == reference
    assert parsed.manifest_digest == DIGEST
    assert parsed.optional == (annotations or None)
    assert b"<" not in payload and b">" not in payload and b"&" not in payload
