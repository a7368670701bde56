"""Typed errors of the feeds layer. `exit_status` names cli.status.ExitStatus (lower case)."""

from __future__ import annotations


class FeedsError(Exception):
    exit_status = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(FeedsError):
    exit_status = "usage"


class NotFoundError(FeedsError):
    exit_status = "not_found"


class RequirementUnmetError(FeedsError):
    exit_status = "requirement_unmet"


class ResolutionError(FeedsError):
    exit_status = "requirement_unmet"


class StateError(FeedsError):
    """Local state (an installed-state record, a journal, a cache entry) that cannot be read:
    the message names the file, the hint says how to repair it."""

    exit_status = "error"
