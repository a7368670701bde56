"""Parameters as libsinsp renders them for evt.arg.<name> and evt.args.

Flags and enums are shown by their names ("O_WRONLY|O_CREAT"), modes by their S_I* names,
errnos by name, fds with their type and name ("3(<f>/etc/passwd)"), socket tuples as
"a.b.c.d:p->e.f.g.h:q", byte buffers with non-printables as dots.
"""

from __future__ import annotations

import errno
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from engine.sources.syscall.eventtable import ParamInfo, flag_table
from engine.sources.syscall.params import AF_UNIX, SockAddr, SockTuple

if TYPE_CHECKING:
    from engine.sources.syscall.events import SyscallEvent

ENUM_TYPES = frozenset({"ENUMFLAGS8", "ENUMFLAGS16", "ENUMFLAGS32"})
FLAG_TYPES = frozenset({"FLAGS8", "FLAGS16", "FLAGS32", "MODE"})
_PRINTABLE = bytes(c if 32 <= c < 127 else ord(".") for c in range(256))


def errno_name(value: int) -> str:
    code = -value if value < 0 else value
    return errno.errorcode.get(code, str(value))


def result_text(res: int) -> str:
    """evt.res: "SUCCESS", or the error name of a negative result."""
    return "SUCCESS" if res >= 0 else errno_name(res)


@lru_cache(maxsize=4096)
def flag_names(table: str | None, value: int, exclusive: bool) -> str:
    entries = flag_table(table) if table else ()
    if not entries:
        return str(value)
    if exclusive:
        for label, flag in entries:
            if flag == value:
                return label
        return str(value)
    names = []
    remaining = value
    for label, flag in entries:
        if flag and value & flag == flag and remaining & flag:
            names.append(label)
            remaining &= ~flag
        elif flag == 0 and value == 0:
            names.append(label)
    return "|".join(names) if names else str(value)


def _mode_table(info: ParamInfo, event_type: str) -> str | None:
    if info.table:
        return info.table
    if info.type == "MODE":
        return "chmod_mode"
    return None


def render(event: SyscallEvent, info: ParamInfo, value: Any) -> str | None:
    if value is None:
        return None
    ptype = info.type
    if isinstance(value, int) and not isinstance(value, bool):
        if ptype in ENUM_TYPES:
            return flag_names(info.table, value, exclusive=True)
        if ptype in FLAG_TYPES:
            table = _mode_table(info, event.type)
            if table is None or not flag_table(table):
                return oct(value)[2:] if info.fmt == "OCT" else str(value)
            return flag_names(table, value, exclusive=False)
        if ptype == "ERRNO" and value < 0:
            return errno_name(value)
        if ptype in ("FD", "FD32"):
            return _render_fd(event, value)
        if info.fmt == "OCT":
            return "0" + oct(value)[2:]
        if info.fmt == "HEX":
            return hex(value)
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).translate(_PRINTABLE).decode("ascii")
    if isinstance(value, SockTuple):
        if value.family == AF_UNIX:
            return value.path or ""
        return f"{value.source}:{value.source_port}->{value.dest}:{value.dest_port}"
    if isinstance(value, SockAddr):
        if value.family == AF_UNIX:
            return str(value.address)
        return f"{value.address}:{value.port}"
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def _render_fd(event: SyscallEvent, value: int) -> str:
    if value < 0:
        return errno_name(value) if value != -100 else "AT_FDCWD"
    thread = event.thread
    fd = thread.fds.get(value) if thread is not None else None
    if fd is None and event.fd is not None and event.fd.num == value:
        fd = event.fd
    if fd is None:
        return str(value)
    return f"{value}(<{fd.type}>{fd.name})"


def render_all(event: SyscallEvent) -> str:
    """evt.args: every parameter as name=value, space-separated."""
    parts = []
    params = event.params
    by_name = event.info.by_name
    for name, value in params.items():
        info = by_name.get(name)
        text = render(event, info, value) if info is not None else str(value)
        parts.append(f"{name}={'' if text is None else text}")
    return " ".join(parts)
