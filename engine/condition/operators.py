"""Comparison operators: the operator x type compatibility matrix (libsinsp's `flt_is_comparable`),
constant preparation (sets, RE2 regexes, globs, path-prefix tries, networks) and the scalar
comparison functions (libsinsp's `flt_compare`)."""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import re2

from engine.condition.values import IP_TYPES, NUMERIC_TYPES, STRING_TYPES, type_name

NUMERIC_OPS = frozenset({"=", "!=", "<", "<=", ">", ">=", "in", "intersects", "exists"})
BOOL_OPS = frozenset({"=", "!=", "in", "intersects", "exists"})
IP_OPS = BOOL_OPS
STRING_OPS = frozenset(
    {
        "=",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "contains",
        "in",
        "exists",
        "icontains",
        "startswith",
        "glob",
        "pmatch",
        "endswith",
        "intersects",
        "iglob",
        "regex",
    }
)
BUFFER_OPS = frozenset(
    {
        "=",
        "!=",
        "contains",
        "in",
        "exists",
        "startswith",
        "endswith",
        "intersects",
        "bcontains",
        "bstartswith",
    }
)
LIST_FIELD_OPS = frozenset({"in", "intersects", "exists"})
LIST_FIELD_TYPES = frozenset({"string", "uint", "reltime", "abstime", "bool", "ipaddr", "ipnet"})
SET_OPS = frozenset({"in", "intersects"})

# libsinsp's std::to_string(cmpop), used in some messages.
CMPOP_NAMES = {
    "=": "EQ",
    "==": "EQ",
    "!=": "NE",
    "<": "LT",
    "<=": "LE",
    ">": "GT",
    ">=": "GE",
    "contains": "CONTAINS",
    "in": "IN",
    "exists": "EXISTS",
    "icontains": "ICONTAINS",
    "startswith": "STARTSWITH",
    "glob": "GLOB",
    "iglob": "IGLOB",
    "pmatch": "PMATCH",
    "endswith": "ENDSWITH",
    "intersects": "INTERSECTS",
    "bcontains": "BCONTAINS",
    "bstartswith": "BSTARTSWITH",
    "regex": "REGEX",
}


def split_operator(op: str) -> tuple[str, str | None]:
    """'startswith oneof' -> ('startswith', 'oneof'); '==' is normalised to '='."""
    base, _, modifier = op.partition(" ")
    return ("=" if base == "==" else base), (modifier or None)


def comparability_error(base: str, modifier: str | None, type_: str, is_list: bool) -> str | None:
    """libsinsp's flt_is_comparable: None when allowed, else the error message."""
    if base == "exists":
        return None
    if is_list:
        if type_ not in LIST_FIELD_TYPES:
            return f"list filters are not supported for type '{type_name(type_)}'"
        if base not in LIST_FIELD_OPS:
            return f"'{base}' operator not supported list filters"
        return None
    if type_ in NUMERIC_TYPES:
        return (
            None if base in NUMERIC_OPS else f"'{base}' operator not supported for numeric filters"
        )
    if type_ == "bool":
        return None if base in BOOL_OPS else f"'{base}' operator not supported for numeric filters"
    if type_ in IP_TYPES:
        if base in IP_OPS:
            return None
        if modifier is not None:
            return f"'{base}' with modifier not supported for ip address and network filters"
        return f"'{base}' operator not supported for ip address and network filters"
    if type_ in STRING_TYPES:
        return None if base in STRING_OPS else f"'{base}' operator not supported for string filters"
    if type_ == "bytebuf":
        return None if base in BUFFER_OPS else f"'{base}' operator not supported for buffer filters"
    return f"'{base}' operator not supported for type '{type_name(type_)}'"


# -- regexes and globs -------------------------------------------------------------------------


def _re2_options(case_insensitive: bool = False, posix: bool = False) -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.dot_nl = True
    if posix:
        # RE2::POSIX: POSIX egrep syntax with leftmost-longest semantics, as libsinsp compiles.
        options.posix_syntax = True
        options.longest_match = True
    options.case_sensitive = not case_insensitive
    return options


def compile_regex(pattern: str) -> Callable[[str], Any]:
    """RE2 with full-match semantics; raise ValueError('invalid regex pattern: ...')."""
    try:
        compiled = re2.compile(pattern, _re2_options(posix=True))
    except re2.error as error:
        detail = error.args[0] if error.args else str(error)
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ValueError(f"invalid regex pattern: {detail}") from None
    return compiled.fullmatch


_POSIX_CLASSES = frozenset(
    {"alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space"}
    | {"upper", "xdigit"}
)


def _class_char(char: str) -> str:
    return "\\" + char if char in "\\]^-[" else char


def _bracket(pattern: str, start: int) -> tuple[str, int] | None:
    """Translate the fnmatch bracket expression at pattern[start] == '['; None if unterminated."""
    index = start + 1
    negate = index < len(pattern) and pattern[index] in "!^"
    if negate:
        index += 1
    parts: list[str] = []
    first = True
    while index < len(pattern):
        char = pattern[index]
        if char == "]" and not first:
            body = "".join(parts)
            return ("[^" if negate else "[") + body + "]", index + 1
        first = False
        if char == "[" and pattern.startswith("[:", index):
            end = pattern.find(":]", index + 2)
            name = pattern[index + 2 : end] if end >= 0 else ""
            if name in _POSIX_CLASSES:
                parts.append(f"[:{name}:]")
                index = end + 2
                continue
        if char == "\\" and index + 1 < len(pattern):
            index += 1
            char = pattern[index]
        if index + 2 < len(pattern) and pattern[index + 1] == "-" and pattern[index + 2] != "]":
            high = pattern[index + 2]
            parts.append(f"{_class_char(char)}-{_class_char(high)}")
            index += 3
            continue
        parts.append(_class_char(char))
        index += 1
    return None


def glob_to_regex(pattern: str) -> str:
    """fnmatch(3) pattern (flags 0: `*` and `?` also match `/` and leading dots) -> RE2."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            bracket = _bracket(pattern, index)
            if bracket is not None:
                out.append(bracket[0])
                index = bracket[1]
                continue
            out.append(re2.escape("["))
        elif char == "\\" and index + 1 < len(pattern):
            index += 1
            out.append(re2.escape(pattern[index]))
        else:
            out.append(re2.escape(char))
        index += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def compile_glob(pattern: str, case_insensitive: bool = False) -> Callable[[str], Any]:
    return re2.compile(glob_to_regex(pattern), _re2_options(case_insensitive)).fullmatch


def glob_match(pattern: str, value: str, case_insensitive: bool = False) -> bool:
    return compile_glob(pattern, case_insensitive)(value) is not None


# -- path prefixes -----------------------------------------------------------------------------


class PathPrefixSet:
    """libsinsp's path_prefix_search: does any search path prefix the value, component by
    component (`/opt/dir` matches `/opt/dir/x`, not `/opt/dir2`), components being globs?"""

    __slots__ = ("globs", "literals", "terminal")

    def __init__(self) -> None:
        self.terminal = False
        self.literals: dict[str, PathPrefixSet] = {}
        self.globs: list[tuple[Callable[[str], Any], PathPrefixSet]] = []

    @staticmethod
    def components(path: str) -> list[str]:
        return [part for part in path.split("/") if part]

    def add(self, path: str) -> None:
        node = self
        for part in self.components(path):
            if node.terminal:
                return  # a shorter prefix already matches everything below
            if any(c in part for c in "?*["):
                child = PathPrefixSet()
                node.globs.append((compile_glob(part), child))
            else:
                child = node.literals.setdefault(part, PathPrefixSet())
            node = child
        node.terminal = True
        node.literals.clear()
        node.globs.clear()

    def match(self, path: str) -> bool:
        return self._match(self.components(path), 0)

    def _match(self, parts: list[str], index: int) -> bool:
        if self.terminal:
            # Every path is below the root; otherwise a prefix needs at least one component.
            return True
        if index >= len(parts):
            return False
        part = parts[index]
        child = self.literals.get(part)
        if child is not None and child._match(parts, index + 1):
            return True
        return any(
            matcher(part) is not None and node._match(parts, index + 1)
            for matcher, node in self.globs
        )


def path_prefix_set(paths: Iterable[str]) -> PathPrefixSet:
    prefixes = PathPrefixSet()
    for path in paths:
        prefixes.add(path)
    return prefixes


def cached_path_matcher(paths: Iterable[str]) -> Callable[[str], bool]:
    """`pmatch` for compiled conditions: the same paths recur constantly on a host, so the
    component walk is memoised (bounded)."""
    return lru_cache(maxsize=16384)(path_prefix_set(paths).match)


def network_matcher(networks: Iterable[Any], negate: bool = False) -> Callable[[Any], bool]:
    """Does an extracted address (or network) fall in any of the networks (with `negate`: in
    none of them)? Addresses are compared as integers under each mask, the common case of
    `fd.snet in (...)` and of `fd.net != 127.0.0.0/8` on every socket event of the upstream
    network rules, so that path avoids per-call generators and isinstance checks."""
    networks = tuple(networks)
    masks: dict[type, tuple[tuple[int, int], ...]] = {
        address_type: tuple(
            (int(n.network_address), int(n.netmask)) for n in networks if n.version == version
        )
        for address_type, version in ((ipaddress.IPv4Address, 4), (ipaddress.IPv6Address, 6))
    }
    found = not negate

    def matches(value: Any) -> bool:
        pairs = masks.get(value.__class__)
        if pairs is None:  # a network (or an address subclass): the general comparison
            return any(in_network(value, n) for n in networks) is found
        address = int(value)
        for net, mask in pairs:
            if address & mask == net:
                return found
        return not found

    return matches


# -- scalar comparisons ------------------------------------------------------------------------


def _ascii_lower(value: str) -> str:
    return value.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def in_network(value: Any, network: Any) -> bool:
    """An ipnet field extracts the address (or network) to test against a constant network."""
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value.version == network.version and value.subnet_of(network)
    return value.version == network.version and value in network


def scalar_comparator(base: str, type_: str) -> Callable[[Any, Any], bool]:
    """compare(extracted, other_value) for one operator on one type, both values non-None.

    Used for field-to-field checks and for each element of a modifier list; constants given to
    it are the raw right-hand values already parsed for the type.
    """
    if type_ == "ipnet":
        if base in ("=", "in", "intersects"):
            return in_network
        if base == "!=":
            return lambda v, n: not in_network(v, n)
    simple: dict[str, Callable[[Any, Any], bool]] = {
        "=": operator.eq,
        "in": operator.eq,
        "intersects": operator.eq,
        "!=": operator.ne,
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
        "contains": lambda v, c: c in v,
        "bcontains": lambda v, c: c in v,
        "startswith": lambda v, c: v.startswith(c),
        "bstartswith": lambda v, c: v.startswith(c),
        "endswith": lambda v, c: v.endswith(c),
        "icontains": lambda v, c: _ascii_lower(c) in _ascii_lower(v),
        "glob": lambda v, c: glob_match(c, v),
        "iglob": lambda v, c: glob_match(c, v, True),
        "regex": lambda v, c: compile_regex(c)(v) is not None,
        "pmatch": lambda v, c: path_prefix_set([c]).match(v),
    }
    return simple[base]
