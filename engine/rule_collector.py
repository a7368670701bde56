"""Accumulates the items of one or more rules files: define, append, selective replace, enable.

Falco's rule_loader::collector, same rules and error messages: a redefinition replaces the item
but keeps its original index (so evaluation order is that of the first definition); appends and
replaces need an earlier definition; several files accumulate in load order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import semver

from engine import versions
from engine.load_result import Context, ErrorCode, LoadResult, RuleLoadError, WarningCode
from engine.rule_items import (
    EngineVersionRequirement,
    ExceptionEntry,
    ExceptionInfo,
    ListInfo,
    MacroInfo,
    PluginRequirementAlternatives,
    RuleInfo,
    RuleUpdate,
)

# Falco's rule_loading_messages.h
ERROR_NO_PREVIOUS_MACRO = (
    "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists"
)
ERROR_NO_PREVIOUS_LIST = (
    "List uses 'append' or 'override.items: append' but no list by that name already exists"
)
ERROR_NO_PREVIOUS_RULE_APPEND = (
    "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists"
)
ERROR_NO_PREVIOUS_RULE_REPLACE = (
    "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists"
)

# libs' parser operators (filter/parser.cpp supported_operators) and the string operators that
# accept a oneof/anyof/allof modifier (falco:rule_loader_cmpop.h).
LIST_OPERATORS = frozenset({"in", "intersects", "pmatch"})
OPERATORS = frozenset(
    {"=", "==", "!=", "<=", ">=", "<", ">", "exists", "contains", "icontains", "bcontains"}
    | {"startswith", "bstartswith", "endswith", "glob", "iglob", "regex"}
    | LIST_OPERATORS
)
MODIFIABLE_OPERATORS = frozenset(
    {"=", "==", "!=", "contains", "icontains", "bcontains", "startswith", "bstartswith"}
    | {"endswith", "glob", "iglob", "regex"}
)
MODIFIERS = frozenset({"oneof", "anyof", "allof"})

_FIELD_ARGUMENT = re.compile(r"\[.*\]$")
_TRANSFORMER_CALL = re.compile(r"^[a-z0-9_]+\((.*)\)$")

FieldValidator = Callable[[str, str], bool]  # (source, field text) -> is a valid LHS field


def is_operator_with_modifier(op: str) -> bool:
    parts = op.split()
    return len(parts) == 2 and parts[0] in MODIFIABLE_OPERATORS and parts[1] in MODIFIERS


def is_list_operator(op: str) -> bool:
    return op in LIST_OPERATORS or is_operator_with_modifier(op)


def _fail(message: str, context: Context) -> RuleLoadError:
    return RuleLoadError(ErrorCode.LOAD_ERR_VALIDATE, message, context)


def compatible_with(engine: semver.Version, required: semver.Version) -> bool:
    """libs' sinsp_version::compatible_with: same major, at least the required version."""
    return engine.major == required.major and engine >= required


@dataclass
class Collector:
    """Items collected so far, in definition order (dicts keep insertion order)."""

    source_known: Callable[[str], bool]
    field_is_valid: FieldValidator
    lists: dict[str, ListInfo] = field(default_factory=dict)
    macros: dict[str, MacroInfo] = field(default_factory=dict)
    rules: dict[str, RuleInfo] = field(default_factory=dict)
    required_engine_version: EngineVersionRequirement | None = None
    required_plugin_versions: list[PluginRequirementAlternatives] = field(default_factory=list)
    next_index: int = 0

    def _take_index(self) -> int:
        index = self.next_index
        self.next_index += 1
        return index

    def _define(self, table: dict, info: ListInfo | MacroInfo | RuleInfo) -> None:
        index = self._take_index()
        previous = table.get(info.name)
        info.index = previous.index if previous else index
        info.visibility = index
        # Replacing the value keeps the key's position: iteration order = first definition.
        table[info.name] = info

    # --- requirements

    def define_engine_version(self, requirement: EngineVersionRequirement) -> None:
        engine = semver.Version.parse(versions.ENGINE_VERSION_SEMVER)
        required = semver.Version.parse(requirement.version)
        if not compatible_with(engine, required):
            raise _fail(
                f"Rules require engine version {required}, but engine version is {engine}",
                requirement.context,
            )
        current = self.required_engine_version
        if current is None or semver.Version.parse(current.version) < required:
            self.required_engine_version = requirement

    def define_plugin_requirement(self, requirement: PluginRequirementAlternatives) -> None:
        seen: set[str] = set()
        for alternative in requirement.alternatives:
            if not semver.Version.is_valid(alternative.version):
                raise _fail(
                    f"Invalid required version '{alternative.version}' for plugin "
                    f"'{alternative.name}'",
                    requirement.context,
                )
            if alternative.name in seen:
                raise _fail(
                    "Defined multiple alternative version requirements for plugin "
                    f"'{alternative.name}'",
                    requirement.context,
                )
            seen.add(alternative.name)
        self.required_plugin_versions.append(requirement)

    # --- lists and macros

    def define_list(self, info: ListInfo) -> None:
        self._define(self.lists, info)

    def append_list(self, info: ListInfo) -> None:
        previous = self.lists.get(info.name)
        if previous is None:
            raise _fail(ERROR_NO_PREVIOUS_LIST, info.context)
        previous.items.extend(info.items)
        previous.visibility = self._take_index()

    def define_macro(self, info: MacroInfo) -> None:
        self._define(self.macros, info)

    def append_macro(self, info: MacroInfo) -> None:
        previous = self.macros.get(info.name)
        if previous is None:
            raise _fail(ERROR_NO_PREVIOUS_MACRO, info.context)
        previous.condition += " " + info.condition
        previous.visibility = self._take_index()

    # --- rules

    def _previous_rule(self, name: str, source: str, context: Context) -> RuleInfo | None:
        previous = self.rules.get(name)
        if previous and previous.source and source and previous.source != source:
            raise _fail("Rule has been re-defined with a different source", context)
        return previous

    def define_rule(self, info: RuleInfo, result: LoadResult) -> None:
        self._previous_rule(info.name, info.source, info.context)
        known = self.source_known(info.source)
        if not known:
            info.unknown_source = True
            result.add_warning(
                WarningCode.LOAD_UNKNOWN_SOURCE,
                f"Unknown source {info.source}, skipping",
                info.context,
            )
        for exception in info.exceptions:
            if not exception.fields.is_valid:
                raise _fail(
                    "Rule exception item must have fields property with a list of fields",
                    exception.context,
                )
            self._validate_exception(info.source if known else None, exception)
        self._define(self.rules, info)

    def append_rule(self, update: RuleUpdate) -> None:
        previous = self._previous_rule(update.name, update.source, update.context)
        if previous is None:
            raise _fail(ERROR_NO_PREVIOUS_RULE_APPEND, update.context)
        if not update.has_any_value():
            raise _fail("Appended rule must have exceptions or condition property", update.context)
        source = None if previous.unknown_source else previous.source
        if update.condition:
            previous.condition += " " + update.condition
        if update.output:
            previous.output += " " + update.output
        if update.desc:
            previous.desc += " " + update.desc
        if update.tags is not None:
            previous.tags |= update.tags
        for exception in update.exceptions or ():
            self._append_exception(previous, exception, source)
        previous.visibility = self._take_index()

    def _append_exception(
        self, rule: RuleInfo, exception: ExceptionInfo, source: str | None
    ) -> None:
        existing = next((e for e in rule.exceptions if e.name == exception.name), None)
        if existing is None:
            if not exception.fields.is_valid:
                raise _fail(
                    "Rule exception must have fields property with a list of fields",
                    exception.context,
                )
            if not exception.values:
                raise _fail(
                    "Rule exception must have values property with a list of values",
                    exception.context,
                )
            self._validate_exception(source, exception)
            rule.exceptions.append(exception)
            return
        if exception.fields.is_valid:
            raise _fail(
                "Can not append exception fields to existing exception, only values",
                exception.context,
            )
        if exception.comps.is_valid:
            raise _fail(
                "Can not append exception comps to existing exception, only values",
                exception.context,
            )
        existing.values.extend(exception.values)

    def replace_rule(self, update: RuleUpdate) -> None:
        previous = self._previous_rule(update.name, update.source, update.context)
        if previous is None:
            raise _fail(ERROR_NO_PREVIOUS_RULE_REPLACE, update.context)
        if not update.has_any_value():
            raise _fail(
                "The rule must have at least one field that can be replaced", update.context
            )
        for key in (
            "condition",
            "output",
            "desc",
            "tags",
            "exceptions",
            "priority",
            "capture",
            "capture_duration",
            "enabled",
            "warn_evttypes",
            "skip_if_unknown_filter",
        ):
            value = getattr(update, key)
            if value is not None:
                setattr(previous, key, value)
        previous.visibility = self._take_index()

    def enable_rule(self, name: str, enabled: bool, context: Context) -> None:
        previous = self.rules.get(name)
        if previous is None:
            raise _fail("Rule has 'enabled' key but no rule by that name already exists", context)
        previous.enabled = enabled

    # --- exceptions

    def _validate_exception(self, source: str | None, exception: ExceptionInfo) -> None:
        """Falco's validate_exception_info: default comps, lengths, operators, fields."""
        fields, comps = exception.fields, exception.comps
        if fields.is_list:
            if not comps.is_valid:
                comps.is_list = True
                comps.items = [ExceptionEntry(item="=") for _ in fields.items]
            if len(fields.items) != len(comps.items):
                raise _fail("Fields and comps lists must have equal length", exception.context)
            for comp in comps.items:
                comp.item = comp.item.strip(" \t\r\n")
                if comp.item not in OPERATORS and not is_operator_with_modifier(comp.item):
                    raise _fail(
                        f"'{comp.item}' is not a supported comparison operator", exception.context
                    )
            checked = [f.item for f in fields.items]
        else:
            if not comps.is_valid:
                comps.is_list, comps.item = False, "in"
            if comps.is_list:
                raise _fail("Fields and comps must both be strings", exception.context)
            comps.item = comps.item.strip(" \t\r\n")
            if comps.item not in LIST_OPERATORS and not is_operator_with_modifier(comps.item):
                raise _fail(
                    "When fields is a single value, comps must be one of (in, pmatch, "
                    "intersects) or a modifier operator (e.g. startswith oneof)",
                    exception.context,
                )
            checked = [fields.item]
        if source is None:
            return
        for name in checked:
            if not self.field_is_valid(source, name):
                raise _fail(f"'{name}' is not a supported filter field", exception.context)


def lhs_field_name(text: str) -> str:
    """The field a left-hand side names: `tolower(proc.name)` -> proc.name, `a.b[x]` -> a.b."""
    text = text.strip()
    while match := _TRANSFORMER_CALL.match(text):
        text = match.group(1).strip()
    return _FIELD_ARGUMENT.sub("", text)
