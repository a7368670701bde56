"""Rules files checked against schemas/rules.schema.json, as `falco -V` reports it: never fatal,
one status per YAML document ("ok", or "failed for <path>: <reason>" per problem).

Falco validates with weak types (a string "10" satisfies an integer), so plain YAML scalars are
typed the YAML 1.2 way before validation and quoted ones stay strings.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import jsonschema

from engine import yamlfile
from engine.yamlfile import MappingNode, Node, ScalarNode, SequenceNode

VALIDATION_OK = "ok"
VALIDATION_FAILED = "failed"
_INTEGER = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


@cache
def _validator() -> jsonschema.protocols.Validator:
    from schemas import load

    schema = load("rules")
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _plain(node: Node) -> Any:
    """A composed node as the JSON value the schema sees."""
    if isinstance(node, SequenceNode):
        return [_plain(item) for item in node.value]
    if isinstance(node, MappingNode):
        return {yamlfile.scalar_text(k): _plain(v) for k, v in node.value}
    assert isinstance(node, ScalarNode)
    if node.style:  # quoted or block scalars are strings
        return node.value
    if yamlfile.is_null(node):
        return None
    if node.value in ("true", "false"):
        return node.value == "true"
    if _INTEGER.fullmatch(node.value):
        return int(node.value)
    if _FLOAT.fullmatch(node.value):
        return float(node.value)
    return node.value


def _path(error: jsonschema.ValidationError) -> str:
    return "<root>" + "".join(f"[{part}]" for part in error.absolute_path)


def schema_statuses(documents: list[Node | None]) -> list[str]:
    statuses: list[str] = []
    for document in documents:
        if document is None:
            continue
        errors = sorted(
            _validator().iter_errors(_plain(document)),
            key=lambda e: [str(part) for part in e.absolute_path],
        )
        if not errors:
            statuses.append(VALIDATION_OK)
        statuses.extend(f"{VALIDATION_FAILED} for {_path(e)}: {e.message}" for e in errors)
    return statuses
