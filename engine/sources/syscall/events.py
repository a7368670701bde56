"""The syscall event model.

One SyscallEvent per driver event. Falco's current model is exit events carrying the syscall's
arguments and result together; older captures split them between an enter and an exit event, so
the state tracker merges the enter's parameters into the matching exit (`params` then holds both).
Enter events are kept (evt.dir = ">") for rules that still use evt.dir and for --all-events.

`thread` and `fd` are bound by the state tracker when it processes the event; extractors read
them. They are valid until the tracker processes the next event (rule evaluation and output
formatting happen in between).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.sources.syscall.eventtable import EventInfo

if TYPE_CHECKING:
    from engine.sources.syscall.state import FdInfo, StateTracker, ThreadInfo


class SyscallEvent:
    __slots__ = (
        "cpu",
        "dir",
        "fd",
        "info",
        "num",
        "open_flags",
        "params",
        "state",
        "thread",
        "tid",
        "ts",
        "type",
    )

    def __init__(
        self,
        num: int,
        ts: int,
        tid: int,
        info: EventInfo,
        params: dict[str, Any],
        cpu: int = 0,
    ) -> None:
        self.num = num
        self.ts = ts  # ns since the epoch
        self.tid = tid
        self.cpu = cpu
        self.info = info
        self.type = info.name if info.code > 1 else _generic_name(params)
        self.dir = info.dir
        self.params = params
        self.thread: ThreadInfo | None = None
        self.fd: FdInfo | None = None
        self.state: StateTracker | None = None  # the tracker that bound thread/fd
        # evt.is_open_* memo: many rules test them on the same open event (0: not an open).
        self.open_flags: int | None = None

    @property
    def is_enter(self) -> bool:
        return self.info.is_enter

    @property
    def res(self) -> int | None:
        """The syscall's return value (exit events whose first parameter is a result)."""
        key = self.info.result
        if key is None:
            return None
        value = self.params.get(key)
        return value if isinstance(value, int) else None

    def __repr__(self) -> str:
        return f"SyscallEvent(#{self.num} {self.dir} {self.type} tid={self.tid} {self.params!r})"


def _generic_name(params: dict[str, Any]) -> str:
    # Syscalls without a dedicated event arrive as generic events carrying the syscall's id;
    # libsinsp reports them under the syscall's own name (evt.type=madvise).
    from engine.sources.syscall.eventtable_data import SYSCALL_NAMES

    return SYSCALL_NAMES.get(params.get("ID", -1), "syscall")


def new_event(
    num: int, ts: int, tid: int, name: str, params: dict[str, Any], enter: bool = False
) -> SyscallEvent:
    """An event of the newest driver version of syscall `name` (for tests and generators)."""
    from engine.sources.syscall.eventtable import event_info, newest_code

    # Meta-events (procexit, signaldeliver...) exist only as "enter" events.
    code = newest_code(name, enter) or newest_code(name, True)
    info = event_info(code) if code is not None else None
    if info is None:
        raise ValueError(f"unknown event type {name!r}")
    return SyscallEvent(num, ts, tid, info, params)
