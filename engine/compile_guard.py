"""Candidate rulesets compiled in a child process with resource limits, before the running
process compiles them.

A running engine (the daemon) compiles rules it did not choose: feed updates (follow's dry run),
edited files (`-r` reloads), SIGHUP. The rules budgets (engine.rule_limits) bound every cost known
to grow, but a candidate is hostile until proven otherwise, and a cost nobody thought of must not
take the daemon's memory or time with it. So the candidate's exact contents are first compiled
by a fresh Python process that limits itself (RLIMIT_AS for memory, RLIMIT_CPU for CPU time)
under a wall-clock deadline kept by the parent. Only when that child says the candidate loads
does the caller compile the same contents (never re-read from disk) in its own process.

The child is `python -m engine.compile_guard`: the candidate arrives as JSON on stdin, the verdict
leaves as JSON on stdout. Spawned, not forked: the daemon has threads, and a fork would copy
their locks in whatever state they are.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import EngineError

ENV_MEMORY = "FALCONET_COMPILE_MAX_MEMORY_MB"
ENV_CPU = "FALCONET_COMPILE_MAX_CPU_SECONDS"
ENV_WALL = "FALCONET_COMPILE_MAX_WALL_SECONDS"
_VERDICT_BYTES = 1024 * 1024  # the child's answer is a few lines of JSON


@dataclass(frozen=True)
class GuardLimits:
    """What one candidate compilation may use. Compiling all the upstream rules files takes
    under 2 s of CPU and 150 MB of address space beyond the interpreter's."""

    memory_mb: int = 2048  # RLIMIT_AS of the child, interpreter included
    cpu_seconds: int = 60  # RLIMIT_CPU of the child
    wall_seconds: float = 120.0  # the parent kills the child after this

    @classmethod
    def from_environment(cls) -> GuardLimits:
        values: dict[str, Any] = {}
        for name, env, kind in (
            ("memory_mb", ENV_MEMORY, int),
            ("cpu_seconds", ENV_CPU, int),
            ("wall_seconds", ENV_WALL, float),
        ):
            text = os.environ.get(env)
            if text:
                try:
                    values[name] = max(1, kind(text))
                except ValueError:
                    continue
        return cls(**values)


class CandidateRefusedError(EngineError):
    """The candidate ruleset exceeded the compile guard's limits (or its child failed)."""


class CandidateInvalidError(EngineError):
    """The child compiled the candidate and found it invalid; the child's error, as is."""

    def __init__(self, message: str, hint: str | None, exit_status: str) -> None:
        super().__init__(message, hint)
        self.exit_status = exit_status


def vet_rules_files(
    paths: Iterable[str | Path], limits: GuardLimits | None = None
) -> list[tuple[str, str]]:
    """Read the rules files (bounded), have a limited child compile them, and return their
    (name, content) pairs for the caller to compile: the contents the child vetted."""
    from engine.loader import read_rules_files

    files = read_rules_files(paths)
    vet_contents(files, limits)
    return files


def vet_contents(files: Sequence[tuple[str, str]], limits: GuardLimits | None = None) -> None:
    """Raise CandidateInvalidError (the load's own error) or CandidateRefusedError (a limit)
    unless a limited child process loads `files` without error (requirements are the
    caller's to check, on the result it compiles)."""
    limits = limits or GuardLimits.from_environment()
    request = json.dumps({"files": [list(pair) for pair in files]}).encode()
    env = {
        **os.environ,
        "PYTHONPATH": _import_root() + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    try:
        child = subprocess.run(  # our own interpreter and module, no shell
            [sys.executable, "-m", _MODULE, str(limits.memory_mb), str(limits.cpu_seconds)],
            input=request,
            capture_output=True,
            timeout=limits.wall_seconds,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CandidateRefusedError(
            f"candidate rules took longer than {limits.wall_seconds:g} s to compile: refused",
            hint=f"rules this costly are refused as hostile; raise {ENV_WALL} if they are yours",
        ) from None
    verdict = _verdict(child.stdout[:_VERDICT_BYTES])
    if verdict is None:
        raise CandidateRefusedError(_failure(child.returncode, child.stderr, limits), hint=_hint())
    if not verdict.get("ok"):
        raise CandidateInvalidError(
            str(verdict.get("error", "invalid rules")),
            verdict.get("hint"),
            str(verdict.get("exit_status", "error")),
        )


# This module's import name, and the directory its top package is imported from, so the child
# runs this very code whatever the namespace.
_MODULE = __spec__.name if __spec__ is not None else "engine.compile_guard"


def _import_root() -> str:
    return str(Path(__file__).resolve().parents[_MODULE.count(".")])


def _verdict(stdout: bytes) -> dict[str, Any] | None:
    try:
        verdict = json.loads(stdout.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return verdict if isinstance(verdict, dict) else None


def _failure(returncode: int, stderr: bytes, limits: GuardLimits) -> str:
    text = stderr.decode("utf-8", "replace")
    if returncode == -signal.SIGXCPU:  # RLIMIT_CPU's soft limit
        return f"candidate rules used more than {limits.cpu_seconds} s of CPU to compile: refused"
    if returncode == -signal.SIGKILL:  # RLIMIT_CPU's hard limit, or the kernel's OOM killer
        return (
            f"candidate rules compilation was killed (more than {limits.cpu_seconds} s of CPU, "
            "or out of memory): refused"
        )
    if "MemoryError" in text:
        return f"candidate rules needed more than {limits.memory_mb} MB to compile: refused"
    last = text.strip().splitlines()[-1][:200] if text.strip() else f"exit status {returncode}"
    return f"candidate rules could not be compiled by the guard process: {last}"


def _hint() -> str:
    return (
        f"rules this costly are refused as hostile; raise {ENV_MEMORY} / {ENV_CPU} "
        "if they are yours"
    )


# --- the child


def _limit_self(memory_mb: int, cpu_seconds: int) -> None:
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # The soft limit sends SIGXCPU (fatal by default); the hard one, a second later, SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def _child_main() -> int:
    # Limited before anything else, reading the candidate included.
    _limit_self(int(sys.argv[1]), int(sys.argv[2]))
    request = json.loads(sys.stdin.buffer.read())
    from engine.loader import RulesInvalidError, load_contents

    files = [(str(name), str(content)) for name, content in request["files"]]
    try:
        loaded = load_contents(files, use_cache=False)
        if not loaded.successful:
            raise RulesInvalidError(loaded)
    except EngineError as error:
        verdict = {
            "ok": False,
            "error": str(error),
            "hint": error.hint,
            "exit_status": error.exit_status,
        }
    else:
        verdict = {"ok": True}
    sys.stdout.write(json.dumps(verdict) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
