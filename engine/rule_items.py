"""The items of a rules file as the loader collects them (before compilation).

Mirrors Falco's rule_loader info structs: each keeps its context (for messages), its `index`
(first definition: evaluation order is kept on redefinition) and `visibility` (latest
definition/append: which macros a macro may see).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.load_result import Context
from engine.output import Priority

SYSCALL_SOURCE = "syscall"


@dataclass
class ExceptionEntry:
    """A scalar (`item`) or a sequence of entries (`items`), as exception fields/comps/values
    are written: `fields: proc.name` or `fields: [proc.name, fd.name]`."""

    item: str = ""
    items: list[ExceptionEntry] = field(default_factory=list)
    is_list: bool = False

    @property
    def is_valid(self) -> bool:
        """Falco's entry::is_valid: a non-empty scalar or a non-empty sequence."""
        return bool(self.items) if self.is_list else bool(self.item)


@dataclass
class ExceptionInfo:
    context: Context
    name: str
    fields: ExceptionEntry = field(default_factory=ExceptionEntry)
    comps: ExceptionEntry = field(default_factory=ExceptionEntry)
    values: list[ExceptionEntry] = field(default_factory=list)


@dataclass
class EngineVersionRequirement:
    context: Context
    version: str  # semver text


@dataclass(frozen=True)
class PluginRequirement:
    name: str
    version: str


@dataclass
class PluginRequirementAlternatives:
    """Satisfied when any of the alternatives is loaded at a compatible version."""

    context: Context
    alternatives: list[PluginRequirement]


@dataclass
class ListInfo:
    context: Context
    name: str
    items: list[str]
    index: int = 0
    visibility: int = 0


@dataclass
class MacroInfo:
    context: Context
    condition_context: Context
    name: str
    condition: str
    index: int = 0
    visibility: int = 0


@dataclass
class RuleInfo:
    context: Context
    condition_context: Context
    output_context: Context
    name: str
    condition: str = ""
    output: str = ""
    desc: str = ""
    priority: str = "Debug"  # canonical Falco name, see engine.rule_items.parse_priority
    source: str = SYSCALL_SOURCE
    enabled: bool = True
    tags: set[str] = field(default_factory=set)
    exceptions: list[ExceptionInfo] = field(default_factory=list)
    warn_evttypes: bool = True
    skip_if_unknown_filter: bool = False
    capture: bool = False
    capture_duration: int = 0
    unknown_source: bool = False
    index: int = 0
    visibility: int = 0


@dataclass
class RuleUpdate:
    """An append or selective replace of an existing rule (None = key not given)."""

    context: Context
    name: str
    source: str = ""
    condition_context: Context | None = None
    condition: str | None = None
    output: str | None = None
    desc: str | None = None
    tags: set[str] | None = None
    exceptions: list[ExceptionInfo] | None = None
    priority: str | None = None
    capture: bool | None = None
    capture_duration: int | None = None
    enabled: bool | None = None
    warn_evttypes: bool | None = None
    skip_if_unknown_filter: bool | None = None

    def has_any_value(self) -> bool:
        return any(
            value is not None
            for value in (
                self.condition,
                self.output,
                self.desc,
                self.tags,
                self.exceptions,
                self.priority,
                self.capture,
                self.capture_duration,
                self.enabled,
                self.warn_evttypes,
                self.skip_if_unknown_filter,
            )
        )


def parse_priority(text: str) -> str | None:
    """The canonical Falco name ("Warning", "Informational"...) of a priority, or None."""
    try:
        return Priority.parse(text).falco_name
    except ValueError:
        return None


def priority_rank(name: str) -> int:
    """0 for Emergency ... 7 for Debug (lower = more severe), as Falco orders them."""
    return int(Priority.parse(name))


PRIORITIES = tuple(p.falco_name for p in Priority)
