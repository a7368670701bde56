"""Encoding of Python parameter values into driver bytes: the inverse of params.decode()."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from engine.sources.syscall.params import (
    AF_INET,
    AF_INET6,
    AF_UNIX,
    INT_FORMATS,
    STRING_TYPES,
    SockAddr,
    SockTuple,
)


def _address_bytes(address: Any) -> bytes:
    return ipaddress.ip_address(address).packed


def _sockaddr(value: SockAddr) -> bytes:
    if value.family == AF_INET:
        return bytes([AF_INET]) + _address_bytes(value.address) + struct.pack("<H", value.port)
    if value.family == AF_INET6:
        return bytes([AF_INET6]) + _address_bytes(value.address) + struct.pack("<H", value.port)
    if value.family == AF_UNIX:
        return bytes([AF_UNIX]) + str(value.address or "").encode() + b"\0"
    return bytes([value.family])


def _socktuple(value: SockTuple) -> bytes:
    if value.family == AF_INET:
        return bytes([AF_INET]) + struct.pack(
            "<4sH4sH",
            _address_bytes(value.source),
            value.source_port,
            _address_bytes(value.dest),
            value.dest_port,
        )
    if value.family == AF_INET6:
        return bytes([AF_INET6]) + struct.pack(
            "<16sH16sH",
            _address_bytes(value.source),
            value.source_port,
            _address_bytes(value.dest),
            value.dest_port,
        )
    if value.family == AF_UNIX:
        return bytes([AF_UNIX]) + b"\0" * 16 + (value.path or "").encode() + b"\0"
    return bytes([value.family])


def encode_value(ptype: str, value: Any) -> bytes:
    if value is None:
        return b""
    fmt = INT_FORMATS.get(ptype)
    if fmt is not None and ptype not in ("IPV4ADDR", "DOUBLE"):
        if isinstance(value, bool):
            value = int(value)
        size = struct.calcsize(fmt)
        signed = fmt[1].islower()
        return int(value).to_bytes(size, "little", signed=signed)
    if ptype == "IPV4ADDR":
        # decode() reads IPV4ADDR as a little-endian u32 of the network-order bytes.
        return ipaddress.IPv4Address(value).packed
    if ptype == "DOUBLE":
        return struct.pack("<d", value)
    if ptype in STRING_TYPES:
        return str(value).encode("utf-8", "surrogateescape") + b"\0"
    if isinstance(value, SockTuple):
        return _socktuple(value)
    if isinstance(value, SockAddr):
        return _sockaddr(value)
    if ptype == "FDLIST":
        return struct.pack("<H", len(value)) + b"".join(struct.pack("<qh", f, m) for f, m in value)
    if ptype in ("CHARBUFARRAY", "CHARBUF_PAIR_ARRAY"):
        return b"".join(str(v).encode() + b"\0" for v in value)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value.packed
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return bytes(value)
