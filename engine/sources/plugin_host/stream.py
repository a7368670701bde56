"""The event stream of a sourcing plugin: `open` with the open params, `next_batch` until EOF or a
stop request (TIMEOUT means "nothing yet, call again": the host waits a little, backing off, so
an idle plugin costs no CPU), `close`. Async events the plugin pushes through its handler join
the stream before the next batch, from a bounded queue (overflow drops are counted and logged).
Parsing plugins see every event of their sources before any extraction."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.sources.plugin_host import abi
from engine.sources.plugin_host.errors import PluginError
from engine.sources.plugin_host.events import (
    PluginEvent,
    async_event,
    batch_events,
    encode_plugin_event,
    iter_payload_lines,
)
from engine.sources.plugin_host.host import LoadedPlugin, PluginSet
from engine.sources.plugin_host.library import MAX_STRING_VALUE as MAX_EVENT_SIZE

log = logging.getLogger(__name__)

MAX_BATCH = 65_536
ASYNC_QUEUE = 10_000
TIMEOUT_WAIT_FIRST = 0.001
TIMEOUT_WAIT_MAX = 0.05


@dataclass
class StreamStats:
    batches: int = 0
    timeouts: int = 0
    events: int = 0
    async_events: int = 0
    async_dropped: int = 0
    progress: tuple[float, str] | None = None


class PluginStream:
    """Iterate the events of `owner`'s source. Use as a context manager (it closes the
    capture and stops async events)."""

    def __init__(
        self,
        owner: LoadedPlugin,
        plugins: PluginSet,
        stop: threading.Event | None = None,
        open_params: str | None = None,
    ) -> None:
        self.owner = owner
        self.plugin = owner.plugin
        self.source = self.plugin.event_source
        self.stop = stop or threading.Event()
        self.params = owner.config.open_params if open_params is None else open_params
        self.stats = StreamStats()
        self._next_num = 1
        self._parsers = plugins.parsers(self.source)
        self._source_name = self.source.encode()
        self._async: collections.deque[PluginEvent] = collections.deque()
        self._async_lock = threading.Lock()
        self._async_plugins = [p for p in plugins.plugins if p.plugin.has_async]
        self._handle: int | None = None

    def __enter__(self) -> PluginStream:
        for loaded in self._async_plugins:
            loaded.plugin.set_async_handler(self._on_async(loaded))
        self._handle = self.plugin.open(self.params)
        return self

    def __exit__(self, *exc: object) -> None:
        for loaded in self._async_plugins:
            loaded.plugin.set_async_handler(None)
        if self._handle is not None:
            self.stats.progress = self.plugin.progress(self._handle)
            self.plugin.close(self._handle)
            self._handle = None

    def _on_async(self, loaded: LoadedPlugin) -> Callable[[bytes], None]:
        def on_event(raw: bytes) -> None:
            event = async_event(
                loaded.name, raw, self.plugin.id, self.source, loaded.plugin.async_events
            )
            with self._async_lock:
                if len(self._async) >= ASYNC_QUEUE:
                    self.stats.async_dropped += 1
                    if self.stats.async_dropped == 1 or self.stats.async_dropped % 1000 == 0:
                        log.warning(
                            "plugin %s: async event queue full (%d): %d events dropped",
                            loaded.name,
                            ASYNC_QUEUE,
                            self.stats.async_dropped,
                        )
                    return
                self._async.append(event)

        return on_event

    def _drain_async(self) -> list[PluginEvent]:
        if not self._async:
            return []
        with self._async_lock:
            events = list(self._async)
            self._async.clear()
        for event in events:
            event.num = self._next_num
            self._next_num += 1
        self.stats.async_events += len(events)
        return events

    def events(self) -> Iterator[PluginEvent]:
        assert self._handle is not None, "use PluginStream as a context manager"
        plugin, handle, name = self.plugin, self._handle, self.plugin.name
        wait = TIMEOUT_WAIT_FIRST
        while not self.stop.is_set():
            rc, addresses = plugin.next_batch(handle)
            yield from self._parsed(self._drain_async())
            if rc == abi.TIMEOUT:
                self.stats.timeouts += 1
                self.stop.wait(wait)
                wait = min(wait * 2, TIMEOUT_WAIT_MAX)
                continue
            if rc not in (abi.SUCCESS, abi.EOF):
                raise PluginError(name, f"next_batch failed: {plugin.last_error() or f'rc {rc}'}")
            wait = TIMEOUT_WAIT_FIRST
            if len(addresses) > MAX_BATCH:
                raise PluginError(
                    name, f"next_batch returned {len(addresses)} events (limit {MAX_BATCH})"
                )
            self.stats.batches += 1
            batch = batch_events(
                name, addresses, plugin.id, self.source, self._next_num, MAX_EVENT_SIZE
            )
            self._next_num += len(batch)
            self.stats.events += len(batch)
            if self._parsers:
                yield from self._parsed(batch)
            else:
                yield from batch
            if rc == abi.EOF:
                return

    def _parsed(self, events: Iterable[PluginEvent]) -> Iterator[PluginEvent]:
        parsers, source = self._parsers, self._source_name
        for event in events:
            for parse in parsers:
                parse(event.raw, event.num, source)
            yield event


def replay(owner: LoadedPlugin, plugins: PluginSet, path: str) -> Iterator[PluginEvent]:
    """A replay for a plugin source: the plugin's events in a .scap capture (as Falco replays
    them, with the plugin loaded for extraction), else payload lines (`replay_payloads`)."""
    from engine.sources.syscall.scap import SHB_BLOCK_TYPE, open_capture_file

    try:
        with open_capture_file(Path(path)) as stream:
            head = stream.read(4)
    except OSError:
        head = b""  # a missing file is reported by the payload reader
    if len(head) == 4 and int.from_bytes(head, "little") == SHB_BLOCK_TYPE:
        return replay_capture(owner, plugins, path)
    return replay_payloads(owner, plugins, path)


def replay_capture(owner: LoadedPlugin, plugins: PluginSet, path: str) -> Iterator[PluginEvent]:
    """The plugin events of a .scap capture that carry this plugin's id, with their recorded
    time and thread; other events (syscalls, other plugins') are skipped undecoded."""
    from engine.sources.syscall.scap import ScapReader

    plugin = owner.plugin
    parsers = plugins.parsers(plugin.event_source)
    source = plugin.event_source.encode()
    num = 0
    with ScapReader(path) as reader:
        for event in reader.events_wanted(frozenset({"pluginevent"})):
            if event.info.code != abi.PPME_PLUGINEVENT_E:
                continue
            if event.params.get("plugin_id") != plugin.id:
                continue
            data = event.params.get("event_data") or b""
            num += 1
            raw = encode_plugin_event(data, event.ts, plugin.id, event.tid)
            for parse in parsers:
                parse(raw, num, source)
            yield PluginEvent(raw, data, event.ts, plugin.event_source, plugin.id, num)


def replay_payloads(owner: LoadedPlugin, plugins: PluginSet, path: str) -> Iterator[PluginEvent]:
    """Events of a plugin source from a file: each line is one event's data (for plugins whose
    payload is a JSON document, as k8saudit's, okta's or json's, a JSON-lines file), stamped
    with the time of reading and the plugin's id."""
    plugin = owner.plugin
    parsers = plugins.parsers(plugin.event_source)
    source = plugin.event_source.encode()
    for num, data in enumerate(iter_payload_lines(path), 1):
        now = time.time_ns()
        raw = encode_plugin_event(data, now, plugin.id)
        event = PluginEvent(raw, data, now, plugin.event_source, plugin.id, num)
        for parse in parsers:
            parse(raw, num, source)
        yield event
