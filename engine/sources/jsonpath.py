"""JSON navigation with the semantics of the Go plugins' JSON library (valyala/fastjson).

Paths are compiled once (at field-compile time) into tuples of steps; a step is an object key
that also indexes arrays when it is a decimal number, as fastjson's `Value.Get` does. `MISSING`
distinguishes an absent member from a JSON null (which is present and renders as "null").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Final


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

# One navigation step: the key, and its array index when the key is a decimal number.
Step = tuple[str, int | None]
Getter = Callable[[Any], Any]


def compile_keys(keys: Iterable[str]) -> tuple[Step, ...]:
    return tuple((key, int(key) if key.isdecimal() else None) for key in keys)


def compile_pointer(pointer: str) -> tuple[Step, ...]:
    """An RFC 6901 pointer as the json plugin reads it: one optional leading "/" dropped, then
    "/"-separated tokens with "~1" -> "/" and "~0" -> "~" (in that order, as upstream does).
    The empty pointer designates the whole document."""
    if pointer == "":
        return ()
    if pointer.startswith("/"):
        pointer = pointer[1:]
    tokens = (token.replace("~1", "/").replace("~0", "~") for token in pointer.split("/"))
    return compile_keys(tokens)


def walk(value: Any, steps: tuple[Step, ...]) -> Any:
    """The value at `steps` below `value`, or MISSING."""
    for key, index in steps:
        if type(value) is dict:
            value = value.get(key, MISSING)
            if value is MISSING:
                return MISSING
        elif type(value) is list and index is not None and index < len(value):
            value = value[index]
        else:
            return MISSING
    return value


def steps_getter(steps: tuple[Step, ...]) -> Getter:
    """A compiled `walk`. Paths that never index an array (the common case) get a loop over
    object keys only, which is what the per-event cost of most fields comes down to."""
    if any(index is not None for _, index in steps):
        return lambda value: walk(value, steps)
    keys = tuple(key for key, _ in steps)
    if len(keys) == 1:
        only = keys[0]

        def get_one(value: Any) -> Any:
            return value.get(only, MISSING) if type(value) is dict else MISSING

        return get_one

    def get_keys(value: Any) -> Any:
        for key in keys:
            if type(value) is not dict:
                return MISSING
            value = value.get(key, MISSING)
        return value

    return get_keys


def getter(*keys: str) -> Getter:
    return steps_getter(compile_keys(keys))


def to_json_text(value: Any) -> str:
    """Compact JSON text, as fastjson's MarshalTo writes a non-string value."""
    kind = type(value)
    # Scalars first: a status code or a flag is read on most audit events, and json.dumps
    # costs microseconds for what str() says the same way.
    if kind is int:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def text_of(value: Any) -> str:
    """A present value as the plugins render it: strings as themselves, anything else as
    compact JSON text."""
    return value if type(value) is str else to_json_text(value)


def as_text(value: Any) -> str | None:
    """A present value as the plugins render it: strings as themselves, anything else as compact
    JSON text; None when MISSING."""
    if value is MISSING:
        return None
    if type(value) is str:
        return value
    return to_json_text(value)


def string_or_empty(value: Any) -> str:
    """fastjson's `string(GetStringBytes())`: the string, or "" for anything that is not one."""
    return value if type(value) is str else ""
