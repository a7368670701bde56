"""Compiles the collected lists, macros and rules (Falco's rule_loader_compiler.cpp).

Order and visibility as Falco: lists expand earlier lists one level; every condition gets the
lists substituted as text, then is parsed; macros see the macros defined before their latest
(re)definition, rule conditions see every macro; exceptions become `and not (...)` clauses
before parsing. The first error stops the compilation; warnings accumulate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine import condition_backend as backend
from engine.condition.ast import Expr
from engine.condition_text import ConditionTooLongError, substitute_list, with_exceptions
from engine.load_result import Context, ErrorCode, LoadResult, RuleLoadError, WarningCode
from engine.macro_resolver import resolve_macros
from engine.rule_collector import Collector
from engine.rule_items import SYSCALL_SOURCE, RuleInfo
from engine.rule_limits import RulesLimits, over_limit
from engine.ruleset import CompiledRule

MAX_EVENT_TYPES = 100  # above this a syscall rule warns LOAD_NO_EVTTYPE
DEPRECATED_FIELDS = (
    "evt.dir",
    "evt.latency",
    "evt.latency.s",
    "evt.latency.ns",
    "evt.latency.human",
    "evt.wait_latency",
)
DEPRECATED_FIELD_DESCRIPTIONS = {
    "evt.dir": "due to the drop of enter events, 'evt.dir = <' always evaluates to true, and "
    "'evt.dir = >' always evaluates to false. The rule expression can be simplified by "
    "removing the condition on 'evt.dir'",
} | {
    name: "field is not available due to the drop of enter events."
    for name in DEPRECATED_FIELDS[1:]
}
CONTAINER_INFO = "%container.info"
UNKNOWN_FILTER_MARKERS = (
    "nonexistent field",
    "invalid formatting token",
    "unknown event type",
    "unknown filter:",
)


@dataclass
class CompiledList:
    name: str
    items: list[str]  # earlier lists named among the items are expanded
    definition: list[str]  # the items as written
    used: bool = False


@dataclass
class CompiledMacro:
    name: str
    condition: Expr  # macros resolved
    definition: str  # the condition as written (after appends)
    used: bool = False


@dataclass
class CompileOutput:
    lists: dict[str, CompiledList] = field(default_factory=dict)
    macros: dict[str, CompiledMacro] = field(default_factory=dict)
    rules: list[CompiledRule] = field(default_factory=list)


def _line_column(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of `index` in `text`, as libs' parser counts them."""
    index = max(0, min(index, len(text)))
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def condition_context(parent: Context, condition: str, index: int) -> Context:
    line, column = _line_column(condition, index)
    return parent.in_condition(condition, index, line, column)


def _is_unknown_filter_error(message: str) -> bool:
    return any(marker in message for marker in UNKNOWN_FILTER_MARKERS)


class RuleCompiler:
    def __init__(
        self, collector: Collector, result: LoadResult, limits: RulesLimits | None = None
    ) -> None:
        self.collector = collector
        self.result = result
        self.out = CompileOutput()
        self.limits = limits or RulesLimits()
        self.load_nodes = 0  # expanded condition nodes of the rules compiled so far

    def compile(self) -> CompileOutput:
        """Compile everything; on error the error is in `result` and the output is partial."""
        try:
            self._compile_lists()
            self._compile_macros()
            self._compile_rules()
        except RuleLoadError as error:
            self.result.add_error(error.code, error.message, error.context)
            return self.out
        self._warn_unused()
        return self.out

    # --- lists and macros

    def _compile_lists(self) -> None:
        used: list[str] = []
        for info in self.collector.lists.values():
            items: list[str] = []
            for item in info.items:
                ref = self.collector.lists.get(item)
                if ref is not None and ref.index < info.visibility:
                    used.append(ref.name)
                    items.extend(ref.items)
                else:
                    items.append(item)
                if len(items) > self.limits.list_items:
                    raise RuleLoadError(
                        ErrorCode.LOAD_ERR_VALIDATE,
                        over_limit(
                            f"list '{info.name}' expands to more than "
                            f"{self.limits.list_items} items",
                            "list_items",
                            self.limits.list_items,
                        ),
                        info.context,
                    )
            self.out.lists[info.name] = CompiledList(info.name, items, list(info.items))
        for name in used:
            self.out.lists[name].used = True

    def _parse(self, condition: str, context: Context) -> tuple[Expr, str]:
        """Substitute the lists (all of them, in definition order) and parse. Lists substituted
        into lists can double the text at each step: the text is bounded after each one."""
        max_chars = self.limits.condition_chars
        self._check_chars(condition, context)
        for compiled in self.out.lists.values():
            if compiled.name not in condition:  # the common case, without a call
                continue
            try:
                condition, used = substitute_list(
                    condition, compiled.name, compiled.items, max_chars
                )
            except ConditionTooLongError:
                raise RuleLoadError(
                    ErrorCode.LOAD_ERR_VALIDATE,
                    over_limit(
                        f"condition is longer than {max_chars} characters once list "
                        f"'{compiled.name}' is substituted",
                        "condition_chars",
                        max_chars,
                    ),
                    context,
                ) from None
            compiled.used |= used
        try:
            return backend.parse_cached(condition), condition
        except backend.ConditionSyntaxError as error:
            raise RuleLoadError(
                ErrorCode.LOAD_ERR_COMPILE_CONDITION,
                error.message,
                condition_context(context, condition, error.position or 0),
            ) from None

    def _check_chars(self, condition: str, context: Context) -> None:
        if len(condition) > self.limits.condition_chars:
            raise RuleLoadError(
                ErrorCode.LOAD_ERR_VALIDATE,
                over_limit(
                    f"condition is longer than {self.limits.condition_chars} characters",
                    "condition_chars",
                    self.limits.condition_chars,
                ),
                context,
            )

    def _resolve(
        self, expr: Expr, condition: str, visibility: int | None, context: Context
    ) -> Expr:
        """Substitute the macros visible from an item: those first defined before its latest
        (re)definition (`visibility`), or every macro for a rule (None)."""
        macros, infos = self.out.macros, self.collector.macros

        def visible(name: str) -> Expr | None:
            compiled = macros.get(name)
            if compiled is None or (visibility is not None and infos[name].index >= visibility):
                return None
            return compiled.condition

        max_nodes = self.limits.condition_nodes
        resolution = resolve_macros(expr, visible, max_nodes)
        problem = resolution.first_problem()
        if problem is not None:
            message, position = problem
            if resolution.too_large is not None:
                message = over_limit(message, "condition_nodes", max_nodes)
            raise RuleLoadError(
                ErrorCode.LOAD_ERR_VALIDATE,
                message,
                condition_context(context, condition, position),
            )
        for name in resolution.resolved:
            macros[name].used = True
        if visibility is None:  # a rule: its condition is compiled, which walks it as a tree
            self.load_nodes += resolution.nodes
            if self.load_nodes > self.limits.load_nodes:
                raise RuleLoadError(
                    ErrorCode.LOAD_ERR_VALIDATE,
                    over_limit(
                        f"the rules loaded so far expand to more than {self.limits.load_nodes} "
                        "condition nodes together",
                        "load_nodes",
                        self.limits.load_nodes,
                    ),
                    context,
                )
        return resolution.expr

    def _compile_macros(self) -> None:
        for info in self.collector.macros.values():
            expr, _ = self._parse(info.condition, info.condition_context)
            self.out.macros[info.name] = CompiledMacro(info.name, expr, info.condition)
        for info in self.collector.macros.values():
            compiled = self.out.macros[info.name]
            compiled.condition = self._resolve(
                compiled.condition, info.condition, info.visibility, info.context
            )

    # --- rules

    def _compile_rules(self) -> None:
        for info in self.collector.rules.values():
            if info.unknown_source:
                continue
            rule = self._compile_rule(info)
            if rule is not None:
                self.out.rules.append(rule)

    def _compile_rule(self, info: RuleInfo) -> CompiledRule | None:
        catalog = backend.catalog_for(info.source)
        if catalog is None:
            raise RuleLoadError(
                ErrorCode.LOAD_ERR_VALIDATE,
                f"Unknown source at compile-time{info.source}",
                info.context,
            )
        exception_fields: set[str] = set()
        condition = info.condition
        if info.exceptions:
            self._check_chars(condition, info.condition_context)
            condition = with_exceptions(condition, info.exceptions, exception_fields)
        output_text = self._output_text(info)
        try:
            output = backend.compile_output(output_text, catalog)
        except backend.OutputError as error:
            if info.skip_if_unknown_filter and _is_unknown_filter_error(str(error)):
                self.result.add_warning(
                    WarningCode.LOAD_UNKNOWN_FILTER, str(error), info.output_context
                )
                return None
            raise RuleLoadError(
                ErrorCode.LOAD_ERR_COMPILE_OUTPUT, str(error), info.output_context
            ) from None
        self._warn_deprecated_in_output(output_text, info.output_context)
        compiled = self._compile_condition(info, condition, catalog)
        if compiled is None:
            return None
        expr, matches = compiled
        event_types = backend.event_types(expr)
        if info.source == SYSCALL_SOURCE and info.warn_evttypes and _too_many(event_types):
            self.result.add_warning(
                WarningCode.LOAD_NO_EVTTYPE,
                "Rule matches too many evt.type values. This has a significant performance "
                "penalty.",
                info.context,
            )
        return CompiledRule(
            name=info.name,
            source=info.source,
            priority=info.priority,
            tags=frozenset(info.tags),
            enabled=info.enabled,
            index=info.index,
            matches=matches,
            event_types=event_types if info.source == SYSCALL_SOURCE else None,
            output=output,
            description=info.desc,
            info={
                "condition": info.condition,
                "output": output_text,
                "expanded_condition": expr,
                "exception_fields": sorted(exception_fields),
                "exception_names": [e.name for e in info.exceptions],
                "exception_operators": sorted(_exception_operators(info)),
                "capture": info.capture,
                "capture_duration": info.capture_duration,
            },
        )

    def _output_text(self, info: RuleInfo) -> str:
        output = info.output
        if CONTAINER_INFO in output:
            self.result.add_warning(
                WarningCode.LOAD_DEPRECATED_ITEM,
                "%container.info is deprecated and no more useful, and will be dropped by Falco "
                "1.0.0. The container plugin will automatically add required fields to the "
                "output message.",
                info.context,
            )
            output = output.replace(CONTAINER_INFO, "")
        return output

    def _warn_deprecated_in_output(self, output: str, context: Context) -> None:
        for name in DEPRECATED_FIELDS:
            if name in output:
                self.result.add_warning(
                    WarningCode.LOAD_DEPRECATED_ITEM,
                    f"usage of deprecated field '{name}' has been detected in the rule output",
                    context,
                    deprecated_field=name,
                )

    def _compile_condition(
        self, info: RuleInfo, condition: str, catalog: Any
    ) -> tuple[Expr, Callable[[Any], bool]] | None:
        expr, _ = self._parse(condition, info.condition_context)
        expr = self._resolve(expr, condition, None, info.context)
        self._warn_condition(expr, condition, info.condition_context)
        try:
            compiled = backend.compile_condition(expr, catalog)
        except backend.ConditionCompileError as error:
            context = condition_context(info.condition_context, condition, error.position or 0)
            if info.skip_if_unknown_filter and _is_unknown_filter_error(error.message):
                self.result.add_warning(WarningCode.LOAD_UNKNOWN_FILTER, error.message, context)
                return None
            raise RuleLoadError(
                ErrorCode.LOAD_ERR_COMPILE_CONDITION, error.message, context
            ) from None
        for warning in compiled.warnings:
            self.result.add_warning(
                WarningCode.LOAD_COMPILE_CONDITION,
                warning.message,
                condition_context(info.condition_context, condition, warning.position),
            )
        return expr, compiled.evaluate

    def _warn_condition(self, expr: Expr, condition: str, parent: Context) -> None:
        """Falco's filter_warning_resolver: unsafe <NA> checks and deprecated fields."""
        context = parent.in_condition(condition, 0, 0, 0)
        unsafe, deprecated = backend.condition_warnings(expr, DEPRECATED_FIELDS)
        if unsafe:
            self.result.add_warning(WarningCode.LOAD_UNSAFE_NA_CHECK, "", context)
        for name in sorted(deprecated, key=DEPRECATED_FIELDS.index):
            self.result.add_warning(
                WarningCode.LOAD_DEPRECATED_ITEM,
                DEPRECATED_FIELD_DESCRIPTIONS[name],
                context,
                deprecated_field=name,
            )

    def _warn_unused(self) -> None:
        for name, macro in self.out.macros.items():
            if not macro.used:
                self.result.add_warning(
                    WarningCode.LOAD_UNUSED_MACRO,
                    "Macro not referred to by any other rule/macro",
                    self.collector.macros[name].context,
                )
        for name, compiled in self.out.lists.items():
            if not compiled.used:
                self.result.add_warning(
                    WarningCode.LOAD_UNUSED_LIST,
                    "List not referred to by any other rule/macro",
                    self.collector.lists[name].context,
                )


def _too_many(event_types: frozenset[str] | None) -> bool:
    return event_types is None or len(event_types) > MAX_EVENT_TYPES


def _exception_operators(info: RuleInfo) -> set[str]:
    operators: set[str] = set()
    for exception in info.exceptions:
        if exception.comps.is_list:
            operators.update(c.item for c in exception.comps.items)
        elif exception.comps.item:
            operators.add(exception.comps.item)
    return operators
