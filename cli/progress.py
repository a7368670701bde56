"""Progress bars for transfers: rich bars on stderr when it is a terminal, nothing otherwise."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

ProgressCallback = Callable[[str, int, int], None]


@contextlib.contextmanager
def transfer_progress(enabled: bool | None = None) -> Iterator[ProgressCallback | None]:
    """Yield a `(label, advanced, total)` callback for core transfers, or None when quiet."""
    from cli.context import ENV

    if not (ENV.stderr_isatty if enabled is None else enabled):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, int] = {}

    def advance(label: str, amount: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bars.add_task(label, total=total)
        bars.advance(tasks[label], amount)

    with bars:
        yield advance
