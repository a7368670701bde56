"""Reads a rules file's YAML into the collector, item by item (Falco's rule_loader_reader.cpp).

Reading stops at the first error (the rest of the file is not read), exactly as Falco does;
warnings accumulate in the file's LoadResult.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import semver

from engine import yamlfile
from engine.load_result import Context, ErrorCode, ItemType, LoadResult, RuleLoadError, WarningCode
from engine.rule_collector import Collector
from engine.rule_items import (
    SYSCALL_SOURCE,
    EngineVersionRequirement,
    ExceptionEntry,
    ExceptionInfo,
    ListInfo,
    MacroInfo,
    PluginRequirement,
    PluginRequirementAlternatives,
    RuleInfo,
    RuleUpdate,
    parse_priority,
)
from engine.rule_limits import RulesLimits, over_limit
from engine.yamlfile import MappingNode, Node, ScalarNode, SequenceNode

WARNING_APPEND = (
    "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under "
    "'override' instead."
)
WARNING_ENABLED = (
    "The standalone 'enabled' key usage is deprecated. The correct approach requires also a "
    "'replace' entry under the 'override' key (i.e. 'enabled: replace')."
)
ERROR_OVERRIDE_APPEND = (
    "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. "
    "'condition: append') under 'override' instead."
)

# libs' parser tokens, used to warn about list/macro names conditions could not refer to.
RGX_IDENTIFIER = "([a-zA-Z]+[a-zA-Z0-9_]*)"
RGX_BARESTR = "([^()\"'[:space:]=,]+)"
_T = TypeVar("_T")
# (override keys, "append"|"replace", key) -> whether the key is overridden; checks it is given.
_TakeOverride = Callable[[set[str], str, str], bool]

_IDENTIFIER = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_BARESTR = re.compile(r"[^()\"'\s=,]+")

LIST_KEYS = frozenset({"list", "items", "append", "override"})
MACRO_KEYS = frozenset({"macro", "condition", "append", "override"})
RULE_KEYS = frozenset(
    {"rule", "condition", "output", "desc", "priority", "source", "enabled", "capture"}
    | {"capture_duration", "warn_evttypes", "skip-if-unknown-filter", "tags", "exceptions"}
    | {"override", "append"}
)
RULE_APPENDABLE = ("condition", "output", "desc", "tags", "exceptions")
RULE_REPLACEABLE = (
    "condition",
    "output",
    "desc",
    "priority",
    "capture",
    "capture_duration",
    "tags",
    "exceptions",
    "enabled",
    "warn_evttypes",
    "skip-if-unknown-filter",
)


def _invalid(message: str, context: Context) -> RuleLoadError:
    return RuleLoadError(ErrorCode.LOAD_ERR_YAML_VALIDATE, message, context)


def _child(context: Context, node: Node | None, item_type: ItemType, name: str = "") -> Context:
    return context.child(yamlfile.position(node), item_type, name)


# --- scalar decoding (Falco's decode_val_generic)


def _scalar(
    item: Node, key: str, context: Context, *, optional: bool = False, can_be_empty: bool = False
) -> tuple[str, Node] | None:
    """The scalar text under `key`, or None when absent (optional) / empty (can_be_empty)."""
    value = yamlfile.get(item, key)
    if value is None:
        if optional:
            return None
        raise _invalid(f"Item has no mapping for key '{key}'", context)
    if yamlfile.is_null(value):
        if can_be_empty:
            return None
        raise _invalid(f"Mapping for key '{key}' is empty", context)
    value_context = _child(context, value, ItemType.VALUE_FOR, key)
    if not isinstance(value, ScalarNode):
        raise _invalid("Value is not a scalar value", value_context)
    if not value.value:
        if can_be_empty:
            return None
        raise _invalid("Value must be non-empty", value_context)
    return value.value, value


def _string(item: Node, key: str, context: Context, *, optional: bool = False) -> str | None:
    found = _scalar(item, key, context, optional=optional)
    return None if found is None else found[0]


def _bool(item: Node, key: str, context: Context, *, optional: bool = False) -> bool | None:
    found = _scalar(item, key, context, optional=optional)
    if found is None:
        return None
    decoded = yamlfile.decode_bool(found[0])
    if decoded is None:
        raise _invalid(
            "Can't decode YAML scalar value", _child(context, found[1], ItemType.VALUE_FOR, key)
        )
    return decoded


def _uint(item: Node, key: str, context: Context, *, optional: bool = False) -> int | None:
    found = _scalar(item, key, context, optional=optional)
    if found is None:
        return None
    decoded = yamlfile.decode_uint(found[0])
    if decoded is None:
        raise _invalid(
            "Can't decode YAML scalar value", _child(context, found[1], ItemType.VALUE_FOR, key)
        )
    return decoded


def _sequence_of_scalars(item: Node, key: str, context: Context) -> list[str]:
    value = yamlfile.get(item, key)
    value_context = _child(context, value, ItemType.VALUE_FOR, key)
    if not isinstance(value, SequenceNode):
        raise _invalid("Value is not a sequence", value_context)
    out = []
    for entry in value.value:
        if not isinstance(entry, ScalarNode):
            raise _invalid(
                "sequence value is not scalar", _child(value_context, entry, ItemType.LIST_ITEM)
            )
        out.append(entry.value)
    return out


def _items(item: Node, context: Context) -> list[str]:
    if yamlfile.get(item, "items") is None:
        raise _invalid("Item has no mapping for key 'items'", context)
    return _sequence_of_scalars(item, "items", context)


def _tags(item: Node, context: Context) -> set[str] | None:
    if yamlfile.get(item, "tags") is None:
        return None
    return set(_sequence_of_scalars(item, "tags", context))


# --- overrides


def _overrides(
    item: Node, appendable: tuple[str, ...], replaceable: tuple[str, ...], context: Context
) -> tuple[set[str], set[str]]:
    """The keys under `override` to append and to replace, checked against what is allowed."""
    node = yamlfile.get(item, "override")
    if node is None:
        return set(), set()
    override_context = _child(context, item, ItemType.OVERRIDE)
    appends: set[str] = set()
    replaces: set[str] = set()
    entries = node.value if isinstance(node, MappingNode) else []
    for key_node, op_node in entries:
        key = yamlfile.scalar_text(key_node)
        operation = yamlfile.scalar_text(op_node)
        key_context = _child(override_context, key_node, ItemType.OVERRIDE, key)
        if operation == "append":
            if key not in appendable:
                raise _invalid(
                    f"Key '{key}' cannot be appended to, use 'replace' instead", key_context
                )
            appends.add(key)
        elif operation == "replace":
            if key not in replaceable:
                raise _invalid(f"Key '{key}' cannot be replaced", key_context)
            replaces.add(key)
        else:
            allowed = ("append " if key in appendable else "") + (
                "replace " if key in replaceable else ""
            )
            raise _invalid(
                f"Invalid override operation for key '{key}': '{operation}'. "
                f"Allowed values are: {allowed}",
                _child(override_context, op_node, ItemType.VALUE_FOR, key),
            )
    return appends, replaces


def _warn_unknown_keys(
    item: Node, expected: frozenset[str], result: LoadResult, context: Context
) -> None:
    for key, _ in yamlfile.keys(item):
        if key not in expected:
            result.add_warning(
                WarningCode.LOAD_UNKNOWN_KEY,
                f"Unknown key '{key}'. The key will be ignored.",
                context,
            )


def _append_flag(item: Node, result: LoadResult, context: Context) -> bool:
    append = bool(_bool(item, "append", context, optional=True))
    if append:
        result.add_warning(WarningCode.LOAD_DEPRECATED_ITEM, WARNING_APPEND, context)
    return append


# --- exceptions


def _exception_entry(node: Node | None, context: Context) -> ExceptionEntry:
    value_context = context
    if isinstance(node, ScalarNode) and not yamlfile.is_null(node):
        if not node.value:
            raise _invalid("Value must be non-empty", value_context)
        return ExceptionEntry(item=node.value)
    if isinstance(node, SequenceNode):
        items = [
            _exception_entry(v, _child(value_context, v, ItemType.EXCEPTION)) for v in node.value
        ]
        return ExceptionEntry(items=items, is_list=True)
    # yaml-cpp leaves an entry of another kind (null, mapping) empty: neither scalar nor list.
    return ExceptionEntry()


def _exception_key(item: Node, key: str, context: Context, *, optional: bool) -> ExceptionEntry:
    node = yamlfile.get(item, key)
    if node is None:
        if optional:
            return ExceptionEntry()
        raise _invalid(f"Item has no mapping for key '{key}'", context)
    return _exception_entry(node, _child(context, node, ItemType.VALUE_FOR, key))


def _exceptions(
    item: Node, result: LoadResult, context: Context, *, append: bool
) -> list[ExceptionInfo]:
    node = yamlfile.get(item, "exceptions")
    if node is None or yamlfile.is_null(node):
        return []
    list_context = _child(context, node, ItemType.EXCEPTIONS)
    if not isinstance(node, SequenceNode):
        raise _invalid("Rule exceptions must be a sequence", list_context)
    out: list[ExceptionInfo] = []
    for entry in node.value:
        tmp_context = _child(list_context, entry, ItemType.EXCEPTION)
        if not isinstance(entry, MappingNode):
            raise _invalid("Rule exception must be a mapping", tmp_context)
        name = _string(entry, "name", tmp_context) or ""
        ex_context = _child(context, entry, ItemType.EXCEPTION, name)
        if any(e.name == name for e in out):
            result.add_warning(
                WarningCode.LOAD_EXCEPTION_NAME_NOT_UNIQUE,
                f"Multiple definitions of exception '{name}' in the same rule",
                ex_context,
            )
        info = ExceptionInfo(context=ex_context, name=name)
        info.fields = _exception_key(entry, "fields", ex_context, optional=append)
        info.comps = _exception_key(entry, "comps", ex_context, optional=True)
        values = yamlfile.get(entry, "values")
        if values is not None:
            values_context = _child(ex_context, values, ItemType.EXCEPTION_VALUES)
            if not isinstance(values, SequenceNode):
                raise _invalid("Rule exception values must be a sequence", values_context)
            for value in values.value:
                value_context = _child(values_context, value, ItemType.EXCEPTION_VALUE)
                info.values.append(_exception_entry(value, value_context))
        elif append:
            result.add_warning(
                WarningCode.LOAD_APPEND_NO_VALUES,
                "Overriding/appending exception with no values",
                ex_context,
            )
        out.append(info)
    return out


# --- items


class RulesReader:
    """Reads one file's content into a collector, recording messages in `result`."""

    def __init__(
        self,
        collector: Collector,
        result: LoadResult,
        content: str,
        check_schema: bool = False,
        limits: RulesLimits | None = None,
    ) -> None:
        self.collector = collector
        self.result = result
        self.content = content
        self.check_schema = check_schema
        self.limits = limits or RulesLimits()
        self.file_context = Context.for_file(result.name)
        self._items = 0

    def read(self) -> bool:
        size = len(self.content.encode("utf-8", "surrogatepass"))
        if size > self.limits.file_bytes:
            message = over_limit(
                f"rules file of {size} bytes is too large", "file_bytes", self.limits.file_bytes
            )
            self.result.add_error(ErrorCode.LOAD_ERR_FILE_READ, message, self.file_context)
            return False
        try:
            documents = yamlfile.load_documents(self.content, self.limits.yaml_nodes)
        except yamlfile.YamlBudgetError as error:
            context = self.file_context.child(error.position, ItemType.VALUE_FOR)
            message = str(error)
            if error.over_budget:
                message = over_limit(message, "yaml_nodes", self.limits.yaml_nodes)
            self.result.add_error(ErrorCode.LOAD_ERR_YAML_PARSE, message, context)
            return False
        except yamlfile.YamlParseError as error:
            context = self.file_context.child(error.position, ItemType.VALUE_FOR)
            self.result.add_error(ErrorCode.LOAD_ERR_YAML_PARSE, str(error), context)
            return False
        if self.check_schema:
            from engine.rule_schema_check import schema_statuses

            self.result.schema_statuses = schema_statuses(documents)
        for document in documents:
            if document is None or yamlfile.is_null(document):
                continue
            try:
                self._read_document(document)
            except RuleLoadError as error:
                self.result.add_error(error.code, error.message, error.context)
                return False
        return True

    def _read_document(self, document: Node) -> None:
        if not isinstance(document, MappingNode | SequenceNode):
            raise _invalid("Rules content is not yaml", self.file_context)
        if not isinstance(document, SequenceNode):
            raise _invalid("Rules content is not yaml array of objects", self.file_context)
        self._items += len(document.value)
        if self._items > self.limits.items:
            raise _invalid(
                over_limit(
                    f"rules file has more than {self.limits.items} items",
                    "items",
                    self.limits.items,
                ),
                self.file_context,
            )
        for item in document.value:
            if not yamlfile.is_null(item):
                self._read_item(item)

    def _read_item(self, item: Node) -> None:
        parent = self.file_context
        if not isinstance(item, MappingNode):
            raise _invalid(
                "Unexpected element type. Each element should be a yaml associative array.",
                _child(parent, item, ItemType.RULES_CONTENT_ITEM),
            )
        if yamlfile.get(item, "required_engine_version") is not None:
            self._read_engine_version(item)
        elif yamlfile.get(item, "required_plugin_versions") is not None:
            self._read_plugin_versions(item)
        elif yamlfile.get(item, "list") is not None:
            self._read_list(item)
        elif yamlfile.get(item, "macro") is not None:
            self._read_macro(item)
        elif yamlfile.get(item, "rule") is not None:
            self._read_rule(item)
        else:
            self.result.add_warning(
                WarningCode.LOAD_UNKNOWN_ITEM,
                "Unknown top level item",
                _child(parent, item, ItemType.RULES_CONTENT_ITEM),
            )

    def _read_engine_version(self, item: Node) -> None:
        context = _child(self.file_context, item, ItemType.REQUIRED_ENGINE_VERSION)
        text = _string(item, "required_engine_version", context) or ""
        number = yamlfile.decode_uint(text)
        if number is not None:
            version = f"0.{number}.0"  # Falco's implicit engine version: major fixed to 0
        elif semver.Version.is_valid(text):
            version = text
        else:
            raise _invalid(
                f"Unable to parse engine version '{text}' as a semver string. "
                'Expected "x.y.z" semver format.',
                context,
            )
        self.collector.define_engine_version(EngineVersionRequirement(context, version))
        _warn_unknown_keys(item, frozenset({"required_engine_version"}), self.result, context)

    def _read_plugin_versions(self, item: Node) -> None:
        node = yamlfile.get(item, "required_plugin_versions")
        context = _child(self.file_context, node, ItemType.REQUIRED_PLUGIN_VERSIONS)
        if not isinstance(node, SequenceNode):
            raise _invalid("Value of required_plugin_versions must be a sequence", context)
        for plugin in node.value:
            tmp = _child(context, plugin, ItemType.REQUIRED_PLUGIN_VERSIONS_ENTRY)
            if not isinstance(plugin, MappingNode):
                raise _invalid("Plugin version must be a mapping", tmp)
            name = _string(plugin, "name", tmp) or ""
            entry_context = _child(context, plugin, ItemType.REQUIRED_PLUGIN_VERSIONS_ENTRY, name)
            version = _string(plugin, "version", entry_context) or ""
            alternatives = [PluginRequirement(name, version)]
            alt_node = yamlfile.get(plugin, "alternatives")
            if alt_node is not None:
                if not isinstance(alt_node, SequenceNode):
                    raise _invalid(
                        "Value of plugin version alternatives must be a sequence", entry_context
                    )
                for alt in alt_node.value:
                    kind = ItemType.REQUIRED_PLUGIN_VERSIONS_ALTERNATIVE
                    tmp = _child(entry_context, alt, kind)
                    if not isinstance(alt, MappingNode):
                        raise _invalid("Plugin version alternative must be a mapping", tmp)
                    alt_name = _string(alt, "name", tmp) or ""
                    tmp = _child(entry_context, alt, kind, alt_name)
                    alternatives.append(
                        PluginRequirement(alt_name, _string(alt, "version", tmp) or "")
                    )
            self.collector.define_plugin_requirement(
                PluginRequirementAlternatives(entry_context, alternatives)
            )
        item_context = _child(self.file_context, item, ItemType.REQUIRED_PLUGIN_VERSIONS)
        _warn_unknown_keys(item, frozenset({"required_plugin_versions"}), self.result, item_context)

    def _read_list(self, item: Node) -> None:
        name = _string(item, "list", _child(self.file_context, item, ItemType.LIST)) or ""
        context = _child(self.file_context, item, ItemType.LIST, name)
        if not _BARESTR.fullmatch(name):
            self.result.add_warning(
                WarningCode.LOAD_INVALID_LIST_NAME,
                "List has an invalid name. List names should match a regular expression: "
                + RGX_BARESTR,
                context,
            )
        info = ListInfo(context=context, name=name, items=_items(item, context))
        append = _append_flag(item, self.result, context)
        appends, replaces = _overrides(item, ("items",), ("items",), context)
        if append and (appends or replaces):
            raise _invalid(ERROR_OVERRIDE_APPEND, context)
        if append or "items" in appends:
            self.collector.append_list(info)
        else:
            self.collector.define_list(info)
        _warn_unknown_keys(item, LIST_KEYS, self.result, context)

    def _read_macro(self, item: Node) -> None:
        name = _string(item, "macro", _child(self.file_context, item, ItemType.MACRO)) or ""
        context = _child(self.file_context, item, ItemType.MACRO, name)
        if not _IDENTIFIER.fullmatch(name):
            self.result.add_warning(
                WarningCode.LOAD_INVALID_MACRO_NAME,
                "Macro has an invalid name. Macro names should match a regular expression: "
                + RGX_IDENTIFIER,
                context,
            )
        condition = _string(item, "condition", context) or ""
        condition_context = _child(
            context, yamlfile.get(item, "condition"), ItemType.MACRO_CONDITION
        )
        info = MacroInfo(context, condition_context, name, condition)
        append = _append_flag(item, self.result, context)
        appends, replaces = _overrides(item, ("condition",), ("condition",), context)
        if append and (appends or replaces):
            raise _invalid(ERROR_OVERRIDE_APPEND, context)
        if append or "condition" in appends:
            self.collector.append_macro(info)
        else:
            self.collector.define_macro(info)
        _warn_unknown_keys(item, MACRO_KEYS, self.result, context)

    def _read_rule(self, item: Node) -> None:
        name = _string(item, "rule", _child(self.file_context, item, ItemType.RULE)) or ""
        context = _child(self.file_context, item, ItemType.RULE, name)
        found = _scalar(item, "source", context, optional=True, can_be_empty=True)
        source = found[0] if found else ""
        append = _append_flag(item, self.result, context)
        appends, replaces = _overrides(item, RULE_APPENDABLE, RULE_REPLACEABLE, context)
        if append and (appends or replaces):
            raise _invalid(ERROR_OVERRIDE_APPEND, context)
        if appends or replaces:
            self._read_rule_overrides(item, name, source, appends, replaces, context)
        elif append:
            update = RuleUpdate(context=context, name=name, source=source)
            if yamlfile.get(item, "condition") is not None:
                update.condition_context = _child(
                    context, yamlfile.get(item, "condition"), ItemType.RULE_CONDITION
                )
                update.condition = _string(item, "condition", context)
            if yamlfile.get(item, "exceptions") is not None:
                update.exceptions = _exceptions(item, self.result, context, append=True)
            self.collector.append_rule(update)
        elif all(
            yamlfile.get(item, k) is None for k in ("condition", "output", "desc", "priority")
        ):
            # Legacy enable/disable of an earlier rule.
            enabled = _bool(item, "enabled", context)
            self.result.add_warning(WarningCode.LOAD_DEPRECATED_ITEM, WARNING_ENABLED, context)
            self.collector.enable_rule(name, bool(enabled), context)
        else:
            self.collector.define_rule(self._new_rule(item, name, context), self.result)
        _warn_unknown_keys(item, RULE_KEYS, self.result, context)

    def _new_rule(self, item: Node, name: str, context: Context) -> RuleInfo:
        condition = _string(item, "condition", context) or ""
        condition_context = _child(
            context, yamlfile.get(item, "condition"), ItemType.RULE_CONDITION
        )
        output = _string(item, "output", context) or ""
        output_context = _child(context, yamlfile.get(item, "output"), ItemType.RULE_OUTPUT)
        desc = _string(item, "desc", context) or ""
        priority = self._priority(item, context)
        rule = RuleInfo(
            context=context,
            condition_context=condition_context,
            output_context=output_context,
            name=name,
            condition=condition,
            output=output.strip(" \t\n\r\f\v"),
            desc=desc,
            priority=priority,
        )
        rule.source = _string(item, "source", context, optional=True) or SYSCALL_SOURCE
        rule.enabled = _optional(_bool(item, "enabled", context, optional=True), True)
        rule.capture = _optional(_bool(item, "capture", context, optional=True), False)
        rule.capture_duration = _optional(
            _uint(item, "capture_duration", context, optional=True), 0
        )
        rule.warn_evttypes = _optional(_bool(item, "warn_evttypes", context, optional=True), True)
        rule.skip_if_unknown_filter = _optional(
            _bool(item, "skip-if-unknown-filter", context, optional=True), False
        )
        rule.tags = _tags(item, context) or set()
        rule.exceptions = _exceptions(item, self.result, context, append=False)
        return rule

    def _priority(self, item: Node, context: Context) -> str:
        text = _string(item, "priority", context) or ""
        parsed = parse_priority(text)
        if parsed is None:
            priority_context = _child(
                context, yamlfile.get(item, "priority"), ItemType.RULE_PRIORITY
            )
            raise _invalid("Invalid priority", priority_context)
        return parsed

    def _read_rule_overrides(
        self,
        item: Node,
        name: str,
        source: str,
        appends: set[str],
        replaces: set[str],
        context: Context,
    ) -> None:
        expected = {
            key
            for key in set(RULE_APPENDABLE) | set(RULE_REPLACEABLE)
            if yamlfile.get(item, key) is not None
        }

        def take(overrides: set[str], kind: str, key: str) -> bool:
            if key not in overrides:
                return False
            if key not in expected:
                raise _invalid(
                    f"An {kind} override for '{key}' was specified but '{key}' is not defined",
                    context,
                )
            expected.discard(key)
            return True

        if appends:
            update = self._rule_update(item, name, source, appends, "append", take, context)
            self.collector.append_rule(update)
        if replaces:
            update = self._rule_update(item, name, source, replaces, "replace", take, context)
            self.collector.replace_rule(update)
        for key in sorted(expected):
            key_context = _child(context, yamlfile.get(item, key), ItemType.OVERRIDE, key)
            raise _invalid(
                f"Unexpected key '{key}': no corresponding entry under 'override' is defined.",
                key_context,
            )

    def _rule_update(
        self,
        item: Node,
        name: str,
        source: str,
        keys: set[str],
        kind: str,
        take: _TakeOverride,
        context: Context,
    ) -> RuleUpdate:
        update = RuleUpdate(context=context, name=name)
        if take(keys, kind, "condition"):
            update.source = source
            update.condition = _string(item, "condition", context)
            update.condition_context = _child(
                context, yamlfile.get(item, "condition"), ItemType.RULE_CONDITION
            )
        if take(keys, kind, "exceptions"):
            update.exceptions = _exceptions(item, self.result, context, append=kind == "append")
        if take(keys, kind, "output"):
            update.output = _string(item, "output", context)
        if take(keys, kind, "desc"):
            update.desc = _string(item, "desc", context)
        if take(keys, kind, "tags"):
            update.tags = _tags(item, context) or set()
        if kind == "replace":
            if take(keys, kind, "priority"):
                update.priority = self._priority(item, context)
            if take(keys, kind, "capture"):
                update.capture = _bool(item, "capture", context)
            if take(keys, kind, "capture_duration"):
                update.capture_duration = _uint(item, "capture_duration", context)
            if take(keys, kind, "enabled"):
                update.enabled = _bool(item, "enabled", context)
            if take(keys, kind, "warn_evttypes"):
                update.warn_evttypes = _bool(item, "warn_evttypes", context)
            if take(keys, kind, "skip-if-unknown-filter"):
                update.skip_if_unknown_filter = _bool(item, "skip-if-unknown-filter", context)
        return update


def _optional(value: _T | None, default: _T) -> _T:
    return default if value is None else value
