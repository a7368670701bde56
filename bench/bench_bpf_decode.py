"""Where a live event's userspace time goes (no root needed): decoding ring-buffer records into
exit events, the state tracker, the upstream stable ruleset; events per second for each stage
alone and for the three together, on openat/close records like the storm's. Beside the live
decode, the replay path's decode of the same events (a falconet capture written from them, read
back by CaptureReader) and the ratio of the two, measured in the same run.

    PYTHONPATH=. .venv/bin/python bench/bench_bpf_decode.py [--events 200000] [--repeat 5]
        [--batch 4096]

Each repetition decodes fresh events and runs them through the three stages; a stage's figure
is its best repetition in process CPU time (on a shared machine the best run is the one other
processes disturbed least), and "all three" is the best repetition's total.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from itertools import accumulate
from pathlib import Path
from typing import Any

from bpf import collector, procfs
from bpf.records import HDR, KIND_SYSCALL, SA_MAX, STR_MAX, RecordDecoder, complete_params
from bpf.ringbuf import MAX_BATCH_RECORDS
from engine.loader import load_valid_rules, rulesets_for
from engine.sources.syscall.capture import CaptureReader, CaptureWriter, encode_params
from engine.sources.syscall.state import StateTracker

RULES = Path(__file__).resolve().parent.parent.parent / "shared/upstream-rules/falco_rules.yaml"
AT_FDCWD = 2**64 - 100


def storm_records(count: int) -> list[bytes]:
    pid = os.getpid()
    path = b"/etc/hostname\0"
    body = path.ljust(STR_MAX, b"\0") + bytes(STR_MAX + SA_MAX)
    openat = HDR.pack(0, pid, pid, 0, 0, 257, KIND_SYSCALL, len(path), 0, 0, 0, 3,
                      AT_FDCWD, 0, 0, 0, 0, 0, b"storm\0")  # fmt: skip
    close = HDR.pack(
        0, pid, pid, 0, 0, 3, KIND_SYSCALL, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, b"storm\0"
    )
    return [openat + body, close + bytes(len(body))] * (count // 2)


def one_repetition(
    records: list[bytes], batch: int, tracker: StateTracker, rulesets: Any
) -> tuple[float, float, float]:
    """CPU seconds of (decode, state tracker, ruleset) on fresh events, a batch at a time as
    the live reader hands them over (what a batch allocates is garbage once it is evaluated,
    which is what the garbage collector sees live)."""
    clock = time.process_time
    decoder = RecordDecoder()
    process = tracker.process
    evaluate = rulesets.evaluate
    decoding = tracking = evaluating = 0.0
    # The live reader hands the decoder offsets into the ring's mapping: one buffer here.
    buffer = b"".join(records)
    offsets = list(accumulate((len(record) for record in records[:-1]), initial=0))
    for start in range(0, len(records), batch):
        started = clock()
        events = decoder.decode_at(buffer, offsets[start : start + batch])
        decoded = clock()
        for event in events:
            process(event)
        tracked = clock()
        for event in events:
            evaluate(event, "syscall")
        evaluated = clock()
        decoding += decoded - started
        tracking += tracked - decoded
        evaluating += evaluated - tracked
    return decoding, tracking, evaluating


def replay_decode_seconds(records: list[bytes], repeat: int) -> float:
    """Best CPU seconds of the replay path decoding the same events from a falconet capture
    (uncompressed, so only the decode is measured)."""
    events = RecordDecoder().decode(records)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "storm.cap"
        with CaptureWriter(path, compress=False) as writer:
            writer.write_snapshot([], [], [])
            for event in events:
                params = encode_params(event.info, complete_params(event.info, event.params))
                writer.write(event.info.code, event.ts, event.tid, params)
        best = float("inf")
        for _ in range(repeat):
            with CaptureReader(path) as reader:
                started = time.process_time()
                decoded = sum(1 for _ in reader.events())
                best = min(best, time.process_time() - started)
            assert decoded == len(events), (decoded, len(events))
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--batch", type=int, default=MAX_BATCH_RECORDS, help="records per decoded batch"
    )
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep CPython's collector settings (a live capture uses bpf.collector's)",
    )
    options = parser.parse_args()
    count = options.events
    records = storm_records(count)
    rulesets = rulesets_for(load_valid_rules([RULES]))
    tracker = StateTracker()
    for thread in procfs.live_threads():
        tracker.add_thread(thread)

    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    if not options.default_gc:
        collector.capture_started()
    runs = [
        one_repetition(records, options.batch, tracker, rulesets) for _ in range(options.repeat)
    ]
    replay = replay_decode_seconds(records, options.repeat)
    collector.capture_stopped()
    print("load average after:  {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(
        f"{count:,} events (openat + close) in batches of {options.batch}, "
        f"best of {options.repeat}, CPU time of this process, "
        f"{'default' if options.default_gc else 'capture'} collector settings"
    )
    best = [min(run[stage] for run in runs) for stage in range(3)]
    for label, seconds in (
        ("decode", best[0]),
        ("state tracker", best[1]),
        ("ruleset (upstream stable)", best[2]),
        ("all three", min(sum(run) for run in runs)),
        ("replay decode (capture)", replay),
    ):
        print(
            f"{label:<26} {count / seconds:>10,.0f} events/s  {seconds / count * 1e6:6.2f} us/event"
        )

    print(f"live decode / replay decode cost: {best[0] / replay:.2f}")


if __name__ == "__main__":
    main()
