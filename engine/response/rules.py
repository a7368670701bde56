"""Response rules: the model and the YAML loader (validated by schemas/response.schema.json).

```yaml
settings: {dry_run: false, workers: 4, rate_limit: {count: 100, per: 60}}
rules:
  - name: Kill shells in containers
    match:
      rules: ["Terminal shell in container", "Run shell*"]   # fnmatch wildcards
      tags: [container]              # every tag listed must be on the alert
      priority: Warning              # minimum priority (as severe or more)
      source: syscall
      output_fields: "fd.rip startswith 10."   # Falco condition over the alert's output_fields
    actions:
      - action: process:terminate
        parameters: {grace_period: 2}
        on_failure: stop             # skip this rule's later actions when this one fails
    continue: false                  # a match stops evaluation of later response rules
    rate_limit: {count: 5, per: 60}
```
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

import schemas
from engine import yamlfile
from engine.output import Priority
from engine.response.actions.base import Action, action_class
from engine.response.alert_fields import compile_alert_condition
from engine.response.errors import ResponseRulesError
from engine.response.ratelimit import RateLimit

# Alert priorities as Falco writes them ("Critical"), looked up once per alert and rule.
_PRIORITIES = {p.falco_name.lower(): p for p in Priority} | {"info": Priority.INFORMATIONAL}


def _name_pattern(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for all of a match's rule-name wildcards (fnmatch syntax, case-sensitive)."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def _as_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class Match:
    rules: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    priority: Priority | None = None
    sources: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()
    _checks: tuple[Callable[[Mapping[str, Any]], bool], ...] = field(default=(), repr=False)

    _rule_names: re.Pattern[str] | None = field(default=None, repr=False)

    def matches(self, alert: Mapping[str, Any]) -> bool:
        """Every criterion given must hold (an empty match accepts every alert)."""
        if self.sources and alert.get("source") not in self.sources:
            return False
        if self.priority is not None:
            severity = _PRIORITIES.get(str(alert.get("priority")).lower())
            if severity is None or not severity.at_least(self.priority):
                return False
        if self._rule_names is not None and not self._rule_names.match(str(alert.get("rule"))):
            return False
        if self.tags and not set(self.tags) <= set(alert.get("tags") or ()):
            return False
        return all(check(alert) for check in self._checks)


@dataclass(frozen=True)
class ActionSpec:
    action: str
    parameters: dict[str, Any]  # declared defaults overlaid with the rule's values, unrendered
    on_failure: str = "continue"
    dry_run: bool = False

    @property
    def plugin(self) -> type[Action]:
        return action_class(self.action)


@dataclass(frozen=True)
class ResponseRule:
    name: str
    match: Match
    actions: tuple[ActionSpec, ...]
    continue_: bool = True
    rate_limit: RateLimit | None = None
    dry_run: bool = False
    enabled: bool = True


@dataclass(frozen=True)
class Settings:
    dry_run: bool = False
    workers: int = 4
    rate_limit: RateLimit | None = None
    queue_size: int = 10_000


@dataclass(frozen=True)
class ResponseRules:
    rules: tuple[ResponseRule, ...]
    settings: Settings = Settings()
    path: str = ""

    def matching(self, alert: Mapping[str, Any]) -> list[ResponseRule]:
        """The enabled rules matching `alert`, in file order, up to the first that stops."""
        found: list[ResponseRule] = []
        for rule in self.rules:
            if rule.enabled and rule.match.matches(alert):
                found.append(rule)
                if not rule.continue_:
                    break
        return found


def _rate_limit(spec: Mapping[str, Any] | None) -> RateLimit | None:
    return RateLimit(int(spec["count"]), float(spec["per"])) if spec else None


def _match(spec: Mapping[str, Any], where: str) -> Match:
    priority = None
    if "priority" in spec:
        try:
            priority = Priority.parse(str(spec["priority"]))
        except ValueError as error:
            raise ResponseRulesError(f"{where}: {error}") from None
    conditions = _as_list(spec.get("output_fields"))
    return Match(
        rules=_as_list(spec.get("rules")),
        tags=_as_list(spec.get("tags")),
        priority=priority,
        sources=_as_list(spec.get("source")),
        conditions=conditions,
        _checks=tuple(_condition(text, where) for text in conditions),
        _rule_names=_name_pattern(_as_list(spec.get("rules"))),
    )


def _condition(text: str, where: str) -> Callable[[Mapping[str, Any]], bool]:
    try:
        return compile_alert_condition(text).evaluate
    except ResponseRulesError as error:
        raise ResponseRulesError(f"{where}: {error}", error.hint) from None


def _action(spec: Mapping[str, Any], where: str) -> ActionSpec:
    given = spec.get("parameters") or {}
    try:
        plugin = action_class(spec["action"])
        parameters = plugin.with_defaults(given)
        plugin.check_parameters(parameters)
    except ResponseRulesError as error:
        raise ResponseRulesError(f"{where}: {error}", error.hint) from None
    return ActionSpec(
        action=plugin.name,
        parameters=parameters,
        on_failure=spec.get("on_failure", "continue"),
        dry_run=bool(spec.get("dry_run", False)),
    )


def _schema_error(error: jsonschema.ValidationError) -> str:
    location = "/".join(str(p) for p in error.absolute_path) or "(top)"
    return f"{location}: {error.message}"


def parse_rules(document: Any, path: str = "") -> ResponseRules:
    """Validate and compile a parsed response rules document."""
    where = path or "response rules"
    if isinstance(document, list):  # a bare list of rules is accepted
        document = {"rules": document}
    validator = jsonschema.Draft202012Validator(schemas.load("response"))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        raise ResponseRulesError(
            f"{where}: {_schema_error(errors[0])}", "see docs/response.md for the format"
        )
    names: set[str] = set()
    rules = []
    for spec in document["rules"]:
        if spec["name"] in names:
            raise ResponseRulesError(f"{where}: rule {spec['name']!r} is defined twice")
        names.add(spec["name"])
        rule_where = f"{where}: rule {spec['name']!r}"
        rules.append(
            ResponseRule(
                name=spec["name"],
                match=_match(spec["match"], rule_where),
                actions=tuple(
                    _action(a, f"{rule_where} action {i + 1}")
                    for i, a in enumerate(spec["actions"])
                ),
                continue_=bool(spec.get("continue", True)),
                rate_limit=_rate_limit(spec.get("rate_limit")),
                dry_run=bool(spec.get("dry_run", False)),
                enabled=bool(spec.get("enabled", True)),
            )
        )
    settings_spec = document.get("settings") or {}
    settings = Settings(
        dry_run=bool(settings_spec.get("dry_run", False)),
        workers=int(settings_spec.get("workers", 4)),
        rate_limit=_rate_limit(settings_spec.get("rate_limit")),
        queue_size=int(settings_spec.get("queue_size", 10_000)),
    )
    return ResponseRules(tuple(rules), settings, path)


def load_rules(path: str | Path) -> ResponseRules:
    """Load a response rules file; ResponseRulesError (exit status usage) when invalid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ResponseRulesError(
            f"cannot read response rules {path}: {error.strerror}", "check the path"
        ) from error
    try:
        document = yamlfile.safe_load(text)  # aliases bounded, as in rules files
    except yaml.YAMLError as error:
        raise ResponseRulesError(f"{path}: invalid YAML: {error}") from error
    return parse_rules(document, str(path))
