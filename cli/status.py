"""The one exit-status enum every command uses (documented in README)."""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    AUTH = 4
    NETWORK = 5
    VERIFICATION_FAILED = 6
    REQUIREMENT_UNMET = 7

    @classmethod
    def for_error(cls, error: BaseException) -> ExitStatus:
        """Core errors carry `exit_status` as a lower-case name of this enum (see docs/errors)."""
        name = getattr(error, "exit_status", "error")
        try:
            return cls[str(name).upper()]
        except KeyError:
            return cls.ERROR
