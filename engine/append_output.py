"""Falco's `append_output`: more text and more JSON output fields for the rules an entry matches
(by source, rule name and tags, all given conditions together), applied to loaded rules as Falco
applies it when compiling their outputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import EngineError
from engine.ruleset import CompiledRule


class AppendOutputError(EngineError):
    exit_status = "usage"


@dataclass(frozen=True)
class AppendOutput:
    """One append_output entry. `extra_fields`: (name, format) pairs; a bare field name given
    in falco.yaml is (field, "%field")."""

    source: str | None = None
    rule: str | None = None
    tags: tuple[str, ...] = ()
    extra_output: str = ""
    extra_fields: tuple[tuple[str, str], ...] = ()

    def matches(self, rule: CompiledRule) -> bool:
        return (
            (self.source is None or rule.source == self.source)
            and (self.rule is None or rule.name == self.rule)
            and all(tag in rule.tags for tag in self.tags)
        )


class AppendedFormat:
    """A rule's compiled output with the matching entries' extra output and fields; the same
    interface as engine.output.OutputFormat."""

    def __init__(self, text: Any, fields: Sequence[tuple[str, Any]]) -> None:
        self.text = text  # the rule's format plus the extra output, compiled
        self.fields = tuple(fields)  # (name, compiled format or static text)

    @property
    def format(self) -> str:
        return str(self.text.format)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.text.field_names, *(n for n, _ in self.fields))))

    def render(self, event: Any) -> str:
        return str(self.text.render(event))

    def render_with_fields(self, event: Any) -> tuple[str, dict[str, Any]]:
        line, values = self.text.render_with_fields(event)
        values = dict(values)
        for name, compiled in self.fields:
            if isinstance(compiled, str):  # a static value (e.g. from an environment variable)
                values[name] = compiled
            elif compiled.format == "%" + name:  # a bare field: its typed value
                values[name] = compiled.field_values(event).get(name)
            else:
                values[name] = compiled.render(event)
        return line, values

    def field_values(self, event: Any) -> dict[str, Any]:
        return self.render_with_fields(event)[1]


def with_appended_output(
    rules: Sequence[CompiledRule], entries: Sequence[AppendOutput]
) -> list[CompiledRule]:
    """`rules` with each matching entry's extra output and fields compiled into their output."""
    if not entries:
        return list(rules)
    from engine.condition_backend import OutputError, catalog_for, compile_output

    changed = []
    for rule in rules:
        matching = [entry for entry in entries if entry.matches(rule)]
        catalog = catalog_for(rule.source)
        if not matching or rule.output is None or catalog is None:
            changed.append(rule)
            continue
        text = str(rule.output.format)
        extra = [e.extra_output for e in matching if e.extra_output]
        fields: list[tuple[str, str]] = [f for e in matching for f in e.extra_fields]
        try:
            compiled_text = compile_output(" ".join([text, *extra]), catalog)
            compiled_fields = [
                (name, compile_output(fmt, catalog) if "%" in fmt else fmt) for name, fmt in fields
            ]
        except OutputError as error:
            raise AppendOutputError(
                f"append_output for rule {rule.name!r}: {error}",
                "fix extra_output/extra_fields (fields of the rule's source)",
            ) from error
        output = AppendedFormat(compiled_text, compiled_fields)
        changed.append(dataclasses.replace(rule, output=output))
    return changed
