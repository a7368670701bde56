"""Errors of the syscall source (captures that cannot be read)."""

from __future__ import annotations

from engine.errors import EngineError


class CaptureError(EngineError):
    """A capture file that cannot be opened, is not a capture, or is corrupt or truncated.
    Raised after every event before the damage has been delivered."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(
            message, hint or "the capture is damaged; events before the damage were processed"
        )
