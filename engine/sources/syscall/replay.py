"""Replay of a capture through the state tracker: the events a syscall ruleset evaluates.

`open_replay(path)` recognises the format (falconet capture or .scap, gzipped or not), seeds a
StateTracker with the capture's snapshot (processes, fds, users, groups), and `events()` yields
each event after the tracker has applied it. Exit events of captures that split a syscall across
enter and exit get the enter's parameters merged in (Falco's exit-event model).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from engine.sources.syscall.errors import CaptureError
from engine.sources.syscall.events import SyscallEvent
from engine.sources.syscall.state import StateTracker


class _Source(Protocol):
    snapshot: Any
    stats: Any

    def events(self) -> Iterator[SyscallEvent]: ...

    def close(self) -> None: ...


def merge_enter_params(events: Iterable[SyscallEvent]) -> Iterator[SyscallEvent]:
    """Give each exit event the parameters its enter event carried and it lacks."""
    last_enter: dict[int, SyscallEvent] = {}
    for event in events:
        info = event.info
        if info.is_enter:
            last_enter[event.tid] = event
        else:
            enter = last_enter.pop(event.tid, None)
            if enter is not None and enter.info.code == info.code - 1 and enter.params:
                params = event.params
                for name, value in enter.params.items():
                    if name not in params:
                        params[name] = value
        yield event


def seed_tracker(tracker: StateTracker, snapshot: Any) -> None:
    for thread in snapshot.threads.values():
        tracker.add_thread(thread)
    tracker.users.update(snapshot.users)
    tracker.groups.update(snapshot.groups)


class Replay:
    """A capture being replayed. Use as a context manager; iterate `events()` once."""

    def __init__(self, source: _Source, tracker: StateTracker | None = None) -> None:
        self.source = source
        self.tracker = tracker or StateTracker()
        seed_tracker(self.tracker, source.snapshot)

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.source.close()

    @property
    def stats(self) -> Any:
        return self.source.stats

    def needed_events(self, rule_types: Iterable[str] | None) -> frozenset[str] | None:
        """The event types worth decoding: what the rules need plus what changes state (None:
        every type, when some rule is not restricted to a set of types)."""
        if rule_types is None:
            return None
        rules = frozenset(rule_types)
        wanted = rules | self.tracker.state_events | {"procexit"}
        # Socket I/O events no rule needs matter to the state only on sockets whose peer can
        # change (unconnected/UDP): the reader checks their fd and skips the others undecoded.
        self._planned = (wanted, self.tracker.socket_io_events - rules)
        return wanted

    def events(self, wanted: frozenset[str] | None = None) -> Iterator[SyscallEvent]:
        """Every event (or, with `wanted` and a source that can skip, the wanted ones), after the
        tracker has applied it. evt.num still counts the skipped events."""
        process = self.tracker.process
        source = self.source
        if wanted is not None and hasattr(source, "events_wanted"):
            planned = getattr(self, "_planned", None)
            state_only = planned[1] if planned is not None and planned[0] is wanted else frozenset()
            filters = {name: self.tracker.socket_io_matters for name in state_only}
            stream = source.events_wanted(wanted, filters)
        else:
            stream = source.events()
        # merge_enter_params() inlined: this loop runs for every decoded event.
        last_enter: dict[int, SyscallEvent] = {}
        for event in stream:
            if event.info.is_enter:
                last_enter[event.tid] = event
            elif last_enter:
                enter = last_enter.pop(event.tid, None)
                if enter is not None and enter.info.code == event.info.code - 1:
                    params = event.params
                    for name, value in enter.params.items():
                        if name not in params:
                            params[name] = value
            process(event)
            yield event


def detect_format(path: Path) -> str:
    """ "falconet" or "scap", from the first bytes (after gunzipping)."""
    from engine.sources.syscall.capture import MAGIC
    from engine.sources.syscall.scap import open_capture_file

    try:
        with open_capture_file(path) as stream:
            head = stream.read(8)
    except OSError as error:
        raise CaptureError(
            f"cannot read capture {path}: {error.strerror or error}",
            hint="check the path given to --replay",
        ) from error
    if head.startswith(MAGIC):
        return "falconet"
    if head[:4] == b"\x0a\x0d\x0d\x0a":
        return "scap"
    raise CaptureError(
        f"{path}: not a capture (neither a .scap file nor a falconet capture)",
        hint="--replay reads Falco/sysdig .scap files and files written by falconet capture",
    )


def open_replay(path: str | Path, tracker: StateTracker | None = None) -> Replay:
    path = Path(path)
    if detect_format(path) == "falconet":
        from engine.sources.syscall.capture import CaptureReader

        return Replay(CaptureReader(path), tracker)
    from engine.sources.syscall.scap import ScapReader

    return Replay(ScapReader(path), tracker)
