"""AST of the Falco condition language, mirroring libsinsp's `filter/ast.h`.

Nodes are immutable and compare by structure; `pos` (0-based index of the node in the condition
text) is carried for error reporting but ignored by equality, as libsinsp's `is_equal` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar, Union

_Node = TypeVar("_Node")


def _cached_hash(cls: type[_Node]) -> type[_Node]:
    """Remember a node's structural hash: ASTs are immutable and used as memo keys, and the
    generated dataclass hash would walk the whole subtree on every lookup. The cached value is
    dropped when pickling (string hashes differ between processes)."""
    structural_hash: Callable[[Any], int] = cls.__hash__  # type: ignore[assignment]
    getstate: Callable[[Any], list[Any]] = cls.__getstate__  # type: ignore[attr-defined]
    slot = [f.name for f in fields(cls)].index("_hash")  # type: ignore[arg-type]

    def __hash__(self: Any) -> int:
        cached = self._hash
        if cached == 0:
            cached = structural_hash(self) or 1
            object.__setattr__(self, "_hash", cached)
        return cached

    def __getstate__(self: Any) -> list[Any]:
        state = getstate(self)
        state[slot] = 0
        return state

    cls.__hash__ = __hash__  # type: ignore[method-assign]
    cls.__getstate__ = __getstate__  # type: ignore[attr-defined]
    return cls


@_cached_hash
@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Expr, ...]
    pos: int = field(default=0, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)


@_cached_hash
@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Expr, ...]
    pos: int = field(default=0, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)


@_cached_hash
@dataclass(frozen=True, slots=True)
class Not:
    child: Expr
    pos: int = field(default=0, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)


@_cached_hash
@dataclass(frozen=True, slots=True)
class MacroRef:
    """An identifier standing alone where a check is expected: a macro reference."""

    name: str
    pos: int = field(default=0, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)


@_cached_hash
@dataclass(frozen=True, slots=True)
class Value:
    """A single right-hand value (string as written, quotes and escapes already resolved).

    After a list operator (`in`, `pmatch`, `intersects`) or a modifier (`startswith oneof`) a
    Value is an identifier naming a list that was not substituted; it compiles as a one-item list.
    """

    value: str
    pos: int = field(default=0, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)


@_cached_hash
@dataclass(frozen=True, slots=True)
class ListValue:
    """A parenthesised list of string values: `(a, "b c", d)`."""

    values: tuple[str, ...]
    pos: int = field(default=0, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)


@_cached_hash
@dataclass(frozen=True, slots=True)
class Field:
    """A field, with its bracket argument when written (`proc.aname[2]`, `json.value[/a]`).

    A dotted argument (`evt.arg.flags`) stays in the name; the catalog resolves it.
    """

    name: str
    arg: str | None = None
    pos: int = field(default=0, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)


@_cached_hash
@dataclass(frozen=True, slots=True)
class Transformer:
    """`name(args...)`, optionally followed by a field argument: `tolower(proc.name)`,
    `val(proc.pname)`, `join(",", (a.b, "x"))`."""

    name: str
    args: tuple[Expr, ...]
    arg: str | None = None
    pos: int = field(default=0, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)


@_cached_hash
@dataclass(frozen=True, slots=True)
class TransformerList:
    """A parenthesised list of transformer arguments (fields, transformers, strings, numbers)."""

    children: tuple[Expr, ...]
    pos: int = field(default=0, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)


@_cached_hash
@dataclass(frozen=True, slots=True)
class UnaryCheck:
    left: Field | Transformer
    op: str  # "exists"
    pos: int = field(default=0, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)


@_cached_hash
@dataclass(frozen=True, slots=True)
class BinaryCheck:
    left: Field | Transformer
    op: str  # e.g. "=", "in", "startswith oneof"
    right: Value | ListValue | Transformer
    pos: int = field(default=0, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)


Expr = Union[  # noqa: UP007 - a runtime alias used in isinstance checks by callers
    And,
    Or,
    Not,
    MacroRef,
    Value,
    ListValue,
    Field,
    Transformer,
    TransformerList,
    UnaryCheck,
    BinaryCheck,
]


def to_text(node: Expr) -> str:
    """Canonical text of an AST, as libsinsp's `ast::as_string` (Falco's `condition_compiled`):
    logical groups parenthesised, values quoted only when needed."""
    from engine.condition.escaping import escape_str

    match node:
        case And(children) | Or(children):
            joiner = " and " if isinstance(node, And) else " or "
            return "(" + joiner.join(to_text(c) for c in children) + ")"
        case Not(child):
            return "not " + to_text(child)
        case MacroRef(name):
            return name
        case Value(value):
            return escape_str(value)
        case ListValue(values):
            return "(" + ", ".join(escape_str(v) for v in values) + ")"
        case TransformerList(children):
            return "(" + ",".join(to_text(c) for c in children) + ")"
        case UnaryCheck(left, op):
            return f"{to_text(left)} {op}"
        case BinaryCheck(left, op, right):
            return f"{to_text(left)} {op} {to_text(right)}"
        case Field(name, arg):
            return name + _arg_text(arg)
        case Transformer(name, args, arg):
            return f"{name}(" + ",".join(to_text(a) for a in args) + ")" + _arg_text(arg)
    raise TypeError(f"not a condition AST node: {node!r}")


def _arg_text(arg: str | None) -> str:
    from engine.condition.escaping import escape_str

    if arg is None:
        return ""
    return '[""]' if arg == "" else f"[{escape_str(arg)}]"
