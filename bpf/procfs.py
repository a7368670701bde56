"""Process state read from /proc: the tracker's starting tables (every live thread, with exe,
cmdline, env, cwd, ids, parent, cgroups and fds) and the per-process facts the probe does not
read in the kernel (cwd, cgroups, exe path, memfd origin) at exec time.

Processes come and go while we read: anything that vanished is skipped, never an error.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
from pathlib import Path

from engine.sources.syscall.state import (
    FD_DIRECTORY,
    FD_EVENT,
    FD_EVENTPOLL,
    FD_FILE,
    FD_INOTIFY,
    FD_IPV4,
    FD_IPV6,
    FD_MEMFD,
    FD_OTHER,
    FD_PIPE,
    FD_SIGNALFD,
    FD_TIMERFD,
    FD_UNIX,
    FdInfo,
    FdTable,
    FsState,
    GroupInfo,
    ThreadInfo,
    UserInfo,
)

log = logging.getLogger(__name__)
PROC = Path("/proc")
_ANON_TYPES = {
    "[eventpoll]": FD_EVENTPOLL,
    "[eventfd]": FD_EVENT,
    "[signalfd]": FD_SIGNALFD,
    "[timerfd]": FD_TIMERFD,
    "inotify": FD_INOTIFY,
}


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _readlink(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def split_nul(raw: bytes | None) -> tuple[str, ...]:
    if not raw:
        return ()
    return tuple(p.decode("utf-8", "surrogateescape") for p in raw.rstrip(b"\0").split(b"\0"))


def cgroups(pid: int) -> tuple[str, ...]:
    """Falco's cgroups strings ("subsys=/path"); cgroup v2's single line as "cgroup=/path"."""
    raw = _read(PROC / str(pid) / "cgroup")
    entries = []
    for line in (raw or b"").decode(errors="replace").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            entries.append(f"{parts[1] or 'cgroup'}={parts[2]}")
    return tuple(entries)


def exe_path(pid: int) -> str | None:
    path = _readlink(PROC / str(pid) / "exe")
    return path[: -len(" (deleted)")] if path and path.endswith(" (deleted)") else path


def cwd(pid: int) -> str | None:
    return _readlink(PROC / str(pid) / "cwd")


def exec_facts(pid: int) -> dict[str, int]:
    """execve exit parameters only /proc knows here: parent, login uid, capabilities."""
    status = _status(PROC / str(pid))
    if not status:
        return {}
    loginuid = (_read(PROC / str(pid) / "loginuid") or b"").strip()
    facts = {
        "ptid": int(status.get("PPid", "0") or 0),
        "vtid": pid,
        "vpid": pid,
        "cap_inheritable": int(status.get("CapInh", "0"), 16),
        "cap_permitted": int(status.get("CapPrm", "0"), 16),
        "cap_effective": int(status.get("CapEff", "0"), 16),
    }
    if loginuid.isdigit():
        facts["loginuid"] = int(loginuid)
    return facts


def _status(tid_dir: Path) -> dict[str, str]:
    raw = _read(tid_dir / "status")
    fields: dict[str, str] = {}
    for line in (raw or b"").decode(errors="replace").splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _socket_families() -> dict[int, str]:
    """Socket inode -> fd type, from the kernel's socket tables."""
    families: dict[int, str] = {}
    for name, kind in (("tcp", FD_IPV4), ("udp", FD_IPV4), ("tcp6", FD_IPV6), ("udp6", FD_IPV6)):
        raw = _read(PROC / "net" / name) or b""
        for line in raw.decode(errors="replace").splitlines()[1:]:
            cols = line.split()
            if len(cols) > 9 and cols[9].isdigit():
                families[int(cols[9])] = kind
    raw = _read(PROC / "net" / "unix") or b""
    for line in raw.decode(errors="replace").splitlines()[1:]:
        cols = line.split()
        if len(cols) > 6 and cols[6].isdigit():
            families[int(cols[6])] = FD_UNIX
    return families


def _fd_info(num: int, target: str, sockets: dict[int, str]) -> FdInfo:
    if target.startswith("/memfd:"):
        return FdInfo(num=num, type=FD_MEMFD, name=target)
    if target.startswith("/"):
        kind = FD_DIRECTORY if os.path.isdir(target) else FD_FILE
        return FdInfo(num=num, type=kind, name=target, nameraw=target)
    if target.startswith("socket:["):
        inode = int(target[8:-1]) if target[8:-1].isdigit() else 0
        return FdInfo(num=num, type=sockets.get(inode, FD_OTHER), ino=inode)
    if target.startswith("pipe:"):
        return FdInfo(num=num, type=FD_PIPE, name=target)
    if target.startswith("anon_inode:"):
        return FdInfo(num=num, type=_ANON_TYPES.get(target[11:], FD_OTHER), name=target)
    return FdInfo(num=num, type=FD_OTHER, name=target)


def _fds(pid: int, sockets: dict[int, str]) -> FdTable:
    table = FdTable()
    fd_dir = PROC / str(pid) / "fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return table
    for name in names:
        target = _readlink(fd_dir / name)
        if target is not None and name.isdigit():
            table[int(name)] = _fd_info(int(name), target, sockets)
    return table


def _ids(value: str) -> tuple[int | None, int | None]:
    parts = value.split()
    return (int(parts[0]), int(parts[1])) if len(parts) > 1 else (None, None)


def _thread(pid: int, tid: int, main: ThreadInfo | None, sockets: dict[int, str]) -> ThreadInfo:
    tid_dir = PROC / str(pid) / "task" / str(tid)
    status = _status(tid_dir)
    uid, euid = _ids(status.get("Uid", ""))
    gid, egid = _ids(status.get("Gid", ""))
    if main is not None:
        # Threads share the process's image, fd table and (normally) cwd.
        fs, fds, args, env, exe, exepath, groups = (
            main.fs, main.fds, main.args, main.env, main.exe, main.exepath, main.cgroups,
        )  # fmt: skip
    else:
        cmdline = split_nul(_read(tid_dir / "cmdline"))
        args, exe = cmdline[1:], cmdline[0] if cmdline else None
        env = split_nul(_read(tid_dir / "environ"))
        exepath = exe_path(pid)
        fs, fds, groups = FsState(cwd(pid)), _fds(pid, sockets), cgroups(pid)
    loginuid = (_read(tid_dir / "loginuid") or b"").strip()
    exepath = exepath or exe
    return ThreadInfo(
        tid=tid,
        pid=pid,
        ptid=int(status.get("PPid", "0") or 0),
        comm=status.get("Name"),
        exe=exe,
        exepath=exepath,
        args=args,
        env=env,
        uid=uid,
        gid=gid,
        euid=euid,
        egid=egid,
        loginuid=int(loginuid) if loginuid.isdigit() else None,
        cgroups=groups,
        exe_from_memfd=bool(exepath and exepath.startswith("/memfd:")),
        cap_permitted=int(status.get("CapPrm", "0"), 16),
        cap_effective=int(status.get("CapEff", "0"), 16),
        cap_inheritable=int(status.get("CapInh", "0"), 16),
        fs=fs,
        fds=fds,
        complete=True,
    )


def live_threads(skip_pid: int | None = None) -> list[ThreadInfo]:
    """Every thread alive now (except those of skip_pid: falconet does not watch itself)."""
    sockets = _socket_families()
    threads: list[ThreadInfo] = []
    for entry in os.listdir(PROC):
        if not entry.isdigit() or int(entry) == skip_pid:
            continue
        pid = int(entry)
        try:
            tids = sorted(int(t) for t in os.listdir(PROC / entry / "task"))
        except OSError:
            continue
        main = None
        for tid in [pid] + [t for t in tids if t != pid]:
            thread = _thread(pid, tid, main, sockets)
            if tid == pid:
                main = thread
            threads.append(thread)
    return threads


def users() -> list[UserInfo]:
    return [UserInfo(u.pw_uid, u.pw_gid, u.pw_name, u.pw_dir, u.pw_shell) for u in pwd.getpwall()]


def groups() -> list[GroupInfo]:
    return [GroupInfo(g.gr_gid, g.gr_name) for g in grp.getgrall()]
