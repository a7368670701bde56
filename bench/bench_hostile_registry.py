"""What a hostile registry costs falconet: peak RSS, wall and CPU time of `registry pull`
against a real registry (docker-registry) directly, and through the tests' fault proxy
(a stand-in attacker) sending an endless config blob or trickling the layer, side by side in
one run. The ratios show that an endless body costs no more memory than an honest pull, and
that a trickle is given up after about transfer.low_speed_time (set to 5 s here).

    PYTHONPATH=. .venv/bin/python bench/bench_hostile_registry.py [--layer-kib 512]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from registry.artifacts import PushSpec, push_artifact  # noqa: E402
from registry.options import ClientOptions  # noqa: E402
from registry.reference import parse_reference  # noqa: E402
from registry.store import open_store  # noqa: E402
from tests.support.fault_proxy import Fault, FaultProxy  # noqa: E402
from tests.support.registry_server import RegistryServer  # noqa: E402

REPO = "bench/hostile"


def pull(host: str, work: Path, env: dict[str, str]) -> dict[str, float | int | str]:
    """One `falconet registry pull` as a child process: exit status, its own peak RSS
    (os.wait4's rusage is this child's alone), wall and CPU time."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "cli", "registry", "pull", f"{host}/{REPO}:1.0.0",
         "--plain-http", "-o", str(work / f"out-{time.monotonic_ns()}")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "FALCONET_HOME": str(work / "home"),
             **env},
    )  # fmt: skip
    assert child.stderr is not None
    stderr = child.stderr.read()  # until the child exits (its stderr closes)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return {
        "exit": child.returncode,
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "error": next((line[:110] for line in stderr.splitlines() if line.startswith("error")), ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer-kib", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        registry = RegistryServer(work / "registry").start()
        proxy = FaultProxy(registry.url).start()
        try:
            rules = work / "bench_rules.yaml"
            rules.write_text(f"- list: l\n  items: [{os.urandom(args.layer_kib << 9).hex()}]\n")
            store = open_store(parse_reference(f"{registry.host}/{REPO}:1.0.0"),
                               ClientOptions(plain_http=True))  # fmt: skip
            push_artifact(store, PushSpec("rulesfile", [rules], "1.0.0"))
            manifest = json.loads(store.fetch_manifest("1.0.0")[0])
            proxy.add(Fault("GET", f"/blobs/{manifest['config']['digest']}", 1000, endless=True))
            endless = pull(proxy.host, work, {})
            proxy.faults.clear()
            proxy.add(Fault("GET", f"/blobs/{manifest['layers'][0]['digest']}", 1000,
                            trickle=0.5))  # fmt: skip
            trickle = pull(proxy.host, work, {"FALCONET_TRANSFER_LOW_SPEED_TIME": "5s"})
            honest = pull(registry.host, work, {})
        finally:
            proxy.stop()
            registry.stop()
    for name, figures in (("endless config", endless), ("trickled layer", trickle),
                          ("honest pull", honest)):  # fmt: skip
        print(f"{name:16} {json.dumps(figures)}")
    ratio = float(endless["peak_rss_mib"]) / float(honest["peak_rss_mib"])
    print(f"peak RSS, endless config / honest pull: {ratio:.2f}")


if __name__ == "__main__":
    main()
