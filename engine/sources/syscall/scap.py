"""Reader of Falco/sysdig .scap capture files (libscap's savefile format), gzipped or plain.

A capture is a sequence of pcapng-style blocks `{u32 type, u32 total_length, body, u32
total_length}`: a section header, then machine info, interface list, user/group list, process
list and per-process fd lists, then one block per event (with or without 32-bit flags, with or
without the parameter count in the event header). The metadata seeds the state tracker; events are
decoded with the driver's event table. Unknown event types are counted and skipped; a corrupt or
truncated file raises CaptureError after every event before the damage has been yielded.
"""

from __future__ import annotations

import gzip
import io
import ipaddress
import logging
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any

from engine.sources.syscall.errors import CaptureError
from engine.sources.syscall.events import SyscallEvent
from engine.sources.syscall.eventtable import EVENT_INFO
from engine.sources.syscall.eventtable_data import LARGE_PAYLOAD
from engine.sources.syscall.params import compile_params_decoder, decode
from engine.sources.syscall.state import (
    FD_BPF,
    FD_DIRECTORY,
    FD_EVENT,
    FD_EVENTPOLL,
    FD_FILE,
    FD_INOTIFY,
    FD_IO_URING,
    FD_IPV4,
    FD_IPV6,
    FD_MEMFD,
    FD_NETLINK,
    FD_OTHER,
    FD_PIDFD,
    FD_PIPE,
    FD_SIGNALFD,
    FD_TIMERFD,
    FD_UNIX,
    FD_USERFAULTFD,
    FdInfo,
    FdTable,
    FsState,
    GroupInfo,
    ThreadInfo,
    UserInfo,
)

log = logging.getLogger(__name__)

SHB_BLOCK_TYPE = 0x0A0D0D0A
SHB_MAGIC = 0x1A2B3C4D
MI_BLOCK_TYPES = frozenset({0x201, 0x8002ABCD})
PL_BLOCK_VERSIONS = {
    0x202: 1, 0x8000ABCD: 1, 0x207: 2, 0x8013ABCD: 2, 0x209: 3, 0x8014ABCD: 3,
    0x210: 4, 0x211: 5, 0x212: 6, 0x213: 7, 0x214: 8, 0x215: 9,
}  # fmt: skip
FDL_BLOCK_TYPES = {0x203: 1, 0x8001ABCD: 1, 0x218: 2}
IL_BLOCK_TYPES = {0x205: 1, 0x8011ABCD: 1, 0x219: 2}
UL_BLOCK_TYPES = {0x206: 1, 0x8012ABCD: 1, 0x220: 2}
# event block type -> (has flags, has nparams in the header, large payload allowed)
EV_BLOCK_TYPES = {
    0x204: (False, False),
    0x8010ABCD: (False, False),
    0x216: (False, True),
    0x221: (False, True),
    0x208: (True, False),
    0x217: (True, True),
    0x222: (True, True),
}
_BLOCK_HEADER = struct.Struct("<II")
_EVT_HEADER_V1 = struct.Struct("<QQIH")
_EVT_HEADER_V2 = struct.Struct("<QQIHI")
_MAX_BLOCK = 64 * 1024 * 1024

# scap fd types -> falconet fd type characters
_SCAP_FD_TYPES = {
    1: FD_FILE,
    2: FD_DIRECTORY,
    3: FD_IPV4,
    4: FD_IPV6,
    5: FD_IPV4,
    6: FD_IPV6,
    7: FD_PIPE,
    8: FD_UNIX,
    9: FD_EVENT,
    10: FD_OTHER,
    11: FD_SIGNALFD,
    12: FD_EVENTPOLL,
    13: FD_INOTIFY,
    14: FD_TIMERFD,
    15: FD_NETLINK,
    16: FD_FILE,
    17: FD_BPF,
    18: FD_USERFAULTFD,
    19: FD_IO_URING,
    20: FD_MEMFD,
    21: FD_PIDFD,
}
_SCAP_L4 = {2: "tcp", 3: "udp", 4: "icmp", 5: "raw"}


@dataclass
class MachineInfo:
    num_cpus: int
    memory_bytes: int
    max_pid: int
    hostname: str
    boot_ts: int


@dataclass
class Interface:
    name: str
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    netmask: ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass
class ScapStats:
    blocks: Counter[int] = field(default_factory=Counter)
    events: int = 0
    events_by_type: Counter[str] = field(default_factory=Counter)
    unknown_events: int = 0  # event codes this table does not know: skipped
    undecodable_events: int = 0  # parameter lengths that do not add up: skipped
    unknown_blocks: int = 0
    skipped: int = 0  # events of types the replay did not ask for (counted in events)


@dataclass
class Snapshot:
    """What a capture says about the machine before its first event."""

    machine: MachineInfo | None = None
    threads: dict[int, ThreadInfo] = field(default_factory=dict)
    users: dict[int, UserInfo] = field(default_factory=dict)
    groups: dict[int, GroupInfo] = field(default_factory=dict)
    interfaces: list[Interface] = field(default_factory=list)


class _Cursor:
    """Little-endian reads over one block body; a short read is corruption."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise CaptureError(f"corrupted {self.what}: entry runs past the end of its block")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        values = struct.unpack_from(fmt, self.take(size))
        return values[0] if len(values) == 1 else values

    def text16(self) -> str:
        return self.take(self.unpack("<H")).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")

    def bytes16(self) -> bytes:
        return self.take(self.unpack("<H"))


def open_capture_file(path: Path) -> IO[bytes]:
    """A binary stream of the capture, transparently gunzipped."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return io.BufferedReader(gzip.GzipFile(fileobj=raw), buffer_size=1 << 20)  # type: ignore[arg-type]
    return raw


class ScapReader:
    """Iterates a .scap file: `snapshot` is filled as metadata blocks are read; `events()` yields
    decoded events. Use as a context manager (it owns the file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.snapshot = Snapshot()
        self.stats = ScapStats()
        try:
            self._stream = open_capture_file(self.path)
        except OSError as error:
            raise CaptureError(
                f"cannot open capture {self.path}: {error.strerror or error}",
                hint="check the path given to --replay",
            ) from error
        self._pending: tuple[int, bytes] | None = None
        self._num = 0
        self._wanted: frozenset[str] | None = None
        try:
            self._read_section_header()
            self._read_metadata()
        except (EOFError, gzip.BadGzipFile, OSError) as error:
            self.close()
            raise CaptureError(f"{self.path}: not a readable capture ({error})") from error
        except CaptureError:
            self.close()
            raise

    def __enter__(self) -> ScapReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stream.close()

    # -- blocks ---------------------------------------------------------------------------------
    def _next_block(self) -> tuple[int, bytes] | None:
        if self._pending is not None:
            block, self._pending = self._pending, None
            return block
        header = self._stream.read(8)
        if not header:
            return None
        if len(header) < 8:
            raise CaptureError(f"{self.path}: truncated block header at the end of the capture")
        block_type, total = _BLOCK_HEADER.unpack(header)
        if total < 12 or total > _MAX_BLOCK:
            raise CaptureError(
                f"{self.path}: corrupted block (type {block_type:#x}, length {total})"
            )
        rest = self._stream.read(total - 8)
        if len(rest) < total - 8:
            raise CaptureError(
                f"{self.path}: truncated capture (block of {total} bytes cut at {len(rest) + 8})"
            )
        (trailer,) = struct.unpack_from("<I", rest, len(rest) - 4)
        if trailer != total:
            raise CaptureError(
                f"{self.path}: corrupted block (type {block_type:#x}: trailing length {trailer}, "
                f"expected {total})"
            )
        self.stats.blocks[block_type] += 1
        return block_type, rest[:-4]

    def _read_section_header(self) -> None:
        block = self._next_block()
        if block is None or block[0] != SHB_BLOCK_TYPE:
            raise CaptureError(
                f"{self.path}: not a scap capture (no section header block)",
                hint="--replay reads Falco/sysdig .scap files and falconet captures",
            )
        magic, major, _minor = struct.unpack_from("<IHH", block[1])
        if magic != SHB_MAGIC:
            raise CaptureError(f"{self.path}: unsupported byte order or corrupted section header")
        if major != 1:
            raise CaptureError(f"{self.path}: unsupported scap major version {major}")

    def _read_metadata(self) -> None:
        while True:
            block = self._next_block()
            if block is None:
                return
            if block[0] in EV_BLOCK_TYPES:
                self._pending = block
                self._link_threads()
                return
            self._apply_metadata(*block)

    def _apply_metadata(self, block_type: int, body: bytes) -> None:
        if block_type in MI_BLOCK_TYPES:
            self.snapshot.machine = _machine_info(body)
        elif block_type in PL_BLOCK_VERSIONS:
            for thread in _process_list(body, PL_BLOCK_VERSIONS[block_type]):
                self.snapshot.threads[thread.tid] = thread
        elif block_type in FDL_BLOCK_TYPES:
            _fd_list(body, FDL_BLOCK_TYPES[block_type], self.snapshot.threads)
        elif block_type in UL_BLOCK_TYPES:
            _user_list(body, UL_BLOCK_TYPES[block_type], self.snapshot)
        elif block_type in IL_BLOCK_TYPES:
            self.snapshot.interfaces.extend(_interface_list(body, IL_BLOCK_TYPES[block_type]))
        else:
            self.stats.unknown_blocks += 1

    def _link_threads(self) -> None:
        # Threads share their process's fd table and working directory (CLONE_FILES/CLONE_FS).
        threads = self.snapshot.threads
        for thread in threads.values():
            main = threads.get(thread.pid)
            if main is not None and main is not thread:
                if main.fds or not thread.fds:
                    thread.fds = main.fds
                thread.fs = main.fs

    # -- events ---------------------------------------------------------------------------------
    def events_wanted(
        self, wanted: frozenset[str], fd_filters: Any = None
    ) -> Iterator[SyscallEvent]:
        """Like events(), decoding only the `wanted` event types (generic events, whose name
        depends on a parameter, always); the others are counted in `stats.skipped`."""
        self._wanted = wanted
        return self.events()

    def events(self) -> Iterator[SyscallEvent]:
        while True:
            block = self._next_block()
            if block is None:
                return
            block_type, body = block
            layout = EV_BLOCK_TYPES.get(block_type)
            if layout is None:
                # Metadata after the first event (libscap allows it): apply it.
                self._apply_metadata(block_type, body)
                continue
            event = self._decode_event(body, *layout)
            if event is not None:
                yield event

    def _decode_event(self, body: bytes, has_flags: bool, has_nparams: bool) -> SyscallEvent | None:
        offset = 6 if has_flags else 2
        cpu = struct.unpack_from("<H", body, 0)[0] if len(body) >= 2 else 0
        header = _EVT_HEADER_V2 if has_nparams else _EVT_HEADER_V1
        if len(body) < offset + header.size:
            raise CaptureError(f"{self.path}: corrupted event block (shorter than its header)")
        if has_nparams:
            ts, tid, length, code, nparams = header.unpack_from(body, offset)
        else:
            ts, tid, length, code = header.unpack_from(body, offset)
            nparams = None
        info = EVENT_INFO.get(code)
        if info is None or info.name == "NA":
            self.stats.unknown_events += 1
            return None
        if self._wanted is not None and code > 1 and info.name not in self._wanted:
            self._num += 1  # evt.num counts every event
            self.stats.events += 1
            self.stats.skipped += 1
            return None
        # Blocks are padded to 32 bits: the event's own length says where its parameters end.
        if length < header.size or offset + length > len(body):
            raise CaptureError(f"{self.path}: corrupted event (length {length} outside its block)")
        data = body[offset + header.size : offset + length]
        wide = has_nparams and code in LARGE_PAYLOAD
        lens = _param_lengths(data, len(info.params), nparams, wide)
        if lens is None:
            self.stats.undecodable_events += 1
            log.debug("event #%d (%s): parameter lengths do not match", self._num + 1, info.name)
            return None
        if wide:
            params: dict[str, Any] = {}
            pos = len(lens) * 4
            for spec, size in zip(info.params, lens, strict=False):
                params[spec.name] = decode(spec.type, data[pos : pos + size])
                pos += size
        else:
            params = _decoder(code)(data, len(lens))
        self._num += 1
        self.stats.events += 1
        event = SyscallEvent(self._num, ts, tid, info, params, cpu)
        self.stats.events_by_type[event.type] += 1
        return event


@cache
def _decoder(code: int) -> Any:
    info = EVENT_INFO[code]
    return compile_params_decoder(tuple((p.name, p.type) for p in info.params))


def _param_lengths(
    data: bytes, table_count: int, nparams: int | None, wide: bool
) -> tuple[int, ...] | None:
    """The parameter lengths of one event. Old blocks have no count: like libscap, try the table's
    count downwards until the lengths add up to the event's size exactly."""
    width = 4 if wide else 2
    fmt = "<I" if wide else "<H"
    if nparams is not None:
        if nparams * width > len(data):
            return None
        lens = struct.unpack_from(f"<{nparams}{fmt[1]}", data, 0)
        return lens if nparams * width + sum(lens) <= len(data) else None
    for count in range(table_count, -1, -1):
        if count * width > len(data):
            continue
        lens = struct.unpack_from(f"<{count}{fmt[1]}", data, 0)
        if count * width + sum(lens) == len(data):
            return lens
    return None


# -- metadata blocks ----------------------------------------------------------------------------
def _machine_info(body: bytes) -> MachineInfo | None:
    if len(body) < 4 + 8 + 8 + 128 + 8:
        return None
    cpus, memory, max_pid = struct.unpack_from("<IQQ", body, 0)
    hostname = body[20:148].split(b"\0", 1)[0].decode("utf-8", "replace")
    (boot_ts,) = struct.unpack_from("<Q", body, 148)
    return MachineInfo(cpus, memory, max_pid, hostname, boot_ts)


def _split_nul(raw: bytes) -> tuple[str, ...]:
    raw = raw.rstrip(b"\0")
    if not raw:
        return ()
    return tuple(p.decode("utf-8", "surrogateescape") for p in raw.split(b"\0"))


def _process_list(body: bytes, version: int) -> Iterator[ThreadInfo]:
    cur = _Cursor(body, "process list")
    while cur.remaining >= 4:
        start = cur.pos
        sub_len = cur.unpack("<I") if version >= 9 else 0
        tid, pid, ptid = cur.unpack("<qqq")
        sid = cur.unpack("<q") if version >= 6 else None
        vpgid = cur.unpack("<q") if version >= 8 else None
        comm = cur.text16()
        exe = cur.text16()
        exepath = cur.text16() if version >= 7 else None
        args = cur.bytes16()
        cwd = cur.text16()
        fdlimit, _flags, uid, gid = cur.unpack("<qIII")
        thread = ThreadInfo(
            tid=tid, pid=pid, ptid=ptid, sid=sid if sid is not None else 0, vpgid=vpgid,
            comm=comm, exe=exe, exepath=exepath or None, uid=uid, gid=gid, fdlimit=fdlimit,
            fs=FsState(cwd or None), fds=FdTable(), complete=True,
        )  # fmt: skip
        # scap stores argv[1:] (argv[0] is exe), NUL-separated.
        thread.args = _split_nul(args)
        if version >= 2:
            cur.unpack("<IIIQQ")  # vm sizes and page faults: not tracked
            if version >= 3:
                thread.env = _split_nul(cur.bytes16())
            if version >= 4:
                thread.vtid, thread.vpid = cur.unpack("<qq")
                thread.cgroups = _split_nul(cur.bytes16())
                if version >= 5:
                    cur.text16()  # root directory
        if sub_len:
            _read_process_tail(cur, thread, start + sub_len)
            cur.pos = start + sub_len
        if thread.vtid is None or thread.vtid < 0:
            thread.vtid, thread.vpid = thread.tid, thread.pid
        yield thread


def _read_process_tail(cur: _Cursor, thread: ThreadInfo, end: int) -> None:
    """V9 entries grow by appending fields; read those present before the entry's end."""
    if end > len(cur.data):
        raise CaptureError("corrupted process list: entry runs past the end of its block")

    def fits(size: int) -> bool:
        return cur.pos + size <= end

    # Captures from before libs 0.10 have a shorter tail starting at loginuid (libscap's test).
    if end - cur.pos > 29:
        if fits(8):
            thread.pidns_init_start_ts = cur.unpack("<Q")
        if fits(4):
            thread.tty = cur.unpack("<I")
    if fits(4):
        thread.loginuid = cur.unpack("<I")
    if fits(1):
        thread.exe_writable = bool(cur.unpack("<B"))
    if fits(24):
        thread.cap_inheritable, thread.cap_permitted, thread.cap_effective = cur.unpack("<QQQ")
    if fits(1):
        thread.exe_upper_layer = bool(cur.unpack("<B"))
    if fits(8):
        thread.exe_ino = cur.unpack("<Q")
    if fits(8):
        thread.exe_ino_ctime = cur.unpack("<Q")
    if fits(8):
        thread.exe_ino_mtime = cur.unpack("<Q")
    if fits(1):
        thread.exe_from_memfd = bool(cur.unpack("<B"))
    if fits(1):
        thread.exe_lower_layer = bool(cur.unpack("<B"))
    if fits(8):
        thread.pgid = cur.unpack("<q")


def _fd_list(body: bytes, version: int, threads: dict[int, ThreadInfo]) -> None:
    cur = _Cursor(body, "fd list")
    tid = cur.unpack("<Q")
    thread = threads.get(tid)
    while cur.remaining >= 4:
        start = cur.pos
        sub_len = cur.unpack("<I") if version >= 2 else 0
        num, ino, scap_type = cur.unpack("<qQB")
        fd = _fd_entry(cur, num, ino, scap_type, start + sub_len if sub_len else None)
        if sub_len:
            cur.pos = start + sub_len
        if thread is not None and fd is not None:
            thread.fds[num] = fd


def _fd_entry(cur: _Cursor, num: int, ino: int, scap_type: int, end: int | None) -> FdInfo | None:
    kind = _SCAP_FD_TYPES.get(scap_type)
    if kind is None:
        return FdInfo(num=num, type=FD_OTHER, name=f"unknown-type:[{scap_type}]", ino=ino)
    fd = FdInfo(num=num, type=kind, ino=ino)
    if scap_type == 3:  # IPv4 socket: client/server tuple
        sip, dip = ipaddress.IPv4Address(cur.take(4)), ipaddress.IPv4Address(cur.take(4))
        sport, dport, l4 = cur.unpack("<HHB")
        _tuple_fd(fd, sip, sport, dip, dport, l4)
    elif scap_type == 4:
        sip, dip = ipaddress.IPv6Address(cur.take(16)), ipaddress.IPv6Address(cur.take(16))
        sport, dport, l4 = cur.unpack("<HHB")
        _tuple_fd(fd, sip.ipv4_mapped or sip, sport, dip.ipv4_mapped or dip, dport, l4)
    elif scap_type in (5, 6):  # listening socket
        ip = ipaddress.ip_address(cur.take(4 if scap_type == 5 else 16))
        port, l4 = cur.unpack("<HB")
        fd.sip, fd.sport, fd.l4proto, fd.is_server = ip, port, _SCAP_L4.get(l4), True
        fd.name = f"{ip}:{port}"
    elif scap_type == 8:
        cur.unpack("<QQ")
        fd.name = cur.text16()
    elif scap_type == 16:
        fd.flags = cur.unpack("<I")
        fd.name = cur.text16()
        if end is not None and cur.pos + 4 <= end:
            fd.dev = cur.unpack("<I")
    else:
        fd.name = cur.text16()
    fd.nameraw = fd.name
    return fd


def _tuple_fd(fd: FdInfo, sip: Any, sport: int, dip: Any, dport: int, l4: int) -> None:
    fd.cip, fd.cport, fd.sip, fd.sport = sip, sport, dip, dport
    fd.l4proto = _SCAP_L4.get(l4)
    fd.connected = True
    fd.name = f"{sip}:{sport}->{dip}:{dport}"


def _user_list(body: bytes, version: int, snapshot: Snapshot) -> None:
    cur = _Cursor(body, "user list")
    while cur.remaining >= 4:
        start = cur.pos
        sub_len = cur.unpack("<I") if version >= 2 else 0
        kind = cur.unpack("<B")
        if kind == 0:
            uid, gid = cur.unpack("<II")
            name, home, shell = cur.text16(), cur.text16(), cur.text16()
            snapshot.users[uid] = UserInfo(uid, gid, name, home, shell)
        else:
            gid = cur.unpack("<I")
            snapshot.groups[gid] = GroupInfo(gid, cur.text16())
        if sub_len:
            cur.pos = start + sub_len


def _interface_list(body: bytes, version: int) -> Iterator[Interface]:
    cur = _Cursor(body, "interface list")
    while cur.remaining >= 4:
        entry_size = cur.unpack("<I") if version >= 2 else 0
        start = cur.pos
        kind, name_len = cur.unpack("<HH")
        if kind in (1, 3):
            addr, mask, _bcast = cur.take(4), cur.take(4), cur.take(4)
            if kind == 1:
                cur.take(8)
            interface = Interface(
                cur.take(name_len).split(b"\0", 1)[0].decode("utf-8", "replace"),
                ipaddress.IPv4Address(addr),
                ipaddress.IPv4Address(mask),
            )
        elif kind in (2, 4):
            addr, mask, _bcast = cur.take(16), cur.take(16), cur.take(16)
            if kind == 2:
                cur.take(8)
            interface = Interface(
                cur.take(name_len).split(b"\0", 1)[0].decode("utf-8", "replace"),
                ipaddress.IPv6Address(addr),
                ipaddress.IPv6Address(mask),
            )
        else:
            raise CaptureError(f"corrupted interface list: unknown interface type {kind}")
        if entry_size:
            cur.pos = start + entry_size
        yield interface
