"""A BPF ring buffer read straight from its memory mapping, a batch at a time.

libbpf's reader (what bcc's ring_buffer_poll drives) calls back into Python once per record
through ctypes; mapping the buffer here lets one Python loop find every ready record, the decoder
read them where they are, and one store of the consumer position hand them all back. Layout
(kernel/bpf/ringbuf.c): page 0 is the consumer position (read-write), page 1 the producer
position, then the data area mapped twice in a row, so a record that wraps around is still
contiguous. Each record starts with an 8-byte header: length (bit 31: still being written,
bit 30: discarded) and a page offset.
"""

from __future__ import annotations

import mmap
import struct
import time

POLL_STEP_S = 0.005  # the reader's latency bound when idle
# Records handed out by one read: they stay in the ring (the producer cannot reuse their room)
# until release(), so a batch is kept to a small share of the ring (also at most a quarter of
# its bytes).
MAX_BATCH_RECORDS = 4096
_BUSY = 1 << 31
_DISCARD = 1 << 30
_HEADER = 8
_POS = struct.Struct("<Q")
_LEN = struct.Struct("<I")


class RingBufferReader:
    def __init__(self, map_fd: int, size: int) -> None:
        page = mmap.PAGESIZE
        self.size = size
        self.mask = size - 1
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._producer = mmap.mmap(
            map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page
        )
        # The consumer position is stored with one 8-byte write: struct.pack_into zeroes its
        # destination before packing, and a producer on another CPU that read that zero saw a
        # full ring and dropped its event (isolated drops with the ring nearly empty).
        self._consumer_pos = memoryview(self._consumer).cast("Q")
        self._data_at = page  # the data area's offset in the producer mapping
        self._release_at: int | None = None  # the consumer position after the last read

    @property
    def buffer(self) -> mmap.mmap:
        """What read()'s offsets index."""
        return self._producer

    def close(self) -> None:
        self._consumer_pos.release()
        self._producer.close()
        self._consumer.close()

    def read(self, timeout_ms: int) -> list[int]:
        """The offsets in `buffer` of the complete records now in the ring (up to
        MAX_BATCH_RECORDS), oldest first; waits up to timeout_ms when there is none. They stay
        valid until release(), which the next read does if the caller has not. The probe
        submits without wakeups, so waiting is sleeping in short steps."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            self.release()  # also what a scan found discarded
            offsets = self._scan()
            remaining = deadline - time.monotonic()
            if offsets or remaining <= 0:
                return offsets
            time.sleep(min(POLL_STEP_S, remaining))

    def discard_all(self) -> None:
        """Hands every record written so far back unread (benchmarks of the kernel side)."""
        self._release_at = None
        self._consumer_pos[0] = _POS.unpack_from(self._producer)[0]

    def release(self) -> None:
        """Hands the records of the last read back to the producer."""
        if self._release_at is not None:
            self._consumer_pos[0] = self._release_at
            self._release_at = None

    def unread(self) -> int:
        """Records the producer has reserved that no read has handed out yet (complete or still
        being written): what is left in the ring when a capture stops."""
        consumer = self._release_at
        if consumer is None:
            consumer = _POS.unpack_from(self._consumer)[0]
        producer = _POS.unpack_from(self._producer)[0]
        data, mask, data_at = self._producer, self.mask, self._data_at
        read_length = _LEN.unpack_from
        count = 0
        while consumer < producer:
            length = read_length(data, data_at + (consumer & mask))[0]
            if not length & _DISCARD:
                count += 1
            consumer += ((length & ~(_BUSY | _DISCARD)) + _HEADER + 7) & ~7
        return count

    def _scan(self) -> list[int]:
        consumer = _POS.unpack_from(self._consumer)[0]
        producer = _POS.unpack_from(self._producer)[0]
        data, mask, data_at = self._producer, self.mask, self._data_at
        read_length = _LEN.unpack_from
        offsets: list[int] = []
        append = offsets.append
        start = consumer
        limit = start + self.size // 4  # by size too: exec records are large
        while consumer < producer and consumer < limit and len(offsets) < MAX_BATCH_RECORDS:
            offset = data_at + (consumer & mask)
            length = read_length(data, offset)[0]
            if length & _BUSY:
                break  # the producer is still writing it: records after it wait too
            if not length & _DISCARD:
                append(offset + _HEADER)
            consumer += ((length & ~(_BUSY | _DISCARD)) + _HEADER + 7) & ~7
        if consumer != start:
            self._release_at = consumer
        return offsets
