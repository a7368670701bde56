"""The facts compliance needs about rules: name, tags, priority, source, enabled, defining file.

Rules files are read with the engine's own reader and collector (engine.rule_reader,
engine.rule_collector: Falco's semantics for redefinitions, `append`, `override`, `enabled`), but
conditions are not compiled: tags are all compliance needs, and reading stays fast. A file the
engine's reader rejects is rejected here with the engine's message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine import condition_backend
from engine.load_result import LoadResult
from engine.rule_collector import Collector
from engine.rule_reader import RulesReader
from feeds.compliance.errors import RulesFileError, RulesFileNotFoundError


class RuleFacts(Protocol):
    """What selection and mapping read from a rule: satisfied by RuleInfo below and by the
    engine's CompiledRule, so a running engine can select among its loaded rules directly."""

    @property
    def name(self) -> str: ...
    @property
    def tags(self) -> Iterable[str]: ...
    @property
    def priority(self) -> str | None: ...
    @property
    def source(self) -> str: ...


@dataclass(frozen=True)
class RuleInfo:
    name: str
    tags: tuple[str, ...]
    priority: str | None
    source: str
    enabled: bool
    file: str
    plugins: tuple[str, ...] = ()  # plugins the defining file requires (required_plugin_versions)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise RulesFileNotFoundError(
            f"rules file {path} does not exist", "give the path of a Falco rules YAML file"
        )
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RulesFileError(
            f"cannot read rules file {path}: {error}", "rules files are UTF-8 YAML"
        ) from error


def _rejected(path: Path, result: LoadResult) -> RulesFileError:
    first = result.errors[0]
    return RulesFileError(
        f"{path}: {first.code.value}: {first.message}",
        f"run `falconet rules validate {path}` for the position of every error",
    )


def read_rules(paths: Iterable[str | Path]) -> list[RuleInfo]:
    """Rules of the files, in definition order, after every file's overrides (load order)."""
    collector = Collector(
        source_known=condition_backend.source_known,
        field_is_valid=condition_backend.field_is_valid,
    )
    defined_in: dict[str, tuple[str, tuple[str, ...]]] = {}
    for raw_path in paths:
        path = Path(raw_path)
        result = LoadResult(str(path))
        plugins_before = len(collector.required_plugin_versions)
        if not RulesReader(collector, result, _read_text(path)).read():
            raise _rejected(path, result)
        plugins = tuple(
            alternative.name
            for requirement in collector.required_plugin_versions[plugins_before:]
            for alternative in requirement.alternatives
        )
        for name in collector.rules:
            defined_in.setdefault(name, (str(path), plugins))
    return [
        RuleInfo(
            name=info.name,
            tags=tuple(sorted(info.tags)),
            priority=info.priority,
            source=info.source,
            enabled=info.enabled,
            file=defined_in[info.name][0],
            plugins=defined_in[info.name][1],
        )
        for info in collector.rules.values()
    ]
