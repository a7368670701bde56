"""How each state-changing event moves the tracker's tables (libsinsp's parsers.cpp, in small).

Each handler takes (event, thread) after event.thread is bound; it binds event.fd when the event
has one. Enter events only matter where an exit lacks what its enter carried (old captures): the
readers merge enter parameters into the exit before the tracker sees it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.sources.syscall.state import (
    AT_FDCWD,
    CLONE_FILES,
    CLONE_FS,
    CLONE_PARENT,
    CLONE_THREAD,
    FD_BPF,
    FD_DIRECTORY,
    FD_EVENT,
    FD_EVENTPOLL,
    FD_FILE,
    FD_INOTIFY,
    FD_IO_URING,
    FD_MEMFD,
    FD_PIDFD,
    FD_PIPE,
    FD_SIGNALFD,
    FD_TIMERFD,
    FD_USERFAULTFD,
    O_CLOEXEC,
    O_DIRECTORY,
    PPM_EXE_FROM_MEMFD,
    PPM_EXE_LOWER_LAYER,
    PPM_EXE_UPPER_LAYER,
    PPM_EXE_WRITABLE,
    FdInfo,
    FdTable,
    FsState,
    ThreadInfo,
    apply_sockaddr,
    apply_tuple,
    container_id_from_cgroups,
    dirfd_base_for,
    l4proto,
    resolve_path,
    socket_fd_type,
)

if TYPE_CHECKING:
    from engine.sources.syscall.events import SyscallEvent
    from engine.sources.syscall.state import StateTracker

Handler = Callable[["SyscallEvent", ThreadInfo | None], None]


def split_args(raw: Any) -> tuple[str, ...]:
    """execve's args/env parameters: NUL-separated byte buffers."""
    if isinstance(raw, bytes | bytearray):
        if not raw:
            return ()
        parts = bytes(raw).rstrip(b"\0").split(b"\0")
        return tuple(p.decode("utf-8", "surrogateescape") for p in parts)
    if isinstance(raw, tuple):
        return raw
    return ()


def handlers(tracker: StateTracker) -> tuple[dict[str, Handler], frozenset[str]]:
    """The handler of each event the tracker looks at, and the names of those that change state
    (the others only bind the event's fd: they matter only when a rule needs them)."""

    def fd_from_param(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if thread is None:
            return
        fd = event.params.get("fd")
        if isinstance(fd, int) and fd >= 0:
            event.fd = thread.fds.get(fd)

    def on_clone(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if event.info.is_enter:
            return
        res = event.res
        if res is None or res < 0:
            return
        params = event.params
        flags = params.get("flags") or 0
        if res == 0:
            # The child's own return: params describe the child.
            child_tid = params.get("tid", event.tid)
            if child_tid in tracker.threads and tracker.threads[child_tid].complete:
                return
            parent = tracker.threads.get(params.get("ptid", 0))
        else:
            child_tid = res
            existing = tracker.threads.get(child_tid)
            if existing is not None and existing.complete:
                return
            parent = thread
        _create_child(tracker, event, parent, child_tid, flags, from_child=res == 0)

    def on_execve(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if event.info.is_enter or thread is None:
            return
        res = event.res
        if res is None or res < 0:
            return
        _apply_exec(tracker, event, thread)

    def on_open(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if event.info.is_enter or thread is None:
            return
        fd = event.res
        params = event.params
        raw = params.get("name") or params.get("path") or ""
        if not isinstance(raw, str):
            name = ""
        elif raw[:1] == "/":
            name = resolve_path(None, raw)  # absolute: no directory to look up
        else:
            name = resolve_path(dirfd_base_for(thread, params.get("dirfd", AT_FDCWD)), raw)
        flags = params.get("flags") or 0
        if fd is None or fd < 0:
            # Failed opens still show their path in fd.name (libsinsp binds a temporary fdinfo).
            num = -1 if fd is None else fd
            event.fd = FdInfo(num, FD_FILE, name, raw, flags)
            return
        kind = FD_DIRECTORY if flags & O_DIRECTORY else FD_FILE
        # Positional (num, type, name, nameraw, flags, ino, dev): keyword arguments cost twice
        # as much, and this runs for every successful open.
        info = FdInfo(fd, kind, name, raw, flags, params.get("ino") or 0, params.get("dev") or 0)
        event.fd = tracker.add_fd(thread, info)

    def on_socket(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if event.info.is_enter or thread is None:
            return
        fd = event.res
        if fd is None or fd < 0:
            return
        params = event.params
        family = params.get("domain") or 0
        info = FdInfo(
            num=fd,
            type=socket_fd_type(family),
            family=family,
            l4proto=l4proto(params.get("type") or 0, params.get("proto") or 0),
        )
        event.fd = tracker.add_fd(thread, info)

    def on_connect(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if event.info.is_enter or thread is None:
            return
        fd_from_param(event, thread)
        fd = event.fd
        if fd is None:
            return
        res = event.res
        tuple_ = event.params.get("tuple")
        if tuple_ is not None and (tuple_.dest is not None or tuple_.path):
            apply_tuple(fd, tuple_, server_side=False)
        else:
            apply_sockaddr(fd, event.params.get("addr"))
        # EINPROGRESS (-115) is a non-blocking connect under way: libsinsp counts it connected.
        fd.connected = res is not None and (res >= 0 or res == -115)

    def on_accept(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if event.info.is_enter or thread is None:
            return
        fd = event.res
        if fd is None or fd < 0:
            return
        tuple_ = event.params.get("tuple")
        family = tuple_.family if tuple_ is not None else 0
        listener = thread.fds.get(event.params.get("fd", -1)) if "fd" in event.params else None
        info = FdInfo(
            num=fd,
            type=socket_fd_type(family),
            family=family,
            l4proto=listener.l4proto if listener is not None else "tcp",
            connected=True,
        )
        apply_tuple(info, tuple_, server_side=True)
        info.name_changed = False
        event.fd = tracker.add_fd(thread, info)

    def on_sendrecv(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        # The most frequent state event on a busy host: the fd lookup is inlined.
        if thread is None:
            return
        params = event.params
        fd = thread.fds.get(params.get("fd", -1))
        if fd is None:
            return
        event.fd = fd
        fd.name_changed = False
        tuple_ = params.get("tuple")
        if tuple_ is None and fd.connected:
            return
        if tuple_ is not None and fd.l4proto == "udp":
            # An unconnected UDP socket: each datagram may change the peer (fd.name_changed).
            apply_tuple(fd, tuple_, server_side=event.type.startswith("recv"))
        elif tuple_ is None and event.type in ("sendto", "sendmsg") and not fd.connected:
            addr = event.params.get("addr") or event.params.get("data")
            if hasattr(addr, "family"):
                apply_sockaddr(fd, addr)

    def on_close(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if thread is None:
            return
        params = event.params
        num = params.get("fd", -1)
        if params.get("res") == 0 and not event.info.is_enter:
            event.fd = thread.fds.pop(num, None)  # closed: still bound for this event's fields
        else:
            event.fd = thread.fds.get(num)

    def on_dup(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if event.info.is_enter or thread is None:
            return
        new = event.res
        params = event.params
        old = params.get("oldfd", params.get("fd"))
        source = thread.fds.get(old) if isinstance(old, int) else None
        event.fd = source
        if new is None or new < 0 or source is None:
            return
        event.fd = tracker.add_fd(thread, source.copy(new))

    def on_fcntl(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        fd_from_param(event, thread)
        if event.info.is_enter or thread is None or event.fd is None:
            return
        cmd = event.params.get("cmd")
        res = event.res
        # PPM_FCNTL_F_DUPFD = 1, PPM_FCNTL_F_DUPFD_CLOEXEC = 13
        if cmd in (1, 13) and res is not None and res >= 0:
            tracker.add_fd(thread, event.fd.copy(res))

    def on_pipe(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if event.info.is_enter or thread is None:
            return
        params = event.params
        if (event.res or 0) < 0:
            return
        ino = params.get("ino") or 0
        for key in ("fd1", "fd2"):
            num = params.get(key)
            if isinstance(num, int) and num >= 0:
                tracker.add_fd(thread, FdInfo(num=num, type=FD_PIPE, name=f"pipe:[{ino}]", ino=ino))
        first = params.get("fd1")
        event.fd = thread.fds.get(first) if isinstance(first, int) else None

    def simple_fd(kind: str, label: str) -> Handler:
        def handler(event: SyscallEvent, thread: ThreadInfo | None) -> None:
            if event.info.is_enter or thread is None:
                return
            fd = event.res
            if fd is None or fd < 0:
                return
            name = label
            if kind == FD_MEMFD:
                name = f"memfd:{event.params.get('name') or ''}"
            flags = event.params.get("flags") or 0
            event.fd = tracker.add_fd(thread, FdInfo(num=fd, type=kind, name=name, flags=flags))

        return handler

    def on_chdir(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if event.info.is_enter or thread is None or (event.res or 0) < 0:
            return
        if event.type == "fchdir":
            fd_from_param(event, thread)
            if event.fd is not None:
                thread.fs.cwd = event.fd.name
            return
        path = event.params.get("path")
        if isinstance(path, str):
            thread.fs.cwd = resolve_path(thread.cwd, path)

    def on_setuid(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if event.info.is_enter or thread is None or (event.res or 0) != 0:
            return
        params = event.params
        for key, attr in (("uid", "uid"), ("euid", "uid"), ("gid", "gid"), ("egid", "gid")):
            value = params.get(key)
            if isinstance(value, int) and value != 0xFFFFFFFF:
                setattr(thread, attr, value)

    def on_setsid(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if event.info.is_enter or thread is None:
            return
        res = event.res
        if res is not None and res >= 0:
            thread.sid = res
            thread.vpgid = res

    def on_setpgid(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if event.info.is_enter or thread is None or (event.res or 0) != 0:
            return
        pid = event.params.get("pid") or thread.tid
        pgid = event.params.get("pgid") or pid
        target = tracker.threads.get(pid)
        if target is not None:
            target.vpgid = pgid

    def on_procexit(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if thread is None:
            return
        thread.exited = True
        thread.last_event = -1  # first to go if the table fills before its removal
        # Removed when the next event arrives, so this event's fields still resolve.
        tracker._pending_removal = event.tid

    def on_fd_event(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        fd_from_param(event, thread)

    table: dict[str, Handler] = {}
    for name in ("clone", "clone3", "fork", "vfork"):
        table[name] = on_clone
    for name in ("execve", "execveat"):
        table[name] = on_execve
    for name in ("open", "openat", "openat2", "creat", "open_by_handle_at"):
        table[name] = on_open
    table["socket"] = on_socket
    table["connect"] = on_connect
    table["accept"] = on_accept
    table["accept4"] = on_accept
    for name in ("sendto", "sendmsg", "recvfrom", "recvmsg", "sendmmsg", "recvmmsg"):
        table[name] = on_sendrecv
    table["close"] = on_close
    for name in ("dup", "dup2", "dup3"):
        table[name] = on_dup
    table["fcntl"] = on_fcntl
    table["pipe"] = on_pipe
    table["pipe2"] = on_pipe
    table["eventfd"] = simple_fd(FD_EVENT, "")
    table["eventfd2"] = simple_fd(FD_EVENT, "")
    table["signalfd"] = simple_fd(FD_SIGNALFD, "")
    table["signalfd4"] = simple_fd(FD_SIGNALFD, "")
    table["timerfd_create"] = simple_fd(FD_TIMERFD, "")
    table["inotify_init"] = simple_fd(FD_INOTIFY, "")
    table["inotify_init1"] = simple_fd(FD_INOTIFY, "")
    table["epoll_create"] = simple_fd(FD_EVENTPOLL, "")
    table["epoll_create1"] = simple_fd(FD_EVENTPOLL, "")
    table["userfaultfd"] = simple_fd(FD_USERFAULTFD, "")
    table["memfd_create"] = simple_fd(FD_MEMFD, "")
    table["pidfd_open"] = simple_fd(FD_PIDFD, "")
    table["io_uring_setup"] = simple_fd(FD_IO_URING, "")
    table["bpf"] = _bpf_handler(tracker, FD_BPF)
    table["chdir"] = on_chdir
    table["fchdir"] = on_chdir
    for name in ("setuid", "setresuid", "setreuid", "setgid", "setresgid", "setregid"):
        table[name] = on_setuid
    table["setsid"] = on_setsid
    table["setpgid"] = on_setpgid
    table["procexit"] = on_procexit
    state_changing = frozenset(table)
    for name in (
        "read",
        "write",
        "readv",
        "writev",
        "pread",
        "pwrite",
        "preadv",
        "pwritev",
        "bind",
        "listen",
        "shutdown",
        "getsockopt",
        "setsockopt",
        "ioctl",
        "fstat",
        "lseek",
        "llseek",
        "sendfile",
        "splice",
        "fsync",
        "fdatasync",
        "flock",
        "getdents",
        "getdents64",
        "mmap",
        "mmap2",
        "fchmod",
        "fchown",
        "setns",
        "ftruncate",
        "getsockname",
    ):
        table[name] = on_fd_event
    return table, state_changing


def _bpf_handler(tracker: StateTracker, kind: str) -> Handler:
    def handler(event: SyscallEvent, thread: ThreadInfo | None) -> None:
        if event.info.is_enter or thread is None:
            return
        fd = event.res
        if fd is not None and fd >= 0 and event.params.get("cmd") in (5, None):
            event.fd = tracker.add_fd(thread, FdInfo(num=fd, type=kind, name=""))

    return handler


def _create_child(
    tracker: StateTracker,
    event: SyscallEvent,
    parent: ThreadInfo | None,
    child_tid: int,
    flags: int,
    from_child: bool,
) -> None:
    params = event.params
    is_thread = bool(flags & CLONE_THREAD)
    if parent is None:
        parent = ThreadInfo(tid=params.get("ptid", 0), pid=params.get("ptid", 0))
    if from_child:
        pid = params.get("pid", child_tid)
        ptid = params.get("ptid", parent.tid)
    else:
        pid = parent.pid if is_thread else child_tid
        # CLONE_PARENT/CLONE_THREAD: the new task's parent is the caller's parent.
        ptid = parent.ptid if flags & (CLONE_PARENT | CLONE_THREAD) else parent.pid
    source = params if from_child else {}
    child = ThreadInfo(
        tid=child_tid,
        pid=pid,
        ptid=ptid,
        sid=parent.sid,
        vtid=params.get("vtid") if from_child else None,
        vpid=params.get("vpid") if from_child else (parent.vpid if is_thread else None),
        vpgid=parent.vpgid,
        pgid=parent.pgid,
        comm=source.get("comm") or parent.comm,
        exe=source.get("exe") or parent.exe,
        exepath=parent.exepath,
        args=split_args(source["args"]) if "args" in source else parent.args,
        env=parent.env,
        uid=params.get("uid", parent.uid) if from_child else parent.uid,
        gid=params.get("gid", parent.gid) if from_child else parent.gid,
        loginuid=parent.loginuid,
        tty=parent.tty,
        clone_ts=event.ts,
        pidns_init_start_ts=params.get("pidns_init_start_ts", parent.pidns_init_start_ts),
        cgroups=split_args(params["cgroups"]) if "cgroups" in params else parent.cgroups,
        exe_ino=parent.exe_ino,
        exe_ino_ctime=parent.exe_ino_ctime,
        exe_ino_mtime=parent.exe_ino_mtime,
        exe_writable=parent.exe_writable,
        exe_upper_layer=parent.exe_upper_layer,
        exe_lower_layer=parent.exe_lower_layer,
        exe_from_memfd=parent.exe_from_memfd,
        cap_permitted=parent.cap_permitted,
        cap_effective=parent.cap_effective,
        cap_inheritable=parent.cap_inheritable,
        fdlimit=parent.fdlimit,
        fs=parent.fs if flags & CLONE_FS else FsState(source.get("cwd") or parent.cwd),
        fds=parent.fds if flags & CLONE_FILES else FdTable(parent.fds),
        complete=parent.complete or from_child,
    )
    if child.vpid is None and child.vtid is None:
        child.vtid, child.vpid = child_tid, pid
    if from_child and "cwd" in params and not flags & CLONE_FS:
        child.fs = FsState(params["cwd"])
    child.container_id = container_id_from_cgroups(child.cgroups)
    tracker.add_thread(child)


def _inherit_from_parent(tracker: StateTracker, thread: ThreadInfo, ptid: Any) -> None:
    """A thread first seen at its execve (its fork predates the capture): give it what the fork
    would have copied from its parent."""
    parent = tracker.threads.get(ptid) if isinstance(ptid, int) else None
    if parent is None:
        return
    for attr in (
        "uid",
        "gid",
        "euid",
        "egid",
        "loginuid",
        "tty",
        "sid",
        "vpgid",
        "pgid",
        "cgroups",
        "container_id",
        "cap_permitted",
        "cap_effective",
        "cap_inheritable",
    ):
        if getattr(thread, attr) in (None, (), 0) or attr == "container_id":
            setattr(thread, attr, getattr(parent, attr))
    if thread.cwd is None:
        thread.fs.cwd = parent.cwd
    if not thread.fds:
        thread.fds.update(parent.fds)


def _apply_exec(tracker: StateTracker, event: SyscallEvent, thread: ThreadInfo) -> None:
    params = event.params
    if not thread.complete:
        _inherit_from_parent(tracker, thread, params.get("ptid"))
    thread.complete = True
    # The kernel closes O_CLOEXEC descriptors on a successful exec; so does libsinsp's state.
    fds = thread.fds
    for num in [n for n, fd in fds.items() if fd.flags & O_CLOEXEC]:
        del fds[num]
    if "comm" in params:
        thread.comm = params["comm"]
    exe = params.get("exe")
    if isinstance(exe, str):
        thread.exe = exe
    if "args" in params:
        thread.args = split_args(params["args"])
    if "env" in params:
        thread.env = split_args(params["env"])
    exepath = params.get("trusted_exepath") or params.get("filename") or params.get("pathname")
    if isinstance(exepath, str) and exepath:
        thread.exepath = resolve_path(thread.cwd, exepath)
    elif isinstance(exe, str):
        thread.exepath = exe if exe.startswith("/") else thread.exepath or exe
    if thread.comm is None and thread.exepath:
        thread.comm = thread.exepath.rsplit("/", 1)[-1][:15]
    for key, attr in (
        ("tid", None),
        ("pid", "pid"),
        ("ptid", "ptid"),
        ("vtid", "vtid"),
        ("vpid", "vpid"),
        ("tty", "tty"),
        ("loginuid", "loginuid"),
        ("uid", "uid"),
        ("gid", "gid"),
        ("euid", "uid"),
        ("exe_ino", "exe_ino"),
        ("exe_ino_ctime", "exe_ino_ctime"),
        ("exe_ino_mtime", "exe_ino_mtime"),
        ("pgid", "vpgid"),
        ("cap_inheritable", "cap_inheritable"),
        ("cap_permitted", "cap_permitted"),
        ("cap_effective", "cap_effective"),
        ("fdlimit", "fdlimit"),
        ("pidns_init_start_ts", "pidns_init_start_ts"),
    ):
        value = params.get(key)
        if attr is not None and isinstance(value, int):
            setattr(thread, attr, value)
    cwd = params.get("cwd")
    if isinstance(cwd, str) and cwd:
        thread.fs.cwd = cwd
    if "cgroups" in params:
        thread.cgroups = split_args(params["cgroups"])
        thread.container_id = container_id_from_cgroups(thread.cgroups)
    flags = params.get("flags")
    if isinstance(flags, int):
        thread.exe_writable = bool(flags & PPM_EXE_WRITABLE)
        thread.exe_upper_layer = bool(flags & PPM_EXE_UPPER_LAYER)
        thread.exe_lower_layer = bool(flags & PPM_EXE_LOWER_LAYER)
        thread.exe_from_memfd = bool(flags & PPM_EXE_FROM_MEMFD)
    if thread.clone_ts is None:
        thread.clone_ts = event.ts
