"""Global options shared by every command (HTTPie-style injected environment)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class Environment:
    debug: bool = False
    config_path: str | None = None
    log_format: str = "text"
    stdout_isatty: bool = field(default_factory=lambda: os.isatty(1))
    stderr_isatty: bool = field(default_factory=lambda: os.isatty(2))


ENV = Environment()
