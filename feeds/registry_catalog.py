"""The solver's catalog backed by OCI repositories: each artifact name is located (index name ->
repository), its tag list is fetched once per run (concurrently, in a thread pool, as soon as the
solver learns the name may be needed) and each version's config layer is fetched once.
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
        self._configs: dict[tuple[str, Version], tuple[ArtifactConfig, ResolvedArtifact]] = {}
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
        return release_versions(tags)

    def versions(self, name: str) -> dict[Version, str]:
        self.prefetch([name])
        return self._tags[name].result()

    def _fetched(self, name: str, version: Version) -> tuple[ArtifactConfig, ResolvedArtifact]:
        key = (name, version)
        if key not in self._configs:
            from registry.artifacts import fetch_config

            tag = self.versions(name)[version]
            config, _, resolved = fetch_config(self.store(name), tag, self._platform)
            self.config_requests += 1
            self._configs[key] = (config, resolved)
        return self._configs[key]

    def config(self, name: str, version: Version) -> ArtifactConfig:
        return self._fetched(name, version)[0]

    def resolved(self, name: str, version: Version) -> ResolvedArtifact:
        """The manifest behind that version (type, platform, root digest) for the installer."""
        return self._fetched(name, version)[1]

    def digest(self, name: str, version: Version) -> str | None:
        fetched = self._configs.get((name, version))
        return fetched[1].root.digest if fetched else None

    def reference(self, name: str, version: Version) -> str:
        locator = self.store(name).reference.locator
        digest = self.digest(name, version)
        return f"{locator}@{digest}" if digest else f"{locator}:{self.versions(name)[version]}"
