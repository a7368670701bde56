"""The loader's single binding to the condition language (engine.condition), the field catalogs
(engine.fields) and output formats (engine.output): everything the rules compiler needs from
them goes through these few functions, so the loader does not depend on their internals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from engine.condition.ast import (
    And,
    BinaryCheck,
    Expr,
    Field,
    ListValue,
    Not,
    Or,
    Transformer,
    TransformerList,
    UnaryCheck,
    Value,
    to_text,
)
from engine.condition.compiler import CompiledCondition
from engine.condition.compiler import compile_condition as compile_expr
from engine.condition.errors import ConditionCompileError, ConditionSyntaxError
from engine.condition.parser import parse
from engine.errors import EngineError
from engine.fields import FieldCatalog, catalog, known_sources

__all__ = [
    "ConditionCompileError",
    "ConditionSyntaxError",
    "OutputError",
    "catalog_for",
    "clear_memo",
    "compile_condition",
    "compile_output",
    "condition_warnings",
    "event_types",
    "field_is_valid",
    "fields_of",
    "known_sources",
    "output_fields",
    "parse",
    "parse_cached",
    "to_text",
]

OutputError = EngineError  # what compiling an output format raises (engine.output)

_UNSAFE_NA_PREFIXES = ("ka.", "jevt.")
_EQUALITY_OPERATORS = frozenset({"==", "=", "!=", "in", "intersects", "pmatch"})
_NO_VALUE = "<NA>"


def catalog_for(source: str) -> FieldCatalog | None:
    return catalog(source)


def source_known(source: str) -> bool:
    return catalog(source) is not None


def field_is_valid(source: str, text: str) -> bool:
    """Whether `text` (a field, possibly with an argument or inside transformers) names a field
    of `source`, as Falco validates exception fields."""
    fields = catalog(source)
    if fields is None:
        return False
    try:
        expr = parse(f"{text} exists")
    except ConditionSyntaxError:
        return False
    return all(fields.split(f.name) is not None for f in fields_of(expr))


def parse_cached(text: str) -> Expr:
    """Parse, remembering results: Falco recompiles the whole collection after each file, so
    the same conditions come back once per file loaded (ASTs are immutable, safe to share)."""
    return _remember(_parsed, text, lambda: parse(text))


def compile_condition(expr: Expr, fields: FieldCatalog) -> CompiledCondition:
    """The compiled condition: `.evaluate(event) -> bool`, `.warnings` (message, position).
    Identical expanded conditions of a source are compiled once."""
    key = (fields.source, id(fields), expr)
    return _remember(_compiled, key, lambda: (fields, compile_expr(expr, fields, lazy=True)))[1]


def event_types(expr: Expr) -> frozenset[str] | None:
    from engine.condition.evttypes import event_types as derive

    return _remember(_event_types, expr, lambda: derive(expr))


def compile_output(text: str, fields: FieldCatalog) -> Any:
    from engine.output import compile_output as compile_format

    key = (fields.source, id(fields), text)
    return _remember(_outputs, key, lambda: (fields, compile_format(text, fields)))[1]


# Bounded memo tables. Compiled values hold their catalog, so an id() in a key is never reused
# while the entry lives.
_MEMO_SIZE = 8192
_parsed: dict[Any, Any] = {}
_compiled: dict[Any, Any] = {}
_event_types: dict[Any, Any] = {}
_outputs: dict[Any, Any] = {}
_warnings: dict[Any, Any] = {}
_memo_lock = threading.Lock()


def clear_memo() -> None:
    """Forget every remembered parse/compile (benchmarks measure cold compilation with it)."""
    with _memo_lock:
        for table in (_parsed, _compiled, _event_types, _outputs, _warnings):
            table.clear()


def _remember(table: dict[Any, Any], key: Any, make: Callable[[], Any]) -> Any:
    with _memo_lock:
        if key in table:
            return table[key]
    value = make()  # errors propagate and are not remembered
    with _memo_lock:
        if len(table) >= _MEMO_SIZE:
            table.pop(next(iter(table)))
        table[key] = value
    return value


def _children(expr: Expr) -> Iterable[Expr]:
    if isinstance(expr, And | Or | TransformerList):
        return expr.children
    if isinstance(expr, Not):
        return (expr.child,)
    if isinstance(expr, Transformer):
        return expr.args
    if isinstance(expr, UnaryCheck):
        return (expr.left,)
    if isinstance(expr, BinaryCheck):
        return (expr.left, expr.right)
    return ()


def fields_of(expr: Expr) -> list[Field]:
    """Every field node of an expression, in text order."""
    out: list[Field] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Field):
            out.append(node)
        stack.extend(reversed(tuple(_children(node))))
    return out


def _compares_with_no_value(check: BinaryCheck) -> bool:
    # As Falco's filter_warning_resolver: the left side is unsafe when the last field its
    # visitor meets is a ka.*/jevt.* one, so `tolower(ka.user.name) = <NA>` (a field inside
    # transformers) warns as `ka.user.name = <NA>` does.
    left = check.left
    if isinstance(left, Transformer):
        inner = fields_of(left)
        left = inner[-1] if inner else left
    if not isinstance(left, Field) or not left.name.startswith(_UNSAFE_NA_PREFIXES):
        return False
    if check.op not in _EQUALITY_OPERATORS:
        return False
    right = check.right
    if isinstance(right, Value):
        return right.value == _NO_VALUE
    return isinstance(right, ListValue) and _NO_VALUE in right.values


def condition_warnings(expr: Expr, deprecated: Iterable[str]) -> tuple[bool, set[str]]:
    """(an unsafe `<NA>` comparison of a ka.*/jevt.* field exists, deprecated fields used)."""
    deprecated = frozenset(deprecated)
    unsafe, used = _remember(_warnings, (expr, deprecated), lambda: _scan(expr, deprecated))
    return unsafe, set(used)


def _scan(expr: Expr, deprecated: frozenset[str]) -> tuple[bool, frozenset[str]]:
    unsafe = False
    used: set[str] = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, BinaryCheck) and _compares_with_no_value(node):
            unsafe = True
        if isinstance(node, Field) and node.name in deprecated:
            used.add(node.name)
        stack.extend(_children(node))
    return unsafe, frozenset(used)


def output_fields(compiled_output: Any) -> list[str]:
    """The %fields of a compiled output format, in order of appearance."""
    return list(compiled_output.field_names)
