"""What the probe captures for each syscall, and how a record's raw arguments become the
parameters of the engine's exit event (named and typed as the drivers' event table has them).

The probe is generic: `ArgSpec` tells it which arguments are user strings or sockaddrs; the
decoder here names them. Linux flag values are converted to the drivers' PPM encodings, which
the state tracker and the flag tables expect.
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.sources.syscall.params import AF_INET, AF_INET6, AF_UNIX, SockAddr, SockTuple

NONE = 0xFF
SA_MAX = 128  # probe.c's sockaddr slot
LOCAL_AT = SA_MAX - 24  # connect: struct local_addr {u16 family; u16 port; u8 addr[16]} here
_LOCAL = struct.Struct("<HH16s")

# x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl) of what the probe knows.
X86_64: dict[str, int] = {
    "read": 0, "write": 1, "open": 2, "close": 3, "socket": 41, "connect": 42, "accept": 43,
    "sendto": 44, "recvfrom": 45, "bind": 49, "listen": 50, "clone": 56, "fork": 57,
    "vfork": 58, "execve": 59, "kill": 62, "fcntl": 72, "chdir": 80, "fchdir": 81,
    "rename": 82, "mkdir": 83, "rmdir": 84, "creat": 85, "link": 86, "unlink": 87,
    "symlink": 88, "chmod": 90, "fchmod": 91, "chown": 92, "fchown": 93, "lchown": 94,
    "ptrace": 101, "getpid": 39, "setuid": 105, "setgid": 106, "setreuid": 113,
    "setregid": 114, "setresuid": 117, "setresgid": 119, "chroot": 161, "mount": 165,
    "umount2": 166, "init_module": 175, "unshare": 272, "dup": 32, "dup2": 33, "dup3": 292,
    "accept4": 288, "openat": 257, "mkdirat": 258, "fchownat": 260, "unlinkat": 263,
    "renameat": 264, "linkat": 265, "symlinkat": 266, "fchmodat": 268, "setns": 308,
    "finit_module": 313, "renameat2": 316, "memfd_create": 319, "bpf": 321, "execveat": 322,
    "userfaultfd": 323, "io_uring_setup": 425, "clone3": 435, "openat2": 437, "pipe": 22,
    "pipe2": 293, "prctl": 157,
}  # fmt: skip

# Linux open(2) flags -> PPM_O_* (driver/ppm_events_public.h).
_OPEN_FLAGS = (
    (0o100, 1 << 2),  # O_CREAT
    (0o2000, 1 << 3),  # O_APPEND
    (0o10000, 1 << 4),  # O_DSYNC
    (0o200, 1 << 5),  # O_EXCL
    (0o4000, 1 << 6),  # O_NONBLOCK
    (0o4010000, 1 << 7),  # O_SYNC
    (0o1000, 1 << 8),  # O_TRUNC
    (0o40000, 1 << 9),  # O_DIRECT
    (0o200000, 1 << 10),  # O_DIRECTORY
    (0o100000, 1 << 11),  # O_LARGEFILE
    (0o2000000, 1 << 12),  # O_CLOEXEC
)
_O_TMPFILE = 0o20000000 | 0o200000
# Linux CLONE_* -> PPM_CL_*.
_CLONE_FLAGS = (
    (0x400, 1 << 0),  # FILES
    (0x200, 1 << 1),  # FS
    (0x80000000, 1 << 2),  # IO
    (0x8000000, 1 << 3),  # NEWIPC
    (0x40000000, 1 << 4),  # NEWNET
    (0x20000, 1 << 5),  # NEWNS
    (0x20000000, 1 << 6),  # NEWPID
    (0x4000000, 1 << 7),  # NEWUTS
    (0x8000, 1 << 8),  # PARENT
    (0x100000, 1 << 9),  # PARENT_SETTID
    (0x2000, 1 << 10),  # PTRACE
    (0x800, 1 << 11),  # SIGHAND
    (0x40000, 1 << 12),  # SYSVSEM
    (0x10000, 1 << 13),  # THREAD
    (0x800000, 1 << 14),  # UNTRACED
    (0x100, 1 << 15),  # VM
    (0x10000000, 1 << 20),  # NEWUSER
    (0x200000, 1 << 23),  # CHILD_CLEARTID
    (0x1000000, 1 << 24),  # CHILD_SETTID
    (0x80000, 1 << 25),  # SETTLS
    (0x4000, 1 << 27),  # VFORK
    (0x2000000, 1 << 28),  # NEWCGROUP
)
# Linux ptrace request -> PPM_PTRACE_* (driver/ppm_events_public.h).
_PTRACE = {
    0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 5: 6, 6: 7, 7: 8, 8: 9, 9: 10, 16: 11, 17: 12, 24: 13,
    0x4200: 14, 0x4201: 15, 0x4202: 16, 0x4203: 17, 0x4204: 18, 0x4205: 19, 0x4206: 20,
    0x4207: 21, 0x4208: 22, 0x4209: 23, 0x420A: 24, 0x420B: 25, 12: 26, 13: 27, 14: 28,
    15: 29, 18: 30, 19: 31, 25: 33, 26: 34, 30: 35, 31: 36, 32: 37, 33: 38,
}  # fmt: skip


def _map_flags(value: int, table: tuple[tuple[int, int], ...]) -> int:
    return sum(ppm for linux, ppm in table if value & linux == linux)


# Programs open with a handful of distinct flag values, and the conversion is a loop over the
# table: remembered per value, it costs one lookup per open event.
@functools.lru_cache(maxsize=4096)
def ppm_open_flags(flags: int) -> int:
    access = flags & 3
    ppm = {0: 1, 1: 2, 2: 3}.get(access, 0)  # RDONLY, WRONLY, RDWR = both bits
    ppm |= _map_flags(flags, _OPEN_FLAGS)
    if flags & _O_TMPFILE == _O_TMPFILE:
        ppm |= 1 << 13
    return ppm


def ppm_clone_flags(flags: int) -> int:
    return _map_flags(flags, _CLONE_FLAGS)


def ppm_ptrace_request(request: int) -> int:
    return _PTRACE.get(request & 0xFFFFFFFF, 0)


def s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def sockaddr(raw: bytes) -> SockAddr | None:
    """A struct sockaddr's family, address and port (None for families rules do not read)."""
    if len(raw) < 2:
        return None
    family = struct.unpack_from("<H", raw)[0]
    if family == AF_INET and len(raw) >= 8:
        port = struct.unpack_from(">H", raw, 2)[0]
        return SockAddr(AF_INET, ipaddress.IPv4Address(raw[4:8]), port)
    if family == AF_INET6 and len(raw) >= 24:
        port = struct.unpack_from(">H", raw, 2)[0]
        return SockAddr(AF_INET6, ipaddress.IPv6Address(raw[8:24]), port)
    if family == AF_UNIX:
        path = raw[2:].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        return SockAddr(AF_UNIX, path, 0)
    return None


def peer_tuple(addr: SockAddr | None, peer_is_dest: bool) -> SockTuple | None:
    """A tuple with the known peer; the local end stays unknown (the probe does not read the
    socket), which the tracker renders like libsinsp does an unbound local side."""
    if addr is None:
        return None
    if addr.family == AF_UNIX:
        return SockTuple(AF_UNIX, None, 0, None, 0, addr.address)
    any_address = ipaddress.ip_address("0.0.0.0" if addr.family == AF_INET else "::")
    if peer_is_dest:
        return SockTuple(addr.family, any_address, 0, addr.address, addr.port)
    return SockTuple(addr.family, addr.address, addr.port, any_address, 0)


def connect_tuple(sa: bytes) -> SockTuple | None:
    """connect's tuple: the peer from its sockaddr, and for TCP the socket's local address the
    probe appends to the slot (unknown, as 0.0.0.0:0, when it could not read it)."""
    peer = sockaddr(sa) if sa else None
    if peer is None or len(sa) < SA_MAX or peer.family not in (AF_INET, AF_INET6):
        return peer_tuple(peer, True)
    family, port, raw = _LOCAL.unpack_from(sa, LOCAL_AT)
    if family != peer.family:
        return peer_tuple(peer, True)
    local = ipaddress.IPv4Address(raw[:4]) if family == AF_INET else ipaddress.IPv6Address(raw)
    return SockTuple(family, local, port, peer.address, peer.port)


# A syscall's parameters from its record: (return value, the six raw arguments, the first and
# second user strings, the sockaddr bytes). Positional arguments rather than one object per
# event: this runs for every live event, and building an object costs as much as the decoding.
Decoder = Callable[[int, Sequence[int], str, str, bytes], dict[str, Any]]


@dataclass(frozen=True)
class ArgSpec:
    strings: tuple[int, ...] = ()
    sockaddr: tuple[int, int, bool] | None = None  # (addr arg, len arg, len is a pointer)
    exec_argv: int = 0  # execve: argv is argument 1, execveat: 2
    decode: Decoder | None = None

    def packed(self) -> bytes:
        """The C struct argspec."""
        s0, s1 = (*self.strings, NONE, NONE)[:2]
        sa, salen, is_ptr = self.sockaddr or (NONE, NONE, False)
        # without a decoder here, the record is decoded from the task fields (process creation)
        task = int(self.decode is None)
        return bytes(
            [s0, s1, sa, salen, int(is_ptr), int(bool(self.exec_argv)), self.exec_argv, task]
        )


def _open_how(raw: bytes) -> dict[str, int]:
    """struct open_how {u64 flags; u64 mode; u64 resolve} (zeros when it was not read)."""
    flags, mode, resolve = struct.unpack_from("<QQQ", raw.ljust(24, b"\0"))
    return {"flags": ppm_open_flags(flags), "mode": mode & 0o7777, "resolve": resolve}


def _res(ret: int, a: Sequence[int], s0: str, s1: str, sa: bytes) -> dict[str, Any]:
    return {"res": ret}


def _sock(sa: bytes) -> SockAddr | None:
    return sockaddr(sa) if sa else None


SPECS: dict[str, ArgSpec] = {
    "open": ArgSpec((0,), decode=lambda ret, a, s0, s1, sa: {
        "fd": ret, "name": s0, "flags": ppm_open_flags(a[1]), "mode": a[2] & 0o7777,
        "dev": 0, "ino": 0}),
    "openat": ArgSpec((1,), decode=lambda ret, a, s0, s1, sa: {
        "fd": ret, "dirfd": s32(a[0]), "name": s0, "flags": ppm_open_flags(a[2]),
        "mode": a[3] & 0o7777, "dev": 0, "ino": 0}),
    # openat2's flags live in a struct open_how: the probe's sockaddr slot copies it (its size
    # is argument 3), for successful calls, which are the ones open rules look at.
    "openat2": ArgSpec((1,), sockaddr=(2, 3, False), decode=lambda ret, a, s0, s1, sa: {
        "fd": ret, "dirfd": s32(a[0]), "name": s0, **_open_how(sa), "dev": 0,
        "ino": 0}),
    "creat": ArgSpec((0,), decode=lambda ret, a, s0, s1, sa: {
        "fd": ret, "name": s0, "mode": a[1] & 0o7777, "dev": 0, "ino": 0,
        "creat_flags": 0}),
    "close": ArgSpec(decode=lambda ret, a, s0, s1, sa: {"res": ret, "fd": s32(a[0])}),
    "dup": ArgSpec(decode=lambda ret, a, s0, s1, sa: {"res": ret, "oldfd": s32(a[0])}),
    "dup2": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "oldfd": s32(a[0]), "newfd": s32(a[1])}),
    "dup3": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "oldfd": s32(a[0]), "newfd": s32(a[1]),
        "flags": ppm_open_flags(a[2])}),
    "socket": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "fd": ret, "domain": a[0], "type": a[1] & 0xF, "proto": a[2],
        "flags": 0}),
    "connect": ArgSpec(sockaddr=(1, 2, False), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "tuple": connect_tuple(sa), "fd": s32(a[0]),
        "addr": _sock(sa)}),
    "bind": ArgSpec(sockaddr=(1, 2, False), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "addr": _sock(sa), "fd": s32(a[0])}),
    "listen": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "fd": s32(a[0]), "backlog": s32(a[1])}),
    "accept": ArgSpec(sockaddr=(1, 2, True), decode=lambda ret, a, s0, s1, sa: {
        "fd": ret, "tuple": peer_tuple(_sock(sa), False), "queuepct": 0,
        "queuelen": 0, "queuemax": 0}),
    "accept4": ArgSpec(sockaddr=(1, 2, True), decode=lambda ret, a, s0, s1, sa: {
        "fd": ret, "tuple": peer_tuple(_sock(sa), False), "queuepct": 0,
        "queuelen": 0, "queuemax": 0, "flags": s32(a[3])}),
    "sendto": ArgSpec(sockaddr=(4, 5, False), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "data": b"", "fd": s32(a[0]), "size": a[2] & 0xFFFFFFFF,
        "tuple": peer_tuple(_sock(sa), True)}),
    "recvfrom": ArgSpec(sockaddr=(4, 5, True), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "data": b"", "tuple": peer_tuple(_sock(sa), False),
        "fd": s32(a[0]), "size": a[2] & 0xFFFFFFFF}),
    "chdir": ArgSpec((0,), decode=lambda ret, a, s0, s1, sa: {"res": ret, "path": s0}),
    "fchdir": ArgSpec(decode=lambda ret, a, s0, s1, sa: {"res": ret, "fd": s32(a[0])}),
    "chroot": ArgSpec((0,), decode=lambda ret, a, s0, s1, sa: {"res": ret, "path": s0}),
    "setuid": ArgSpec(decode=lambda ret, a, s0, s1, sa: {"res": ret, "uid": a[0] & 0xFFFFFFFF}),
    "setgid": ArgSpec(decode=lambda ret, a, s0, s1, sa: {"res": ret, "gid": a[0] & 0xFFFFFFFF}),
    "setreuid": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "ruid": a[0] & 0xFFFFFFFF, "euid": a[1] & 0xFFFFFFFF}),
    "setregid": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "rgid": a[0] & 0xFFFFFFFF, "egid": a[1] & 0xFFFFFFFF}),
    "setresuid": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "ruid": a[0] & 0xFFFFFFFF, "euid": a[1] & 0xFFFFFFFF,
        "suid": a[2] & 0xFFFFFFFF}),
    "setresgid": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "rgid": a[0] & 0xFFFFFFFF, "egid": a[1] & 0xFFFFFFFF,
        "sgid": a[2] & 0xFFFFFFFF}),
    "setns": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "fd": s32(a[0]), "nstype": ppm_clone_flags(a[1])}),
    "unshare": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "flags": ppm_clone_flags(a[0])}),
    "mount": ArgSpec((0, 1), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "dev": s0, "dir": s1, "type": "", "flags": a[3] & 0xFFFFFFFF}),
    "umount2": ArgSpec((0,), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "name": s0, "flags": a[1] & 0xFFFFFFFF}),
    "ptrace": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "addr": a[2], "data": a[3],
        "request": ppm_ptrace_request(a[0]), "pid": s32(a[1])}),
    "memfd_create": ArgSpec((0,), decode=lambda ret, a, s0, s1, sa: {
        "fd": ret, "name": s0, "flags": a[1] & 0x7}),
    "bpf": ArgSpec(decode=lambda ret, a, s0, s1, sa: {"fd": ret, "cmd": a[0] & 0xFFFFFFFF}),
    "init_module": ArgSpec((2,), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "img": b"", "length": a[1], "uargs": s0}),
    "finit_module": ArgSpec((1,), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "fd": s32(a[0]), "uargs": s0, "flags": a[2] & 0xFFFFFFFF}),
    "userfaultfd": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "flags": ppm_open_flags(a[0])}),
    "io_uring_setup": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "entries": a[0] & 0xFFFFFFFF, "sq_entries": 0, "cq_entries": 0,
        "flags": 0, "sq_thread_cpu": 0, "sq_thread_idle": 0, "features": 0}),
    "unlink": ArgSpec((0,), decode=lambda ret, a, s0, s1, sa: {"res": ret, "path": s0}),
    "unlinkat": ArgSpec((1,), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "dirfd": s32(a[0]), "name": s0, "flags": a[2] & 0xFFFFFFFF}),
    "rename": ArgSpec((0, 1), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "oldpath": s0, "newpath": s1}),
    "renameat": ArgSpec((1, 3), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "olddirfd": s32(a[0]), "oldpath": s0,
        "newdirfd": s32(a[2]), "newpath": s1}),
    "renameat2": ArgSpec((1, 3), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "olddirfd": s32(a[0]), "oldpath": s0,
        "newdirfd": s32(a[2]), "newpath": s1, "flags": a[4] & 0xFFFFFFFF}),
    "link": ArgSpec((0, 1), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "oldpath": s0, "newpath": s1}),
    "linkat": ArgSpec((1, 3), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "olddir": s32(a[0]), "oldpath": s0, "newdir": s32(a[2]),
        "newpath": s1, "flags": a[4] & 0xFFFFFFFF}),
    "symlink": ArgSpec((0, 1), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "target": s0, "linkpath": s1}),
    "symlinkat": ArgSpec((0, 2), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "target": s0, "linkdirfd": s32(a[1]), "linkpath": s1}),
    "mkdir": ArgSpec((0,), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "path": s0, "mode": a[1] & 0o7777}),
    "mkdirat": ArgSpec((1,), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "dirfd": s32(a[0]), "path": s0, "mode": a[2] & 0o7777}),
    "rmdir": ArgSpec((0,), decode=lambda ret, a, s0, s1, sa: {"res": ret, "path": s0}),
    "chmod": ArgSpec((0,), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "filename": s0, "mode": a[1] & 0o7777}),
    "fchmodat": ArgSpec((1,), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "dirfd": s32(a[0]), "filename": s0, "mode": a[2] & 0o7777}),
    "fchmod": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "fd": s32(a[0]), "mode": a[1] & 0o7777}),
    "chown": ArgSpec((0,), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "path": s0, "uid": a[1] & 0xFFFFFFFF,
        "gid": a[2] & 0xFFFFFFFF}),
    "lchown": ArgSpec((0,), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "path": s0, "uid": a[1] & 0xFFFFFFFF,
        "gid": a[2] & 0xFFFFFFFF}),
    "fchown": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "fd": s32(a[0]), "uid": a[1] & 0xFFFFFFFF,
        "gid": a[2] & 0xFFFFFFFF}),
    "fchownat": ArgSpec((1,), decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "dirfd": s32(a[0]), "pathname": s0,
        "uid": a[2] & 0xFFFFFFFF, "gid": a[3] & 0xFFFFFFFF,
        "flags": a[4] & 0xFFFFFFFF}),
    "kill": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "pid": s32(a[0]), "sig": a[1] & 0xFF}),
    "prctl": ArgSpec(decode=lambda ret, a, s0, s1, sa: {
        "res": ret, "option": a[0] & 0xFFFFFFFF, "arg2_str": "", "arg2_int": a[1]}),
    "pipe": ArgSpec(decode=_res),
    "pipe2": ArgSpec(decode=_res),
    # The process-creation and exec syscalls are decoded by bpf.records (they need /proc).
    "clone": ArgSpec(),
    "clone3": ArgSpec(),
    "fork": ArgSpec(),
    "vfork": ArgSpec(),
    "execve": ArgSpec(exec_argv=1),
    "execveat": ArgSpec(exec_argv=2),
}  # fmt: skip

# What the state tracker needs whatever the rules (Falco's "repair" minimum, plus what keeps
# fd and process tables right).
STATE_SYSCALLS = frozenset({
    "clone", "clone3", "fork", "vfork", "execve", "execveat", "open", "openat", "openat2",
    "creat", "close", "dup", "dup2", "dup3", "socket", "connect", "accept", "accept4", "bind",
    "chdir", "fchdir", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
    "pipe", "pipe2", "memfd_create", "userfaultfd", "bpf", "io_uring_setup",
})  # fmt: skip


def supported() -> frozenset[str]:
    return frozenset(SPECS)
