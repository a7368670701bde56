"""Typed errors of the compliance package (bases in feeds/errors.py)."""

from __future__ import annotations

from feeds.errors import ConfigError, FeedsError, NotFoundError


class ComplianceError(FeedsError):
    """Broken catalogue or mapping data shipped with falconet: a bug, not a user mistake."""


class UnknownFrameworkError(ConfigError):
    """A framework name or control prefix given by the user is not in the catalogue."""


class RulesFileError(ConfigError):
    """A rules file given by the user cannot be read as a Falco rules file."""


class RulesFileNotFoundError(NotFoundError):
    """A rules file given by the user does not exist."""


class SelectionError(ConfigError):
    """Selection criteria given by the user are invalid (priority, maturity, control prefix)."""


class RuleNotFoundError(NotFoundError):
    """A rule named by the user is in none of the given rules files."""
