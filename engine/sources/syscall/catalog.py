"""The syscall source's field catalogue: libsinsp's evt/proc/thread/fd/fs.path/user/group fields
and the container plugin's container/k8s fields, with Falco's types, list-ness and argument modes.

Each extractor reads a SyscallEvent whose thread/fd the state tracker has bound. Values follow
engine.fields' conventions; None means "cannot be extracted" (rendered <NA>).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from engine.fields import Extractor, FieldCatalog, FieldSpec, with_value_check
from engine.sources.syscall import render
from engine.sources.syscall.events import SyscallEvent
from engine.sources.syscall.params import AF_INET, AF_INET6, AF_UNIX
from engine.sources.syscall.state import (
    FD_DIRECTORY,
    FD_FILE,
    FD_IPV4,
    FD_IPV6,
    FD_TYPE_NAMES,
    O_CREAT,
    O_F_CREATED,
    O_RDONLY,
    O_TMPFILE,
    O_WRONLY,
    ThreadInfo,
    dirfd_base_for,
    resolve_path,
)

Thread = ThreadInfo
_ONE_SECOND = 1_000_000_000
# Open-family events: evt.is_open_* apply to these.
OPEN_EVENTS = frozenset({"open", "openat", "openat2", "open_by_handle_at", "creat"})
# Path-taking syscalls and the parameters fs.path.* reads (libsinsp sinsp_filtercheck_fspath).
_FS_PATH_PARAMS: dict[str, tuple[str | None, str | None, str | None]] = {
    # event: (name param, source param, target param); dirfd params are resolved too.
    "mkdir": ("path", None, None),
    "mkdirat": ("path", None, None),
    "rmdir": ("path", None, None),
    "unlink": ("path", None, None),
    "unlinkat": ("name", None, None),
    "chmod": ("filename", None, None),
    "fchmodat": ("filename", None, None),
    "symlink": (None, "linkpath", "target"),
    "symlinkat": (None, "linkpath", "target"),
    "link": (None, "newpath", "oldpath"),
    "linkat": (None, "newpath", "oldpath"),
    "rename": (None, "oldpath", "newpath"),
    "renameat": (None, "oldpath", "newpath"),
    "renameat2": (None, "oldpath", "newpath"),
}
_DIRFD_OF = {
    "mkdirat": {"path": "dirfd"},
    "unlinkat": {"name": "dirfd"},
    "fchmodat": {"filename": "dirfd"},
    "symlinkat": {"linkpath": "linkdirfd"},
    "linkat": {"oldpath": "olddir", "newpath": "newdir"},
    "renameat": {"oldpath": "olddirfd", "newpath": "newdirfd"},
    "renameat2": {"oldpath": "olddirfd", "newpath": "newdirfd"},
}


# -- small helpers ------------------------------------------------------------------------------
def _thread_attr(attr: str) -> Extractor:
    def extract(event: SyscallEvent) -> Any:
        thread = event.thread
        return None if thread is None else getattr(thread, attr)

    return extract


def _main(event: SyscallEvent) -> Thread | None:
    thread = event.thread
    if thread is None:
        return None
    state = event.state
    return state.main_thread(thread) if state is not None else thread


def process_identity(event: SyscallEvent) -> dict[str, int] | None:
    """The event's process as a response action must check it: pid, thread id and, when the
    tracker saw it, the start time (ns since the epoch), whatever the rule's output prints."""
    main = _main(event)
    if main is None:
        return None
    thread = event.thread
    assert thread is not None
    identity = {"proc.pid": main.pid, "thread.tid": thread.tid}
    if main.clone_ts is not None:
        identity["proc.pid.ts"] = main.clone_ts
    return identity


def _parent(event: SyscallEvent) -> Thread | None:
    thread = event.thread
    state = event.state
    if thread is None or state is None:
        return None
    return state.parent(thread)


def _ancestors(event: SyscallEvent) -> Iterator[Thread]:
    thread = event.thread
    state = event.state
    if thread is None or state is None:
        return iter(())
    return state.ancestors(thread)


def proc_name(thread: Thread | None) -> str | None:
    return None if thread is None else thread.comm


def proc_exe(thread: Thread | None) -> str | None:
    return None if thread is None else thread.exe


def proc_exepath(thread: Thread | None) -> str | None:
    return None if thread is None else thread.exepath


def proc_args(thread: Thread | None) -> str | None:
    if thread is None or not thread.complete:
        return None
    return " ".join(thread.args)


def proc_cmdline(thread: Thread | None) -> str | None:
    if thread is None or thread.comm is None:
        return None
    if thread.args:
        return f"{thread.comm} {' '.join(thread.args)}"[:4096]
    return thread.comm


def proc_pid(thread: Thread | None) -> int | None:
    return None if thread is None else thread.pid


_PROCESS_VIEWS: dict[str, Callable[[Thread | None], Any]] = {
    "name": proc_name,
    "exe": proc_exe,
    "exepath": proc_exepath,
    "cmdline": proc_cmdline,
    "pid": proc_pid,
}


def _of_parent(view: Callable[[Thread | None], Any]) -> Extractor:
    return lambda event: view(_parent(event))


def _ancestor_factory(view: Callable[[Thread | None], Any], name: str):
    """proc.a<view>[N]: the Nth ancestor (1 = parent, 0 = the process itself). Without an index
    the field compares against every ancestor: the extractor yields them all as a tuple."""

    def factory(arg: str | None) -> Extractor:
        if arg is None:

            def any_ancestor(event: SyscallEvent) -> tuple[Any, ...] | None:
                values = tuple(v for v in (view(t) for t in _ancestors(event)) if v is not None)
                return values or None

            any_ancestor.any_of = True  # type: ignore[attr-defined]
            return any_ancestor
        if not arg.isdigit():
            raise ValueError(f"{name} index must be a number, not {arg!r}")
        level = int(arg)
        if level == 0:
            return lambda event: view(event.thread)

        def nth(event: SyscallEvent) -> Any:
            for depth, ancestor in enumerate(_ancestors(event), start=1):
                if depth == level:
                    return view(ancestor)
            return None

        return nth

    return factory


def _env_factory(arg: str | None) -> Extractor:
    def whole(event: SyscallEvent) -> str | None:
        main = _main(event)
        return None if main is None or not main.complete else " ".join(main.env)

    if arg is None:
        return whole
    prefix = arg + "="

    def one(event: SyscallEvent) -> str | None:
        main = _main(event)
        if main is None:
            return None
        for entry in main.env:
            if entry.startswith(prefix):
                return entry[len(prefix) :]
        return None

    return one


def _args_factory(arg: str | None) -> Extractor:
    if arg is None:
        return lambda event: proc_args(event.thread)
    if not arg.isdigit():
        raise ValueError(f"proc.args index must be a number, not {arg!r}")
    index = int(arg)

    def nth(event: SyscallEvent) -> str | None:
        thread = event.thread
        if thread is None or index >= len(thread.args):
            return None
        return thread.args[index]

    return nth


def _duration(thread: Thread | None, now: int) -> int | None:
    if thread is None or thread.clone_ts is None:
        return None
    return max(0, now - thread.clone_ts)


def _caps(value: int | None) -> str | None:
    if value is None:
        return None
    from engine.sources.syscall.capabilities import capability_names

    return capability_names(value)


def _vpgid_leader(event: SyscallEvent) -> Thread | None:
    thread = event.thread
    state = event.state
    if thread is None or state is None or thread.vpgid is None:
        return None
    # The group leader's vpid equals the vpgid; walk the ancestry to find it (as libsinsp does).
    main = state.main_thread(thread)
    if main.vpid == thread.vpgid:
        return main
    for ancestor in state.ancestors(thread):
        if ancestor.vpid == thread.vpgid:
            return ancestor
    return None


def _session_leader(event: SyscallEvent) -> Thread | None:
    thread = event.thread
    state = event.state
    if thread is None or state is None:
        return None
    main = state.main_thread(thread)
    if main.sid == main.pid:
        return main
    leader = state.threads.get(main.sid)
    if leader is not None:
        return leader
    last = None
    for ancestor in state.ancestors(thread):
        if ancestor.sid != main.sid:
            break
        last = ancestor
    return last


# -- evt ----------------------------------------------------------------------------------------
def _evt_time(event: SyscallEvent) -> str:
    seconds, ns = divmod(event.ts, _ONE_SECOND)
    return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{ns:09d}"


def _evt_time_s(event: SyscallEvent) -> str:
    return time.strftime("%H:%M:%S", time.localtime(event.ts // _ONE_SECOND))


def _evt_iso8601(event: SyscallEvent) -> str:
    seconds, ns = divmod(event.ts, _ONE_SECOND)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ns:09d}Z"


def _evt_datetime(event: SyscallEvent) -> str:
    seconds, ns = divmod(event.ts, _ONE_SECOND)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) + f".{ns:09d}"


def _evt_datetime_s(event: SyscallEvent) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.ts // _ONE_SECOND))


def _evt_res(event: SyscallEvent) -> str | None:
    res = event.res
    return None if res is None else render.result_text(res)


def _evt_failed(event: SyscallEvent) -> bool | None:
    res = event.res
    return None if res is None else res < 0


def _arg_factory(raw: bool):
    def factory(arg: str | None) -> Extractor:
        if arg is None:
            raise ValueError("an argument name or index is required")
        if arg.isdigit():
            index = int(arg)

            def by_index(event: SyscallEvent) -> Any:
                params = event.info.params
                if index >= len(params):
                    return None
                return _param_value(event, params[index].name, raw)

            return by_index
        return lambda event: _param_value(event, arg, raw)

    return factory


def _param_value(event: SyscallEvent, name: str, raw: bool) -> Any:
    params = event.params
    if name not in params:
        return None
    value = params[name]
    if raw:
        if isinstance(value, bool):
            return int(value)
        return value if isinstance(value, int) else None
    info = event.info.by_name.get(name)
    return render.render(event, info, value) if info is not None else str(value)


def _open_flags(event: SyscallEvent) -> int | None:
    if event.type not in OPEN_EVENTS:
        return None
    if event.type == "creat":
        return O_WRONLY | O_CREAT
    flags = event.params.get("flags")
    return flags if isinstance(flags, int) else None


def _is_open_read(event: SyscallEvent) -> bool:
    flags = event.open_flags
    if flags is None:
        flags = event.open_flags = _open_flags(event) or 0
    return flags & O_RDONLY != 0


def _is_open_write(event: SyscallEvent) -> bool:
    flags = event.open_flags
    if flags is None:
        flags = event.open_flags = _open_flags(event) or 0
    return flags & O_WRONLY != 0


def _is_open_exec(event: SyscallEvent) -> bool:
    flags = _open_flags(event)
    if flags is None or not flags & (O_CREAT | O_TMPFILE):
        return False
    mode = event.params.get("mode")
    # Any execute bit (PPM_S_IXUSR|IXGRP|IXOTH, octal 0111) on a file being created.
    return isinstance(mode, int) and bool(mode & 0o111)


def _is_open_create(event: SyscallEvent) -> bool:
    flags = _open_flags(event)
    return flags is not None and bool(flags & O_F_CREATED)


def _evt_buffer(event: SyscallEvent) -> bytes | None:
    params = event.params
    for name in ("data", "buf"):
        value = params.get(name)
        if isinstance(value, bytes | bytearray):
            return bytes(value)
    return None


def _evt_buflen(event: SyscallEvent) -> int | None:
    params = event.params
    if "size" in params and isinstance(params["size"], int):
        return params["size"]
    data = _evt_buffer(event)
    return None if data is None else len(data)


def _evt_hostname(event: SyscallEvent) -> str:
    import socket

    return socket.gethostname()


# -- fd -----------------------------------------------------------------------------------------
def _fd_attr(attr: str) -> Extractor:
    def extract(event: SyscallEvent) -> Any:
        fd = event.fd
        return None if fd is None else getattr(fd, attr)

    return extract


def _fd_num(event: SyscallEvent) -> int | None:
    fd = event.fd
    if fd is not None:
        return fd.num
    value = event.params.get("fd")
    return value if isinstance(value, int) else None


def _fd_type(event: SyscallEvent) -> str | None:
    fd = event.fd
    return None if fd is None else FD_TYPE_NAMES.get(fd.type, "<NA>")


def _fd_typechar(event: SyscallEvent) -> str | None:
    fd = event.fd
    return None if fd is None else fd.type


def _fd_name(event: SyscallEvent) -> str | None:
    fd = event.fd
    return None if fd is None else fd.name


def _fd_nameraw(event: SyscallEvent) -> str | None:
    fd = event.fd
    if fd is None:
        return None
    return fd.nameraw or fd.name


def _fd_directory(event: SyscallEvent) -> str | None:
    # fd.directory is in the upstream rules' open_* macros: read for every open event.
    fd = event.fd
    if fd is None:
        return None
    kind = fd.type
    if kind == FD_DIRECTORY:
        return fd.name
    if kind != FD_FILE:
        return None
    head, _, _ = fd.name.rpartition("/")
    return head or "/"


def _fd_filename(event: SyscallEvent) -> str | None:
    fd = event.fd
    if fd is None or fd.type != FD_FILE:
        return None
    return fd.name.rpartition("/")[2]


_INET_TYPES = (FD_IPV4, FD_IPV6)


def _is_inet(fd: Any) -> bool:
    return fd is not None and fd.type in _INET_TYPES


def _endpoint(which: str) -> tuple[Extractor, Extractor]:
    """(ip, port) extractors for the client ("c"), server ("s"), local ("l") or remote ("r")."""

    # Every network rule reads these on every socket event: the side is decided once here for
    # the fixed ends, and only the local/remote ends look at the fd.
    if which in ("c", "s"):
        ip_attr, port_attr = ("cip", "cport") if which == "c" else ("sip", "sport")

        def fixed_ip(event: SyscallEvent) -> Any:
            fd = event.fd
            return getattr(fd, ip_attr) if fd is not None and fd.type in _INET_TYPES else None

        def fixed_port(event: SyscallEvent) -> int | None:
            fd = event.fd
            return getattr(fd, port_attr) if fd is not None and fd.type in _INET_TYPES else None

        return fixed_ip, fixed_port

    local = which == "l"

    def is_client_side(fd: Any) -> bool:
        return (not fd.is_server) if local else fd.is_server

    def ip(event: SyscallEvent) -> Any:
        fd = event.fd
        if not _is_inet(fd):
            return None
        return fd.cip if is_client_side(fd) else fd.sip

    def port(event: SyscallEvent) -> int | None:
        fd = event.fd
        if not _is_inet(fd):
            return None
        return fd.cport if is_client_side(fd) else fd.sport

    return ip, port


def _both(ip_c: Extractor, ip_s: Extractor) -> Extractor:
    # fd.ip / fd.port / fd.net "match either end": both values, compared as any-of.
    def extract(event: SyscallEvent) -> tuple[Any, ...] | None:
        client, server = ip_c(event), ip_s(event)
        if client is None:
            return None if server is None else (server,)
        return (client,) if server is None else (client, server)

    extract.any_of = True  # type: ignore[attr-defined]
    return extract


def _as_net(ip_extract: Extractor) -> Extractor:
    # libsinsp's fd.*net fields extract the address; the comparison tests it against the
    # network operand (engine.condition's in_network accepts addresses).
    return ip_extract


def _fd_sockfamily(event: SyscallEvent) -> str | None:
    fd = event.fd
    if fd is None:
        return None
    if fd.type in (FD_IPV4, FD_IPV6) or fd.family in (AF_INET, AF_INET6):
        return "ip"
    if fd.family == AF_UNIX or fd.type == "u":
        return "unix"
    return None


def _fd_l4proto(event: SyscallEvent) -> str | None:
    fd = event.fd
    if fd is None or (fd.type != FD_IPV4 and fd.type != FD_IPV6):
        return None
    return fd.l4proto


def _fd_is_server(event: SyscallEvent) -> bool | None:
    fd = event.fd
    return None if not _is_inet(fd) else fd.is_server


def _fd_connected(event: SyscallEvent) -> bool | None:
    fd = event.fd
    return None if fd is None else fd.connected


def _fd_name_changed(event: SyscallEvent) -> bool | None:
    fd = event.fd
    return None if fd is None else fd.name_changed


def _fd_types_factory(arg: str | None) -> Extractor:
    def extract(event: SyscallEvent) -> tuple[str, ...] | None:
        thread = event.thread
        if thread is None:
            return None
        if arg is None:
            fds = thread.fds.values()
        else:
            if not arg.lstrip("-").isdigit():
                raise ValueError(f"fd.types argument must be an fd number, not {arg!r}")
            found = thread.fds.get(int(arg))
            fds = () if found is None else (found,)
        return tuple(sorted({FD_TYPE_NAMES.get(fd.type, "<NA>") for fd in fds}))

    if arg is not None and not arg.lstrip("-").isdigit():
        raise ValueError(f"fd.types argument must be an fd number, not {arg!r}")
    return extract


def _dns_name(_ip: Extractor) -> Extractor:
    # libsinsp fills *.name from its DNS cache (hostname lookups it intercepted). falconet has no
    # such cache yet: the value cannot be extracted.
    return lambda event: None


# -- fs.path ------------------------------------------------------------------------------------
def _fs_path(slot: int, raw: bool) -> Extractor:
    def extract(event: SyscallEvent) -> str | None:
        spec = _FS_PATH_PARAMS.get(event.type)
        if spec is None or spec[slot] is None:
            return None
        name = spec[slot]
        value = event.params.get(name)
        if not isinstance(value, str):
            return None
        if raw:
            return value
        # A symlink's target is stored verbatim (it is resolved when followed, not now).
        if event.type in ("symlink", "symlinkat") and name == "target":
            return value
        thread = event.thread
        if thread is None:
            return value
        dirfd_param = _DIRFD_OF.get(event.type, {}).get(name)
        base = dirfd_base_for(thread, event.params.get(dirfd_param)) if dirfd_param else thread.cwd
        return resolve_path(base, value)

    return extract


# -- user / group -------------------------------------------------------------------------------
def _user_attr(attr: str) -> Extractor:
    def extract(event: SyscallEvent) -> Any:
        thread = event.thread
        state = event.state
        if thread is None or state is None:
            return None
        user = state.user(thread.uid)
        return None if user is None else getattr(user, attr)

    return extract


def _loginname(event: SyscallEvent) -> str | None:
    thread = event.thread
    state = event.state
    if thread is None or state is None or thread.loginuid is None:
        return None
    user = state.user(thread.loginuid)
    return None if user is None else user.name


def _loginuid(event: SyscallEvent) -> int | None:
    thread = event.thread
    if thread is None or thread.loginuid is None:
        return None
    # The kernel's "unset" loginuid is (uint32)-1; libsinsp reports it as -1.
    return -1 if thread.loginuid == 0xFFFFFFFF else thread.loginuid


def _group_name(event: SyscallEvent) -> str | None:
    thread = event.thread
    state = event.state
    if thread is None or state is None:
        return None
    group = state.group(thread.gid)
    return None if group is None else group.name


# -- container / k8s (what the container plugin would say, from what the host knows) -----------
def _container_id(event: SyscallEvent) -> str | None:
    thread = event.thread
    return None if thread is None else thread.container_id


def _container_info(event: SyscallEvent) -> Any:
    """The runtime's metadata of the event's container (container_runtime: asked once per
    container in the background; absent until it answered)."""
    cid = _container_id(event)
    if cid is None or cid == "host":
        return None
    from engine.sources.syscall.container_runtime import resolver

    return resolver().get(cid)


def _container_name(event: SyscallEvent) -> str | None:
    if _container_id(event) == "host":
        return "host"
    info = _container_info(event)
    return None if info is None else info.name


def _container_type(event: SyscallEvent) -> str | None:
    cid = _container_id(event)
    if cid is None or cid == "host":
        return None
    from engine.sources.syscall.container_runtime import container_type

    thread = event.thread
    return container_type(thread.cgroups if thread is not None else ())


def _container_full_id(event: SyscallEvent) -> str | None:
    info = _container_info(event)
    return info.full_id if info is not None else _container_id(event)


def _info_attr(attribute: str) -> Extractor:
    def extract(event: SyscallEvent) -> Any:
        info = _container_info(event)
        return None if info is None else (getattr(info, attribute) or None)

    return extract


def _privileged(event: SyscallEvent) -> bool | None:
    info = _container_info(event)
    return None if info is None else info.privileged


def _container_label_factory(arg: str | None) -> Extractor:
    def extract(event: SyscallEvent) -> str | None:
        info = _container_info(event)
        return None if info is None or arg is None else info.label(arg)

    return extract


def _absent(event: SyscallEvent) -> None:
    return None


def _absent_factory(arg: str | None) -> Extractor:
    return _absent


def _container_start_ts(event: SyscallEvent) -> int | None:
    thread = event.thread
    if thread is None or thread.container_id == "host":
        return None
    return thread.pidns_init_start_ts


# -- the catalogue ------------------------------------------------------------------------------
def build_catalog() -> FieldCatalog:
    cat = FieldCatalog("syscall")

    def simple(name: str, ftype: str, extractor: Extractor, desc: str = "", **flags: Any) -> None:
        cat.add_simple(FieldSpec(name, ftype, desc, **flags), extractor)

    def with_arg(
        name: str, ftype: str, factory: Any, arg: str, desc: str = "", **flags: Any
    ) -> None:
        cat.add(FieldSpec(name, ftype, desc, arg=arg, **flags), factory)

    # evt.*
    simple("evt.num", "uint", lambda e: e.num, "event number.")
    simple("evt.time", "string", _evt_time, "event timestamp as a time string (local time).")
    simple("evt.time.s", "string", _evt_time_s, "event timestamp without nanoseconds.")
    simple("evt.time.iso8601", "string", _evt_iso8601, "event timestamp in ISO 8601 (UTC).")
    simple("evt.datetime", "string", _evt_datetime, "event timestamp with the date.")
    simple("evt.datetime.s", "string", _evt_datetime_s, "date and time without nanoseconds.")
    simple("evt.rawtime", "abstime", lambda e: e.ts, "absolute timestamp in ns since the epoch.")
    simple("evt.rawtime.s", "abstime", lambda e: e.ts // _ONE_SECOND, "seconds of evt.rawtime.")
    simple("evt.rawtime.ns", "abstime", lambda e: e.ts % _ONE_SECOND, "ns part of evt.rawtime.")
    # libsinsp refuses unknown event names at compile time ("unknown event type list_a"):
    # a misspelt syscall, or a list name that was never defined, would otherwise never match.
    simple(
        "evt.type",
        "string",
        with_value_check(lambda e: e.type, _known_event_type),
        "the name of the event (e.g. 'open').",
    )
    simple(
        "syscall.type",
        "string",
        with_value_check(lambda e: e.type, _known_event_type),
        "the system call name.",
    )
    simple("evt.dir", "string", lambda e: e.dir, "'>' for enter events, '<' for exit events.")
    simple("evt.cpu", "int", lambda e: e.cpu, "number of the CPU where the event occurred.")
    simple("evt.args", "string", render.render_all, "all the event arguments as one string.")
    with_arg(
        "evt.arg",
        "string",
        _arg_factory(raw=False),
        "required",
        "one argument by name or index, rendered as text.",
        dotted_arg=True,
    )
    with_arg(
        "evt.rawarg",
        "int",
        _arg_factory(raw=True),
        "required",
        "one numeric argument by name, unrendered.",
        dotted_arg=True,
        no_rhs=True,
        no_transformer=True,
    )
    simple("evt.res", "string", _evt_res, "'SUCCESS' or the error code name of the result.")
    simple("evt.rawres", "int", lambda e: e.res, "event return value, as a number.")
    simple("evt.failed", "bool", _evt_failed, "'true' for events that returned an error.")
    simple("evt.buffer", "bytebuf", _evt_buffer, "the event's data buffer (read, recvfrom...).")
    simple("evt.buflen", "uint", _evt_buflen, "the length of the event's data buffer.")
    simple("evt.is_open_read", "bool", _is_open_read, "'true' for opens for reading.")
    simple("evt.is_open_write", "bool", _is_open_write, "'true' for opens for writing.")
    simple("evt.is_open_exec", "bool", _is_open_exec, "'true' for opens creating executables.")
    simple("evt.is_open_create", "bool", _is_open_create, "'true' when an open created the file.")
    simple("evt.hostname", "string", _evt_hostname, "the hostname of the machine.")
    simple("evt.count", "uint", lambda e: 1, "always 1.")

    # proc.* / thread.*
    simple("proc.name", "string", lambda e: proc_name(e.thread), "the process name (comm).")
    simple("proc.exe", "string", lambda e: proc_exe(e.thread), "argv[0] of the process.")
    simple("proc.exepath", "string", lambda e: proc_exepath(e.thread), "full executable path.")
    with_arg("proc.args", "string", _args_factory, "optional", "the arguments (excluding argv[0]).")
    simple("proc.cmdline", "string", lambda e: proc_cmdline(e.thread), "proc.name + proc.args.")
    simple(
        "proc.exeline",
        "string",
        lambda e: (
            None
            if e.thread is None or e.thread.exe is None
            else " ".join((e.thread.exe, *e.thread.args))
        ),
        "proc.exe + proc.args.",
    )
    simple(
        "proc.cmdnargs",
        "uint",
        lambda e: None if e.thread is None else len(e.thread.args),
        "the number of command line arguments.",
    )
    simple(
        "proc.cmdlenargs",
        "uint",
        lambda e: None if e.thread is None else sum(len(a) for a in e.thread.args),
        "the total length of the command line arguments.",
    )
    with_arg("proc.env", "string", _env_factory, "optional", "the environment, or one variable.")
    simple(
        "proc.cwd",
        "string",
        lambda e: None if e.thread is None else e.thread.cwd,
        "the current working directory.",
    )
    simple("proc.tty", "uint", _thread_attr("tty"), "the controlling terminal (0: none).")
    simple("proc.pid", "int", _thread_attr("pid"), "the id of the process.")
    simple(
        "proc.ppid",
        "int",
        lambda e: None if (m := _main(e)) is None else m.ptid,
        "the parent process id.",
    )
    simple("proc.vpid", "int", _thread_attr("vpid"), "pid in its own pid namespace.")
    simple(
        "proc.pvpid",
        "int",
        lambda e: None if (p := _parent(e)) is None else p.vpid,
        "the parent's pid in its pid namespace.",
    )
    simple("proc.sid", "int", _thread_attr("sid"), "the session id.")
    simple(
        "proc.sname",
        "string",
        lambda e: proc_name(_session_leader(e)),
        "the name of the session leader.",
    )
    simple("proc.sid.exe", "string", lambda e: proc_exe(_session_leader(e)), "session leader exe.")
    simple(
        "proc.sid.exepath",
        "string",
        lambda e: proc_exepath(_session_leader(e)),
        "session leader exepath.",
    )
    simple("proc.vpgid", "int", _thread_attr("vpgid"), "the process group id (own namespace).")
    simple(
        "proc.vpgid.name",
        "string",
        lambda e: proc_name(_vpgid_leader(e)),
        "the name of the process group leader.",
    )
    simple("proc.vpgid.exe", "string", lambda e: proc_exe(_vpgid_leader(e)), "group leader exe.")
    simple(
        "proc.vpgid.exepath",
        "string",
        lambda e: proc_exepath(_vpgid_leader(e)),
        "group leader exepath.",
    )
    simple(
        "proc.is_vpgid_leader",
        "bool",
        lambda e: (
            None
            if e.thread is None or e.thread.vpgid is None or e.thread.vpid is None
            else e.thread.vpid == e.thread.vpgid
        ),
        "'true' for the process group leader.",
    )
    simple(
        "proc.is_sid_leader",
        "bool",
        lambda e: None if e.thread is None else e.thread.sid == e.thread.pid,
        "'true' for the session leader.",
    )
    simple(
        "proc.duration",
        "reltime",
        lambda e: _duration(_main(e), e.ts),
        "ns since the process started.",
    )
    simple(
        "proc.ppid.duration",
        "reltime",
        lambda e: _duration(_parent(e), e.ts),
        "ns since the parent process started.",
    )
    simple(
        "proc.pid.ts",
        "reltime",
        lambda e: None if (m := _main(e)) is None else m.clone_ts,
        "start of the process, ns since the epoch.",
    )
    simple(
        "proc.ppid.ts",
        "reltime",
        lambda e: None if (p := _parent(e)) is None else p.clone_ts,
        "start of the parent process, ns since the epoch.",
    )
    simple("proc.exe_ino", "int", _thread_attr("exe_ino"), "inode number of the executable.")
    simple(
        "proc.exe_ino.ctime",
        "abstime",
        _thread_attr("exe_ino_ctime"),
        "executable inode ctime (ns).",
    )
    simple(
        "proc.exe_ino.mtime",
        "abstime",
        _thread_attr("exe_ino_mtime"),
        "executable inode mtime (ns).",
    )
    simple(
        "proc.exe_ino.ctime_duration_proc_start",
        "abstime",
        lambda e: (
            None
            if e.thread is None or e.thread.exe_ino_ctime is None or e.thread.clone_ts is None
            else e.thread.clone_ts - e.thread.exe_ino_ctime
        ),
        "ns between the executable's ctime and the process start.",
    )
    simple(
        "proc.exe_ino.ctime_duration_pidns_start",
        "abstime",
        lambda e: (
            None
            if e.thread is None
            or e.thread.exe_ino_ctime is None
            or e.thread.pidns_init_start_ts is None
            else e.thread.exe_ino_ctime - e.thread.pidns_init_start_ts
        ),
        "ns between the pid namespace start and the executable's ctime.",
    )
    simple(
        "proc.pidns_init_start_ts",
        "uint",
        _thread_attr("pidns_init_start_ts"),
        "start of the pid namespace's init, ns since the epoch.",
    )
    simple(
        "proc.is_exe_writable",
        "bool",
        _thread_attr("exe_writable"),
        "'true' if the executable is writable by the process's user.",
    )
    simple(
        "proc.is_exe_upper_layer",
        "bool",
        _thread_attr("exe_upper_layer"),
        "'true' if the executable is in an overlayfs upper layer.",
    )
    simple(
        "proc.is_exe_lower_layer",
        "bool",
        _thread_attr("exe_lower_layer"),
        "'true' if the executable is in an overlayfs lower layer.",
    )
    simple(
        "proc.is_exe_from_memfd",
        "bool",
        _thread_attr("exe_from_memfd"),
        "'true' if the executable is a memfd_create() file.",
    )
    simple(
        "proc.fdopencount",
        "uint",
        lambda e: None if e.thread is None else len(e.thread.fds),
        "number of open fds of the process.",
    )
    simple("proc.fdlimit", "int", _thread_attr("fdlimit"), "maximum number of fds.")
    simple(
        "proc.nthreads",
        "uint",
        lambda e: (
            None
            if e.thread is None or e.state is None
            else sum(1 for t in e.state.threads.values() if t.pid == e.thread.pid)
        ),
        "number of threads of the process.",
    )
    for view_name, view in _PROCESS_VIEWS.items():
        if view_name != "pid":
            simple(
                f"proc.p{view_name}", "string", _of_parent(view), f"proc.{view_name} of the parent."
            )
        kind = "int" if view_name == "pid" else "string"
        with_arg(
            f"proc.a{view_name}",
            kind,
            _ancestor_factory(view, f"proc.a{view_name}"),
            "optional",
            f"proc.{view_name} of an ancestor (proc.a{view_name}[1] = parent; no index: any).",
            no_rhs=True,
            no_transformer=True,
        )
    simple("thread.tid", "int", lambda e: e.tid, "the id of the thread.")
    simple("thread.vtid", "int", _thread_attr("vtid"), "tid in its own pid namespace.")
    simple(
        "thread.ismain",
        "bool",
        lambda e: None if e.thread is None else e.thread.is_main,
        "'true' for the main thread of the process.",
    )
    simple(
        "thread.cap_permitted",
        "string",
        lambda e: None if e.thread is None else _caps(e.thread.cap_permitted),
        "the permitted capabilities set.",
    )
    simple(
        "thread.cap_effective",
        "string",
        lambda e: None if e.thread is None else _caps(e.thread.cap_effective),
        "the effective capabilities set.",
    )
    simple(
        "thread.cap_inheritable",
        "string",
        lambda e: None if e.thread is None else _caps(e.thread.cap_inheritable),
        "the inheritable capabilities set.",
    )
    simple(
        "thread.cgroups",
        "string",
        lambda e: None if e.thread is None else " ".join(e.thread.cgroups),
        "all the cgroups the thread belongs to.",
    )
    with_arg(
        "thread.cgroup",
        "string",
        _cgroup_factory,
        "required",
        "the cgroup of the thread for a subsystem (thread.cgroup.cpuacct).",
        dotted_arg=True,
    )

    # fd.*
    cip, cport = _endpoint("c")
    sip, sport = _endpoint("s")
    lip, lport = _endpoint("l")
    rip, rport = _endpoint("r")
    simple("fd.num", "int", _fd_num, "the number of the file descriptor.")
    simple("fd.type", "string", _fd_type, "type of FD: 'file', 'directory', 'ipv4', ...")
    simple("fd.typechar", "string", _fd_typechar, "type of FD as one character.")
    simple("fd.name", "string", _fd_name, "FD full name (path, or socket tuple).")
    simple("fd.nameraw", "string", _fd_nameraw, "the path as the syscall gave it.")
    simple("fd.directory", "string", _fd_directory, "the directory containing the file.")
    simple("fd.filename", "string", _fd_filename, "the file name without the path.")
    simple("fd.cip", "ipaddr", cip, "client IP address.")
    simple("fd.sip", "ipaddr", sip, "server IP address.")
    simple("fd.lip", "ipaddr", lip, "local IP address.")
    simple("fd.rip", "ipaddr", rip, "remote IP address.")
    simple("fd.cport", "port", cport, "client port.")
    simple("fd.sport", "port", sport, "server port.")
    simple("fd.lport", "port", lport, "local port.")
    simple("fd.rport", "port", rport, "remote port.")
    simple(
        "fd.ip",
        "ipaddr",
        _both(cip, sip),
        "matches either IP address of the fd.",
        no_rhs=True,
        no_transformer=True,
    )
    simple(
        "fd.port",
        "port",
        _both(cport, sport),
        "matches either port of the fd.",
        no_rhs=True,
        no_transformer=True,
    )
    simple(
        "fd.net",
        "ipnet",
        _as_net(_both(cip, sip)),
        "matches either IP network of the fd.",
        no_rhs=True,
        no_transformer=True,
    )
    simple(
        "fd.cnet",
        "ipnet",
        _as_net(cip),
        "matches the client IP network.",
        no_rhs=True,
        no_transformer=True,
    )
    simple(
        "fd.snet",
        "ipnet",
        _as_net(sip),
        "matches the server IP network.",
        no_rhs=True,
        no_transformer=True,
    )
    simple(
        "fd.lnet",
        "ipnet",
        _as_net(lip),
        "matches the local IP network.",
        no_rhs=True,
        no_transformer=True,
    )
    simple(
        "fd.rnet",
        "ipnet",
        _as_net(rip),
        "matches the remote IP network.",
        no_rhs=True,
        no_transformer=True,
    )
    for end, extractor in (("cip", cip), ("sip", sip), ("lip", lip), ("rip", rip)):
        simple(
            f"fd.{end}.name",
            "string",
            _dns_name(extractor),
            f"domain name of fd.{end} (from a DNS cache; none is kept yet).",
            no_rhs=True,
            no_transformer=True,
        )
    simple("fd.l4proto", "string", _fd_l4proto, "'tcp', 'udp', 'icmp' or 'raw'.")
    simple("fd.sockfamily", "string", _fd_sockfamily, "'ip' or 'unix'.")
    simple("fd.is_server", "bool", _fd_is_server, "'true' if the process is the server end.")
    simple("fd.connected", "bool", _fd_connected, "'true' if the socket is connected.")
    simple("fd.name_changed", "bool", _fd_name_changed, "'true' when the event changed fd.name.")
    simple("fd.ino", "int", _fd_attr("ino"), "the inode number of the file.")
    simple("fd.dev", "int", _fd_attr("dev"), "the device number of the file.")
    simple(
        "fd.dev.major",
        "int",
        lambda e: None if e.fd is None else e.fd.dev >> 20,
        "major device number.",
    )
    simple(
        "fd.dev.minor",
        "int",
        lambda e: None if e.fd is None else e.fd.dev & 0xFFFFF,
        "minor device number.",
    )
    simple(
        "fd.uid",
        "string",
        lambda e: None if e.fd is None else f"{e.tid}{e.fd.num}",
        "thread id + fd number.",
    )
    with_arg(
        "fd.types",
        "string",
        _fd_types_factory,
        "optional",
        "the types of the process's fds (or of fd N).",
        is_list=True,
        no_rhs=True,
    )
    simple(
        "fd.is_upper_layer",
        "bool",
        lambda e: None if e.fd is None else bool(e.fd.flags & (1 << 15)),
        "'true' if the file is in an overlayfs upper layer.",
    )

    # fs.path.*
    simple("fs.path.name", "string", _fs_path(0, raw=False), "path of a path-based syscall.")
    simple("fs.path.nameraw", "string", _fs_path(0, raw=True), "fs.path.name as given.")
    simple("fs.path.source", "string", _fs_path(1, raw=False), "source path (rename, link...).")
    simple("fs.path.sourceraw", "string", _fs_path(1, raw=True), "fs.path.source as given.")
    simple("fs.path.target", "string", _fs_path(2, raw=False), "target path (rename, link...).")
    simple("fs.path.targetraw", "string", _fs_path(2, raw=True), "fs.path.target as given.")

    # user.* / group.*
    simple("user.uid", "uint", _thread_attr("uid"), "user ID.")
    simple("user.name", "string", _user_attr("name"), "user name.")
    simple("user.homedir", "string", _user_attr("homedir"), "home directory of the user.")
    simple("user.shell", "string", _user_attr("shell"), "user's shell.")
    simple("user.loginuid", "int", _loginuid, "audit user id (auid); -1 when unset.")
    simple("user.loginname", "string", _loginname, "audit user name (auid).")
    simple("group.gid", "uint", _thread_attr("gid"), "group ID.")
    simple("group.name", "string", _group_name, "group name.")

    _add_container_fields(simple, with_arg)
    return cat


def _cgroup_factory(arg: str | None) -> Extractor:
    if not arg:
        raise ValueError("a cgroup subsystem is required")
    prefix = arg

    def extract(event: SyscallEvent) -> str | None:
        thread = event.thread
        if thread is None:
            return None
        for entry in thread.cgroups:
            subsystem, _, path = entry.partition("=")
            if prefix in subsystem.split(","):
                return path
        return None

    return extract


def _add_container_fields(simple: Any, with_arg: Any) -> None:
    """The container plugin's fields (plugins/container). The container id comes from the cgroups;
    the host reads as 'host'. Name, image, labels, privileges and the pod's name, namespace and
    uid come from the runtime's API (container_runtime, asked in the background); mounts, IPs,
    probes, resources and pod labels are not read yet and read as absent."""
    simple(
        "container.id",
        "string",
        lambda e: None if (c := _container_id(e)) is None else c,
        "the truncated container id (12 characters), 'host' for the host.",
    )
    simple(
        "container.full_id",
        "string",
        _container_full_id,
        "the full container id (from the runtime; the 12-character id until it answered).",
    )
    simple("container.name", "string", _container_name, "the container name ('host' on the host).")
    simple("container.type", "string", _container_type, "the container runtime type.")
    simple(
        "container.start_ts",
        "abstime",
        _container_start_ts,
        "container start, from the pid namespace init's start time.",
    )
    simple(
        "container.duration",
        "reltime",
        lambda e: None if (s := _container_start_ts(e)) is None else e.ts - s,
        "ns since the container started.",
    )
    # From the runtime's API (engine/sources/syscall/container_runtime.py).
    runtime_doc = "from the container runtime's API (absent until it answered)."
    for name, attribute in (
        ("container.image", "image"),
        ("container.image.id", "image_id"),
        ("container.image.repository", "image_repository"),
        ("container.image.tag", "image_tag"),
        ("container.image.digest", "image_digest"),
        ("container.labels", "labels_text"),
        ("k8s.pod.name", "pod_name"),
        ("k8s.pod.uid", "pod_uid"),
        ("k8s.ns.name", "pod_namespace"),
    ):
        simple(name, "string", _info_attr(attribute), runtime_doc)
    simple("container.privileged", "bool", _privileged, runtime_doc)
    with_arg("container.label", "string", _container_label_factory, "required", runtime_doc)
    for name, ftype in (
        ("container.mounts", "string"),
        ("container.ip", "string"),
        ("container.cni.json", "string"),
        ("container.healthcheck", "string"),
        ("container.liveness_probe", "string"),
        ("container.readiness_probe", "string"),
        ("container.host_pid", "bool"),
        ("container.host_network", "bool"),
        ("container.host_ipc", "bool"),
        ("container.memory_limit", "uint"),
        ("container.cpu_shares", "uint"),
        ("container.user", "string"),
        ("proc.is_container_healthcheck", "bool"),
        ("proc.is_container_liveness_probe", "bool"),
        ("proc.is_container_readiness_probe", "bool"),
        ("k8s.pod.id", "string"),
        ("k8s.pod.sandbox_id", "string"),
        ("k8s.pod.full_sandbox_id", "string"),
        ("k8s.pod.labels", "string"),
        ("k8s.pod.ip", "string"),
        ("k8s.pod.cni.json", "string"),
    ):
        simple(name, ftype, _absent, "from the container runtime (not available to falconet).")
    for name in (
        "container.mount",
        "container.mount.source",
        "container.mount.dest",
        "container.mount.mode",
        "container.mount.rdwr",
        "container.mount.propagation",
        "k8s.pod.label",
    ):
        with_arg(
            name,
            "string",
            _absent_factory,
            "required",
            "from the container runtime (not available to falconet).",
        )


def _known_event_type(name: str) -> None:
    from engine.sources.syscall import event_names

    if name not in event_names():
        raise ValueError(f"unknown event type {name}")
