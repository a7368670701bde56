"""Typed errors of the engine. `exit_status` names cli.status.ExitStatus (lower case)."""

from __future__ import annotations


class EngineError(Exception):
    exit_status = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class UnknownFieldError(EngineError):
    """A field name (or its argument) that the source does not define."""
