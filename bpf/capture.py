"""The live syscall source: loads probe.c with bcc, keeps the in-kernel interesting-syscall map
in step with the ruleset, reads the ring buffer and yields batches of engine events.

    source = LiveSource(ruleset.event_types(), tracker=tracker)
    with source:
        for batch in source.batches():      # lists of SyscallEvent (empty on an idle tick)
            ...
        source.update_interesting(new_types)  # hot swap: map updated in place, no reload
        source.stats()

The ring buffer is read from its memory mapping a batch at a time (bpf/ringbuf.py); decoding
happens per batch.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bpf import collector
from bpf.drops import KernelCounters
from bpf.errors import BpfRequirementError
from bpf.options import DEFAULT_RINGBUF_PAGES, BaseSyscalls, checked_ringbuf_pages
from bpf.records import RecordDecoder
from bpf.ringbuf import RingBufferReader
from bpf.syscalls import SPECS, STATE_SYSCALLS, X86_64
from bpf.tracepoints import Attachments, Placement
from engine.drops_monitor import DropsMonitor
from engine.sources.syscall.events import SyscallEvent
from engine.sources.syscall.state import StateTracker

log = logging.getLogger(__name__)

PROBE_SOURCE = Path(__file__).with_name("probe.c")
ARGS_MAX = 1024  # execve argv / env bytes kept (flagged when truncated)
ARGV_MAX_N = 32  # argv / env entries read

# libsinsp's sinsp_repair_state_sc_set, restricted to what the probe captures: the process
# syscalls always; socket when any network syscall is selected, bind for accept/listen, close
# for anything that creates or uses fds.
REPAIR_PROCESS = frozenset(
    {"clone", "clone3", "fork", "vfork", "execve", "execveat", "fchdir", "chdir", "chroot",
     "setgid", "setresgid", "setresuid", "setuid", "prctl"}
)  # fmt: skip
NETWORK_SYSCALLS = frozenset(
    {"socket", "connect", "accept", "accept4", "bind", "listen", "sendto", "recvfrom"}
)
FD_SYSCALLS = NETWORK_SYSCALLS | frozenset(
    {"open", "openat", "openat2", "creat", "close", "dup", "dup2", "dup3", "pipe", "pipe2",
     "memfd_create", "userfaultfd", "io_uring_setup", "bpf", "fchmod", "fchown", "fchdir",
     "read", "write", "fcntl"}
)  # fmt: skip

# Events that are not syscalls: procexit is always sent, the others have no live producer yet.
META_EVENTS = frozenset({"procexit", "container", "signaldeliver", "switch", "page_fault"})


def repair_set(selected: frozenset[str]) -> frozenset[str]:
    """`selected` plus the minimum the state tracker needs to follow it (Falco's repair)."""
    chosen = set(selected) | REPAIR_PROCESS
    if selected & NETWORK_SYSCALLS:
        chosen |= {"socket", "close"}
    if selected & {"accept", "accept4", "listen"}:
        chosen.add("bind")
    if selected & FD_SYSCALLS:
        chosen.add("close")
    return frozenset(chosen)


@dataclass(frozen=True)
class Selection:
    syscalls: frozenset[str]
    unsupported: frozenset[str]  # asked for (by rules) but not captured by the probe


def select_syscalls(rule_types: Iterable[str] | None, base: BaseSyscalls) -> Selection:
    """The interesting set, as Falco's configure_interesting_sets computes it: the rules' event
    types ∪ (custom_set's names, else the state set); repair with no custom names uses the
    repaired rules' set instead; "!name" entries are removed; repair with a custom_set then
    repairs the result. rule_types None means some rule matches every event type."""
    supported = frozenset(SPECS)
    if base.all or rule_types is None:
        return Selection(supported, frozenset())
    rules = frozenset(rule_types) & supported
    positive = base.positive
    if base.repair and not positive:
        chosen = repair_set(rules)
    else:
        chosen = rules | (positive or STATE_SYSCALLS)
    chosen -= base.negative
    if base.repair and base.custom_set:
        chosen = repair_set(chosen)
    unsupported = frozenset(rule_types) - supported - META_EVENTS
    return Selection(chosen & supported, unsupported)


STOP_SETTLE_S = 0.05


@dataclass
class LiveStats:
    delivered: int = 0  # records read from the ring buffer
    decoded: int = 0
    kernel: KernelCounters = field(default_factory=lambda: KernelCounters((), ()))
    truncated_execs: int = 0  # execve argv/env longer than what the probe keeps
    unknown_records: int = 0
    # Records still in the ring when the capture stopped (stop_capture): counted by the kernel,
    # neither delivered nor dropped.
    left_in_ring: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "decoded": self.decoded,
            "kernel_counted": self.kernel.total_counted,
            "dropped": self.kernel.total_dropped,
            "dropped_per_cpu": list(self.kernel.dropped),
            "truncated_execs": self.truncated_execs,
            "unknown_records": self.unknown_records,
            "left_in_ring": self.left_in_ring,
        }


class LiveSource:
    def __init__(
        self,
        rule_types: Iterable[str] | None,
        tracker: StateTracker | None = None,
        base: BaseSyscalls | None = None,
        ringbuf_pages: int = DEFAULT_RINGBUF_PAGES,
        bootstrap: bool = True,
        drop_monitor: DropsMonitor | None = None,
    ) -> None:
        checked_ringbuf_pages(ringbuf_pages * mmap.PAGESIZE)
        self.tracker = tracker if tracker is not None else StateTracker()
        self.base = base or BaseSyscalls()
        self.ringbuf_pages = ringbuf_pages
        self.bootstrap = bootstrap
        self.selection = select_syscalls(rule_types, self.base)
        self.decoder = RecordDecoder()
        self._collector_held = False  # this capture's part in bpf.collector's settings
        self.drop_monitor = drop_monitor or DropsMonitor()
        self._stats = LiveStats()
        self._bpf: Any = None
        self._attachments: Attachments | None = None
        self._ring: RingBufferReader | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> LiveSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        from bpf.setup import ensure_ready

        bcc = ensure_ready()
        cflags = [
            f"-DRINGBUF_PAGES={self.ringbuf_pages}",
            f"-DSELF_TGID={os.getpid()}",
            f"-DCONNECT_NR={X86_64['connect']}",
            f"-DARGS_MAX={ARGS_MAX}",
            f"-DARGV_MAX_N={ARGV_MAX_N}",
            "-Wno-unused-function",
        ]
        try:
            self._bpf = bcc.BPF(src_file=str(PROBE_SOURCE).encode(), cflags=cflags)
        except Exception as exc:  # bcc raises bare Exception for compile and load failures
            raise BpfRequirementError(
                f"loading the eBPF probe failed: {exc}", hint="run `falconet bpf check`"
            ) from exc
        try:
            self._fill_argspecs()
            if self.bootstrap:
                self._bootstrap_state()
            self._write_interesting(self.selection.syscalls)
            self._attachments = Attachments(self._bpf)
            self._attachments.follow(self.selection.syscalls)
            self._ring = RingBufferReader(
                self._bpf[b"events"].map_fd, self.ringbuf_pages * mmap.PAGESIZE
            )
        except BaseException:
            self.close()  # nothing stays attached when the start fails half-way
            raise
        placement = self._attachments.placement
        log.info(
            "probe attached to the tracepoints of %d syscalls%s",
            len(placement.per_syscall),
            f" (+ raw_syscalls for {', '.join(sorted(placement.raw))})" if placement.raw else "",
        )
        if self.selection.unsupported:
            log.warning(
                "rules use event types the live probe does not capture: %s",
                ", ".join(sorted(self.selection.unsupported)),
            )
        # Last: what start() built (probe state, the /proc bootstrap) is long-lived.
        collector.capture_started()
        self._collector_held = True

    def close(self) -> None:
        if self._collector_held:
            collector.capture_stopped()
            self._collector_held = False
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._attachments is not None:
            self._attachments.detach_everything()
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None
            self._attachments = None

    # -- maps -----------------------------------------------------------------------------------
    def _fill_argspecs(self) -> None:
        table = self._bpf[b"argspecs"]
        for name, spec in SPECS.items():
            value = table.Leaf.from_buffer_copy(spec.packed())
            table[ctypes.c_int(X86_64[name])] = value

    def _write_interesting(self, names: frozenset[str]) -> None:
        table = self._bpf[b"interesting"]
        wanted = {X86_64[n] for n in names}
        for number in range(512):
            table[ctypes.c_int(number)] = ctypes.c_uint8(1 if number in wanted else 0)

    def update_interesting(self, rule_types: Iterable[str] | None) -> Selection:
        """A ruleset swap: the kernel map is rewritten in place and the per-syscall tracepoints
        follow the new set (the programs stay loaded). A newly selected syscall's map entry is
        set before its tracepoints are attached, a dropped one's after they are detached."""
        selection = select_syscalls(rule_types, self.base)
        if self._attachments is not None and selection.syscalls != self.selection.syscalls:
            self._write_interesting(self.selection.syscalls | selection.syscalls)
            self._attachments.follow(selection.syscalls)
            self._write_interesting(selection.syscalls)
        self.selection = selection
        return selection

    def placement(self) -> Placement | None:
        """Where the selected syscalls are traced (None before start)."""
        return self._attachments.placement if self._attachments is not None else None

    def _bootstrap_state(self) -> None:
        from bpf import procfs

        # falconet's own process is in the table (its children need a parent), though the
        # kernel sends none of its events.
        for thread in procfs.live_threads():
            self.tracker.add_thread(thread)
        self.tracker.users.update({u.uid: u for u in procfs.users()})
        self.tracker.groups.update({g.gid: g for g in procfs.groups()})

    # -- reading --------------------------------------------------------------------------------
    def poll(self, timeout_ms: int = 100) -> list[SyscallEvent]:
        """One batch: whatever the ring buffer holds (waits up to timeout_ms when empty)."""
        ring = self._ring
        offsets = ring.read(timeout_ms)
        try:
            # Decoded where they sit in the ring; handed back to the producer right after.
            events = self.decoder.decode_at(ring.buffer, offsets)
        finally:
            ring.release()
        self._stats.delivered += len(offsets)
        self._stats.decoded += len(events)
        return events

    def batches(self, timeout_ms: int = 100) -> Iterator[list[SyscallEvent]]:
        while self._bpf is not None:
            yield self.poll(timeout_ms)

    def events(
        self,
        stop: threading.Event,
        on_drop_alert: Callable[[dict[str, Any]], None] | None = None,
        timeout_ms: int = 100,
    ) -> Iterator[SyscallEvent]:
        """Every event, after the tracker has applied it (as Replay.events does), until `stop`
        is set. Once a second the drop counters are checked; Falco's internal drop alert goes
        to on_drop_alert (rate limited), and is logged when no callback is given."""
        process = self.tracker.process
        next_check = time.monotonic() + 1
        while not stop.is_set():
            for event in self.poll(timeout_ms):
                process(event)
                yield event
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 1
                alert = self.check_drops()
                if alert is not None:
                    if on_drop_alert is None:
                        log.warning("%s", alert["output"])
                    else:
                        on_drop_alert(alert)

    def stop_capture(self) -> LiveStats:
        """Stop the kernel side for a final account: every tracepoint is detached (no event is
        counted any more), then the records left unread in the ring are counted, so that the
        kernel's count = delivered + dropped + left_in_ring. The probe stays loaded until
        close(); the events left in the ring are not evaluated (the run is stopping)."""
        if self._attachments is not None:
            self._attachments.detach_everything()
            # A program that started before its tracepoint was detached may still be counting
            # and writing its record: they take microseconds; let them finish.
            time.sleep(STOP_SETTLE_S)
        if self._ring is not None:
            self._stats.left_in_ring = self._ring.unread()
        return self.stats()

    def kernel_counters(self) -> KernelCounters:
        zero = ctypes.c_int(0)
        counted = tuple(int(v) for v in self._bpf[b"counted"][zero])
        dropped = tuple(int(v) for v in self._bpf[b"dropped"][zero])
        return KernelCounters(counted, dropped)

    def stats(self) -> LiveStats:
        if self._bpf is not None:
            self._stats.kernel = self.kernel_counters()
        self._stats.truncated_execs = self.decoder.truncated_execs
        self._stats.unknown_records = self.decoder.unknown
        return self._stats

    def check_drops(self) -> dict[str, Any] | None:
        """Call about once a second: Falco's rate-limited internal drop alert, or None."""
        return self.drop_monitor.check(self.kernel_counters())
