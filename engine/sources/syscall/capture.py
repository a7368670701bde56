"""falconet's own capture format: compact, versioned, streaming (specified in schemas/capture.md).

    file    = MAGIC version:u16 frame* end-frame          (optionally gzip-compressed as a whole)
    frame   = kind:u8 length:u32 payload[length]
    'S'     snapshot: UTF-8 JSON {machine, threads, users, groups} (the state events start from)
    'T'     type table: count:u16 code:u16[count]; appends to the file's table (index = position)
    'E'     event chunk: count:u32, then columns type:u8[count] tid:u32[count] ts:u64[count]
            offset:u32[count+1] and the parameter area; event i's parameters are
            area[offset[i]:offset[i+1]] = nparams:u8 len:u16[nparams] values (scap encoding)
    'Z'     end: total events:u64 (a file without it was cut short)

Columns let a reader skip the events no rule or state needs at C speed (a byte translate over
the type column) and decode only the rest.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import re
import struct
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from engine.sources.syscall.errors import CaptureError
from engine.sources.syscall.events import SyscallEvent
from engine.sources.syscall.eventtable import EVENT_INFO, EventInfo
from engine.sources.syscall.params import compile_params_decoder
from engine.sources.syscall.state import FdInfo, FdTable, FsState, GroupInfo, ThreadInfo, UserInfo

Wanted = frozenset[str] | set[str] | None
MAGIC = b"FNCAP\0"
_SELECTED = re.compile(b"\x01")
VERSION = 1
_HEADER = struct.Struct("<6sH")
_FRAME = struct.Struct("<BI")
_CHUNK_HEAD = struct.Struct("<I")
SNAPSHOT, TYPES, EVENTS, END = b"S"[0], b"T"[0], b"E"[0], b"Z"[0]
MAX_TYPES = 255  # type indexes are one byte
DEFAULT_CHUNK = 4096
_MAX_FRAME = 256 * 1024 * 1024

# ThreadInfo fields written to the snapshot (everything but the shared fs/fd objects).
_THREAD_FIELDS = (
    "tid", "pid", "ptid", "sid", "vtid", "vpid", "vpgid", "pgid", "comm", "exe", "exepath",
    "args", "env", "uid", "gid", "euid", "egid", "loginuid", "tty", "clone_ts",
    "pidns_init_start_ts", "cgroups", "container_id", "exe_ino", "exe_ino_ctime",
    "exe_ino_mtime", "exe_writable", "exe_upper_layer", "exe_lower_layer", "exe_from_memfd",
    "cap_permitted", "cap_effective", "cap_inheritable", "fdlimit", "complete",
)  # fmt: skip
_FD_FIELDS = ("num", "type", "name", "nameraw", "flags", "ino", "dev", "family", "l4proto",
              "sport", "cport", "is_server", "connected")  # fmt: skip


@dataclass
class CaptureStats:
    events: int = 0  # every event in the file, decoded or skipped
    decoded: int = 0
    events_by_type: Counter[str] = field(default_factory=Counter)
    unknown_events: int = 0
    filtered: int = 0  # skipped after a look at their fd (state-only socket I/O on TCP)
    chunks: int = 0


@dataclass
class CaptureSnapshot:
    machine: dict[str, Any] | None = None
    threads: dict[int, ThreadInfo] = field(default_factory=dict)
    users: dict[int, UserInfo] = field(default_factory=dict)
    groups: dict[int, GroupInfo] = field(default_factory=dict)


# -- encoding -----------------------------------------------------------------------------------
def encode_params(info: EventInfo, values: dict[str, Any]) -> bytes:
    """Parameters in scap encoding, in the event table's order, stopping at the first absent one."""
    from engine.sources.syscall.encode import encode_value

    chunks: list[bytes] = []
    for spec in info.params:
        if spec.name not in values:
            break
        chunks.append(encode_value(spec.type, values[spec.name]))
    lens = struct.pack(f"<B{len(chunks)}H", len(chunks), *(len(c) for c in chunks))
    return lens + b"".join(chunks)


def _thread_json(thread: ThreadInfo) -> dict[str, Any]:
    entry = {name: getattr(thread, name) for name in _THREAD_FIELDS}
    entry["args"], entry["env"], entry["cgroups"] = (
        list(thread.args),
        list(thread.env),
        list(thread.cgroups),
    )
    entry["cwd"] = thread.cwd
    entry["fds"] = [_fd_json(fd) for fd in thread.fds.values()] if thread.is_main else []
    return entry


def _fd_json(fd: FdInfo) -> dict[str, Any]:
    entry = {name: getattr(fd, name) for name in _FD_FIELDS}
    entry["sip"] = None if fd.sip is None else str(fd.sip)
    entry["cip"] = None if fd.cip is None else str(fd.cip)
    return entry


class CaptureWriter:
    """Writes a capture: the snapshot first, then events in chunks. Use as a context manager;
    the end frame is written on close (a reader treats a file without it as truncated)."""

    def __init__(self, path: str | Path, compress: bool | None = None, chunk: int = DEFAULT_CHUNK):
        self.path = Path(path)
        compress = self.path.suffix == ".gz" if compress is None else compress
        self._raw: IO[bytes] = (
            gzip.open(self.path, "wb", compresslevel=1) if compress else open(self.path, "wb")  # noqa: SIM115
        )
        self._raw.write(_HEADER.pack(MAGIC, VERSION))
        self._chunk = chunk
        self._type_index: dict[int, int] = {}
        self._pending: list[tuple[int, int, int, bytes]] = []
        self.events = 0

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _frame(self, kind: int, payload: bytes) -> None:
        self._raw.write(_FRAME.pack(kind, len(payload)))
        self._raw.write(payload)

    def write_snapshot(
        self,
        threads: Iterable[ThreadInfo],
        users: Iterable[UserInfo] = (),
        groups: Iterable[GroupInfo] = (),
        machine: dict[str, Any] | None = None,
    ) -> None:
        document = {
            "version": VERSION,
            "machine": machine,
            "threads": [_thread_json(t) for t in threads],
            "users": [asdict(u) for u in users],
            "groups": [asdict(g) for g in groups],
        }
        self._frame(SNAPSHOT, json.dumps(document, separators=(",", ":")).encode())

    def _type(self, code: int) -> int:
        index = self._type_index.get(code)
        if index is None:
            if len(self._type_index) >= MAX_TYPES:
                raise CaptureError("a capture holds at most 255 distinct event types")
            index = self._type_index[code] = len(self._type_index)
            self._flush()
            self._frame(TYPES, struct.pack("<HH", 1, code))
        return index

    def write(self, code: int, ts: int, tid: int, params: bytes) -> None:
        """One event: its driver event code, timestamp (ns), thread id, encode_params() bytes."""
        # _type() may flush (and replace) the pending list: resolve it before appending.
        index = self._type(code)
        self._pending.append((index, tid, ts, params))
        if len(self._pending) >= self._chunk:
            self._flush()

    def write_event(self, event: SyscallEvent) -> None:
        self.write(event.info.code, event.ts, event.tid, encode_params(event.info, event.params))

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        count = len(pending)
        types = bytes(p[0] for p in pending)
        tids = array("I", (p[1] for p in pending))
        stamps = array("Q", (p[2] for p in pending))
        offsets = array("I", [0])
        total = 0
        for entry in pending:
            total += len(entry[3])
            offsets.append(total)
        payload = b"".join(
            (
                _CHUNK_HEAD.pack(count),
                types,
                tids.tobytes(),
                stamps.tobytes(),
                offsets.tobytes(),
                b"".join(p[3] for p in pending),
            )
        )
        self._frame(EVENTS, payload)
        self.events += count
        self._pending = []

    def close(self) -> None:
        if self._raw.closed:
            return
        self._flush()
        self._frame(END, struct.pack("<Q", self.events))
        self._raw.close()


# -- decoding -----------------------------------------------------------------------------------
def _thread_from_json(entry: dict[str, Any]) -> ThreadInfo:
    values = {name: entry.get(name) for name in _THREAD_FIELDS if name in entry}
    for name in ("args", "env", "cgroups"):
        values[name] = tuple(values.get(name) or ())
    thread = ThreadInfo(**values)
    thread.fs = FsState(entry.get("cwd"))
    thread.fds = FdTable()
    for fd_entry in entry.get("fds", ()):
        fd = FdInfo(**{k: fd_entry[k] for k in _FD_FIELDS if k in fd_entry})
        fd.sip = ipaddress.ip_address(fd_entry["sip"]) if fd_entry.get("sip") else None
        fd.cip = ipaddress.ip_address(fd_entry["cip"]) if fd_entry.get("cip") else None
        thread.fds[fd.num] = fd
    return thread


class CaptureReader:
    """Streams a falconet capture. `events(wanted)` yields decoded events; with `wanted` (a set
    of event names) the others are counted but never decoded."""

    def __init__(self, path: str | Path) -> None:
        from engine.sources.syscall.scap import open_capture_file

        self.path = Path(path)
        self.snapshot = CaptureSnapshot()
        self.stats = CaptureStats()
        try:
            self._stream = open_capture_file(self.path)
            header = self._stream.read(_HEADER.size)
        except OSError as error:
            raise CaptureError(f"cannot read capture {self.path}: {error}") from error
        if len(header) < _HEADER.size or header[:6] != MAGIC:
            self._stream.close()
            raise CaptureError(f"{self.path}: not a falconet capture")
        (version,) = struct.unpack_from("<H", header, 6)
        if version != VERSION:
            self._stream.close()
            raise CaptureError(
                f"{self.path}: falconet capture version {version} is not supported "
                f"(this falconet reads version {VERSION})",
                hint="replay it with the falconet release that wrote it",
            )
        self._types: list[EventInfo | None] = []
        self._decoders: list[Any] = []
        self._pending_frame: tuple[int, bytes] | None = None
        self._ended = False
        self._fd_filters: dict[str, Callable[[int, int], bool]] = {}
        self._filter_table: list[Any] | None = None
        self._mask_key: tuple[int, int] | None = None
        self._mask_table: bytes | None = None
        self._read_snapshot()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stream.close()

    def _next_frame(self) -> tuple[int, bytes] | None:
        if self._pending_frame is not None:
            frame, self._pending_frame = self._pending_frame, None
            return frame
        head = self._stream.read(_FRAME.size)
        if not head:
            return None
        if len(head) < _FRAME.size:
            raise CaptureError(f"{self.path}: truncated capture (cut inside a frame header)")
        kind, length = _FRAME.unpack(head)
        if length > _MAX_FRAME:
            raise CaptureError(f"{self.path}: corrupted capture (frame of {length} bytes)")
        payload = self._stream.read(length)
        if len(payload) < length:
            raise CaptureError(
                f"{self.path}: truncated capture (frame cut at {len(payload)} of {length} bytes)"
            )
        return kind, payload

    def _read_snapshot(self) -> None:
        frame = self._next_frame()
        if frame is None or frame[0] != SNAPSHOT:
            self._pending_frame = frame
            return
        try:
            document = json.loads(frame[1])
            snapshot = self.snapshot
            snapshot.machine = document.get("machine")
            for entry in document.get("threads", ()):
                thread = _thread_from_json(entry)
                snapshot.threads[thread.tid] = thread
            for entry in document.get("users", ()):
                snapshot.users[entry["uid"]] = UserInfo(**entry)
            for entry in document.get("groups", ()):
                snapshot.groups[entry["gid"]] = GroupInfo(**entry)
        except (ValueError, TypeError, KeyError) as error:
            raise CaptureError(f"{self.path}: corrupted snapshot ({error})") from error
        for thread in snapshot.threads.values():
            main = snapshot.threads.get(thread.pid)
            if main is not None and main is not thread:
                thread.fds, thread.fs = main.fds, main.fs

    def _add_types(self, payload: bytes) -> None:
        (count,) = struct.unpack_from("<H", payload, 0)
        for code in struct.unpack_from(f"<{count}H", payload, 2):
            info = EVENT_INFO.get(code)
            self._types.append(info)
            self._decoders.append(
                compile_params_decoder(tuple((p.name, p.type) for p in info.params))
                if info is not None
                else None
            )

    def events_wanted(
        self, wanted: Wanted, fd_filters: dict[str, Callable[[int, int], bool]] | None = None
    ) -> Iterator[SyscallEvent]:
        """Like events(wanted); `fd_filters` maps event names to `keep(tid, fd)`, asked with only
        the fd parameter decoded: events it refuses are counted and skipped."""
        self._fd_filters = fd_filters or {}
        self._filter_table = None
        return self.events(wanted)

    def _filters(self) -> list[Any]:
        """Per type index: None, or (keep, lens struct before the fd parameter)."""
        if self._filter_table is not None and len(self._filter_table) == len(self._types):
            return self._filter_table
        table: list[Any] = []
        for info in self._types:
            keep = self._fd_filters.get(info.name) if info is not None else None
            names = [p.name for p in info.params] if info is not None else []
            if keep is None or "fd" not in names:
                table.append(None)
                continue
            before = names.index("fd")
            table.append((keep, struct.Struct(f"<{before}H"), len(names)))
        self._filter_table = table
        return table

    def events(self, wanted: Wanted = None) -> Iterator[SyscallEvent]:
        while True:
            frame = self._next_frame()
            if frame is None:
                if not self._ended:
                    raise CaptureError(
                        f"{self.path}: truncated capture (no end frame after "
                        f"{self.stats.events} events)"
                    )
                return
            kind, payload = frame
            if kind == EVENTS:
                yield from self._chunk(payload, wanted)
            elif kind == TYPES:
                self._add_types(payload)
            elif kind == END:
                self._ended = True
            # Unknown frame kinds come from newer writers: skipped, like unknown events.

    def _mask(self, wanted: Wanted) -> bytes | None:
        if wanted is None:
            return None
        key = (id(wanted), len(self._types))
        if self._mask_key == key:
            return self._mask_table
        table = bytearray(256)
        for index, info in enumerate(self._types):
            if info is not None and (info.name in wanted or info.code < 2):
                table[index] = 1
        self._mask_key, self._mask_table = key, bytes(table)
        return self._mask_table

    def _chunk(self, payload: bytes, wanted: Wanted) -> Iterator[SyscallEvent]:
        (count,) = _CHUNK_HEAD.unpack_from(payload, 0)
        pos = _CHUNK_HEAD.size
        types = payload[pos : pos + count]
        pos += count
        tids = array("I")
        tids.frombytes(payload[pos : pos + 4 * count])
        pos += 4 * count
        stamps = array("Q")
        stamps.frombytes(payload[pos : pos + 8 * count])
        pos += 8 * count
        offsets = array("I")
        offsets.frombytes(payload[pos : pos + 4 * (count + 1)])
        pos += 4 * (count + 1)
        if len(offsets) != count + 1 or len(payload) < pos + offsets[-1]:
            raise CaptureError(f"{self.path}: corrupted event chunk")
        area = pos
        stats = self.stats
        base = stats.events
        stats.events += count
        stats.chunks += 1
        infos, decoders = self._types, self._decoders
        if count and max(types) >= len(infos):
            raise CaptureError(f"{self.path}: corrupted event chunk (unknown type index)")
        mask = self._mask(wanted)
        if mask is None:
            positions: Iterable[int] = range(count)
        else:
            positions = [m.start() for m in _SELECTED.finditer(types.translate(mask))]
        decoded = 0
        make_event = SyscallEvent
        filters = self._filters() if self._fd_filters else None
        from_bytes = int.from_bytes
        try:
            for i in positions:
                index = types[i]
                info = infos[index]
                if info is None:
                    stats.unknown_events += 1
                    continue
                start = area + offsets[i]
                if filters is not None and filters[index] is not None:
                    keep, lens_before, table_count = filters[index]
                    if payload[start] == table_count:
                        at = (
                            start
                            + 1
                            + 2 * table_count
                            + sum(lens_before.unpack_from(payload, start + 1))
                        )
                        if not keep(
                            tids[i], from_bytes(payload[at : at + 8], "little", signed=True)
                        ):
                            stats.filtered += 1
                            continue
                params = decoders[index](payload[start + 1 : area + offsets[i + 1]], payload[start])
                decoded += 1
                yield make_event(base + i + 1, stamps[i], tids[i], info, params)
        finally:
            stats.decoded += decoded
