"""Hostile registries, indexes, key URLs and token services (issue 14, registry/feeds part).

A real registry (docker-registry) sits behind tests/support/fault_proxy.py, a small stand-in
that lies: endless bodies, bodies trickled one byte at a time, redirect loops, challenges that
point at foreign token services. Every case ends in a clear error and exit status, never a hang
or unbounded memory. The CLI runs as a real process with a generous timeout, so a hang on
today's code fails the test instead of blocking it; nothing asserts a duration.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.artifacts import PushSpec, push_artifact
from registry.options import ClientOptions
from registry.reference import parse_reference
from registry.store import open_store
from tests.conftest import CliRunner
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.http_server import StaticServer
from tests.support.registry_server import RegistryServer

REPO = "hostile/rules"
# The trickle tests give up after 2 s below 1 KiB/s instead of 30 s: same code, less waiting.
SLOW_ENV = {"FALCONET_TRANSFER_LOW_SPEED_TIME": "2s"}
BOUND_S = 90.0  # generous: a bounded failure takes seconds; today's code never returns


@pytest.fixture
def pushed(registry: RegistryServer, tmp_path: Path) -> dict[str, str]:
    """A rulesfile artifact (~256 KiB layer) and the digests of its manifest parts."""
    rules = tmp_path / "hostile_rules.yaml"
    rules.write_text(f"- list: l\n  items: [{os.urandom(128 << 10).hex()}]\n")
    ref = parse_reference(f"{registry.host}/{REPO}:1.0.0")
    store = open_store(ref, ClientOptions(plain_http=True))
    push_artifact(store, PushSpec(artifact_type="rulesfile", files=[rules], version="1.0.0"))
    manifest = json.loads(store.fetch_manifest("1.0.0")[0])
    return {
        "config": manifest["config"]["digest"],
        "layer": manifest["layers"][0]["digest"],
    }


@pytest.fixture
def proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    server = FaultProxy(registry.url).start()
    yield server
    server.stop()


def bounded(call: Callable[[], Any], seconds: float = BOUND_S) -> Any:
    """Run `call` in a thread; fail the test (instead of hanging) if it never returns."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the test thread
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"still running after {seconds:g} s: the read is not bounded")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# -- 1. every read stops at its bound -----------------------------------------------------


def test_endless_config_blob_stops_at_its_descriptor_size(
    run_cli: CliRunner, proxy: FaultProxy, pushed: dict[str, str], tmp_path: Path
) -> None:
    proxy.add(Fault("GET", f"/blobs/{pushed['config']}", times=100, endless=True))
    result = run_cli(
        "registry", "pull", f"{proxy.host}/{REPO}:1.0.0", "--plain-http",
        "--dest-dir", str(tmp_path / "out"), timeout=BOUND_S,
    )  # fmt: skip
    assert result.returncode == 6, result.stderr
    assert "descriptor" in result.stderr
    assert "Traceback" not in result.stderr


def test_endless_signature_payload_stops_at_its_descriptor_size(
    registry: RegistryServer, proxy: FaultProxy, pushed: dict[str, str]
) -> None:
    from registry.errors import VerificationError
    from registry.keys import generate_private_key, public_key_pem
    from registry.signatures import Policy, sign_artifact, verify_artifact

    direct = open_store(parse_reference(f"{registry.host}/{REPO}:1.0.0"), ClientOptions(True))
    key = generate_private_key()
    root = direct.resolve("1.0.0").digest
    payload = sign_artifact(direct, direct.reference, root, key).payload_digest
    proxy.add(Fault("GET", f"/blobs/{payload}", times=100, endless=True))
    hostile = open_store(parse_reference(f"{proxy.host}/{REPO}:1.0.0"), ClientOptions(True))
    policy = Policy(key_ref=public_key_pem(key.public_key()).decode(), require=True)
    with pytest.raises(VerificationError, match="descriptor"):
        bounded(lambda: verify_artifact(hostile, hostile.reference, root, policy))


def test_endless_key_url_is_read_up_to_the_key_cap(proxy: FaultProxy) -> None:
    from registry.keys import KeyFormatError, read_public_key

    proxy.add(Fault("GET", "/cosign.pub", times=10, endless=True))
    with pytest.raises(KeyFormatError, match="limit"):
        bounded(lambda: read_public_key(f"http://{proxy.host}/cosign.pub"))


def test_endless_index_is_refused_at_the_index_cap(run_cli: CliRunner, proxy: FaultProxy) -> None:
    proxy.add(Fault("GET", "/index.yaml", times=10, endless=True))
    result = run_cli("index", "add", "endless", f"http://{proxy.host}/index.yaml", timeout=BOUND_S)
    assert result.returncode == 1, result.stderr
    assert "limit" in result.stderr and "Traceback" not in result.stderr
    assert "endless" not in run_cli("index", "list").stdout


def test_endless_token_response_is_capped(
    registry: RegistryServer, proxy: FaultProxy, pushed: dict[str, str]
) -> None:
    from registry.transfer import TooLargeError

    realm = f"http://{proxy.host}/token"
    proxy.add(Fault("GET", "/token", times=10, endless=True))
    proxy.add(
        Fault("GET", "/manifests/", times=10, status=401,
              headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="test"'})
    )  # fmt: skip
    store = open_store(parse_reference(f"{proxy.host}/{REPO}:1.0.0"), ClientOptions(True))
    with pytest.raises(TooLargeError, match="token response"):
        bounded(lambda: store.fetch_manifest("1.0.0"))


# -- 2. a trickling registry is given up on (exit 5) --------------------------------------


@pytest.mark.parametrize("command", ["pull", "install", "mirror"])
def test_trickling_registry_is_given_up_with_exit_5(
    run_cli: CliRunner, proxy: FaultProxy, pushed: dict[str, str], tmp_path: Path, command: str
) -> None:
    proxy.add(Fault("GET", f"/blobs/{pushed['layer']}", times=100, trickle=0.5))
    ref = f"{proxy.host}/{REPO}:1.0.0"
    args = {
        "pull": ("registry", "pull", ref, "--dest-dir", str(tmp_path / "out")),
        "install": ("artifact", "install", ref),
        "mirror": ("artifact", "mirror", ref, f"oci-layout:{tmp_path}/copy"),
    }[command]
    result = run_cli(*args, "--plain-http", env=SLOW_ENV, timeout=BOUND_S)
    assert result.returncode == 5, result.stderr
    assert "bytes/s" in result.stderr and "Traceback" not in result.stderr


def test_registry_trickling_its_headers_is_cut_off_at_the_transfer_deadline(
    run_cli: CliRunner, proxy: FaultProxy, pushed: dict[str, str], tmp_path: Path
) -> None:
    """No read ever times out (a byte every 0.5 s) and no body is reached: only the deadline
    over the whole request can end it."""
    proxy.add(Fault("GET", "/manifests/", times=100, trickle_headers=0.5))
    result = run_cli(
        "registry", "pull", f"{proxy.host}/{REPO}:1.0.0", "--plain-http",
        "--dest-dir", str(tmp_path / "out"), env={"FALCONET_TRANSFER_TIMEOUT": "3s"},
        timeout=BOUND_S,
    )  # fmt: skip
    assert result.returncode == 5, result.stderr
    assert "no complete answer within 3 s" in result.stderr


def test_trickling_registry_fails_a_follow_tick_instead_of_hanging_it(
    registry: RegistryServer,
    proxy: FaultProxy,
    pushed: dict[str, str],
    falconet_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from feeds.context import FeedsContext, TransportFlags
    from feeds.follow import Follower, FollowOptions
    from feeds.install import install_dirs_from
    from feeds.schedule import Schedule

    monkeypatch.setenv("FALCONET_TRANSFER_LOW_SPEED_TIME", "2s")
    proxy.add(Fault("GET", "/manifests/", times=100, trickle=0.5))
    context = FeedsContext.load(None, None, TransportFlags(plain_http=True))
    alerts: list[tuple[str, str]] = []
    follower = Follower(
        context,
        FollowOptions(refs=(f"{proxy.host}/{REPO}:1.0.0",), dirs=install_dirs_from(context)),
        Schedule.parse("1h", None, "immediate"),
        on_alert=lambda ref, why: alerts.append((ref, why)),
    )
    results = bounded(follower.check)
    assert results[0].status == "failed"
    assert "bytes/s" in (results[0].error or "")
    assert alerts


# -- 4. a redirect loop is named -----------------------------------------------------------


def test_redirect_loop_is_reported_as_such(
    run_cli: CliRunner, proxy: FaultProxy, pushed: dict[str, str], tmp_path: Path
) -> None:
    loop = f"/v2/{REPO}/manifests/1.0.0"
    proxy.add(Fault("GET", "/manifests/1.0.0", times=1000, status=302, headers={"Location": loop}))
    result = run_cli(
        "registry", "pull", f"{proxy.host}/{REPO}:1.0.0", "--plain-http",
        "--dest-dir", str(tmp_path / "out"), timeout=BOUND_S,
    )  # fmt: skip
    assert result.returncode == 5, result.stderr
    assert "redirect loop" in result.stderr
    assert "bug" not in result.stderr


# -- 3. trust decisions --------------------------------------------------------------------


def test_credentials_never_go_to_a_plain_http_realm_on_another_host(
    registry: RegistryServer, proxy: FaultProxy, pushed: dict[str, str]
) -> None:
    from registry.errors import AuthError

    realm_server = StaticServer().start()  # a token service that records what it is sent
    try:
        port = realm_server.url.rsplit(":", 1)[1]
        realm = f"http://localhost:{port}/token"  # not the registry's host name (127.0.0.1)
        proxy.add(
            Fault("GET", "/manifests/", times=10, status=401,
                  headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="test"'})
        )  # fmt: skip
        options = ClientOptions(plain_http=True, username="alice", password="s3cret")
        store = open_store(parse_reference(f"{proxy.host}/{REPO}:1.0.0"), options)
        with pytest.raises(AuthError, match="credentials withheld"):
            bounded(lambda: store.fetch_manifest("1.0.0"))
        assert realm_server.requests, "the token service was asked (anonymously)"
        assert all("Authorization" not in r.headers for r in realm_server.requests)
    finally:
        realm_server.stop()


def test_an_https_registry_never_sends_credentials_to_an_http_realm() -> None:
    from registry.auth import credentials_allowed

    assert credentials_allowed("https://auth.docker.io/token", "docker.io", "https") is None
    assert "plain HTTP" in (credentials_allowed("http://ghcr.io/token", "ghcr.io", "https") or "")
    assert credentials_allowed("http://127.0.0.1:5001/t", "127.0.0.1:5000", "http") is None
    assert credentials_allowed("http://localhost:5001/t", "127.0.0.1:5000", "http")


def test_policy_for_a_registry_cannot_be_dodged_by_spelling_its_name(
    run_cli: CliRunner, registry: RegistryServer, pushed: dict[str, str], falconet_home: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The policy names localhost:PORT; the pull spells it LOCALHOST:PORT. Same registry, so
    the (unsigned) artifact must be refused by the policy's key requirement."""
    from registry.keys import generate_private_key, public_key_pem

    port = registry.host.rsplit(":", 1)[1]
    key = tmp_path / "cosign.pub"
    key.write_bytes(public_key_pem(generate_private_key().public_key()))
    (falconet_home / "config").mkdir()
    (falconet_home / "config" / "falconet.yaml").write_text(
        f"verify:\n  policies:\n    - match: localhost:{port}/hostile/*\n      key: {key}\n"
    )
    result = run_cli(
        "registry", "pull", f"LOCALHOST:{port}/{REPO}:1.0.0", "--plain-http",
        "--dest-dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 6, result.stderr
    assert "not signed" in result.stderr


@pytest.mark.parametrize(
    ("reference", "pattern"),
    [
        ("LOCALHOST:5000/x/rules:1", "localhost:5000/x/*"),
        ("ghcr.io:443/falcosecurity/rules:3", "ghcr.io/falcosecurity/*"),
        ("index.docker.io/falcosecurity/rules:3", "docker.io/falcosecurity/*"),
        ("registry-1.docker.io/falcosecurity/rules:3", "DOCKER.IO/falcosecurity/*"),
        ("example.com:80/x/rules:1", "example.com/x/*"),
    ],
)
def test_policies_match_canonical_registry_names(reference: str, pattern: str) -> None:
    from feeds.verify_policy import resolve_policy

    policy = resolve_policy(reference, None, {"policies": [{"match": pattern, "key": "k.pub"}]})
    assert policy.key_ref == "k.pub"


def test_verdict_names_the_index_that_published_the_key(run_cli: CliRunner) -> None:
    result = run_cli("artifact", "install", "falconet-rules:0.2.0", "-o", "json")
    assert result.returncode == 0, result.stderr
    artifacts = {a["name"]: a for a in json.loads(result.stdout)["artifacts"]}
    verification = artifacts["falconet-rules"]["verification"]
    assert verification["statement"] == "verified with the key published by index falconet"


def test_configured_key_verdict_says_it_is_the_users_key(
    registry: RegistryServer, pushed: dict[str, str]
) -> None:
    from feeds.verify_policy import resolve_policy
    from registry.keys import generate_private_key, public_key_pem
    from registry.signatures import sign_artifact, verify_artifact

    store = open_store(parse_reference(f"{registry.host}/{REPO}:1.0.0"), ClientOptions(True))
    key = generate_private_key()
    root = store.resolve("1.0.0").digest
    sign_artifact(store, store.reference, root, key)
    pem = public_key_pem(key.public_key()).decode()
    policy = resolve_policy(
        str(store.reference), None, {"policies": [{"match": f"{registry.host}/*", "key": pem}]}
    )
    result = verify_artifact(store, store.reference, root, policy)
    assert result.statement.startswith("verified with the key you configured")
    assert "index" not in result.statement


def test_plain_http_index_from_a_loopback_host_is_accepted(
    run_cli: CliRunner, falconet_home: Path
) -> None:
    server = StaticServer({"/index.yaml": b"[]\n"}).start()
    try:
        result = run_cli("index", "add", "local", f"{server.url}/index.yaml")
        assert result.returncode == 0, result.stderr
    finally:
        server.stop()


def test_plain_http_index_from_another_host_needs_the_insecure_option(
    falconet_home: Path, tmp_path: Path
) -> None:
    """In a network namespace of its own, 10.203.0.1 is a non-loopback address of a host that
    serves index.yaml over plain HTTP: `index add` refuses it, `--insecure` accepts it."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("a network namespace needs root, unshare(1) and ip(8)")
    served = tmp_path / "served"
    served.mkdir()
    (served / "index.yaml").write_text("[]\n")
    url = "http://10.203.0.1:8080/index.yaml"
    cli = f"{sys.executable} -m cli index add"
    script = f"""
set -u
ip link set lo up && ip addr add 10.203.0.1/32 dev lo || exit 99
{sys.executable} -m http.server --bind 10.203.0.1 --directory {served} 8080 >/dev/null 2>&1 &
server=$!
for i in $(seq 1 100); do
  {sys.executable} -c "import socket; socket.create_connection(('10.203.0.1', 8080), 1)" \
    2>/dev/null && break
  sleep 0.1
done
{cli} remote {url}; echo "plain=$?"
{cli} remote {url} --insecure; echo "insecure=$?"
kill $server
"""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "FALCONET_HOME": str(falconet_home)}
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        capture_output=True, text=True, env=env, timeout=BOUND_S, cwd=falconet_home,
    )  # fmt: skip
    if "plain=" not in done.stdout:
        pytest.skip(f"cannot set up a network namespace here: {done.stderr.strip()[:200]}")
    assert "plain=2" in done.stdout, done.stdout + done.stderr
    assert "refusing plain HTTP from 10.203.0.1" in done.stderr
    assert "insecure=0" in done.stdout, done.stdout + done.stderr


# -- hostile index files -------------------------------------------------------------------


def test_index_with_yaml_aliases_is_refused(run_cli: CliRunner) -> None:
    """Nested aliases (a "billion laughs" document) would expand exponentially when entries
    become text; falcoctl's format never needs them."""
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    bomb = "- name: bomb\n  type: rulesfile\n  registry: r.example\n  repository: x\n"
    bomb += "  keywords: *a11\n  description: {" + ", ".join(levels) + "}\n"
    server = StaticServer({"/index.yaml": bomb.encode()}).start()
    try:
        result = run_cli("index", "add", "bomb", f"{server.url}/index.yaml", timeout=BOUND_S)
    finally:
        server.stop()
    assert result.returncode == 1, result.stderr
    assert "aliases are not accepted" in result.stderr


def test_index_names_with_control_characters_cannot_forge_table_rows(
    run_cli: CliRunner,
) -> None:
    forged = "ok\\nfalco-rules          rulesfile  ghcr.io/falcosecurity/rules"
    entries = (
        f'- name: "{forged}"\n  type: rulesfile\n  registry: r.example\n  repository: x\n'
        "- name: fine\n  type: rulesfile\n  registry: r.example\n  repository: y\n"
        '  description: "line one\\nFORGED ROW"\n'
    )
    server = StaticServer({"/index.yaml": entries.encode()}).start()
    try:
        refused = run_cli("index", "add", "forged", f"{server.url}/index.yaml")
        assert refused.returncode == 1 and "not one line of text" in refused.stderr
        fine = entries.split("- name: fine", 1)[1]
        server.files["/index.yaml"] = ("- name: fine" + fine).encode()
        assert run_cli("index", "add", "fine", f"{server.url}/index.yaml").returncode == 0
    finally:
        server.stop()
    listed = run_cli("artifact", "list")
    assert listed.returncode == 0, listed.stderr
    assert not any(line.startswith("FORGED ROW") for line in listed.stdout.splitlines())


def test_oci_layout_whose_index_never_ends_is_refused(run_cli: CliRunner, tmp_path: Path) -> None:
    """An OCI layout is as untrusted as a registry (it comes on a USB stick to an air-gapped
    site): an index.json that is /dev/zero is read up to its cap, not forever."""
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").symlink_to("/dev/zero")
    result = run_cli("registry", "pull", f"oci-layout:{layout}:1.0.0",
                     "--dest-dir", str(tmp_path / "o"), timeout=BOUND_S)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "limit" in result.stderr and "Traceback" not in result.stderr


def test_pace_measures_the_rate_from_the_body_and_the_deadline_from_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wait before the body (Retry-After, backoff) is not slowness; trickling is; and no
    transfer outlives its deadline. A fake clock keeps this free of real waiting."""
    from registry import transfer

    now = [1000.0]
    monkeypatch.setattr(transfer.time, "monotonic", lambda: now[0])
    pace = transfer.Pace("blob", transfer.TransferLimits(1024, 30.0, 900.0))
    now[0] += 40  # a Retry-After before the body
    pace.restart_window()
    pace.check(500)  # a small document arriving at once is fine
    now[0] += 31
    with pytest.raises(transfer.SlowTransferError, match="below the 1024 bytes/s"):
        pace.check(10)  # 10 bytes in 31 s
    fast = transfer.Pace("blob", transfer.TransferLimits(1024, 30.0, 900.0))
    for _ in range(29):  # a steady 64 KiB/s for 870 s: never too slow...
        now[0] += 30
        fast.check((64 << 10) * 30)
    now[0] += 31
    with pytest.raises(transfer.SlowTransferError, match="not complete after 900 s"):
        fast.check(64 << 10)  # ...but past the deadline


def test_public_key_is_never_fetched_in_clear_from_another_host() -> None:
    """Refused before any connection: 192.0.2.1 (TEST-NET-1) is never contacted."""
    from registry.keys import KeyFormatError, read_public_key

    with pytest.raises(KeyFormatError, match="over plain HTTP"):
        read_public_key("http://192.0.2.1/cosign.pub")
