"""The state tracker: threads/processes, their fd tables, users and groups, kept from the events.

Falco computes proc.*, fd.* and user.* fields from state that libsinsp maintains from the events
themselves (clone/execve/open/close/dup/socket/connect/chdir/setuid/procexit...). This module
does the same. Memory is bounded: exited threads are evicted after their procexit event has been
evaluated, and the thread table and each fd table have caps. A full table never refuses what is
new (that would stop detection for every process started afterwards): as Falco purges inactive
threads, the least recently active threads (exited ones whose procexit was missed first) make
room, and a full fd table forgets its oldest entry. Every eviction under pressure is counted and
reported through `on_eviction` (the run loop's rate-limited internal alert).
"""

from __future__ import annotations

import heapq
import logging
import operator
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.sources.syscall.events import SyscallEvent
from engine.sources.syscall.params import AF_INET, AF_INET6, AF_UNIX, SockAddr, SockTuple

log = logging.getLogger(__name__)

AT_FDCWD = -100
# fd type characters, as libsinsp's fd.typechar reports them.
FD_FILE = "f"
FD_DIRECTORY = "d"
FD_IPV4 = "4"
FD_IPV6 = "6"
FD_UNIX = "u"
FD_PIPE = "p"
FD_EVENT = "e"
FD_SIGNALFD = "s"
FD_EVENTPOLL = "l"
FD_INOTIFY = "i"
FD_TIMERFD = "t"
FD_NETLINK = "n"
FD_BPF = "b"
FD_USERFAULTFD = "u"
FD_IO_URING = "r"
FD_MEMFD = "m"
FD_PIDFD = "P"
FD_OTHER = "o"
FD_TYPE_NAMES = {
    FD_FILE: "file",
    FD_DIRECTORY: "directory",
    FD_IPV4: "ipv4",
    FD_IPV6: "ipv6",
    FD_UNIX: "unix",
    FD_PIPE: "pipe",
    FD_EVENT: "event",
    FD_SIGNALFD: "signalfd",
    FD_EVENTPOLL: "eventpoll",
    FD_INOTIFY: "inotify",
    FD_TIMERFD: "timerfd",
    FD_NETLINK: "netlink",
    FD_BPF: "bpf",
    FD_IO_URING: "io_uring",
    FD_MEMFD: "memfd",
    FD_PIDFD: "pidfd",
    FD_OTHER: "<NA>",
}
# PPM open flags (driver/ppm_events_public.h): used to decide read/write/directory.
O_RDONLY = 1 << 0
O_WRONLY = 1 << 1
O_CREAT = 1 << 2
O_DIRECTORY = 1 << 10
O_CLOEXEC = 1 << 12
O_TMPFILE = 1 << 13
O_F_CREATED = 1 << 14
FD_UPPER_LAYER = 1 << 15
# PPM clone flags.
CLONE_THREAD = 1 << 13
CLONE_PARENT = 1 << 8
CLONE_FILES = 1 << 0
CLONE_FS = 1 << 1
# execve "flags" parameter bits (PPM_EXE_*).
PPM_EXE_WRITABLE = 1 << 0
PPM_EXE_UPPER_LAYER = 1 << 1
PPM_EXE_FROM_MEMFD = 1 << 2
PPM_EXE_LOWER_LAYER = 1 << 3
# socket types (Linux) and protocol numbers.
SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_RAW = 3
IPPROTO_ICMP = 1
IPPROTO_ICMPV6 = 58

_CONTAINER_ID = re.compile(
    r"(?:/docker/|/docker-|/crio-|/cri-containerd-|/libpod-|/containerd-"
    r"|/kubepods[^ ]*/(?:pod[^/]+/)?|/k8s\.io/)([0-9a-f]{64})"
)


@dataclass(slots=True)
class FdInfo:
    num: int
    type: str  # typechar
    name: str = ""
    nameraw: str = ""
    flags: int = 0
    ino: int = 0
    dev: int = 0
    family: int = 0
    l4proto: str | None = None
    sip: Any = None
    sport: int | None = None
    cip: Any = None
    cport: int | None = None
    is_server: bool = False  # the local end is the server (accept) rather than the client
    connected: bool = False
    name_changed: bool = False
    mount_id: int = 0

    def copy(self, num: int) -> FdInfo:
        clone = FdInfo(**{name: getattr(self, name) for name in self.__slots__})  # type: ignore[attr-defined]
        clone.num = num
        return clone


class FsState:
    """What CLONE_FS shares between threads: the working directory."""

    __slots__ = ("cwd",)

    def __init__(self, cwd: str | None) -> None:
        self.cwd = cwd


class FdTable(dict[int, FdInfo]):
    """What CLONE_FILES shares between threads: the fd table."""

    __slots__ = ()


@dataclass(slots=True, eq=False)
class ThreadInfo:
    tid: int
    pid: int
    ptid: int = 0
    sid: int = 0
    vtid: int | None = None
    vpid: int | None = None
    vpgid: int | None = None
    pgid: int | None = None
    comm: str | None = None
    exe: str | None = None
    exepath: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    uid: int | None = None
    gid: int | None = None
    euid: int | None = None
    egid: int | None = None
    loginuid: int | None = None
    tty: int | None = None
    clone_ts: int | None = None
    pidns_init_start_ts: int | None = None
    cgroups: tuple[str, ...] = ()
    container_id: str = "host"
    exe_ino: int | None = None
    exe_ino_ctime: int | None = None
    exe_ino_mtime: int | None = None
    exe_writable: bool = False
    exe_upper_layer: bool = False
    exe_lower_layer: bool = False
    exe_from_memfd: bool = False
    cap_permitted: int | None = None
    cap_effective: int | None = None
    cap_inheritable: int | None = None
    fdlimit: int | None = None
    fs: FsState = field(default_factory=lambda: FsState(None))
    fds: FdTable = field(default_factory=FdTable)
    # Filled from the process list or a clone/execve: False for threads only seen by their tid.
    complete: bool = False
    exited: bool = False
    # The tracker's event count at this thread's latest event, -1 once exited: who to evict
    # first under pressure.
    last_event: int = 0

    @property
    def cwd(self) -> str | None:
        return self.fs.cwd

    @property
    def is_main(self) -> bool:
        return self.tid == self.pid


@dataclass(frozen=True, slots=True)
class UserInfo:
    uid: int
    gid: int
    name: str
    homedir: str
    shell: str


@dataclass(frozen=True, slots=True)
class GroupInfo:
    gid: int
    name: str


@dataclass
class StateCounters:
    threads_added: int = 0
    threads_removed: int = 0
    missing_threads: int = 0  # events from threads never seen created
    threads_evicted: int = 0  # live-looking threads dropped because the table was full
    fds_evicted: int = 0  # fds dropped because their table was full

    def as_json(self) -> dict[str, int]:
        return {
            "threads_added": self.threads_added,
            "threads_removed": self.threads_removed,
            "threads_evicted": self.threads_evicted,
            "fds_evicted": self.fds_evicted,
            "missing_threads": self.missing_threads,
        }


_LAST_EVENT = operator.attrgetter("last_event")
# (table, how many entries were just evicted): "threads" or "fds".
EvictionHook = Callable[[str, int], None]
# Under pressure, this share of the thread table is evicted at once: one scan of the table
# (O(n)) pays for n/EVICTION_SHARE insertions.
EVICTION_SHARE = 64


def container_id_from_cgroups(cgroups: tuple[str, ...]) -> str:
    """The 12-character container id found in a thread's cgroup paths, or "host"."""
    for entry in cgroups:
        match = _CONTAINER_ID.search(entry)
        if match:
            return match.group(1)[:12]
    return "host"


def resolve_path(base: str | None, path: str) -> str:
    """An absolute, normalised path (without following symlinks), as libsinsp's concatenate."""
    if not path:
        return path
    if path[0] != "/":
        if base is None:
            return path
        path = base.rstrip("/") + "/" + path
    if "//" not in path and "/." not in path and path[-1] != "/":
        # No empty, "." or ".." component: already normal (most paths; normpath costs more
        # than the rest of an open event's tracking).
        return path
    normal = posixpath.normpath(path)
    # normpath keeps a leading "//" (POSIX allows it); the kernel does not treat it specially.
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal


def dirfd_base_for(thread: ThreadInfo, dirfd: Any) -> str | None:
    """The directory a *at() syscall's relative path is relative to: cwd for AT_FDCWD, else the
    path of the directory fd (None when that fd is unknown)."""
    if not isinstance(dirfd, int) or dirfd == AT_FDCWD:
        return thread.cwd
    fd = thread.fds.get(dirfd)
    return fd.name if fd is not None else None


class StateTracker:
    """Applies each event to the thread/fd/user tables and binds event.thread and event.fd."""

    def __init__(self, max_threads: int = 131072, max_fds_per_process: int = 65536) -> None:
        self.threads: dict[int, ThreadInfo] = {}
        self.users: dict[int, UserInfo] = {}
        self.groups: dict[int, GroupInfo] = {}
        self.max_threads = max_threads
        self.max_fds = max_fds_per_process
        self.counters = StateCounters()
        self.on_eviction: EvictionHook | None = None
        self.events = 0  # events processed, the clock of ThreadInfo.last_event
        self._pending_removal: int | None = None
        self._handlers, self.state_events = _handlers(self)

    # -- tables ---------------------------------------------------------------------------------
    def add_thread(self, thread: ThreadInfo) -> ThreadInfo:
        if thread.tid not in self.threads and len(self.threads) >= self.max_threads:
            self._evict_threads()
        if thread.container_id == "host" and thread.cgroups:
            thread.container_id = container_id_from_cgroups(thread.cgroups)
        thread.last_event = self.events
        self.threads[thread.tid] = thread
        self.counters.threads_added += 1
        return thread

    def _evict_threads(self) -> None:
        """Make room: the least recently active 1/EVICTION_SHARE of the table, threads marked
        exited first (their procexit was seen but not yet applied). The thread of the event
        being applied is the most recent one, so it stays."""
        count = max(
            1, len(self.threads) // EVICTION_SHARE, len(self.threads) - self.max_threads + 1
        )
        # procexit sets last_event to -1: exited threads sort first without a tuple key (one
        # attribute read per thread keeps a scan of the full table to a few milliseconds).
        victims = heapq.nsmallest(count, self.threads.values(), key=_LAST_EVENT)
        for victim in victims:
            del self.threads[victim.tid]
        self.counters.threads_evicted += len(victims)
        if self.on_eviction is not None:
            self.on_eviction("threads", len(victims))

    def remove_thread(self, tid: int) -> None:
        if self.threads.pop(tid, None) is not None:
            self.counters.threads_removed += 1

    def add_fd(self, thread: ThreadInfo, fd: FdInfo) -> FdInfo:
        table = thread.fds
        if fd.num not in table and len(table) >= self.max_fds:
            # The oldest entry goes (insertion order): a leak of never-closed fds ages out
            # first, and the new fd, the one events are about to use, is remembered.
            del table[next(iter(table))]
            self.counters.fds_evicted += 1
            if self.on_eviction is not None:
                self.on_eviction("fds", 1)
        table[fd.num] = fd
        return fd

    def thread(self, tid: int) -> ThreadInfo | None:
        return self.threads.get(tid)

    def main_thread(self, thread: ThreadInfo) -> ThreadInfo:
        return self.threads.get(thread.pid, thread)

    def parent(self, thread: ThreadInfo) -> ThreadInfo | None:
        # Falco's proc.p* is the parent of the *process*: the main thread's ptid.
        main = self.main_thread(thread)
        if main.ptid == main.tid:
            return None
        return self.threads.get(main.ptid)

    def ancestors(self, thread: ThreadInfo) -> Iterator[ThreadInfo]:
        seen = {thread.tid}
        current = self.parent(thread)
        while current is not None and current.tid not in seen:
            yield current
            seen.add(current.tid)
            current = self.parent(current)

    def user(self, uid: int | None) -> UserInfo | None:
        return None if uid is None else self.users.get(uid)

    def group(self, gid: int | None) -> GroupInfo | None:
        return None if gid is None else self.groups.get(gid)

    # Socket I/O that changes state only on sockets whose peer can change.
    socket_io_events = frozenset({"sendto", "sendmsg", "recvfrom", "recvmsg"})

    def socket_io_matters(self, tid: int, fd: int) -> bool:
        """Whether a send/recv on `fd` by `tid` can change state (unknown thread, unconnected or
        UDP socket); when it cannot, a reader may skip the event without decoding it."""
        thread = self.threads.get(tid)
        if thread is None:
            return True
        info = thread.fds.get(fd)
        if info is None:
            return False
        if info.connected and info.l4proto != "udp":
            info.name_changed = False
            return False
        return True

    # -- events ---------------------------------------------------------------------------------
    def process(self, event: SyscallEvent) -> None:
        if self._pending_removal is not None:
            self._finish_exit(self._pending_removal)
            self._pending_removal = None
        self.events += 1
        thread = self.threads.get(event.tid)
        if thread is None:
            thread = self._placeholder(event.tid)
        else:
            thread.last_event = self.events
        event.thread = thread
        event.state = self
        handler = self._handlers.get(event.type)
        if handler is not None:
            handler(event, thread)
        elif thread is not None and not event.info.is_enter:
            self._bind_fd_param(event, thread)

    def _placeholder(self, tid: int) -> ThreadInfo:
        # A thread we never saw created (it predates the capture, or its clone was dropped): keep
        # what the events will tell us about it, as libsinsp does when /proc has nothing.
        self.counters.missing_threads += 1
        return self.add_thread(ThreadInfo(tid=tid, pid=tid, ptid=0))

    def _bind_fd_param(self, event: SyscallEvent, thread: ThreadInfo) -> None:
        fd = event.params.get("fd")
        if isinstance(fd, int) and fd >= 0:
            event.fd = thread.fds.get(fd)

    def _finish_exit(self, tid: int) -> None:
        thread = self.threads.get(tid)
        if thread is None:
            return
        self.remove_thread(tid)
        if not thread.is_main:
            return  # children's ptid names their parent process's main thread
        # Reparent the children to the exiting thread's parent, as the kernel reparents orphans
        # to a subreaper; good enough for ancestry walks (libsinsp does the same, using ptid).
        for other in self.threads.values():
            if other.ptid == tid:
                other.ptid = thread.ptid


# -- handlers -----------------------------------------------------------------------------------
def _handlers(tracker: StateTracker) -> tuple[dict[str, Any], frozenset[str]]:
    from engine.sources.syscall import transitions

    return transitions.handlers(tracker)


def socket_fd_type(family: int) -> str:
    if family == AF_INET:
        return FD_IPV4
    if family == AF_INET6:
        return FD_IPV6
    if family == AF_UNIX:
        return FD_UNIX
    if family == 16:  # AF_NETLINK
        return FD_NETLINK
    return FD_OTHER


def l4proto(sock_type: int, proto: int) -> str | None:
    sock_type &= 0xF  # strip SOCK_NONBLOCK/SOCK_CLOEXEC
    if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        return "icmp"
    if sock_type == SOCK_STREAM:
        return "tcp"
    if sock_type == SOCK_DGRAM:
        return "udp"
    if sock_type == SOCK_RAW:
        return "raw"
    return None


def apply_tuple(fd: FdInfo, value: SockTuple | None, server_side: bool) -> None:
    """Record a socket tuple. The drivers report it as (client, server) whichever side the
    caller is; `server_side` says the caller is the server (accept, recvfrom)."""
    if value is None:
        return
    old = fd.name
    fd.family = value.family
    if fd.type in (FD_IPV4, FD_IPV6, FD_OTHER) and value.family in (AF_INET, AF_INET6):
        fd.type = FD_IPV4 if value.family == AF_INET else FD_IPV6
        fd.cip, fd.cport = value.source, value.source_port
        fd.sip, fd.sport = value.dest, value.dest_port
        fd.is_server = server_side
        fd.name = f"{_host(fd.cip)}:{fd.cport}->{_host(fd.sip)}:{fd.sport}"
    elif value.family == AF_UNIX:
        fd.name = value.path or fd.name
    fd.name_changed = bool(old) and old != fd.name


def apply_sockaddr(fd: FdInfo, value: SockAddr | None) -> None:
    """A connect's target address when the exit has no tuple (old drivers, failed connects)."""
    if value is None or value.address is None:
        return
    if value.family in (AF_INET, AF_INET6):
        fd.sip, fd.sport = value.address, value.port
        fd.name = f"{_host(fd.cip) if fd.cip else ''}:{fd.cport or 0}->{_host(fd.sip)}:{fd.sport}"
    elif value.family == AF_UNIX:
        fd.name = value.address


def _host(address: Any) -> str:
    return "" if address is None else str(address)
