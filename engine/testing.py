"""A synthetic event source for tests and benches: one mock field of every type, and plain-dict
events built with `make_event`.

Field names live under `test.` (plus `evt.type` and `evt.num`, so event-type logic can be
exercised). An event is a dict from field name to value; a missing key means "cannot be
extracted". Argument fields take a dict value keyed by argument (`test.map` -> {"HOME": "/root"}).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from engine.fields import Extractor, FieldCatalog, FieldSpec, any_of

SOURCE = "test"

# (name, type, is_list, options)
_SIMPLE_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("evt.type", "string", False),
    ("evt.num", "uint", False),
    ("test.str", "string", False),
    ("test.str2", "string", False),
    ("test.path", "fspath", False),
    ("test.int", "int", False),
    ("test.int2", "int", False),
    ("test.uint", "uint", False),
    ("test.pid", "pid", False),
    ("test.fd", "fd", False),
    ("test.port", "port", False),
    ("test.uid", "uid", False),
    ("test.gid", "gid", False),
    ("test.mode", "mode", False),
    ("test.flags", "flags", False),
    ("test.errno", "errno", False),
    ("test.reltime", "reltime", False),
    ("test.abstime", "abstime", False),
    ("test.double", "double", False),
    ("test.bool", "bool", False),
    ("test.ip", "ipaddr", False),
    ("test.ip2", "ipaddr", False),
    ("test.net", "ipnet", False),
    ("test.buf", "bytebuf", False),
    ("test.list", "string", True),
    ("test.list2", "string", True),
    ("test.uintlist", "uint", True),
    ("test.boollist", "bool", True),
    ("test.iplist", "ipaddr", True),
    ("test.netlist", "ipnet", True),
    ("test.pathlist", "fspath", True),
)


def _plain(name: str) -> Extractor:
    def extract(event: Mapping[str, Any]) -> Any:
        return event.get(name)

    return extract


def _keyed(name: str, arg: str | None) -> Extractor:
    """Extract event[name][arg]; without an argument, the whole mapping joined as text."""
    if arg is None:

        def whole(event: Mapping[str, Any]) -> Any:
            mapping = event.get(name)
            if mapping is None:
                return None
            return " ".join(f"{k}={v}" for k, v in mapping.items())

        return whole

    def extract(event: Mapping[str, Any]) -> Any:
        mapping = event.get(name)
        return None if mapping is None else mapping.get(arg)

    return extract


def _indexed(name: str, arg: str | None) -> Extractor:
    """Like proc.aname: with an index, that ancestor; without, every ancestor (a list)."""
    if arg is None:

        def all_items(event: Mapping[str, Any]) -> Any:
            items = event.get(name)
            return None if items is None else tuple(items)

        return all_items
    if not arg.isdigit():
        raise ValueError(f"index {arg!r} is not a number")
    index = int(arg)

    def extract(event: Mapping[str, Any]) -> Any:
        items = event.get(name)
        if items is None or index >= len(items):
            return None
        return items[index]

    return extract


def synthetic_catalog() -> FieldCatalog:
    """The catalog of the synthetic `test` source."""
    catalog = FieldCatalog(SOURCE)
    for name, type_, is_list in _SIMPLE_FIELDS:
        catalog.add_simple(
            FieldSpec(name, type_, f"mock {type_} field", is_list=is_list), _plain(name)
        )
    catalog.add(
        FieldSpec("test.map", "string", "mock keyed field (argument optional)", arg="optional"),
        lambda arg: _keyed("test.map", arg),
    )
    catalog.add(
        FieldSpec("test.req", "string", "mock keyed field (argument required)", arg="required"),
        lambda arg: _keyed("test.req", arg),
    )
    catalog.add(
        FieldSpec(
            "test.dotted",
            "string",
            "mock keyed field taking a dotted argument (test.dotted.NAME)",
            arg="optional",
            dotted_arg=True,
        ),
        lambda arg: _keyed("test.dotted", arg),
    )
    catalog.add(
        FieldSpec(
            "test.anc",
            "string",
            "mock ancestor field (like proc.aname)",
            arg="optional",
            no_rhs=True,
            no_transformer=True,
        ),
        lambda arg: (
            _indexed("test.anc", arg) if arg is not None else any_of(_indexed("test.anc", None))
        ),
    )
    return catalog


def make_event(**values: Any) -> dict[str, Any]:
    """Build a synthetic event: `make_event(test_str="a", evt_type="open")`.

    Keyword names use `_` for `.`; strings given for IP fields are parsed; lists become tuples.
    """
    event: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("_", ".", 1) if key.startswith(("test_", "evt_")) else key
        event[name] = _coerce(name, value)
    return event


_IP_FIELDS = frozenset({"test.ip", "test.ip2", "test.iplist"})
_NET_FIELDS = frozenset({"test.net", "test.netlist"})


def _coerce(name: str, value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_coerce(name, item) for item in value)
    if isinstance(value, str) and name in _IP_FIELDS:
        return ipaddress.ip_address(value)
    if isinstance(value, str) and name in _NET_FIELDS:
        return ipaddress.ip_address(value)  # a network field extracts the address it matches
    return value
