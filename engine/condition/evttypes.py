"""Event types a condition can match, derived as libsinsp's `filter/ppm_codes.cpp` does.

`and` = intersection, `or` = union, negations pushed down to the leaves (De Morgan); a leaf
`evt.type (=|==|in) X` gives {X}, `!=` its complement; `evt.type exists` gives every type (and
its negation none); `evt.num` invariants (`evt.num = 0` is unsatisfiable, `evt.num > 0` always
true); any other check is neutral (every type, negated or not).

Sets are kept as (names, complement) so that negations stay exact without knowing the universe
of event types; `event_types()` resolves them against a universe when one is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.condition import ast
from engine.condition.errors import ConditionCompileError

_EVTTYPE_FIELDS = frozenset({"evt.type", "syscall.type"})
_EVTTYPE_OPERATORS = frozenset({"=", "==", "!=", "in"})


@dataclass(frozen=True)
class EventTypeSet:
    """`names` when `complement` is false; every type except `names` when it is true."""

    names: frozenset[str]
    complement: bool

    @staticmethod
    def of(names: Iterable[str]) -> EventTypeSet:
        return EventTypeSet(frozenset(names), False)

    @property
    def is_all(self) -> bool:
        return self.complement and not self.names

    def invert(self) -> EventTypeSet:
        return EventTypeSet(self.names, not self.complement)

    def intersect(self, other: EventTypeSet) -> EventTypeSet:
        if not self.complement and not other.complement:
            return EventTypeSet(self.names & other.names, False)
        if self.complement and other.complement:
            return EventTypeSet(self.names | other.names, True)
        included, excluded = (other, self) if self.complement else (self, other)
        return EventTypeSet(included.names - excluded.names, False)

    def union(self, other: EventTypeSet) -> EventTypeSet:
        if not self.complement and not other.complement:
            return EventTypeSet(self.names | other.names, False)
        if self.complement and other.complement:
            return EventTypeSet(self.names & other.names, True)
        included, excluded = (other, self) if self.complement else (self, other)
        return EventTypeSet(excluded.names - included.names, True)

    def resolve(self, universe: frozenset[str]) -> frozenset[str]:
        if self.complement:
            return universe - self.names
        return self.names & universe


ALL = EventTypeSet(frozenset(), True)
NONE = EventTypeSet(frozenset(), False)


def event_type_set(node: ast.Expr) -> EventTypeSet:
    """The exact event-type set of a condition (macros already substituted)."""
    return _visit(node, negated=False)


def event_types(node: ast.Expr, universe: Iterable[str] | None = None) -> frozenset[str] | None:
    """Event-type names the condition can match; None means every type.

    Without a universe, a complemented set ("every type but open") is reported as None, the
    safe over-approximation for indexing; with one, it is resolved exactly, and names outside
    the universe (unknown event types) are dropped, as libsinsp's name-to-code mapping does.
    """
    found = event_type_set(node)
    if universe is None:
        return None if found.complement else found.names
    known = frozenset(universe)
    resolved = found.resolve(known)
    return None if resolved == known else resolved


def _visit(node: ast.Expr, negated: bool) -> EventTypeSet:
    match node:
        case ast.And(children) | ast.Or(children):
            conjunction = isinstance(node, ast.And) != negated
            result = ALL if conjunction else NONE
            for child in children:
                found = _visit(child, negated)
                result = result.intersect(found) if conjunction else result.union(found)
            return result
        case ast.Not(child):
            return _visit(child, not negated)
        case ast.UnaryCheck(left, op):
            is_evttype = _is_evttype_field(left)
            if is_evttype and op == "exists":
                return NONE if negated else ALL
            return ALL
        case ast.BinaryCheck():
            return _binary(node, negated)
    return ALL  # an unsubstituted macro is neutral


def _is_evttype_field(node: ast.Expr) -> bool:
    if isinstance(node, ast.Transformer):
        for arg in node.args:
            if _is_evttype_field(arg):
                raise ConditionCompileError(
                    "event code search does not support `evt.type` checks with transformers",
                    node.pos,
                )
        return False
    return isinstance(node, ast.Field) and node.name in _EVTTYPE_FIELDS and node.arg is None


def _binary(node: ast.BinaryCheck, negated: bool) -> EventTypeSet:
    invariant = _evt_num_invariant(node)
    if invariant is not None:
        return invariant.invert() if negated else invariant
    is_evttype = _is_evttype_field(node.left)
    if not (is_evttype and node.op in _EVTTYPE_OPERATORS):
        return ALL
    match node.right:
        case ast.Value(value):
            found = EventTypeSet.of([value])
        case ast.ListValue(values):
            found = EventTypeSet.of(values)
        case _:
            raise ConditionCompileError(
                "right-hand field comparisons on `evt.type`/`syscall.type` checks are not "
                "supported by event code search",
                node.pos,
            )
    if negated:
        found = found.invert()
    if node.op == "!=":
        found = found.invert()
    return found


def _parse_u64(text: str) -> int | None:
    stripped = text.lstrip(" \t\n\r\f\v")
    sign = stripped[:1] if stripped[:1] in "+-" else ""
    digits = stripped[len(sign) :]
    if not digits.isascii() or not digits.isdigit():
        return None
    value = int(digits)
    return (-value if sign == "-" else value) % (1 << 64)


def _evt_num_invariant(node: ast.BinaryCheck) -> EventTypeSet | None:
    """evt.num starts at 1: some comparisons are statically always or never true."""
    left = node.left
    if not isinstance(left, ast.Field) or left.name != "evt.num" or left.arg is not None:
        return None
    if node.op == "in":
        if not isinstance(node.right, ast.ListValue):
            return None
        if all(_parse_u64(v) == 0 for v in node.right.values):
            return NONE
        return None
    if not isinstance(node.right, ast.Value):
        return None
    number = _parse_u64(node.right.value)
    if number is None:
        return None
    rules = {
        "=": (number == 0, NONE),
        "==": (number == 0, NONE),
        "!=": (number == 0, ALL),
        "<": (number <= 1, NONE),
        "<=": (number == 0, NONE),
        ">": (number == 0, ALL),
        ">=": (number <= 1, ALL),
    }
    applies, result = rules.get(node.op, (False, ALL))
    return result if applies else None


def specialize_for_event_type(node: ast.Expr, event_type: str) -> ast.Expr | bool:
    """`node` as evaluated on events whose evt.type is `event_type`: every `evt.type (=|==|!=|in)`
    check becomes the constant it then is, and and/or/not fold around it (True or False when
    the whole condition does). A ruleset evaluates each event type's rules on that type only,
    so this is exact there, and it drops the evt.type tests upstream conditions are full of
    (`evt.type in (open, openat, openat2)`, macros such as `(evt.type = rename and ...) or
    (evt.type = unlink and ...)`) from the per-event work."""
    match node:
        case ast.And(children) | ast.Or(children):
            conjunction = isinstance(node, ast.And)
            kept = []
            for child in children:
                found = specialize_for_event_type(child, event_type)
                if found is (not conjunction):  # False in an and / True in an or decides it
                    return found
                if found is not conjunction:  # a neutral constant drops out
                    kept.append(found)
            if not kept:
                return conjunction
            return kept[0] if len(kept) == 1 else type(node)(tuple(kept), node.pos)
        case ast.Not(child):
            found = specialize_for_event_type(child, event_type)
            return (not found) if isinstance(found, bool) else ast.Not(found, node.pos)
        case ast.BinaryCheck(ast.Field("evt.type", None), op, right) if op in _EVTTYPE_OPERATORS:
            if isinstance(right, ast.Value):
                listed = event_type == right.value
            elif isinstance(right, ast.ListValue):
                listed = event_type in right.values
            else:
                return node
            return (not listed) if op == "!=" else listed
    return node
