"""Rules files → validated, compiled rules, with Falco's load results (`falco -V`, `-L`).

Files load in order into one collection, as Falco's `load_rules` does per file: each file is read
into the collector (stopping at its first error) and the whole collection is recompiled, so later
files override and append to earlier ones and every file gets its own LoadResult. The rules
compiled by the last successful compilation are the engine's rules.

A compile cache keyed by the content hash of every file (and the engine's version and sources)
makes reloading unchanged files nearly free: hot reloads and `follow` ticks pay only when
something changed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import semver

from engine import condition_backend, versions
from engine.errors import EngineError
from engine.load_result import LoadResult
from engine.rule_collector import Collector, compatible_with
from engine.rule_compiler import CompiledList, CompiledMacro, CompileOutput, RuleCompiler
from engine.rule_items import PluginRequirement
from engine.rule_limits import RulesLimits, over_limit
from engine.rule_reader import RulesReader
from engine.ruleset import (
    CompiledRule,
    EventTypeOf,
    Matching,
    Rulesets,
    SelectionStep,
    build_rulesets,
)

log = logging.getLogger(__name__)

CACHE_SIZE = 8


class RulesFileError(EngineError):
    """A rules file (or any file at all) is missing."""

    exit_status = "not_found"


class RulesFileUnreadableError(EngineError):
    """A rules file exists but cannot be read (permissions, not UTF-8)."""


class RulesFileTooLargeError(EngineError):
    """A rules file is larger than the file_bytes budget."""


class RulesInvalidError(EngineError):
    """At least one rules file is invalid; `loaded` holds every file's LoadResult."""

    def __init__(self, loaded: LoadedRules) -> None:
        names = ", ".join(r.name for r in loaded.results if not r.successful)
        first = next(m for r in loaded.results for m in r.errors)
        super().__init__(
            f"invalid rules file {names}: {first.code.name}: {first.message}",
            hint="run `falconet rules validate FILE` for positions and snippets",
        )
        self.loaded = loaded


@dataclass
class LoadedRules:
    """The outcome of loading rules files in order."""

    results: list[LoadResult]
    contents: dict[str, str]
    rules: list[CompiledRule] = field(default_factory=list)
    lists: dict[str, CompiledList] = field(default_factory=dict)
    macros: dict[str, CompiledMacro] = field(default_factory=dict)
    required_engine_version: str | None = None
    required_plugin_versions: list[list[PluginRequirement]] = field(default_factory=list)

    @property
    def successful(self) -> bool:
        return all(r.successful for r in self.results)

    def rule(self, name: str) -> CompiledRule | None:
        return next((r for r in self.rules if r.name == name), None)

    def unmet_plugin_requirements(self, provided: Mapping[str, str]) -> list[str]:
        """Falco's check_plugin_requirements: one message per requirement that no loaded
        plugin (name → version) satisfies with a compatible version."""
        messages = []
        for alternatives in self.required_plugin_versions:
            if not any(_satisfies(provided.get(a.name), a.version) for a in alternatives):
                wanted = ", ".join(f"{a.name} (>= {a.version})" for a in alternatives)
                messages.append(f"Plugin requirement not satisfied, must load one of: {wanted}")
        return messages


def _satisfies(loaded: str | None, required: str) -> bool:
    if loaded is None:
        return False
    try:
        return compatible_with(semver.Version.parse(loaded), semver.Version.parse(required))
    except ValueError:
        return False


class RulesLoader:
    """Accumulates rules files like one Falco engine instance."""

    def __init__(self, check_schema: bool = False, limits: RulesLimits | None = None) -> None:
        self.check_schema = check_schema
        self.limits = limits or RulesLimits.from_environment()
        self.collector = Collector(
            source_known=condition_backend.source_known,
            field_is_valid=condition_backend.field_is_valid,
        )
        self.results: list[LoadResult] = []
        self.contents: dict[str, str] = {}
        self.output = CompileOutput()

    def load(self, content: str, name: str) -> LoadResult:
        result = LoadResult(name)
        self.contents[name] = content
        self.results.append(result)
        reader = RulesReader(self.collector, result, content, self.check_schema, self.limits)
        if reader.read():
            output = RuleCompiler(self.collector, result, self.limits).compile()
            if result.successful:
                self.output = output
        return result

    def loaded(self) -> LoadedRules:
        engine_version = self.collector.required_engine_version
        return LoadedRules(
            results=list(self.results),
            contents=dict(self.contents),
            rules=list(self.output.rules),
            lists=dict(self.output.lists),
            macros=dict(self.output.macros),
            required_engine_version=engine_version.version if engine_version else None,
            required_plugin_versions=[
                list(r.alternatives) for r in self.collector.required_plugin_versions
            ],
        )


_cache: OrderedDict[str, LoadedRules] = OrderedDict()
_cache_lock = threading.Lock()


def clear_caches() -> None:
    """Forget every cached load, composed YAML document and remembered compilation (for
    benchmarks measuring cold loads; nothing else needs it: caches are keyed by content)."""
    from engine import yamlfile

    with _cache_lock:
        _cache.clear()
    yamlfile.clear_documents()
    condition_backend.clear_memo()


def _cache_key(files: Sequence[tuple[str, str]], check_schema: bool, limits: RulesLimits) -> str:
    digest = hashlib.sha256()
    digest.update(versions.ENGINE_VERSION_SEMVER.encode())
    digest.update(repr(limits).encode())
    digest.update(b"\0schema\0" if check_schema else b"\0")
    for source in condition_backend.known_sources():
        digest.update(b"\0source\0" + source.encode())
    for name, content in files:
        digest.update(b"\0name\0" + name.encode() + b"\0content\0" + content.encode())
    return digest.hexdigest()


def load_contents(
    files: Sequence[tuple[str, str]],
    use_cache: bool = True,
    check_schema: bool = False,
    cache_dir: Path | None = None,
) -> LoadedRules:
    """Load (name, content) pairs in order. Compiled rules are immutable once built, so a
    cached result is shared by every caller that loads the same contents. `check_schema` adds
    the (informational) JSON Schema statuses `falco -V` reports. With `cache_dir`, a load is
    also kept on disk for the next process (engine.compile_cache)."""
    limits = RulesLimits.from_environment()
    key = _cache_key(files, check_schema, limits)
    if use_cache:
        with _cache_lock:
            cached = _cache.get(key)
            if cached is not None:
                _cache.move_to_end(key)
                log.debug("rules cache hit for %d file(s)", len(files))
                return cached
    loaded = None
    if use_cache and cache_dir is not None:
        from engine import compile_cache

        loaded = compile_cache.load(cache_dir, key)
    if loaded is None:
        loader = RulesLoader(check_schema, limits)
        for name, content in files:
            loader.load(content, name)
        loaded = loader.loaded()
        if use_cache and cache_dir is not None:
            from engine import compile_cache

            compile_cache.store(cache_dir, key, loaded)
    if use_cache:
        with _cache_lock:
            _cache[key] = loaded
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return loaded


def read_rules_files(
    paths: Iterable[str | Path], max_bytes: int | None = None
) -> list[tuple[str, str]]:
    """(name, content) per file, directories expanded to their .yaml/.yml files in
    alphabetical order (as Falco reads `rules_files` entries). A file larger than `max_bytes`
    (default: the file_bytes budget) is refused without being read whole."""
    if max_bytes is None:
        max_bytes = RulesLimits.from_environment().file_bytes
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            entries = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
            files.extend(read_rules_files(entries, max_bytes))
            continue
        try:
            files.append((str(path), _read_bounded(path, max_bytes)))
        except FileNotFoundError:
            raise RulesFileError(
                f"rules file {path} does not exist", hint="check the path"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise RulesFileUnreadableError(
                f"cannot read rules file {path}: {error}",
                hint="rules files are UTF-8 YAML readable by this user",
            ) from None
    return files


def _read_bounded(path: Path, max_bytes: int) -> str:
    with path.open("rb") as stream:
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise RulesFileTooLargeError(
            over_limit(
                f"rules file {path} is larger than {max_bytes} bytes", "file_bytes", max_bytes
            ),
            hint="rules files this large are refused as hostile; raise the limit if it is yours",
        )
    return data.decode("utf-8")


def load_rules_files(
    paths: Iterable[str | Path],
    use_cache: bool = True,
    check_schema: bool = False,
    cache_dir: Path | None = None,
) -> LoadedRules:
    """Read and load rules files in order (no error raised for invalid files: see results);
    `cache_dir`: see load_contents."""
    paths = list(paths)
    files = read_rules_files(paths)
    if not files:
        raise RulesFileError(
            "no rules files to load in " + ", ".join(map(str, paths)),
            hint="give rules files, or directories holding .yaml/.yml files",
        )
    return load_contents(files, use_cache=use_cache, check_schema=check_schema, cache_dir=cache_dir)


def load_valid_rules(paths: Iterable[str | Path], use_cache: bool = True) -> LoadedRules:
    """Like load_rules_files, but raise RulesInvalidError when any file is invalid."""
    loaded = load_rules_files(paths, use_cache=use_cache)
    if not loaded.successful:
        raise RulesInvalidError(loaded)
    return loaded


@dataclass
class Validation:
    """`falco -V`: every file's result, plus the plugin requirements nothing satisfies."""

    loaded: LoadedRules
    unmet_requirements: list[str]

    @property
    def successful(self) -> bool:
        return self.loaded.successful and not self.unmet_requirements

    def as_json(self) -> dict[str, object]:
        contents = self.loaded.contents
        return {"falco_load_results": [r.as_json(contents) for r in self.loaded.results]}


def validate_rules_files(paths: Iterable[str | Path], cache_dir: Path | None = None) -> Validation:
    loaded = load_rules_files(paths, check_schema=True, cache_dir=cache_dir)
    return Validation(loaded, loaded.unmet_plugin_requirements(versions.plugin_versions()))


def _event_type_extractor(source: str) -> EventTypeOf | None:
    fields = condition_backend.catalog_for(source)
    if fields is None or fields.spec("evt.type") is None:
        return None
    _, extract = fields.extractor("evt.type")
    return extract


def rulesets_for(
    loaded: LoadedRules,
    steps: Sequence[SelectionStep] = (),
    min_priority: str = "Debug",
    matching: Matching = "first",
) -> Rulesets:
    """The per-source rulesets of loaded rules, with falco.yaml's selection applied; syscall
    events are dispatched by their evt.type."""
    sources = {rule.source for rule in loaded.rules}
    extractors = {s: e for s in sources if (e := _event_type_extractor(s)) is not None}
    return build_rulesets(loaded.rules, steps, min_priority, matching, extractors)
