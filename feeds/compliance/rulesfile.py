"""A thin reader of Falco rules files: each rule's name, tags, priority, source, enabled flag.

Compliance needs only these facts, not compiled conditions, so it reads the YAML directly and
applies Falco's override semantics for the keys it cares about (`override: {tags: append|replace,
enabled: replace, priority: replace}` and the legacy `append: true`). Anything else about rule
validity is the engine loader's business.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from feeds.compliance.errors import RulesFileError, RulesFileNotFoundError

DEFAULT_SOURCE = "syscall"
# libyaml's safe loader when PyYAML was built with it: 10x faster on the upstream rules files.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class RuleInfo:
    name: str
    tags: tuple[str, ...]
    priority: str | None
    source: str
    enabled: bool
    file: str
    plugins: tuple[str, ...] = ()  # plugins the defining file requires (required_plugin_versions)


@dataclass
class RulesRead:
    rules: list[RuleInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def by_name(self) -> dict[str, RuleInfo]:
        return {rule.name: rule for rule in self.rules}


def read_rules(paths: Iterable[str | Path]) -> RulesRead:
    """Rules of the files in load order (a later file overrides or redefines earlier rules)."""
    rules: dict[str, RuleInfo] = {}
    warnings: list[str] = []
    for path in paths:
        items = _load_items(Path(path))
        plugins = _required_plugins(items)
        for index, item in enumerate(items):
            if isinstance(item, dict) and "rule" in item:
                where = f"{path}: item {index + 1}"
                warning = _apply_rule_item(rules, item, where, str(path), plugins)
                if warning:
                    warnings.append(warning)
    return RulesRead(list(rules.values()), warnings)


def _load_items(path: Path) -> list[Any]:
    if not path.is_file():
        raise RulesFileNotFoundError(
            f"rules file {path} does not exist", "give the path of a Falco rules YAML file"
        )
    try:
        data = yaml.load(path.read_text("utf-8"), Loader=_SAFE_LOADER)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RulesFileError(
            f"{path} is not valid YAML: {first_line}", "check the file with `yamllint`"
        ) from error
    if data is None:
        return []
    if not isinstance(data, list):
        raise RulesFileError(
            f"{path} is not a Falco rules file: the top level must be a list of items",
            "a rules file is a YAML sequence of rule, macro and list items",
        )
    return data


def _required_plugins(items: list[Any]) -> tuple[str, ...]:
    names: list[str] = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("required_plugin_versions"), list):
            names += [str(p.get("name")) for p in item["required_plugin_versions"] if p]
    return tuple(names)


def _as_tags(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RulesFileError(f"{where}: tags must be a list", "write tags: [a, b]")
    return tuple(str(tag) for tag in value)


def _apply_rule_item(
    rules: dict[str, RuleInfo],
    item: dict[str, Any],
    where: str,
    file: str,
    plugins: tuple[str, ...],
) -> str | None:
    """Define or modify one rule; returns a warning for an override of an undefined rule."""
    name = str(item["rule"])
    tags = _as_tags(item.get("tags"), where)
    override = item.get("override") or {}
    if not isinstance(override, dict):
        hint = "e.g. override: {tags: append}"
        raise RulesFileError(f"{where}: override must be a mapping", hint)
    previous = rules.get(name)
    is_modification = bool(override) or item.get("append") is True or _only_enabled(item)
    if not is_modification:
        rules[name] = RuleInfo(
            name=name,
            tags=tags,
            priority=_text_or_none(item.get("priority")),
            source=str(item.get("source") or DEFAULT_SOURCE),
            enabled=item.get("enabled", True) is not False,
            file=file,
            plugins=plugins,
        )
        return None
    if previous is None:
        # Falco rejects this; compliance only needs to say it ignored the item.
        return f"{where}: rule {name!r} overrides a rule no earlier file defines (ignored)"
    rules[name] = _modified(previous, item, override, tags)
    return None


def _only_enabled(item: dict[str, Any]) -> bool:
    """`- rule: X\n  enabled: false` alone toggles an existing rule (Falco's shorthand)."""
    return set(item) == {"rule", "enabled"}


def _modified(
    previous: RuleInfo, item: dict[str, Any], override: dict[str, Any], tags: tuple[str, ...]
) -> RuleInfo:
    changed = previous
    tags_mode = override.get("tags", "append" if item.get("append") is True else None)
    if tags_mode == "append":
        added = tuple(tag for tag in tags if tag not in changed.tags)
        changed = replace(changed, tags=changed.tags + added)
    elif tags_mode == "replace":
        changed = replace(changed, tags=tags)
    if "enabled" in item and (override.get("enabled") == "replace" or _only_enabled(item)):
        changed = replace(changed, enabled=item["enabled"] is not False)
    if override.get("priority") == "replace" and "priority" in item:
        changed = replace(changed, priority=_text_or_none(item["priority"]))
    return changed


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
