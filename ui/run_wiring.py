"""What `falconet run --ui` and `--report-to URL` add to a run: the UI's routes on the run's
web server, a sink storing the run's alerts, the follower's tick log, and the status reporter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.sinks import Sink
from ui.status import FollowLog


@dataclass
class RunExtras:
    web_extra: Any = None  # engine.web ExtraRoutes
    sinks: list[Sink] = field(default_factory=list)
    follow_log: FollowLog = field(default_factory=FollowLog)
    _closers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()


def report_headers(auth_file: str | None) -> dict[str, str]:
    """The Authorization header for --report-to, from the first credential of the file."""
    if not auth_file:
        return {}
    import base64

    from ui.auth import Credentials

    credentials = Credentials.from_file(auth_file)
    if credentials.tokens:
        return {"Authorization": f"Bearer {credentials.tokens[0]}"}
    user, password = credentials.users[0]
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def run_extras(
    *,
    ui: bool,
    store: str | None,
    report_to: str | None,
    report_auth_file: str | None,
    report_every: float,
    config_path: str | None,
    rules_files: list[str],
) -> RunExtras:
    extras = RunExtras()
    try:
        if ui:
            from ui.server import build_ui, default_store
            from ui.sink import StoreSink

            built = build_ui(
                store or default_store(config_path),
                config_path=config_path,
                rules_files=[str(Path(f)) for f in rules_files],
                follow_log=extras.follow_log,
            )
            extras._closers.append(built.close)
            extras.web_extra = built.app.handle
            extras.sinks.append(StoreSink(built.ingest))
        if report_to:
            from ui.sink import ResponseCounter
            from ui.status import Reporter, status_document

            if not report_to.startswith(("http://", "https://")):
                from ui.errors import UsageError

                raise UsageError(f"--report-to {report_to!r}: not an http(s) URL")
            counter = ResponseCounter()
            extras.sinks.append(counter)
            reporter = Reporter(
                report_to,
                lambda: status_document(
                    config_path, rules_files, extras.follow_log, counter.counts()
                ),
                report_headers(report_auth_file),
                period=report_every,
            ).start()
            extras._closers.append(reporter.stop)
    except BaseException:
        extras.close()
        raise
    return extras
