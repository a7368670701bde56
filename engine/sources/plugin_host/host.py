"""Loading configured plugins into the engine, as Falco does with `load_plugins` and `plugins:`.

- A plugin with a source registers that source (engine.fields.register_source), replacing a
  built-in source of the same name (k8s_audit, aws_cloudtrail...): its catalog is libsinsp's
  `evt.*` fields plus the plugin's own fields.
- The fields of a plugin with extraction apply to the sources it declares
  (get_extract_event_sources); declaring none means its own source when it has one, else every
  source, the syscall one included (the json plugin's case).
- Each loaded plugin is provided under its name and version (engine.sources.provide_plugin), so
  rules' required_plugin_versions and /versions see what is really loaded.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.fields import (
    Extractor,
    FieldCatalog,
    FieldSpec,
    extend_source,
    known_sources,
    register_source,
    registered_loaders,
    restore_loaders,
)
from engine.sources import provide_plugin, provided_plugins, restore_provided
from engine.sources.plugin_host.errors import PluginConfigError, PluginNotFoundError
from engine.sources.plugin_host.events import PluginEvent, event_bytes
from engine.sources.plugin_host.library import Plugin, PluginField

log = logging.getLogger(__name__)

SYSCALL = "syscall"


@dataclass(frozen=True)
class PluginConfig:
    """One entry of falco.yaml's / falconet.yaml's `plugins:` list."""

    name: str
    library_path: str = ""
    init_config: str = ""
    open_params: str = ""

    @classmethod
    def from_mapping(cls, entry: dict[str, Any]) -> PluginConfig:
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise PluginConfigError("?", "each entry of plugins needs a name")
        init = entry.get("init_config", "")
        if isinstance(init, dict | list):  # Falco accepts a YAML mapping and passes it as JSON
            init = json.dumps(init)
        elif init is None:
            init = ""
        params = entry.get("open_params", "")
        return cls(name, str(entry.get("library_path") or ""), str(init), str(params or ""))


def library_for(config: PluginConfig, plugins_dir: Path) -> Path:
    """The library of a plugin: library_path (relative paths are under the plugins directory,
    as in Falco), else `lib<name>.so` in the plugins directory, where `artifact install` puts
    plugin artifacts."""
    if config.library_path:
        path = Path(config.library_path)
        return path if path.is_absolute() else plugins_dir / path
    return plugins_dir / f"lib{config.name}.so"


@dataclass
class LoadedPlugin:
    plugin: Plugin
    config: PluginConfig

    @property
    def name(self) -> str:
        return self.plugin.name

    def applies_to(self, source: str) -> bool:
        declared = self.plugin.extract_sources
        if declared is not None:
            return source in declared
        if self.plugin.event_source:
            return source == self.plugin.event_source
        return True

    def parses(self, source: str) -> bool:
        if not self.plugin.has_parsing:
            return False
        declared = self.plugin.parse_sources
        if declared is not None:
            return source in declared
        return source == self.plugin.event_source if self.plugin.event_source else True


@dataclass
class PluginSet:
    """The plugins loaded for a run, in load order."""

    plugins: list[LoadedPlugin] = field(default_factory=list)

    def by_source(self, source: str) -> LoadedPlugin | None:
        for loaded in self.plugins:
            if loaded.plugin.has_sourcing and loaded.plugin.event_source == source:
                return loaded
        return None

    @property
    def sources(self) -> list[str]:
        return [p.plugin.event_source for p in self.plugins if p.plugin.event_source]

    def versions(self) -> dict[str, str]:
        return {p.name: p.plugin.version for p in self.plugins}

    def parsers(self, source: str) -> list[Callable[[bytes, int, bytes], None]]:
        return [p.plugin.parser() for p in self.plugins if p.parses(source)]

    def close(self) -> None:
        for loaded in reversed(self.plugins):
            loaded.plugin.destroy()


def load_plugins(
    configs: Sequence[PluginConfig], load: Sequence[str], plugins_dir: Path
) -> PluginSet:
    """Load, check and init the plugins named in `load` (Falco's load_plugins), each configured
    by its `plugins:` entry; a name without an entry is looked up in the plugins directory with
    an empty init config and open params. Raises PluginError naming the plugin."""
    by_name = {c.name: c for c in configs}
    loaded = PluginSet()
    try:
        for name in dict.fromkeys(load):  # a name given twice loads once
            config = by_name.get(name) or PluginConfig(name)
            path = library_for(config, plugins_dir)
            if not path.is_file():
                raise PluginNotFoundError(
                    name,
                    f"no library at {path}",
                    hint=f"install it (`falconet artifact install {name}`) or set library_path",
                )
            plugin = Plugin(path, name)
            plugin.init(config.init_config)
            loaded.plugins.append(LoadedPlugin(plugin, config))
            log.info(
                "loaded plugin %s %s (%s)%s",
                plugin.name,
                plugin.version,
                ", ".join(plugin.capabilities),
                f", source {plugin.event_source}" if plugin.event_source else "",
            )
        _check_unique_sources(loaded)
    except BaseException:
        loaded.close()
        raise
    return loaded


def _check_unique_sources(plugins: PluginSet) -> None:
    seen: dict[str, str] = {}
    for loaded in plugins.plugins:
        source = loaded.plugin.event_source
        if not source:
            continue
        if source in seen:
            raise PluginConfigError(
                loaded.name,
                f"provides source {source}, as plugin {seen[source]} does",
                hint="load only one plugin per event source",
            )
        seen[source] = loaded.name


# -- registration with the engine ------------------------------------------------------------------


@contextlib.contextmanager
def activated(plugins: PluginSet) -> Iterator[PluginSet]:
    """The plugins registered with the engine for the duration of the block; the built-in
    sources and provided versions are put back afterwards and the plugins destroyed."""
    global _ACTIVE
    loaders, provided = registered_loaders(), provided_plugins()
    try:
        activate(plugins)
        _ACTIVE = plugins
        yield plugins
    finally:
        _ACTIVE = None
        restore_loaders(loaders)
        restore_provided(provided)
        plugins.close()


_ACTIVE: PluginSet | None = None


def active_plugins() -> PluginSet | None:
    """The plugin set `activated` registered (the run loop reads its sourcing plugins)."""
    return _ACTIVE


def activate(plugins: PluginSet) -> None:
    """Register the plugins' sources and fields with the engine, and their versions."""
    builtin = set(known_sources())  # import the built-in sources before replacing any
    extractors = [p for p in plugins.plugins if p.plugin.has_extraction]
    for loaded in plugins.plugins:
        provide_plugin(loaded.name, loaded.plugin.version)
        source = loaded.plugin.event_source
        if loaded.plugin.has_sourcing and source:
            if source in builtin:
                log.info("plugin %s replaces the built-in %s source", loaded.name, source)
            register_source(source, _source_loader(loaded, extractors))
    plugin_sources = set(plugins.sources)
    for source in sorted(builtin - plugin_sources):
        applicable = [p for p in extractors if p.applies_to(source)]
        if applicable:
            extend_source(source, _extender(applicable))


def _source_loader(
    owner: LoadedPlugin, extractors: list[LoadedPlugin]
) -> Callable[[], FieldCatalog]:
    def load() -> FieldCatalog:
        from engine.sources.json_event import add_event_fields

        source = owner.plugin.event_source
        catalog = FieldCatalog(source)
        add_event_fields(catalog, owner.name, _info(owner))
        catalog.add(
            FieldSpec("evt.is_async", "bool", "whether the event is asynchronous"),
            lambda _arg: _is_async,
            replace=True,
        )
        _extender([p for p in extractors if p.applies_to(source)])(catalog)
        return catalog

    return load


def _is_async(event: Any) -> bool:
    return bool(getattr(event, "async_name", ""))


def _info(owner: LoadedPlugin) -> Callable[[Any], str]:
    """evt.plugininfo: the plugin's event_to_string, else the payload as text."""
    plugin = owner.plugin

    def info(event: Any) -> str:
        text = None
        if isinstance(event, PluginEvent):
            text = plugin.event_text(event.raw, event.num, event.source)
            if text is None:
                return event.data.decode("utf-8", "replace")
        return text or ""

    return info


def _extender(plugins: Iterable[LoadedPlugin]) -> Callable[[FieldCatalog], None]:
    chosen = list(plugins)

    def extend(catalog: FieldCatalog) -> None:
        for loaded in chosen:
            for plugin_field in loaded.plugin.fields:
                spec = FieldSpec(
                    plugin_field.name,
                    plugin_field.type,
                    plugin_field.desc,
                    is_list=plugin_field.is_list,
                    arg=plugin_field.arg,  # type: ignore[arg-type]  # none|required|optional
                )
                catalog.add(spec, _factory(loaded.plugin, plugin_field), replace=True)

    return extend


def _factory(plugin: Plugin, plugin_field: PluginField) -> Callable[[str | None], Extractor]:
    """Per (field, argument): one prepared extract_fields request, memoized per event (rules
    test the same fields many times)."""
    made: dict[str | None, Extractor] = {}

    def factory(arg: str | None) -> Extractor:
        found = made.get(arg)
        if found is not None:
            return found
        token, slot, batch = plugin.field_slot(plugin_field, arg)
        sources: dict[str, bytes] = {}

        def extract(event: Any) -> Any:
            if type(event) is PluginEvent:  # the hot path: an event of a plugin source
                memo = event.memo
                values = memo.get(token)
                if values is None or slot >= len(values):
                    name = sources.get(event.source)
                    if name is None:
                        name = sources[event.source] = event.source.encode()
                    values = memo[token] = batch(event.raw, event.num, name)
                return values[slot]
            raw = event_bytes(event)
            if raw is None:
                return None
            source = event.source if hasattr(event, "source") else SYSCALL
            name = sources.get(source)
            if name is None:
                name = sources[source] = source.encode()
            memo = getattr(event, "memo", None)
            if memo is None:  # a syscall event: no per-event memo
                return batch(raw, getattr(event, "num", 0), name)[slot]
            values = memo.get(token)
            if values is None or slot >= len(values):
                values = memo[token] = batch(raw, getattr(event, "num", 0), name)
            return values[slot]

        made[arg] = extract
        return extract

    return factory


def describe_plugin(
    name: str, plugins_dir: Path, configs: Sequence[PluginConfig] = ()
) -> dict[str, Any]:
    """What Falco's `--plugin-info` shows: identity, required API, capabilities, source, fields,
    the init schema and suggested open params. `name` is a `plugins:` entry's name, a name in
    the plugins directory, or a library path. The plugin is initialised (list_open_params needs
    a state) with its configured init_config, then destroyed."""
    config = next((c for c in configs if c.name == name), None)
    if config is None:
        config = PluginConfig(name, library_path=name) if "/" in name else PluginConfig(name)
    plugin = Plugin(library_for(config, plugins_dir), config.name)
    try:
        schema = plugin.init_schema()
        plugin.init(config.init_config)
        open_params = plugin.list_open_params() if plugin.has_sourcing else []
    finally:
        plugin.destroy()
    return {
        "name": plugin.name,
        "version": plugin.version,
        "description": plugin.description,
        "contact": plugin.contact,
        "required_api_version": plugin.required_api_version,
        "library": str(plugin.path),
        "capabilities": plugin.capabilities,
        "id": plugin.id,
        "event_source": plugin.event_source,
        "extract_event_sources": list(plugin.extract_sources or ()),
        "fields": [
            {
                "name": f.name,
                "type": f.type,
                "is_list": f.is_list,
                "arg": f.arg,
                "desc": f.desc,
            }
            for f in plugin.fields
        ],
        "init_schema": schema,
        "open_params": open_params,
    }
