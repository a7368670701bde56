"""Install figures, measured side by side in one run on this machine:

- cold install of 3 artifacts from a loopback registry vs `skopeo copy` of the same 3 to `oci:`
  directories (ratio falconet/skopeo; goal <= 1.5);
- warm re-install of the same refs: blob downloads (goal 0) and wall time (goal <= 0.3 s);
- `falconet --help` wall time (goal <= 0.25 s), with `python -c pass` beside it.

Run: .venv/bin/python bench/bench_install.py   (needs docker-registry and skopeo: make install)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
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


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main() -> int:
    if not shutil.which("skopeo"):
        print("skopeo is not installed: run `make install`")
        return 1
    work = Path(tempfile.mkdtemp(prefix="falconet-bench-"))
    server = RegistryServer(work / "registry").start()
    try:
        refs = publish(server, work)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        cold, skopeo, warm = [], [], []
        downloads = None
        for run in range(RUNS):
            home = work / f"home{run}"
            env["FALCONET_HOME"] = str(home)
            cold.append(timed([*FALCONET, "artifact", "install", *refs, "--plain-http"], env))
            start = time.perf_counter()
            result = subprocess.run(
                [*FALCONET, "artifact", "install", *refs, "--plain-http", "-o", "json"],
                check=True,
                env=env,
                capture_output=True,
            )
            warm.append(time.perf_counter() - start)
            downloads = sum(a["downloaded_blobs"] for a in json.loads(result.stdout)["artifacts"])
            start = time.perf_counter()
            for i, ref in enumerate(refs):
                subprocess.run(
                    [
                        "skopeo",
                        "copy",
                        "--quiet",
                        "--insecure-policy",
                        "--src-tls-verify=false",
                        f"docker://{ref}",
                        f"oci:{work / f'skopeo{run}-{i}'}:1.0.0",
                    ],
                    check=True,
                )
            skopeo.append(time.perf_counter() - start)
        # The same launcher as the install runs: a console script lives only in the main checkout's
        # venv and would time main's code, not this tree's.
        help_times = [timed([*FALCONET, "--help"], env) for _ in range(RUNS)]
        pass_times = [timed([sys.executable, "-c", "pass"], env) for _ in range(RUNS)]
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    total = sum(SIZES_MIB)
    print(f"cold install, 3 artifacts ({total} MiB), median of {RUNS}:")
    print(f"  falconet artifact install  {med(cold):.3f} s")
    print(f"  skopeo copy x3 -> oci:     {med(skopeo):.3f} s")
    print(f"  ratio falconet/skopeo      {med(cold) / med(skopeo):.2f}   (goal <= 1.5)")
    print(f"warm re-install: {med(warm):.3f} s, blob downloads {downloads}   (goal <= 0.3 s, 0)")
    print(
        f"falconet --help: {med(help_times):.3f} s; python -c pass: {med(pass_times):.3f} s; "
        f"ratio {med(help_times) / med(pass_times):.1f}   (goal <= 0.25 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
