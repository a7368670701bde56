"""`exec:script`: run a program with the alert JSON on stdin, under a timeout, capturing output.

The program is run directly (no shell) from an argument list; a string is split like a shell
would (shlex). Output kept in the outcome is truncated to `max_output` bytes per stream.
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

    def run(self, params: dict[str, Any], alert: Mapping[str, Any]) -> dict[str, Any]:
        command = params["command"]
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
