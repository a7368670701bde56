"""One native Falco plugin: its shared library loaded through the C ABI, checked as libs' plugin
loader checks it, and its capabilities wrapped as Python calls.

Memory ownership is the ABI's: every string or buffer the plugin returns belongs to the plugin
and stays valid only until the next call of the same function (or `close`/`destroy`), so the host
copies what it keeps right away and never frees anything. What the host passes in (configs,
events, field requests) stays alive for the duration of the call, and the plugin keeps no
pointer to it afterwards.

A plugin runs in the host's process: a segfault in it ends falconet, exactly as it ends Falco.
Everything short of that (broken JSON, wrong lengths, failing calls) raises PluginError naming
the plugin.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import logging
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.sources.plugin_host import abi
from engine.sources.plugin_host.errors import (
    PluginApiVersionError,
    PluginConfigError,
    PluginError,
    PluginNotFoundError,
)
from engine.versions import PLUGIN_API_VERSION

log = logging.getLogger(__name__)

# The plugin API this host implements, as falconet declares it (/versions, artifact resolution).
_MAJOR, _MINOR, _PATCH = (int(p) for p in PLUGIN_API_VERSION.split("."))
HOST_API_VERSION = (_MAJOR, _MINOR, _PATCH)
REQUIRED_SYMBOLS = (
    "get_required_api_version",
    "get_version",
    "get_name",
    "get_description",
    "get_contact",
    "init",
    "destroy",
    "get_last_error",
)
# Bounds on what a plugin hands over: its JSON documents, its field list, a list field's values.
MAX_JSON_TEXT = 4 * 1024 * 1024
MAX_FIELDS = 4096
MAX_LIST_VALUES = 65_536
MAX_STRING_VALUE = 16 * 1024 * 1024

_LOG_LEVELS = {1: logging.CRITICAL, 2: logging.CRITICAL, 3: logging.ERROR, 4: logging.WARNING}


@dataclass(frozen=True)
class PluginField:
    """One entry of get_fields: `index` is the field id extract_fields receives."""

    index: int
    name: str
    ftype: int
    type: str  # falconet's type name (engine.fields)
    is_list: bool
    arg: str  # none | required | optional
    arg_is_index: bool
    arg_is_key: bool
    desc: str
    display: str


def parse_version(text: str) -> tuple[int, int, int]:
    parts = text.strip().split(".")
    if len(parts) != 3 or not all(p.isdecimal() for p in parts):
        raise ValueError(f"not a MAJOR.MINOR.PATCH version: {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def api_compatible(required: tuple[int, int, int], host: tuple[int, int, int]) -> bool:
    """libs' rule: same major; the host's minor at least the plugin's; patches compared when the
    minors are equal."""
    if required[0] != host[0]:
        return False
    if host[1] != required[1]:
        return host[1] > required[1]
    return host[2] >= required[2]


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", "replace") if value else ""


class Plugin:
    """A loaded, checked plugin library; `init` makes it usable."""

    def __init__(self, path: Path, expected_name: str | None = None) -> None:
        self.path = path
        label = expected_name or path.name
        if not path.is_file():
            raise PluginNotFoundError(
                label,
                f"library {path} does not exist",
                hint="install it (falconet artifact install NAME) or fix library_path",
            )
        try:
            self._lib = ctypes.CDLL(str(path), mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except OSError as error:
            raise PluginError(label, f"cannot load {path}: {error}") from error
        self._api: dict[str, Any] = abi.declare(self._lib)
        missing = [s for s in REQUIRED_SYMBOLS if s not in self._api]
        if missing:
            raise PluginError(
                label, f"{path} is not a Falco plugin: no plugin_{', plugin_'.join(missing)}"
            )
        self.name = _text(self._api["get_name"]()) or label
        self.version = _text(self._api["get_version"]())
        self.description = _text(self._api["get_description"]())
        self.contact = _text(self._api["get_contact"]())
        self.required_api_version = _text(self._api["get_required_api_version"]())
        self._check_api_version()
        self._check_capabilities()
        self.id = int(self._api["get_id"]()) if "get_id" in self._api else 0
        self.event_source = (
            _text(self._api["get_event_source"]()) if "get_event_source" in self._api else ""
        )
        if self.has_sourcing and bool(self.id) != bool(self.event_source):
            raise PluginError(self.name, "get_id and get_event_source must both be set or unset")
        self.fields: list[PluginField] = self._read_fields() if self.has_extraction else []
        self.extract_sources = self._sources("get_extract_event_sources")
        self.parse_sources = self._sources("get_parse_event_sources")
        self.async_events: tuple[str, ...] = ()
        self._state: int | None = None
        self._lock = threading.Lock()  # calls that share prepared inputs; never re-entered
        self._keep: list[Any] = []  # ctypes objects the plugin may still point at
        self._batch: _Batch | None = None

    # -- checks done at load time ---------------------------------------------------------------

    def _check_api_version(self) -> None:
        host = ".".join(map(str, HOST_API_VERSION))
        try:
            required = parse_version(self.required_api_version)
        except ValueError as error:
            raise PluginError(self.name, f"bad required API version: {error}") from error
        if not api_compatible(required, HOST_API_VERSION):
            raise PluginApiVersionError(
                self.name,
                f"requires plugin API version {self.required_api_version}, "
                f"which is not compatible with falconet's {host}",
                hint=f"use a build of the plugin for plugin API 3.x up to {host}",
            )

    def _check_capabilities(self) -> None:
        groups = {
            "sourcing": ("open", "close", "next_batch"),
            "extraction": ("get_fields", "extract_fields"),
            "parsing": ("parse_event",),
            "async": ("get_async_events", "set_async_event_handler"),
            "capture listening": ("capture_open", "capture_close"),
        }
        self.capabilities: list[str] = []
        for capability, symbols in groups.items():
            present = [s for s in symbols if s in self._api]
            if present and len(present) != len(symbols):
                missing = ", ".join(f"plugin_{s}" for s in symbols if s not in self._api)
                raise PluginError(self.name, f"partial {capability} capability: {missing} missing")
            if present:
                self.capabilities.append(capability)
        if not self.capabilities:
            raise PluginError(self.name, "has no capability (sourcing, extraction, parsing...)")

    @property
    def has_sourcing(self) -> bool:
        return "sourcing" in self.capabilities

    @property
    def has_extraction(self) -> bool:
        return "extraction" in self.capabilities

    @property
    def has_parsing(self) -> bool:
        return "parsing" in self.capabilities

    @property
    def has_async(self) -> bool:
        return "async" in self.capabilities

    def _json(self, what: str, raw: bytes | None) -> Any:
        if raw is None:
            raise PluginError(self.name, f"{what} returned NULL")
        if len(raw) > MAX_JSON_TEXT:
            raise PluginError(
                self.name, f"{what} returned {len(raw)} bytes (limit {MAX_JSON_TEXT})"
            )
        try:
            return json.loads(raw)
        except ValueError as error:
            raise PluginError(self.name, f"{what} returned invalid JSON: {error}") from error

    def _sources(self, symbol: str) -> tuple[str, ...] | None:
        """A declared list of event sources; None when the plugin declares none (then: its own
        source when it has one, else every source)."""
        if symbol not in self._api:
            return None
        value = self._json(symbol, self._api[symbol]())
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise PluginError(self.name, f"{symbol} must return a JSON array of strings")
        return tuple(value) or None

    def _read_fields(self) -> list[PluginField]:
        entries = self._json("get_fields", self._api["get_fields"]())
        if not isinstance(entries, list):
            raise PluginError(self.name, "get_fields must return a JSON array")
        if len(entries) > MAX_FIELDS:
            raise PluginError(
                self.name, f"get_fields lists {len(entries)} fields (limit {MAX_FIELDS})"
            )
        fields: list[PluginField] = []
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            fields.append(self._field(index, entry, seen))
        return fields

    def _field(self, index: int, entry: Any, seen: set[str]) -> PluginField:
        where = f"get_fields entry {index}"
        if not isinstance(entry, dict):
            raise PluginError(self.name, f"{where} is not an object")
        name = entry.get("name")
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise PluginError(self.name, f"{where} has no valid name")
        if name in seen:
            raise PluginError(self.name, f"field {name} is listed twice")
        seen.add(name)
        kind = entry.get("type")
        if kind not in abi.FIELD_TYPES:
            raise PluginError(self.name, f"field {name} has unknown type {kind!r}")
        ftype, falconet_type = abi.FIELD_TYPES[kind]
        arg = entry.get("arg") or {}
        if not isinstance(arg, dict):
            raise PluginError(self.name, f"field {name}: arg must be an object")
        is_index, is_key = bool(arg.get("isIndex")), bool(arg.get("isKey"))
        required = bool(arg.get("isRequired"))
        if required and not (is_index or is_key):
            raise PluginError(
                self.name, f"field {name}: a required argument needs isIndex or isKey"
            )
        mode = "required" if required else ("optional" if is_index or is_key else "none")
        return PluginField(
            index=index,
            name=name,
            ftype=ftype,
            type=falconet_type,
            is_list=bool(entry.get("isList")),
            arg=mode,
            arg_is_index=is_index,
            arg_is_key=is_key,
            desc=str(entry.get("desc") or ""),
            display=str(entry.get("display") or ""),
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def init_schema(self) -> dict[str, Any] | None:
        if "get_init_schema" not in self._api:
            return None
        kind = ctypes.c_uint32(abi.SCHEMA_NONE)
        raw = self._api["get_init_schema"](ctypes.byref(kind))
        if kind.value == abi.SCHEMA_NONE or not raw:
            return None
        if kind.value != abi.SCHEMA_JSON:
            raise PluginError(self.name, f"get_init_schema: unknown schema type {kind.value}")
        schema = self._json("get_init_schema", raw)
        if not isinstance(schema, dict):
            raise PluginError(self.name, "get_init_schema must return a JSON object")
        return schema

    def validate_init_config(self, config: str) -> None:
        """Check init_config against the plugin's JSON Schema, as libs does before init."""
        schema = self.init_schema()
        if schema is None:
            return
        import jsonschema

        text = config.strip() or "{}"  # libs validates an empty config as an empty object
        try:
            document = json.loads(text)
        except ValueError as error:
            raise PluginConfigError(
                self.name, f"init_config is not JSON, as the plugin's schema requires: {error}"
            ) from error
        try:
            validator = jsonschema.validators.validator_for(schema)
            validator.check_schema(schema)
            error = jsonschema.exceptions.best_match(validator(schema).iter_errors(document))
        except jsonschema.exceptions.SchemaError as bad:
            raise PluginError(self.name, f"get_init_schema: invalid schema: {bad.message}") from bad
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
            raise PluginConfigError(
                self.name,
                f"init_config does not match the plugin's schema at {where}: {error.message}",
                hint="see the plugin's documentation for its init_config",
            )

    def init(self, config: str = "") -> None:
        self.validate_init_config(config)
        tables = abi.InitTablesInput()  # zero-filled: no state tables, never a NULL pointer
        owner = ctypes.create_string_buffer(16)  # an opaque, non-NULL owner
        owner_error = abi.OWNER_LAST_ERROR(lambda _owner: None)
        log_fn = abi.LOG_FN(self._on_log)
        init_input = abi.InitInput(
            config=config.encode(),
            owner=ctypes.addressof(owner),
            get_owner_last_error=owner_error,
            tables=ctypes.pointer(tables),
            log_fn=log_fn,
        )
        # The plugin may keep the owner and the callbacks for its whole life.
        self._keep += [tables, owner, owner_error, log_fn, init_input]
        self._owner = ctypes.addressof(owner)
        self._owner_error = owner_error
        rc = ctypes.c_int32(abi.FAILURE)
        state = self._api["init"](ctypes.byref(init_input), ctypes.byref(rc))
        if rc.value != abi.SUCCESS:
            message = self._error_of(state) or f"init failed (rc {rc.value})"
            if state:
                self._api["destroy"](state)
            raise PluginError(self.name, f"init failed: {message}")
        self._state = state
        if self.has_async:
            names = self._json("get_async_events", self._api["get_async_events"]())
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise PluginError(self.name, "get_async_events must return a JSON array of names")
            self.async_events = tuple(names)

    def _on_log(self, component: bytes | None, message: bytes | None, severity: int) -> None:
        level = _LOG_LEVELS.get(severity, logging.INFO if severity <= 6 else logging.DEBUG)
        log.log(level, "%s: %s", _text(component) or self.name, _text(message))

    def _error_of(self, state: int | None) -> str:
        if not state:
            return ""
        return _text(self._api["get_last_error"](state))[: abi.MAX_ERRLEN]

    def last_error(self) -> str:
        return self._error_of(self._state)

    @property
    def state(self) -> int:
        if self._state is None:
            raise PluginError(self.name, "used before init")
        return self._state

    def destroy(self) -> None:
        with self._lock:
            if self._state is not None:
                if self.has_async:
                    self._api["set_async_event_handler"](
                        self._state, self._owner, abi.ASYNC_HANDLER()
                    )
                self._api["destroy"](self._state)
                self._state = None

    # -- sourcing ----------------------------------------------------------------------------------

    def list_open_params(self) -> list[dict[str, Any]]:
        if "list_open_params" not in self._api:
            return []
        rc = ctypes.c_int32(abi.FAILURE)
        raw = self._api["list_open_params"](self.state, ctypes.byref(rc))
        if rc.value != abi.SUCCESS:
            raise PluginError(self.name, f"list_open_params failed: {self.last_error()}")
        params = self._json("list_open_params", raw or b"[]")
        if not isinstance(params, list) or not all(
            isinstance(p, dict) and isinstance(p.get("value"), str) for p in params
        ):
            raise PluginError(self.name, "list_open_params must return [{value, desc?}, ...]")
        return params

    def open(self, params: str = "") -> int:
        if not self.has_sourcing:
            raise PluginError(self.name, "has no sourcing capability: it cannot be opened")
        rc = ctypes.c_int32(abi.FAILURE)
        handle = self._api["open"](self.state, params.encode(), ctypes.byref(rc))
        if rc.value != abi.SUCCESS or not handle:
            raise PluginError(self.name, f"open failed: {self.last_error() or f'rc {rc.value}'}")
        return int(handle)

    def close(self, handle: int) -> None:
        self._api["close"](self.state, handle)

    def next_batch(self, handle: int) -> tuple[int, list[int]]:
        """One next_batch call: (rc, addresses of the returned events, valid until the next
        call)."""
        count = ctypes.c_uint32(0)
        events = ctypes.POINTER(ctypes.c_void_p)()
        rc = self._api["next_batch"](self.state, handle, ctypes.byref(count), ctypes.byref(events))
        if rc not in (abi.SUCCESS, abi.EOF) or count.value == 0:
            return rc, []
        if not events:
            raise PluginError(self.name, f"next_batch returned {count.value} events but no array")
        return rc, [events[i] or 0 for i in range(count.value)]

    def progress(self, handle: int) -> tuple[float, str] | None:
        if "get_progress" not in self._api:
            return None
        pct = ctypes.c_uint32(0)
        text = self._api["get_progress"](self.state, handle, ctypes.byref(pct))
        return min(pct.value, 10000) / 100.0, _text(text)

    def event_text(self, event: bytes, evtnum: int, source: str) -> str | None:
        if "event_to_string" not in self._api:
            return None
        request = abi.EventInput(event, evtnum, source.encode())
        return _text(self._api["event_to_string"](self.state, ctypes.byref(request)))

    # -- async events ------------------------------------------------------------------------------

    def set_async_handler(self, on_event: Callable[[bytes], None] | None) -> None:
        """Hand the plugin a handler for async events; `on_event` gets each event's bytes (a
        copy). None stops the plugin's async production."""
        if not self.has_async:
            return
        if on_event is None:
            handler = abi.ASYNC_HANDLER()
        else:

            def handle(_owner: int, event: int, _err: int) -> int:
                try:
                    on_event(copy_event(self.name, event))
                except Exception as error:  # never unwind through the plugin's C frames
                    log.error("%s", error)
                    return abi.FAILURE
                return abi.SUCCESS

            handler = abi.ASYNC_HANDLER(handle)
        self._keep.append(handler)
        rc = self._api["set_async_event_handler"](self.state, self._owner, handler)
        if rc != abi.SUCCESS:
            raise PluginError(self.name, f"set_async_event_handler failed: {self.last_error()}")

    # -- parsing -----------------------------------------------------------------------------------

    def parser(self) -> Callable[[bytes, int, bytes], None]:
        """parse_event for one event (bytes, number, source)."""
        request = abi.EventInput()
        parse_input = abi.ParseInput(owner=self._owner, get_owner_last_error=self._owner_error)
        # Without argtypes, as _Batch's extract_fields: the arguments are ctypes objects.
        parse, state, lock = (
            self._lib["plugin_parse_event"],
            ctypes.c_void_p(self.state),
            self._lock,
        )
        parse.restype = ctypes.c_int32
        request_ref, input_ref = ctypes.byref(request), ctypes.byref(parse_input)

        def parse_one(event: bytes, evtnum: int, source: bytes) -> None:
            with lock:
                request.evt, request.evtnum, request.evtsrc = event, evtnum, source
                if parse(state, request_ref, input_ref) != abi.SUCCESS:
                    raise PluginError(self.name, f"parse_event failed: {self.last_error()}")

        return parse_one

    # -- extraction --------------------------------------------------------------------------------

    def field_slot(
        self, field: PluginField, arg: str | None
    ) -> tuple[object, int, Callable[[bytes, int, bytes], list[Any]]]:
        """Request one (field, argument): (memo token, slot, extract). Every requested field of
        the plugin is extracted by one extract_fields call per event, `extract(event bytes,
        event number, source name)`, whose list of values (None: no value; a tuple for a list
        field) the caller memoizes per event under the token and indexes by slot: one crossing
        into the plugin per event instead of one per field."""
        if self._batch is None:
            self._batch = _Batch(self)
        batch = self._batch
        return batch.token, batch.slot(field, arg), batch.extract


class _Batch:
    """The fields requested from one plugin, as one ss_plugin_extract_field array."""

    def __init__(self, plugin: Plugin) -> None:
        self.plugin = plugin
        self.token = object()
        self.fields: list[PluginField] = []
        self._keys: dict[tuple[int, str | None], int] = {}
        self._requests: list[abi.ExtractField] = []
        self._array: Any = None
        self._layout: tuple[int, bytes, int] = (0, b"", 0)
        self._plan: list[tuple[PluginField, Callable[[int], Any] | None, int]] = []
        self._input = abi.ExtractInput(
            owner=plugin._owner, get_owner_last_error=plugin._owner_error
        )
        self._event = abi.EventInput()
        self._refs = (ctypes.byref(self._event), ctypes.byref(self._input))
        # A second handle on the symbol without argtypes: the arguments below are ctypes
        # objects already, and skipping the per-call conversion is most of a call's cost.
        self._call = plugin._lib["plugin_extract_fields"]
        self._source = b""
        self._call.restype = ctypes.c_int32
        self._state = ctypes.c_void_p(plugin.state)

    def slot(self, field: PluginField, arg: str | None) -> int:
        key = (field.index, arg)
        found = self._keys.get(key)
        if found is not None:
            return found
        request = abi.ExtractField()
        request.field_id = field.index
        request.field = field.name.encode()
        request.ftype = field.ftype
        request.flist = int(field.is_list)
        if arg is not None:
            request.arg_present = 1
            if field.arg_is_index:
                if not arg.isdecimal():
                    raise ValueError("the argument must be an index (a non-negative integer)")
                request.arg_index = int(arg)
            if field.arg_is_key or not field.arg_is_index:
                request.arg_key = arg.encode()
        with self.plugin._lock:  # a reload compiles rules while events are extracted
            self._requests.append(request)  # keeps the name/argument bytes alive
            self.fields.append(field)
            self._keys[key] = len(self.fields) - 1
            self._array = None
            return self._keys[key]

    def _prepare(self) -> tuple[int, bytes, int]:
        """The request array, rebuilt after a new slot: (its address, its pristine bytes, its
        size). Restoring the pristine bytes before each call zeroes every result and puts back
        any input a plugin overwrote, in one memmove."""
        array = self._array = (abi.ExtractField * len(self._requests))(*self._requests)
        self._input.fields = ctypes.cast(array, ctypes.POINTER(abi.ExtractField))
        self._input.num_fields = len(self._requests)
        self._layout = (ctypes.addressof(array), bytes(array), ctypes.sizeof(array))
        self._plan = [
            (field, _SINGLE.get(field.ftype), slot * _REQUEST_SIZE)
            for slot, field in enumerate(self.fields)
        ]
        return self._layout

    def extract(self, event: bytes, evtnum: int, source: bytes) -> list[Any]:
        plugin = self.plugin
        with plugin._lock:
            address, pristine, size = self._layout if self._array is not None else self._prepare()
            ctypes.memmove(address, pristine, size)
            event_input = self._event
            event_input.evt, event_input.evtnum = event, evtnum
            if source is not self._source:  # the same bytes object for a stream's events
                event_input.evtsrc = self._source = source
            event_ref, input_ref = self._refs
            if self._call(self._state, event_ref, input_ref) != abi.SUCCESS:
                names = ", ".join(f.name for f in self.fields)
                raise PluginError(
                    plugin.name, f"extract_fields failed for {names}: {plugin.last_error()}"
                )
            results = ctypes.string_at(address, size)
        values: list[Any] = []
        append, unpack = values.append, _RESULT.unpack_from
        for field, one, offset in self._plan:
            res, count = unpack(results, offset)
            if count == 1 and one is not None and res:  # the common case, without a cast
                value = one(res)
                if value is not None:
                    append((value,) if field.is_list else value)
                    continue
            append(_value(plugin.name, field, res, count))
        return values


# res (a pointer) and res_len at the start of each ss_plugin_extract_field
_RESULT = struct.Struct("@PQ")
_REQUEST_SIZE = ctypes.sizeof(abi.ExtractField)


def _value(plugin: str, field: PluginField, res: int | None, count: int) -> Any:
    """One field's result, checked: None for no value, a tuple for a list field."""
    if count == 0:
        return None
    name, is_list = field.name, field.is_list
    if count == 1 and res:
        one = _SINGLE.get(field.ftype)
        if one is not None:  # the common case, read without a cast
            value = one(res)
            if value is None:
                raise PluginError(plugin, f"field {name} returned a NULL string")
            return (value,) if is_list else value
    if count > 1 and not is_list:
        raise PluginError(
            plugin, f"field {name} returned {count} values, but it is not a list field"
        )
    if count > MAX_LIST_VALUES:
        raise PluginError(plugin, f"field {name} returned {count} values (limit {MAX_LIST_VALUES})")
    if not res:
        raise PluginError(plugin, f"field {name} returned {count} values at NULL")
    values = _DECODERS[field.ftype](plugin, name, res, count)
    return tuple(values) if is_list else values[0]


_LEN_OFFSET = 16  # ts u64, tid u64, then len u32


def copy_event(plugin: str, address: int) -> bytes:
    """Copy an event out of plugin memory, checking its header length first."""
    if not address:
        raise PluginError(plugin, "returned a NULL event")
    length = ctypes.c_uint32.from_address(address + _LEN_OFFSET).value
    if length < abi.HEADER_SIZE or length > MAX_STRING_VALUE:
        raise PluginError(plugin, f"returned an event with a bad length ({length} bytes)")
    return ctypes.string_at(address, length)


def _uint(plugin: str, name: str, res: int, count: int) -> list[int]:
    return ctypes.cast(res, ctypes.POINTER(ctypes.c_uint64))[:count]


def _bool(plugin: str, name: str, res: int, count: int) -> list[bool]:
    return [bool(v) for v in ctypes.cast(res, ctypes.POINTER(ctypes.c_uint32))[:count]]


def _string(plugin: str, name: str, res: int, count: int) -> list[str]:
    values = ctypes.cast(res, ctypes.POINTER(ctypes.c_char_p))[:count]
    if any(v is None for v in values):
        raise PluginError(plugin, f"field {name} returned a NULL string")
    return [v.decode("utf-8", "replace") for v in values]


def _address(plugin: str, name: str, res: int, count: int) -> list[Any]:
    out: list[Any] = []
    for buffer in ctypes.cast(res, ctypes.POINTER(abi.ByteBuffer))[:count]:
        if buffer.len not in (4, 16) or not buffer.ptr:
            raise PluginError(plugin, f"field {name} returned an address of {buffer.len} bytes")
        out.append(ipaddress.ip_address(ctypes.string_at(buffer.ptr, buffer.len)))
    return out


def _network(plugin: str, name: str, res: int, count: int) -> list[Any]:
    # ipnet values are an address followed by a netmask of the same size (libsinsp's layout).
    out: list[Any] = []
    for buffer in ctypes.cast(res, ctypes.POINTER(abi.ByteBuffer))[:count]:
        if buffer.len not in (8, 32) or not buffer.ptr:
            raise PluginError(plugin, f"field {name} returned a network of {buffer.len} bytes")
        raw = ctypes.string_at(buffer.ptr, buffer.len)
        half = buffer.len // 2
        address, mask = ipaddress.ip_address(raw[:half]), ipaddress.ip_address(raw[half:])
        out.append(ipaddress.ip_network(f"{address}/{mask}", strict=False))
    return out


def _one_string(res: int) -> str | None:
    value = ctypes.c_char_p.from_address(res).value
    return None if value is None else value.decode("utf-8", "replace")


# One value read straight from the result address (None: a NULL string).
_SINGLE: dict[int, Callable[[int], Any]] = {
    abi.FTYPE_UINT64: lambda res: ctypes.c_uint64.from_address(res).value,
    abi.FTYPE_RELTIME: lambda res: ctypes.c_uint64.from_address(res).value,
    abi.FTYPE_ABSTIME: lambda res: ctypes.c_uint64.from_address(res).value,
    abi.FTYPE_STRING: _one_string,
    abi.FTYPE_BOOL: lambda res: ctypes.c_uint32.from_address(res).value != 0,
}

_DECODERS: dict[int, Callable[[str, str, int, int], list[Any]]] = {
    abi.FTYPE_UINT64: _uint,
    abi.FTYPE_RELTIME: _uint,
    abi.FTYPE_ABSTIME: _uint,
    abi.FTYPE_STRING: _string,
    abi.FTYPE_BOOL: _bool,
    abi.FTYPE_IPADDR: _address,
    abi.FTYPE_IPNET: _network,
}
