"""Drop accounting: the kernel counts every event it tried to send and every failed ring-buffer
reservation, per CPU. `KernelCounters` is that snapshot; what to do about drops (Falco's
syscall_event_drops: threshold, token bucket, actions, the "syscall event drop" internal alert)
is engine.drops_monitor's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KernelCounters:
    counted: tuple[int, ...]  # per CPU: events the kernel tried to send
    dropped: tuple[int, ...]  # per CPU: failed reservations

    @property
    def total_counted(self) -> int:
        return sum(self.counted)

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped)
