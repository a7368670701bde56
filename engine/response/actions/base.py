"""What an action plug-in is, and the registry that finds them by name (`process:terminate`).

An action class declares its parameters (name, type, default, help) so that rules can be checked
at load time and `falconet response actions` can document them. One instance per action name
lives in a ResponseEngine (it may keep state: an HTTP session, the nftables elements it added)
and is closed when the engine shuts down.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from engine.response.errors import ResponseRulesError
from engine.response.templating import check_template, render


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # string | integer | number | boolean | list | object | any
    help: str
    default: Any = None
    required: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "default": self.default,
            "help": self.help,
        }


class Action:
    """Base of every action: `run(params, alert) -> what changed`; raise ActionError to fail."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()

    def run(self, params: dict[str, Any], alert: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the action holds (engine shutdown)."""
        return None

    @classmethod
    def with_defaults(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        """Declared defaults overlaid with `given`; unknown or missing parameters are errors."""
        names = {p.name for p in cls.params}
        for key in given:
            if key not in names:
                close = difflib.get_close_matches(key, sorted(names), n=1, cutoff=0.5)
                hint = (
                    f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(sorted(names))}"
                )
                raise ResponseRulesError(f"action {cls.name}: unknown parameter {key!r}", hint)
        for param in cls.params:
            if param.required and param.name not in given:
                raise ResponseRulesError(
                    f"action {cls.name}: parameter {param.name!r} is required", param.help
                )
        return {**{p.name: p.default for p in cls.params}, **given}

    @classmethod
    def check_parameters(cls, given: Mapping[str, Any]) -> None:
        """Load-time check of the parameters as written (placeholders well formed)."""
        check_template(dict(given))

    @classmethod
    def render_parameters(
        cls, parameters: Mapping[str, Any], alert: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The parameters for one alert, placeholders replaced (engine.response.templating)."""
        rendered: dict[str, Any] = render(dict(parameters), alert)
        return rendered

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "summary": cls.summary,
            "parameters": [p.as_dict() for p in cls.params],
        }


ACTIONS: dict[str, type[Action]] = {}


def register_action(cls: type[Action]) -> type[Action]:
    """Class decorator: make an action findable by its name."""
    if not cls.name or cls.name in ACTIONS:
        raise ValueError(f"action name {cls.name!r} missing or registered twice")
    ACTIONS[cls.name] = cls
    return cls


def action_class(name: str) -> type[Action]:
    from engine.response.actions import load_builtin_actions

    load_builtin_actions()
    found = ACTIONS.get(name)
    if found is None:
        close = difflib.get_close_matches(name, sorted(ACTIONS), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see `falconet response actions`"
        raise ResponseRulesError(f"unknown action {name!r}", hint)
    return found


def registered_actions() -> list[type[Action]]:
    from engine.response.actions import load_builtin_actions

    load_builtin_actions()
    return [ACTIONS[name] for name in sorted(ACTIONS)]
