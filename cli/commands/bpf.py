"""`falconet bpf check` and `falconet capture`: the live eBPF source's CLI."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.options import RingbufSize


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["bpf"].command("check")(check)
    root.command("capture")(capture)


def check(
    output: Annotated[str, typer.Option("-o", "--output", help="text|json")] = "text",
    no_repair: Annotated[
        bool, typer.Option("--no-repair", help="Only report; do not mount tracefs or link headers.")
    ] = False,
) -> None:
    """Check (and as root repair) what live capture needs: kernel, BPF, tracefs, bcc, headers."""
    from bpf.errors import BpfRequirementError
    from bpf.setup import run_checks
    from cli.render import emit_json, emit_text

    checks = run_checks(repair=not no_repair)
    if output == "json":
        emit_json([c.as_json() for c in checks])
    else:
        for c in checks:
            line = f"{'ok  ' if c.ok else 'FAIL'} {c.name:<15} {c.detail}"
            emit_text(line + (f"\n     fix: {c.fix}" if not c.ok and c.fix else ""))
    failed = [c for c in checks if not c.ok and c.name != "btf"]
    if failed:
        raise BpfRequirementError(
            f"live capture is not possible here: {failed[0].name} ({failed[0].detail})",
            hint=failed[0].fix,
        )


def capture(
    write: Annotated[str, typer.Option("-w", "--write", help="Capture file to write.")],
    duration: Annotated[
        float | None, typer.Option("--duration", help="Seconds to capture (default: until Ctrl-C).")
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option("--filter", help="Which events: evt.type in (openat, execve, ...)."),
    ] = None,
    ringbuf_size: RingbufSize = None,
    output: Annotated[str, typer.Option("-o", "--output", help="text|json")] = "text",
) -> None:
    """Record live syscalls to falconet's capture format (replay it with `run --replay`)."""
    from bpf.record import record_capture
    from cli.context import ENV
    from cli.render import emit_json, emit_text
    from feeds.config import load_config
    from feeds.run_settings import live_options

    config = load_config(ENV.config_path, flags={"engine.ringbuf_size": ringbuf_size})
    summary = record_capture(write, duration, filter_, live_options(config))
    if output == "json":
        emit_json(summary)
    else:
        emit_text(
            f"wrote {summary['events']} events to {write} in {summary['seconds']:.1f}s "
            f"(kernel counted {summary['kernel_events']}, dropped {summary['dropped']})"
        )
