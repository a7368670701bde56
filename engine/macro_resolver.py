"""Macro references replaced by the macros' ASTs (Falco's filter_macro_resolver).

A macro body is resolved recursively; a macro met again on its own resolution path is a
reference loop. Unknown identifiers and loops are collected with their positions; the loader
reports the first one, as Falco does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.condition.ast import And, Expr, MacroRef, Not, Or


@dataclass
class MacroResolution:
    expr: Expr
    resolved: list[str] = field(default_factory=list)  # names substituted (marks them used)
    unknown: list[tuple[str, int]] = field(default_factory=list)  # (identifier, position)
    errors: list[tuple[str, int]] = field(default_factory=list)  # (message, position)

    def first_problem(self) -> tuple[str, int] | None:
        if self.errors:
            return self.errors[0]
        if self.unknown:
            name, pos = self.unknown[0]
            return f"Undefined macro '{name}' used in filter.", pos
        return None


MacroLookup = Callable[[str], Expr | None]  # a macro's condition, None when not visible


def resolve_macros(expr: Expr, macros: MacroLookup) -> MacroResolution:
    resolution = MacroResolution(expr)
    resolution.expr = _resolve(expr, macros, [], resolution)
    return resolution


def _resolve(expr: Expr, macros: MacroLookup, path: list[str], out: MacroResolution) -> Expr:
    if isinstance(expr, And | Or):
        children = tuple(_resolve(child, macros, path, out) for child in expr.children)
        return type(expr)(children, expr.pos)
    if isinstance(expr, Not):
        return Not(_resolve(expr.child, macros, path, out), expr.pos)
    if not isinstance(expr, MacroRef):
        return expr
    body = macros(expr.name)
    if body is None:
        out.unknown.append((expr.name, expr.pos))
        return expr
    if expr.name in path:
        out.errors.append((f"reference loop in macro '{expr.name}'", expr.pos))
        out.unknown.append((expr.name, expr.pos))
        return expr
    path.append(expr.name)
    substituted = _resolve(body, macros, path, out)
    path.pop()
    out.resolved.append(expr.name)
    return substituted
