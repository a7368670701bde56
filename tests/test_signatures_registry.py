"""Signing and verification against a real registry (Debian's docker-registry on loopback):
the cosign `.sig` layout as stored, interop with openssl both ways, and every way a signature
can be wrong, each refused with its own message and exit status."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from registry import keys, simplesigning
from registry.digests import digest_bytes
from registry.errors import NotFoundError
from registry.options import ClientOptions
from registry.reference import parse_reference
from registry.store import OCI_INDEX, OCI_MANIFEST, ArtifactStore, Descriptor, open_store
from registry.tags import signature_tag
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.registry
PASSWORD = "correct horse"
VERIFICATION_FAILED = 6
USAGE = 2
RULES_CONFIG = "application/vnd.cncf.falco.rulesfile.config.v1+json"
RULES_LAYER = "application/vnd.cncf.falco.rulesfile.layer.v1+tar.gz"


@dataclass
class Artifact:
    ref: str  # host/repo:tag
    digest: str
    store: ArtifactStore


@dataclass
class KeyPair:
    private: Path
    public: Path
    fingerprint: str


def _push_manifest(store: ArtifactStore, tag: str, layer_bytes: bytes) -> Descriptor:
    config = json.dumps({"name": "app", "version": tag}).encode()
    layer = Descriptor(RULES_LAYER, digest_bytes(layer_bytes), len(layer_bytes))
    config_descriptor = Descriptor(RULES_CONFIG, digest_bytes(config), len(config))
    store.push_blob(config, config_descriptor)
    store.push_blob(layer_bytes, layer)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_descriptor.to_json(),
        "layers": [layer.to_json()],
    }
    return store.push_manifest(json.dumps(manifest).encode(), OCI_MANIFEST, tag=tag)


@pytest.fixture
def artifact(registry: RegistryServer) -> Artifact:
    ref = f"{registry.host}/rules/app:1.0.0"
    store = open_store(parse_reference(ref), ClientOptions(plain_http=True))
    pushed = _push_manifest(store, "1.0.0", b"pretend tar.gz of app_rules.yaml")
    return Artifact(ref, pushed.digest, store)


def _key_pair(directory: Path, name: str) -> KeyPair:
    files = keys.write_key_pair(directory / name, PASSWORD.encode())
    return KeyPair(files.private_path, files.public_path, files.fingerprint)


@pytest.fixture
def key(tmp_path: Path) -> KeyPair:
    return _key_pair(tmp_path, "cosign")


@pytest.fixture
def other_key(tmp_path: Path) -> KeyPair:
    return _key_pair(tmp_path, "other")


@pytest.fixture
def cli(run_cli) -> Callable[..., subprocess.CompletedProcess[str]]:
    """run_cli with the key's passphrase and --plain-http for the loopback registry."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(
            *args, "--plain-http", env={"FALCONET_KEY_PASSWORD": PASSWORD, **(env or {})}
        )

    return run


def _signature_manifest(artifact: Artifact) -> dict[str, Any]:
    data, _ = artifact.store.fetch_manifest(signature_tag(artifact.digest))
    return json.loads(data)


def _payload(artifact: Artifact, layer: dict[str, Any]) -> bytes:
    return artifact.store.fetch_blob_bytes(Descriptor.from_json(layer), 1 << 20)


def _replace_signature(
    artifact: Artifact, layers: list[dict[str, Any]], blobs: list[bytes]
) -> None:
    """Store a hand-made `.sig` manifest (what an attacker or a foreign tool could push)."""
    for layer, blob in zip(layers, blobs, strict=True):
        artifact.store.push_blob(
            blob, Descriptor(layer["mediaType"], digest_bytes(blob), len(blob))
        )
    config = simplesigning.signature_config(layers)
    artifact.store.push_blob(
        config, Descriptor(simplesigning.OCI_CONFIG_MEDIA_TYPE, digest_bytes(config), len(config))
    )
    artifact.store.push_manifest(
        simplesigning.signature_manifest(config, layers),
        OCI_MANIFEST,
        tag=signature_tag(artifact.digest),
    )


def _sign(cli, artifact: Artifact, key: KeyPair, *extra: str) -> subprocess.CompletedProcess[str]:
    result = cli("artifact", "sign", artifact.ref, "--key", str(key.private), *extra)
    assert result.returncode == 0, result.stderr
    return result


def _verify(cli, artifact: Artifact, key: KeyPair) -> subprocess.CompletedProcess[str]:
    return cli("artifact", "verify", artifact.ref, "--key", str(key.public), "-o", "json")


def test_sign_stores_cosigns_layout_and_verify_reports_it(cli, artifact, key) -> None:
    _sign(cli, artifact, key, "--annotation", "release=1.0.0")
    tag = "sha256-" + artifact.digest.split(":")[1] + ".sig"
    assert tag in artifact.store.list_tags()
    manifest = _signature_manifest(artifact)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = json.loads(_payload(artifact, layer))
    assert payload["critical"] == {
        "identity": {"docker-reference": artifact.ref.rsplit(":", 1)[0]},
        "image": {"docker-manifest-digest": artifact.digest},
        "type": "cosign container image signature",
    }
    assert payload["optional"] == {"release": "1.0.0"}

    result = _verify(cli, artifact, key)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "verified"
    assert report["key_fingerprint"] == key.fingerprint
    assert report["layer"] == 0
    assert report["digest"] == report["payload_digest"] == artifact.digest
    assert report["identity"] == artifact.ref.rsplit(":", 1)[0]
    assert report["signature_tag"] == tag


def test_resigning_appends_a_layer_and_keeps_the_old_one(cli, artifact, key, other_key) -> None:
    _sign(cli, artifact, key)
    _sign(cli, artifact, other_key)
    assert len(_signature_manifest(artifact)["layers"]) == 2
    assert json.loads(_verify(cli, artifact, key).stdout)["layer"] == 0
    assert json.loads(_verify(cli, artifact, other_key).stdout)["layer"] == 1
    again = _sign(cli, artifact, key)
    assert "already signed" in again.stdout
    assert len(_signature_manifest(artifact)["layers"]) == 2


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_verifies_what_the_registry_holds(cli, artifact, key, tmp_path) -> None:
    _sign(cli, artifact, key)
    (layer,) = _signature_manifest(artifact)["layers"]
    (tmp_path / "payload.json").write_bytes(_payload(artifact, layer))
    (tmp_path / "sig.der").write_bytes(
        simplesigning.decode_signature(layer["annotations"][simplesigning.SIGNATURE_ANNOTATION])
    )
    result = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", str(key.public), "-signature",
         str(tmp_path / "sig.der"), str(tmp_path / "payload.json")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.stdout.strip() == "Verified OK"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_an_openssl_signature_in_the_layout_is_accepted(cli, artifact, tmp_path) -> None:
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", str(tmp_path / "key.pem")],
        check=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "pkey", "-in", str(tmp_path / "key.pem"), "-pubout", "-out",
         str(tmp_path / "key.pub")],
        check=True,
    )  # fmt: skip
    payload = simplesigning.build_payload(artifact.ref.rsplit(":", 1)[0], artifact.digest)
    (tmp_path / "payload.json").write_bytes(payload)
    subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(tmp_path / "key.pem"), "-out",
         str(tmp_path / "sig.der"), str(tmp_path / "payload.json")],
        check=True,
    )  # fmt: skip
    layer = simplesigning.signature_layer(payload, (tmp_path / "sig.der").read_bytes())
    _replace_signature(artifact, [layer], [payload])
    result = cli("artifact", "verify", artifact.ref, "--key", str(tmp_path / "key.pub"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Verified OK")


def test_signing_an_image_index_signs_the_index_digest(cli, registry, key) -> None:
    ref = f"{registry.host}/plugins/demo:0.1.0"
    store = open_store(parse_reference(ref), ClientOptions(plain_http=True))
    children = [
        _push_manifest(store, f"0.1.0-{arch}", arch.encode()) for arch in ("amd64", "arm64")
    ]
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {**child.to_json(), "platform": {"os": "linux", "architecture": arch}}
            for child, arch in zip(children, ("amd64", "arm64"), strict=True)
        ],
    }
    pushed = store.push_manifest(json.dumps(index).encode(), OCI_INDEX, tag="0.1.0")
    plugin = Artifact(ref, pushed.digest, store)
    _sign(cli, plugin, key)
    assert signature_tag(pushed.digest) in store.list_tags()
    assert json.loads(_verify(cli, plugin, key).stdout)["payload_digest"] == pushed.digest


# --- refusals: each with exit status 6 (verification_failed) or 2 (usage) and its own message ---


def _assert_refused(result: subprocess.CompletedProcess[str], status: int, *words: str) -> None:
    assert result.returncode == status, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and lines[1].startswith("hint: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], result.stderr


def _tamper(artifact: Artifact, change: Callable[[dict[str, Any], bytes], bytes]) -> None:
    """Rewrite the first layer of the stored `.sig`: `change` edits the layer and returns the
    payload to store."""
    (layer,) = _signature_manifest(artifact)["layers"]
    payload = change(layer, _payload(artifact, layer))
    layer["digest"], layer["size"] = digest_bytes(payload), len(payload)
    _replace_signature(artifact, [layer], [payload])


def test_payload_edited_after_signing(cli, artifact, key) -> None:
    _sign(cli, artifact, key)
    _tamper(artifact, lambda layer, payload: payload.replace(b"rules/app", b"rules/evil"))
    _assert_refused(_verify(cli, artifact, key), VERIFICATION_FAILED, "signature does not match")


def test_one_signature_byte_flipped(cli, artifact, key) -> None:
    _sign(cli, artifact, key)

    def flip(layer: dict[str, Any], payload: bytes) -> bytes:
        der = bytearray(
            simplesigning.decode_signature(layer["annotations"][simplesigning.SIGNATURE_ANNOTATION])
        )
        der[10] ^= 0x01
        layer["annotations"][simplesigning.SIGNATURE_ANNOTATION] = simplesigning.encode_signature(
            bytes(der)
        )
        return payload

    _tamper(artifact, flip)
    _assert_refused(_verify(cli, artifact, key), VERIFICATION_FAILED, "signature does not match")


def test_signed_with_another_key(cli, artifact, key, other_key) -> None:
    _sign(cli, artifact, other_key)
    result = _verify(cli, artifact, key)
    _assert_refused(result, VERIFICATION_FAILED, "signature does not match")
    assert key.fingerprint in result.stderr  # the hint names the key that was expected


def test_valid_signature_over_another_digest(cli, artifact, key) -> None:
    other = _push_manifest(artifact.store, "2.0.0", b"another release")
    private = keys.read_private_key(key.private, lambda: PASSWORD.encode())
    payload = simplesigning.build_payload(artifact.ref.rsplit(":", 1)[0], other.digest)
    layer = simplesigning.signature_layer(payload, simplesigning.sign_payload(private, payload))
    _replace_signature(artifact, [layer], [payload])
    _assert_refused(
        _verify(cli, artifact, key), VERIFICATION_FAILED, f"payload signs {other.digest}"
    )


def test_no_signature_while_a_policy_requires_one(cli, artifact, key, falconet_home) -> None:
    _assert_refused(_verify(cli, artifact, key), VERIFICATION_FAILED, "is not signed")
    config = falconet_home / "config" / "falconet.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "verify:\n  policies:\n"
        f"    - match: '{artifact.ref.split('/')[0]}/rules/*'\n      key: {key.public}\n"
    )
    result = cli("artifact", "verify", artifact.ref)
    _assert_refused(result, VERIFICATION_FAILED, "is not signed", "verify.policies[0]")


def test_policy_from_falconet_yaml_verifies_without_key_flag(
    cli, artifact, key, falconet_home
) -> None:
    _sign(cli, artifact, key)
    config = falconet_home / "config" / "falconet.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"verify:\n  policies:\n    - match: '*/rules/app'\n      key: {key.public}\n"
    )
    result = cli("artifact", "verify", artifact.ref, "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["policy_origin"] == "verify.policies[0] (*/rules/app)"


def test_verify_without_key_or_policy_is_refused(cli, artifact, key) -> None:
    _sign(cli, artifact, key)
    result = cli("artifact", "verify", artifact.ref)
    _assert_refused(result, VERIFICATION_FAILED, "no signature policy applies")
    assert "--key" in result.stderr


def test_signature_blob_that_does_not_match_its_digest(cli, artifact, key, registry) -> None:
    _sign(cli, artifact, key)
    (layer,) = _signature_manifest(artifact)["layers"]
    stored = registry.blob_path(layer["digest"])
    stored.write_bytes(stored.read_bytes().replace(b"rules/app", b"rules/xyz"))  # same size
    _assert_refused(_verify(cli, artifact, key), VERIFICATION_FAILED, "does not match its digest")


def test_garbage_signature_annotation(cli, artifact, key) -> None:
    _sign(cli, artifact, key)

    def garble(layer: dict[str, Any], payload: bytes) -> bytes:
        layer["annotations"][simplesigning.SIGNATURE_ANNOTATION] = "not*base64!"
        return payload

    _tamper(artifact, garble)
    _assert_refused(_verify(cli, artifact, key), VERIFICATION_FAILED, "not base64")


def test_keyless_layers_are_reported_plainly(cli, artifact, key) -> None:
    _sign(cli, artifact, key)

    def keyless(layer: dict[str, Any], payload: bytes) -> bytes:
        layer["annotations"]["dev.sigstore.cosign/certificate"] = "-----BEGIN CERTIFICATE-----"
        return payload

    _tamper(artifact, keyless)
    result = _verify(cli, artifact, key)
    _assert_refused(result, VERIFICATION_FAILED, "keyless signature (a Fulcio certificate)")
    assert "keyless policy" in result.stderr


def test_wrong_passphrase_refuses_and_writes_nothing(cli, artifact, key) -> None:
    result = cli(
        "artifact", "sign", artifact.ref, "--key", str(key.private),
        env={"FALCONET_KEY_PASSWORD": "not it"},
    )  # fmt: skip
    _assert_refused(result, USAGE, "wrong passphrase")
    assert signature_tag(artifact.digest) not in artifact.store.list_tags()


def test_malformed_key_files(cli, artifact, key, tmp_path) -> None:
    broken = tmp_path / "broken.key"
    broken.write_text("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\nAAAA\n")
    _assert_refused(
        cli("artifact", "sign", artifact.ref, "--key", str(broken)), USAGE, "no PEM block"
    )
    assert signature_tag(artifact.digest) not in artifact.store.list_tags()
    _sign(cli, artifact, key)
    _assert_refused(
        cli("artifact", "verify", artifact.ref, "--key", str(key.private)),
        USAGE,
        "not a public key",
    )


# --- verdicts the install flow reports without failing ---


def test_verdicts_that_do_not_fail(artifact, key, caplog) -> None:
    from registry.errors import VerificationError
    from registry.signatures import Policy, verify_artifact

    reference = parse_reference(artifact.ref)
    verify = lambda policy: verify_artifact(artifact.store, reference, artifact.digest, policy)  # noqa: E731
    assert verify(Policy()).verdict == "unverified"
    assert verify(Policy(skip=True)).verdict == "skipped"
    assert "skipped" in caplog.text
    optional = verify(Policy(key_ref=str(key.public), require=False, origin="test"))
    assert optional.verdict == "unsigned" and optional.key_fingerprint == key.fingerprint
    with pytest.raises(VerificationError, match="is not signed"):
        verify(Policy(key_ref=str(key.public), require=True))
    keyless = verify(Policy(keyless={"certificate-identity": "x", "certificate-oidc-issuer": "y"}))
    assert keyless.verdict == "unsigned" and "keyless x" in (keyless.key_fingerprint or "")


# --- where keys and artifacts can live ---


def test_sign_and_verify_in_an_oci_layout(run_cli, key, tmp_path) -> None:
    layout = tmp_path / "layout"
    ref = f"oci-layout:{layout}:1.0.0"
    pushed = _push_manifest(open_store(parse_reference(ref)), "1.0.0", b"offline feed")
    env = {"FALCONET_KEY_PASSWORD": PASSWORD}
    signed = run_cli("artifact", "sign", ref, "--key", str(key.private), env=env)
    assert signed.returncode == 0, signed.stderr
    assert signature_tag(pushed.digest) in open_store(parse_reference(ref)).list_tags()
    result = run_cli("artifact", "verify", ref, "--key", str(key.public), "-o", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["payload_digest"] == pushed.digest
    assert report["identity"] == "layout"  # the layout's name: a docker reference cosign parses


@pytest.fixture
def key_server(key: KeyPair) -> Iterator[str]:
    """A loopback HTTP server publishing the public key, as a project's website would."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(key.public.parent))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_public_key_from_a_url(cli, artifact, key, key_server) -> None:
    _sign(cli, artifact, key)
    result = cli("artifact", "verify", artifact.ref, "--key", f"{key_server}/{key.public.name}")
    assert result.returncode == 0, result.stderr
    missing = cli("artifact", "verify", artifact.ref, "--key", f"{key_server}/absent.pub")
    _assert_refused(missing, 5, "HTTP 404")


def test_verify_over_tls_with_the_ca_from_falconet_yaml(
    run_cli, registry_factory, key, falconet_home
) -> None:
    server = registry_factory(tls=True)
    assert server.ca is not None
    ref = f"{server.host}/rules/tls:1.0.0"
    store = open_store(parse_reference(ref), ClientOptions(ca_file=server.ca.ca_cert))
    _push_manifest(store, "1.0.0", b"over tls")
    config = falconet_home / "config" / "falconet.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"registries:\n  '{server.host}':\n    ca_file: {server.ca.ca_cert}\n")
    env = {"FALCONET_KEY_PASSWORD": PASSWORD}
    assert run_cli("artifact", "sign", ref, "--key", str(key.private), env=env).returncode == 0
    config.unlink()
    result = run_cli(
        "artifact", "verify", ref, "--key", str(key.public), "--ca-file", str(server.ca.ca_cert)
    )
    assert result.returncode == 0, result.stderr
    untrusted = run_cli("artifact", "verify", ref, "--key", str(key.public))
    _assert_refused(untrusted, 5, "TLS")


# --- registry push --sign-key ---


def test_push_with_sign_key_signs_the_root_digest(cli, registry, key, tmp_path) -> None:
    rules = tmp_path / "app_rules.yaml"
    rules.write_text("- macro: always\n  condition: (evt.num >= 0)\n")
    ref = f"{registry.host}/rules/pushed:1.0.0"
    pushed = cli(
        "registry", "push", ref, str(rules), "--type", "rulesfile", "--version", "1.0.0",
        "--sign-key", str(key.private), "-o", "json",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    report = json.loads(pushed.stdout)
    assert report["signature"]["digest"] == report["digest"]
    verified = cli("artifact", "verify", ref, "--key", str(key.public), "-o", "json")
    assert json.loads(verified.stdout)["payload_digest"] == report["digest"]

    plugin_ref = f"{registry.host}/plugins/pushed:0.1.0"
    files = []
    for arch in ("amd64", "arm64"):
        (tmp_path / arch).mkdir()
        files.append(tmp_path / arch / "libdemo.so")
        files[-1].write_bytes(arch.encode())
    plugin = cli(
        "registry", "push", plugin_ref, *map(str, files), "--type", "plugin", "--version", "0.1.0",
        "--platform", "linux/amd64", "--platform", "linux/arm64",
        "--sign-key", str(key.private), "-o", "json",
    )  # fmt: skip
    assert plugin.returncode == 0, plugin.stderr
    index_digest = json.loads(plugin.stdout)["digest"]
    store = open_store(parse_reference(plugin_ref), ClientOptions(plain_http=True))
    assert store.resolve("0.1.0").media_type == OCI_INDEX
    assert store.resolve("0.1.0").digest == index_digest
    verified = cli("artifact", "verify", plugin_ref, "--key", str(key.public), "-o", "json")
    assert json.loads(verified.stdout)["payload_digest"] == index_digest


def test_push_with_a_wrong_passphrase_pushes_nothing(cli, registry, key, tmp_path) -> None:
    rules = tmp_path / "app_rules.yaml"
    rules.write_text("- macro: always\n  condition: (evt.num >= 0)\n")
    ref = f"{registry.host}/rules/never:1.0.0"
    result = cli(
        "registry", "push", ref, str(rules), "--type", "rulesfile", "--version", "1.0.0",
        "--sign-key", str(key.private), env={"FALCONET_KEY_PASSWORD": "nope"},
    )  # fmt: skip
    _assert_refused(result, USAGE, "wrong passphrase")
    store = open_store(parse_reference(ref), ClientOptions(plain_http=True))
    with pytest.raises(NotFoundError):
        store.resolve("1.0.0")


def test_signatures_verify_after_a_mirror(
    cli, run_cli, artifact, key, registry_factory, tmp_path
) -> None:
    from registry.mirror import mirror

    _sign(cli, artifact, key)
    second = registry_factory()
    destinations = [
        f"{second.host}/mirror/app:1.0.0",
        f"oci-layout:{tmp_path / 'airgap'}:1.0.0",
    ]
    for destination in destinations:
        target = open_store(parse_reference(destination), ClientOptions(plain_http=True))
        mirror(artifact.store, target)
        result = cli("artifact", "verify", destination, "--key", str(key.public), "-o", "json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["payload_digest"] == artifact.digest
        # The identity still names the source repository; it is reported, not compared.
        assert report["identity"] == artifact.ref.rsplit(":", 1)[0]


def test_an_optional_signature_that_exists_must_still_verify(artifact, key, other_key) -> None:
    from registry.errors import VerificationError
    from registry.signatures import Policy, sign_artifact, verify_artifact

    reference = parse_reference(artifact.ref)
    foreign = keys.read_private_key(other_key.private, lambda: PASSWORD.encode())
    sign_artifact(artifact.store, reference, artifact.digest, foreign)
    optional = Policy(key_ref=str(key.public), require=False, origin="test")
    with pytest.raises(VerificationError, match="signature does not match"):
        verify_artifact(artifact.store, reference, artifact.digest, optional)
