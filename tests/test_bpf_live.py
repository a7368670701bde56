"""Live capture with the upstream stable rules: real actions, real alerts (root + BPF only).

One probe and one ruleset serve the module; a background thread feeds every event through the
state tracker and the ruleset, as `falconet run --source syscall` does. Each test performs an
action in a fresh directory, then looks for the alert naming that directory once the detector
has evaluated every event up to a marker sent after the action (no guess at how long it lags).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.live_ebpf import skip_reason

pytestmark = pytest.mark.usefixtures("live_ebpf_shared")
_skip_reason = skip_reason  # the old name, still imported by tests on other branches

# Only bounds for a broken run: a loaded machine makes the detector lag, not fail.
SETTLE_TIMEOUT_S = 60.0
MARKER_RESEND_S = 2.0  # a marker the full buffer dropped is sent again
# Kept with every alert, whatever the rule's output shows.
DETECTOR_FIELDS = (
    "proc.name", "proc.exepath", "fd.name", "proc.pname", "user.name", "proc.cmdline",
)  # fmt: skip


class Detector:
    """LiveSource -> StateTracker -> Ruleset, collecting alerts (rule, priority, fields)."""

    def __init__(self, rules_file: Path) -> None:
        from bpf.capture import LiveSource
        from engine.loader import load_valid_rules, rulesets_for
        from engine.sources.syscall.state import StateTracker

        loaded = load_valid_rules([rules_file])
        self.rulesets = rulesets_for(loaded, matching="all")
        self.tracker = StateTracker()
        self.source = LiveSource(self.rulesets.event_types("syscall"), tracker=self.tracker)
        self.alerts: list[dict[str, Any]] = []
        self.drop_alerts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self._marker: tuple[str, threading.Event] | None = None
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Detector:
        self.source.start()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.source.close()

    def _loop(self) -> None:
        fd_name = _extractor("fd.name")
        for event in self.source.events(self.stop, on_drop_alert=self.drop_alerts.append):
            marker = self._marker
            if marker is not None and event.type == "openat" and fd_name(event) == marker[0]:
                marker[1].set()
            for rule in self.rulesets.evaluate(event, "syscall"):
                fields = rule.output.field_values(event) if rule.output else {}
                for name in DETECTOR_FIELDS:
                    fields.setdefault(name, _extractor(name)(event))
                with self.lock:
                    self.alerts.append(
                        {"rule": rule.name, "priority": rule.priority, "fields": fields}
                    )

    def alerted(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        """The first alert so far that matches, without waiting."""
        with self.lock:
            return next((a for a in self.alerts if match(a)), None)

    def wait_for(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first matching alert, once every event so far has been evaluated."""
        found = self.alerted(match)
        if found is None:
            self.settle()
            found = self.alerted(match)
        if found is None:
            dropped = self.source.stats().kernel.total_dropped
            raise AssertionError(
                f"no such alert from the events so far; the kernel has dropped {dropped} events"
                " since the probe started (a ring-buffer storm elsewhere on the machine drops"
                " the events tests wait for)"
            )
        return found

    def assert_quiet(self, match: Callable[[dict[str, Any]], bool]) -> None:
        """For negative cases: once every event so far has been evaluated, no alert matches."""
        self.settle()
        assert self.alerted(match) is None

    def settle(self) -> None:
        """Returns once every event so far has gone through the ruleset. A child (the probe
        ignores this process) opens a marker file; the ring buffer hands records over in the
        order they were reserved, so the events of every process that exited before it come
        first."""
        with tempfile.NamedTemporaryFile(prefix="falconet-settle-") as marker:
            seen = threading.Event()
            self._marker = (marker.name, seen)
            try:
                deadline = time.monotonic() + SETTLE_TIMEOUT_S
                while time.monotonic() < deadline:
                    subprocess.run(["cat", marker.name], stdout=subprocess.DEVNULL, check=True)
                    if seen.wait(MARKER_RESEND_S):
                        return
            finally:
                self._marker = None
        raise AssertionError(f"the detector did not catch up in {SETTLE_TIMEOUT_S:g} s")


def _extractor(name: str) -> Callable[[Any], Any]:
    from engine.fields import catalog

    _, extract = catalog("syscall").extractor(name)
    return extract


@pytest.fixture(scope="module")
def detector() -> Iterator[Detector]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    shared = Path(__file__).resolve().parent.parent.parent / "shared"
    rules = shared / "upstream-rules" / "falco_rules.yaml"
    if not rules.exists():
        pytest.skip(f"{rules} is absent (upstream rules live only in the project's workspace)")
    with Detector(rules) as d:
        yield d


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def _copy_binary(src: str, dest: Path) -> Path:
    shutil.copy(shutil.which(src) or src, dest)
    dest.chmod(0o755)
    return dest


def _rule(name: str, key: str, contains: str) -> Callable[[dict[str, Any]], bool]:
    return lambda a: a["rule"] == name and contains in str(a["fields"].get(key))


def test_untrusted_program_reads_shadow(detector: Detector, workdir: Path) -> None:
    reader = _copy_binary("cat", workdir / "shadowpeek")
    subprocess.run([str(reader), "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
    alert = detector.wait_for(_rule("Read sensitive file untrusted", "proc.name", "shadowpeek"))
    assert alert is not None
    assert alert["priority"].lower() == "warning"
    assert alert["fields"]["fd.name"] == "/etc/shadow"
    assert alert["fields"]["user.name"] == "root"
    assert alert["fields"]["proc.pname"] == Path("/proc/self/comm").read_text().strip()


def test_trusted_program_reading_shadow_is_quiet(detector: Detector, workdir: Path) -> None:
    trusted = _copy_binary("cat", workdir / "sshd")  # in read_sensitive_file_binaries
    subprocess.run([str(trusted), "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
    detector.assert_quiet(_rule("Read sensitive file untrusted", "proc.name", "sshd"))
    # ... while the event itself was seen: the same binary under another name alerts.
    other = _copy_binary("cat", workdir / "peek2")
    subprocess.run([str(other), "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
    assert detector.wait_for(_rule("Read sensitive file untrusted", "proc.name", "peek2"))


def test_symlink_over_shadow(detector: Detector, workdir: Path) -> None:
    subprocess.run(["ln", "-s", "/etc/shadow", str(workdir / "sym")], check=True)
    alert = detector.wait_for(
        _rule("Create Symlink Over Sensitive Files", "evt.arg.linkpath", str(workdir))
    )
    assert alert is not None
    assert alert["fields"]["evt.arg.target"] == "/etc/shadow"
    assert alert["priority"].lower() == "warning"


def test_symlink_over_ordinary_file_is_quiet(detector: Detector, workdir: Path) -> None:
    subprocess.run(["ln", "-s", "/etc/hostname", str(workdir / "sym")], check=True)
    detector.assert_quiet(
        _rule("Create Symlink Over Sensitive Files", "evt.arg.linkpath", str(workdir))
    )


def test_hardlink_over_shadow(detector: Detector, workdir: Path) -> None:
    # Across filesystems link() fails (EXDEV); the attempt is what the rule reports.
    subprocess.run(["ln", "/etc/shadow", str(workdir / "hard")], capture_output=True)
    alert = detector.wait_for(
        _rule("Create Hardlink Over Sensitive Files", "evt.arg.newpath", str(workdir))
    )
    assert alert is not None
    assert alert["fields"]["evt.arg.oldpath"] == "/etc/shadow"
    assert alert["fields"]["proc.name"] == "ln"


def test_execution_from_dev_shm(detector: Detector) -> None:
    target = Path("/dev/shm") / f"falconet-test-{os.getpid()}"
    _copy_binary("true", target)
    try:
        subprocess.run([str(target)], check=True)
        alert = detector.wait_for(_rule("Execution from /dev/shm", "proc.exepath", str(target)))
        assert alert is not None
        assert alert["priority"].lower() == "warning"
    finally:
        target.unlink()


def test_execution_elsewhere_is_quiet(detector: Detector, workdir: Path) -> None:
    target = _copy_binary("true", workdir / "truthy")
    subprocess.run([str(target)], check=True)
    detector.assert_quiet(_rule("Execution from /dev/shm", "proc.exepath", "truthy"))


MEMFD_EXEC = """
import os, sys
fd = os.memfd_create("payload", 0)
os.write(fd, open("/bin/sleep", "rb").read())
os.execv(f"/proc/self/fd/{fd}", ["payload", "0.5"])
"""


def test_fileless_execution_via_memfd(detector: Detector) -> None:
    subprocess.run([sys.executable, "-c", MEMFD_EXEC], check=True)
    alert = detector.wait_for(lambda a: a["rule"] == "Fileless execution via memfd_create")
    assert alert is not None
    assert alert["priority"].lower() == "critical"
    # Executed through /proc/self/fd/N: the kernel names the process after the fd.
    assert alert["fields"]["proc.cmdline"].endswith(" 0.5")


PTRACE_ATTACH = """
import ctypes, subprocess, time
child = subprocess.Popen(["sleep", "2"])
libc = ctypes.CDLL(None, use_errno=True)
assert libc.ptrace(16, child.pid, None, None) == 0  # PTRACE_ATTACH
time.sleep(0.1)
libc.ptrace(17, child.pid, None, None)  # PTRACE_DETACH
child.kill()
"""


def test_ptrace_attach(detector: Detector, workdir: Path) -> None:
    tracer = _copy_binary(sys.executable, workdir / "tracerpy")
    subprocess.run([str(tracer), "-c", PTRACE_ATTACH], check=True)
    alert = detector.wait_for(_rule("PTRACE attached to process", "proc.name", "tracerpy"))
    assert alert is not None
    assert alert["fields"]["user.name"] == "root"


def test_find_private_keys(detector: Detector, workdir: Path) -> None:
    subprocess.run(["find", str(workdir), "-name", "id_rsa"], check=True)
    alert = detector.wait_for(_rule("Search Private Keys or Passwords", "proc.cmdline", "id_rsa"))
    assert alert is not None
    assert alert["fields"]["proc.name"] == "find"


def test_find_ordinary_files_is_quiet(detector: Detector, workdir: Path) -> None:
    subprocess.run(["find", str(workdir), "-name", "notes.txt"], check=True)
    detector.assert_quiet(_rule("Search Private Keys or Passwords", "proc.cmdline", str(workdir)))


def test_kernel_filter_and_counters(detector: Detector) -> None:
    stats = detector.source.stats()
    assert stats.delivered > 0
    # Every record the kernel counted was either delivered or counted as dropped.
    assert stats.kernel.total_counted >= stats.delivered
    assert len(stats.kernel.dropped) == os.cpu_count()
    assert "getpid" not in detector.source.selection.syscalls


def test_hot_swap_updates_the_kernel_filter(detector: Detector, workdir: Path) -> None:
    source = detector.source
    before = source.selection
    rule = "Create Symlink Over Sensitive Files"
    try:
        source.update_interesting(set(before.syscalls) - {"symlink", "symlinkat"})
        subprocess.run(["ln", "-s", "/etc/shadow", str(workdir / "off")], check=True)
        detector.assert_quiet(_rule(rule, "evt.arg.linkpath", str(workdir / "off")))
    finally:
        source.update_interesting(detector.rulesets.event_types("syscall"))
    assert source.selection == before
    subprocess.run(["ln", "-s", "/etc/shadow", str(workdir / "on")], check=True)
    assert detector.wait_for(_rule(rule, "evt.arg.linkpath", str(workdir / "on")))


def test_capture_replays_to_the_same_alert(
    detector: Detector, workdir: Path, run_cli: Callable[..., Any]
) -> None:
    from engine.sources.syscall.replay import open_replay

    capture = workdir / "live.fncap"
    reader = _copy_binary("cat", workdir / "replaypeek")
    results: list[Any] = []
    recorder = threading.Thread(
        target=lambda: results.append(
            run_cli("capture", "-w", str(capture), "--duration", "6", timeout=120)
        )
    )
    recorder.start()
    # The recorder writes its snapshot once the probe is attached: act only then.
    deadline = time.monotonic() + 60
    while not list(workdir.glob(".live.fncap.partial-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    subprocess.run([str(reader), "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
    recorder.join()
    assert results and results[0].returncode == 0, results and results[0].stderr
    # By the program's path: the capture sees the whole machine, other runs of this test too.
    live = detector.wait_for(_rule("Read sensitive file untrusted", "proc.exepath", str(reader)))
    assert live is not None
    replayed = []
    with open_replay(capture) as replay:
        for event in replay.events():
            replay.tracker.process(event)
            for rule in detector.rulesets.evaluate(event, "syscall"):
                if rule.name == live["rule"] and _extractor("proc.exepath")(event) == str(reader):
                    replayed.append(_extractor("fd.name")(event))
    assert replayed == [live["fields"]["fd.name"]]


@pytest.fixture
def container_cgroup() -> Iterator[Callable[[], None]]:
    """A real cgroup named like Docker's (pids hierarchy): processes moved into it have a
    container id, as Falco derives it from /proc/PID/cgroup. Yields a preexec_fn."""
    root = Path("/sys/fs/cgroup/pids")
    if not (root / "cgroup.procs").exists():
        pytest.skip("no cgroup v1 pids hierarchy at /sys/fs/cgroup/pids to stand in a container")
    group = root / "docker" / (f"{os.getpid():08x}" * 8)
    group.mkdir(parents=True, exist_ok=True)

    def enter() -> None:
        (group / "cgroup.procs").write_text(str(os.getpid()))

    yield enter
    for _ in range(50):  # the cgroup empties once its processes are reaped
        try:
            group.rmdir()
            break
        except OSError:
            time.sleep(0.1)


REVERSE_SHELL = """
import os, socket, sys, time
server = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(server.getsockname())
os.dup2(client.fileno(), 0)
os.dup2(client.fileno(), 1)
print("ready", file=sys.stderr, flush=True)
time.sleep(60)
"""


@contextmanager
def _alive_after_acting(
    args: list[str], preexec_fn: Callable[[], None] | None = None
) -> Iterator[None]:
    """Runs a program that says "ready" on stderr once it has acted, then stays alive until the
    test is done with it: the decoder reads a process's cgroups (its container id) from /proc
    when it decodes the exec, however far behind the kernel the detector is."""
    process = subprocess.Popen(
        args, stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn, start_new_session=True
    )
    try:
        assert process.stderr is not None and process.stderr.readline().strip() == "ready"
        yield
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the program and its children
        process.wait()


def test_shell_redirected_to_tcp_in_container(
    detector: Detector, container_cgroup: Callable[[], None]
) -> None:
    with _alive_after_acting([sys.executable, "-c", REVERSE_SHELL], container_cgroup):
        alert = detector.wait_for(
            lambda a: a["rule"] == "Redirect STDOUT/STDIN to Network Connection in Container"
        )
    assert alert is not None
    assert alert["priority"].lower() == "notice"
    assert alert["fields"]["fd.type"] == "ipv4"
    assert alert["fields"]["fd.rport"] > 0
    assert alert["fields"]["fd.sip"] == "127.0.0.1"


def test_redirect_on_host_is_quiet(detector: Detector, workdir: Path) -> None:
    marker = _copy_binary(sys.executable, workdir / "hostredir")
    with _alive_after_acting([str(marker), "-c", REVERSE_SHELL]):
        detector.assert_quiet(
            _rule(
                "Redirect STDOUT/STDIN to Network Connection in Container", "proc.name", "hostredir"
            )
        )


def _fake_netcat(workdir: Path) -> Path:
    """A program named nc (no netcat is installed here): the rule looks at the exec only. It
    stays alive, as a real nc would, so its cgroups can be read from /proc (this test moves it
    into the container cgroup after its fork; a real container's processes inherit theirs)."""
    nc = workdir / "nc"
    nc.write_text("#!/bin/sh\necho ready >&2\nsleep 60\n")
    nc.chmod(0o755)
    return nc


def test_netcat_remote_execution_in_container(
    detector: Detector, workdir: Path, container_cgroup: Callable[[], None]
) -> None:
    nc = _fake_netcat(workdir)
    with _alive_after_acting([str(nc), "-e", "/bin/sh", "127.0.0.1", "4444"], container_cgroup):
        alert = detector.wait_for(
            lambda a: a["rule"] == "Netcat Remote Code Execution in Container"
        )
    assert alert is not None
    assert alert["fields"]["proc.name"] == "nc"
    assert " -e" in alert["fields"]["proc.cmdline"]


def test_netcat_without_exec_option_is_quiet(
    detector: Detector, workdir: Path, container_cgroup: Callable[[], None]
) -> None:
    nc = _fake_netcat(workdir)
    with _alive_after_acting([str(nc), "-l", "4444"], container_cgroup):
        detector.assert_quiet(
            _rule("Netcat Remote Code Execution in Container", "proc.cmdline", "-l 4444")
        )


def test_ring_buffer_overflow_is_counted_and_alerted(
    detector: Detector, live_ebpf_exclusive: None
) -> None:
    """A one-page ring buffer nobody reads during a storm: every lost event is counted per CPU
    in the kernel, and the rate-limited internal alert reports them."""
    from bpf.capture import LiveSource
    from engine.drops_monitor import DROP_RULE

    storm = "import os\nfor _ in range(20000): os.close(os.open('/etc/hostname', os.O_RDONLY))"
    with LiveSource({"openat"}, ringbuf_pages=1, bootstrap=False) as source:
        subprocess.run([sys.executable, "-c", storm], check=True)
        before = source.kernel_counters()
        assert before.total_dropped > 0
        alert = source.check_drops()
        # The probe sees every process's openat, and the buffer is still full: events other
        # processes cause between the two reads are dropped too, so the alert's count lies
        # between the counters read just before and just after it.
        after = source.kernel_counters()
        assert alert is not None
        assert alert["rule"] == DROP_RULE
        n_drops = int(alert["output_fields"]["n_drops"])
        assert before.total_dropped <= n_drops <= after.total_dropped
        # Nothing is lost silently: each event the kernel tried to send was read or counted.
        # (Other processes keep opening files: drain until a quiet moment.)
        for _ in range(50):
            while source.poll(0):
                pass
            stats = source.stats()
            if stats.delivered + stats.kernel.total_dropped == stats.kernel.total_counted:
                break
        assert stats.delivered + stats.kernel.total_dropped == stats.kernel.total_counted
        assert source.check_drops() is None  # no new drops since the last check


OPENAT2_READ = """
import ctypes, os, struct
how = ctypes.create_string_buffer(struct.pack("<QQQ", os.O_RDONLY, 0, 0), 24)
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.syscall(437, -100, b"/etc/shadow", how, 24)
assert fd >= 0, os.strerror(ctypes.get_errno())
"""


def test_openat2_read_of_shadow(detector: Detector, workdir: Path) -> None:
    reader = _copy_binary(sys.executable, workdir / "o2peek")
    subprocess.run([str(reader), "-c", OPENAT2_READ], check=True)
    alert = detector.wait_for(_rule("Read sensitive file untrusted", "proc.name", "o2peek"))
    assert alert is not None
    assert alert["fields"]["fd.name"] == "/etc/shadow"


def test_long_execve_argv_is_bounded_and_flagged(detector: Detector, workdir: Path) -> None:
    from bpf.capture import ARGV_MAX_N

    before = detector.source.stats().truncated_execs
    marker = _copy_binary("true", workdir / "manyargs")
    args = [f"argument-{i:04d}" for i in range(ARGV_MAX_N + 20)]
    subprocess.run([str(marker), *args], check=True)
    detector.settle()
    assert detector.source.stats().truncated_execs > before


def test_filtered_capture_keeps_the_types_asked_for_and_the_state_set(
    workdir: Path, run_cli: Callable[..., Any], detector: Detector
) -> None:
    from bpf.syscalls import STATE_SYSCALLS
    from engine.sources.syscall.replay import open_replay

    capture = workdir / "ptrace.fncap"
    results: list[Any] = []
    recorder = threading.Thread(
        target=lambda: results.append(
            run_cli("capture", "-w", str(capture), "--duration", "2",
                    "--filter", "evt.type=ptrace", "-o", "json")
        )
    )  # fmt: skip
    recorder.start()
    deadline = time.monotonic() + 60
    while not list(workdir.glob(".ptrace.fncap.partial-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    subprocess.run([sys.executable, "-c", PTRACE_ATTACH], check=True)
    recorder.join()
    result = results[0]
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary["syscalls"]) == STATE_SYSCALLS | {"ptrace"}
    with open_replay(capture) as replay:
        types = {event.type for event in replay.events()}
        threads = replay.tracker.threads
    assert "ptrace" in types
    assert types <= STATE_SYSCALLS | {"ptrace", "procexit"}
    assert len(threads) > 1  # the /proc snapshot
