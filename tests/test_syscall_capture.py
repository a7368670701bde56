"""falconet's capture format: round trip from .scap, skipping, damage, and the bench generator."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.fields import catalog
from engine.sources.syscall.capture import MAGIC, CaptureReader, CaptureWriter
from engine.sources.syscall.errors import CaptureError
from engine.sources.syscall.replay import open_replay

REPO = Path(__file__).resolve().parent.parent
FIELDS = (
    "evt.num", "evt.type", "evt.dir", "evt.rawtime", "thread.tid", "proc.name", "proc.cmdline",
    "proc.pname", "fd.name", "fd.typechar", "evt.res", "user.name", "evt.args",
)  # fmt: skip


def _extract(events: list[Any]) -> list[tuple[Any, ...]]:
    cat = catalog("syscall")
    assert cat is not None
    extractors = [cat.extractor(name)[1] for name in FIELDS]
    return [tuple(x(e) for x in extractors) for e in events]


def _convert(scap: Path, out: Path, chunk: int = 64) -> list[tuple[Any, ...]]:
    """Replay a .scap, write it as a falconet capture, return the fields seen on the way."""
    seen = []
    with open_replay(scap) as replay, CaptureWriter(out, chunk=chunk) as writer:
        snapshot = replay.source.snapshot
        writer.write_snapshot(
            snapshot.threads.values(), snapshot.users.values(), snapshot.groups.values()
        )
        for event in replay.events():
            writer.write_event(event)
            seen.extend(_extract([event]))
    return seen


@pytest.mark.parametrize("suffix", [".fncap", ".fncap.gz"])
def test_round_trip_from_scap_keeps_every_field(
    shared_dir: Path, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"cat_write{suffix}"
    expected = _convert(shared_dir / "upstream-captures" / "cat_write.scap", out)
    with open_replay(out) as replay:
        got = [_extract([e])[0] for e in replay.events()]
    assert got == expected
    assert out.read_bytes()[:2] == (b"\x1f\x8b" if suffix.endswith(".gz") else MAGIC[:2])


def test_wanted_types_skip_the_rest_but_keep_numbering(shared_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "connect.fncap"
    everything = _convert(shared_dir / "upstream-captures" / "connect_localhost.scap", out)
    with CaptureReader(out) as reader:
        wanted = [(e.num, e.type) for e in reader.events(frozenset({"connect"}))]
        assert reader.stats.events == len(everything)
        assert reader.stats.decoded == len(wanted)
    assert wanted == [(row[0], row[1]) for row in everything if row[1] == "connect"]


def test_truncated_capture_stops_after_the_complete_chunks(
    shared_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cut.fncap"
    everything = _convert(shared_dir / "upstream-captures" / "cat_write.scap", out, chunk=100)
    data = out.read_bytes()
    damaged = tmp_path / "damaged.fncap"
    frames = _event_frame_offsets(data)
    damaged.write_bytes(data[: frames[2] + 40])  # inside the third chunk
    complete = sum(struct.unpack_from("<I", data, offset + 5)[0] for offset in frames[:2])
    seen = []
    with pytest.raises(CaptureError, match="truncated"), open_replay(damaged) as replay:
        for event in replay.events():
            seen.append(event.num)
    assert 0 < len(seen) == complete < len(everything)
    assert seen == list(range(1, len(seen) + 1))


def _event_frame_offsets(data: bytes) -> list[int]:
    offsets, offset = [], 8
    while offset + 5 <= len(data):
        kind, length = struct.unpack_from("<BI", data, offset)
        if kind == ord("E"):
            offsets.append(offset)
        offset += 5 + length
    return offsets


def test_missing_end_frame_is_reported(tmp_path: Path) -> None:
    out = tmp_path / "noend.fncap"
    with CaptureWriter(out) as writer:
        writer.write_snapshot([])
    data = out.read_bytes()
    out.write_bytes(data[:-13])  # drop the end frame (1 + 4 + 8 bytes)
    with pytest.raises(CaptureError, match="no end frame"), CaptureReader(out) as reader:
        list(reader.events())


def test_newer_version_is_refused_with_a_hint(tmp_path: Path) -> None:
    out = tmp_path / "future.fncap"
    out.write_bytes(MAGIC + struct.pack("<H", 99))
    with pytest.raises(CaptureError, match="version 99") as raised:
        CaptureReader(out)
    assert raised.value.hint


@pytest.fixture(scope="module")
def busy_stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("stream") / "stream.fncap"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gen_syscall_stream.py"), str(out),
         "--events", "30000", "--seed", "7"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out, done.stdout


def test_generator_writes_a_consistent_busy_host_stream(busy_stream: tuple[Path, str]) -> None:
    out, report = busy_stream
    assert "wrote" in report
    cat = catalog("syscall")
    assert cat is not None
    name, fd_name, pname = (cat.extractor(f)[1] for f in ("proc.name", "fd.name", "proc.pname"))
    unknown_fd = 0
    types: set[str] = set()
    with open_replay(out) as replay:
        for event in replay.events():
            types.add(event.type)
            assert name(event) is not None, event  # every thread is known from the snapshot
            if event.type in ("read", "close", "sendto") and fd_name(event) is None:
                unknown_fd += 1
            if event.type == "execve":
                assert pname(event) in ("cron", "bash", "python3")
        total = replay.stats.events
    assert total >= 30000
    assert unknown_fd == 0  # fds are opened (snapshot or openat/socket/accept) before use
    assert {"futex", "read", "openat", "close", "sendto", "recvfrom", "execve"} <= types


def _states_and_hits(path: Path, rule_types: frozenset[str] | None) -> tuple[Any, ...]:
    """Replay, evaluating a probe on the rule types; return what the probe saw and the state."""
    cat = catalog("syscall")
    assert cat is not None
    fd_name, proc_name = cat.extractor("fd.name")[1], cat.extractor("proc.name")[1]
    seen = []
    with open_replay(path) as replay:
        wanted = replay.needed_events(rule_types) if rule_types is not None else None
        for event in replay.events(wanted):
            if rule_types is None or event.type in rule_types:
                seen.append((event.num, event.type, fd_name(event), proc_name(event)))
        threads = {t: (x.comm, sorted(x.fds)) for t, x in replay.tracker.threads.items()}
        return seen, threads, replay.stats


def test_skipping_keeps_what_rules_see_and_the_final_state(busy_stream: tuple[Path, str]) -> None:
    path, _ = busy_stream
    rule_types = frozenset({"openat", "execve", "connect", "sendto"})
    all_seen, all_threads, all_stats = _states_and_hits(path, None)
    seen, threads, stats = _states_and_hits(path, rule_types)
    assert seen == [row for row in all_seen if row[1] in rule_types]
    assert threads == all_threads
    assert stats.events == all_stats.events
    assert stats.decoded < all_stats.decoded / 3
    assert stats.filtered > 0  # recvfrom/recvmsg on connected TCP sockets: looked at, skipped
