"""`falconet capture`: live syscalls recorded to falconet's capture format (engine's writer),
starting with a /proc snapshot so a replay begins with the same process state."""

from __future__ import annotations

import os
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bpf.capture import LiveSource
from bpf.errors import BpfError
from bpf.options import LiveOptions
from bpf.records import complete_params
from bpf.syscalls import SPECS

_FILTER = re.compile(r"^\s*evt\.type\s*(?:in\s*\((?P<many>[^)]*)\)|=\s*(?P<one>[\w]+))\s*$")


class CaptureFilterError(BpfError):
    exit_status = "usage"


def parse_type_filter(text: str | None) -> frozenset[str] | None:
    """`evt.type in (a, b)` or `evt.type=a` -> the event types (None: no filter)."""
    if text is None:
        return None
    match = _FILTER.match(text)
    if not match:
        raise CaptureFilterError(
            f"unsupported capture filter: {text!r}",
            hint="use `evt.type in (openat, execve)` or `evt.type=openat`",
        )
    names = match.group("many") if match.group("many") is not None else match.group("one")
    types = frozenset(n.strip() for n in names.split(",") if n.strip())
    unknown = sorted(types - frozenset(SPECS))
    if unknown:
        raise CaptureFilterError(
            f"the live probe does not capture: {', '.join(unknown)}",
            hint="see `falconet bpf check -o json` and docs/bpf.md for the captured syscalls",
        )
    return types


def record_capture(
    path: str, duration: float | None, filter_text: str | None, options: LiveOptions
) -> dict[str, Any]:
    from engine.sources.syscall.capture import CaptureWriter, encode_params

    types = parse_type_filter(filter_text)
    # Without a filter every captured syscall is recorded; with one, the state syscalls too
    # (a replay rebuilds process and fd state from them), as base_syscalls says.
    base = replace(options.base, all=True) if types is None else options.base
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    source = LiveSource(types, base=base, ringbuf_pages=options.ringbuf_pages)
    written = 0
    try:
        with source, CaptureWriter(partial) as writer:
            start = time.monotonic()  # the duration counts from the moment the probe is attached
            tracker = source.tracker
            writer.write_snapshot(
                tracker.threads.values(), tracker.users.values(), tracker.groups.values()
            )
            try:
                while duration is None or time.monotonic() - start < duration:
                    for event in source.poll(100):
                        writer.write(
                            event.info.code,
                            event.ts,
                            event.tid,
                            encode_params(event.info, complete_params(event.info, event.params)),
                        )
                        written += 1
            except KeyboardInterrupt:
                pass
            stats = source.stats()
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return {
        "path": str(target),
        "events": written,
        "seconds": time.monotonic() - start,
        "kernel_events": stats.kernel.total_counted,
        "dropped": stats.kernel.total_dropped,
        "syscalls": sorted(source.selection.syscalls),
    }
