"""Fixtures of the web UI tests: the alert store on SQLite and on a real PostgreSQL (the same
tests run against both), and a UI server with ingest credentials. Import them into a test
module (`from tests.support.ui_fixtures import ...`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.postgres import PostgresServer, missing_reason, postgres_server

TOKEN = "test-token-0123456789"
BASIC = ("node-1", "n0de-pa55")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh alert store: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "alerts.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@dataclass
class RunningUi:
    url: str
    ui: object
    server: object
    auth_file: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def ui_factory(tmp_path: Path, store_url: str) -> Iterator[Callable[..., RunningUi]]:
    from ui.app import UiOptions
    from ui.auth import Credentials
    from ui.server import UiServer, build_ui

    started: list[RunningUi] = []
    auth_file = tmp_path / "ui-auth"
    auth_file.write_text(f"# ingest credentials\n{TOKEN}\n{BASIC[0]}:{BASIC[1]}\n")

    def start(
        queue_size: int = 1000,
        login: Credentials | None = None,
        rules_files: list[str] | None = None,
        config_path: str | None = None,
    ) -> RunningUi:
        options = UiOptions(ingest_auth=Credentials.from_file(auth_file), login=login)
        ui = build_ui(
            store_url,
            options=options,
            rules_files=rules_files if rules_files is not None else [],
            config_path=config_path,
            queue_size=queue_size,
        )
        server = UiServer(ui.app, "127.0.0.1", 0).start()
        running = RunningUi(server.url, ui, server, auth_file)
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        running.server.stop()  # type: ignore[attr-defined]
        running.ui.close()  # type: ignore[attr-defined]


@pytest.fixture
def installed_home(falconet_home: Path) -> Path:
    """The embedded, signed default feed installed (offline: only the embedded index), and
    followed: what `falconet run` sets up on a fresh host."""
    from feeds.context import FeedsContext
    from feeds.indexes import EMBEDDED_INDEX_NAME, embedded_index_path
    from feeds.run_rules import rules_for_run

    config = falconet_home / "config" / "falconet.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    index = {"name": EMBEDDED_INDEX_NAME, "url": str(embedded_index_path()), "backend": "file"}
    settings = {
        "index": {"defaults": False},
        "indexes": [index],
        "artifact": {"follow": {"refs": ["falconet-rules"], "every": "6h"}},
    }
    config.write_text(yaml.safe_dump(settings))
    assert rules_for_run(FeedsContext.load())
    return falconet_home
