"""Keyless (Sigstore) verification, offline, on real production data in ../shared/upstream-sigstore:
the cosign legacy `.sig` layout and the v3 OCI-referrer bundle laid out in a real registry the way
cosign stores them, every step's failure, the sigstore-conformance suite, and the trust root's
validity windows."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from registry.digests import digest_bytes
from registry.errors import VerificationError
from registry.keyless.bundle import verify_bundle
from registry.keyless.identity import KeylessPolicy
from registry.keyless.legacy import KeylessError, verify_legacy_layer
from registry.keyless.trust_root import TrustRoot, TrustRootError, load_trust_root, parse_trust_root
from registry.options import ClientOptions
from registry.reference import parse_reference
from registry.signatures import Policy, verify_artifact
from registry.store import Descriptor, open_store
from tests.support.registry_server import RegistryServer

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
LEGACY_DIGEST = "sha256:c05263d2ff654c3a94243662440913f045075d59c436e2c69e9145ec2b87a321"
LEGACY_POLICY = {
    "certificate-identity-regexp": r"https://github\.com/salrashid123/go-bazel-github-workflow/",
    "certificate-oidc-issuer": GITHUB_ISSUER,
}
BUNDLE_DIGEST = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
BUNDLE_POLICY = {
    "certificate-identity": "cody@soyland.com",
    "certificate-oidc-issuer": "https://github.com/login/oauth",
}
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
# sigstore-python 4.5.1 (which the bundle path uses) misjudges these two conformance cases; the
# upstream results file records the same two mismatches.
KNOWN_MISMATCHES = {
    "intoto-with-custom-trust-root": "intoto 0.0.2 entries: integrated time unsupported upstream",
    "trust-root-tsa-validity-end-inclusive": "TSA validity end inclusive: newer conformance rule",
}


@pytest.fixture(scope="module")
def sigstore_data(shared_dir: Path) -> Path:
    return shared_dir / "upstream-sigstore"


@pytest.fixture(scope="module")
def trust() -> TrustRoot:
    return load_trust_root()


@pytest.fixture(scope="module")
def legacy(sigstore_data: Path) -> tuple[dict[str, Any], bytes]:
    directory = sigstore_data / "cosign-legacy" / "github-actions-2026"
    manifest = json.loads((directory / "manifest.json").read_text())
    return manifest["layers"][0]["annotations"], (directory / "payload.json").read_bytes()


def _policy(fields: dict[str, str]) -> KeylessPolicy:
    return KeylessPolicy.from_fields(fields, "test")


# --- the legacy layout, step by step ---


def test_the_real_github_actions_signature_verifies(legacy, trust) -> None:
    annotations, payload = legacy
    verdict = verify_legacy_layer(
        annotations, payload, LEGACY_DIGEST, trust, _policy(LEGACY_POLICY)
    )
    assert verdict.signer.issuer == GITHUB_ISSUER
    assert verdict.signer.sans[0].endswith("release.yaml@refs/tags/v0.0.30")
    assert verdict.signer.github["repository"] == "salrashid123/go-bazel-github-workflow"
    assert (verdict.log_index, verdict.integrated_time) == (1004096555, 1772216446)
    assert verdict.log_url == "https://rekor.sigstore.dev"


@pytest.mark.parametrize(
    ("negative", "message"),
    [
        ("bad-signature", "signature does not match"),
        ("payload-other-digest", "signature does not match"),
        ("bundle-integratedtime-plus-1h", "signed entry timestamp"),
        ("bundle-bad-set", "signed entry timestamp"),
    ],
)
def test_derived_negatives_are_refused(sigstore_data, legacy, trust, negative, message) -> None:
    annotations, payload = dict(legacy[0]), legacy[1]
    directory = sigstore_data / "cosign-legacy" / "github-actions-2026" / "derived-negatives"
    for item in (directory / negative).iterdir():
        if item.name == "signature.b64":
            annotations["dev.cosignproject.cosign/signature"] = item.read_text().strip()
        elif item.name == "bundle.json":
            annotations["dev.sigstore.cosign/bundle"] = item.read_text().strip()
        elif item.name == "payload.json":
            payload = item.read_bytes()
    with pytest.raises(KeylessError, match=message):
        verify_legacy_layer(annotations, payload, LEGACY_DIGEST, trust, _policy(LEGACY_POLICY))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({**LEGACY_POLICY, "certificate-identity-regexp": "https://github.com/falcosecurity/rules/"},
         "does not match"),
        ({**LEGACY_POLICY, "certificate-oidc-issuer": "https://accounts.google.com"},
         r"issuer .* is not"),
        ({**LEGACY_POLICY, "certificate-github-workflow-ref": "refs/heads/main"},
         "workflow ref"),
        # Anchored: a pattern cannot match in the middle of another SAN.
        ({**LEGACY_POLICY, "certificate-identity-regexp": "salrashid123/go-bazel"},
         "does not match"),
    ],
)  # fmt: skip
def test_a_signer_the_policy_does_not_name_is_refused(legacy, trust, fields, message) -> None:
    with pytest.raises(KeylessError, match=message):
        verify_legacy_layer(*legacy, LEGACY_DIGEST, trust, _policy(fields))


def test_a_real_signature_of_another_artifact_is_refused(legacy, trust) -> None:
    """falcoctl's legacy path never compares the payload's digest with the artifact's."""
    other = "sha256:" + "ab" * 32
    with pytest.raises(KeylessError, match=r"names sha256:c05263.*not this artifact"):
        verify_legacy_layer(*legacy, other, trust, _policy(LEGACY_POLICY))


def test_a_certificate_without_sct_or_issuer_is_refused(sigstore_data, trust) -> None:
    directory = sigstore_data / "cosign-legacy" / "email-2021"
    payload = (directory / "payload.json").read_bytes()
    digest = json.loads(payload)["critical"]["image"]["docker-manifest-digest"]
    annotations = {
        "dev.sigstore.cosign/certificate": (directory / "cert.pem").read_text(),
        "dev.cosignproject.cosign/signature": (directory / "signature.b64").read_text().strip(),
        "dev.sigstore.cosign/bundle": (directory / "bundle.json").read_text().strip(),
    }
    policy = _policy({"certificate-identity": "flavio@castelli.me",
                      "certificate-oidc-issuer-regexp": ".*"})  # fmt: skip
    with pytest.raises(KeylessError, match="no embedded SCT"):
        verify_legacy_layer(annotations, payload, digest, trust, policy)


def test_a_layer_without_rekor_bundle_is_refused(legacy, trust) -> None:
    annotations = {k: v for k, v in legacy[0].items() if k != "dev.sigstore.cosign/bundle"}
    with pytest.raises(KeylessError, match="no Rekor bundle"):
        verify_legacy_layer(annotations, legacy[1], LEGACY_DIGEST, trust, _policy(LEGACY_POLICY))


# --- the trust root's validity windows ---


def _edited_root(trust: TrustRoot, edit: Any) -> TrustRoot:
    document = json.loads(trust.raw)
    edit(document)
    return parse_trust_root(json.dumps(document).encode(), "edited")


def test_a_fulcio_ca_outside_its_window_is_not_trusted(legacy, trust) -> None:
    def end_current_ca_in_2023(document: dict[str, Any]) -> None:
        for authority in document["certificateAuthorities"]:
            authority["validFor"]["end"] = "2023-01-01T00:00:00Z"

    with pytest.raises(KeylessError, match="does not chain to a pinned Fulcio CA"):
        verify_legacy_layer(*legacy, LEGACY_DIGEST, _edited_root(trust, end_current_ca_in_2023),
                            _policy(LEGACY_POLICY))  # fmt: skip


def test_a_rekor_key_outside_its_window_is_not_trusted(legacy, trust) -> None:
    def end_rekor_in_2025(document: dict[str, Any]) -> None:
        for log in document["tlogs"]:
            log["publicKey"]["validFor"]["end"] = "2025-01-01T00:00:00Z"

    with pytest.raises(KeylessError, match=r"Rekor key .* was not valid"):
        verify_legacy_layer(*legacy, LEGACY_DIGEST, _edited_root(trust, end_rekor_in_2025),
                            _policy(LEGACY_POLICY))  # fmt: skip


def test_a_ct_log_missing_from_the_root_fails_the_sct(legacy, trust) -> None:
    def drop_ct_logs(document: dict[str, Any]) -> None:
        document["ctlogs"] = []

    with pytest.raises(KeylessError, match="no valid SCT"):
        verify_legacy_layer(*legacy, LEGACY_DIGEST, _edited_root(trust, drop_ct_logs),
                            _policy(LEGACY_POLICY))  # fmt: skip


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"{", "invalid JSON"), (b"[]", "not an object"),
     (b'{"mediaType": "application/json"}', "mediaType"),
     (b'{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}', "names no")],
)  # fmt: skip
def test_a_broken_trust_root_is_refused_with_the_reason(data, message) -> None:
    with pytest.raises(TrustRootError, match=message):
        parse_trust_root(data, "broken.json")


# --- the v3 bundle ---


def test_the_cosign_v3_bundle_verifies_against_its_subject(sigstore_data, trust) -> None:
    document = (sigstore_data / "cosign-v3-bundle" / "oci-attestation.sigstore.json").read_bytes()
    verdict = verify_bundle(document, trust, _policy(BUNDLE_POLICY), artifact_digest=BUNDLE_DIGEST)
    assert verdict.signer.sans == ("cody@soyland.com",)
    assert verdict.log_index == 175508996
    with pytest.raises(KeylessError, match="subject is not this artifact"):
        verify_bundle(document, trust, _policy(BUNDLE_POLICY), artifact_digest="sha256:" + "1" * 64)
    with pytest.raises(KeylessError, match="signer not accepted"):
        verify_bundle(document, trust, _policy({**BUNDLE_POLICY, "certificate-identity": "a@b"}),
                      artifact_digest=BUNDLE_DIGEST)  # fmt: skip


def _conformance_cases() -> list[Any]:
    from tests.conftest import SHARED

    directory = SHARED / "upstream-sigstore" / "conformance" / "bundle-verify"
    if not directory.is_dir():
        return [pytest.param(None, id="no-shared")]
    cases = []
    for case in sorted(p for p in directory.iterdir() if p.is_dir()):
        marks = []
        if (case / "key.pub").exists():
            marks.append(pytest.mark.skip(reason="key-based bundle case (not keyless)"))
        if case.name in KNOWN_MISMATCHES:
            marks.append(pytest.mark.xfail(reason=KNOWN_MISMATCHES[case.name], strict=True))
        cases.append(pytest.param(case, id=case.name, marks=marks))
    return cases


@pytest.mark.parametrize("case", _conformance_cases())
def test_sigstore_conformance_bundle_verify(case: Path | None, shared_dir: Path, trust) -> None:
    if case is None:
        pytest.skip("../shared/upstream-sigstore is absent")
    root = case / "trusted_root.json"
    artifact = case / "artifact" if (case / "artifact").exists() else case.parent / "a.txt"
    identity = (
        (case / "identity").read_text().strip()
        if (case / "identity").exists()
        else (
            "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
            ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
        )
    )
    issuer = (case / "issuer").read_text().strip() if (case / "issuer").exists() else GITHUB_ISSUER
    policy = _policy({"certificate-identity": identity, "certificate-oidc-issuer": issuer})
    document = (case / "bundle.sigstore.json").read_bytes()

    def verify() -> None:
        case_trust = parse_trust_root(root.read_bytes(), str(root)) if root.exists() else trust
        verify_bundle(document, case_trust, policy, artifact=artifact.read_bytes())

    if case.name.endswith("_fail"):
        with pytest.raises(VerificationError):  # KeylessError, or TrustRootError for the root
            verify()
    else:
        verify()


# --- laid out in a real registry the way cosign stores them ---


def _store(registry: RegistryServer, repository: str) -> Any:
    reference = parse_reference(f"{registry.host}/{repository}:x")
    return reference, open_store(reference, ClientOptions(plain_http=True))


def _push_legacy(store: Any, directory: Path) -> None:
    """cosign v2's bytes: the published manifest, its payload layer and cosign's config."""
    manifest = (directory / "manifest.json").read_bytes()
    document = json.loads(manifest)
    payload = (directory / "payload.json").read_bytes()
    config = (
        b'{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":'
        b'"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["'
        + document["layers"][0]["digest"].encode()
        + b'"]},"config":{}}'
    )
    assert digest_bytes(config) == document["config"]["digest"]  # byte-exact as cosign wrote it
    store.push_blob(payload, Descriptor.from_json(document["layers"][0]))
    store.push_blob(config, Descriptor.from_json(document["config"]))
    store.push_manifest(manifest, OCI_MANIFEST, tag=f"sha256-{LEGACY_DIGEST[7:]}.sig")


def _push_bundle(store: Any, bundle: bytes, subject: str) -> None:
    """cosign v3 on a registry without the referrers API: referrer manifest + `sha256-<hex>`
    referrers-tag index (OCI 1.1 distribution spec's fallback)."""
    empty = b"{}"
    empty_descriptor = Descriptor("application/vnd.oci.empty.v1+json", digest_bytes(empty), 2)
    layer = Descriptor(BUNDLE_MEDIA_TYPE, digest_bytes(bundle), len(bundle))
    store.push_blob(empty, empty_descriptor)
    store.push_blob(bundle, layer)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_MEDIA_TYPE,
        "config": empty_descriptor.to_json(), "layers": [layer.to_json()],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1234},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope"},
    }).encode()  # fmt: skip
    pushed = store.push_manifest(manifest, OCI_MANIFEST)
    index = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": pushed.digest, "size": pushed.size,
                       "artifactType": BUNDLE_MEDIA_TYPE}],
    }).encode()  # fmt: skip
    store.push_manifest(index, OCI_INDEX, tag=f"sha256-{subject[7:]}")


@pytest.mark.registry
def test_legacy_signature_in_a_registry_verifies_offline(registry, sigstore_data) -> None:
    reference, store = _store(registry, "falcosecurity/rules/falco-rules")
    _push_legacy(store, sigstore_data / "cosign-legacy" / "github-actions-2026")
    policy = Policy(require=True, keyless=LEGACY_POLICY, origin="test")
    result = verify_artifact(store, reference, LEGACY_DIGEST, policy)
    assert result.verified and result.keyless is not None
    report = result.to_json()["keyless"]
    assert report["issuer"] == GITHUB_ISSUER and report["log_index"] == 1004096555
    assert report["integrated_time_utc"] == "2026-02-27T18:20:46Z" and report["layout"] == "legacy"
    assert result.signature_tag == f"sha256-{LEGACY_DIGEST[7:]}.sig"
    assert result.statement.startswith("verified keyless: signed by https://github.com/salrashid")
    assert "the signer you configured (test)" in result.statement


@pytest.mark.registry
def test_a_wrong_signer_in_a_registry_is_refused(registry, sigstore_data) -> None:
    reference, store = _store(registry, "falcosecurity/rules/falco-rules")
    _push_legacy(store, sigstore_data / "cosign-legacy" / "github-actions-2026")
    falcosecurity = {"certificate-identity-regexp": "https://github.com/falcosecurity/rules/",
                     "certificate-oidc-issuer": GITHUB_ISSUER}  # fmt: skip
    with pytest.raises(VerificationError, match="layer 0: signer not accepted"):
        verify_artifact(store, reference, LEGACY_DIGEST,
                        Policy(require=True, keyless=falcosecurity))  # fmt: skip


@pytest.mark.registry
def test_v3_bundle_in_a_registry_verifies_offline(registry, sigstore_data) -> None:
    reference, store = _store(registry, "repo")
    bundle = (sigstore_data / "cosign-v3-bundle" / "oci-attestation.sigstore.json").read_bytes()
    _push_bundle(store, bundle, BUNDLE_DIGEST)
    result = verify_artifact(store, reference, BUNDLE_DIGEST,
                             Policy(require=True, keyless=BUNDLE_POLICY))  # fmt: skip
    assert result.verified and result.keyless["identities"] == ["cody@soyland.com"]
    assert result.keyless["layout"].startswith("bundle")
    # A bundle that refers to this digest but signs another subject is refused.
    other = "sha256:" + "2" * 64
    _push_bundle(store, bundle, other)
    with pytest.raises(VerificationError, match="subject is not this artifact"):
        verify_artifact(store, reference, other, Policy(require=True, keyless=BUNDLE_POLICY))


@pytest.mark.registry
def test_unsigned_artifact_under_a_keyless_policy(registry) -> None:
    reference, store = _store(registry, "nothing")
    with pytest.raises(VerificationError, match="is not signed"):
        verify_artifact(store, reference, LEGACY_DIGEST,
                        Policy(require=True, keyless=LEGACY_POLICY))  # fmt: skip


@pytest.mark.registry
def test_replaying_a_real_keyless_signature_onto_another_artifact_is_refused(
    registry, sigstore_data, run_cli
) -> None:
    """The CLI end to end: a real signature copied onto our own artifact's `.sig` tag."""
    from tests.test_signatures_registry import _push_manifest

    _, store = _store(registry, "falcosecurity/rules/falco-rules")
    pushed = _push_manifest(store, "1.0.0", b"our own rules")
    directory = sigstore_data / "cosign-legacy" / "github-actions-2026"
    _push_legacy(store, directory)
    manifest, _ = store.fetch_manifest(f"sha256-{LEGACY_DIGEST[7:]}.sig")
    store.push_manifest(manifest, OCI_MANIFEST, tag=f"sha256-{pushed.digest[7:]}.sig")
    result = run_cli(
        "artifact", "verify", f"{registry.host}/falcosecurity/rules/falco-rules:1.0.0",
        "--plain-http", "--certificate-oidc-issuer", GITHUB_ISSUER,
        "--certificate-identity-regexp", LEGACY_POLICY["certificate-identity-regexp"],
    )  # fmt: skip
    assert result.returncode == 6, result.stderr
    assert "names sha256:c05263" in result.stderr and "not this artifact" in result.stderr


# --- the trust root commands ---


def test_trust_update_show_and_reset(run_cli, tmp_path, falconet_home) -> None:
    from registry.keyless.trust_root import production_root_path

    production = production_root_path()
    assert production is not None, "sigstore (which embeds the production root) is a dependency"
    shown = json.loads(run_cli("trust", "show", "-o", "json").stdout)
    assert shown["source"].startswith("embedded production root")
    # An operator's root: the production one with the old CT log removed.
    document = json.loads(production.read_bytes())
    document["ctlogs"] = document["ctlogs"][1:]
    mine = tmp_path / "root.json"
    mine.write_text(json.dumps(document))
    updated = run_cli("trust", "update", "--from", str(mine), "-o", "json")
    assert updated.returncode == 0, updated.stderr
    assert len(json.loads(updated.stdout)["ctlogs"]) == 1
    text = run_cli("trust", "show")
    assert str(falconet_home) in text.stdout and "CT log" in text.stdout
    broken = tmp_path / "broken.json"
    broken.write_text('{"mediaType": "x"}')
    refused = run_cli("trust", "update", "--from", str(broken))
    assert refused.returncode == 2 and "not a usable Sigstore trusted root" in refused.stderr
    assert len(json.loads(run_cli("trust", "show", "-o", "json").stdout)["ctlogs"]) == 1
    assert run_cli("trust", "reset").returncode == 0
    assert json.loads(run_cli("trust", "show", "-o", "json").stdout)["source"].startswith(
        "embedded"
    )


def test_index_keyless_entries_are_required_by_default() -> None:
    from feeds.verify_policy import resolve_policy

    cosign = {"certificate-oidc-issuer": GITHUB_ISSUER,
              "certificate-identity-regexp": "https://github.com/falcosecurity/rules/"}  # fmt: skip
    policy = resolve_policy("ghcr.io/falcosecurity/rules/falco-rules:3", {"cosign": cosign},
                            {"require": False, "policies": []})  # fmt: skip
    assert policy.require and policy.keyless == cosign
    assert policy.origin == "index entry signature (keyless)"


def test_signature_b64_encoding_is_what_the_layer_carries(legacy) -> None:
    # Guard on the fixture itself: the signature annotation is base64 DER ECDSA.
    assert base64.b64decode(legacy[0]["dev.cosignproject.cosign/signature"])[0] == 0x30
    assert copy.deepcopy(legacy[0]) == legacy[0]
