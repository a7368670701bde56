"""Which tracepoints carry the selected syscalls, and keeping the probe attached to exactly those.

probe.c's two generic programs are attached to `syscalls:sys_enter_<name>` / `sys_exit_<name>`
of each selected syscall, so syscalls nobody selected run no BPF. A syscall this kernel
implements without a per-syscall tracepoint is served by `raw_syscalls` (same field offsets,
filtered by the interesting map), which makes every syscall pay again: it is logged. A syscall
the kernel does not implement at all (a weak `sys_ni_syscall` stub, e.g. init_module on a
kernel without modules) returns ENOSYS and needs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bpf.errors import BpfRequirementError

log = logging.getLogger(__name__)

TRACEFS_SYSCALLS = Path("/sys/kernel/tracing/events/syscalls")
KALLSYMS = Path("/proc/kallsyms")
ENTER_PROGRAM = "on_sys_enter{}"  # by argument count: 0..6
EXIT_PROGRAM = b"on_sys_exit"
MAX_ARGS = 6
RAW_ENTER = b"raw_syscalls:sys_enter"
RAW_EXIT = b"raw_syscalls:sys_exit"
# Closing a tracepoint's perf event waits for an RCU grace period (tens of ms): detaching
# dozens one after the other takes seconds, in parallel about one grace period.
DETACH_THREADS = 32
# Syscalls whose SYSCALL_DEFINE name (hence tracepoint name) differs from the table's name.
TRACEPOINT_NAMES = {"umount2": "umount"}


@dataclass(frozen=True)
class Placement:
    """Where each selected syscall is traced."""

    per_syscall: frozenset[str]  # own tracepoints
    raw: frozenset[str]  # implemented, but only raw_syscalls sees them
    absent: frozenset[str]  # not implemented by this kernel (ENOSYS)


def tracepoint_name(syscall: str) -> str:
    return TRACEPOINT_NAMES.get(syscall, syscall)


def has_tracepoint(syscall: str, root: Path = TRACEFS_SYSCALLS) -> bool:
    return (root / f"sys_enter_{tracepoint_name(syscall)}").is_dir()


def arg_count(syscall: str, root: Path = TRACEFS_SYSCALLS) -> int:
    """How many arguments the syscall's enter tracepoint carries (its format's fields after
    __syscall_nr): the enter program attached must read no further."""
    fmt = root / f"sys_enter_{tracepoint_name(syscall)}" / "format"
    fields = [line for line in fmt.read_text().splitlines() if "field:" in line]
    names = [line.split(";")[0].split()[-1] for line in fields]
    after = names[names.index("__syscall_nr") + 1 :] if "__syscall_nr" in names else []
    return min(len(after), MAX_ARGS)


def enter_program(nargs: int) -> bytes:
    return ENTER_PROGRAM.format(nargs).encode()


def implemented_without_tracepoint(names: Iterable[str], kallsyms: Path = KALLSYMS) -> set[str]:
    """Of `names`, those with a real (`T`) __x64_sys_ function: a weak (`W`) one is the
    sys_ni_syscall stub the kernel builds for a syscall it leaves out."""
    wanted = {f"__x64_sys_{tracepoint_name(n)}": n for n in names}
    if not wanted:
        return set()
    found: set[str] = set()
    with kallsyms.open() as lines:
        for line in lines:
            parts = line.split()
            if len(parts) >= 3 and parts[2] in wanted and parts[1] in ("T", "t"):
                found.add(wanted[parts[2]])
    return found


def place(
    syscalls: Iterable[str], root: Path = TRACEFS_SYSCALLS, kallsyms: Path = KALLSYMS
) -> Placement:
    chosen = frozenset(syscalls)
    own = frozenset(n for n in chosen if has_tracepoint(n, root))
    missing = chosen - own
    raw = frozenset(implemented_without_tracepoint(missing, kallsyms)) if missing else frozenset()
    return Placement(own, raw, missing - raw)


class Attachments:
    """The tracepoints the generic programs are attached to on one bcc.BPF object; `follow`
    attaches and detaches the difference (programs and maps stay loaded)."""

    def __init__(self, bpf: Any) -> None:
        self._bpf = bpf
        # Every program is loaded (verified) now, so that a swap only attaches and detaches.
        tracepoint_type = type(bpf).TRACEPOINT
        for nargs in range(MAX_ARGS + 1):
            bpf.load_func(enter_program(nargs), tracepoint_type)
        bpf.load_func(EXIT_PROGRAM, tracepoint_type)
        self.syscalls: frozenset[str] = frozenset()
        self.raw = False
        self.placement = Placement(frozenset(), frozenset(), frozenset())

    def follow(self, syscalls: Iterable[str]) -> Placement:
        placement = place(syscalls)
        attached = set(self.syscalls)
        try:
            for name in sorted(placement.per_syscall - self.syscalls):
                self._attach(name)
                attached.add(name)
        finally:
            self.syscalls = frozenset(attached)  # what is attached, even after a failure
        self._detach_all(self.syscalls - placement.per_syscall)
        self.syscalls = placement.per_syscall
        self._follow_raw(bool(placement.raw))
        if placement.raw and placement.raw != self.placement.raw:
            log.warning(
                "no per-syscall tracepoint for %s: traced through raw_syscalls, which makes "
                "every syscall on the machine run the probe",
                ", ".join(sorted(placement.raw)),
            )
        if placement.absent and placement.absent != self.placement.absent:
            log.info("not implemented by this kernel: %s", ", ".join(sorted(placement.absent)))
        self.placement = placement
        return placement

    def _attach(self, name: str) -> None:
        tp = tracepoint_name(name)
        exit_tp, enter_tp = (f"syscalls:sys_{side}_{tp}".encode() for side in ("exit", "enter"))
        try:
            # exit first: an enter seen before its exit is attached would wait for a later one
            self._bpf.attach_tracepoint(tp=exit_tp, fn_name=EXIT_PROGRAM)
            self._bpf.attach_tracepoint(tp=enter_tp, fn_name=enter_program(arg_count(name)))
        except Exception as exc:  # bcc raises bare Exception
            for attached in (exit_tp, enter_tp):
                if attached in self._bpf.tracepoint_fds:
                    self._bpf.detach_tracepoint(tp=attached)
            raise BpfRequirementError(
                f"attaching the probe to {enter_tp.decode()} failed: {exc}",
                hint="run `falconet bpf check`",
            ) from exc

    def detach_everything(self) -> None:
        """Before the BPF object's cleanup, which would detach them one at a time."""
        self._detach_all(self.syscalls)
        self.syscalls = frozenset()
        self._follow_raw(False)

    def _detach_all(self, names: Iterable[str]) -> None:
        tps = [
            f"syscalls:sys_{side}_{tracepoint_name(n)}".encode()
            for n in names
            for side in ("enter", "exit")
        ]
        if not tps:
            return
        # bcc's detach releases the GIL in its ctypes calls; its dict bookkeeping is one
        # `del` per tracepoint, which the GIL keeps whole.
        with ThreadPoolExecutor(min(DETACH_THREADS, len(tps))) as pool:
            list(pool.map(lambda tp: self._bpf.detach_tracepoint(tp=tp), tps))

    def _follow_raw(self, wanted: bool) -> None:
        if wanted and not self.raw:
            self._bpf.attach_tracepoint(tp=RAW_EXIT, fn_name=EXIT_PROGRAM)
            self._bpf.attach_tracepoint(tp=RAW_ENTER, fn_name=enter_program(MAX_ARGS))
        elif self.raw and not wanted:
            self._bpf.detach_tracepoint(tp=RAW_ENTER)
            self._bpf.detach_tracepoint(tp=RAW_EXIT)
        self.raw = wanted
