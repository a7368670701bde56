"""Install figures, measured side by side in one run on this machine:

- cold install of 3 artifacts from a loopback registry vs `skopeo copy` of the same 3 to `oci:`
  directories (ratio falconet/skopeo; goal <= 1.5);
- warm re-install of the same refs: blob downloads (goal 0) and wall time (goal <= 0.3 s);
- `falconet --help` wall time (goal <= 0.25 s), with `python -c pass` beside it.

Each figure is printed with the CPU seconds the processes used (less sensitive than wall time to
other load on the machine) and the load average. falconet runs with its bytecode compiled
beforehand, into a private cache directory, as a pip-installed falconet has it: the project's
environment sets PYTHONDONTWRITEBYTECODE, which would otherwise recompile every module on every
run (~0.15 s) and measure something no user runs.

Run: .venv/bin/python bench/bench_install.py   (needs docker-registry and skopeo: make install)
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.artifacts import PushSpec, push_artifact  # noqa: E402
from registry.options import ClientOptions  # noqa: E402
from registry.reference import parse_reference  # noqa: E402
from registry.store import open_store  # noqa: E402
from tests.support.registry_server import RegistryServer  # noqa: E402

FALCONET = [sys.executable, "-m", "cli"]
SIZES_MIB = (8, 16, 24)  # three rules/asset artifacts of realistic-to-large size
RUNS = 5


def publish(server: RegistryServer, work: Path) -> list[str]:
    refs = []
    for i, size in enumerate(SIZES_MIB):
        path = work / f"asset{i}.bin"
        path.write_bytes(os.urandom(size << 20))
        ref = f"{server.host}/bench/asset{i}:1.0.0"
        store = open_store(parse_reference(ref), ClientOptions(plain_http=True))
        push_artifact(store, PushSpec("asset", [path], "1.0.0"))
        refs.append(ref)
    return refs


@dataclass
class Samples:
    """Wall and CPU seconds (user + system, of the child processes) of repeated runs."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def median_wall(self) -> float:
        return statistics.median(self.wall)

    def median_cpu(self) -> float:
        return statistics.median(self.cpu)


@contextmanager
def measure(samples: Samples) -> Iterator[None]:
    start, cpu_start = time.perf_counter(), _children_cpu()
    yield
    samples.wall.append(time.perf_counter() - start)
    samples.cpu.append(_children_cpu() - cpu_start)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, check=True, env=env, capture_output=True)


def bytecode_env(work: Path) -> dict[str, str]:
    """The environment falconet runs in: this tree first on the path, bytecode compiled once
    into a private cache (see the module docstring)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=str(work / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    packages = [str(ROOT / name) for name in ("cli", "feeds", "registry", "engine", "bpf")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True, env=env)
    return env


def row(label: str, samples: Samples) -> str:
    return f"  {label:<32} {samples.median_wall():.3f} s  {samples.median_cpu():.3f} s"


def load_average() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> int:
    if not shutil.which("skopeo"):
        print("skopeo is not installed: run `make install`")
        return 1
    work = Path(tempfile.mkdtemp(prefix="falconet-bench-"))
    server = RegistryServer(work / "registry").start()
    load_before = load_average()
    try:
        refs = publish(server, work)
        env = bytecode_env(work)
        # Untimed: the first run compiles the third-party modules into the private cache too.
        env["FALCONET_HOME"] = str(work / "warm-up")
        run([*FALCONET, "artifact", "install", *refs, "--plain-http", "--dry-run"], env)
        cold, skopeo, warm, help_runs, bare = Samples(), Samples(), Samples(), Samples(), Samples()
        downloads = []
        for index in range(RUNS):
            env["FALCONET_HOME"] = str(work / f"home{index}")
            install = [*FALCONET, "artifact", "install", *refs, "--plain-http", "-o", "json"]
            with measure(cold):
                run(install, env)
            with measure(warm):
                result = run(install, env)
            report = json.loads(result.stdout)["artifacts"]
            downloads.append(sum(a["downloaded_blobs"] for a in report))
            with measure(skopeo):
                for i, ref in enumerate(refs):
                    run(
                        [
                            "skopeo", "copy", "--quiet", "--insecure-policy",
                            "--src-tls-verify=false", f"docker://{ref}",
                            f"oci:{work / f'skopeo{index}-{i}'}:1.0.0",
                        ],
                        env,
                    )  # fmt: skip
            # Each iteration starts as a machine holding no earlier copies: five runs' worth
            # of leftover files (~150 MB each) slowed every later run of both tools (page
            # cache and block allocation on this VM), falconet's most since it writes the
            # blob cache and the extracted files.
            shutil.rmtree(env["FALCONET_HOME"])
            for i in range(len(refs)):
                shutil.rmtree(work / f"skopeo{index}-{i}")
        # The same launcher as the install runs: a console script lives only in the main checkout's
        # venv and would time main's code, not this tree's.
        for _ in range(RUNS):
            with measure(help_runs):
                run([*FALCONET, "--help"], env)
            with measure(bare):
                run([sys.executable, "-c", "pass"], env)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    total = sum(SIZES_MIB)
    print(f"load average before: {load_before}; after: {load_average()}")
    print(f"cold install, 3 artifacts ({total} MiB), median of {RUNS}:   wall      CPU")
    print(row("falconet artifact install", cold))
    print(row("skopeo copy x3 -> oci:", skopeo))
    wall_ratio = cold.median_wall() / skopeo.median_wall()
    cpu_ratio = cold.median_cpu() / skopeo.median_cpu()
    print(f"  {'ratio falconet/skopeo':<32} {wall_ratio:6.2f}   {cpu_ratio:6.2f}   (goal <= 1.5)")
    print(row("warm re-install, same refs", warm) + "   (goal <= 0.3 s)")
    print(f"  blob downloads on warm re-install: {max(downloads)}   (goal 0)")
    print(row("falconet --help", help_runs) + "   (goal <= 0.25 s)")
    print(row("python -c pass", bare))
    print(f"  ratio --help / python -c pass: {help_runs.median_wall() / bare.median_wall():.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
