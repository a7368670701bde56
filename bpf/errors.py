"""Typed errors of the kernel side. `exit_status` names cli.status.ExitStatus (lower case)."""

from __future__ import annotations


class BpfError(Exception):
    exit_status = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class BpfRequirementError(BpfError):
    exit_status = "requirement_unmet"
