"""Field-extraction interface shared by every event source.

A source (syscall, k8s_audit, aws_cloudtrail, json, ...) registers a FieldCatalog. The condition
compiler and the output formatter ask the catalog for an extractor once, at compile time, and then
call it per event: `extractor(event) -> value`, where None means "cannot be extracted" (the
comparison is then false, the output shows <NA> / null).

Value conventions (what extractors return):
- string types ("string", "fspath"): str
- integer types ("int", "uint", "pid", "fd", "port", "uid", "gid", "mode", "flags", "errno",
  "reltime", "abstime" in ns): int
- "bool": bool
- "ipaddr": ipaddress.IPv4Address | IPv6Address;  "ipnet": ipaddress.IPv4Network | IPv6Network
- "bytebuf": bytes
- list fields (is_list=True): a tuple of values of the element type (never None for "empty";
  None still means "cannot be extracted")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FunctionType
from typing import Any, Literal

from engine.errors import UnknownFieldError

Extractor = Callable[[Any], Any]
# Given the field argument (None when absent), return an extractor. Raise ValueError for a bad
# argument; the catalog turns it into an UnknownFieldError naming the field.
ExtractorFactory = Callable[[str | None], Extractor]

ArgMode = Literal["none", "required", "optional"]

STRING_TYPES = frozenset({"string", "fspath"})
INTEGER_TYPES = frozenset(
    {
        "int",
        "uint",
        "pid",
        "fd",
        "port",
        "uid",
        "gid",
        "mode",
        "flags",
        "errno",
        "reltime",
        "abstime",
    }
)
FIELD_TYPES = STRING_TYPES | INTEGER_TYPES | {"bool", "ipaddr", "ipnet", "bytebuf", "double"}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    desc: str = ""
    is_list: bool = False
    arg: ArgMode = "none"
    # An argument given without brackets: "evt.arg.flags" is evt.arg with argument "flags".
    dotted_arg: bool = False
    no_rhs: bool = False  # Falco's EPF_NO_RHS: cannot be used as val(...) on the right side
    no_transformer: bool = False

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.name}: unknown type {self.type!r}")


@dataclass
class _Entry:
    spec: FieldSpec
    factory: ExtractorFactory


@dataclass
class FieldCatalog:
    """The fields of one event source, keyed by full name."""

    source: str
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def add(self, spec: FieldSpec, factory: ExtractorFactory, replace: bool = False) -> None:
        """`replace`: a loaded plugin's field takes the place of a built-in one."""
        if spec.name in self._entries and not replace:
            raise ValueError(f"{self.source}: field {spec.name} registered twice")
        self._entries[spec.name] = _Entry(spec, factory)

    def add_simple(self, spec: FieldSpec, extractor: Extractor) -> None:
        """Register a field that takes no argument."""

        def factory(arg: str | None) -> Extractor:
            if arg is not None:
                raise ValueError(f"field {spec.name} takes no argument")
            return extractor

        self.add(spec, factory)

    def specs(self) -> Iterable[FieldSpec]:
        return (e.spec for e in self._entries.values())

    def split(self, name: str) -> tuple[FieldSpec, str | None] | None:
        """Resolve a dotted-argument name ("evt.arg.flags") to (spec, "flags")."""
        entry = self._entries.get(name)
        if entry is not None:
            return entry.spec, None
        head, _, _ = name.rpartition(".")
        while head:
            entry = self._entries.get(head)
            if entry is not None and entry.spec.dotted_arg:
                return entry.spec, name[len(head) + 1 :]
            head, _, _ = head.rpartition(".")
        return None

    def spec(self, name: str) -> FieldSpec | None:
        found = self.split(name)
        return found[0] if found else None

    def extractor(self, name: str, arg: str | None = None) -> tuple[FieldSpec, Extractor]:
        found = self.split(name)
        if found is None:
            raise UnknownFieldError(f"filter_check called with nonexistent field {name}")
        spec, dotted = found
        if dotted is not None:
            if arg is not None:
                raise UnknownFieldError(f"field {name} cannot take both forms of argument")
            arg = dotted
        if spec.arg == "none" and arg is not None:
            raise UnknownFieldError(f"field {spec.name} does not take an argument")
        if spec.arg == "required" and arg is None:
            raise UnknownFieldError(f"field {spec.name} requires an argument")
        try:
            return spec, self._entries[spec.name].factory(arg)
        except ValueError as error:
            raise UnknownFieldError(f"field {spec.name}[{arg}]: {error}") from error


_SOURCES: dict[str, Callable[[], FieldCatalog]] = {}
_LOADED: dict[str, FieldCatalog] = {}


def register_source(name: str, loader: Callable[[], FieldCatalog]) -> None:
    """Register a source lazily: `loader` builds its catalog the first time it is asked for."""
    _SOURCES[name] = loader
    _LOADED.pop(name, None)


def extend_source(name: str, extend: Callable[[FieldCatalog], None]) -> None:
    """Add fields to a registered source (a loaded extractor plugin's): `extend` runs on the
    source's catalog each time it is built."""
    _load_builtin_sources()
    base = _SOURCES[name]

    def loader() -> FieldCatalog:
        built = base()
        extend(built)
        return built

    register_source(name, loader)


def registered_loaders() -> dict[str, Callable[[], FieldCatalog]]:
    """The registered sources (to restore them after plugins are unloaded)."""
    _load_builtin_sources()
    return dict(_SOURCES)


def restore_loaders(loaders: dict[str, Callable[[], FieldCatalog]]) -> None:
    _SOURCES.clear()
    _SOURCES.update(loaders)
    _LOADED.clear()


def catalog(name: str) -> FieldCatalog | None:
    if name not in _LOADED:
        loader = _SOURCES.get(name)
        if loader is None:
            _load_builtin_sources()
            loader = _SOURCES.get(name)
            if loader is None:
                return None
        _LOADED[name] = loader()
    return _LOADED[name]


def known_sources() -> list[str]:
    _load_builtin_sources()
    return sorted(_SOURCES)


def _load_builtin_sources() -> None:
    # Importing engine.sources registers every built-in source (each module registers itself).
    import importlib

    try:
        importlib.import_module("engine.sources")
    except ModuleNotFoundError as error:  # pragma: no cover - during early development
        if error.name != "engine.sources":
            raise


def _marked(extractor: Extractor, **marks: Any) -> Extractor:
    """Attach compile-time marks to an extractor. A plain function is marked in place (no extra
    call per event); anything else is wrapped once, keeping the marks it already had."""
    if not isinstance(extractor, FunctionType):
        inner = extractor

        def extractor(event: Any) -> Any:
            return inner(event)

        for name in ("any_of", "to_text", "check_value"):
            if hasattr(inner, name):
                setattr(extractor, name, getattr(inner, name))
    for name, value in marks.items():
        setattr(extractor, name, value)
    return extractor


def any_of(extractor: Extractor) -> Extractor:
    """Mark the extractor of a non-list field that yields a tuple of candidate values: a check on
    it holds when it holds for any candidate (Falco's `proc.aname` without an index)."""
    return _marked(extractor, any_of=True)


def is_any_of(extractor: Extractor) -> bool:
    return bool(getattr(extractor, "any_of", False))


def with_text(extractor: Extractor, to_text: Callable[[Any], str]) -> Extractor:
    """Attach a field-specific text form used by outputs (e.g. evt.time renders its ns integer
    as a clock time); JSON output_fields keep the typed value."""
    return _marked(extractor, to_text=to_text)


def text_renderer(extractor: Extractor) -> Callable[[Any], str] | None:
    return getattr(extractor, "to_text", None)


def with_value_check(extractor: Extractor, check: Callable[[str], None]) -> Extractor:
    """Attach a compile-time check of the constants compared with the field: `check(text)` raises
    ValueError with the message to report (libsinsp's evt.type: "unknown event type X")."""
    return _marked(extractor, check_value=check)


def value_check(extractor: Extractor) -> Callable[[str], None] | None:
    return getattr(extractor, "check_value", None)
