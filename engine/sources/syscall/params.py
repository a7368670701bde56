"""Decoding of driver parameter bytes into Python values, by PT_ type.

Decoded forms: integers for every numeric/flag/fd/pid/time type; str for paths and char buffers;
bytes for byte buffers; SockAddr / SockTuple for socket addresses; a tuple of (fd, flags) for fd
lists; a tuple of str for string arrays. Shared by the .scap reader and falconet's capture format.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any, NamedTuple

AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10


class SockAddr(NamedTuple):
    family: int
    address: Any  # IPv4Address | IPv6Address | str (unix path) | None
    port: int


class SockTuple(NamedTuple):
    family: int
    source: Any  # address (inet) or None
    source_port: int
    dest: Any
    dest_port: int
    path: str | None = None  # unix sockets


INT_FORMATS: dict[str, str] = {
    "INT8": "<b",
    "INT16": "<h",
    "INT32": "<i",
    "INT64": "<q",
    "UINT8": "<B",
    "UINT16": "<H",
    "UINT32": "<I",
    "UINT64": "<Q",
    "ERRNO": "<q",
    "FD": "<q",
    "FD32": "<i",
    "PID": "<q",
    "FLAGS8": "<B",
    "FLAGS16": "<H",
    "FLAGS32": "<I",
    "ENUMFLAGS8": "<B",
    "ENUMFLAGS16": "<H",
    "ENUMFLAGS32": "<I",
    "MODE": "<I",
    "UID": "<I",
    "GID": "<I",
    "SIGTYPE": "<B",
    "SIGSET": "<I",
    "SYSCALLID": "<H",
    "RELTIME": "<Q",
    "ABSTIME": "<Q",
    "L4PROTO": "<B",
    "SOCKFAMILY": "<B",
    "BOOL": "<I",
    "PORT": "<H",
    "IPV4ADDR": "<I",
    "DOUBLE": "<d",
}
_UNPACKERS = {name: struct.Struct(fmt).unpack_from for name, fmt in INT_FORMATS.items()}
STRING_TYPES = frozenset({"CHARBUF", "FSPATH", "FSRELPATH"})


def _text(raw: bytes) -> str:
    end = raw.find(b"\0")
    if end >= 0:
        raw = raw[:end]
    return raw.decode("utf-8", "surrogateescape")


def _sockaddr(raw: bytes) -> SockAddr | None:
    if not raw:
        return None
    family = raw[0]
    if family == AF_INET and len(raw) >= 7:
        port = struct.unpack_from("<H", raw, 5)[0]
        return SockAddr(family, ipaddress.IPv4Address(raw[1:5]), port)
    if family == AF_INET6 and len(raw) >= 19:
        return SockAddr(
            family, ipaddress.IPv6Address(raw[1:17]), struct.unpack_from("<H", raw, 17)[0]
        )
    if family == AF_UNIX:
        return SockAddr(family, _text(raw[1:]), 0)
    return SockAddr(family, None, 0)


def _socktuple(raw: bytes) -> SockTuple | None:
    if not raw:
        return None
    family = raw[0]
    if family == AF_INET and len(raw) >= 13:
        sip, sport, dip, dport = struct.unpack_from("<4sH4sH", raw, 1)
        return SockTuple(
            family, ipaddress.IPv4Address(sip), sport, ipaddress.IPv4Address(dip), dport
        )
    if family == AF_INET6 and len(raw) >= 37:
        sip, sport, dip, dport = struct.unpack_from("<16sH16sH", raw, 1)
        source = _unmap(ipaddress.IPv6Address(sip))
        dest = _unmap(ipaddress.IPv6Address(dip))
        family = AF_INET if isinstance(source, ipaddress.IPv4Address) else AF_INET6
        return SockTuple(family, source, sport, dest, dport)
    if family == AF_UNIX and len(raw) >= 17:
        return SockTuple(family, None, 0, None, 0, _text(raw[17:]))
    return SockTuple(family, None, 0, None, 0)


def _unmap(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # The drivers report IPv4 peers of dual-stack sockets as ::ffff:a.b.c.d; libsinsp treats
    # those as IPv4 connections.
    return address.ipv4_mapped or address


def _fdlist(raw: bytes) -> tuple[tuple[int, int], ...]:
    if len(raw) < 2:
        return ()
    (count,) = struct.unpack_from("<H", raw, 0)
    count = min(count, (len(raw) - 2) // 10)
    return tuple(struct.unpack_from("<qh", raw, 2 + 10 * i) for i in range(count))


def decode(ptype: str, raw: bytes) -> Any:
    unpack = _UNPACKERS.get(ptype)
    if unpack is not None:
        if len(raw) < struct.calcsize(INT_FORMATS[ptype]):
            return None
        value = unpack(raw)[0]
        if ptype == "IPV4ADDR":
            return ipaddress.IPv4Address(struct.pack("<I", value))
        return value
    if ptype in STRING_TYPES:
        return _text(raw)
    if ptype == "SOCKADDR":
        return _sockaddr(raw)
    if ptype == "SOCKTUPLE":
        return _socktuple(raw)
    if ptype == "FDLIST":
        return _fdlist(raw)
    if ptype in ("CHARBUFARRAY", "CHARBUF_PAIR_ARRAY"):
        return tuple(_text(part) for part in raw.rstrip(b"\0").split(b"\0")) if raw else ()
    if ptype == "IPV6ADDR" and len(raw) == 16:
        return ipaddress.IPv6Address(raw)
    if ptype == "IPADDR":
        if len(raw) == 4:
            return ipaddress.IPv4Address(raw)
        if len(raw) == 16:
            return ipaddress.IPv6Address(raw)
    return bytes(raw)  # BYTEBUF, DYN and anything else stays raw


def _int_decoder(ptype: str) -> Any:
    size = struct.calcsize(INT_FORMATS[ptype])
    signed = INT_FORMATS[ptype][1].islower()
    from_bytes = int.from_bytes

    def decode_int(raw: bytes) -> int | None:
        if len(raw) != size:
            return decode(ptype, raw)
        return from_bytes(raw, "little", signed=signed)

    return decode_int


def _text_decoder(raw: bytes) -> str:
    if raw[-1:] == b"\0":
        raw = raw[:-1]
    if b"\0" in raw:
        raw = raw.split(b"\0", 1)[0]
    return raw.decode("utf-8", "surrogateescape")


def value_decoder(ptype: str) -> Any:
    """The fastest decoder of one parameter type (same results as decode())."""
    if ptype in INT_FORMATS and ptype not in ("IPV4ADDR", "DOUBLE"):
        return _int_decoder(ptype)
    if ptype in STRING_TYPES:
        return _text_decoder
    if ptype in ("BYTEBUF", "DYN"):
        return bytes
    if ptype == "SOCKTUPLE":
        return _socktuple
    if ptype == "SOCKADDR":
        return _sockaddr
    if ptype == "FDLIST":
        return _fdlist
    return lambda raw: decode(ptype, raw)


def compile_params_decoder(names_types: tuple[tuple[str, str], ...]) -> Any:
    """A function (data, count) -> {name: value} for scap-layout parameters: `count` u16
    lengths, then the values back to back; parameters beyond the table are ignored.

    The common case (count == the table's count) runs a function generated for the event type:
    one struct call for the lengths, then each value decoded inline (the replay hot path)."""
    decoders = tuple((name, value_decoder(ptype)) for name, ptype in names_types)
    structs = [struct.Struct(f"<{n}H") for n in range(len(decoders) + 1)]

    def decode_any(data: bytes, count: int) -> dict[str, Any]:
        known = min(count, len(decoders))
        lens = structs[known].unpack_from(data, 0) if known else ()
        pos = 2 * count
        params: dict[str, Any] = {}
        for (name, decoder), size in zip(decoders, lens, strict=False):
            params[name] = decoder(data[pos : pos + size])
            pos += size
        return params

    return _generate_fast_decoder(names_types, decoders, structs[-1], decode_any)


def _generate_fast_decoder(
    names_types: tuple[tuple[str, str], ...],
    decoders: tuple[tuple[str, Any], ...],
    lens_struct: struct.Struct,
    fallback: Any,
) -> Any:
    count = len(names_types)
    if count == 0:
        return fallback
    namespace: dict[str, Any] = {"_lens": lens_struct.unpack_from, "_fallback": fallback}
    lines = ["def decode_params(data, count):", f"    if count != {count}:",
             "        return _fallback(data, count)"]  # fmt: skip
    lens = ", ".join(f"l{i}" for i in range(count))
    lines.append(f"    {lens}, = _lens(data, 0)")
    lines.append(f"    p0 = {2 * count}")
    items = []
    for i, ((name, ptype), (_, decoder)) in enumerate(zip(names_types, decoders, strict=True)):
        lines.append(f"    p{i + 1} = p{i} + l{i}")
        fmt = INT_FORMATS.get(ptype)
        if fmt is not None and ptype not in ("IPV4ADDR", "DOUBLE"):
            size = struct.calcsize(fmt)
            signed = fmt[1].islower()
            namespace[f"_d{i}"] = decoder
            value = (
                f"(_from(data[p{i}:p{i + 1}], 'little', signed={signed}) if l{i} == {size} "
                f"else _d{i}(data[p{i}:p{i + 1}]))"
            )
        elif ptype in ("BYTEBUF", "DYN"):
            value = f"data[p{i}:p{i + 1}]"
        else:
            namespace[f"_d{i}"] = decoder
            value = f"_d{i}(data[p{i}:p{i + 1}])"
        items.append(f"{name!r}: {value}")
    namespace["_from"] = int.from_bytes
    lines.append("    return {" + ", ".join(items) + "}")
    exec("\n".join(lines), namespace)
    return namespace["decode_params"]
