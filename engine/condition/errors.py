"""Errors of the condition language, each with a 0-based character position when known."""

from __future__ import annotations

from engine.errors import EngineError


class ConditionError(EngineError):
    """Base of condition errors. `position` is a 0-based index into the condition text."""

    exit_status = "usage"

    def __init__(self, message: str, position: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.message = message
        self.position = position


class ConditionSyntaxError(ConditionError):
    """The text does not follow the grammar (libsinsp's parser would throw)."""


class ConditionCompileError(ConditionError):
    """The text parses but cannot be compiled against a field catalog (unknown field, bad value
    for the field type, operator not supported by the type, unresolved macro, ...)."""
