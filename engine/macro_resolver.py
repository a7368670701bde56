"""Macro references replaced by the macros' ASTs (Falco's filter_macro_resolver).

A macro body is resolved recursively; a macro met again on its own resolution path is a
reference loop. Unknown identifiers and loops are collected with their positions; the loader
reports the first one, as Falco does.

A macro used many times is resolved once per resolution and its AST shared, and the size the
condition would have as a tree (every use of a macro counted) is computed on the way: whoever
compiles or walks the condition pays that size, so a condition above `max_nodes` stops the
resolution with an error naming the macro that took it over, before anything walks it. Macros
that double at each level thus cost one step per level, not 2**levels.
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
    nodes: int = 0  # the resolved condition's size as a tree
    too_large: tuple[str, int] | None = None  # (macro, its size) when max_nodes was exceeded

    def first_problem(self) -> tuple[str, int] | None:
        if self.errors:
            return self.errors[0]
        if self.unknown:
            name, pos = self.unknown[0]
            return f"Undefined macro '{name}' used in filter.", pos
        return None


MacroLookup = Callable[[str], Expr | None]  # a macro's condition, None when not visible


class _TooLarge(Exception):
    def __init__(self, name: str, pos: int, nodes: int) -> None:
        super().__init__(name)
        self.name, self.pos, self.nodes = name, pos, nodes


@dataclass
class _Resolver:
    macros: MacroLookup
    out: MacroResolution
    max_nodes: int | None
    path: list[str] = field(default_factory=list)
    done: dict[str, tuple[Expr, int]] = field(default_factory=dict)  # macro -> (expr, size)
    # Nodes already resolved, by identity (original, resolved, size): compiled macro bodies
    # are shared ASTs, so walking them as trees would cost their expanded size every time.
    seen: dict[int, tuple[Expr, Expr, int]] = field(default_factory=dict)

    def resolve(self, expr: Expr) -> tuple[Expr, int]:
        if isinstance(expr, MacroRef):
            return self._substitute(expr)
        if not isinstance(expr, And | Or | Not):
            return expr, 1
        hit = self.seen.get(id(expr))
        if hit is not None and hit[0] is expr:
            return hit[1], hit[2]
        if isinstance(expr, Not):
            child, size = self.resolve(expr.child)
            resolved: Expr = Not(child, expr.pos)
            size += 1
            self._check(size, expr.child)
        else:
            children = []
            size = 1
            for child in expr.children:
                resolved_child, child_size = self.resolve(child)
                children.append(resolved_child)
                size += child_size
                self._check(size, child)
            resolved = type(expr)(tuple(children), expr.pos)
        self.seen[id(expr)] = (expr, resolved, size)
        return resolved, size

    def _substitute(self, ref: MacroRef) -> tuple[Expr, int]:
        known = self.done.get(ref.name)
        if known is not None:
            self.out.resolved.append(ref.name)
            self._check(known[1], ref)
            return known
        body = self.macros(ref.name)
        if body is None:
            self.out.unknown.append((ref.name, ref.pos))
            return ref, 1
        if ref.name in self.path:
            self.out.errors.append((f"reference loop in macro '{ref.name}'", ref.pos))
            self.out.unknown.append((ref.name, ref.pos))
            return ref, 1
        self.path.append(ref.name)
        try:
            substituted = self.resolve(body)
        except _TooLarge as error:
            if error.name == "":
                error.name, error.pos = ref.name, ref.pos  # the innermost macro named
            raise
        finally:
            self.path.pop()
        self.out.resolved.append(ref.name)
        self.done[ref.name] = substituted
        self._check(substituted[1], ref)
        return substituted

    def _check(self, size: int, culprit: Expr) -> None:
        """Stop once `size` is over the budget; `culprit` is the part whose size took it over
        (a macro reference names that macro)."""
        if self.max_nodes is not None and size > self.max_nodes:
            name = culprit.name if isinstance(culprit, MacroRef) else ""
            raise _TooLarge(name, getattr(culprit, "pos", 0), size)


def resolve_macros(
    expr: Expr, macros: MacroLookup, max_nodes: int | None = None
) -> MacroResolution:
    """Substitute every visible macro in `expr`. With `max_nodes`, a condition that would
    exceed that many nodes stops the resolution: `too_large` names the macro whose use took it
    over (its own size given), `errors` holds the message."""
    resolution = MacroResolution(expr)
    resolver = _Resolver(macros, resolution, max_nodes)
    try:
        resolution.expr, resolution.nodes = resolver.resolve(expr)
    except _TooLarge as error:
        resolution.too_large = (error.name, error.nodes)
        what = f"through macro '{error.name}'" if error.name else "by itself"
        resolution.errors.insert(
            0,
            (
                f"condition expands to more than {max_nodes} nodes {what} "
                "(macros are counted at every use)",
                error.pos,
            ),
        )
    return resolution
