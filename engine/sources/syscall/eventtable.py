"""The syscall event-type table: code -> name, direction and parameter layout.

Codes and parameter lists are the drivers' (generated into eventtable_data.py). An event whose
code is not in the table is counted and skipped by readers, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from engine.sources.syscall.eventtable_data import EVENTS, FLAG_TABLES

# Parameter types whose first-parameter value is the syscall's return value on exit events.
RESULT_TYPES = frozenset({"ERRNO", "FD", "PID", "FD32"})
# Event codes below 2 are the generic syscall events; after that, even codes are enter events.
# The table is in enter/exit pairs, so the direction is the code's parity.


@dataclass(frozen=True, slots=True)
class ParamInfo:
    name: str
    type: str  # the PT_ type without its prefix: "FD", "FSPATH", "FLAGS32", ...
    fmt: str  # the PF_ format without its prefix: "DEC", "HEX", "OCT", "NA"
    table: str | None  # flag/enum table name ("file_flags"), "DIRFD_PARAM", or None


@dataclass(frozen=True, slots=True)
class EventInfo:
    code: int
    name: str
    is_enter: bool
    params: tuple[ParamInfo, ...]
    # Parameter infos by name; for an exit event, also its enter event's parameters (the
    # readers merge those into the exit's values when the exit lacks them).
    by_name: dict[str, ParamInfo]
    dir: str  # evt.dir: ">" for enter events, "<" for exit events
    # The parameter holding the syscall's return value (exit events whose first parameter is
    # a result), else None: decided once here, read for every event.
    result: str | None = None

    @property
    def has_result(self) -> bool:
        return self.result is not None


def _build() -> dict[int, EventInfo]:
    table: dict[int, EventInfo] = {}
    for code, (name, params) in EVENTS.items():
        infos = tuple(ParamInfo(*p) for p in params)
        by_name = {p.name: p for p in infos}
        if code % 2 == 1 and code - 1 in EVENTS:
            for p in EVENTS[code - 1][1]:
                by_name.setdefault(p[0], ParamInfo(*p))
        is_enter = code % 2 == 0
        table[code] = EventInfo(
            code=code,
            name=name,
            is_enter=is_enter,
            params=infos,
            by_name=by_name,
            dir=">" if is_enter else "<",
            result=infos[0].name
            if not is_enter and infos and infos[0].type in RESULT_TYPES
            else None,
        )
    return table


EVENT_INFO: dict[int, EventInfo] = _build()
CODES_BY_NAME: dict[str, tuple[int, ...]] = {}
for _info in EVENT_INFO.values():
    CODES_BY_NAME.setdefault(_info.name, ())
    CODES_BY_NAME[_info.name] += (_info.code,)

# Meta-events that carry no syscall (procexit, container, async, plugin...): their names.
PROCEXIT_NAMES = frozenset({"procexit"})


def event_info(code: int) -> EventInfo | None:
    return EVENT_INFO.get(code)


def exit_code(name: str) -> int | None:
    """The newest exit-event code of a syscall name (what falconet writes for new events)."""
    codes = [c for c in CODES_BY_NAME.get(name, ()) if c % 2 == 1]
    return max(codes) if codes else None


def newest_code(name: str, enter: bool) -> int | None:
    parity = 0 if enter else 1
    codes = [c for c in CODES_BY_NAME.get(name, ()) if c % 2 == parity]
    return max(codes) if codes else None


@cache
def flag_table(name: str) -> tuple[tuple[str, int], ...]:
    return FLAG_TABLES.get(name, ())


def event_names() -> frozenset[str]:
    return frozenset(CODES_BY_NAME)
