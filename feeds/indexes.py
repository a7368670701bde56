"""Artifact indexes in falcoctl's index.yaml format: configured list, cached copies with
ETag/Last-Modified revalidation and a TTL, merged lookup, search, reference resolution.

One source of truth for which indexes exist (falcoctl keeps two, falcosecurity/falcoctl#519): the
defaults, `indexes:` in falconet.yaml, and those added with `falconet index add` (stored in
<config dir>/indexes.yaml). The cache is keyed by URL, not by name.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from engine import yamlfile
from feeds.errors import ConfigError, FeedsError, NotFoundError

log = logging.getLogger(__name__)

FALCOSECURITY_INDEX_URL = "https://falcosecurity.github.io/falcoctl/index.yaml"
EMBEDDED_INDEX_NAME = "falconet"
ENTRY_KEYS = (
    "name",
    "type",
    "registry",
    "repository",
    "description",
    "home",
    "keywords",
    "license",
    "maintainers",
    "sources",
    "signature",
)
# falconet's extensions live under keys falcoctl ignores.
EXTENSION_KEYS = ("compliance",)
REQUIRED_ENTRY_KEYS = ("name", "type", "registry", "repository")
ARTIFACT_TYPES = ("rulesfile", "plugin", "asset")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


class IndexError_(FeedsError):
    exit_status = "error"


class IndexNetworkError(FeedsError):
    exit_status = "network"


@dataclass(frozen=True)
class IndexEntry:
    name: str
    type: str
    registry: str
    repository: str
    description: str = ""
    home: str = ""
    keywords: tuple[str, ...] = ()
    license: str = ""
    maintainers: tuple[dict[str, str], ...] = ()
    sources: tuple[str, ...] = ()
    signature: dict[str, Any] | None = None
    compliance: tuple[str, ...] = ()
    index: str = ""  # name of the index it came from

    @property
    def locator(self) -> str:
        """The repository as a full reference without tag: host/repo or oci-layout:path."""
        if self.registry.startswith("oci-layout:"):
            return f"{self.registry.rstrip('/')}/{self.repository}"
        return f"{self.registry}/{self.repository}"

    def to_yaml_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "registry": self.registry,
            "repository": self.repository,
            "description": self.description,
            "home": self.home,
            "keywords": list(self.keywords),
            "license": self.license,
            "maintainers": [dict(m) for m in self.maintainers],
            "sources": list(self.sources),
        }
        if self.signature:
            data["signature"] = self.signature
        if self.compliance:
            data["compliance"] = list(self.compliance)
        return data


@dataclass
class IndexSource:
    """A configured index: where it comes from and what we know of its cached copy."""

    name: str
    url: str
    backend: str
    origin: str  # "default", "config", "added"
    added: str = ""
    updated: str = ""
    entries: list[IndexEntry] = field(default_factory=list)
    error: str = ""


def embedded_index_path() -> Path:
    return Path(str(resources.files("feeds").joinpath("default_feed", "index.yaml")))


def default_sources() -> list[IndexSource]:
    return [
        IndexSource(EMBEDDED_INDEX_NAME, str(embedded_index_path()), "file", "default"),
        IndexSource("falcosecurity", FALCOSECURITY_INDEX_URL, "https", "default"),
    ]


def guess_backend(url: str) -> str:
    scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
    if scheme in ("http", "https", "file"):
        return scheme
    raise ConfigError(
        f"unsupported index URL scheme in {url!r}", "use http(s)://, file:// or a local path"
    )


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_index(
    text: str, origin: str, index_name: str, base_dir: Path | None = None
) -> list[IndexEntry]:
    """Parse falcoctl's index.yaml (a YAML list of entries). Duplicate names are an error;
    unknown keys a warning. `registry: oci-layout:<relative>` resolves against base_dir."""
    try:
        data = yamlfile.safe_load(text)  # an index comes from outside: aliases bounded
    except yaml.YAMLError as error:
        raise IndexError_(
            f"index {index_name} ({origin}) is not valid YAML: {error}",
            "check the index URL points at an index.yaml",
        ) from error
    if data is None:
        return []
    if not isinstance(data, list):
        raise IndexError_(
            f"index {index_name} ({origin}) must be a YAML list of entries",
            "falcoctl's index.yaml format is a list: - name: ...",
        )
    entries: list[IndexEntry] = []
    seen: set[str] = set()
    for position, raw in enumerate(data, 1):
        entry = _parse_entry(raw, position, origin, index_name, base_dir)
        if entry.name in seen:
            raise IndexError_(
                f"index {index_name}: duplicate entry found: {entry.name}",
                "each name must appear once in an index",
            )
        seen.add(entry.name)
        entries.append(entry)
    return entries


def _parse_entry(
    raw: Any, position: int, origin: str, index_name: str, base_dir: Path | None
) -> IndexEntry:
    if not isinstance(raw, dict):
        raise IndexError_(f"index {index_name}: entry {position} is not a mapping")
    missing = [k for k in REQUIRED_ENTRY_KEYS if not raw.get(k)]
    if missing:
        raise IndexError_(
            f"index {index_name}: entry {position} ({raw.get('name', '?')}) lacks "
            f"{', '.join(missing)}"
        )
    unknown = set(raw) - set(ENTRY_KEYS) - set(EXTENSION_KEYS)
    if unknown:
        log.warning(
            "index %s: entry %s has unknown keys %s (ignored)",
            index_name,
            raw["name"],
            ", ".join(sorted(unknown)),
        )
    registry = str(raw["registry"])
    if registry.startswith("oci-layout:") and base_dir is not None:
        target = Path(registry[len("oci-layout:") :])
        if not target.is_absolute():
            registry = f"oci-layout:{(base_dir / target).resolve()}"
    return IndexEntry(
        name=str(raw["name"]),
        type=str(raw["type"]),
        registry=registry,
        repository=str(raw["repository"]),
        description=str(raw.get("description") or ""),
        home=str(raw.get("home") or ""),
        keywords=tuple(str(k) for k in raw.get("keywords") or ()),
        license=str(raw.get("license") or ""),
        maintainers=tuple(dict(m) for m in raw.get("maintainers") or () if isinstance(m, dict)),
        sources=tuple(str(s) for s in raw.get("sources") or ()),
        signature=raw.get("signature") or None,
        compliance=tuple(str(c) for c in raw.get("compliance") or ()),
        index=index_name,
    )


def dump_index(entries: Iterable[IndexEntry]) -> str:
    """falcoctl normalises written index files (sorted by name)."""
    data = [e.to_yaml_dict() for e in sorted(entries, key=lambda e: e.name)]
    return yaml.safe_dump(data, sort_keys=False)


# ---------------------------------------------------------------------------------------------
# The index store: configured sources + cached copies


class IndexStore:
    def __init__(
        self,
        config_dir: Path,
        cache_dir: Path,
        config_indexes: list[dict[str, Any]],
        include_defaults: bool = True,
        ttl_seconds: float = 6 * 3600,
    ) -> None:
        self.added_file = config_dir / "indexes.yaml"
        self.cache_dir = cache_dir / "indexes"
        self.ttl_seconds = ttl_seconds
        self.sources: list[IndexSource] = default_sources() if include_defaults else []
        for item in config_indexes:
            self._add_source(
                IndexSource(
                    str(item["name"]),
                    str(item["url"]),
                    str(item.get("backend") or guess_backend(item["url"])),
                    "config",
                )
            )
        for item in self._read_added():
            self._add_source(
                IndexSource(
                    item["name"],
                    item["url"],
                    item["backend"],
                    "added",
                    item.get("added_timestamp", ""),
                    item.get("updated_timestamp", ""),
                )
            )

    def _add_source(self, source: IndexSource) -> None:
        if any(s.name == source.name for s in self.sources):
            raise ConfigError(
                f"index {source.name} is configured twice", "index names must be unique; remove one"
            )
        self.sources.append(source)

    # -- the added-indexes file (falcoctl's indexes.yaml `configs:` shape)
    def _read_added(self) -> list[dict[str, str]]:
        if not self.added_file.is_file():
            return []
        data = yaml.safe_load(self.added_file.read_text()) or {}
        return list(data.get("configs") or [])

    def _write_added(self, items: list[dict[str, str]]) -> None:
        self.added_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.added_file.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump({"configs": items}, sort_keys=False))
        tmp.replace(self.added_file)

    def add(self, name: str, url: str, backend: str | None = None) -> IndexSource:
        if any(s.name == name for s in self.sources):
            raise ConfigError(
                f"an index named {name} already exists",
                f"remove it first: falconet index remove {name}",
            )
        source = IndexSource(name, url, backend or guess_backend(url), "added")
        self._refresh(source, force=True)  # an index that cannot be fetched is not added
        now = datetime.now(UTC).strftime(TIMESTAMP_FORMAT)
        source.added = source.updated = now
        items = self._read_added()
        items.append(
            {
                "name": name,
                "url": url,
                "backend": source.backend,
                "added_timestamp": now,
                "updated_timestamp": now,
            }
        )
        self._write_added(items)
        self.sources.append(source)
        return source

    def remove(self, name: str) -> IndexSource:
        source = self.source(name)
        if source.origin != "added":
            raise ConfigError(
                f"index {name} comes from {source.origin} settings",
                "remove it from falconet.yaml (or set index.defaults: false)",
            )
        self._write_added([i for i in self._read_added() if i["name"] != name])
        self._cache_file(source.url).unlink(missing_ok=True)
        self._meta_file(source.url).unlink(missing_ok=True)
        self.sources.remove(source)
        return source

    def source(self, name: str) -> IndexSource:
        for source in self.sources:
            if source.name == name:
                return source
        raise NotFoundError(f"no index named {name}", "see `falconet index list`")

    def update(self, names: list[str] | None = None) -> list[IndexSource]:
        chosen = [self.source(n) for n in names] if names else list(self.sources)
        for source in chosen:
            try:
                self._refresh(source, force=True)
            except FeedsError as error:
                if names or source.origin != "default":
                    raise
                source.error = str(error)
                log.warning("default index %s unavailable: %s", source.name, error)
        stamp = datetime.now(UTC).strftime(TIMESTAMP_FORMAT)
        items = self._read_added()
        for item in items:
            if any(s.name == item["name"] and not s.error for s in chosen):
                item["updated_timestamp"] = stamp
        if items:
            self._write_added(items)
        return chosen

    def load_all(self) -> list[IndexSource]:
        """Entries of every index, from cache when fresh. A default index that cannot be
        fetched (offline machine) is a warning; a configured one is an error."""
        for source in self.sources:
            try:
                self._refresh(source, force=False)
            except FeedsError as error:
                if source.origin != "default":
                    raise
                source.error = str(error)
                quiet = "retried after" in source.error
                (log.debug if quiet else log.warning)(
                    "default index %s unavailable: %s", source.name, error
                )
        return self.sources

    # -- cache
    def _cache_file(self, url: str) -> Path:
        return self.cache_dir / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".yaml")

    def _meta_file(self, url: str) -> Path:
        return self._cache_file(url).with_suffix(".json")

    def _refresh(self, source: IndexSource, force: bool) -> None:
        if source.backend == "file":
            path = Path(source.url.removeprefix("file://"))
            try:
                text = path.read_text()
            except OSError as error:
                raise IndexError_(
                    f"cannot read index {source.name} at {path}: {error.strerror}", "check the path"
                ) from error
            source.entries = parse_index(text, str(path), source.name, path.parent)
            source.updated = source.updated or datetime.fromtimestamp(
                path.stat().st_mtime, UTC
            ).strftime(TIMESTAMP_FORMAT)
            return
        cache_file, meta_file = self._cache_file(source.url), self._meta_file(source.url)
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        fresh = time.time() - meta.get("fetched_at", 0) < self.ttl_seconds
        if cache_file.is_file() and fresh and not force:
            source.entries = parse_index(cache_file.read_text(), source.url, source.name)
            source.updated = meta.get("updated", "")
            return
        if not force and not cache_file.is_file() and _recently_failed(meta):
            # An offline machine: do not retry (or warn) on every command.
            raise IndexNetworkError(
                f"index {source.name} unavailable: {meta['error']} "
                "(retried after 10 minutes or `falconet index update`)"
            )
        try:
            text, meta = self._fetch_http(source, cache_file, meta)
        except IndexNetworkError as error:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            meta_file.write_text(
                json.dumps({**meta, "failed_at": time.time(), "error": str(error)})
            )
            raise
        source.entries = parse_index(text, source.url, source.name)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(cache_file)
        meta_file.write_text(json.dumps(meta))
        source.updated = meta["updated"]

    def _fetch_http(
        self, source: IndexSource, cache_file: Path, meta: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        import requests

        headers = {"User-Agent": "falconet"}
        if cache_file.is_file():
            if meta.get("etag"):
                headers["If-None-Match"] = meta["etag"]
            if meta.get("last_modified"):
                headers["If-Modified-Since"] = meta["last_modified"]
        try:
            response = requests.get(source.url, headers=headers, timeout=(10, 60))
        except requests.RequestException as error:
            raise IndexNetworkError(
                f"cannot fetch index {source.name} from {source.url}: {_short(error)}",
                "check the network or the URL",
            ) from error
        now = time.time()
        stamp = datetime.fromtimestamp(now, UTC).strftime(TIMESTAMP_FORMAT)
        if response.status_code == 304 and cache_file.is_file():
            return cache_file.read_text(), {**meta, "fetched_at": now, "updated": stamp}
        if response.status_code >= 400:
            raise IndexNetworkError(
                f"cannot fetch index {source.name}: HTTP {response.status_code} from {source.url}",
                "check the index URL",
            )
        return response.text, {
            "etag": response.headers.get("ETag"),
            "last_modified": response.headers.get("Last-Modified"),
            "fetched_at": now,
            "updated": stamp,
        }

    # -- lookup
    def entries(self) -> list[IndexEntry]:
        """Merged entries: a later index's entry replaces an earlier one of the same name."""
        merged: dict[str, IndexEntry] = {}
        for source in self.load_all():
            for entry in source.entries:
                merged[entry.name] = entry
        return list(merged.values())

    def find(self, name: str) -> IndexEntry:
        for entry in reversed(self.entries()):
            if entry.name == name:
                return entry
        raise NotFoundError(
            f"cannot find {name} among the configured indexes",
            "see `falconet artifact list`, or use a full reference host/repository:tag",
        )


FAILURE_BACKOFF_SECONDS = 600.0


def _recently_failed(meta: dict[str, Any]) -> bool:
    return time.time() - float(meta.get("failed_at", 0)) < FAILURE_BACKOFF_SECONDS


def _short(error: Exception) -> str:
    text = str(error)
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return match.group(1) if match else text.splitlines()[0][:200]


# ---------------------------------------------------------------------------------------------
# Search (falcoctl: Levenshtein-ratio on names, substring on keywords)


def search(
    entries: Iterable[IndexEntry],
    keywords: list[str],
    min_score: float = 0.65,
    artifact_type: str | None = None,
    compliance: str | None = None,
) -> list[IndexEntry]:
    found = []
    for entry in entries:
        if artifact_type and entry.type != artifact_type:
            continue
        if compliance and not any(
            c.lower().startswith(compliance.lower()) for c in entry.compliance
        ):
            continue
        joined = " ".join(entry.keywords).lower()
        if any(
            _ratio(k.lower(), entry.name.lower()) >= min_score or k.lower() in joined
            for k in keywords
        ):
            found.append(entry)
    return found


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def parse_duration(text: str) -> float:
    """Go-style durations as falcoctl takes them: 168h, 1h30m, 45s, 500ms; also 7d."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ConfigError(f"invalid duration {text!r}", "use e.g. 6h, 30m, 1h30m, 7d")
    return sum(float(n) * units[u] for n, u in parts)


def open_index_store(config_path: str | None = None) -> IndexStore:
    """The index store as configured (falconet.yaml, environment, FALCONET_HOME)."""
    from feeds.config import load_config
    from feeds.paths import default_paths

    config = load_config(config_path)
    paths = default_paths()
    return IndexStore(
        paths.config_dir,
        Path(config["cache.dir"]),
        config["indexes"],
        include_defaults=config["index.defaults"],
        ttl_seconds=parse_duration(config["index.ttl"]),
    )
