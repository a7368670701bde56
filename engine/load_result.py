"""Falco's load results: error/warning codes, item contexts with positions, snippets, and the
`falco_load_results` JSON shape (`falco -V`, falco:userspace/engine/falco_load_result.cpp and
rule_loader.cpp).

A context is a chain of locations (file, then item, then value...), each naming an item type, an
item name and a position; the last one is where the snippet and its caret point.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from engine.yamlfile import Position


class ErrorCode(enum.Enum):
    LOAD_ERR_FILE_READ = "File read error"
    LOAD_ERR_YAML_PARSE = "YAML parse error"
    LOAD_ERR_YAML_VALIDATE = "Error validating internal structure of YAML file"
    LOAD_ERR_COMPILE_CONDITION = "Error compiling condition"
    LOAD_ERR_COMPILE_OUTPUT = "Error compiling output"
    LOAD_ERR_VALIDATE = "Error validating rule/macro/list/exception objects"
    LOAD_ERR_EXTENSION = "Error in extension item"

    @property
    def short(self) -> str:
        return self.value


class WarningCode(enum.Enum):
    LOAD_UNKNOWN_SOURCE = "Unknown event source"
    LOAD_UNSAFE_NA_CHECK = "Unsafe <NA> comparison in condition"
    LOAD_NO_EVTTYPE = "Condition has no event-type restriction"
    LOAD_UNKNOWN_FILTER = "Unknown field or event-type in condition or output"
    LOAD_UNUSED_MACRO = "Unused macro"
    LOAD_UNUSED_LIST = "Unused list"
    LOAD_UNKNOWN_ITEM = "Unknown rules file item"
    LOAD_DEPRECATED_ITEM = "Used deprecated item"
    LOAD_WARNING_EXTENSION = "Warning in extension item"
    LOAD_APPEND_NO_VALUES = "Overriding/appending with no values"
    LOAD_EXCEPTION_NAME_NOT_UNIQUE = "Multiple exceptions defined with the same name"
    LOAD_INVALID_MACRO_NAME = "Invalid macro name"
    LOAD_INVALID_LIST_NAME = "Invalid list name"
    LOAD_COMPILE_CONDITION = "Warning in rule condition"
    LOAD_UNKNOWN_KEY = "Unknown key in item definition"

    @property
    def short(self) -> str:
        return self.value


# The long descriptions Falco puts in a warning's `codedesc` (errors get the short text there:
# Falco's error_desc() returns error_strings, kept for compatibility).
WARNING_DESCRIPTIONS: dict[WarningCode, str] = {
    WarningCode.LOAD_UNKNOWN_SOURCE: "A rule has a unknown event source. This can occur when "
    "reading rules content without having a corresponding plugin loaded, etc. The rule will be "
    "silently ignored.",
    WarningCode.LOAD_UNSAFE_NA_CHECK: "Comparing a field value with <NA> is unsafe and can lead "
    "to unpredictable behavior of the rule condition. If you need to check for the existence of "
    "a field, consider using the 'exists' operator instead.",
    WarningCode.LOAD_NO_EVTTYPE: "A rule condition matches too many evt.type values. This has a "
    "significant performance penalty. Make the condition more specific by adding an evt.type "
    "field or further restricting the number of evt.type values in the condition.",
    WarningCode.LOAD_UNKNOWN_FILTER: "A rule condition or output refers to a field or evt.type "
    "that does not exist. This is normally an error, but if a rule has a skip-if-unknown-filter "
    "property, the error is downgraded to a warning.",
    WarningCode.LOAD_UNUSED_MACRO: "A macro is defined in the rules content but is not used by "
    "any other macro or rule.",
    WarningCode.LOAD_UNUSED_LIST: "A list is defined in the rules content but is not used by any "
    "other list, macro, or rule.",
    WarningCode.LOAD_UNKNOWN_ITEM: "An unknown top-level object is in the rules content. It will "
    "be ignored.",
    WarningCode.LOAD_DEPRECATED_ITEM: "A deprecated item is employed by lists, macros, or rules.",
    WarningCode.LOAD_WARNING_EXTENSION: "An extension item has a warning",
    WarningCode.LOAD_APPEND_NO_VALUES: "A rule exception is overriding/appending with no values",
    WarningCode.LOAD_EXCEPTION_NAME_NOT_UNIQUE: "A rule is defining multiple exceptions with the "
    "same name",
    WarningCode.LOAD_INVALID_MACRO_NAME: "A macro is defined with an invalid name",
    WarningCode.LOAD_INVALID_LIST_NAME: "A list is defined with an invalid name",
    WarningCode.LOAD_COMPILE_CONDITION: "A rule condition or output have been parsed with a "
    "warning",
    WarningCode.LOAD_UNKNOWN_KEY: "An item in the rules content contains an unrecognized key. "
    "The key will be ignored. This may indicate a typo or a property placed on the wrong item "
    "type.",
}


class ItemType(enum.Enum):
    VALUE_FOR = "value for"
    EXCEPTIONS = "exceptions"
    EXCEPTION = "exception"
    EXCEPTION_VALUES = "exception values"
    EXCEPTION_VALUE = "exception value"
    RULES_CONTENT = "rules content"
    RULES_CONTENT_ITEM = "rules content item"
    REQUIRED_ENGINE_VERSION = "required_engine_version"
    REQUIRED_PLUGIN_VERSIONS = "required plugin versions"
    REQUIRED_PLUGIN_VERSIONS_ENTRY = "required plugin versions entry"
    REQUIRED_PLUGIN_VERSIONS_ALTERNATIVE = "required plugin versions alternative"
    LIST = "list"
    LIST_ITEM = "list item"
    MACRO = "macro"
    MACRO_CONDITION = "macro condition"
    RULE = "rule"
    RULE_CONDITION = "rule condition"
    CONDITION_EXPRESSION = "condition expression"
    RULE_OUTPUT = "rule output"
    RULE_OUTPUT_EXPRESSION = "rule output expression"
    RULE_PRIORITY = "rule priority"
    OVERRIDE = "overrides"
    EXTENSION_ITEM = "extension item"


@dataclass(frozen=True)
class Location:
    name: str  # the file name, or a quoted prefix of a condition
    position: Position
    item_type: ItemType
    item_name: str


@dataclass(frozen=True)
class Context:
    """Where something is: the chain of enclosing items, outermost first."""

    locations: tuple[Location, ...]
    # A condition's text, when the last location points into a condition rather than the file.
    alt_content: str = ""

    @classmethod
    def for_file(cls, name: str) -> Context:
        return cls((Location(name, Position(), ItemType.RULES_CONTENT, ""),))

    @property
    def name(self) -> str:
        return self.locations[0].name

    def child(self, pos: Position, item_type: ItemType, item_name: str = "") -> Context:
        return Context((*self.locations, Location(self.name, pos, item_type, item_name)))

    def in_condition(self, condition: str, offset: int, line: int, column: int) -> Context:
        """A position inside `condition` (parser-relative), shifted by this context's position
        as Falco does (its parser counts lines/columns from 1, YAML marks from 0)."""
        label = condition[:17] + '..."' if len(condition) > 20 else condition + '"'
        label = ('"' + label).replace("\n", " ").replace("\r", " ")
        last = self.locations[-1].position
        pos = Position(offset + last.offset, line + last.line, column + last.column)
        location = Location(label, pos, ItemType.CONDITION_EXPRESSION, "")
        return Context((*self.locations, location), alt_content=condition)

    def as_text(self) -> str:
        lines = []
        for index, loc in enumerate(self.locations):
            prefix = "In " if index == 0 else "    "
            name = f" '{loc.item_name}'" if loc.item_name else ""
            where = f"({loc.name}:{loc.position.line}:{loc.position.column})"
            lines.append(f"{prefix}{loc.item_type.value}{name}: {where}\n")
        return "".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "locations": [
                {
                    "item_type": loc.item_type.value,
                    "item_name": loc.item_name,
                    "position": {
                        "name": loc.name,
                        "line": loc.position.line,
                        "column": loc.position.column,
                        "offset": loc.position.offset,
                    },
                }
                for loc in self.locations
            ]
        }

    def snippet(self, contents: dict[str, str], width: int = 160) -> str:
        """The line holding the position (at most width/2 chars each side) and a caret line."""
        last = self.locations[-1]
        text = self.alt_content or contents.get(last.name)
        if text is None:
            return f"<No context for file + {last.name}>\n"
        if not text:
            return "<No context available>\n"
        pos = last.position.offset
        # A mark can sit past the end of the file (a dangling `tags:`) or on a newline.
        while pos > 0 and (pos >= len(text) or text[pos] == "\n"):
            pos -= 1
        half = width // 2
        start = pos
        while start > 0 and text[start] != "\n" and pos - start < half:
            start -= 1
        end = pos
        while end < len(text) - 1 and text[end] != "\n" and end - pos < half:
            end += 1
        if start < len(text) and text[start] == "\n":
            start += 1
        if end < len(text) and text[end] == "\n":
            end -= 1
        line = text[start : end + 1]
        if not line:
            return "<No context available>\n"
        if pos - start >= half:
            line = "..." + line[3:]
        if end - pos >= half:
            line = line[:-3] + "..."
        out = line + "\n"
        if pos - start <= len(out) - 1:
            out += " " * (pos - start) + "^\n"
        return out


@dataclass(frozen=True)
class LoadMessage:
    code: ErrorCode | WarningCode
    message: str
    context: Context
    deprecated_field: str | None = None

    @property
    def is_error(self) -> bool:
        return isinstance(self.code, ErrorCode)

    def short_text(self) -> str:
        text = self.code.short
        if self.deprecated_field:
            text += f": field '{self.deprecated_field}'"
        return text

    def as_json(self, contents: dict[str, str]) -> dict[str, Any]:
        context = self.context.as_json()
        context["snippet"] = self.context.snippet(contents)
        if isinstance(self.code, ErrorCode):
            codedesc = self.code.short
        else:
            codedesc = WARNING_DESCRIPTIONS[self.code]
        out: dict[str, Any] = {
            "context": context,
            "code": self.code.name,
            "codedesc": codedesc,
            "message": self.message,
        }
        if self.deprecated_field:
            out["deprecated_field"] = self.deprecated_field
        return out


class RuleLoadError(Exception):
    """Aborts reading or compiling: becomes one error in the file's LoadResult."""

    def __init__(self, code: ErrorCode, message: str, context: Context) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.context = context


@dataclass
class LoadResult:
    """What loading one rules file produced (Falco's rule_loader::result)."""

    name: str
    errors: list[LoadMessage] = field(default_factory=list)
    warnings: list[LoadMessage] = field(default_factory=list)
    # One status per YAML document ("ok" or "failed for ..."), None when no schema check ran.
    schema_statuses: list[str] | None = None

    @property
    def schema_valid(self) -> bool:
        """Falco looks at the first status only (yaml_helper::validation_ok)."""
        return bool(self.schema_statuses) and self.schema_statuses[0] == "ok"

    @property
    def successful(self) -> bool:
        return not self.errors

    def add_error(self, code: ErrorCode, message: str, context: Context) -> None:
        self.errors.append(LoadMessage(code, message, context))

    def add_warning(
        self,
        code: WarningCode,
        message: str,
        context: Context,
        deprecated_field: str | None = None,
    ) -> None:
        self.warnings.append(LoadMessage(code, message, context, deprecated_field))

    def summary(self) -> str:
        if self.errors:
            return f"{self.name}: Invalid"
        return f"{self.name}: Ok" + (", with warnings" if self.warnings else "")

    def as_verbose_text(self, contents: dict[str, str]) -> str:
        """Falco's verbose result text (what `falco -V` prints for a file): the summary line,
        then each section after a newline; no newline at the end of a bare summary."""
        out = [self.summary()]
        if self.schema_statuses is not None and not self.schema_valid:
            out.append(f"\n{len(self.schema_statuses)} Schema warnings:\n")
            out.extend(f"------\n{w}\n" for w in self.schema_statuses)
            out.append("------\n")
        for title, messages in (("Errors", self.errors), ("Warnings", self.warnings)):
            if not messages:
                continue
            out.append(f"\n{len(messages)} {title}:\n")
            for message in messages:
                out.append(message.context.as_text())
                out.append("------\n" + message.context.snippet(contents) + "------\n")
                out.append(f"{message.code.name} ({message.short_text()}): {message.message}\n")
        return "".join(out)

    def as_json(self, contents: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "successful": self.successful}
        if self.schema_statuses is not None:
            out["schema_valid"] = self.schema_valid
            out["schema_warnings"] = [] if self.schema_valid else list(self.schema_statuses)
        out["errors"] = [e.as_json(contents) for e in self.errors]
        out["warnings"] = [w.as_json(contents) for w in self.warnings]
        return out
