"""The solver's catalog backed by OCI repositories: each artifact name is located (index name ->
repository), its tag list is fetched once per run (concurrently, in a thread pool, as soon as the
solver learns the name may be needed) and each version's config layer is fetched once.

As soon as a tag list arrives, the config of the newest release is fetched too, in the pool: the
solver almost always tries the newest release first, so its dependencies are known without a
round trip on the solver's own thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from feeds.versions import Version, release_versions

if TYPE_CHECKING:
    from registry.artifacts import ArtifactConfig, ResolvedArtifact
    from registry.store import ArtifactStore

log = logging.getLogger(__name__)

TAG_LIST_WORKERS = 8

# locate(name) -> repository locator (`host/repo` or `oci-layout:/dir`), as the index says.
Locate = Callable[[str], str]
# open(locator) -> the store of that repository (transport options chosen by the caller).
OpenStore = Callable[[str], "ArtifactStore"]
_Fetched = tuple["ArtifactConfig", "ResolvedArtifact"]


class RegistryCatalog:
    def __init__(
        self,
        locate: Locate,
        open_repository: OpenStore,
        platform: str | None = None,
        workers: int = TAG_LIST_WORKERS,
    ) -> None:
        self._locate = locate
        self._open = open_repository
        self._platform = platform
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tags")
        self._lock = threading.Lock()
        self._stores: dict[str, ArtifactStore] = {}
        self._tags: dict[str, Future[dict[Version, str]]] = {}
        self._configs: dict[tuple[str, Version], Future[_Fetched]] = {}
        self._fixed: dict[str, tuple[Version, str]] = {}
        self._fixed_fetches: dict[tuple[str, str], Future[_Fetched]] = {}
        self.tag_list_requests = 0
        self.config_requests = 0

    def __enter__(self) -> RegistryCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def store(self, name: str) -> ArtifactStore:
        with self._lock:
            if name not in self._stores:
                self._stores[name] = self._open(self._locate(name))
            return self._stores[name]

    def prefetch(self, names: Iterable[str]) -> None:
        with self._lock:
            wanted = [name for name in names if name not in self._tags]
            for name in wanted:
                self._tags[name] = self._pool.submit(self._fetch_versions, name)

    def _fetch_versions(self, name: str) -> dict[Version, str]:
        tags = self.store(name).list_tags()
        with self._lock:
            self.tag_list_requests += 1
        versions = release_versions(tags)
        newest = [v for v in versions if not v.prerelease]
        if newest:
            self._config_future(name, max(newest), versions)
        return versions

    def versions(self, name: str) -> dict[Version, str]:
        self.prefetch([name])
        versions = self._tags[name].result()
        fixed = self._fixed.get(name)
        return {**versions, fixed[0]: fixed[1]} if fixed else versions

    def prefetch_fixed(self, targets: Iterable[tuple[str, str]]) -> None:
        """Start fetching the configs of (name, tag or digest) references concurrently, for
        add_fixed to collect: requests for several artifacts then cost one round trip."""
        with self._lock:
            for key in targets:
                if key not in self._fixed_fetches:
                    self._fixed_fetches[key] = self._pool.submit(self._fetch_config, *key)

    def add_fixed(self, name: str, target: str) -> Version:
        """A reference by tag (`falco-rules:5`, `:latest`) or digest: its config decides the
        version, which becomes a candidate even if no release tag names it."""
        from feeds.versions import parse_version

        with self._lock:
            started = self._fixed_fetches.pop((name, target), None)
        config, resolved = started.result() if started else self._fetch_config(name, target)
        version = parse_version(config.version, f"{name}:{target} config version")
        done: Future[_Fetched] = Future()
        done.set_result((config, resolved))
        with self._lock:
            self._fixed[name] = (version, target)
            self._configs[(name, version)] = done
        return version

    def _config_future(
        self, name: str, version: Version, versions: dict[Version, str]
    ) -> Future[_Fetched]:
        with self._lock:
            key = (name, version)
            if key not in self._configs:
                tag = versions[version]
                self._configs[key] = self._pool.submit(self._fetch_config, name, tag)
            return self._configs[key]

    def _fetch_config(self, name: str, tag: str) -> _Fetched:
        from registry.artifacts import fetch_config

        config, _, resolved = fetch_config(self.store(name), tag, self._platform)
        with self._lock:
            self.config_requests += 1
        return config, resolved

    def _fetched(self, name: str, version: Version) -> _Fetched:
        return self._config_future(name, version, self.versions(name)).result()

    def config(self, name: str, version: Version) -> ArtifactConfig:
        return self._fetched(name, version)[0]

    def resolved(self, name: str, version: Version) -> ResolvedArtifact:
        """The manifest behind that version (type, platform, root digest) for the installer."""
        return self._fetched(name, version)[1]

    def digest(self, name: str, version: Version) -> str | None:
        fetched = self._configs.get((name, version))
        if fetched is None or not fetched.done() or fetched.exception() is not None:
            return None
        return fetched.result()[1].root.digest

    def reference(self, name: str, version: Version) -> str:
        locator = self.store(name).reference.locator
        digest = self.digest(name, version)
        if digest is None and self.versions(name)[version].startswith("sha256:"):
            digest = self.versions(name)[version]
        return f"{locator}@{digest}" if digest else f"{locator}:{self.versions(name)[version]}"
