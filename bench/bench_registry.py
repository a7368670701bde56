"""Registry figures, printed (never asserted): run `python bench/bench_registry.py`.

1. Cold pull of 3 artifacts from a loopback registry: falconet (CLI processes and in-process)
   vs `skopeo copy` of the same 3 into `oci:` directories, measured side by side.
2. Warm re-pull of the same refs through the blob cache: blob downloads and time.
3. Peak RSS of a child process pulling a 200 MiB layer.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from registry.artifacts import PushSpec, pull_artifact, push_artifact  # noqa: E402
from registry.reference import parse_reference  # noqa: E402
from registry.store import ClientOptions, open_store  # noqa: E402
from tests.support.registry_server import RegistryServer  # noqa: E402

ARTIFACT_SIZE = 8 << 20
BIG_LAYER = 200 << 20
ROUNDS = 3


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _push_artifacts(host: str, work: Path) -> list[str]:
    refs = []
    for i in range(3):
        rules = work / f"bench_rules_{i}.yaml"
        rules.write_text(f"- list: l{i}\n  items: [{os.urandom(ARTIFACT_SIZE // 2).hex()}]\n")
        ref = f"{host}/bench/rules-{i}:1.0.0"
        push_artifact(
            open_store(parse_reference(ref), ClientOptions(plain_http=True)),
            PushSpec(artifact_type="rulesfile", files=[rules], version="1.0.0"),
        )
        refs.append(ref)
    return refs


def _cli(*args: str, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "cli", *args], check=True, capture_output=True, env=env, cwd=REPO
    )


def _pull_cli(refs: list[str], home: Path, env: dict[str, str]) -> None:
    env = dict(env, FALCONET_HOME=str(home))
    for ref in refs:
        _cli("registry", "pull", ref, "-o", str(home / "out"), "--plain-http", env=env)


def _pull_in_process(refs: list[str], options: ClientOptions, out: Path) -> int:
    """Pull each ref; returns how many blobs were downloaded (not served by the cache)."""
    results = [pull_artifact(open_store(parse_reference(r), options), out) for r in refs]
    return sum(p.downloaded_blobs for p in results)


ONE_PROCESS = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from registry.artifacts import pull_artifact
from registry.reference import parse_reference
from registry.store import ClientOptions, open_store
options = ClientOptions(plain_http=True, cache_dir=Path({cache!r}))
for ref in {refs!r}:
    pull_artifact(open_store(parse_reference(ref), options), Path({out!r}))
"""


def _pull_one_process(refs: list[str], work: Path) -> None:
    """What `artifact install a b c` costs: one interpreter, imports, then 3 pulls."""
    code = ONE_PROCESS.format(
        repo=str(REPO), cache=str(work / "cache"), refs=refs, out=str(work / "out")
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def _skopeo_copy(refs: list[str], dest: Path) -> None:
    dest.mkdir()
    for i, ref in enumerate(refs):
        subprocess.run(
            ["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
             f"docker://{ref}", f"oci:{dest}/{i}:1.0.0"],
            check=True,
            capture_output=True,
        )  # fmt: skip


def bench_cold_and_warm(refs: list[str], work: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cli, one, inproc, skopeo, warm = [], [], [], [], []
    warm_downloads = []
    for n in range(ROUNDS):
        # Interleaved rounds, so both tools see the same machine load.
        cli.append(_timed(lambda n=n: _pull_cli(refs, work / f"home-{n}", env)))
        one.append(_timed(lambda n=n: _pull_one_process(refs, work / f"one-{n}")))
        options = ClientOptions(plain_http=True, cache_dir=work / f"cache-{n}")
        inproc.append(_timed(lambda o=options: _pull_in_process(refs, o, work / "inproc")))
        skopeo.append(_timed(lambda n=n: _skopeo_copy(refs, work / f"skopeo-{n}")))
        start = time.perf_counter()
        warm_downloads.append(_pull_in_process(refs, options, work / "warm"))
        warm.append(time.perf_counter() - start)
    print(f"cold pull of 3 x {ARTIFACT_SIZE >> 20} MiB artifacts, best of {ROUNDS}:")
    print(f"  falconet CLI (3 processes)   {min(cli):.3f} s")
    print(f"  falconet 1 process, 3 refs   {min(one):.3f} s")
    print(f"  falconet in-process          {min(inproc):.3f} s")
    print(f"  skopeo copy (3 processes)    {min(skopeo):.3f} s")
    print(f"  ratio CLI/skopeo             {min(cli) / min(skopeo):.2f}")
    print(f"  ratio 1-process/skopeo       {min(one) / min(skopeo):.2f}")
    print(f"  ratio in-process/skopeo      {min(inproc) / min(skopeo):.2f}")
    print(f"warm re-pull of the same refs: {min(warm):.3f} s, blob downloads {warm_downloads}")


# VmHWM, not ru_maxrss: ru_maxrss survives fork+exec and would report the parent's peak.
PEAK = (
    "def peak_kib():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            return int(line.split()[1])\n"
)

CHILD = (
    PEAK
    + """
import sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from registry.artifacts import pull_artifact
from registry.reference import parse_reference
from registry.store import ClientOptions, open_store
start = time.perf_counter()
result = pull_artifact(open_store(parse_reference({ref!r}), ClientOptions(plain_http=True,
    cache_dir=Path({cache!r}))), Path({out!r}))
elapsed = time.perf_counter() - start
print(peak_kib(), elapsed, result.files[0].stat().st_size)
"""
)

PUSH_CHILD = (
    PEAK
    + """
import sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from registry.artifacts import PushSpec, push_artifact
from registry.reference import parse_reference
from registry.store import ClientOptions, open_store
start = time.perf_counter()
push_artifact(open_store(parse_reference({ref!r}), ClientOptions(plain_http=True)),
    PushSpec(artifact_type="asset", files=[Path({path!r})], version="1.0.0"))
print(peak_kib(), time.perf_counter() - start)
"""
)

BASELINE = PEAK + "import registry.artifacts, registry.remote\nprint(peak_kib())"


def bench_big_layer_rss(host: str, work: Path) -> None:
    # A gzip magic prefix makes push take the file as the layer as is; pull never extracts.
    big = work / "big.tar.gz"
    with open(big, "wb") as out:
        out.write(b"\x1f\x8b")
        for _ in range(BIG_LAYER >> 20):
            out.write(os.urandom(1 << 20))
    ref = f"{host}/bench/big:1.0.0"
    push_code = PUSH_CHILD.format(repo=str(REPO), ref=ref, path=str(big))
    push_kib, push_elapsed = subprocess.run(
        [sys.executable, "-c", push_code], check=True, capture_output=True, text=True
    ).stdout.split()
    print(
        f"push of a {BIG_LAYER >> 20} MiB layer: peak RSS {int(push_kib) / 1024:.1f} MiB, "
        f"{float(push_elapsed):.2f} s (incl. sha256 of the file)"
    )
    code = CHILD.format(repo=str(REPO), ref=ref, cache=str(work / "bigcache"), out=str(work / "bo"))
    rss_kib, elapsed, size = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    base_kib = subprocess.run(
        [sys.executable, "-c", f"import sys\nsys.path.insert(0, {str(REPO)!r})\n{BASELINE}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(
        f"pull of a {int(size) >> 20} MiB layer: peak RSS {int(rss_kib) / 1024:.1f} MiB "
        f"(imports alone {int(base_kib) / 1024:.1f} MiB), {float(elapsed):.2f} s "
        f"({int(size) / float(elapsed) / (1 << 20):.0f} MiB/s incl. cache copy)"
    )


def main() -> None:
    if shutil.which("skopeo") is None:
        sys.exit("skopeo is not installed")
    with tempfile.TemporaryDirectory(prefix="falconet-bench-") as tmp:
        work = Path(tmp)
        server = RegistryServer(work / "registry").start()
        try:
            refs = _push_artifacts(server.host, work)
            bench_cold_and_warm(refs, work)
            bench_big_layer_rss(server.host, work)
        finally:
            server.stop()
    print(
        f"(bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10} MiB)"
    )


if __name__ == "__main__":
    main()
