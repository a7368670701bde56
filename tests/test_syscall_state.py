"""State tracker on synthetic event sequences: fork, exec, dup, close, chdir, exit, ancestry."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from engine.fields import catalog
from engine.sources.syscall.events import SyscallEvent, new_event
from engine.sources.syscall.params import AF_INET, SockTuple
from engine.sources.syscall.state import StateTracker, ThreadInfo, UserInfo

O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_DIRECTORY = 1, 2, 4, 256, 1024
CLONE_THREAD, CLONE_FILES, CLONE_FS = 1 << 13, 1, 2


class Sequence:
    """Feeds synthetic events through a tracker and extracts fields from the last one."""

    def __init__(self) -> None:
        self.tracker = StateTracker()
        self.num = 0
        self.cat = catalog("syscall")
        assert self.cat is not None

    def emit(self, tid: int, evtype: str, /, **params: Any) -> SyscallEvent:
        self.num += 1
        ts = 1_700_000_000_000_000_000 + self.num * 1000
        event = new_event(self.num, ts, tid, evtype, params)
        self.tracker.process(event)
        return event

    def field(self, event: SyscallEvent, name: str, arg: str | None = None) -> Any:
        _, extract = self.cat.extractor(name, arg)
        return extract(event)


def _seed(seq: Sequence) -> None:
    init = ThreadInfo(tid=1, pid=1, ptid=0, comm="systemd", exe="/sbin/init", complete=True)
    init.exepath = "/usr/lib/systemd/systemd"
    init.fs.cwd = "/"
    seq.tracker.add_thread(init)
    seq.tracker.users[0] = UserInfo(0, 0, "root", "/root", "/bin/bash")


def _spawn(seq: Sequence, parent: int, child: int, comm: str, exe: str, args: bytes) -> None:
    seq.emit(parent, "clone", res=child, flags=0)
    seq.emit(child, "execve", res=0, exe=exe, args=args, comm=comm, cwd="/home/u", uid=0)


def test_fork_exec_gives_process_fields_and_ancestry() -> None:
    seq = Sequence()
    _seed(seq)
    _spawn(seq, 1, 100, "bash", "/bin/bash", b"-i\0")
    _spawn(seq, 100, 200, "cat", "/bin/cat", b"/etc/shadow\0")
    ev = seq.emit(200, "openat", fd=3, dirfd=-100, name="/etc/shadow", flags=O_RDONLY, mode=0)
    assert seq.field(ev, "proc.name") == "cat"
    assert seq.field(ev, "proc.cmdline") == "cat /etc/shadow"
    assert seq.field(ev, "proc.args") == "/etc/shadow"
    assert seq.field(ev, "proc.pname") == "bash"
    assert seq.field(ev, "proc.pcmdline") == "bash -i"
    assert seq.field(ev, "proc.aname", "2") == "systemd"
    assert seq.field(ev, "proc.aname") == ("bash", "systemd")
    assert seq.field(ev, "proc.ppid") == 100
    assert seq.field(ev, "user.name") == "root"
    assert seq.field(ev, "fd.name") == "/etc/shadow"
    assert seq.field(ev, "evt.is_open_read") is True
    assert seq.field(ev, "evt.is_open_write") is False
    assert seq.field(ev, "fd.typechar") == "f"
    assert seq.field(ev, "fd.directory") == "/etc"
    assert seq.field(ev, "fd.filename") == "shadow"
    assert seq.field(ev, "evt.arg.flags") == "O_RDONLY"
    assert seq.field(ev, "container.id") == "host"


def test_relative_open_resolves_against_cwd_after_chdir() -> None:
    seq = Sequence()
    _seed(seq)
    _spawn(seq, 1, 100, "sh", "/bin/sh", b"")
    seq.emit(100, "chdir", res=0, path="/var/log")
    seq.emit(100, "chdir", res=0, path="../lib/./dpkg")
    ev = seq.emit(100, "openat", fd=4, dirfd=-100, name="status", flags=O_WRONLY | O_TRUNC, mode=0)
    assert seq.field(ev, "proc.cwd") == "/var/lib/dpkg"
    assert seq.field(ev, "fd.name") == "/var/lib/dpkg/status"
    assert seq.field(ev, "fd.nameraw") == "status"
    assert seq.field(ev, "evt.is_open_write") is True
    assert "O_TRUNC" in seq.field(ev, "evt.arg.flags")


def test_openat_relative_to_directory_fd() -> None:
    seq = Sequence()
    _seed(seq)
    _spawn(seq, 1, 100, "find", "/usr/bin/find", b"")
    seq.emit(100, "openat", fd=5, dirfd=-100, name="/etc", flags=O_RDONLY | O_DIRECTORY, mode=0)
    ev = seq.emit(100, "openat", fd=6, dirfd=5, name="passwd", flags=O_RDONLY, mode=0)
    assert seq.field(ev, "fd.name") == "/etc/passwd"


def test_dup_close_and_fd_reuse() -> None:
    seq = Sequence()
    _seed(seq)
    _spawn(seq, 1, 100, "nc", "/bin/nc", b"")
    seq.emit(100, "socket", fd=3, domain=AF_INET, type=1, proto=0)
    tup = SockTuple(
        AF_INET, ipaddress.ip_address("10.0.0.2"), 40000, ipaddress.ip_address("10.0.0.9"), 4444
    )
    seq.emit(100, "connect", res=0, tuple=tup, fd=3)
    ev = seq.emit(100, "dup2", res=0, oldfd=3, newfd=0)
    assert seq.field(ev, "fd.name") == "10.0.0.2:40000->10.0.0.9:4444"
    assert seq.tracker.threads[100].fds[0].sport == 4444
    assert seq.field(ev, "fd.typechar") == "4"
    assert seq.field(ev, "fd.l4proto") == "tcp"
    assert seq.field(ev, "fd.sip") == ipaddress.ip_address("10.0.0.9")
    assert seq.field(ev, "fd.rport") == 4444
    assert seq.field(ev, "fd.lport") == 40000
    ev = seq.emit(100, "close", res=0, fd=3)
    assert seq.field(ev, "fd.name") == "10.0.0.2:40000->10.0.0.9:4444"  # bound before removal
    assert 3 not in seq.tracker.threads[100].fds
    assert 0 in seq.tracker.threads[100].fds
    # fd 3 reused for a file: the new fd replaces the socket entirely.
    ev = seq.emit(
        100, "openat", fd=3, dirfd=-100, name="/tmp/x", flags=O_WRONLY | O_CREAT, mode=0o755
    )
    assert seq.field(ev, "fd.typechar") == "f"
    assert seq.field(ev, "fd.sip") is None
    assert seq.field(ev, "evt.is_open_exec") is True
    read = seq.emit(100, "read", res=1, data=b"x", fd=3)
    assert seq.field(read, "fd.name") == "/tmp/x"


def test_exit_evicts_and_children_are_reparented() -> None:
    seq = Sequence()
    _seed(seq)
    _spawn(seq, 1, 100, "bash", "/bin/bash", b"")
    _spawn(seq, 100, 200, "sleep", "/bin/sleep", b"60\0")
    ev = seq.emit(100, "procexit", status=0)
    assert seq.field(ev, "proc.name") == "bash"  # still resolvable for the exit event itself
    later = seq.emit(200, "nanosleep", res=0)
    assert 100 not in seq.tracker.threads
    assert seq.field(later, "proc.pname") == "systemd"
    assert seq.tracker.counters.threads_removed == 1


def test_threads_share_fds_and_cwd_and_report_the_process() -> None:
    seq = Sequence()
    _seed(seq)
    _spawn(seq, 1, 100, "java", "/usr/bin/java", b"")
    seq.emit(100, "clone", res=101, flags=CLONE_THREAD | CLONE_FILES | CLONE_FS)
    seq.emit(101, "openat", fd=7, dirfd=-100, name="/data/f", flags=O_RDONLY, mode=0)
    seq.emit(101, "chdir", res=0, path="/data")
    ev = seq.emit(100, "read", res=1, data=b"a", fd=7)
    assert seq.field(ev, "fd.name") == "/data/f"
    assert seq.field(ev, "proc.cwd") == "/data"
    thread_ev = seq.emit(101, "read", res=1, data=b"a", fd=7)
    assert seq.field(thread_ev, "proc.pid") == 100
    assert seq.field(thread_ev, "thread.tid") == 101
    assert seq.field(thread_ev, "proc.pname") == "systemd"
    assert seq.field(thread_ev, "thread.ismain") is False


def test_thread_table_cap_is_counted() -> None:
    # A full table evicts the least recently active threads (and counts them) rather than
    # refusing new ones: the newest process is always tracked.
    seq = Sequence()
    seq.tracker.max_threads = 3
    _seed(seq)
    evicted: list[tuple[str, int]] = []
    seq.tracker.on_eviction = lambda table, n: evicted.append((table, n))
    for child in (10, 11, 12, 13):
        seq.emit(1, "clone", res=child, flags=0)
    assert len(seq.tracker.threads) == 3
    assert 13 in seq.tracker.threads and 1 in seq.tracker.threads  # the newest and the active
    assert seq.tracker.counters.threads_evicted >= 2
    assert sum(n for table, n in evicted if table == "threads") == (
        seq.tracker.counters.threads_evicted
    )


def test_fd_table_cap_evicts_the_oldest_fd() -> None:
    seq = Sequence()
    seq.tracker.max_fds = 2
    _seed(seq)
    for fd in (3, 4, 5):
        seq.emit(1, "openat", fd=fd, dirfd=-100, name=f"/f{fd}", flags=O_RDONLY, mode=0)
    fds = seq.tracker.threads[1].fds
    assert sorted(fds) == [4, 5]
    assert seq.tracker.counters.fds_evicted == 1
    ev = seq.emit(1, "read", res=1, data=b"a", fd=5)
    assert seq.field(ev, "fd.name") == "/f5"


def test_container_id_from_cgroups() -> None:
    seq = Sequence()
    _seed(seq)
    cid = "3ad7b26ded6d8e7b23da7d48fe889434573036c27ae5a74837233de441c3601e"
    seq.emit(1, "clone", res=300, flags=0)
    ev = seq.emit(
        300,
        "execve",
        res=0,
        exe="sh",
        args=b"",
        comm="sh",
        cgroups=f"cpuset=/docker/{cid}\0".encode(),
    )
    assert seq.field(ev, "container.id") == "3ad7b26ded6d"
    assert seq.field(ev, "container.name") is None
    assert seq.field(ev, "thread.cgroup", "cpuset") == f"/docker/{cid}"


@pytest.mark.parametrize(("res", "text"), [(0, "SUCCESS"), (-2, "ENOENT"), (-13, "EACCES")])
def test_result_fields(res: int, text: str) -> None:
    seq = Sequence()
    _seed(seq)
    ev = seq.emit(1, "openat", fd=res, dirfd=-100, name="/nope", flags=O_RDONLY, mode=0)
    assert seq.field(ev, "evt.res") == text
    assert seq.field(ev, "evt.rawres") == res
    assert seq.field(ev, "evt.failed") is (res < 0)


def test_symlink_and_rename_paths() -> None:
    seq = Sequence()
    _seed(seq)
    _spawn(seq, 1, 100, "ln", "/bin/ln", b"")
    ev = seq.emit(100, "symlinkat", res=0, target="/etc/shadow", linkdirfd=-100, linkpath="s")
    assert seq.field(ev, "fs.path.target") == "/etc/shadow"
    assert seq.field(ev, "fs.path.source") == "/home/u/s"
    assert seq.field(ev, "evt.arg.linkpath") == "s"
    ev = seq.emit(
        100,
        "renameat2",
        res=0,
        olddirfd=-100,
        oldpath="a",
        newdirfd=-100,
        newpath="/tmp/b",
        flags=0,
    )
    assert seq.field(ev, "fs.path.source") == "/home/u/a"
    assert seq.field(ev, "fs.path.target") == "/tmp/b"


@pytest.mark.parametrize(
    ("evtype", "params", "field", "expected"),
    [
        ("fchmodat", {"res": 0, "dirfd": -100, "filename": "/x", "mode": 0o4755}, "evt.arg.mode",
         "S_ISUID"),
        ("ptrace", {"res": 0, "addr": b"", "data": b"", "request": 11, "pid": 5},
         "evt.arg.request", "PTRACE_ATTACH"),
        ("socket", {"fd": 3, "domain": 17, "type": 3, "proto": 0, "flags": 0}, "evt.arg.domain",
         "AF_PACKET"),
        ("bpf", {"fd": 3, "cmd": 5}, "evt.arg.cmd", "BPF_PROG_LOAD"),
        ("openat", {"fd": 3, "dirfd": -100, "name": "/x", "flags": O_CREAT | O_WRONLY | O_TRUNC,
                    "mode": 0o644}, "evt.arg.flags", "O_TRUNC"),
    ],
)  # fmt: skip
def test_arguments_render_with_the_names_rules_match(
    evtype: str, params: dict[str, Any], field: str, expected: str
) -> None:
    # Upstream rules test these with `contains` / `=` on the rendered names.
    seq = Sequence()
    _seed(seq)
    event = seq.emit(1, evtype, **params)
    rendered = seq.field(event, field)
    assert expected in rendered.split("|")
    assert f"{field.split('.')[-1]}=" in seq.field(event, "evt.args")


def test_exec_closes_close_on_exec_descriptors() -> None:
    seq = Sequence()
    _seed(seq)
    _spawn(seq, 1, 100, "sh", "/bin/sh", b"")
    o_cloexec = 1 << 12
    seq.emit(100, "openat", fd=5, dirfd=-100, name="/etc/keep", flags=O_RDONLY, mode=0)
    seq.emit(100, "openat", fd=6, dirfd=-100, name="/etc/drop", flags=O_RDONLY | o_cloexec, mode=0)
    seq.emit(100, "execve", res=0, exe="/bin/ls", args=b"", comm="ls", cwd="/", uid=0)
    assert sorted(seq.tracker.threads[100].fds) == [5]
