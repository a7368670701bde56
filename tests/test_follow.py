"""Follow against a real registry: swap on a new digest, refuse what does not compile or is not
signed, keep last-good, roll back, one request per unchanged tick, back off on 429."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from feeds.context import FeedsContext, TransportFlags
from feeds.follow import Follower, FollowOptions, installed_file_versions
from feeds.install import install_dirs_from
from feeds.lastgood import rollback
from feeds.schedule import Schedule
from tests.follow_support import REPO, publish, rule_yaml
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.registry_server import RegistryServer


class TimedRequests(list):
    """The proxy's request log, with the time each request arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: object) -> None:
        self.times.append(time.monotonic())
        super().append(item)


def make_follower(
    host: str, falconet_home: Path, alerts: list[tuple[str, str]], updates: list[list[Path]]
) -> Follower:
    context = FeedsContext.load(None, None, TransportFlags(plain_http=True))
    options = FollowOptions(refs=(f"{host}/{REPO}:latest",), dirs=install_dirs_from(context))
    return Follower(
        context,
        options,
        Schedule.parse("1h", None, "immediate"),
        on_update=updates.append,
        on_alert=lambda ref, why: alerts.append((ref, why)),
    )


@pytest.fixture
def proxy(registry: RegistryServer) -> FaultProxy:
    proxy = FaultProxy(registry.url)
    proxy.requests = TimedRequests()
    proxy.start()
    yield proxy
    proxy.stop()


def rules_dir(falconet_home: Path) -> Path:
    return falconet_home / "rules"


def installed_names(falconet_home: Path) -> set[str]:
    return {p.name for p in rules_dir(falconet_home).glob("*.yaml")}


def test_new_digest_is_swapped_in_within_one_tick_and_unchanged_costs_one_request(
    registry: RegistryServer, proxy: FaultProxy, falconet_home: Path, tmp_path: Path
) -> None:
    publish(registry, tmp_path, "1.0.0", {"a.yaml": rule_yaml("Rule A")})
    alerts: list[tuple[str, str]] = []
    updates: list[list[Path]] = []
    follower = make_follower(proxy.host, falconet_home, alerts, updates)
    assert [r.status for r in follower.check()] == ["updated"]
    assert installed_names(falconet_home) == {"a.yaml"}

    before = len(proxy.requests)
    assert [r.status for r in follower.check()] == ["unchanged"]
    unchanged_tick = proxy.requests[before:]
    assert [(m, "/manifests/latest" in p) for m, p, _ in unchanged_tick] == [("HEAD", True)]

    publish(registry, tmp_path, "2.0.0", {"b.yaml": rule_yaml("Rule B")})
    result = follower.check()[0]
    assert (result.status, result.version) == ("updated", "2.0.0")
    # a.yaml is not shipped by 2.0.0 any more: deleted; b.yaml swapped in.
    assert installed_names(falconet_home) == {"b.yaml"}
    assert [p.name for p in updates[-1]] == ["b.yaml"]
    assert not alerts
    versions = installed_file_versions(follower.context.state_dir)
    assert versions == {str(rules_dir(falconet_home) / "b.yaml"): "2.0.0"}


def test_restart_does_not_download_again(
    registry: RegistryServer, proxy: FaultProxy, falconet_home: Path, tmp_path: Path
) -> None:
    publish(registry, tmp_path, "1.0.0", {"a.yaml": rule_yaml("Rule A")})
    make_follower(proxy.host, falconet_home, [], []).check()
    before = len(proxy.requests)
    fresh = make_follower(proxy.host, falconet_home, [], [])  # a new process, same state
    assert [r.status for r in fresh.check()] == ["unchanged"]
    assert [m for m, _, _ in proxy.requests[before:]] == ["HEAD"]


def test_ruleset_that_does_not_compile_is_refused_and_previous_keeps_running(
    registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    publish(registry, tmp_path, "2.0.0", {"b.yaml": rule_yaml("Rule B")})
    alerts: list[tuple[str, str]] = []
    follower = make_follower(registry.host, falconet_home, alerts, [])
    follower.check()
    good = (rules_dir(falconet_home) / "b.yaml").read_text()
    broken = {"b.yaml": rule_yaml("Rule B", "evt.type in (open"), "c.yaml": ""}
    publish(registry, tmp_path, "3.0.0", broken)
    result = follower.check()[0]
    assert result.status == "failed"
    assert (rules_dir(falconet_home) / "b.yaml").read_text() == good
    assert installed_names(falconet_home) == {"b.yaml"}
    assert len(alerts) == 1 and "invalid rules file" in alerts[0][1]
    # Not marked as applied: the next tick tries again (and refuses again).
    assert follower.check()[0].status == "failed"


def test_unsigned_version_refused_under_a_requiring_policy(
    registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    from registry import keys

    private = keys.generate_private_key()
    public = tmp_path / "feed.pub"
    public.write_bytes(keys.public_key_pem(private.public_key()))
    config = falconet_home / "config" / "falconet.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "verify:\n  policies:\n"
        f"    - {{match: '{registry.host}/{REPO}', key: '{public}', require: true}}\n"
    )
    publish(registry, tmp_path, "1.0.0", {"a.yaml": rule_yaml("Rule A")}, sign_with=private)
    alerts: list[tuple[str, str]] = []
    follower = make_follower(registry.host, falconet_home, alerts, [])
    assert follower.check()[0].status == "updated"
    publish(registry, tmp_path, "4.0.0", {"d.yaml": rule_yaml("Rule D")})  # not signed
    assert follower.check()[0].status == "failed"
    assert installed_names(falconet_home) == {"a.yaml"}
    assert "is not signed" in alerts[0][1]


def test_rollback_restores_last_good_and_follow_does_not_reapply(
    registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    publish(registry, tmp_path, "1.0.0", {"a.yaml": rule_yaml("Rule A")})
    follower = make_follower(registry.host, falconet_home, [], [])
    follower.check()
    v1 = (rules_dir(falconet_home) / "a.yaml").read_text()
    publish(registry, tmp_path, "2.0.0", {"b.yaml": rule_yaml("Rule B")})
    follower.check()
    restored = rollback(follower.context.state_dir, REPO)
    assert restored.version == "1.0.0"
    from feeds.lockfile import read_lock

    lock = read_lock(follower.context.state_dir / "falconet.lock")
    assert lock is not None
    assert (lock.artifacts[REPO].version, lock.artifacts[REPO].digest) == ("1.0.0", restored.digest)
    assert installed_names(falconet_home) == {"a.yaml"}
    assert (rules_dir(falconet_home) / "a.yaml").read_text() == v1
    assert follower.check()[0].status in ("unchanged", "held")
    assert installed_names(falconet_home) == {"a.yaml"}
    # The rollback is itself reversible, and a newer version is followed again.
    assert rollback(follower.context.state_dir, REPO).version == "2.0.0"
    publish(registry, tmp_path, "5.0.0", {"e.yaml": rule_yaml("Rule E")})
    assert follower.check()[0].status == "updated"
    assert installed_names(falconet_home) == {"e.yaml"}


def test_registry_down_keeps_last_good_and_backs_off(
    registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    publish(registry, tmp_path, "1.0.0", {"a.yaml": rule_yaml("Rule A")})
    alerts: list[tuple[str, str]] = []
    follower = make_follower(registry.host, falconet_home, alerts, [])
    follower.check()
    registry.stop()
    assert follower.check()[0].status == "failed"
    assert installed_names(falconet_home) == {"a.yaml"}
    assert alerts and alerts[0][0].endswith(":latest")
    # Consecutive network failures space the next attempts out (no request until then).
    assert follower.check()[0].status == "backoff"


def test_429_bursts_are_retried_after_retry_after(
    registry: RegistryServer, proxy: FaultProxy, falconet_home: Path, tmp_path: Path
) -> None:
    publish(registry, tmp_path, "1.0.0", {"a.yaml": rule_yaml("Rule A")})
    follower = make_follower(proxy.host, falconet_home, [], [])
    proxy.add(Fault("HEAD", "/manifests/latest", times=2, status=429, headers={"Retry-After": "1"}))
    assert follower.check()[0].status == "updated"
    heads = [
        t
        for t, (m, p, _) in zip(proxy.requests.times, proxy.requests, strict=True)
        if m == "HEAD" and "/manifests/latest" in p
    ]
    assert [s for m, p, s in proxy.requests if m == "HEAD"][:3] == [429, 429, 200]
    gaps = [b - a for a, b in itertools.pairwise(heads)][:2]
    assert all(gap >= 0.9 for gap in gaps), gaps


def test_requirements_are_checked_against_the_engine_versions_endpoint(
    registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    from engine.web import WebServer

    web = WebServer("127.0.0.1", 0).start()
    try:
        context = FeedsContext.load(None, None, TransportFlags(plain_http=True))
        options = FollowOptions(
            refs=(f"{registry.host}/{REPO}:latest",),
            dirs=install_dirs_from(context),
            engine_versions=f"{web.url}/versions",
        )
        alerts: list[tuple[str, str]] = []
        follower = Follower(
            context, options, Schedule.parse("1h", None, "immediate"),
            on_alert=lambda ref, why: alerts.append((ref, why)),
        )  # fmt: skip
        publish(registry, tmp_path, "1.0.0", {"a.yaml": rule_yaml("A")}, engine_semver="0.50.0")
        assert follower.check()[0].status == "updated"
        publish(registry, tmp_path, "2.0.0", {"b.yaml": rule_yaml("B")}, engine_semver="0.99.0")
        assert follower.check()[0].status == "failed"
        assert "0.99.0" in alerts[0][1]
        assert installed_names(falconet_home) == {"a.yaml"}
    finally:
        web.stop()


def test_several_refs_each_followed_on_its_own(
    registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    publish(registry, tmp_path, "1.0.0", {"a.yaml": rule_yaml("Rule A")})
    publish(registry, tmp_path, "1.0.0", {"z.yaml": rule_yaml("Rule Z")}, repo="other-rules")
    context = FeedsContext.load(None, None, TransportFlags(plain_http=True))
    refs = (f"{registry.host}/{REPO}:latest", f"{registry.host}/other-rules:latest")
    options = FollowOptions(refs=refs, dirs=install_dirs_from(context))
    follower = Follower(context, options, Schedule.parse("1h", None, "immediate"))
    assert [r.status for r in follower.check()] == ["updated", "updated"]
    publish(registry, tmp_path, "2.0.0", {"z.yaml": rule_yaml("Rule Z2")}, repo="other-rules")
    assert [r.status for r in follower.check()] == ["unchanged", "updated"]
    assert installed_names(falconet_home) == {"a.yaml", "z.yaml"}
    assert "Rule Z2" in (rules_dir(falconet_home) / "z.yaml").read_text()


def test_follower_thread_reports_updates_and_stops(
    registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    """How `falconet run` uses it: start() in a thread, on_update with the new rules files."""
    import queue

    from engine.metrics import Metrics

    publish(registry, tmp_path, "1.0.0", {"a.yaml": rule_yaml("Rule A")})
    context = FeedsContext.load(None, None, TransportFlags(plain_http=True))
    ref = f"{registry.host}/{REPO}:latest"
    updates: queue.Queue[list[Path]] = queue.Queue()
    metrics = Metrics()
    follower = Follower(
        context,
        FollowOptions(refs=(ref,), dirs=install_dirs_from(context)),
        Schedule.parse("100ms", None, "immediate"),
        on_update=updates.put,
        metrics=metrics,
    )
    follower.start()
    try:
        assert [p.name for p in updates.get(timeout=30)] == ["a.yaml"]
        publish(registry, tmp_path, "2.0.0", {"b.yaml": rule_yaml("Rule B")})
        assert [p.name for p in updates.get(timeout=30)] == ["b.yaml"]
    finally:
        follower.stop()
    assert metrics.follow_updates.labels(ref)._value.get() == 2
    assert metrics.follow_checks.labels(ref)._value.get() >= 2


def test_token_is_reused_across_ticks(
    registry_factory: object, tmp_path_factory: pytest.TempPathFactory, run_cli: object,
    falconet_home: Path, tmp_path: Path,
) -> None:  # fmt: skip
    """Behind the Docker token flow, unchanged ticks cost one HEAD and no token request."""
    from registry.artifacts import PushSpec, push_artifact
    from registry.options import ClientOptions
    from registry.reference import parse_reference
    from registry.store import open_store
    from registry.tarball import targz_bytes
    from tests.support.registry_server import PASSWORD, USER
    from tests.support.token_registry import TokenRegistryServer, TokenService

    service = TokenService(tmp_path_factory.mktemp("token"))
    server = TokenRegistryServer(tmp_path_factory.mktemp("token-registry"))
    server.token_service = service
    server.start()
    try:
        login = run_cli(  # type: ignore[operator]
            "registry", "login", server.host, "-u", USER, "--password-stdin", "--plain-http",
            input=PASSWORD,
        )  # fmt: skip
        assert login.returncode == 0, login.stderr
        ref = f"{server.host}/{REPO}:latest"
        archive = tmp_path / "a.tar.gz"
        archive.write_bytes(targz_bytes({"a.yaml": rule_yaml("Rule A").encode()}))
        options = ClientOptions(plain_http=True, username=USER, password=PASSWORD)
        push_artifact(
            open_store(parse_reference(ref), options), PushSpec("rulesfile", [archive], "1.0.0")
        )
        follower = make_follower(server.host, falconet_home, [], [])
        assert follower.check()[0].status == "updated"
        follower.check()
        before = len(service.requests)
        for _ in range(5):
            assert follower.check()[0].status == "unchanged"
        assert len(service.requests) == before
    finally:
        server.stop()
        service.stop()
