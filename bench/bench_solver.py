"""Solver figures, measured in one run on this machine:

1. resolution over a synthetic in-memory index of 200 artifacts x 30 versions with random
   dependencies (caret constraints, some alternatives), 20 top-level requests (goal <= 0.5 s),
   plus a variant whose newest versions conflict so the solver must backtrack;
2. the registry-backed catalog over a loopback docker-registry (30 repositories x 4 versions),
   reached through a local proxy that delays every request by 25 ms (a registry one WAN round
   trip away; loopback alone hides what concurrency buys): the same resolution with one worker
   (tag lists and configs fetched one at a time) and with 8 workers, side by side, with the
   request counts that show each tag list is fetched once per run.

Run: .venv/bin/python bench/bench_solver.py   (part 2 needs docker-registry: make install)
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feeds.catalog import MemoryCatalog  # noqa: E402
from feeds.registry_catalog import RegistryCatalog  # noqa: E402
from feeds.solver import Request, Solver  # noqa: E402
from feeds.versions import parse_range  # noqa: E402
from registry.artifacts import (  # noqa: E402
    ArtifactConfig,
    Dependency,
    PushSpec,
    Requirement,
    push_artifact,
)
from registry.options import ClientOptions  # noqa: E402
from registry.reference import parse_reference  # noqa: E402
from registry.store import open_store  # noqa: E402
from tests.support.registry_server import RegistryServer  # noqa: E402

RUNS = 5
REQUEST_DELAY_SECONDS = 0.025


class DelayingProxy:
    """Forwards TCP to the registry, holding each client->server chunk for the delay."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, delayed: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if delayed:
                    time.sleep(self.delay)
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def synthetic_versions(rng: random.Random, count: int) -> list[str]:
    found: set[str] = set()
    while len(found) < count:
        found.add(f"{rng.randint(0, 2)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}")
    return sorted(found)


def synthetic_graph(
    names: int, versions: int, seed: int, conflicting_tops: bool = False
) -> dict[str, dict[str, ArtifactConfig]]:
    """Dependencies point to later names (no cycles) at a version that exists, so most
    requests are satisfiable; `conflicting_tops` makes every artifact's newest version depend
    on a major that does not exist, forcing a backtrack per artifact."""
    rng = random.Random(seed)
    catalog_versions = {f"art{i:03d}": synthetic_versions(rng, versions) for i in range(names)}
    graph: dict[str, dict[str, ArtifactConfig]] = {}
    ordered = list(catalog_versions)
    for index, name in enumerate(ordered):
        graph[name] = {}
        newest = catalog_versions[name][-1]
        for version in catalog_versions[name]:
            later = ordered[index + 1 :]
            dependencies = []
            for dep in rng.sample(later, min(len(later), rng.randint(0, 3))):
                dep_version = rng.choice(catalog_versions[dep])
                alternatives = ()
                if rng.random() < 0.1 and len(later) > 1:
                    alt = rng.choice([n for n in later if n != dep])
                    alternatives = (Requirement(alt, rng.choice(catalog_versions[alt])),)
                dependencies.append(Dependency(dep, dep_version, alternatives))
            if conflicting_tops and version == newest and later:
                dependencies.append(Dependency(later[0], "9.0.0"))
            graph[name][version] = ArtifactConfig(name, version, tuple(dependencies))
    return graph


def time_memory(graph: dict[str, dict[str, ArtifactConfig]], requests: list[Request]) -> None:
    catalog = MemoryCatalog(graph)
    timings, outcome, steps = [], "", 0
    for _ in range(RUNS):
        solver = Solver(catalog)
        start = time.perf_counter()
        try:
            resolution = solver.solve(requests)
            outcome = f"{len(resolution.selected)} artifacts selected"
        except Exception as error:  # a conflict is a result too: report it
            outcome = f"no plan ({type(error).__name__})"
        timings.append(time.perf_counter() - start)
        steps = solver.steps
    median = statistics.median(timings)
    verdict = "ok" if median <= 0.5 else "OVER GOAL"
    print(
        f"  median {median:.3f} s over {RUNS} runs (goal <= 0.5 s: {verdict}); {outcome}; "
        f"{steps} search steps"
    )


def part_one() -> None:
    print("1. in-memory index: 200 artifacts x 30 versions, random caret dependencies")
    rng = random.Random(7)
    tops = [Request(f"art{i:03d}", parse_range("*")) for i in sorted(rng.sample(range(100), 20))]
    time_memory(synthetic_graph(200, 30, seed=1), tops)
    print("   same index, every newest version unsatisfiable (one backtrack per artifact):")
    time_memory(synthetic_graph(200, 30, seed=1, conflicting_tops=True), tops)


def publish_small(server: RegistryServer, work: Path, repos: int, versions: int) -> None:
    """art000 depends on every other artifact (a ruleset bundle fanning out to its plugins), so
    the solver learns most names at once and their tag lists can be fetched side by side."""
    rng = random.Random(3)
    options = ClientOptions(plain_http=True, cache_dir=work / "push-cache")
    for index in range(repos):
        for minor in range(versions):
            version = f"1.{minor}.0"
            if index == 0:
                depends = [Dependency(f"art{other:03d}", "1.0.0") for other in range(1, repos)]
            elif index + 1 < repos and rng.random() < 0.3:
                depends = [Dependency(f"art{index + 1:03d}", f"1.{rng.randint(0, 1)}.0")]
            else:
                depends = []
            path = work / f"art{index:03d}.yaml"
            path.write_text("- list: l\n  items: []\n")
            ref = parse_reference(f"{server.host}/bench/art{index:03d}:{version}")
            spec = PushSpec("rulesfile", [path], version, dependencies=depends)
            push_artifact(open_store(ref, options), spec)


def resolve_over_registry(host: str, work: Path, workers: int) -> tuple[float, str]:
    options = ClientOptions(plain_http=True, cache_dir=work / f"cache-{workers}")

    def open_repository(locator: str):
        return open_store(parse_reference(f"{locator}:latest"), options)

    with RegistryCatalog(
        lambda name: f"{host}/bench/{name}", open_repository, workers=workers
    ) as catalog:
        start = time.perf_counter()
        resolution = Solver(catalog).solve([Request("art000")])
        elapsed = time.perf_counter() - start
        counts = (
            f"{len(resolution.selected)} artifacts, {catalog.tag_list_requests} tag lists, "
            f"{catalog.config_requests} configs"
        )
    return elapsed, counts


def part_two() -> None:
    delay_ms = REQUEST_DELAY_SECONDS * 1000
    print(
        f"2. registry-backed catalog, loopback docker-registry behind a {delay_ms:.0f} ms "
        "per-request proxy (30 repos x 4 versions)"
    )
    work = Path(tempfile.mkdtemp(prefix="falconet-bench-solver-"))
    server = RegistryServer(work / "registry").start()
    try:
        publish_small(server, work, repos=30, versions=4)
        address, port = server.host.rsplit(":", 1)
        proxy = DelayingProxy((address, int(port)), REQUEST_DELAY_SECONDS)
        sequential, counts = resolve_over_registry(proxy.host, work, workers=1)
        concurrent, _ = resolve_over_registry(proxy.host, work, workers=8)
        # A second pair, in the other order, so neither side profits from a warmer server.
        concurrent = min(concurrent, resolve_over_registry(proxy.host, work, workers=8)[0])
        sequential = min(sequential, resolve_over_registry(proxy.host, work, workers=1)[0])
        proxy.close()
        print(f"  1 worker : {sequential:.3f} s ({counts}; best of 2)")
        print(f"  8 workers: {concurrent:.3f} s (best of 2)")
        print(f"  ratio concurrent/sequential: {concurrent / sequential:.2f}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    part_one()
    if shutil.which("docker-registry") or Path("/usr/bin/docker-registry").exists():
        part_two()
    else:
        print("2. skipped: docker-registry is not installed (make install)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
