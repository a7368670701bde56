"""The kernel side's pure parts: syscall selection, flag conversion, record decoding, drop
alerts, capture filters. No root needed."""

from __future__ import annotations

import ipaddress
import os
import struct

import pytest

from bpf.capture import REPAIR_PROCESS, BaseSyscalls, select_syscalls
from bpf.drops import KernelCounters
from bpf.record import CaptureFilterError, parse_type_filter
from bpf.records import (
    HDR,
    KIND_EXEC,
    KIND_SYSCALL,
    STR_MAX,
    SYS_REC_SIZE,
    RecordDecoder,
    syscall_record_size,
)
from bpf.syscalls import (
    SPECS,
    STATE_SYSCALLS,
    X86_64,
    ppm_clone_flags,
    ppm_open_flags,
    ppm_ptrace_request,
    sockaddr,
)
from engine.drops_monitor import DROP_RULE, DropsMonitor
from engine.sources.syscall.eventtable import newest_code


def test_every_captured_syscall_has_an_exit_event_and_a_number() -> None:
    for name in SPECS:
        assert name in X86_64, name
        assert newest_code(name, False) is not None, name


def test_selection_is_rules_plus_state_set() -> None:
    chosen = select_syscalls({"symlink", "ptrace"}, BaseSyscalls()).syscalls
    assert {"symlink", "ptrace"} <= chosen
    assert chosen >= STATE_SYSCALLS
    assert "kill" not in chosen


def test_custom_set_replaces_the_state_set_and_bang_removes() -> None:
    base = BaseSyscalls(custom_set=("openat", "!close", "execve"))
    chosen = select_syscalls({"close", "ptrace"}, base).syscalls
    assert chosen == {"openat", "execve", "ptrace"}


def test_repair_without_custom_set_replaces_the_state_set_by_the_rules_minimum() -> None:
    # libsinsp's own check_sinsp_repair_state_sc_set cases, restricted to what the probe captures
    repaired = select_syscalls({"execve", "execveat"}, BaseSyscalls(repair=True)).syscalls
    assert repaired == REPAIR_PROCESS
    assert "close" not in repaired and "openat" not in repaired
    network = select_syscalls({"execve", "connect", "accept"}, BaseSyscalls(repair=True)).syscalls
    assert network == REPAIR_PROCESS | {"connect", "accept", "socket", "bind", "close"}


def test_repair_with_a_custom_set_repairs_the_result_even_over_removals() -> None:
    base = BaseSyscalls(custom_set=("ptrace", "openat", "!close"), repair=True)
    chosen = select_syscalls({"symlink"}, base).syscalls
    assert chosen == REPAIR_PROCESS | {"ptrace", "openat", "symlink", "close"}
    # without repair the removal stands
    assert "close" not in select_syscalls({"symlink"}, BaseSyscalls(base.custom_set)).syscalls


def test_base_syscalls_names_are_checked() -> None:
    from bpf.options import LiveOptionError

    with pytest.raises(LiveOptionError) as error:
        BaseSyscalls.checked(["openat", "!opnat"], False, False)
    assert str(error.value) == "base_syscalls.custom_set: the live probe does not capture 'opnat'"
    assert error.value.hint == "did you mean 'openat'?"
    assert BaseSyscalls.checked(["!close"], True, False).negative == {"close"}


def test_ring_buffer_sizes() -> None:
    from bpf.options import LiveOptionError, checked_ringbuf_pages

    page = os.sysconf("SC_PAGE_SIZE")
    assert checked_ringbuf_pages("8MiB") == (8 << 20) // page
    assert checked_ringbuf_pages("16M") == (16 << 20) // page
    assert checked_ringbuf_pages(str(1 << 25)) == (1 << 25) // page
    for bad in ("1000", "3MiB", "0", "2GiB", "lots", "2048MiB", "1K"):
        with pytest.raises(LiveOptionError) as error:
            checked_ringbuf_pages(bad)
        assert error.value.exit_status == "usage"
        assert error.value.hint


def test_all_and_unrestricted_rules_trace_everything() -> None:
    assert select_syscalls({"openat"}, BaseSyscalls(all=True)).syscalls == frozenset(SPECS)
    assert select_syscalls(None, BaseSyscalls()).syscalls == frozenset(SPECS)


def test_unsupported_rule_types_are_reported_not_selected() -> None:
    selection = select_syscalls({"sendmsg", "procexit", "openat"}, BaseSyscalls())
    assert selection.unsupported == {"sendmsg"}
    assert "sendmsg" not in selection.syscalls


def test_placement_uses_own_tracepoints_and_raw_syscalls_only_for_the_rest(tmp_path) -> None:
    from bpf.tracepoints import arg_count, place

    tracefs = tmp_path / "syscalls"
    for name in ("openat", "umount"):  # umount2 is SYSCALL_DEFINE'd as umount
        (tracefs / f"sys_enter_{name}").mkdir(parents=True)
    (tracefs / "sys_enter_openat" / "format").write_text(
        "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n"
        "\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;\n"
        "\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n"
    )
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text(
        "0000000000000000 T __x64_sys_fancy_new\n0000000000000000 W __x64_sys_init_module\n"
    )
    placement = place({"openat", "umount2", "fancy_new", "init_module"}, tracefs, kallsyms)
    assert placement.per_syscall == {"openat", "umount2"}
    assert placement.raw == {"fancy_new"}  # implemented, no tracepoint of its own
    assert placement.absent == {"init_module"}  # the kernel's ENOSYS stub
    assert arg_count("openat", tracefs) == 2


def test_open_flags_become_ppm_flags() -> None:
    assert ppm_open_flags(os.O_RDONLY) == 1
    assert ppm_open_flags(os.O_WRONLY | os.O_CREAT | os.O_TRUNC) == 2 | 4 | 256
    assert ppm_open_flags(os.O_RDWR | os.O_CLOEXEC) == 3 | 4096
    assert ppm_open_flags(os.O_DIRECTORY) & 1024


def test_clone_and_ptrace_numbers_become_ppm_values() -> None:
    assert ppm_clone_flags(0x10000 | 0x100) == (1 << 13) | (1 << 15)  # THREAD | VM
    assert ppm_ptrace_request(16) == 11  # PTRACE_ATTACH
    assert ppm_ptrace_request(0x4206) == 20  # PTRACE_SEIZE
    assert ppm_ptrace_request(5) == 6  # PTRACE_POKEDATA


def test_sockaddr_decoding() -> None:
    raw = struct.pack("<H", 2) + struct.pack(">H", 4444) + bytes([127, 0, 0, 1]) + bytes(8)
    addr = sockaddr(raw)
    assert addr is not None
    assert (addr.address, addr.port) == (ipaddress.IPv4Address("127.0.0.1"), 4444)
    six = struct.pack("<H", 10) + struct.pack(">H", 22) + bytes(4) + bytes(15) + b"\1" + bytes(4)
    assert sockaddr(six).address == ipaddress.IPv6Address("::1")
    assert sockaddr(struct.pack("<H", 1) + b"/run/x.sock\0").address == "/run/x.sock"
    assert sockaddr(b"\x11\x00") is None


def _record(sysid: int, kind: int, ret: int, args: tuple[int, ...], lens=(0, 0, 0), body=b""):
    head = HDR.pack(1000, 42, 41, 0, 0, sysid, kind, *lens, 0, ret, *args, b"tester\0")
    return head + body


def test_openat_record_decodes_to_the_exit_event() -> None:
    path = b"/etc/shadow\0"
    body = path.ljust(STR_MAX, b"\0")
    record = _record(257, KIND_SYSCALL, 3, (2**64 - 100, 0, os.O_RDONLY, 0, 0, 0), (12, 0, 0), body)
    assert len(record) == syscall_record_size(SPECS["openat"]) == HDR.size + STR_MAX
    event = RecordDecoder().decode_one(record)
    assert event is not None
    assert (event.type, event.dir, event.tid) == ("openat", "<", 42)
    assert event.params["fd"] == 3
    assert event.params["dirfd"] == -100
    assert event.params["name"] == "/etc/shadow"
    assert event.params["flags"] == 1


def test_records_end_after_the_last_part_their_syscall_uses() -> None:
    assert syscall_record_size(SPECS["close"]) == HDR.size
    assert syscall_record_size(SPECS["renameat2"]) == HDR.size + 2 * STR_MAX
    assert syscall_record_size(SPECS["connect"]) == SYS_REC_SIZE
    close = RecordDecoder().decode_one(_record(3, KIND_SYSCALL, 0, (7, 0, 0, 0, 0, 0)))
    assert close is not None and close.params == {"res": 0, "fd": 7}
    rename = _record(
        82, KIND_SYSCALL, 0, (0,) * 6, (3, 3, 0), b"/a\0".ljust(STR_MAX, b"\0") + b"/b\0"
    )
    event = RecordDecoder().decode_one(rename.ljust(syscall_record_size(SPECS["rename"]), b"\0"))
    assert event is not None and (event.params["oldpath"], event.params["newpath"]) == ("/a", "/b")


def test_failed_exec_record_keeps_filename_and_args() -> None:
    filename = b"/nonexistent\0".ljust(STR_MAX, b"\0")
    argv = b"prog\0-x\0y\0"
    body = filename + argv.ljust(2048, b"\0") + bytes(2048)
    record = _record(59, KIND_EXEC, -2, (0,) * 6, (13, len(argv), 0), body)
    event = RecordDecoder().decode_one(record)
    assert event.type == "execve"
    assert event.params["res"] == -2
    assert event.params["exe"] == "prog"
    assert event.params["args"] == b"-x\0y"
    assert event.params["filename"] == "/nonexistent"


def test_connect_tuple_takes_the_local_end_only_when_the_probe_appended_it() -> None:
    from bpf.syscalls import LOCAL_AT, SA_MAX, connect_tuple

    peer = struct.pack("<H", 2) + struct.pack(">H", 80) + bytes([10, 0, 0, 1])
    local = struct.pack("<HH16s", 2, 40000, bytes([10, 0, 0, 2]))
    full = peer.ljust(LOCAL_AT, b"\0") + local.ljust(SA_MAX - LOCAL_AT, b"\0")
    tuple_ = connect_tuple(full)
    assert (str(tuple_.source), tuple_.source_port) == ("10.0.0.2", 40000)
    assert (str(tuple_.dest), tuple_.dest_port) == ("10.0.0.1", 80)
    unknown = connect_tuple(peer.ljust(16, b"\0"))  # UDP, or the sock was not seen
    assert (str(unknown.source), unknown.source_port) == ("0.0.0.0", 0)
    assert connect_tuple(b"") is None


def test_drop_alert_is_thresholded_and_rate_limited() -> None:
    monitor = DropsMonitor()
    assert monitor.check(KernelCounters((100, 100), (0, 0)), now=0) is None
    alert = monitor.check(KernelCounters((200, 300), (5, 50)), now=1)
    assert alert is not None
    assert alert["rule"] == DROP_RULE
    assert alert["output_fields"]["n_drops"] == "55"
    assert alert["output_fields"]["n_evts"] == "300"
    # A second burst within 30 s is suppressed (but counted).
    assert monitor.check(KernelCounters((400, 500), (60, 100)), now=2) is None
    assert monitor.suppressed == 1
    assert monitor.check(KernelCounters((600, 700), (110, 150)), now=40) is not None


def test_drops_below_threshold_raise_no_alert() -> None:
    monitor = DropsMonitor()
    monitor.check(KernelCounters((0,), (0,)), now=0)
    assert monitor.check(KernelCounters((1000,), (50,)), now=1) is None


def test_capture_filters() -> None:
    assert parse_type_filter("evt.type in (openat, execve)") == {"openat", "execve"}
    assert parse_type_filter("evt.type=ptrace") == {"ptrace"}
    assert parse_type_filter(None) is None
    with pytest.raises(CaptureFilterError):
        parse_type_filter("proc.name=cat")
    with pytest.raises(CaptureFilterError, match="sendmsg"):
        parse_type_filter("evt.type in (sendmsg)")


def test_openat2_flags_come_from_open_how() -> None:
    path = b"/etc/shadow\0"
    how = struct.pack("<QQQ", os.O_RDONLY | os.O_CLOEXEC, 0, 0)
    body = path.ljust(STR_MAX, b"\0") + bytes(STR_MAX) + how.ljust(128, b"\0")
    record = _record(437, KIND_SYSCALL, 4, (2**64 - 100, 0, 0, 24, 0, 0), (12, 0, 24), body)
    event = RecordDecoder().decode_one(record)
    assert event.type == "openat2"
    assert event.params["flags"] == 1 | 4096
    assert event.params["name"] == "/etc/shadow"
