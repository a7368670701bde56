"""The live source's user options, validated before anything is loaded: Falco's
`base_syscalls` and the ring buffer size (`--ringbuf-size`, falconet.yaml `engine.ringbuf_size`).
"""

from __future__ import annotations

import difflib
import mmap
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bpf.errors import BpfError
from bpf.syscalls import SPECS

DEFAULT_RINGBUF_SIZE = "32MiB"
MAX_RINGBUF_BYTES = 1 << 30
_SIZE = re.compile(r"^\s*(?P<number>\d+)\s*(?P<unit>MiB|M|KiB|K|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20}


class LiveOptionError(BpfError):
    exit_status = "usage"


@dataclass(frozen=True)
class BaseSyscalls:
    """Falco's base_syscalls: custom_set replaces the state set ("!name" removes a syscall even
    when rules use it), repair derives the minimum the state tracker needs from the selection,
    all traces every syscall the probe captures."""

    custom_set: tuple[str, ...] = ()
    repair: bool = False
    all: bool = False

    @classmethod
    def checked(
        cls,
        custom_set: Sequence[str],
        repair: bool,
        all_: bool,
        origin: str = "base_syscalls.custom_set",
    ) -> BaseSyscalls:
        """One line naming the first entry the probe cannot capture (Falco only warns, and a
        typo then silently traces nothing)."""
        for entry in custom_set:
            name = str(entry).removeprefix("!")
            if name not in SPECS:
                close = difflib.get_close_matches(name, list(SPECS), n=1)
                hint = f"did you mean '{close[0]}'?" if close else "docs/bpf.md lists them"
                raise LiveOptionError(
                    f"{origin}: the live probe does not capture {name!r}",
                    hint=hint,
                )
        return cls(tuple(str(e) for e in custom_set), bool(repair), bool(all_))

    @property
    def positive(self) -> frozenset[str]:
        return frozenset(n for n in self.custom_set if not n.startswith("!"))

    @property
    def negative(self) -> frozenset[str]:
        return frozenset(n[1:] for n in self.custom_set if n.startswith("!"))


def checked_ringbuf_pages(text: str | int, origin: str = "") -> int:
    """A ring buffer size (bytes, or with a KiB/MiB suffix) as a page count: the kernel wants a
    power of two that is a whole number of pages."""
    origin = origin or "ring buffer size"
    match = _SIZE.match(str(text))
    if not match:
        raise LiveOptionError(
            f"{origin} {text!r} is not a size", hint="give bytes or MiB, e.g. 8MiB or 33554432"
        )
    size = int(match.group("number")) * _UNITS[(match.group("unit") or "").lower()]
    page = mmap.PAGESIZE
    if size < page or size > MAX_RINGBUF_BYTES or size & (size - 1):
        raise LiveOptionError(
            f"{origin} {text!r} is not a power of two between {page} bytes and "
            f"{MAX_RINGBUF_BYTES >> 20} MiB",
            hint="e.g. 8MiB, 16MiB, 32MiB (the default) or 64MiB",
        )
    return size // page


# ~90k openat records of 376 bytes
DEFAULT_RINGBUF_PAGES = checked_ringbuf_pages(DEFAULT_RINGBUF_SIZE)


@dataclass(frozen=True)
class LiveOptions:
    """What `falconet run` / `falconet capture` pass to the live source."""

    base: BaseSyscalls = BaseSyscalls()
    ringbuf_pages: int = DEFAULT_RINGBUF_PAGES

    @classmethod
    def checked(
        cls,
        custom_set: Sequence[str],
        repair: bool,
        all_: bool,
        ringbuf_size: str | int,
        origins: dict[str, str] | None = None,
    ) -> LiveOptions:
        """Validated options; `origins` names where each setting came from (for the error)."""
        origins = origins or {}
        key = "base_syscalls.custom_set"
        base = BaseSyscalls.checked(custom_set, repair, all_, origins.get(key, key))
        return cls(
            base, checked_ringbuf_pages(ringbuf_size, origins.get("engine.ringbuf_size", ""))
        )
