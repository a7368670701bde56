"""A BPF ring buffer read straight from its memory mapping, a batch at a time.

libbpf's reader (what bcc's ring_buffer_poll drives) calls back into Python once per record
through ctypes; mapping the buffer here lets one Python loop slice every ready record and
release them all with one store of the consumer position. Layout (kernel/bpf/ringbuf.c): page 0
is the consumer position (read-write), page 1 the producer position, then the data area mapped
twice in a row, so a record that wraps around is still one contiguous slice. Each record starts
with an 8-byte header: length (bit 31: still being written, bit 30: discarded) and a page offset.
"""

from __future__ import annotations

import mmap
import struct
import time

POLL_STEP_S = 0.005  # the reader's latency bound when idle
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
        self._data_at = page  # the data area's offset in the producer mapping

    def close(self) -> None:
        self._producer.close()
        self._consumer.close()

    def read(self, timeout_ms: int) -> list[bytes]:
        """Every complete record now in the buffer; waits up to timeout_ms when there is none.
        The probe submits without wakeups, so waiting is sleeping in short steps."""
        records = self._drain()
        deadline = time.monotonic() + timeout_ms / 1000
        while not records and time.monotonic() < deadline:
            time.sleep(min(POLL_STEP_S, max(deadline - time.monotonic(), 0)))
            records = self._drain()
        return records

    def _drain(self) -> list[bytes]:
        consumer = _POS.unpack_from(self._consumer)[0]
        producer = _POS.unpack_from(self._producer)[0]
        # Slicing the mmap itself copies a record into bytes in one step (a memoryview slice
        # would be one more object per record).
        data, mask, data_at = self._producer, self.mask, self._data_at
        read_length = _LEN.unpack_from
        records: list[bytes] = []
        append = records.append
        start = consumer
        while consumer < producer:
            offset = data_at + (consumer & mask)
            length = read_length(data, offset)[0]
            if length & _BUSY:
                break  # the producer is still writing it: records after it wait too
            size = length & ~(_BUSY | _DISCARD)
            if not length & _DISCARD:
                append(data[offset + _HEADER : offset + _HEADER + size])
            consumer += (size + _HEADER + 7) & ~7
            if consumer - start >= self.size // 2:
                break  # release room for the producer before a very large batch is decoded
        if consumer != start:
            _POS.pack_into(self._consumer, 0, consumer)
        return records
