"""Offline keyless (Sigstore) verification cost, side by side in one run: a real production
legacy `.sig` layer (every step: signature, chain, SET, body, SCT, identity, claims), a cosign
v3 bundle through sigstore-python, and a key-based signature check of the same payload for
scale. Reads ../shared/upstream-sigstore. CPU seconds beside wall.

    .venv/bin/python bench/bench_keyless.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from registry import simplesigning
from registry.keyless.bundle import verify_bundle
from registry.keyless.identity import KeylessPolicy
from registry.keyless.legacy import verify_legacy_layer
from registry.keyless.trust_root import load_trust_root
from registry.keys import generate_private_key

DATA = Path(__file__).resolve().parents[2] / "shared" / "upstream-sigstore"
LEGACY_DIGEST = "sha256:c05263d2ff654c3a94243662440913f045075d59c436e2c69e9145ec2b87a321"
BUNDLE_DIGEST = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"


def timed(what: str, repeat: int, call: Callable[[], object]) -> float:
    call()  # warm (imports, caches)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        call()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{what:44} {wall / repeat * 1e3:7.2f} ms wall  {cpu / repeat * 1e3:7.2f} ms CPU")
    return cpu / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    repeat = parser.parse_args().repeat
    if not DATA.is_dir():
        sys.exit(f"{DATA} is absent: the production Sigstore samples are in the workspace only")
    trust = load_trust_root()
    legacy_dir = DATA / "cosign-legacy" / "github-actions-2026"
    manifest = json.loads((legacy_dir / "manifest.json").read_text())
    annotations = manifest["layers"][0]["annotations"]
    payload = (legacy_dir / "payload.json").read_bytes()
    workflow = r"https://github\.com/salrashid123/go-bazel-github-workflow/"
    issuer = "https://token.actions.githubusercontent.com"
    legacy_policy = KeylessPolicy.from_fields(
        {"certificate-identity-regexp": workflow, "certificate-oidc-issuer": issuer}, "bench"
    )
    bundle = (DATA / "cosign-v3-bundle" / "oci-attestation.sigstore.json").read_bytes()
    bundle_policy = KeylessPolicy.from_fields(
        {"certificate-identity": "cody@soyland.com",
         "certificate-oidc-issuer": "https://github.com/login/oauth"}, "bench",
    )  # fmt: skip
    key = generate_private_key()
    signature = simplesigning.sign_payload(key, payload)
    public = key.public_key()

    started = time.perf_counter()
    verify_bundle(bundle, trust, bundle_policy, artifact_digest=BUNDLE_DIGEST)
    first = (time.perf_counter() - started) * 1e3
    print(f"first bundle verification (imports sigstore): {first:.0f} ms")

    def key_based() -> object:
        return simplesigning.signature_matches(public, payload, signature)

    def legacy() -> object:
        return verify_legacy_layer(annotations, payload, LEGACY_DIGEST, trust, legacy_policy)

    def bundled() -> object:
        return verify_bundle(bundle, trust, bundle_policy, artifact_digest=BUNDLE_DIGEST)

    key_cpu = timed("key-based signature (same payload)", repeat, key_based)
    legacy_cpu = timed("keyless legacy .sig layer, every step", repeat, legacy)
    bundle_cpu = timed("keyless v3 bundle (sigstore-python)", repeat, bundled)
    print(f"ratios (CPU): legacy/key {legacy_cpu / key_cpu:.1f}x, "
          f"bundle/key {bundle_cpu / key_cpu:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
