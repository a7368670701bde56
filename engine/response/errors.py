"""Typed errors of the response engine (exit statuses name cli.status.ExitStatus)."""

from __future__ import annotations

from engine.errors import EngineError


class ResponseError(EngineError):
    """Base of response errors."""


class ResponseRulesError(ResponseError):
    """A response rules file that cannot be loaded (bad YAML, schema, condition, action)."""

    exit_status = "usage"


class ActionError(ResponseError):
    """An action that ran and failed (or refused to act); becomes a `failed` outcome."""


class ActionRefused(ActionError):
    """An action that declined to act for safety (pid 1, falconet itself, a reused pid...)."""
