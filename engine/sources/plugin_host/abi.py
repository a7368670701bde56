"""The Falco plugin C ABI (plugin API 3.x) as ctypes declarations: return codes, field types,
the event header, and the structs passed to `init`, `extract_fields` and `parse_event`.

Layouts follow libs' userspace/plugin/plugin_api.h and plugin_types.h (see docs/plugins.md).
Input structs that end in table vtables the host does not implement are declared with extra
zero-filled room: a plugin reading a newer member than this host knows finds NULL, never garbage.
"""

from __future__ import annotations

import ctypes
import struct

# ss_plugin_rc
SUCCESS = 0
FAILURE = 1
TIMEOUT = -1
EOF = 2
NOT_SUPPORTED = 3

# ss_plugin_field_type values -> falconet field types (engine.fields)
FIELD_TYPES: dict[str, tuple[int, str]] = {
    "uint64": (8, "uint"),
    "string": (9, "string"),
    "reltime": (20, "reltime"),
    "abstime": (21, "abstime"),
    "bool": (25, "bool"),
    "ipaddr": (40, "ipaddr"),
    "ipnet": (41, "ipnet"),
}
FTYPE_UINT64, FTYPE_STRING, FTYPE_RELTIME, FTYPE_ABSTIME = 8, 9, 20, 21
FTYPE_BOOL, FTYPE_IPADDR, FTYPE_IPNET = 25, 40, 41

# ss_plugin_schema_type
SCHEMA_NONE = 0
SCHEMA_JSON = 1

# Event codes (libscap's event table)
PPME_PLUGINEVENT_E = 322
PPME_ASYNCEVENT_E = 402
UINT64_MAX = 0xFFFFFFFFFFFFFFFF

# The packed 26-byte event header: ts u64, tid u64, len u32 (whole event), type u16, nparams u32.
HEADER = struct.Struct("<QQIHI")
HEADER_SIZE = HEADER.size  # 26
# A plugin event: header, two u32 parameter lengths (4 and the data length), plugin id, data.
PLUGIN_PARAMS = struct.Struct("<III")
PLUGIN_DATA_OFFSET = HEADER_SIZE + PLUGIN_PARAMS.size  # 38

# The most a plugin's error string may be (PLUGIN_MAX_ERRLEN).
MAX_ERRLEN = 1024


class EventInput(ctypes.Structure):
    """ss_plugin_event_input. `evt` is a char pointer so a Python bytes object (the event's own
    copy) can be pointed at without another copy."""

    _fields_ = [
        ("evt", ctypes.c_char_p),
        ("evtnum", ctypes.c_uint64),
        ("evtsrc", ctypes.c_char_p),
    ]


class InitTablesInput(ctypes.Structure):
    """ss_plugin_init_tables_input (72 bytes on x86-64 in API 3.12): list_tables, get_table,
    add_table, the 3-entry fields vtable, fields_ext, reader_ext, writer_ext. falconet offers no
    state tables: every member is NULL. It must still be a struct, never a NULL pointer: plugins
    built with the C++ SDK read it in init."""

    _fields_ = [("members", ctypes.c_void_p * 9), ("room", ctypes.c_void_p * 7)]


OWNER_LAST_ERROR = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_void_p)
LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint32)
ASYNC_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


class InitInput(ctypes.Structure):
    _fields_ = [
        ("config", ctypes.c_char_p),
        ("owner", ctypes.c_void_p),
        ("get_owner_last_error", OWNER_LAST_ERROR),
        ("tables", ctypes.POINTER(InitTablesInput)),
        ("log_fn", LOG_FN),
        ("room", ctypes.c_void_p * 8),
    ]


class ExtractField(ctypes.Structure):
    """ss_plugin_extract_field: one requested field in, its values out (`res`, `res_len`)."""

    _fields_ = [
        ("res", ctypes.c_void_p),
        ("res_len", ctypes.c_uint64),
        ("field_id", ctypes.c_uint32),
        ("field", ctypes.c_char_p),
        ("arg_key", ctypes.c_char_p),
        ("arg_index", ctypes.c_uint64),
        ("arg_present", ctypes.c_uint32),
        ("ftype", ctypes.c_uint32),
        ("flist", ctypes.c_uint32),
    ]


class ExtractInput(ctypes.Structure):
    """ss_plugin_field_extract_input: owner, get_owner_last_error, num_fields, fields, then the
    table reader vtables and value_offsets (NULL: no state tables, no offsets wanted)."""

    _fields_ = [
        ("owner", ctypes.c_void_p),
        ("get_owner_last_error", OWNER_LAST_ERROR),
        ("num_fields", ctypes.c_uint32),
        ("fields", ctypes.POINTER(ExtractField)),
        ("tables", ctypes.c_void_p * 8),
    ]


class ParseInput(ctypes.Structure):
    """ss_plugin_event_parse_input: owner, get_owner_last_error, then table vtables (NULL)."""

    _fields_ = [
        ("owner", ctypes.c_void_p),
        ("get_owner_last_error", OWNER_LAST_ERROR),
        ("tables", ctypes.c_void_p * 16),
    ]


class ByteBuffer(ctypes.Structure):
    """ss_plugin_byte_buffer: the value of ipaddr/ipnet fields."""

    _fields_ = [("len", ctypes.c_uint32), ("ptr", ctypes.c_void_p)]


def declare(lib: ctypes.CDLL) -> dict[str, object]:
    """The plugin's exported `plugin_*` symbols with their prototypes; absent ones are skipped."""
    c = ctypes
    rc_p = c.POINTER(c.c_int32)
    prototypes: dict[str, tuple[object, list[object]]] = {
        "get_required_api_version": (c.c_char_p, []),
        "get_version": (c.c_char_p, []),
        "get_name": (c.c_char_p, []),
        "get_description": (c.c_char_p, []),
        "get_contact": (c.c_char_p, []),
        "get_init_schema": (c.c_char_p, [c.POINTER(c.c_uint32)]),
        "init": (c.c_void_p, [c.POINTER(InitInput), rc_p]),
        "destroy": (None, [c.c_void_p]),
        "get_last_error": (c.c_char_p, [c.c_void_p]),
        "get_id": (c.c_uint32, []),
        "get_event_source": (c.c_char_p, []),
        "open": (c.c_void_p, [c.c_void_p, c.c_char_p, rc_p]),
        "close": (None, [c.c_void_p, c.c_void_p]),
        "list_open_params": (c.c_char_p, [c.c_void_p, rc_p]),
        "get_progress": (c.c_char_p, [c.c_void_p, c.c_void_p, c.POINTER(c.c_uint32)]),
        "event_to_string": (c.c_char_p, [c.c_void_p, c.POINTER(EventInput)]),
        "next_batch": (
            c.c_int32,
            [c.c_void_p, c.c_void_p, c.POINTER(c.c_uint32), c.POINTER(c.POINTER(c.c_void_p))],
        ),
        "get_extract_event_types": (c.POINTER(c.c_uint16), [c.POINTER(c.c_uint32), c.c_void_p]),
        "get_extract_event_sources": (c.c_char_p, []),
        "get_fields": (c.c_char_p, []),
        "extract_fields": (c.c_int32, [c.c_void_p, c.POINTER(EventInput), c.POINTER(ExtractInput)]),
        "get_parse_event_sources": (c.c_char_p, []),
        "parse_event": (c.c_int32, [c.c_void_p, c.POINTER(EventInput), c.POINTER(ParseInput)]),
        "get_async_event_sources": (c.c_char_p, []),
        "get_async_events": (c.c_char_p, []),
        "set_async_event_handler": (c.c_int32, [c.c_void_p, c.c_void_p, ASYNC_HANDLER]),
        "capture_open": (c.c_int32, [c.c_void_p, c.c_void_p]),
        "capture_close": (c.c_int32, [c.c_void_p, c.c_void_p]),
    }
    found: dict[str, object] = {}
    for name, (restype, argtypes) in prototypes.items():
        try:
            function = getattr(lib, "plugin_" + name)
        except AttributeError:
            continue
        function.restype = restype
        function.argtypes = argtypes
        found[name] = function
    return found
