"""Budgets of the rules language: what one rules file, one YAML document, one list and one
condition may cost to read and compile.

Rules files come from feeds, that is from outside: a 40-line file whose macros double at each
level expands to 2**40 condition nodes, a YAML file whose anchors refer to anchors ("billion
laughs") expands to 10**9 nodes once walked. Each budget below is checked where the cost is paid,
before the cost grows, and a load that exceeds one fails with an ordinary load error naming the
item (macro, list, rule) and the limit.

The defaults are far above Falco's own rules (measured on the upstream rules files, see
docs/security.md "Rules and engine limits": the largest is below 1/10 of each default). Each one
can be raised with an environment variable, read when a load starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

ENV_PREFIX = "FALCONET_RULES_MAX_"


@dataclass(frozen=True)
class RulesLimits:
    # Measured maxima of the upstream rules files in ../shared (Falco's stable, incubating,
    # sandbox, plugin rules and their history) in the comments.
    # Bytes of one rules file (upstream: 94,642).
    file_bytes: int = 16 * 1024 * 1024
    # Top-level items (lists, macros, rules...) of one rules file (upstream: 282).
    items: int = 50_000
    # YAML nodes of one document, each alias counted at every place it is used (upstream: 2,447).
    yaml_nodes: int = 500_000
    # Characters of one condition once lists and exceptions are substituted (upstream: 5,830).
    condition_chars: int = 256 * 1024
    # Nodes of one condition once macros are expanded, a macro counted at every use
    # (upstream: 463).
    condition_nodes: int = 50_000
    # Items of one list once the lists it names are expanded (upstream: 102).
    list_items: int = 100_000
    # Expanded condition nodes of all the rules of one compilation together (upstream: 3,991
    # for falco_rules + falco-sandbox_rules). Compiling costs about 20 us and 250 bytes a node.
    load_nodes: int = 200_000

    @classmethod
    def from_environment(cls) -> RulesLimits:
        """The defaults, each replaced by FALCONET_RULES_MAX_<NAME> when set to an integer."""
        values: dict[str, int] = {}
        for spec in fields(cls):
            text = os.environ.get(ENV_PREFIX + spec.name.upper())
            if text is None:
                continue
            try:
                values[spec.name] = max(1, int(text))
            except ValueError:
                continue  # a malformed override keeps the default rather than removing it
        return cls(**values)


def env_name(limit: str) -> str:
    """The environment variable that raises `limit` (a RulesLimits field name)."""
    return ENV_PREFIX + limit.upper()


def over_limit(what: str, limit: str, value: int) -> str:
    """The message of an exceeded budget, with how to raise it."""
    return f"{what} (limit {value}; raise it with {env_name(limit)})"
