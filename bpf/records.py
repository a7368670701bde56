"""Ring-buffer records (probe.c's struct hdr / sys_rec / exec_rec) -> the engine's exit events.

Decoding happens a batch at a time, reading the records where the ring buffer's mapping holds
them (bpf/ringbuf.py hands out their offsets). The parameters are named and typed as the
drivers' event table has them, so the state tracker, the field extractors and the capture
writer treat live events exactly like replayed ones.
"""

from __future__ import annotations

import mmap
import struct
import time
from collections.abc import Iterable
from itertools import accumulate
from typing import Any

from bpf import procfs
from bpf.syscalls import SA_MAX, SPECS, X86_64, ArgSpec, Decoder, ppm_clone_flags
from engine.sources.syscall.events import SyscallEvent
from engine.sources.syscall.eventtable import EventInfo, event_info, newest_code
from engine.sources.syscall.state import PPM_EXE_FROM_MEMFD

HDR = struct.Struct("<QIIIIiH3HB11xq6Q16s")
_HEAD = struct.Struct("<QIIIIiH3HB11xq6Q")  # HDR without comm
_COMM = _HEAD.size
# The hot path's view of the header: pid, uid, gid and the truncation flags skipped as padding
# (plain syscalls do not read them), so each record builds 15 values instead of 18.
_HOT = struct.Struct("<QI12xiH3H12xq6Q")
assert _HOT.size == _HEAD.size
STR_MAX = 256
SYS_REC_SIZE = HDR.size + 2 * STR_MAX + SA_MAX
_S0, _S1, _SA = HDR.size, HDR.size + STR_MAX, HDR.size + 2 * STR_MAX
KIND_SYSCALL, KIND_EXEC, KIND_PROCEXIT, KIND_SELF_FORK = 0, 1, 2, 3
TRUNCATED_ARGV, TRUNCATED_ENV = 1, 2
_CLONE_VFORK_VM = (1 << 27) | (1 << 15)  # PPM_CL_CLONE_VFORK | PPM_CL_CLONE_VM
_NAMES_BY_ID = {number: name for name, number in X86_64.items()}


def syscall_record_size(spec: ArgSpec) -> int:
    """How long probe.c's emit_syscall makes a syscall's records: every part keeps its fixed
    offset, and the record ends after the last part the syscall's spec uses."""
    if spec.sockaddr is not None:
        return SYS_REC_SIZE
    if len(spec.strings) > 1:
        return _SA
    if spec.strings:
        return _S1
    return HDR.size


def _infos() -> dict[int, tuple[str, EventInfo, Decoder | None]]:
    table: dict[int, tuple[str, EventInfo, Decoder | None]] = {}
    for name, spec in SPECS.items():
        code = newest_code(name, False)
        info = event_info(code) if code is not None else None
        if info is not None and name in X86_64:
            table[X86_64[name]] = (name, info, spec.decode)
    return table


# What records are read from: a bytes object, or the ring buffer's memory mapping.
Buffer = bytes | mmap.mmap

_INFO_BY_ID = _infos()
# Syscalls whose parameters come from the record alone (not clone/fork/exec): the hot path.
_PLAIN_BY_ID = {
    sysid: (info, decode) for sysid, (_, info, decode) in _INFO_BY_ID.items() if decode is not None
}
_PROCEXIT = event_info(newest_code("procexit", True) or 0)
_CLONE = event_info(newest_code("clone", False) or 0)


def _comm(buffer: Buffer, at: int) -> str:
    return buffer[at + _COMM : at + _COMM + 16].split(b"\0", 1)[0].decode("utf-8", "replace")


def _text(raw: bytes, length: int) -> str:
    return raw[: max(length - 1, 0)].decode("utf-8", "surrogateescape")


def complete_params(info: EventInfo, params: dict[str, Any]) -> dict[str, Any]:
    """Every parameter of the event, in table order, for the capture writer (its encoder stops
    at the first absent one): what the probe did not know is written as 0/empty. Live events
    keep only what is known, so the tracker never takes a filler 0 for a fact."""
    full: dict[str, Any] = {}
    for spec in info.params:
        if spec.name in params:
            full[spec.name] = params[spec.name]
        elif spec.type in ("CHARBUF", "FSPATH", "FSRELPATH"):
            full[spec.name] = ""
        elif spec.type == "BYTEBUF":
            full[spec.name] = b""
        elif spec.type in ("SOCKADDR", "SOCKTUPLE", "DYN"):
            full[spec.name] = None
        else:
            full[spec.name] = 0
    return full


class RecordDecoder:
    """Turns record bytes into SyscallEvents, numbering them and converting kernel timestamps
    (CLOCK_MONOTONIC) to ns since the epoch."""

    def __init__(self) -> None:
        self.num = 0
        self.boot_offset = time.time_ns() - time.monotonic_ns()
        self.truncated_execs = 0
        self.unknown = 0

    def decode(self, records: Iterable[bytes]) -> list[SyscallEvent]:
        """The events of a batch of records, in order; records of syscalls the table does not
        know are counted (`unknown`) and skipped."""
        records = list(records)
        if not records:
            return []
        offsets = list(accumulate((len(record) for record in records[:-1]), initial=0))
        return self.decode_at(b"".join(records), offsets)

    def decode_one(self, record: bytes) -> SyscallEvent | None:
        events = self.decode_at(record, (0,))
        return events[0] if events else None

    def decode_at(self, buffer: Buffer, offsets: Iterable[int]) -> list[SyscallEvent]:
        """decode() for records that sit in one buffer at `offsets` (the ring buffer's mapping:
        no copy of each record into its own bytes object)."""
        # The hot path (plain syscalls) is inlined here with its lookups bound to locals: it
        # runs for every live event, and each call or attribute access is a measurable share.
        events: list[SyscallEvent] = []
        append = events.append
        unpack = _HOT.unpack_from
        plain = _PLAIN_BY_ID
        boot_offset = self.boot_offset
        num = self.num
        try:
            for at in offsets:
                ts, tid, sysid, kind, l0, l1, l2, ret, *args = unpack(buffer, at)
                num += 1
                ts += boot_offset
                if kind == KIND_SYSCALL:
                    entry = plain.get(sysid)
                    if entry is not None:
                        info, decode_params = entry
                        params = decode_params(
                            ret,
                            args,
                            buffer[at + _S0 : at + _S0 + l0 - 1].decode("utf-8", "surrogateescape")
                            if l0
                            else "",
                            buffer[at + _S1 : at + _S1 + l1 - 1].decode("utf-8", "surrogateescape")
                            if l1
                            else "",
                            buffer[at + _SA : at + _SA + l2] if l2 else b"",
                        )
                        append(SyscallEvent(num, ts, tid, info, params))
                        continue
                event = self._decode_special(buffer, at, num, ts)
                if event is not None:
                    append(event)
        finally:
            self.num = num
        return events

    def _decode_special(self, buffer: Buffer, at: int, num: int, ts: int) -> SyscallEvent | None:
        """Records other than a plain syscall's: process creation, exec, process exit, a child
        of falconet itself, and syscalls the table does not know."""
        _, tid, pid, uid, gid, sysid, kind, l0, l1, l2, trunc, ret, *args = _HEAD.unpack_from(
            buffer, at
        )
        if kind == KIND_PROCEXIT:
            return SyscallEvent(num, ts, tid, _PROCEXIT, {})
        if kind == KIND_SELF_FORK:
            # A child of falconet itself: a parent-side clone exit (ret = the child's tid).
            return SyscallEvent(num, ts, tid, _CLONE, {"res": ret, "flags": 0})
        entry = _INFO_BY_ID.get(sysid)
        if entry is None:
            self.unknown += 1
            return None
        name, info, _ = entry
        comm = _comm(buffer, at)
        if kind == KIND_SYSCALL:
            params = self._clone_params(name, comm, tid, pid, uid, gid, ret, args)
        else:
            params = self._exec_params(
                buffer, at, pid, tid, uid, gid, comm, ret, (l0, l1, l2), trunc
            )
        return SyscallEvent(num, ts, tid, info, params)

    @staticmethod
    def _clone_params(
        name: str, comm: str, tid: int, pid: int, uid: int, gid: int, ret: int, args: list[int]
    ) -> dict[str, Any]:
        flags = ppm_clone_flags(args[0]) if name == "clone" else 0
        if name == "vfork":
            flags = _CLONE_VFORK_VM
        return {"res": ret, "tid": tid, "pid": pid, "comm": comm, "flags": flags,
                "uid": uid, "gid": gid}  # fmt: skip

    def _exec_params(
        self,
        buffer: Buffer,
        at: int,
        pid: int,
        tid: int,
        uid: int,
        gid: int,
        comm: str,
        ret: int,
        lens: tuple[int, int, int],
        truncated: int,
    ) -> dict[str, Any]:
        base = at + HDR.size
        filename = _text(buffer[base : base + STR_MAX], lens[0])
        argv_at = base + STR_MAX
        env_at = argv_at + 2 * 1024
        argv = buffer[argv_at : argv_at + lens[1]].rstrip(b"\0").split(b"\0")
        env = buffer[env_at : env_at + lens[2]].rstrip(b"\0")
        if truncated:
            self.truncated_execs += 1
        params: dict[str, Any] = {
            "res": ret,
            "exe": argv[0].decode("utf-8", "surrogateescape") if argv else filename,
            "args": b"\0".join(argv[1:]),
            "tid": tid,
            "pid": pid,
            "comm": comm,
            "env": env,
            "uid": uid,
            "gid": gid,
            "filename": filename,
        }
        if ret == 0:
            # The new image is in place: what the kernel side does not read comes from /proc
            # now (a process that already exited keeps what the record carries).
            params.update(procfs.exec_facts(pid))
            exepath = procfs.exe_path(pid)
            params["cwd"] = procfs.cwd(pid) or ""
            params["cgroups"] = "\0".join(procfs.cgroups(pid)).encode()
            params["trusted_exepath"] = exepath or filename
            if exepath and exepath.startswith("/memfd:"):
                params["flags"] = PPM_EXE_FROM_MEMFD
        return params


def syscall_name(sysid: int) -> str | None:
    return _NAMES_BY_ID.get(sysid)
