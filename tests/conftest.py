"""Shared fixtures: hermetic FALCONET_HOME, the CLI as a real process, a real OCI registry."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.registry_server import REGISTRY_BIN, RegistryServer

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture
def falconet_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every file falconet writes goes under this directory (config, caches, state, rules)."""
    home = tmp_path / "falconet-home"
    home.mkdir()
    monkeypatch.setenv("FALCONET_HOME", str(home))
    monkeypatch.delenv("FALCONET_CONFIG", raising=False)
    # Keep docker credentials of the machine out of the tests.
    monkeypatch.setenv("DOCKER_CONFIG", str(home / "docker"))
    return home


CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_cli(falconet_home: Path) -> CliRunner:
    """Run `falconet ARGS...` as a real process; returns the CompletedProcess (text mode)."""

    def run(
        *args: str,
        input: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = str(REPO_ROOT)
        full_env["FALCONET_HOME"] = str(falconet_home)
        full_env["DOCKER_CONFIG"] = str(falconet_home / "docker")
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "cli", *args],
            input=input,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            cwd=falconet_home,
        )

    return run


def _need_registry() -> None:
    if not (shutil.which("docker-registry") or os.path.exists(REGISTRY_BIN)):
        pytest.skip("Debian's docker-registry is not installed (make install adds it)")
    if not shutil.which("htpasswd"):
        pytest.skip("htpasswd (apache2-utils) is not installed (make install adds it)")


@pytest.fixture
def registry_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RegistryServer]]:
    """Start registries with a config of the test's own: factory(auth=False, tls=False)."""
    _need_registry()
    started: list[RegistryServer] = []

    def start(auth: bool = False, tls: bool = False) -> RegistryServer:
        server = RegistryServer(tmp_path_factory.mktemp("registry"), auth=auth, tls=tls).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def registry(registry_factory: Callable[..., RegistryServer]) -> RegistryServer:
    """A plain-HTTP registry with no auth."""
    return registry_factory()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(
            f"{SHARED} is absent: the upstream rules/events are only in the project's "
            "workspace, not in a user's clone"
        )
    return SHARED


@pytest.fixture
def live_ebpf_shared(request: pytest.FixtureRequest) -> Iterator[None]:
    """For live eBPF tests: they run while no ring-buffer storm test runs on the machine."""
    from tests.support.live_ebpf import capture_turn

    if "live_ebpf_exclusive" in request.fixturenames:  # the storm test's own turn covers it
        yield
        return
    with capture_turn(exclusive=False):
        yield


@pytest.fixture
def live_ebpf_exclusive() -> Iterator[None]:
    """For tests that flood the ring buffer on purpose: no other live eBPF test runs meanwhile."""
    from tests.support.live_ebpf import capture_turn

    with capture_turn(exclusive=True):
        yield
