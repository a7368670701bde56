"""The web UI as processes: `falconet ui` on its own, and `falconet run --ui` serving the same
pages beside /healthz, storing its own alerts, while `--report-to` and `--output-http` feed a
fleet UI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.waiting import wait_for
from tests.test_daemon import Daemon, _rule, daemon  # noqa: F401  # fixture
from ui.app import UiOptions
from ui.auth import Credentials
from ui.server import UiServer, build_ui

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "fleet-token-42"


@pytest.fixture
def fleet_ui(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A standalone UI taking ingest with a bearer token and basic auth (SQLite store)."""
    auth = tmp_path / "fleet-auth"
    auth.write_text(f"{TOKEN}\nnode-1:pw-1\n")
    ui = build_ui(
        str(tmp_path / "fleet.db"),
        options=UiOptions(ingest_auth=Credentials.from_file(auth)),
        rules_files=[],
    )
    server = UiServer(ui.app, "127.0.0.1", 0).start()
    yield server.url, auth
    server.stop()
    ui.close()


def test_run_serves_the_ui_and_reports_to_a_fleet_ui(
    daemon: Callable[..., Daemon],  # noqa: F811
    fleet_ui: tuple[str, Path],
    tmp_path: Path,
) -> None:
    fleet, auth = fleet_ui
    rules = tmp_path / "rules.yaml"
    rules.write_text(_rule("Pod created", "pod <b>made</b>"))
    host, port = fleet.removeprefix("http://").split(":")
    run = daemon(
        *("-r", str(rules), "--ui", "--ui-store", str(tmp_path / "local.db")),
        *("--report-to", f"{fleet}/ingest/status", "--report-auth-file", str(auth)),
        *("--output-http", f"http://node-1:pw-1@{host}:{port}/ingest"),
    )
    run.post()
    local = wait_for(
        lambda: requests.get(f"{run.web}/ui/api/alerts?range=all", timeout=10).json()["alerts"]
    )
    assert local[0]["rule"] == "Pod created"
    assert "pod <b>made</b>" in local[0]["output"]  # stored as text; the page escapes it
    assert requests.get(f"{run.web}/healthz", timeout=10).json() == {"status": "ok"}
    assert "enabled_rules" in requests.get(f"{run.web}/rules", timeout=10).json()
    page = requests.get(f"{run.web}/ui/rules", timeout=10)
    assert page.status_code == 200 and 'data-page="rules"' in page.text
    listed = requests.get(f"{run.web}/ui/api/rules", timeout=30).json()["rules"]
    assert [(r["name"], r["alerts"]) for r in listed] == [("Pod created", 1)]
    # The fleet UI got the alert over --output-http and the node's status over --report-to.
    fleet_alerts = wait_for(
        lambda: requests.get(f"{fleet}/ui/api/alerts?range=all", timeout=10).json()["alerts"]
    )
    assert fleet_alerts[0]["rule"] == "Pod created"
    nodes = wait_for(lambda: requests.get(f"{fleet}/ui/api/feeds", timeout=10).json()["nodes"])
    assert nodes[0]["schema"] == "falconet.status/v1"
    assert nodes[0]["rules_files"] == [str(rules)]
    assert len(nodes[0]["compliance"]) >= 8  # one entry per framework of the catalogue
    status, _, stderr = run.stop()
    assert status == 0, stderr


def _ui_process(home: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), FALCONET_HOME=str(home))
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "ui", "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_falconet_ui_serves_until_sigterm(falconet_home: Path) -> None:
    process = _ui_process(falconet_home)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("web UI on http://127.0.0.1:"), line
        url = line.split()[-1]
        assert requests.get(url + "alerts", timeout=10).status_code == 200
        assert list(falconet_home.rglob("ui/alerts.db"))  # the default store, in the state dir
        refused = requests.post(url.removesuffix("/ui/") + "/ingest", json={}, timeout=10)
        assert refused.status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_falconet_ui_bad_settings_are_one_line_errors(run_cli: Callable[..., Any]) -> None:
    done = run_cli("ui", "--store", "mysql://db/x")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: --store mysql://...: unsupported database")
    assert "hint:" in done.stderr
    done = run_cli("ui", "--auth-file", "/nonexistent/auth")
    assert done.returncode == 2 and "cannot read credentials file" in done.stderr
    done = run_cli("ui", "--listen", "nowhere")
    assert done.returncode == 2 and "is not HOST:PORT" in done.stderr
