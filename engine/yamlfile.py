"""YAML read the way Falco's yaml-cpp reads rules files.

yaml-cpp hands the loader untyped nodes: every scalar is text, decoded on demand as a string, a
bool or an integer, and every node carries its position (0-based line and column, plus the
character offset). PyYAML's safe loader instead constructs typed values and rejects inputs that
yaml-cpp accepts (a bare `=` resolves to the `value` tag, `desc: != x` is read as an unknown local
tag `!=`). So rules files are only *composed* here (node graph, no construction): tags are
ignored, scalars stay strings, and positions come from the marks. The C composer is used when
libyaml is available.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# The base loaders resolve no implicit tags (tags are ignored here anyway), and libyaml's
# composer is several times faster on the large upstream files.
try:
    from yaml import CBaseLoader as _Loader
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import BaseLoader as _Loader  # type: ignore[assignment]
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

# Nodes of a YAML data document (index files, configuration, response rules, lock files) once
# its aliases are expanded: far above any real one (falcoctl's whole public index is ~3,000).
DATA_MAX_NODES = 1_000_000

__all__ = [
    "MappingNode",
    "Node",
    "Position",
    "ScalarNode",
    "SequenceNode",
    "YamlBudgetError",
    "YamlParseError",
    "check_expansion",
    "decode_bool",
    "decode_uint",
    "get",
    "is_null",
    "keys",
    "load_documents",
    "position",
    "safe_load",
]

# Plain scalars yaml-cpp reads as null (quoted ones are strings).
_NULL_SCALARS = frozenset({"", "~", "null", "Null", "NULL"})
# yaml-cpp's convert<bool> (YAML 1.1 spellings, in lower, Capitalised or UPPER case).
_TRUE = frozenset({"y", "yes", "true", "on"})
_FALSE = frozenset({"n", "no", "false", "off"})


@dataclass(frozen=True)
class Position:
    """Where a node starts: 0-based line and column (as yaml-cpp marks), character offset."""

    offset: int = 0
    line: int = 0
    column: int = 0


class YamlParseError(Exception):
    """The text is not YAML; `position` is where the parser stopped."""

    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.position = position


class YamlBudgetError(YamlParseError):
    """The document expands beyond its node budget (aliases counted at every use: `over_budget`),
    or an alias refers to a node that contains it."""

    def __init__(self, message: str, position: Position, over_budget: bool = True) -> None:
        super().__init__(message, position)
        self.over_budget = over_budget


def load_documents(text: str, max_nodes: int | None = None) -> list[Node | None]:
    """Compose every document of `text` (None for an empty document). Composed documents are
    never modified, so the documents of a text seen recently are reused (reloads of a set of
    files where one changed compose only that one).

    Composing shares an aliased node instead of copying it, so the composed graph stays as small
    as the text; whoever walks it as a tree pays every alias at every use. `max_nodes` bounds that
    expanded size per document (YamlBudgetError): the check every caller that walks documents
    relies on."""
    with _documents_lock:
        found = _documents.get(text)
    if found is None:
        documents = _compose(text)
        found = (documents, max(map(check_expansion, documents), default=0))
        with _documents_lock:
            if len(_documents) >= _DOCUMENTS_KEPT:
                _documents.pop(next(iter(_documents)))
            _documents[text] = found
    documents, expanded = found
    if max_nodes is not None and expanded > max_nodes:
        for document in documents:
            check_expansion(document, max_nodes)
    return documents


_DOCUMENTS_KEPT = 8  # composed nodes weigh about 7 times the text (0.4 MB for falco_rules)
_documents: dict[str, tuple[list[Node | None], int]] = {}
_documents_lock = threading.Lock()


def clear_documents() -> None:
    with _documents_lock:
        _documents.clear()


def _compose(text: str) -> list[Node | None]:
    loader = _Loader(text)
    documents: list[Node | None] = []
    try:
        while loader.check_node():
            documents.append(loader.get_node())
    except yaml.MarkedYAMLError as error:
        raise YamlParseError(_describe(error), _mark_position(error)) from None
    except yaml.YAMLError as error:  # e.g. reader errors on control characters
        raise YamlParseError(str(error), Position()) from None
    finally:
        loader.dispose()
    return documents or [None]


def check_expansion(document: Node | None, max_nodes: int | None = None) -> int:
    """The number of nodes `document` has once every alias is replaced by what it refers to,
    computed in time linear in the composed graph. Raises YamlBudgetError when that number
    exceeds `max_nodes` (or when an alias refers to a node that contains it, which no tree
    walk could finish)."""
    if document is None:
        return 0
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    # Post-order walk without recursion: (node, children already pushed).
    stack: list[tuple[Node, bool]] = [(document, False)]
    while stack:
        node, expanded = stack.pop()
        key = id(node)
        if expanded:
            on_path.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            if max_nodes is not None and total > max_nodes:
                raise YamlBudgetError(
                    f"yaml: the document expands to more than {max_nodes} nodes once its "
                    "aliases are expanded (an alias bomb?)",
                    position(node),
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YamlBudgetError(
                "yaml: an alias refers to a node that contains it", position(node), False
            )
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                raise YamlBudgetError(
                    "yaml: an alias refers to a node that contains it", position(child), False
                )
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(document)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return node.value
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def safe_load(text: str, max_nodes: int = DATA_MAX_NODES) -> Any:
    """yaml.safe_load for YAML data from outside, with the alias-expansion check of rules files:
    PyYAML shares an aliased value, so a billion-laughs document loads small, and then whoever
    walks it (a schema validation, a JSON dump, a copy) walks 10**9 nodes. Refused here, as a
    yaml.YAMLError so callers' existing handling reports it."""
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            check_expansion(node, max_nodes)
        except YamlBudgetError as error:
            raise yaml.YAMLError(str(error)) from None
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _describe(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark
    where = f"error at line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"yaml: {where}{error.problem or error.context or 'invalid YAML'}"


def _mark_position(error: yaml.MarkedYAMLError) -> Position:
    mark = error.problem_mark or error.context_mark
    if mark is None:
        return Position()
    return Position(offset=mark.index, line=mark.line, column=mark.column)


def position(node: Node | None) -> Position:
    if node is None:
        return Position()
    mark = node.start_mark
    return Position(offset=mark.index, line=mark.line, column=mark.column)


def is_null(node: Node | None) -> bool:
    return isinstance(node, ScalarNode) and not node.style and node.value in _NULL_SCALARS


def get(node: Node, key: str) -> Node | None:
    """`node[key]` for a mapping (the first entry with that key, as yaml-cpp finds it)."""
    if not isinstance(node, MappingNode):
        return None
    index = getattr(node, "_falconet_index", None)
    if index is None:
        index = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode):
                index.setdefault(key_node.value, value_node)
        node._falconet_index = index  # nodes are never modified after composition
    return index.get(key)


def keys(node: Node) -> list[tuple[str, Node]]:
    """The keys of a mapping as text, each with its key node (for positions)."""
    if not isinstance(node, MappingNode):
        return []
    return [(scalar_text(k), k) for k, _ in node.value]


def scalar_text(node: Node) -> str:
    """A scalar's text; non-scalar keys render as their flow text (they never match a key)."""
    return node.value if isinstance(node, ScalarNode) else f"<{node.id}>"


def decode_bool(text: str) -> bool | None:
    lowered = text.lower()
    if text not in (lowered, lowered.capitalize(), lowered.upper()):
        return None
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def decode_uint(text: str) -> int | None:
    """An unsigned 32-bit integer as yaml-cpp's convert<uint32_t> reads it (decimal, 0x, 0o)."""
    body = text[1:] if text.startswith("+") else text
    try:
        if body[:2] in ("0x", "0X"):
            value = int(body[2:], 16)
        elif body[:2] == "0o":
            value = int(body[2:], 8)
        elif body.isdigit():
            value = int(body, 10)
        else:
            return None
    except ValueError:
        return None
    return value if 0 <= value < 2**32 else None
