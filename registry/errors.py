"""Typed errors of the registry layer. `exit_status` names cli.status.ExitStatus (lower case)."""

from __future__ import annotations


class RegistryError(Exception):
    exit_status = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ReferenceError_(RegistryError):
    exit_status = "usage"


class NotFoundError(RegistryError):
    exit_status = "not_found"


class AuthError(RegistryError):
    exit_status = "auth"


class NetworkError(RegistryError):
    exit_status = "network"


class DigestMismatchError(RegistryError):
    exit_status = "verification_failed"


class VerificationError(RegistryError):
    exit_status = "verification_failed"


class UnsafeArchiveError(RegistryError):
    exit_status = "error"
