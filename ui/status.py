"""A node's status document: its installed feeds (version, digest, signature, follow schedule,
last check, last-good, rollback command), compliance coverage, response outcomes and rules.

The UI builds it for its own host, and `falconet run --report-to URL` posts it periodically to
a fleet UI's /ingest/status (schema `falconet.status/v1`, docs/ui.md).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA = "falconet.status/v1"
MAX_STATUS_BYTES = 1 << 20
MAX_LIST = 1000  # feeds, rules or frameworks in one document


@dataclass
class FollowLog:
    """The follower's last tick per ref (feeds.follow's on_tick), kept for the status."""

    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, results: Sequence[Any]) -> None:
        now = time.time()
        with self._lock:
            for result in results:
                self.checks[result.ref] = {"time": now, **result.to_json()}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.checks)


def feeds_status(config_path: str | None, follow_log: FollowLog | None = None) -> dict[str, Any]:
    """Installed artifacts as feeds/ records them (state, last-good, follow), one entry each."""
    from feeds import lastgood
    from feeds.context import FeedsContext
    from feeds.state import StateStore

    context = FeedsContext.load(config_path)
    config = context.config
    followed = list(config["artifact.follow.refs"])
    checks = follow_log.snapshot() if follow_log else {}
    entries = []
    for record in StateStore(context.state_dir).all()[:MAX_LIST]:
        previous = lastgood.last_good(context.state_dir, record.name)
        verification = record.verification or {}
        entries.append(
            {
                "name": record.name,
                "type": record.type,
                "ref": record.ref,
                "reference": record.reference,
                "version": record.version,
                "digest": record.digest,
                "installed_at": record.installed_at,
                "signature": {
                    "verdict": verification.get("verdict", "n/a"),
                    "key": _key_of(verification),
                    "reason": verification.get("reason"),
                },
                "followed": record.ref in followed,
                "last_check": checks.get(record.ref),
                "last_good": (
                    {"version": previous.version, "digest": previous.digest} if previous else None
                ),
                "rollback": f"falconet artifact rollback {record.name}" if previous else None,
                "files": [f.path for f in record.files][:MAX_LIST],
            }
        )
    schedule = config["artifact.follow.cron"] or f"every {config['artifact.follow.every']}"
    return {
        "artifacts": entries,
        "follow": {"refs": followed, "schedule": schedule, "checks": checks},
    }


def _key_of(verification: dict[str, Any]) -> str:
    for key in ("key_fingerprint", "identity", "policy"):
        value = verification.get(key)
        if value:
            return value if isinstance(value, str) else ", ".join(map(str, value))
    return ""


def rules_status(files: Sequence[str | Path], alert_counts: dict[str, int]) -> list[dict]:
    """Loaded rules (feeds.compliance's reader: the files after their overrides) with how many
    alerts each raised."""
    from feeds.compliance.rulesfile import read_rules

    return [
        {
            "name": rule.name,
            "source": rule.source,
            "priority": rule.priority,
            "tags": list(rule.tags),
            "enabled": rule.enabled,
            "file": rule.file,
            "alerts": alert_counts.get(rule.name, 0),
        }
        for rule in read_rules(files)[: MAX_LIST * 10]
    ]


_SUMMARIES: dict[tuple, list[dict[str, Any]]] = {}  # by the files' (path, size, mtime)


def _files_key(files: Sequence[str | Path]) -> tuple:
    key = []
    for path in files:
        try:
            stat = Path(path).stat()
            key.append((str(path), stat.st_size, stat.st_mtime_ns))
        except OSError:
            key.append((str(path), -1, -1))
    return tuple(key)


def compliance_summary(files: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Per framework, the totals `falconet compliance report` prints (the same function);
    computed again only when a rules file changed (a node reports every minute)."""
    key = _files_key(files)
    if key not in _SUMMARIES:
        _SUMMARIES.clear()
        _SUMMARIES[key] = _compliance_summary(files)
    return _SUMMARIES[key]


def _compliance_summary(files: Sequence[str | Path]) -> list[dict[str, Any]]:
    from feeds.compliance.operations import coverage_report, list_frameworks

    summary = []
    for framework in list_frameworks():
        totals = coverage_report(files, str(framework["id"])).totals()
        summary.append({"framework": framework["id"], "name": framework["name"], **totals})
    return summary


def status_document(
    config_path: str | None,
    rules_files: Sequence[str | Path],
    follow_log: FollowLog | None = None,
    responses: dict[str, int] | None = None,
    hostname: str | None = None,
) -> dict[str, Any]:
    """The document `--report-to` posts (docs/ui.md): each part is optional for the reader."""
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "hostname": hostname or socket.gethostname(),
        "time": time.time(),
        "feeds": feeds_status(config_path, follow_log),
        "responses": responses or {},
        "rules_files": [str(p) for p in rules_files][:MAX_LIST],
    }
    try:
        document["compliance"] = compliance_summary(rules_files)
    except Exception as error:  # the rules may not read: the rest of the status still matters
        document["compliance_error"] = str(error)[:500]
    return document


def check_status(document: Any) -> dict[str, Any]:
    """A posted status document, checked enough to store and show (IngestError otherwise)."""
    from ui.errors import IngestError

    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise IngestError(f'not a status document: expected "schema": "{SCHEMA}"')
    hostname = document.get("hostname")
    if not isinstance(hostname, str) or not 0 < len(hostname) <= 255:
        raise IngestError("status document: hostname must be a non-empty string")
    return document


class Reporter:
    """Posts the status document to `url` every `period` seconds (first one at start)."""

    def __init__(
        self,
        url: str,
        build: Callable[[], dict[str, Any]],
        headers: dict[str, str] | None = None,
        period: float = 60.0,
        timeout: float = 10.0,
    ) -> None:
        self.url, self.build, self.period, self.timeout = url, build, period, timeout
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.sent = self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ui-reporter", daemon=True)

    def start(self) -> Reporter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 1)

    def report_once(self) -> bool:
        import json

        import requests

        try:
            body = json.dumps(self.build(), sort_keys=True).encode()
            answer = requests.post(self.url, data=body, headers=self.headers, timeout=self.timeout)
            answer.raise_for_status()
        except Exception as error:  # a UI away must not stop detection: log, count, retry
            self.failed += 1
            log.warning("status report to %s failed: %s", self.url, error)
            return False
        self.sent += 1
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.report_once()
            self._stop.wait(self.period)
