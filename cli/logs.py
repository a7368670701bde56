"""Logging set-up for the CLI: core modules log through `logging`; this decides how it looks."""

from __future__ import annotations

import json
import logging
import sys
import time


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        return json.dumps(entry)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


# falcoctl's --log-format and --log-level values (color is its default text format).
LOG_FORMATS = ("text", "json", "color")
LOG_LEVELS = ("info", "warn", "debug", "trace")
_LEVELS = {"info": logging.INFO, "warn": logging.WARNING, "debug": logging.DEBUG,
           "trace": logging.DEBUG}  # fmt: skip


def configure_logging(debug: bool, log_format: str, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else _LEVELS.get(level, logging.INFO))
    for noisy in ("urllib3", "oras"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
