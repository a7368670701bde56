"""The live pipeline's fast paths give what the general paths give: the ring reader handing
records out in place, batch decoding, the path normalisation shortcut, failed closes, the result
parameter, the collector settings of a capture. No root needed."""

from __future__ import annotations

import gc
import mmap
import os
import posixpath
import struct
import subprocess
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpf import collector
from bpf.records import HDR, KIND_PROCEXIT, KIND_SYSCALL, SA_MAX, STR_MAX, RecordDecoder
from bpf.ringbuf import MAX_BATCH_RECORDS, RingBufferReader
from engine.sources.syscall.events import new_event
from engine.sources.syscall.eventtable import EVENT_INFO, RESULT_TYPES
from engine.sources.syscall.state import StateTracker, ThreadInfo, resolve_path

AT_FDCWD = 2**64 - 100


def _record(sysid: int, kind: int, ret: int, args: tuple[int, ...], path: bytes = b"") -> bytes:
    lens = (len(path) + 1, 0, 0) if path else (0, 0, 0)
    head = HDR.pack(1000, 42, 41, 0, 0, sysid, kind, *lens, 0, ret, *args, b"tester\0")
    return head + (path + b"\0").ljust(STR_MAX, b"\0") + bytes(STR_MAX + SA_MAX)


def _storm_batch() -> list[bytes]:
    return [
        _record(257, KIND_SYSCALL, 3, (AT_FDCWD, 0, os.O_RDONLY, 0, 0, 0), b"/etc/hostname"),
        _record(3, KIND_SYSCALL, 0, (3, 0, 0, 0, 0, 0)),
        _record(499, KIND_SYSCALL, 0, (0,) * 6),  # a syscall number the table does not know
        _record(90, KIND_SYSCALL, -13, (0, 0o644, 0, 0, 0, 0), b"/etc/passwd"),  # chmod
        _record(0, KIND_PROCEXIT, 0, (0,) * 6),
    ]


def _summary(event) -> tuple:
    return (event.num, event.ts, event.tid, event.type, event.dir, event.params)


def test_a_batch_decodes_as_its_records_one_at_a_time() -> None:
    records = _storm_batch()
    batch, single = RecordDecoder(), RecordDecoder()
    single.boot_offset = batch.boot_offset
    one_by_one = [single.decode_one(record) for record in records]
    assert [_summary(e) for e in batch.decode(records)] == [
        _summary(e) for e in one_by_one if e is not None
    ]
    assert one_by_one[2] is None
    assert batch.unknown == single.unknown == 1
    # Unknown records still take an event number: the numbers say how many records came.
    assert [e.num for e in batch.decode(records[:2])] == [6, 7]


def test_decoded_open_carries_ppm_flags_and_signed_dirfd() -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    record = _record(257, KIND_SYSCALL, 5, (AT_FDCWD, 0, flags, 0o600, 0, 0), b"x")
    for _ in range(2):  # the second conversion comes from the memo
        (event,) = RecordDecoder().decode([record])
        assert event.params["flags"] == 2 | 4 | 4096
        assert event.params["dirfd"] == -100
        assert event.params["mode"] == 0o600
        assert event.res == 5


def _reference_resolve(base: str | None, path: str) -> str:
    if not path:
        return path
    if not path.startswith("/"):
        if base is None:
            return path
        path = base.rstrip("/") + "/" + path
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal


_PARTS = st.sampled_from(["", ".", "..", "...", "a", ".ssh", "b.", "etc", "x/"])
_PATHS = st.lists(_PARTS, max_size=6).map("/".join)


@settings(max_examples=400, deadline=None)
@given(
    base=st.one_of(st.none(), _PATHS.map(lambda p: "/" + p)),
    path=st.one_of(_PATHS, _PATHS.map(lambda p: "/" + p)),
)
def test_path_shortcut_resolves_as_normpath(base: str | None, path: str) -> None:
    assert resolve_path(base, path) == _reference_resolve(base, path)


def test_failed_close_keeps_the_fd_and_a_successful_one_removes_it() -> None:
    tracker = StateTracker()
    thread = tracker.add_thread(ThreadInfo(tid=7, pid=7, complete=True))
    assert thread is not None
    tracker.process(new_event(1, 1, 7, "openat", {"fd": 4, "dirfd": -100, "name": "/tmp/f"}))
    failed = new_event(2, 2, 7, "close", {"res": -9, "fd": 4})
    tracker.process(failed)
    assert failed.fd is not None and failed.fd.name == "/tmp/f"
    assert 4 in thread.fds
    closed = new_event(3, 3, 7, "close", {"res": 0, "fd": 4})
    tracker.process(closed)
    assert closed.fd is not None and closed.fd.name == "/tmp/f"
    assert 4 not in thread.fds


def test_result_parameter_is_the_first_result_typed_parameter_of_exit_events() -> None:
    for info in EVENT_INFO.values():
        first = info.params[0] if info.params else None
        expected = (
            first.name
            if not info.is_enter and first is not None and first.type in RESULT_TYPES
            else None
        )
        assert info.result == expected, info.name
    assert new_event(1, 1, 1, "openat", {"fd": 3}).res == 3
    assert new_event(1, 1, 1, "openat", {"dirfd": 3}, enter=True).res is None


def test_capture_collector_settings_are_restored_after_the_last_capture() -> None:
    before = gc.get_threshold()
    collector.capture_started()
    collector.capture_started()  # a second capture in the same process
    try:
        assert gc.get_threshold()[0] >= collector.GEN0_THRESHOLD
        assert gc.get_freeze_count() > 0
        collector.capture_stopped()
        assert gc.get_threshold()[0] >= collector.GEN0_THRESHOLD  # one capture still runs
    finally:
        collector.capture_stopped()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    collector.capture_stopped()  # an extra stop changes nothing
    assert gc.get_threshold() == before


class _MemfdRing:
    """A memfd laid out as the kernel lays out a BPF ring buffer map (consumer page, producer
    page, data area), written the way the producer writes records, read through the real
    RingBufferReader mapping."""

    def __init__(self, size: int) -> None:
        self.page = mmap.PAGESIZE
        self.size = size
        self.fd = os.memfd_create("ring")
        os.ftruncate(self.fd, 2 * self.page + 2 * size)
        self.map = mmap.mmap(self.fd, 2 * self.page + 2 * size)
        self.produced = 0

    def produce(self, record: bytes, flags: int = 0) -> None:
        at = 2 * self.page + (self.produced & (self.size - 1))
        struct.pack_into("<II", self.map, at, len(record) | flags, 0)
        self.map[at + 8 : at + 8 + len(record)] = record
        self.produced += (len(record) + 8 + 7) & ~7
        struct.pack_into("<Q", self.map, self.page, self.produced)

    def consumed(self) -> int:
        return struct.unpack_from("<Q", self.map, 0)[0]

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


def test_ring_records_are_decoded_in_place_and_released_after() -> None:
    ring = _MemfdRing(1 << 16)
    reader = RingBufferReader(ring.fd, ring.size)
    try:
        records = _storm_batch()
        ring.produce(records[0])
        ring.produce(records[1], flags=1 << 30)  # discarded by the producer: skipped
        ring.produce(records[3])
        ring.produce(records[0], flags=1 << 31)  # still being written: waits with what follows
        offsets = reader.read(0)
        assert len(offsets) == 2
        assert ring.consumed() == 0  # held while decoded
        events = RecordDecoder().decode_at(reader.buffer, offsets)
        assert [e.type for e in events] == ["openat", "chmod"]
        assert events[0].params["name"] == "/etc/hostname"
        reader.release()
        released = ring.consumed()
        assert released == 3 * ((len(records[0]) + 8 + 7) & ~7)
        assert reader.read(0) == []  # the busy record is not handed out
        assert ring.consumed() == released
    finally:
        reader.close()
        ring.close()


def test_a_ring_read_hands_out_a_bounded_batch() -> None:
    record = _storm_batch()[1]
    ring = _MemfdRing(1 << 24)
    reader = RingBufferReader(ring.fd, ring.size)
    try:
        for _ in range(MAX_BATCH_RECORDS + 10):
            ring.produce(record)
        assert len(reader.read(0)) == MAX_BATCH_RECORDS
        assert len(reader.read(0)) == 10  # the next read releases the first batch
        reader.release()
        assert ring.consumed() == ring.produced
    finally:
        reader.close()
        ring.close()


def test_discarding_everything_hands_back_up_to_the_producer() -> None:
    record = _storm_batch()[1]
    ring = _MemfdRing(1 << 16)
    reader = RingBufferReader(ring.fd, ring.size)
    try:
        for _ in range(5):
            ring.produce(record)
        assert len(reader.read(0)) == 5
        reader.discard_all()
        assert ring.consumed() == ring.produced
        reader.release()  # the read's pending release was dropped: nothing moves back
        assert ring.consumed() == ring.produced
    finally:
        reader.close()
        ring.close()


@pytest.mark.usefixtures("live_ebpf_shared")
def test_a_live_capture_reads_in_place_and_holds_the_collector_settings_until_closed() -> None:
    from tests.support.live_ebpf import skip_reason

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    from bpf.capture import LiveSource

    before = gc.get_threshold()
    with LiveSource({"openat"}, ringbuf_pages=64, bootstrap=False) as source:
        assert gc.get_threshold()[0] >= collector.GEN0_THRESHOLD
        # Read in place from the real ring (falconet's own opens are filtered in the kernel).
        subprocess.run(["cat", "/etc/hostname"], check=True, capture_output=True)
        deadline = time.monotonic() + 30  # a bound for a broken run: a loaded machine is slow
        seen: list[str] = []
        while time.monotonic() < deadline and "/etc/hostname" not in seen:
            seen += [e.params.get("name") for e in source.poll(50) if e.type == "openat"]
        assert "/etc/hostname" in seen
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
