"""Fleet simulation: N followers (threads, each with its own state and rules directories)
against one loopback registry (Debian's docker-registry) following 3 refs, counted at a proxy.

Prints: registry requests per follower per unchanged tick (expected: 1 per ref), the requests
one update costs a follower, the time for the whole fleet to converge after a push with jittered
ticks, and the registry load extrapolated to 10,000 nodes checking every 6 h.

    PYTHONPATH=. .venv/bin/python bench/bench_follow_fleet.py --followers 500 --every 4
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feeds.context import FeedsContext, TransportFlags
from feeds.follow import Follower, FollowOptions
from feeds.install import InstallDirs
from feeds.schedule import Schedule
from tests.follow_support import publish, rule_yaml
from tests.support.fault_proxy import FaultProxy
from tests.support.registry_server import RegistryServer

REPOS = ("rules-a", "rules-b", "rules-c")


def make_follower(root: Path, index: int, host: str, every: float) -> Follower:
    home = root / f"node{index}"
    flags = {"artifact.install.state_dir": str(home / "state"), "cache.dir": str(home / "cache")}
    context = FeedsContext.load(None, flags, TransportFlags(plain_http=True))
    dirs = InstallDirs(home / "rules", home / "plugins", home / "assets")
    refs = tuple(f"{host}/{repo}:latest" for repo in REPOS)
    schedule = Schedule(every=every, startup="jitter")
    return Follower(context, FollowOptions(refs=refs, dirs=dirs), schedule)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--followers", type=int, default=500)
    parser.add_argument("--every", type=float, default=4.0, help="tick interval (s) for converge")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registry = RegistryServer(root / "registry").start()
        proxy = FaultProxy(registry.url).start()
        try:
            for repo in REPOS:
                publish(registry, root, "1.0.0", {f"{repo}.yaml": rule_yaml(repo)}, repo=repo)
            followers = [
                make_follower(root, i, proxy.host, args.every) for i in range(args.followers)
            ]
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda f: f.check(), followers))  # first tick: install v1

            before = len(proxy.requests)
            with ThreadPoolExecutor(16) as pool:
                results = list(pool.map(lambda f: f.check(), followers))
            unchanged = len(proxy.requests) - before
            assert all(r.status == "unchanged" for rs in results for r in rs)
            per_follower = unchanged / args.followers
            print(f"followers: {args.followers}, refs each: {len(REPOS)}")
            print(f"requests per follower per unchanged tick: {per_follower:.2f}")
            methods = {m for m, _, _ in proxy.requests[before:]}
            print(f"methods on an unchanged tick: {sorted(methods)}")

            # A push, with every follower ticking on its own jittered schedule.
            stop_at: dict[int, float] = {}
            lock = threading.Lock()

            def on_update(index: int) -> None:
                with lock:
                    stop_at.setdefault(index, time.monotonic())

            for i, follower in enumerate(followers):
                follower.on_update = lambda _paths, i=i: on_update(i)
                follower.start()
            time.sleep(args.every)  # every follower has had its first (jittered) tick
            before = len(proxy.requests)
            pushed = time.monotonic()
            publish(registry, root, "2.0.0", {"rules-a.yaml": rule_yaml("A2")}, repo="rules-a")
            deadline = pushed + 10 * args.every
            while len(stop_at) < args.followers and time.monotonic() < deadline:
                time.sleep(0.05)
            for follower in followers:
                follower.stop(timeout=0)
            times = sorted(t - pushed for t in stop_at.values())
            converged = len(times)
            during = proxy.requests[before:]
            # The checks are HEADs of the followed tags; everything else is what updates cost.
            update_requests = sum(
                1 for m, p, _ in during if not (m == "HEAD" and p.endswith("/manifests/latest"))
            )
            per_update = update_requests / max(1, converged)
            median = times[len(times) // 2]
            print(
                f"converged: {converged}/{args.followers} followers; after a push, with "
                f"{args.every:g}s jittered ticks: median {median:.2f}s, last {times[-1]:.2f}s "
                f"({times[-1] / args.every:.2f} intervals)"
            )
            print(f"registry requests per follower for one update: {per_update:.1f}")
            nodes, interval = 10_000, 6 * 3600
            steady = nodes * per_follower / interval
            print(
                f"extrapolated, 10,000 nodes x {len(REPOS)} refs every 6h: {steady:.2f} "
                f"requests/s steady ({nodes * per_follower * 4:,.0f}/day, all HEADs); one push "
                f"adds {nodes * per_update:,.0f} requests spread over one interval by the jitter "
                f"({nodes * per_update / interval:.2f}/s)"
            )
        finally:
            proxy.stop()
            registry.stop()


if __name__ == "__main__":
    main()
