"""On-disk cache of loaded rules, so a second `falconet run` or `rules validate` over unchanged
files starts without reading, expanding and checking them again.

An entry is the pickled LoadedRules of one load, named by the loader's cache key (engine
version, loader options, known sources, every file's name and content) and this module's
format, Python's version and the engine's own code (a development tree changes without a
version bump). Compiled code is not stored: each rule's condition and output format are stored
as their expanded AST and format text, compiled again the first time they are used.

Unpickling runs code chosen by whoever wrote the file, so an entry is read only when the
directory and the file belong to the current user and nobody else can write them (no group or
world write bit, no symlink, a regular file of bounded size); anything else is ignored, with a
log line, and the rules are loaded normally. Writes go to a private temporary file renamed into
place. A cache entry that fails to load for any reason is a miss, never an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import pickle
import stat
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from engine import condition_backend

log = logging.getLogger(__name__)

FORMAT = 1
MAX_ENTRY_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 32  # the oldest are removed beyond this


class LazyCondition:
    """A rule's condition as its expanded AST; compiled on its first evaluation."""

    __slots__ = ("_evaluate", "expr", "source")

    def __init__(self, expr: Any, source: str) -> None:
        self.expr = expr
        self.source = source
        self._evaluate: Any = None

    def __call__(self, event: Any) -> bool:
        evaluate = self._evaluate
        if evaluate is None:
            catalog = condition_backend.catalog_for(self.source)
            evaluate = self._evaluate = condition_backend.compile_condition(
                self.expr, catalog
            ).evaluate
        return bool(evaluate(event))

    def __reduce__(self) -> Any:
        return (LazyCondition, (self.expr, self.source))


class LazyOutput:
    """A rule's output format as its text; compiled on first use (an alert, a describe)."""

    __slots__ = ("_compiled", "source", "text")

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self._compiled: Any = None

    def __getattr__(self, name: str) -> Any:
        compiled = object.__getattribute__(self, "_compiled")
        if compiled is None:
            catalog = condition_backend.catalog_for(self.source)
            compiled = condition_backend.compile_output(self.text, catalog)
            object.__setattr__(self, "_compiled", compiled)
        return getattr(compiled, name)

    def __reduce__(self) -> Any:
        return (LazyOutput, (self.text, self.source))


@cache
def _code_fingerprint() -> str:
    """Names, sizes and modification times of the engine's source files."""
    digest = hashlib.sha256(f"{FORMAT}\0{sys.version}".encode())
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        with contextlib.suppress(OSError):
            info = path.stat()
            digest.update(
                f"{path.relative_to(root)}\0{info.st_size}\0{info.st_mtime_ns}\0".encode()
            )
    return digest.hexdigest()[:16]


def _entry_name(key: str) -> str:
    return hashlib.sha256(f"{key}\0{_code_fingerprint()}".encode()).hexdigest() + ".pickle"


def _private(info: os.stat_result) -> bool:
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _safe_directory(directory: Path) -> bool:
    try:
        info = os.lstat(directory)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or not _private(info):
        log.warning("rules cache %s ignored: not a private directory of this user", directory)
        return False
    return True


def _snapshot(loaded: Any) -> Any:
    """LoadedRules without compiled code: conditions and outputs as AST and text."""
    rules = []
    for rule in loaded.rules:
        expr = rule.info.get("expanded_condition")
        text = rule.info.get("output")
        if expr is None or text is None:
            return None  # a rule built from a callable: nothing to store it as
        rules.append(
            dataclasses.replace(
                rule,
                matches=LazyCondition(expr, rule.source),
                output=LazyOutput(text, rule.source) if rule.output is not None else None,
            )
        )
    return dataclasses.replace(loaded, rules=rules)


def load(directory: Path, key: str) -> Any:
    """The LoadedRules stored under `key`, or None (absent, unsafe, unreadable, stale)."""
    if not _safe_directory(directory):
        return None
    path = directory / _entry_name(key)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or not _private(info):
            log.warning("rules cache entry %s ignored: not a private file of this user", path)
            return None
        if info.st_size > MAX_ENTRY_BYTES:
            return None
        try:
            # Owner and mode checked above: only this user could have written it.
            return pickle.loads(handle.read(MAX_ENTRY_BYTES + 1))
        except Exception as error:  # a damaged or outdated entry is a miss
            log.debug("rules cache entry %s unreadable: %s", path, error)
            return None


def store(directory: Path, key: str, loaded: Any) -> None:
    """Store a load under `key`; silently nothing when the directory is unusable."""
    snapshot = _snapshot(loaded)
    if snapshot is None:
        return
    try:
        data = pickle.dumps(snapshot, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # something in the load that cannot be stored: no entry
        log.debug("rules cache: load not stored: %s", error)
        return
    if len(data) > MAX_ENTRY_BYTES:
        return
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return
    if not _safe_directory(directory):
        return
    try:
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".entry-")
        with os.fdopen(descriptor, "wb") as handle:  # mkstemp creates it 0600
            handle.write(data)
        os.replace(temporary, directory / _entry_name(key))
    except OSError as error:
        log.debug("rules cache: cannot write in %s: %s", directory, error)
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(temporary)
        return
    _trim(directory)


def _trim(directory: Path) -> None:
    with contextlib.suppress(OSError):
        entries = sorted(directory.glob("*.pickle"), key=lambda p: p.stat().st_mtime)
        for old in entries[:-MAX_ENTRIES]:
            old.unlink()


__all__ = ["LazyCondition", "LazyOutput", "load", "store"]
