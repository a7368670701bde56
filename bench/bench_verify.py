"""What signature verification adds to an install, against a loopback registry.

Starts Debian's docker-registry on 127.0.0.1, pushes a rules file artifact (Falco's own
falco_rules.yaml when ../shared is there), signs it, then for 20 rounds, each on a fresh store
(new connection, no blob cache), times side by side:
  fetch:  the manifest and every blob, digest-checked (what an unverified install downloads);
  verify: verify_artifact on the same store (public key read, .sig manifest, payload blob,
          payload digest, ECDSA P-256 check, payload digest claim).
Prints the medians and the median of the per-round verify/fetch ratios. Goal: verify <= 20 ms.

    PYTHONPATH=$PWD /work/main/.venv/bin/python bench/bench_verify.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from registry import keys  # noqa: E402
from registry.artifacts import PushSpec, push_artifact  # noqa: E402
from registry.options import ClientOptions  # noqa: E402
from registry.reference import parse_reference  # noqa: E402
from registry.signatures import Policy, sign_artifact, verify_artifact  # noqa: E402
from registry.store import Descriptor, open_store  # noqa: E402
from tests.support.registry_server import RegistryServer  # noqa: E402

ROUNDS = 20
SHARED_RULES = REPO.parent / "shared" / "upstream-rules" / "falco_rules.yaml"


def rules_file(work: Path) -> Path:
    if SHARED_RULES.is_file():
        return SHARED_RULES
    path = work / "bench_rules.yaml"
    rules = [
        f"- rule: bench rule {i}\n  desc: d\n  condition: evt.type = open and fd.name = /x{i}\n"
        f"  output: o\n  priority: WARNING\n"
        for i in range(400)
    ]
    path.write_text("".join(rules))
    return path


def fetch_unverified(store, tag: str) -> str:  # type: ignore[no-untyped-def]
    data, descriptor = store.fetch_manifest(tag)
    manifest = json.loads(data)
    for blob in [manifest["config"], *manifest["layers"]]:
        store.fetch_blob_bytes(Descriptor.from_json(blob), 64 << 20)
    return descriptor.digest


def main() -> None:
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        server = RegistryServer(work / "registry").start()
        try:
            run(server, work)
        finally:
            server.stop()


def run(server: RegistryServer, work: Path) -> None:
    options = ClientOptions(plain_http=True)
    reference = parse_reference(f"{server.host}/bench/rules:1.0.0")
    rules = rules_file(work)
    pushed = push_artifact(
        open_store(reference, options),
        PushSpec(artifact_type="rulesfile", files=[rules], version="1.0.0"),
    )
    pair = keys.write_key_pair(work / "cosign", b"bench")
    private = keys.read_private_key(pair.private_path, lambda: b"bench")
    sign_artifact(open_store(reference, options), reference, pushed.digest, private)
    policy = Policy(key_ref=str(pair.public_path), require=True, origin="bench")

    fetch_ms, verify_ms, ratios = [], [], []
    for _ in range(ROUNDS):
        store = open_store(reference, options)
        started = time.perf_counter()
        digest = fetch_unverified(store, "1.0.0")
        fetched = time.perf_counter()
        result = verify_artifact(store, reference, digest, policy)
        verified = time.perf_counter()
        assert result.verified
        fetch_ms.append((fetched - started) * 1000)
        verify_ms.append((verified - fetched) * 1000)
        ratios.append((verified - fetched) / (fetched - started))

    print(f"artifact: {rules.name} ({rules.stat().st_size} bytes), {ROUNDS} rounds, loopback")
    print(f"fetch manifest+blobs, unverified: median {statistics.median(fetch_ms):7.2f} ms")
    print(f"signature verification:          median {statistics.median(verify_ms):7.2f} ms")
    print(f"verify / fetch (median of ratios): {statistics.median(ratios):.2f}")
    print(f"goal verify <= 20 ms: {'met' if statistics.median(verify_ms) <= 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
