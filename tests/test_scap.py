""".scap replay of the upstream captures: counts and types checked against an independent walk of
the block headers, fields on known events checked against what the Falco 0.34.1 specs expect,
and damaged files (truncated, corrupt, unknown event types) handled as documented."""

from __future__ import annotations

import gzip
import ipaddress
import itertools
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from engine.fields import catalog
from engine.sources.syscall.errors import CaptureError
from engine.sources.syscall.events import SyscallEvent
from engine.sources.syscall.replay import open_replay
from engine.sources.syscall.scap import ScapReader

CAPTURES = (
    "cat_write.scap",
    "connect_localhost.scap",
    "curl_google.scap",
    "curl_google_comments.scap",
    "empty.scap",
    "open-multiple-files.scap",
    "ping_sendto.scap",
    "single_ipv6_conn.scap",
    "syscall.scap",
    "test_ipv6_client.scap",
)
EVENT_BLOCKS = {0x204: 2, 0x216: 2, 0x208: 6, 0x217: 6}  # block type -> header offset in body


def _captures(shared_dir: Path) -> Path:
    return shared_dir / "upstream-captures"


def _independent_event_codes(data: bytes) -> list[int]:
    """Event type codes straight from the block headers (no decoding of parameters)."""
    codes = []
    offset = 0
    while offset + 8 <= len(data):
        block_type, length = struct.unpack_from("<II", data, offset)
        if block_type in EVENT_BLOCKS:
            (code,) = struct.unpack_from("<H", data, offset + 8 + EVENT_BLOCKS[block_type] + 20)
            codes.append(code)
        offset += length
    return codes


def _field(name: str, arg: str | None = None) -> Any:
    cat = catalog("syscall")
    assert cat is not None
    return cat.extractor(name, arg)[1]


@pytest.mark.parametrize("name", CAPTURES)
def test_every_upstream_capture_parses_with_the_block_counts(shared_dir: Path, name: str) -> None:
    path = _captures(shared_dir) / name
    expected = _independent_event_codes(gzip.decompress(path.read_bytes()))
    with ScapReader(path) as reader:
        events = list(reader.events())
        assert reader.stats.unknown_events == 0
        assert reader.stats.undecodable_events == 0
        assert reader.snapshot.threads, "the process list seeds the thread table"
        assert reader.snapshot.users
    assert [e.info.code for e in events] == expected
    assert [e.num for e in events] == list(range(1, len(expected) + 1))
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(events))


def test_cat_write_opens_match_the_spec_alerts(shared_dir: Path) -> None:
    # falco_tests.yaml: open_from_cat fires 8 times on cat_write.scap (enter and exit of 4 opens),
    # and the expected output shows these times and command lines.
    cmdline, iso = _field("proc.cmdline"), _field("evt.time.iso8601")
    with open_replay(_captures(shared_dir) / "cat_write.scap") as replay:
        opens = [
            (iso(e), cmdline(e))
            for e in replay.events()
            if e.type == "open" and _field("proc.name")(e) == "cat"
        ]
    assert len(opens) == 8
    assert opens[0] == ("2016-08-04T16:17:57.881781397Z", "cat /dev/null")
    assert [t for t, _ in opens[:5]] == [
        "2016-08-04T16:17:57.881781397Z",
        "2016-08-04T16:17:57.881785348Z",
        "2016-08-04T16:17:57.881796705Z",
        "2016-08-04T16:17:57.881799840Z",
        "2016-08-04T16:17:57.882003104Z",
    ]


def test_cat_write_exit_fields(shared_dir: Path) -> None:
    with open_replay(_captures(shared_dir) / "cat_write.scap") as replay:
        exits = [e for e in replay.events() if e.type == "open" and e.dir == "<"]
    last = exits[-1]
    assert _field("fd.name")(last) == "/dev/null"
    assert _field("evt.is_open_read")(last) is True
    assert _field("evt.arg.flags")(last) == "O_RDONLY"
    assert _field("user.name")(last) == "mstemm"  # inherited from bash, whose fork predates
    assert _field("proc.pname")(last) == "bash"
    assert _field("container.id")(last) == "host"
    assert _field("evt.res")(last) == "SUCCESS"


def test_open_multiple_files_paths(shared_dir: Path) -> None:
    # tagged_rules.yaml: open_N fires on an open_read of /tmp/file-N (13 files).
    name, is_read, typechar = _field("fd.name"), _field("evt.is_open_read"), _field("fd.typechar")
    with open_replay(_captures(shared_dir) / "open-multiple-files.scap") as replay:
        read_opens = [
            name(e)
            for e in replay.events()
            if e.type == "open" and is_read(e) and typechar(e) == "f" and name(e).startswith("/tmp")
        ]
    assert read_opens == [f"/tmp/file-{n}" for n in range(1, 14)]


def test_syscall_capture_generic_events_are_named(shared_dir: Path) -> None:
    # syscalls.yaml: detect_madvise (evt.type=madvise and evt.dir=<) fires 2 times and
    # detect_open (open exit on /dev/null) 2 times.
    with open_replay(_captures(shared_dir) / "syscall.scap") as replay:
        events = list(replay.events())
    madvise_exits = [e for e in events if e.type == "madvise" and e.dir == "<"]
    null_opens = [
        e
        for e in events
        if e.type == "open" and e.dir == "<" and _field("fd.name")(e) == "/dev/null"
    ]
    assert len(madvise_exits) == 2
    assert len(null_opens) == 2


def test_connect_localhost_fields(shared_dir: Path) -> None:
    # detect_connect_using_in.yaml: evt.type=connect and fd.net in ("127.0.0.1/24").
    with open_replay(_captures(shared_dir) / "connect_localhost.scap") as replay:
        connects = [e for e in replay.events() if e.type == "connect" and e.dir == "<"]
    assert len(connects) == 1
    event = connects[0]
    assert _field("fd.name")(event) == "127.0.0.1:47192->127.0.0.1:80"
    assert _field("fd.sip")(event) == ipaddress.ip_address("127.0.0.1")
    assert _field("fd.sport")(event) == 80
    assert _field("fd.lport")(event) == 47192
    assert _field("fd.l4proto")(event) == "tcp"
    assert _field("evt.res")(event) == "EINPROGRESS"
    networks = _field("fd.net")(event)
    assert all(ip in ipaddress.ip_network("127.0.0.0/24") for ip in networks)


def test_ipv6_accept_and_connect_ends(shared_dir: Path) -> None:
    with open_replay(_captures(shared_dir) / "single_ipv6_conn.scap") as replay:
        events = [e for e in replay.events() if e.type in ("accept", "connect") and e.dir == "<"]
    accepted = next(e for e in events if e.type == "accept")
    connected = next(e for e in events if e.type == "connect" and _field("fd.typechar")(e) == "6")
    assert _field("fd.is_server")(accepted) is True
    assert _field("fd.lport")(accepted) == 1234
    assert _field("fd.is_server")(connected) is False
    assert _field("fd.rport")(connected) == 1234
    assert _field("fd.sip")(connected) == ipaddress.ip_address("2001:db8::3")


def test_ping_sendto_and_empty_parse(shared_dir: Path) -> None:
    with open_replay(_captures(shared_dir) / "ping_sendto.scap") as replay:
        types = Counter(e.type for e in replay.events())
    assert types["sendmsg"] == 20
    with open_replay(_captures(shared_dir) / "empty.scap") as replay:
        assert {e.type for e in replay.events()} == {"procinfo"}


def _plain_copy(shared_dir: Path, tmp_path: Path, name: str = "cat_write.scap") -> bytes:
    return gzip.decompress((_captures(shared_dir) / name).read_bytes())


def _event_block_offsets(data: bytes) -> list[int]:
    offsets, offset = [], 0
    while offset + 8 <= len(data):
        block_type, length = struct.unpack_from("<II", data, offset)
        if block_type in EVENT_BLOCKS:
            offsets.append(offset)
        offset += length
    return offsets


def test_plain_capture_reads_like_gzipped(shared_dir: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.scap"
    plain.write_bytes(_plain_copy(shared_dir, tmp_path))
    with ScapReader(plain) as a, ScapReader(_captures(shared_dir) / "cat_write.scap") as b:
        assert [(e.ts, e.type) for e in a.events()] == [(e.ts, e.type) for e in b.events()]


def test_truncated_capture_yields_events_before_the_cut(shared_dir: Path, tmp_path: Path) -> None:
    data = _plain_copy(shared_dir, tmp_path)
    offsets = _event_block_offsets(data)
    cut = offsets[100] + 20  # inside the 101st event block
    damaged = tmp_path / "cut.scap"
    damaged.write_bytes(data[:cut])
    seen: list[SyscallEvent] = []
    with pytest.raises(CaptureError, match="truncated"), open_replay(damaged) as replay:
        for event in replay.events():
            seen.append(event)
    assert len(seen) == 100


def test_corrupt_block_length_stops_with_a_clear_error(shared_dir: Path, tmp_path: Path) -> None:
    data = bytearray(_plain_copy(shared_dir, tmp_path))
    offsets = _event_block_offsets(bytes(data))
    struct.pack_into("<I", data, offsets[50] + 4, 0xFFFFFFF0)
    damaged = tmp_path / "corrupt.scap"
    damaged.write_bytes(bytes(data))
    count = 0
    with pytest.raises(CaptureError, match="corrupted block"), ScapReader(damaged) as reader:
        for _ in reader.events():
            count += 1
    assert count == 50


def test_unknown_event_types_are_counted_and_skipped(shared_dir: Path, tmp_path: Path) -> None:
    data = bytearray(_plain_copy(shared_dir, tmp_path))
    offsets = _event_block_offsets(bytes(data))
    for offset in offsets[10:13]:
        struct.pack_into("<H", data, offset + 8 + 2 + 20, 60000)
    patched = tmp_path / "unknown.scap"
    patched.write_bytes(bytes(data))
    with ScapReader(patched) as reader:
        events = list(reader.events())
        assert reader.stats.unknown_events == 3
    assert len(events) == len(offsets) - 3


def test_not_a_capture_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello")
    with pytest.raises(CaptureError, match="not a capture") as raised:
        open_replay(bogus)
    assert raised.value.hint
    with pytest.raises(CaptureError, match="cannot read"):
        open_replay(tmp_path / "missing.scap")


def test_wanted_types_skip_decoding_but_keep_numbering(shared_dir: Path) -> None:
    path = _captures(shared_dir) / "connect_localhost.scap"
    with open_replay(path) as replay:
        every = [(e.num, e.type) for e in replay.events()]
    with open_replay(path) as replay:
        wanted = replay.needed_events(frozenset({"connect"}))
        kept = [(e.num, e.type) for e in replay.events(wanted)]
        assert replay.stats.events == len(every)
        assert replay.stats.skipped == len(every) - len(kept) > 0
    assert kept == [row for row in every if row[1] in wanted]
