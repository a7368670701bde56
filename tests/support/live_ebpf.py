"""Live eBPF tests: why they cannot run here, and taking turns with ring-buffer storms.

The probe sees every process on the machine. A test that floods the ring buffer on purpose (an
openat storm, to make the kernel drop events) also fills the buffers of every other live capture
running at that moment (another xdist worker's, another checkout's test run), which then drop
the very events their tests wait for. So storm tests hold a machine-wide lock alone, and other
live tests share it.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def skip_reason() -> str | None:
    """Why live capture cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "live eBPF capture needs root (CAP_BPF + CAP_PERFMON)"
    from bpf.setup import run_checks

    failed = [c for c in run_checks(repair=True) if not c.ok and c.name != "btf"]
    if failed:
        return f"live eBPF capture unavailable: {failed[0].name}: {failed[0].detail}"
    return None


LOCK_FILE = Path(tempfile.gettempdir()) / "falconet-live-ebpf-tests.lock"


@contextmanager
def capture_turn(exclusive: bool) -> Iterator[None]:
    """Holds the machine's live-capture lock, alone (`exclusive`) or shared with other tests."""
    with open(LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
