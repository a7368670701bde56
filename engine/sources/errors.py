"""Errors of the JSON event sources' inputs (files and HTTP endpoints)."""

from __future__ import annotations

from engine.errors import EngineError


class SourceError(EngineError):
    """Bad input for an event source."""


class UnknownSourceError(SourceError):
    exit_status = "usage"


class InputNotFoundError(SourceError):
    exit_status = "not_found"


class InputFormatError(SourceError):
    """A file or payload that is not what the source reads (not JSON, not its document shape)."""
