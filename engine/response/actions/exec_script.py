"""`exec:script`: run a program with the alert JSON on stdin, under a timeout, capturing output.

The program is run directly (no shell) from an argument list. A string command is split like
sh words (shlex) *before* placeholders are replaced, and each argument is then rendered on its
own (engine.response.templating.render_argv): an event field can never add, remove or split an
argument, whatever it contains. Output kept in the outcome is truncated to `max_output` bytes
per stream.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Mapping
from typing import Any

from engine.response.actions.base import Action, Param, register_action
from engine.response.errors import ActionError
from engine.response.templating import check_argv, check_template, render, render_argv


@register_action
class RunScript(Action):
    name = "exec:script"
    summary = "Run a program with the alert JSON on stdin; timeout, captured output."
    params = (
        Param(
            "command",
            "list",
            "program and arguments (list, or a string split like sh)",
            required=True,
        ),
        Param("timeout", "number", "seconds before the program is killed", 30.0),
        Param("env", "object", "extra environment variables", {}),
        Param("max_output", "integer", "bytes of stdout/stderr kept in the outcome", 4096),
    )

    @classmethod
    def check_parameters(cls, given: Mapping[str, Any]) -> None:
        check_argv(given["command"])
        check_template({k: v for k, v in given.items() if k != "command"})

    @classmethod
    def render_parameters(
        cls, parameters: Mapping[str, Any], alert: Mapping[str, Any]
    ) -> dict[str, Any]:
        """`command` becomes its argument vector, split before any value is put in."""
        rest = {k: v for k, v in parameters.items() if k != "command"}
        rendered: dict[str, Any] = render(rest, alert)
        return {**rendered, "command": render_argv(parameters["command"], alert)}

    def run(self, params: dict[str, Any], alert: Mapping[str, Any]) -> dict[str, Any]:
        command = params["command"]
        # The engine hands a rendered list; a string here is a literal command (no values).
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        if not argv:
            raise ActionError("exec:script has an empty command")
        environment = {**os.environ, **{k: str(v) for k, v in params["env"].items()}}
        limit = int(params["max_output"])
        try:
            done = subprocess.run(
                argv,
                input=json.dumps(dict(alert), default=str).encode(),
                capture_output=True,
                timeout=float(params["timeout"]),
                env=environment,
            )
        except FileNotFoundError:
            raise ActionError(f"program not found: {argv[0]}") from None
        except subprocess.TimeoutExpired:
            raise ActionError(f"{argv[0]} timed out after {params['timeout']} s (killed)") from None
        stdout = done.stdout[:limit].decode("utf-8", "replace")
        stderr = done.stderr[:limit].decode("utf-8", "replace")
        if done.returncode != 0:
            raise ActionError(f"{argv[0]} exited with status {done.returncode}: {stderr.strip()}")
        return {"command": argv, "exit_code": 0, "stdout": stdout, "stderr": stderr}
