"""Plugin events: the PPME_PLUGINEVENT_E layout, events read from a plugin's `next_batch` (checked,
copied, stamped by the host), async events, and the event bytes handed to extractor plugins for
events of other sources (built-in JSON sources, syscalls).

Layout (little endian, header packed): `ts u64, tid u64, len u32, type u16, nparams u32`, then for
a plugin event two u32 parameter lengths (4 and the data length), the plugin id (u32) and the
data. The plugin may leave ts at UINT64_MAX and the plugin id at 0: the host fills them.
"""

from __future__ import annotations

import ctypes
import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.sources.plugin_host import abi
from engine.sources.plugin_host.errors import PluginError

ASYNC_PARAMS = 3


@dataclass(slots=True)
class PluginEvent:
    """One event of a plugin source. `raw` is the whole event (what extract_fields receives),
    `data` its payload."""

    raw: bytes
    data: bytes
    time: int
    source: str
    plugin_id: int
    num: int = 0
    async_name: str = ""  # non-empty for async events
    memo: dict[object, Any] = field(default_factory=dict)

    @property
    def ts(self) -> int:
        return self.time

    @property
    def is_async(self) -> bool:
        return bool(self.async_name)


def encode_plugin_event(data: bytes, ts: int, plugin_id: int, tid: int = abi.UINT64_MAX) -> bytes:
    length = abi.PLUGIN_DATA_OFFSET + len(data)
    return (
        abi.HEADER.pack(ts, tid, length, abi.PPME_PLUGINEVENT_E, 2)
        + abi.PLUGIN_PARAMS.pack(4, len(data), plugin_id)
        + data
    )


def plugin_event(
    plugin: str, raw: bytes, plugin_id: int, source: str, num: int, now: int | None = None
) -> PluginEvent:
    """Check a plugin event copied from `next_batch` and stamp it: the time when the plugin left
    UINT64_MAX, the plugin id when it left 0. A plugin with its own source may only produce
    plugin events carrying its id (libs refuses anything else)."""
    if len(raw) < abi.PLUGIN_DATA_OFFSET:
        raise PluginError(plugin, f"event {num} is {len(raw)} bytes, too short for a plugin event")
    ts, tid, length, code, nparams, id_len, data_len, event_id = _PLUGIN_HEAD.unpack_from(raw)
    if code != abi.PPME_PLUGINEVENT_E or nparams != 2:
        raise PluginError(
            plugin, f"event {num} has type {code} with {nparams} parameters, not a plugin event"
        )
    if id_len != 4 or abi.PLUGIN_DATA_OFFSET + data_len != length:
        raise PluginError(
            plugin,
            f"event {num} has the wrong length: header says {length} bytes, "
            f"parameters {abi.PLUGIN_DATA_OFFSET + data_len}",
        )
    data = raw[abi.PLUGIN_DATA_OFFSET :]
    if ts == abi.UINT64_MAX or event_id != plugin_id:
        if event_id not in (0, plugin_id):
            raise PluginError(
                plugin, f"event {num} carries plugin id {event_id}, not its own {plugin_id}"
            )
        if ts == abi.UINT64_MAX:
            ts = now if now is not None else time.time_ns()
        raw = _PLUGIN_HEAD.pack(ts, tid, length, code, nparams, 4, data_len, plugin_id) + data
    return PluginEvent(raw, data, ts, source, plugin_id, num)


def batch_events(
    plugin: str, addresses: list[int], plugin_id: int, source: str, first_num: int, max_len: int
) -> list[PluginEvent]:
    """The events of one next_batch, copied out of plugin memory, checked and stamped (what
    `plugin_event` does for one, inlined for the batch: this is the host's hot loop)."""
    string_at, length_at = ctypes.string_at, ctypes.c_uint32.from_address
    unpack, pack = _PLUGIN_HEAD.unpack_from, _PLUGIN_HEAD.pack
    now = time.time_ns()
    events = []
    for num, address in enumerate(addresses, first_num):
        if not address:
            raise PluginError(plugin, f"event {num} is a NULL pointer")
        length = length_at(address + 16).value
        if length < abi.PLUGIN_DATA_OFFSET or length > max_len:
            raise PluginError(plugin, f"event {num} has a bad length ({length} bytes)")
        raw = string_at(address, length)
        ts, tid, length, code, nparams, id_len, data_len, event_id = unpack(raw)
        if (
            code != abi.PPME_PLUGINEVENT_E
            or nparams != 2
            or id_len != 4
            or event_id not in (0, plugin_id)
            or abi.PLUGIN_DATA_OFFSET + data_len != length
        ):
            plugin_event(plugin, raw, plugin_id, source, num)  # raises the precise error
        data = raw[abi.PLUGIN_DATA_OFFSET :]
        if ts == abi.UINT64_MAX or event_id != plugin_id:
            if ts == abi.UINT64_MAX:
                ts = now
            raw = pack(ts, tid, length, code, nparams, 4, data_len, plugin_id) + data
        events.append(PluginEvent(raw, data, ts, source, plugin_id, num))
    return events


# The header and the plugin event's parameter lengths and id, in one go.
_PLUGIN_HEAD = struct.Struct("<QQIHIIII")


def async_event(
    plugin: str, raw: bytes, plugin_id: int, source: str, allowed: tuple[str, ...]
) -> PluginEvent:
    """An async event (PPME_ASYNCEVENT_E: plugin id, name, data) from the plugin's handler,
    checked against the names its get_async_events declared."""
    ts, tid, length, code, nparams = abi.HEADER.unpack_from(raw)
    lengths_end = abi.HEADER_SIZE + 4 * ASYNC_PARAMS
    if code != abi.PPME_ASYNCEVENT_E or nparams != ASYNC_PARAMS or len(raw) < lengths_end:
        raise PluginError(plugin, f"async event has type {code} with {nparams} parameters")
    id_len, name_len, data_len = (
        int.from_bytes(raw[o : o + 4], "little") for o in range(abi.HEADER_SIZE, lengths_end, 4)
    )
    if id_len != 4 or lengths_end + id_len + name_len + data_len != length:
        raise PluginError(plugin, "async event has the wrong length")
    name_start = lengths_end + id_len
    name = raw[name_start : name_start + name_len].rstrip(b"\0").decode("utf-8", "replace")
    if name not in allowed:
        raise PluginError(plugin, f"async event {name!r} is not among its get_async_events")
    if ts == abi.UINT64_MAX:
        ts = time.time_ns()
    stamped = (
        abi.HEADER.pack(ts, tid, length, code, nparams)
        + raw[abi.HEADER_SIZE : lengths_end]
        + plugin_id.to_bytes(4, "little")
        + raw[lengths_end + id_len :]
    )
    data = raw[name_start + name_len :]
    return PluginEvent(stamped, data, ts, source, plugin_id, 0, async_name=name)


# Plugin ids of the upstream plugins the built-in JSON sources stand in for (the plugin
# registry's ids), so extractor plugins see the events as they would in Falco.
BUILTIN_PLUGIN_IDS = {
    "k8s_audit": 1,
    "aws_cloudtrail": 2,
    "json": 0,
    "okta": 6,
    "github": 8,
    "gcp_auditlog": 12,
}
_BUFFER = object()


def event_bytes(event: Any) -> bytes | None:
    """The bytes extract_fields receives for any falconet event: a plugin event's own; a JSON
    event as the plugin event its upstream plugin would have produced (payload: the JSON
    text); a syscall event as its header (type code, time, thread; parameters are not
    re-encoded)."""
    raw = getattr(event, "raw", None)
    if type(event) is PluginEvent:
        return raw
    memo = getattr(event, "memo", None)
    if memo is not None:
        cached = memo.get(_BUFFER)
        if cached is not None:
            return cached
        data = getattr(event, "data", None)
        payload = (
            raw if isinstance(raw, bytes) else json.dumps(data, separators=(",", ":")).encode()
        )
        built = encode_plugin_event(payload, event.time, BUILTIN_PLUGIN_IDS.get(event.source, 0))
        memo[_BUFFER] = built
        return built
    info = getattr(event, "info", None)
    if info is not None:  # a syscall event
        return abi.HEADER.pack(event.ts, event.tid & abi.UINT64_MAX, abi.HEADER_SIZE, info.code, 0)
    return None


def iter_payload_lines(path: str, max_line: int = 16 * 1024 * 1024) -> Iterator[bytes]:
    """The payloads of a replay file for a plugin source: one event's data per line."""
    from engine.sources.errors import InputFormatError, InputNotFoundError

    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError as error:
        raise InputNotFoundError(f"{path}: no such file", hint="check the --replay path") from error
    with handle:
        while True:
            line = handle.readline(max_line + 1)
            if not line:
                return
            if len(line) > max_line and not line.endswith(b"\n"):
                raise InputFormatError(f"{path}: a line is longer than {max_line} bytes")
            line = line.rstrip(b"\r\n")
            if line:
                yield line
