"""`process:terminate`: SIGTERM, then SIGKILL after a grace period, to the alert's process.

Safety first: pid 1, falconet itself and its ancestors are refused, and the pid must still be
the alert's process. A pidfd is opened *before* the identity check, so the process that is
checked is the one that is signalled even if the pid is recycled in between.

Responses run in the detection process, which knows the event's own process whatever the rule's
output prints: `${proc.pid}` resolves to it (engine.response.templating.EVENT_KEY), and when the
pid to signal is that process, its start time from the engine is what identifies it. So an
upstream rule whose output has no `%proc.pid` (e.g. `Read sensitive file untrusted`) can be
answered with a terminate, safely. A pid that is not a positive process id (-1 means "every
process" to kill(2)) or is above the kernel's pid_max is refused before any system call.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.response.actions.base import Action, Param, register_action
from engine.response.errors import ActionError, ActionRefused
from engine.response.templating import EVENT_KEY

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
# /proc starttime is in clock ticks; the alert's proc.pid.ts is in ns: allow a few ticks.
START_TIME_TOLERANCE_NS = 3 * 1_000_000_000 // _TICKS_PER_SECOND + 20_000_000


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat fields after the command name (which may contain spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def parent_pid(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def start_time_ns(pid: int) -> int:
    """The process's start time as epoch ns (boot time + starttime ticks)."""
    ticks = int(_stat_fields(pid)[19])
    boot_epoch_ns = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(
        time.CLOCK_BOOTTIME
    )
    return boot_epoch_ns + ticks * 1_000_000_000 // _TICKS_PER_SECOND


def protected_pids() -> set[int]:
    """pid 1, this process and every ancestor of it."""
    protected = {0, 1}
    pid = os.getpid()
    while pid > 1 and pid not in protected:
        protected.add(pid)
        try:
            pid = parent_pid(pid)
        except (OSError, ValueError, IndexError):
            break
    return protected


def _identity_mismatch(pid: int, alert_fields: Mapping[str, Any]) -> str | None:
    """Why `pid` is not the alert's process, or None when it is; ActionRefused when unknowable."""
    expected_start = alert_fields.get("proc.pid.ts")
    if expected_start is not None:
        actual = start_time_ns(pid)
        if abs(actual - int(expected_start)) > START_TIME_TOLERANCE_NS:
            return f"started at {actual} ns, the alert's process at {expected_start} ns"
        return None
    exepath = alert_fields.get("proc.exepath")
    if exepath:
        actual_exe = os.readlink(f"/proc/{pid}/exe")
        return None if actual_exe == exepath else f"runs {actual_exe}, not {exepath}"
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    expected_exe = alert_fields.get("proc.exe")
    if expected_exe:
        actual_arg0 = argv[0].decode("utf-8", "replace")
        return None if actual_arg0 == expected_exe else f"argv[0] {actual_arg0!r}"
    raise ActionRefused(
        f"cannot verify that pid {pid} is the alert's process",
        "add %proc.pid.ts or %proc.exepath to the rule's output, or set verify: false",
    )


def _wait_exit(pidfd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


@register_action
class TerminateProcess(Action):
    name = "process:terminate"
    summary = "SIGTERM, then SIGKILL after a grace period, to the alert's process (or group)."
    params = (
        Param("pid", "integer", "process to terminate", "${proc.pid}"),
        Param("grace_period", "number", "seconds between SIGTERM and SIGKILL", 5.0),
        Param("process_group", "boolean", "signal the process group of pid instead", False),
        Param(
            "verify",
            "boolean",
            "check that pid is still the alert's process (proc.pid.ts, else proc.exepath, "
            "else proc.exe) before signalling",
            True,
        ),
    )

    def run(self, params: dict[str, Any], alert: Mapping[str, Any]) -> dict[str, Any]:
        pid = _as_pid(params["pid"])
        if pid in protected_pids():
            raise ActionRefused(f"refusing to terminate pid {pid} (init, falconet or its parent)")
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise ActionError(f"process {pid} no longer exists") from None
        except OSError as error:
            raise ActionError(f"cannot open process {pid}: {error.strerror}") from None
        try:
            if params["verify"]:
                mismatch = _identity_mismatch(pid, _identity_fields(pid, alert))
                if mismatch is not None:
                    raise ActionRefused(f"pid {pid} was reused: it {mismatch}")
            if params["process_group"]:
                return self._terminate_group(pid, pidfd, float(params["grace_period"]))
            return self._terminate(pid, pidfd, float(params["grace_period"]))
        finally:
            os.close(pidfd)

    def _terminate(self, pid: int, pidfd: int, grace: float) -> dict[str, Any]:
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        if _wait_exit(pidfd, grace):
            return {"pid": pid, "signal": "SIGTERM", "exited": True}
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return {"pid": pid, "signal": "SIGKILL", "exited": _wait_exit(pidfd, 2.0)}

    def _terminate_group(self, pid: int, pidfd: int, grace: float) -> dict[str, Any]:
        group = os.getpgid(pid)
        if group in protected_pids() or group == os.getpgrp():
            raise ActionRefused(f"refusing to signal process group {group} (falconet's own)")
        os.killpg(group, signal.SIGTERM)
        if _wait_exit(pidfd, grace):
            return {"pid": pid, "process_group": group, "signal": "SIGTERM", "exited": True}
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        exited = _wait_exit(pidfd, 2.0)
        return {"pid": pid, "process_group": group, "signal": "SIGKILL", "exited": exited}


def _identity_fields(pid: int, alert: Mapping[str, Any]) -> Mapping[str, Any]:
    """What identifies `pid`: the event's own process as the engine saw it when `pid` is that
    process (authoritative, whatever the output printed), else the alert's output fields."""
    fields = alert.get("output_fields") or {}
    origin = alert.get(EVENT_KEY) or {}
    if origin.get("proc.pid") == pid and origin.get("proc.pid.ts") is not None:
        return {**fields, "proc.pid.ts": origin["proc.pid.ts"]}
    return fields


def pid_max() -> int:
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        return 4_194_304  # the kernel's PID_MAX_LIMIT on 64-bit


def _as_pid(value: Any) -> int:
    """A process id from a rendered parameter; ActionError when there is none, ActionRefused
    when it is no process id (kill(2) reads 0 and negative pids as groups or everyone)."""
    if value is None or isinstance(value, bool):
        raise ActionError(
            f"no usable pid in the alert ({value!r})", "add %proc.pid to the rule's output"
        )
    try:
        pid = int(value)
        if isinstance(value, float) and value != pid:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ActionError(
            f"no usable pid in the alert ({value!r})", "add %proc.pid to the rule's output"
        ) from None
    limit = pid_max()
    if not 1 <= pid <= limit:
        raise ActionRefused(
            f"refusing pid {pid}: not a process id (1..{limit})",
            "check the action's pid parameter and the alert's field",
        )
    return pid
