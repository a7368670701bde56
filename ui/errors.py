"""Typed errors of the web UI. `exit_status` names cli.status.ExitStatus (lower case)."""

from __future__ import annotations


class UiError(Exception):
    exit_status = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class StoreError(UiError):
    """The alert store cannot be opened, migrated or written."""


class UsageError(UiError):
    exit_status = "usage"


class AuthFileError(UiError):
    exit_status = "usage"


class IngestError(UiError):
    """A posted body that is not a Falco alert (or a status document): `status` is the HTTP
    status the ingest endpoint answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
