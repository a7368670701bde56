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
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from feeds.errors import ConfigError, FeedsError, NotFoundError
from registry.errors import NetworkError
from registry.storage import storage
from registry.transfer import (
    DEFAULT_LIMITS,
    MAX_INDEX_SIZE,
    TooLargeError,
    TransferLimits,
    fetch_document,
    is_loopback_url,
    read_file_limited,
)

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
    # Plain HTTP from a host other than loopback, explicitly accepted (index add --insecure).
    insecure: bool = False


def embedded_index_path() -> Path:
    return Path(str(resources.files("feeds").joinpath("default_feed", "index.yaml")))


def default_sources() -> list[IndexSource]:
    return [
        IndexSource(EMBEDDED_INDEX_NAME, str(embedded_index_path()), "file", "default"),
        IndexSource("falcosecurity", FALCOSECURITY_INDEX_URL, "https", "default"),
    ]


def check_transport(name: str, url: str, insecure: bool) -> None:
    """An index over plain HTTP from another machine can be rewritten by anyone on the path,
    and an index names the keys that verify artifacts: refused unless explicitly accepted."""
    if url.lower().startswith("http://") and not insecure and not is_loopback_url(url):
        raise ConfigError(
            f"index {name}: refusing plain HTTP from {urllib.parse.urlsplit(url).hostname} "
            "(anyone on the path could rewrite its entries and signature keys)",
            "use an https:// URL; to accept the risk, add it with --insecure "
            "(or insecure: true in falconet.yaml's indexes)",
        )


def guess_backend(url: str) -> str:
    scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
    if scheme in ("http", "https", "file"):
        return scheme
    raise ConfigError(
        f"unsupported index URL scheme in {url!r}", "use http(s)://, file:// or a local path"
    )


# ---------------------------------------------------------------------------------------------
# Parsing


class _IndexLoader(yaml.SafeLoader):
    """safe_load without aliases: an index comes from outside, and nested aliases (a "billion
    laughs" document) expand exponentially when entries are turned into text. falcoctl's index
    format never needs them."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not accepted in an index", event.start_mark
            )
        return super().compose_node(parent, index)


def parse_index(
    text: str, origin: str, index_name: str, base_dir: Path | None = None
) -> list[IndexEntry]:
    """Parse falcoctl's index.yaml (a YAML list of entries). Duplicate names are an error;
    unknown keys a warning. `registry: oci-layout:<relative>` resolves against base_dir."""
    try:
        data = yaml.load(text, Loader=_IndexLoader)  # a SafeLoader without aliases
    except yaml.YAMLError as error:
        # One line: the problem and where (PyYAML's text spans lines and quotes the input).
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise IndexError_(
            f"index {index_name} ({origin}) is not valid YAML{where}: {problem}",
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
    for key in REQUIRED_ENTRY_KEYS:
        if not isinstance(raw[key], str | int | float) or not str(raw[key]).isprintable():
            raise IndexError_(
                f"index {index_name}: entry {position} has a {key} that is not one line of "
                f"text: {str(raw[key])[:80]!r}",
                "names, types, registries and repositories are plain text",
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
        limits: TransferLimits = DEFAULT_LIMITS,
    ) -> None:
        self.added_file = config_dir / "indexes.yaml"
        self.cache_dir = cache_dir / "indexes"
        self.ttl_seconds = ttl_seconds
        self.limits = limits
        self.sources: list[IndexSource] = default_sources() if include_defaults else []
        for item in config_indexes:
            self._add_source(
                IndexSource(
                    str(item["name"]),
                    str(item["url"]),
                    str(item.get("backend") or guess_backend(item["url"])),
                    "config",
                    insecure=bool(item.get("insecure", False)),
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
                    insecure=bool(item.get("insecure", False)),
                )
            )

    def _add_source(self, source: IndexSource) -> None:
        if any(s.name == source.name for s in self.sources):
            raise ConfigError(
                f"index {source.name} is configured twice", "index names must be unique; remove one"
            )
        self.sources.append(source)

    # -- the added-indexes file (falcoctl's indexes.yaml `configs:` shape)
    def _read_added(self) -> list[dict[str, Any]]:
        if not self.added_file.is_file():
            return []
        fix = f"repair or delete {self.added_file} (then `falconet index add` the indexes again)"
        try:
            data = yaml.safe_load(self.added_file.read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise ConfigError(
                f"{self.added_file} is unreadable: {_first_line(error)}", fix
            ) from None
        configs = data.get("configs") if isinstance(data, dict) else None
        if not isinstance(configs, list | None) or not all(
            isinstance(item, dict) and {"name", "url", "backend"} <= set(item)
            for item in configs or []
        ):
            raise ConfigError(f"{self.added_file} is not a list of indexes (configs:)", fix)
        return list(configs or [])

    def _write_added(self, items: list[dict[str, Any]]) -> None:
        with storage(self.added_file.parent):
            self.added_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.added_file.with_suffix(".tmp")
            tmp.write_text(yaml.safe_dump({"configs": items}, sort_keys=False))
            tmp.replace(self.added_file)

    def add(
        self, name: str, url: str, backend: str | None = None, insecure: bool = False
    ) -> IndexSource:
        if any(s.name == name for s in self.sources):
            raise ConfigError(
                f"an index named {name} already exists",
                f"remove it first: falconet index remove {name}",
            )
        check_transport(name, url, insecure)
        source = IndexSource(name, url, backend or guess_backend(url), "added", insecure=insecure)
        self._refresh(source, force=True)  # an index that cannot be fetched is not added
        now = datetime.now(UTC).strftime(TIMESTAMP_FORMAT)
        source.added = source.updated = now
        items = self._read_added()
        item: dict[str, Any] = {
            "name": name,
            "url": url,
            "backend": source.backend,
            "added_timestamp": now,
            "updated_timestamp": now,
        }
        if insecure:
            item["insecure"] = True
        items.append(item)
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
                text = read_file_limited(path, MAX_INDEX_SIZE, f"index {source.name}").decode(
                    "utf-8", "replace"
                )
            except TooLargeError as error:
                raise IndexError_(str(error), "an index.yaml is a small YAML list") from None
            except OSError as error:
                raise IndexError_(
                    f"cannot read index {source.name} at {path}: {error.strerror}", "check the path"
                ) from error
            source.entries = parse_index(text, str(path), source.name, path.parent)
            source.updated = source.updated or datetime.fromtimestamp(
                path.stat().st_mtime, UTC
            ).strftime(TIMESTAMP_FORMAT)
            return
        check_transport(source.name, source.url, source.insecure)
        cache_file, meta_file = self._cache_file(source.url), self._meta_file(source.url)
        meta = _read_meta(meta_file)
        fresh = time.time() - float(meta.get("fetched_at", 0)) < self.ttl_seconds
        if cache_file.is_file() and fresh and not force:
            try:
                source.entries = parse_index(cache_file.read_text(), source.url, source.name)
                source.updated = str(meta.get("updated", ""))
                return
            except (OSError, UnicodeDecodeError, IndexError_) as error:
                # A damaged cache entry repairs itself: it is fetched again below.
                log.warning("cached copy of index %s is damaged (%s); fetching it again",
                            source.name, _first_line(error))  # fmt: skip
                cache_file.unlink(missing_ok=True)
                meta = {}
        if not force and not cache_file.is_file() and _recently_failed(meta):
            # An offline machine: do not retry (or warn) on every command.
            raise IndexNetworkError(
                f"index {source.name} unavailable: {meta.get('error', 'fetch failed')} "
                "(retried after 10 minutes or `falconet index update`)"
            )
        try:
            text, meta = self._fetch_http(source, cache_file, meta)
        except IndexNetworkError as error:
            with storage(self.cache_dir):
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                meta_file.write_text(
                    json.dumps({**meta, "failed_at": time.time(), "error": str(error)})
                )
            raise
        source.entries = parse_index(text, source.url, source.name)
        with storage(self.cache_dir):
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(cache_file)
            meta_file.write_text(json.dumps(meta))
        source.updated = meta["updated"]

    def _fetch_http(
        self, source: IndexSource, cache_file: Path, meta: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        headers = {"User-Agent": "falconet"}
        if cache_file.is_file():
            if isinstance(meta.get("etag"), str):
                headers["If-None-Match"] = meta["etag"]
            if isinstance(meta.get("last_modified"), str):
                headers["If-Modified-Since"] = meta["last_modified"]
        what = f"index {source.name}"
        try:
            # Bounded and paced like every registry read; redirects that leave https for
            # plain HTTP elsewhere are refused by check_transport on the final URL.
            response = fetch_document(
                "GET", source.url, what, max_size=MAX_INDEX_SIZE, limits=self.limits,
                headers=headers,
            )  # fmt: skip
        except TooLargeError as error:
            raise IndexError_(str(error), "an index.yaml is a small YAML list") from error
        except NetworkError as error:
            raise IndexNetworkError(
                str(error), error.hint or "check the network or the URL"
            ) from error
        if response.url != source.url:
            check_transport(source.name, response.url, source.insecure)
        now = time.time()
        stamp = datetime.fromtimestamp(now, UTC).strftime(TIMESTAMP_FORMAT)
        if response.status == 304 and cache_file.is_file():
            return cache_file.read_text(), {**meta, "fetched_at": now, "updated": stamp}
        if response.status >= 400:
            raise IndexNetworkError(
                f"cannot fetch index {source.name}: HTTP {response.status} from {source.url}",
                "check the index URL",
            )
        return response.body.decode("utf-8", "replace"), {
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

    def lookup(self, name: str) -> IndexEntry | None:
        """The entry named `name`, or None (unread indexes are not an error here)."""
        return next((e for e in reversed(self.entries()) if e.name == name), None)

    def find(self, name: str) -> IndexEntry:
        entry = self.lookup(name)
        if entry is not None:
            return entry
        self._raise_if_unread(f"cannot find {name}")
        raise NotFoundError(
            f"cannot find {name} among the configured indexes",
            "see `falconet artifact list`, or use a full reference host/repository:tag",
        )

    def search(
        self,
        keywords: list[str],
        min_score: float = 0.65,
        artifact_type: str | None = None,
        compliance: str | None = None,
    ) -> list[IndexEntry]:
        """`search` over the merged entries; nothing found while an index could not be read is
        that index's failure (exit 5), not an empty answer."""
        found = search(self.entries(), keywords, min_score, artifact_type, compliance)
        if not found:
            self._raise_if_unread(f"no artifact matches {' '.join(keywords)}")
        for source in self.unread():
            log.warning("index %s could not be read: these results may be incomplete",
                        source.name)  # fmt: skip
        return found

    def unread(self) -> list[IndexSource]:
        """Indexes whose entries could not be read on the last load (offline, unreachable)."""
        return [source for source in self.sources if source.error]

    def _raise_if_unread(self, what: str) -> None:
        unread = self.unread()
        if unread:
            names = ", ".join(source.name for source in unread)
            raise IndexNetworkError(
                f"{what}: index {names} could not be read "
                f"({unread[0].error.splitlines()[0][:200]})",
                "check the network or the index URL, then `falconet index update`; or give a "
                "full reference host/repository:tag",
            )


FAILURE_BACKOFF_SECONDS = 600.0


def _recently_failed(meta: dict[str, Any]) -> bool:
    try:
        failed_at = float(meta.get("failed_at", 0))
    except (TypeError, ValueError):
        return False
    return time.time() - failed_at < FAILURE_BACKOFF_SECONDS


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _read_meta(meta_file: Path) -> dict[str, Any]:
    """The cache's metadata of one index; a damaged file is treated as absent (repaired by
    the next fetch), never a reason for every command to fail."""
    try:
        meta = json.loads(meta_file.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.warning("ignoring damaged index cache metadata %s: %s", meta_file, _first_line(error))
        return {}
    return meta if isinstance(meta, dict) else {}


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
        limits=transfer_limits(config),
    )


def transfer_limits(config: Any) -> TransferLimits:
    """config `transfer.*` as TransferLimits (docs/security.md)."""
    return TransferLimits(
        low_speed_limit=int(config["transfer.low_speed_limit"]),
        low_speed_time=parse_duration(str(config["transfer.low_speed_time"])),
        timeout=parse_duration(str(config["transfer.timeout"])),
    )
