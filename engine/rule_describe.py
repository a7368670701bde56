"""`falco -L` JSON: what loaded rules, macros and lists are made of (falco_engine::describe_rule).

Details come from two ASTs, as in Falco: the condition as written (which macros and lists it
names) and the compiled one (every operator and field after expansion), plus the event types
the compiled condition can match and its canonical text (`condition_compiled`).
"""

from __future__ import annotations

from typing import Any

from engine import condition_backend as backend
from engine.condition.ast import (
    And,
    BinaryCheck,
    Expr,
    Field,
    ListValue,
    MacroRef,
    Not,
    Or,
    Transformer,
    TransformerList,
    UnaryCheck,
    Value,
)
from engine.errors import EngineError
from engine.loader import LoadedRules
from engine.rule_items import SYSCALL_SOURCE
from engine.ruleset import CompiledRule

_EVENT_TYPE_FIELDS = ("evt.type", "evt.asynctype")
ASYNC_EVENT = "asyncevent"
PLUGIN_EVENT = "pluginevent"


class RuleNotLoadedError(EngineError):
    exit_status = "not_found"


class _Details:
    """Falco's filter_details_resolver: macros, lists, operators, fields, event names."""

    def __init__(self, known_macros: set[str], known_lists: set[str]) -> None:
        self.known_macros = known_macros
        self.known_lists = known_lists
        self.macros: set[str] = set()
        self.lists: set[str] = set()
        self.operators: set[str] = set()
        self.fields: set[str] = set()
        self.event_names: set[str] = set()

    def visit(self, expr: Expr) -> None:
        if isinstance(expr, And | Or):
            for child in expr.children:
                self.visit(child)
        elif isinstance(expr, Not):
            self.visit(expr.child)
        elif isinstance(expr, MacroRef):
            if expr.name in self.known_macros:
                self.macros.add(expr.name)
        elif isinstance(expr, UnaryCheck):
            self.operators.add(expr.op)
            self._visit_operand(expr.left)
        elif isinstance(expr, BinaryCheck):
            left_name = self._visit_operand(expr.left)
            self.operators.add(expr.op)
            self._visit_right(expr.right, left_name in _EVENT_TYPE_FIELDS)

    def _visit_operand(self, expr: Expr) -> str:
        """Record the fields of a check's operand; the name of the last field seen."""
        last = ""
        if isinstance(expr, Field):
            last = expr.name + (f"[{expr.arg}]" if expr.arg else "")
            self.fields.add(last)
        elif isinstance(expr, Transformer | TransformerList):
            children = expr.args if isinstance(expr, Transformer) else expr.children
            for child in children:
                last = self._visit_operand(child) or last
        return last

    def _visit_right(self, expr: Expr, expect_event_names: bool) -> None:
        if isinstance(expr, ListValue):
            for item in expr.values:
                if item in self.known_lists:
                    self.lists.add(item)
                elif expect_event_names:
                    self.event_names.add(item)
        elif isinstance(expr, Value):
            if expect_event_names:
                self.event_names.add(expr.value)
        else:
            self._visit_operand(expr)


def _details(expr: Expr, loaded: LoadedRules) -> _Details:
    details = _Details(set(loaded.macros), set(loaded.lists))
    details.visit(expr)
    return details


def _written_details(condition: str, loaded: LoadedRules) -> _Details:
    """Details of a condition as written. It may not parse before list substitution (a list
    named `a b`); its macros and lists are then unknown, where Falco would fail."""
    try:
        return _details(backend.parse_cached(condition), loaded)
    except backend.ConditionSyntaxError:
        return _Details(set(), set())


def _events(source: str, expr: Expr) -> list[str]:
    if source and source != SYSCALL_SOURCE:
        return [ASYNC_EVENT, PLUGIN_EVENT]
    types = backend.event_types(expr)
    if types is None:
        return ["all"]  # Falco lists every event name; `all` as its legacy -L output did
    return sorted(types | {ASYNC_EVENT})


def describe_rule(rule: CompiledRule, loaded: LoadedRules) -> dict[str, Any]:
    info = rule.info
    written = _written_details(info["condition"], loaded)
    compiled_expr: Expr = info["expanded_condition"]
    compiled = _details(compiled_expr, loaded)
    return {
        "info": {
            "name": rule.name,
            "condition": info["condition"],
            "priority": rule.priority,
            "output": info["output"],
            "description": rule.description,
            "enabled": rule.enabled,
            "source": rule.source,
            "capture": info["capture"],
            "capture_duration": info["capture_duration"],
            "tags": sorted(rule.tags),
        },
        "details": {
            "macros": sorted(written.macros),
            "lists": sorted(written.lists),
            "condition_operators": sorted(compiled.operators),
            "condition_fields": sorted(compiled.fields),
            "output_fields": backend.output_fields(rule.output),
            "exception_fields": info["exception_fields"],
            "exception_names": sorted(set(info["exception_names"])),
            "exception_operators": info["exception_operators"],
            "events": _events(rule.source, compiled_expr),
            "condition_compiled": backend.to_text(compiled_expr),
            "output_compiled": info["output"],
            "plugins": [],
        },
    }


def _describe_macros(loaded: LoadedRules) -> list[dict[str, Any]]:
    out = []
    for macro in loaded.macros.values():
        written = _written_details(macro.definition, loaded)
        compiled = _details(macro.condition, loaded)
        out.append(
            {
                "info": {"name": macro.name, "condition": macro.definition},
                "details": {
                    "used": macro.used,
                    "macros": sorted(written.macros),
                    "lists": sorted(written.lists),
                    "condition_operators": sorted(compiled.operators),
                    "condition_fields": sorted(compiled.fields),
                    "events": _events("", macro.condition),
                    "condition_compiled": backend.to_text(macro.condition),
                    "plugins": [],
                },
            }
        )
    return out


def _describe_lists(loaded: LoadedRules) -> list[dict[str, Any]]:
    out = []
    for compiled in loaded.lists.values():
        # A written item missing from the compiled items was an expanded list reference.
        items = [i for i in compiled.definition if i in compiled.items]
        refs = sorted({i for i in compiled.definition if i not in compiled.items})
        out.append(
            {
                "info": {"name": compiled.name, "items": items},
                "details": {
                    "used": compiled.used,
                    "lists": refs,
                    "items_compiled": list(compiled.items),
                    "plugins": [],
                },
            }
        )
    return out


def describe(loaded: LoadedRules, rule_name: str | None = None) -> dict[str, Any]:
    """Falco's describe_rule JSON for every item, or for one rule."""
    if rule_name is not None:
        rule = loaded.rule(rule_name)
        if rule is None:
            raise RuleNotLoadedError(
                f'Rule "{rule_name}" is not loaded',
                hint="`falconet rules list FILE...` shows the loaded rule names",
            )
        return {"rules": [describe_rule(rule, loaded)]}
    return {
        "required_engine_version": loaded.required_engine_version or "0.0.0",
        "required_plugin_versions": [
            {
                "name": alternatives[0].name,
                "version": alternatives[0].version,
                "alternatives": [{"name": a.name, "version": a.version} for a in alternatives[1:]],
            }
            for alternatives in loaded.required_plugin_versions
        ],
        "rules": [describe_rule(rule, loaded) for rule in loaded.rules],
        "macros": _describe_macros(loaded),
        "lists": _describe_lists(loaded),
    }


def describe_rules_files(paths: list[str], rule_name: str | None = None) -> dict[str, Any]:
    """Load rules files (all must be valid) and describe them."""
    from engine.loader import load_valid_rules

    return describe(load_valid_rules(paths), rule_name)


def list_rules_files(
    paths: list[str],
    tags: list[str],
    selection: list[str] | None = None,
    min_priority: str = "Debug",
) -> list[dict[str, Any]]:
    """The loaded rules (optionally only those with any of `tags`), in evaluation order;
    `enabled` is the outcome of the files' defaults, then the falco.yaml-style `selection`
    steps in order ("enable:rule=PATTERN", "disable:tag=TAG"), then the minimum priority."""
    from engine.loader import load_valid_rules
    from engine.ruleset import parse_selection_text, select_enabled, tag_matches

    loaded = load_valid_rules(paths)
    enabled = {
        r.name
        for r in select_enabled(loaded.rules, parse_selection_text(selection or []), min_priority)
    }
    return [
        {
            "name": rule.name,
            "source": rule.source,
            "priority": rule.priority,
            "enabled": rule.name in enabled,
            "tags": sorted(rule.tags),
            "event_types": None if rule.event_types is None else sorted(rule.event_types),
        }
        for rule in loaded.rules
        if not tags or tag_matches(rule, tags)
    ]
