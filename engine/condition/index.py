"""Candidate index: pick, per event, the few rules of a large ruleset that can possibly match.

A rule's (expanded, evt.type-specialised) condition is a tree of and/or/not. An *anchor* of
the rule is a set of keys such that the condition can only hold when one of the keys hits:
- a check `F = c`, `F in (c1, c2)` (or `intersects`, `= anyof`) on a plain scalar field F gives
  the keys `F == c1`, `F == c2`... looked up in one hash table per field;
- `F startswith c` gives "c at the start of F", `F endswith c` "c at its end", `F contains c`
  "c inside F", `F pmatch (paths)` "a literal component of each path inside F", `F regex r`
  and `F glob g` "a literal that every match of r/g contains". All these substring keys of a
  field go into one Aho-Corasick automaton (pyahocorasick) searched once over
  "\\x02" + value + "\\x03", the sentinels turning prefixes and suffixes into substrings
  (so the automaton is also the prefix trie of all `startswith` constants);
- a regex or glob with no usable literal goes into one RE2 set per field and option set
  (`re2.Set`, full-match anchoring, the options of the rule's own check);
- `and`: any child's anchor is an anchor (the cheapest is kept); `or`: the union of its
  children's anchors when every child has one; `not` and every other check: none.

The index is only a prefilter: a rule it selects is then evaluated in full by its own compiled
condition, so a key may hit too often (a sentinel inside a value, a literal found elsewhere)
but never too rarely: whenever a condition holds, one of its anchor keys hits. Values the index
cannot read (not a str where a str is expected, text RE2 cannot encode) select every rule keyed
on that field. Rules with no anchor are evaluated on every event, all in one generated chain
(engine.condition.compiler.compile_chain), as before. The matches, and their order, are those
of evaluating every rule in definition order; with `first`, the candidate rules after the first
unanchored match are never evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ahocorasick
import re2

from engine.condition import ast
from engine.condition.operators import _re2_options, glob_to_regex, split_operator
from engine.condition.values import parse_value
from engine.errors import UnknownFieldError
from engine.fields import STRING_TYPES, FieldCatalog, is_any_of

_EQUALITY = frozenset({"=", "in", "intersects"})
_SUBSTRING = frozenset({"startswith", "endswith", "contains", "pmatch", "regex", "glob"})
_START, _END = "\x02", "\x03"
# An anchor estimated to select more than this share of events is no better than none.
_MAX_ANCHOR_COST = 0.5
_MIN_LITERAL = 3  # shorter regex/glob literals select too much: the RE2 set is cheaper


@dataclass(frozen=True)
class Key:
    """One way for an anchor to hit: `kind` is "eq" (hash lookup of the value), "sub" (a
    substring of sentinel-wrapped text) or "regex"/"glob"/"iglob" (an RE2 set member)."""

    field: tuple[str, str | None]
    kind: str
    value: Any

    @property
    def cost(self) -> float:
        """A rough share of events this key selects (only used to pick between anchors)."""
        if self.kind == "eq":
            # A boolean (evt.is_open_read = true) holds for a large share of events.
            return 0.6 if isinstance(self.value, bool) else 0.01
        if self.kind == "sub":
            literal = len(self.value.strip(_START + _END))
            sentinel = self.value.startswith(_START) or self.value.endswith(_END)
            return min(1.0, (0.5 if sentinel else 2.0) * 0.6**literal)
        return 0.2


Anchor = frozenset[Key]


def regex_literals(pattern: str) -> list[str]:
    """Literal runs every full match of a POSIX RE2 `pattern` contains (empty: none known).

    Conservative: only characters outside groups, classes and escapes, not followed by a
    quantifier that could drop them; a top-level `|` or any flag group gives none."""
    if "(?" in pattern:
        return []
    runs: list[str] = []
    run: list[str] = []
    depth = 0
    index = 0

    def end_run() -> None:
        if run:
            runs.append("".join(run))
            run.clear()

    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            end_run()
            index += 2
            continue
        if char == "[":
            # A one-character class ([.]) is that character; any other bracket expression
            # ends the run, and a complex one ([]a], [[:alpha:]]) stops collecting altogether.
            close = pattern.find("]", index + 1)
            body = pattern[index + 1 : close] if close > index + 1 else ""
            if not body or body == "^" or "[" in body or "\\" in body:
                end_run()
                return runs
            if len(body) == 1 and depth == 0:
                run.append(body)
            else:
                end_run()
            index = close + 1
            continue
        if char in "*?{":
            if run:
                run.pop()
            end_run()
            if char == "{":
                close = pattern.find("}", index)
                if close < 0:
                    return []
                index = close
        elif char == "|":
            if depth == 0:
                return []
            end_run()
        elif char in "()":
            end_run()
            depth += 1 if char == "(" else -1
        elif char in ".^$+":
            end_run()  # `+` keeps the character before it (one occurrence at least)
        elif depth == 0:
            run.append(char)
        index += 1
    end_run()
    return runs


def glob_literals(pattern: str) -> tuple[str, list[str]]:
    """(literal prefix, literal runs) of an fnmatch pattern: every full match starts with the
    prefix and contains every run."""
    runs: list[str] = []
    run: list[str] = []
    prefix: str | None = None
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char in "*?[":
            if prefix is None:
                prefix = "".join(run)
            if run:
                runs.append("".join(run))
                run.clear()
            if char == "[":
                # Bracket expressions are not parsed ([!]a], unterminated ones are literal):
                # the prefix before it is sure, the runs after it are not collected.
                return prefix, runs
        elif char == "\\":
            return "", []  # escapes: give up rather than mirror fnmatch's rules
        else:
            run.append(char)
        index += 1
    if run:
        runs.append("".join(run))
    return ("".join(runs) if prefix is None else prefix), runs


class _Anchors:
    """Anchor derivation for one catalog (field specs are looked up once)."""

    def __init__(self, catalog: FieldCatalog) -> None:
        self.catalog = catalog
        self.extractors: dict[tuple[str, str | None], Callable[[Any], Any]] = {}
        self.types: dict[tuple[str, str | None], str | None] = {}

    def field_type(self, node: ast.Expr) -> str | None:
        """The type of a plain scalar field usable as an index key, else None."""
        if not isinstance(node, ast.Field):
            return None
        key = (node.name, node.arg)
        if key not in self.types:
            try:
                spec, extractor = self.catalog.extractor(node.name, node.arg)
            except UnknownFieldError:
                self.types[key] = None
                return None
            usable = not spec.is_list and not is_any_of(extractor) and spec.type != "ipnet"
            self.types[key] = spec.type if usable else None
            if usable:
                self.extractors[key] = extractor
        return self.types[key]

    def of(self, node: ast.Expr | bool) -> Anchor | None:
        match node:
            case ast.And(children):
                found = [a for a in map(self.of, children) if a is not None]
                return min(found, key=_cost) if found else None
            case ast.Or(children):
                union: set[Key] = set()
                for child in children:
                    anchor = self.of(child)
                    if anchor is None:
                        return None
                    union |= anchor
                return frozenset(union)
            case ast.BinaryCheck(left, op, right) if not isinstance(right, ast.Transformer):
                return self.check(left, op, right)
        return None

    def check(self, left: ast.Expr, op: str, right: ast.Value | ast.ListValue) -> Anchor | None:
        type_ = self.field_type(left)
        base, _ = split_operator(op)
        if type_ is None or not (base in _EQUALITY or base in _SUBSTRING):
            return None
        assert isinstance(left, ast.Field)
        name = (left.name, left.arg)
        values = list(right.values) if isinstance(right, ast.ListValue) else [right.value]
        if not values:
            return None
        keys: set[Key] = set()
        if base in _EQUALITY:
            try:
                keys.update(Key(name, "eq", parse_value(v, type_)) for v in values)
            except (ValueError, TypeError):
                return None
            return frozenset(keys)
        if type_ not in STRING_TYPES:
            return None
        # Any of a modifier's values (oneof, anyof, allof) matching is necessary: their union.
        for value in values:
            key = self.substring_key(name, base, value)
            if key is None:
                return None
            keys.add(key)
        return frozenset(keys)

    def substring_key(self, name: tuple[str, str | None], base: str, value: str) -> Key | None:
        if "\0" in value:
            return None
        if base == "startswith":
            return Key(name, "sub", _START + value)
        if base == "endswith":
            return Key(name, "sub", value + _END)
        if base == "contains":
            return Key(name, "sub", value) if value else None
        if base == "pmatch":
            # Components are compared one by one ("//a" matches "/a"): only a literal component
            # is sure to appear; the first glob component and what follows are not used.
            literals = []
            for part in (p for p in value.split("/") if p):
                if any(c in part for c in "?*["):
                    break
                literals.append(part)
            return Key(name, "sub", max(literals, key=len)) if literals else None
        if base == "regex":
            literal = max(regex_literals(value), key=len, default="")
            if len(literal) >= _MIN_LITERAL:
                return Key(name, "sub", literal)
            return Key(name, "regex", value)
        prefix, runs = glob_literals(value)
        literal = max(runs, key=len, default="")
        if len(prefix) >= _MIN_LITERAL or (prefix and len(prefix) >= len(literal)):
            return Key(name, "sub", _START + prefix)
        if len(literal) >= _MIN_LITERAL:
            return Key(name, "sub", literal)
        return Key(name, "glob", value)


def _cost(anchor: Anchor) -> float:
    return min(1.0, sum(key.cost for key in anchor))


def anchor_of(node: ast.Expr | bool, catalog: FieldCatalog) -> Anchor | None:
    """The anchor chosen for one condition, or None (the rule is evaluated on every event)."""
    anchors = _Anchors(catalog)
    anchor = anchors.of(node)
    return anchor if anchor is not None and _cost(anchor) <= _MAX_ANCHOR_COST else None


@dataclass
class _FieldIndex:
    """Everything keyed on one field: hash table, automaton, RE2 sets."""

    extract: Callable[[Any], Any]
    equal: dict[Any, list[int]] = field(default_factory=dict)
    substrings: dict[str, list[int]] = field(default_factory=dict)
    patterns: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    every: set[int] = field(default_factory=set)  # selected when the value cannot be read


_SET_OPTIONS = {
    "regex": lambda: _re2_options(posix=True),
    "glob": lambda: _re2_options(),
}


def _automaton(substrings: dict[str, list[int]]) -> Any:
    automaton = ahocorasick.Automaton()
    for text, positions in substrings.items():
        automaton.add_word(text, tuple(positions))
    automaton.make_automaton()
    return automaton


def _regex_set(kind: str, patterns: list[tuple[str, int]]) -> tuple[Any, list[int]]:
    regex_set = re2.Set.FullMatchSet(_SET_OPTIONS[kind]())
    positions = []
    for pattern, position in patterns:
        regex_set.Add(pattern if kind == "regex" else glob_to_regex(pattern))
        positions.append(position)
    regex_set.Compile()
    return regex_set, positions


def _set_matcher(regex_set: Any) -> Callable[[bytes], Any]:
    """The compiled set's own match on UTF-8 bytes: the wrapper's per-call conversions cost
    more than the match (the python binding has no other way in)."""
    return regex_set._set.Match


def _field_code(number: int, index: _FieldIndex, namespace: dict[str, Any]) -> list[str]:
    """Code adding to `found` the position tuples this field's keys pick."""
    namespace[f"x{number}"] = index.extract
    lines = [f"    v = x{number}(e)", "    if v is not None:"]
    if index.equal:
        namespace[f"q{number}"] = {k: tuple(v) for k, v in index.equal.items()}.get
        lines += [
            "        try:",
            f"            h = q{number}(v)",
            "        except TypeError:",  # unhashable: it cannot equal a constant either
            "            h = None",
            "        if h is not None:",
            "            found.append(h)",
        ]
    sets = [_regex_set(kind, listed) for kind, listed in index.patterns.items()]
    if not index.substrings and not sets:
        return lines
    namespace[f"every{number}"] = tuple(sorted(index.every))
    lines += ["        if type(v) is str:"]
    if index.substrings:
        namespace[f"ac{number}"] = _automaton(index.substrings).iter
        lines += [
            f"            for _, h in ac{number}('\\x02' + v + '\\x03'):",
            "                found.append(h)",
        ]
    if sets:
        lines += ["            try:", "                b = v.encode()"]
        for offset, (regex_set, positions) in enumerate(sets):
            name = f"r{number}_{offset}"
            namespace[name] = _set_matcher(regex_set)
            namespace[f"p{name}"] = tuple(positions)
            lines += [
                f"                m = {name}(b)",
                "                if m:",
                f"                    found.append(tuple(sorted({{p{name}[i] for i in m}})))",
            ]
        lines += [
            "            except UnicodeEncodeError:",
            f"                found.append(every{number})",
        ]
    lines += ["        else:", f"            found.append(every{number})"]
    return lines


@dataclass(frozen=True)
class IndexPlan:
    """What `build_index` decided for a list of conditions (for tests and `describe`)."""

    anchors: tuple[Anchor | None, ...]

    @property
    def anchored(self) -> int:
        return sum(anchor is not None for anchor in self.anchors)


def plan_index(nodes: Sequence[ast.Expr | bool], catalog: FieldCatalog) -> IndexPlan:
    anchors = _Anchors(catalog)
    chosen: list[Anchor | None] = []
    for node in nodes:
        anchor = None if isinstance(node, bool) else anchors.of(node)
        if anchor is not None and _cost(anchor) > _MAX_ANCHOR_COST:
            anchor = None
        chosen.append(anchor)
    return IndexPlan(tuple(chosen))


def build_selector(
    nodes: Sequence[ast.Expr | bool], catalog: FieldCatalog, plan: IndexPlan | None = None
) -> Callable[[Any], list[tuple[int, ...]]]:
    """`select(event) -> [tuple of positions, ...]`: the anchored conditions whose anchor hits
    (a superset of those that hold; a position may appear in several tuples). Unanchored
    positions are never returned: the caller evaluates them. Generated as one function so a
    typical event costs one extraction and one lookup per indexed field."""
    plan = plan or plan_index(nodes, catalog)
    anchors = _Anchors(catalog)
    fields: dict[tuple[str, str | None], _FieldIndex] = {}
    for position, anchor in enumerate(plan.anchors):
        for key in anchor or ():
            index = fields.get(key.field)
            if index is None:
                name, arg = key.field
                _, extract = catalog.extractor(name, arg)
                index = fields[key.field] = _FieldIndex(extract)
            if key.kind == "eq":
                index.equal.setdefault(key.value, []).append(position)
                continue
            index.every.add(position)
            if key.kind == "sub":
                index.substrings.setdefault(key.value, []).append(position)
            else:
                index.patterns.setdefault(key.kind, []).append((key.value, position))
    del anchors
    namespace: dict[str, Any] = {
        "__builtins__": {
            "type": type,
            "str": str,
            "tuple": tuple,
            "sorted": sorted,
            "TypeError": TypeError,
            "UnicodeEncodeError": UnicodeEncodeError,
        }
    }
    lines = ["def select(e):", "    found = []"]
    for number, index in enumerate(fields.values()):
        lines += _field_code(number, index, namespace)
    lines.append("    return found")
    exec(compile("\n".join(lines) + "\n", "<falco rules index>", "exec"), namespace)  # ours
    return namespace["select"]


__all__ = [
    "Anchor",
    "IndexPlan",
    "Key",
    "anchor_of",
    "build_selector",
    "glob_literals",
    "plan_index",
    "regex_literals",
]
