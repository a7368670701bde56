"""process:terminate against real child processes: alert built from the child's real pid and
start time, pid-reuse protection, SIGKILL after the grace period, process groups, refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from engine.response.actions.process_terminate import start_time_ns
from tests.support.response import respond_once

IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + (
    "print('ready', flush=True); time.sleep(60)"
)


def started(code: str = "import time; print('ready', flush=True); time.sleep(60)", **kw: Any):  # type: ignore[no-untyped-def]
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, **kw)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def alert_for(pid: int, **fields: Any) -> dict[str, Any]:
    return {
        "rule": "Terminal shell in container",
        "priority": "Critical",
        "source": "syscall",
        "output_fields": {"proc.pid": pid, **fields},
    }


def terminate(alert: dict[str, Any], **parameters: Any) -> Any:
    return respond_once(
        "process:terminate", alert, match={"rules": "Terminal shell*"}, **parameters
    )


def test_terminates_the_real_process_named_by_the_alert() -> None:
    child = started()
    outcome = terminate(alert_for(child.pid, **{"proc.pid.ts": start_time_ns(child.pid)}))
    assert outcome.status == "succeeded", outcome.error
    assert child.wait(5) == -signal.SIGTERM
    assert outcome.changed == {"pid": child.pid, "signal": "SIGTERM", "exited": True}


def test_sigkill_after_the_grace_period_when_sigterm_is_ignored() -> None:
    child = started(IGNORE_TERM)
    outcome = terminate(
        alert_for(child.pid, **{"proc.pid.ts": start_time_ns(child.pid)}), grace_period=0.3
    )
    assert outcome.status == "succeeded", outcome.error
    assert child.wait(5) == -signal.SIGKILL
    assert outcome.changed["signal"] == "SIGKILL"


def test_pid_reuse_is_detected_by_start_time_and_the_process_is_left_alone() -> None:
    child = started()
    try:
        # The alert saw an earlier process with this pid: started one second before this one.
        earlier = start_time_ns(child.pid) - 1_000_000_000
        outcome = terminate(alert_for(child.pid, **{"proc.pid.ts": earlier}))
        assert outcome.status == "refused"
        assert "was reused" in (outcome.error or "")
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_identity_falls_back_to_the_executable_path() -> None:
    child = started()
    try:
        wrong = terminate(alert_for(child.pid, **{"proc.exepath": "/usr/bin/not-python"}))
        assert wrong.status == "refused" and child.poll() is None
        unverifiable = terminate(alert_for(child.pid))
        assert unverifiable.status == "refused" and "cannot verify" in (unverifiable.error or "")
        assert child.poll() is None
        right = terminate(
            alert_for(child.pid, **{"proc.exepath": os.readlink(f"/proc/{child.pid}/exe")})
        )
        assert right.status == "succeeded", right.error
        assert child.wait(5) == -signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_process_group_is_signalled_as_a_whole() -> None:
    leader = started(
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('ready', flush=True); time.sleep(60)",
        start_new_session=True,
    )
    group = os.getpgid(leader.pid)
    outcome = terminate(
        alert_for(leader.pid, **{"proc.pid.ts": start_time_ns(leader.pid)}), process_group=True
    )
    assert outcome.status == "succeeded", outcome.error
    assert outcome.changed["process_group"] == group
    assert leader.wait(5) == -signal.SIGTERM
    with pytest.raises(ProcessLookupError):  # no member of the group is left
        for _ in range(200):
            os.killpg(group, 0)
            subprocess.run(["sleep", "0.02"], check=True)


@pytest.mark.parametrize("who", ["init", "falconet", "parent"])
def test_refuses_init_falconet_itself_and_its_parents(who: str) -> None:
    pid = {"init": 1, "falconet": os.getpid(), "parent": os.getppid()}[who]
    outcome = terminate(alert_for(pid), verify=False)
    assert outcome.status == "refused"
    assert "refusing" in (outcome.error or "")


def test_a_process_that_is_gone_fails_cleanly() -> None:
    child = started()
    child.kill()
    child.wait()
    outcome = terminate(alert_for(child.pid, **{"proc.pid.ts": 1}))
    assert outcome.status == "failed"
    assert "no longer exists" in (outcome.error or "")
