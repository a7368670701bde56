"""Field transformers (`tolower(proc.name)`, `len(ka.req.pod.containers.image)`, `join`, ...):
their type rules (libsinsp's `transform_type`) and their runtime functions.

Runtime functions take an extracted value that is never None and return the transformed value,
or None when the transformation fails (the check is then false, like a failed extraction).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any

SINGLE_VALUE = ("tolower", "toupper", "b64", "basename", "len")
MULTI_VALUE = ("join", "concat", "getopt")

_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_STRINGS = frozenset({"string", "fspath"})


def single_result_type(name: str, type_: str, is_list: bool) -> tuple[str, bool] | None:
    """Type of `name(field)`, or None when the transformer does not accept the field's type."""
    if name in ("tolower", "toupper", "basename"):
        return (type_, is_list) if type_ in _STRINGS else None
    if name == "b64":
        return (type_, is_list) if type_ in ("string", "bytebuf") else None
    if name == "len":
        if is_list:
            return ("uint", False)
        return ("uint", False) if type_ in ("string", "fspath", "bytebuf") else None
    raise ValueError(f"unknown transformer {name}")


def _c_lower(value: str) -> str:
    # C tolower() in the "C" locale only folds ASCII.
    return value.translate(_LOWER)


def _c_upper(value: str) -> str:
    return value.translate(_UPPER)


def _basename(value: str) -> str:
    return value.rpartition("/")[2]


def _b64_decode(value: str | bytes) -> str | bytes | None:
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    raw = raw.rstrip(b"=")
    try:
        decoded = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded.decode("utf-8", "surrogateescape") if isinstance(value, str) else decoded


def _byte_length(value: str | bytes) -> int:
    if isinstance(value, bytes):
        return len(value)
    # strnlen(): the C string stops at the first NUL byte.
    return len(value.partition("\0")[0].encode("utf-8", "surrogateescape"))


_SCALAR_FUNCTIONS: dict[str, Callable[[Any], Any]] = {
    "tolower": _c_lower,
    "toupper": _c_upper,
    "basename": _basename,
    "b64": _b64_decode,
    "len": _byte_length,
}


def single_runtime(name: str, is_list: bool) -> Callable[[Any], Any]:
    """The runtime function of `name` applied to a value (or to each value of a list)."""
    if name == "len" and is_list:
        return len
    scalar = _SCALAR_FUNCTIONS[name]
    if not is_list:
        return scalar

    def each(values: Sequence[Any]) -> tuple[Any, ...] | None:
        out = tuple(scalar(v) for v in values)
        return None if any(v is None for v in out) else out

    return each


# -- multi-value transformers ------------------------------------------------------------------


def check_multi_arguments(name: str, types: Sequence[tuple[str, bool]], arg: str | None) -> None:
    """Validate argument types as libsinsp's multivalue transformers; raise ValueError."""
    if name == "join":
        if len(types) != 2:
            raise ValueError("join() requires exactly 2 arguments: separator and list")
        if types[0][1]:
            raise ValueError("join() first argument (separator) must be a single value, not a list")
        if not types[1][1]:
            raise ValueError("join() second argument must be a list")
    elif name == "concat":
        if len(types) < 2:
            raise ValueError("concat() requires at least 2 arguments")
        if any(t != ("string", False) for t in types):
            raise ValueError("concat() arguments must be strings")
    elif name == "getopt":
        if len(types) != 2:
            raise ValueError("getopt() requires exactly 2 arguments: args list and optstring")
        if not types[0][1]:
            raise ValueError("getopt() first argument must be a list")
        if types[1][1]:
            raise ValueError("getopt() second argument (optstring) must be a single value")
        if types[0][0] != "string" or types[1][0] != "string":
            raise ValueError("getopt() arguments must be strings")
        if arg is not None and len(arg) != 1:
            raise ValueError("getopt() field argument must be a single option character")
    else:
        raise ValueError(f"unknown transformer {name}")
    if arg is not None and name != "getopt":
        raise ValueError(f"transformer '{name}' does not support field arguments")


def multi_result_type(name: str, arg: str | None) -> tuple[str, bool]:
    if name == "getopt":
        return ("string", arg is None)
    return ("string", False)


def _as_text(value: Any) -> str:
    # join() concatenates the raw text of each value, whatever the list's element type.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def join(separator: str, values: Sequence[Any]) -> str:
    return _as_text(separator).join(_as_text(v) for v in values)


def concat(*values: str) -> str:
    return "".join(values)


def _parse_optstring(optstring: str) -> tuple[frozenset[str], frozenset[str]]:
    """(valid options, options taking an argument) of a getopt(3) optstring."""
    valid: set[str] = set()
    with_args: set[str] = set()
    index = 1 if optstring.startswith(":") else 0
    while index < len(optstring):
        opt = optstring[index]
        if opt != ":":
            valid.add(opt)
            if optstring[index + 1 : index + 2] == ":":
                with_args.add(opt)
                index += 1
        index += 1
    return frozenset(valid), frozenset(with_args)


def getopt(argv: Sequence[str], optstring: str, selector: str | None) -> Any:
    """libsinsp's getopt(): the option stream ("n", "t", "value", "?" for unknown) of argv, or
    with a selector the value of the last occurrence of that option (None when absent)."""
    valid, with_args = _parse_optstring(optstring)
    results: list[str] = []
    selected: str | None = None
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--":
            break
        if len(token) > 2 and token.startswith("--"):
            index += 1
            continue
        if len(token) < 2 or token[0] != "-":
            break
        position = 1
        while position < len(token):
            opt = token[position]
            if opt == ":" or opt not in valid:
                if selector is None:
                    results.append("?")
                position += 1
                continue
            wanted = selector is None or opt == selector
            if opt not in with_args:
                if wanted:
                    selected = opt
                    results.append(opt)
                position += 1
                continue
            if position + 1 < len(token):
                value: str | None = token[position + 1 :]
            elif index + 1 < len(argv):
                index += 1
                value = argv[index]
            else:
                value = None
            if wanted:
                if value is None:
                    selected = ""
                    results.append("")
                else:
                    selected = value
                    results.extend((opt, value))
            break
        index += 1
    if selector is not None:
        return selected
    return tuple(results)
