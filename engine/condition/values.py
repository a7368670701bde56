"""Compile-time parsing of right-hand values into typed constants, as libsinsp's
`value_parser.cpp` and `sinsp_numparser` (same accepted forms, same error messages)."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

from engine.condition.errors import ConditionCompileError

# Falco's type names, used in error messages (libsinsp's param_type_to_string).
PARAM_TYPE_NAMES = {
    "string": "CHARBUF",
    "fspath": "FSPATH",
    "int": "INT64",
    "uint": "UINT64",
    "pid": "PID",
    "fd": "FD",
    "port": "PORT",
    "uid": "UID",
    "gid": "GID",
    "mode": "MODE",
    "flags": "FLAGS32",
    "errno": "ERRNO",
    "reltime": "RELTIME",
    "abstime": "ABSTIME",
    "double": "DOUBLE",
    "bool": "BOOL",
    "ipaddr": "IPADDR",
    "ipnet": "IPNET",
    "bytebuf": "BYTEBUF",
}

SIGNED_64 = frozenset({"int", "pid", "fd", "errno"})
UNSIGNED_BITS = {"uint": 64, "reltime": 64, "abstime": 64, "uid": 32, "gid": 32, "mode": 32}
UNSIGNED_BITS["flags"] = 32
NUMERIC_TYPES = SIGNED_64 | set(UNSIGNED_BITS) | {"port", "double"}
STRING_TYPES = frozenset({"string", "fspath"})
IP_TYPES = frozenset({"ipaddr", "ipnet"})

# sscanf("%d%c") accepts leading blanks and a sign, and nothing after the digits.
_SCANF_INT = re.compile(r"[ \t\n\r\f\v]*([+-]?)([0-9]+)")


def type_name(type_: str) -> str:
    return PARAM_TYPE_NAMES.get(type_, type_.upper())


def parse_value(text: str, type_: str) -> Any:
    """Parse one constant for a field of `type_`; raise ValueError with libsinsp's message."""
    if type_ == "bytebuf":
        return text.encode("utf-8", "surrogateescape")
    if "\0" in text:
        raise ValueError("filter error: filter value cannot contain a NUL byte (\\x00)")
    if type_ in STRING_TYPES:
        return text
    if type_ in SIGNED_64:
        return _parse_signed(text, 64)
    if type_ in UNSIGNED_BITS:
        return _parse_unsigned(text, UNSIGNED_BITS[type_])
    if type_ == "port":
        return _parse_port(text)
    if type_ == "double":
        return float(_parse_signed(text, 32))
    if type_ == "bool":
        if text == "true":
            return True
        if text == "false":
            return False
        raise ValueError(f"filter error: unrecognized boolean value {text}")
    if type_ == "ipaddr":
        return _parse_ip(text)
    if type_ == "ipnet":
        return _parse_net(text)
    raise ValueError(f"wrong parameter type {type_}")


def parse_value_at(text: str, type_: str, position: int) -> Any:
    """parse_value, with errors as ConditionCompileError at `position`."""
    try:
        return parse_value(text, type_)
    except ValueError as error:
        raise ConditionCompileError(str(error), position) from None


def _scan_integer(text: str) -> int:
    match = _SCANF_INT.fullmatch(text)
    if match is None:
        raise ValueError(f"{text} is not a valid number")
    sign, digits = match.groups()
    return -int(digits) if sign == "-" else int(digits)


def _parse_signed(text: str, bits: int) -> int:
    value = _scan_integer(text)
    limit = 1 << (bits - 1)
    # strtoll saturates on overflow.
    return max(-limit, min(limit - 1, value))


def _parse_unsigned(text: str, bits: int) -> int:
    # strtoull accepts a minus sign and wraps, as does the narrowing to the field's width.
    return _scan_integer(text) % (1 << bits)


def _parse_port(text: str) -> int:
    if text == "":
        return 0
    if text.isascii() and text.isdigit():
        return int(text) & 0xFFFF
    try:
        return socket.getservbyname(text)
    except OSError:
        raise ValueError(f"unrecognized protocol {text}") from None


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if "." in text:
        try:
            return ipaddress.IPv4Address(text)
        except ValueError:
            raise ValueError(f"unrecognized IPv4 address {text}") from None
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        raise ValueError(f"unrecognized IPv6 address {text}") from None


def _parse_net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if "/" not in text:
        raise ValueError(f"unrecognized IP network {text}")
    address, _, mask = text.partition("/")
    if "." in text:
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise ValueError(f"unrecognized IP address {text}") from None
        bits = _parse_unsigned(mask, 8)
        if bits > 32:
            raise ValueError(f"invalid netmask {mask}")
        return ipaddress.IPv4Network(f"{address}/{bits}", strict=False)
    try:
        return ipaddress.IPv6Network(text, strict=False)
    except ValueError:
        raise ValueError(f"unrecognized IPv6 network {text}") from None


def unhex(text: str) -> bytes | None:
    """Hex string -> bytes, as sinsp_utils::unhex (even length, hex digits only)."""
    if len(text) % 2 or any(c not in "0123456789abcdefABCDEF" for c in text):
        return None
    return bytes.fromhex(text)
