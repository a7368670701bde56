"""Failures on the wire: 5xx, 429 with Retry-After, resets mid-blob, a registry stopped
mid-pull, and tampered blobs. Each ends in a successful retry or a clear error, and never in a
half-written output."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.artifacts import PushSpec, pull_artifact, push_artifact
from registry.errors import DigestMismatchError, NetworkError
from registry.reference import parse_reference
from registry.store import ClientOptions, open_store
from tests.support.fault_proxy import Fault, FaultProxy

# Small waits keep the retry tests fast; the backoff schedule itself is the same code.
PLAIN = ClientOptions(plain_http=True)
FAST = ClientOptions(plain_http=True, backoff_base=0.01, backoff_max=0.05, max_retries=3)


@pytest.fixture
def artifact(registry, tmp_path: Path) -> str:
    """A rulesfile with a ~3 MiB layer (several 1 MiB chunks) pushed straight to the registry."""
    rules = tmp_path / "big_rules.yaml"
    rules.write_text(f"- list: l\n  items: [{os.urandom(3 << 20).hex()}]\n")
    ref = parse_reference(f"{registry.host}/faults/rules:1.0.0")
    push_artifact(
        open_store(ref, ClientOptions(plain_http=True)),
        PushSpec(artifact_type="rulesfile", files=[rules], version="1.0.0"),
    )
    return "faults/rules:1.0.0"


@pytest.fixture
def proxy(registry) -> Iterator[FaultProxy]:
    server = FaultProxy(registry.url).start()
    yield server
    server.stop()


def _pull(proxy: FaultProxy, artifact: str, out: Path, options: ClientOptions = FAST):
    return pull_artifact(open_store(parse_reference(f"{proxy.host}/{artifact}"), options), out)


def test_500s_are_retried_then_succeed(proxy: FaultProxy, artifact: str, tmp_path: Path) -> None:
    proxy.add(Fault("GET", "/manifests/", times=2, status=500))
    proxy.add(Fault("GET", "/blobs/", times=1, status=503))
    result = _pull(proxy, artifact, tmp_path / "out")
    assert result.files[0].stat().st_size > 1 << 20
    assert proxy.count("GET", "/manifests/") == 3


def test_429_waits_for_retry_after(proxy: FaultProxy, artifact: str, tmp_path: Path) -> None:
    fault = proxy.add(Fault("GET", "/manifests/", status=429, headers={"Retry-After": "1"}))
    result = _pull(proxy, artifact, tmp_path / "out")
    assert fault.fired == 1
    assert result.files[0].exists()


def test_retry_after_beyond_the_limit_is_a_clear_error(
    proxy: FaultProxy, artifact: str, tmp_path: Path
) -> None:
    proxy.add(Fault("GET", "/manifests/", status=429, headers={"Retry-After": "3600"}))
    with pytest.raises(NetworkError, match="too many requests"):
        _pull(proxy, artifact, tmp_path / "out")
    assert proxy.count("GET", "/manifests/") == 1


def test_persistent_500_gives_up_with_nothing_written(
    proxy: FaultProxy, artifact: str, tmp_path: Path
) -> None:
    proxy.add(Fault("GET", "/blobs/", times=100, status=500))
    out = tmp_path / "out"
    with pytest.raises(NetworkError, match="server error HTTP 500"):
        _pull(proxy, artifact, out)
    assert not out.exists() or list(out.iterdir()) == []


def _layer_digest(registry, artifact: str) -> str:
    store = open_store(parse_reference(f"{registry.host}/{artifact}"), PLAIN)
    return json.loads(store.fetch_manifest("1.0.0")[0])["layers"][0]["digest"]


def test_reset_mid_blob_is_resumed(
    registry, proxy: FaultProxy, artifact: str, tmp_path: Path
) -> None:
    layer = _layer_digest(registry, artifact)
    fault = proxy.add(Fault("GET", f"/blobs/{layer}", times=1, truncate=True))
    options = ClientOptions(plain_http=True, backoff_base=0.01, cache_dir=tmp_path / "cache")
    result = _pull(proxy, artifact, tmp_path / "out", options)
    assert fault.fired == 1
    assert result.files[0].stat().st_size > 1 << 20
    # The retry resumed where the cut happened (HTTP Range -> 206), not from byte 0.
    assert any(m == "GET" and "/blobs/" in p and st == 206 for m, p, st in proxy.requests)
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".part")]
    assert leftovers == []


def test_registry_stopped_mid_pull_is_a_clear_error(
    registry, proxy: FaultProxy, artifact: str, tmp_path: Path
) -> None:
    # The layer transfer is cut half-way, and the registry is gone for every retry.
    proxy.add(Fault("GET", "/blobs/", times=1, truncate=True, before=None))
    proxy.add(Fault("GET", "/blobs/", times=1, status=None, before=registry.stop))
    out = tmp_path / "out"
    cache = tmp_path / "cache"
    options = ClientOptions(plain_http=True, backoff_base=0.01, max_retries=2, cache_dir=cache)
    with pytest.raises(NetworkError):
        _pull(proxy, artifact, out, options)
    assert not out.exists() or list(out.iterdir()) == []
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_tampered_blob_is_refused(run_cli, registry, artifact: str, tmp_path: Path) -> None:
    store = open_store(
        parse_reference(f"{registry.host}/{artifact}"), ClientOptions(plain_http=True)
    )
    manifest = json.loads(store.fetch_manifest("1.0.0")[0])
    layer = registry.blob_path(manifest["layers"][0]["digest"])
    data = bytearray(layer.read_bytes())
    data[100] ^= 0xFF
    layer.write_bytes(bytes(data))

    out = tmp_path / "out"
    result = run_cli(
        "registry", "pull", f"{registry.host}/{artifact}", "--dest-dir", str(out), "--plain-http"
    )
    assert result.returncode == 6, result.stderr
    assert "does not match" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []
    with pytest.raises(DigestMismatchError):
        pull_artifact(store, tmp_path / "out2")


def test_failed_upload_session_is_restarted(registry, proxy: FaultProxy, tmp_path: Path) -> None:
    fault = proxy.add(Fault("PUT", "/blobs/uploads/", times=1, status=500))
    rules = tmp_path / "up_rules.yaml"
    rules.write_text("- rule: r\n")
    ref = parse_reference(f"{proxy.host}/faults/upload:1.0.0")
    push_artifact(
        open_store(ref, FAST),
        PushSpec(artifact_type="rulesfile", files=[rules], version="1.0.0"),
    )
    assert fault.fired == 1
    # The retry opened a new upload session rather than reusing the failed one.
    assert proxy.count("POST", "/blobs/uploads/") >= 3
    assert pull_artifact(open_store(ref, FAST), tmp_path / "out").config.name == "upload"


def test_progress_reports_every_byte_both_ways(registry, tmp_path: Path) -> None:
    seen: dict[str, list[int]] = {}

    def progress(label: str, advanced: int, total: int) -> None:
        seen.setdefault(label, []).append(advanced)
        assert total > 0

    rules = tmp_path / "prog_rules.yaml"
    rules.write_text(f"- list: l\n  items: [{os.urandom(1 << 20).hex()}]\n")
    ref = parse_reference(f"{registry.host}/progress/rules:1.0.0")
    pushed = push_artifact(
        open_store(ref, ClientOptions(plain_http=True)),
        PushSpec(artifact_type="rulesfile", files=[rules], version="1.0.0"),
        progress,
    )
    size = pushed.layers[0].size
    assert sum(seen.pop("prog_rules.tar.gz")) == size
    pull_artifact(
        open_store(ref, ClientOptions(plain_http=True)), tmp_path / "out", progress=progress
    )
    assert sum(seen["prog_rules.tar.gz"]) == size


def test_proxy_from_the_environment_is_used(
    run_cli, registry, proxy: FaultProxy, artifact: str, tmp_path: Path
) -> None:
    env = {"HTTP_PROXY": f"http://{proxy.host}", "http_proxy": f"http://{proxy.host}"}
    env |= {"NO_PROXY": "", "no_proxy": ""}
    out = tmp_path / "out"
    result = run_cli(
        "registry", "pull", f"{registry.host}/{artifact}", "--dest-dir", str(out), "--plain-http",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert proxy.count("GET", "/manifests/") >= 1
    assert proxy.count("GET", "/blobs/") >= 1


def test_head_without_digest_falls_back_to_get(proxy: FaultProxy, artifact: str, registry) -> None:
    truth = open_store(parse_reference(f"{registry.host}/{artifact}"), PLAIN).resolve("1.0.0")
    fault = proxy.add(Fault("HEAD", "/manifests/", rewrite_headers={"Docker-Content-Digest": None}))
    via_proxy = open_store(parse_reference(f"{proxy.host}/{artifact}"), FAST).resolve("1.0.0")
    assert fault.fired == 1
    assert via_proxy == truth
    assert proxy.count("GET", "/manifests/") == 1


def test_a_registry_lying_about_the_manifest_digest_is_refused(
    proxy: FaultProxy, artifact: str, tmp_path: Path
) -> None:
    lie = "sha256:" + "0" * 64
    proxy.add(Fault("GET", "/manifests/", rewrite_headers={"Docker-Content-Digest": lie}))
    with pytest.raises(DigestMismatchError, match="does not match the registry's"):
        _pull(proxy, artifact, tmp_path / "out")
    assert not (tmp_path / "out").exists()
