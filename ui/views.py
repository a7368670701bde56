"""What the Feeds, Compliance and Rules pages show for the host the UI runs on, read through
feeds/ (the same functions as `artifact installed`, `compliance report`, `rules`), cached for a
few seconds: these read files and compile rules, the pages may be reloaded often."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ui.status import FollowLog, feeds_status, rules_status

T = TypeVar("T")
CACHE_SECONDS = 10.0
MAX_CACHED = 32


class LocalViews:
    def __init__(
        self,
        config_path: str | None = None,
        rules_files: list[str] | None = None,
        follow_log: FollowLog | None = None,
    ) -> None:
        self.config_path = config_path
        self._rules_files = rules_files
        self.follow_log = follow_log
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def rules_files(self) -> list[str]:
        """The files given (`--rules`, or those the run loaded), else the installed ones."""
        if self._rules_files is not None:
            return list(self._rules_files)
        from feeds.context import FeedsContext
        from feeds.run_rules import installed_rules_files

        return [str(p) for p in installed_rules_files(FeedsContext.load(self.config_path))]

    def set_rules_files(self, files: list[str | Path]) -> None:
        """The run's reloader: the files now loaded."""
        with self._lock:
            self._rules_files = [str(f) for f in files]
            self._cache.clear()

    def _cached(self, key: str, build: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        value = build()
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[key] = (now, value)
        return value

    def feeds(self) -> dict[str, Any]:
        return self._cached("feeds", lambda: feeds_status(self.config_path, self.follow_log))

    def frameworks(self) -> list[dict[str, object]]:
        from feeds.compliance.operations import list_frameworks

        return self._cached("frameworks", list_frameworks)

    def compliance(self, framework: str) -> dict[str, object]:
        """`falconet compliance report --framework F -o json` of the rules files."""
        from feeds.compliance.operations import coverage_report

        def build() -> dict[str, object]:
            return coverage_report(self.rules_files(), framework).as_dict()

        return self._cached(f"compliance:{framework}", build)

    def rules(self, alert_counts: dict[str, int]) -> list[dict[str, Any]]:
        rules = self._cached("rules", lambda: rules_status(self.rules_files(), {}))
        return [{**rule, "alerts": alert_counts.get(rule["name"], 0)} for rule in rules]
