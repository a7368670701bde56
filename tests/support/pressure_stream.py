"""A syscall capture that fills the thread table: `processes` processes forked by one shell
that never exit (their procexit is never seen), then one more child of that shell which runs
`cat /etc/shadow`. Used by the thread-table pressure test and bench/bench_thread_pressure.py."""

from __future__ import annotations

from pathlib import Path

from engine.sources.syscall.capture import CaptureWriter
from engine.sources.syscall.events import new_event
from engine.sources.syscall.state import ThreadInfo, UserInfo

START_NS = 1_764_000_000_000_000_000
SHELL = 100
FIRST_CHILD = 1000
O_RDONLY = 1


def write_pressure_stream(path: Path, processes: int) -> int:
    """Write the capture; returns the tid of the process that reads /etc/shadow."""
    init = ThreadInfo(tid=1, pid=1, ptid=0, comm="systemd", exe="/sbin/init", complete=True)
    init.exepath = "/usr/lib/systemd/systemd"
    init.fs.cwd = "/"
    shell = ThreadInfo(
        tid=SHELL, pid=SHELL, ptid=1, comm="bash", exe="/bin/bash", uid=0, gid=0, complete=True
    )
    shell.exepath = "/usr/bin/bash"
    shell.fs.cwd = "/root"
    reader = FIRST_CHILD + processes
    num = 0

    def event(thread: int, kind: str, /, **params: object) -> object:
        nonlocal num
        num += 1
        return new_event(num, START_NS + num * 1000, thread, kind, params)

    with CaptureWriter(path) as writer:
        writer.write_snapshot([init, shell], users=[UserInfo(0, 0, "root", "/root", "/bin/bash")])
        # Every parameter up to the last one given is encoded (the capture format is
        # positional), as bench/gen_syscall_stream.py writes them.
        for child in range(FIRST_CHILD, reader + 1):
            writer.write_event(
                event(SHELL, "clone", res=child, exe="/bin/bash", args=b"", tid=SHELL, pid=SHELL,
                      ptid=1, cwd="/root", fdlimit=1024, pgft_maj=0, pgft_min=0, vm_size=1000,
                      vm_rss=100, vm_swap=0, comm="bash", cgroups=b"", flags=0, uid=0, gid=0,
                      vtid=child, vpid=child)
            )  # fmt: skip
        writer.write_event(
            event(reader, "execve", res=0, exe="/usr/bin/cat", args=b"/etc/shadow\0", tid=reader,
                  pid=reader, ptid=SHELL, cwd="/root", fdlimit=1024, pgft_maj=0, pgft_min=0,
                  vm_size=1000, vm_rss=100, vm_swap=0, comm="cat", cgroups=b"",
                  env=b"PATH=/usr/bin:/bin\0", tty=0, vpgid=reader, loginuid=0xFFFFFFFF, flags=0,
                  cap_inheritable=0, cap_permitted=0, cap_effective=0, exe_ino=4242,
                  exe_ino_ctime=START_NS, exe_ino_mtime=START_NS, uid=0,
                  trusted_exepath="/usr/bin/cat", pgid=reader, gid=0, filename="/usr/bin/cat")
        )  # fmt: skip
        writer.write_event(
            event(reader, "openat", fd=3, dirfd=-100, name="/etc/shadow", flags=O_RDONLY, mode=0,
                  dev=2049, ino=77)
        )  # fmt: skip
    return reader
