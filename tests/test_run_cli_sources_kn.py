"""`falconet run --source keycloak|nomad` as a real process: replays, option checks before any
work, the Nomad event stream and the Keycloak admin API (stand-ins) and webhook until SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.sources import keycloak
from tests.conftest import REPO_ROOT
from tests.support.keycloak_standin import KeycloakStandIn
from tests.support.nomad_standin import NomadStandIn
from tests.support.waiting import wait_for
from tests.test_source_nomad import allocation_frame

KEYCLOAK_RULES = str(Path(keycloak.__file__).with_name("falconet_keycloak_rules.yaml"))


def nomad_rules(shared_dir: Path) -> str:
    return str(shared_dir / "upstream-plugins" / "nomad" / "nomad_rules.yaml")


def lockout(n: int, when: int) -> dict[str, Any]:
    return {
        "id": f"e{n}",
        "time": when,
        "type": "LOGIN_ERROR",
        "realmId": "acme",
        "clientId": "portal",
        "userId": "u-alice",
        "ipAddress": "192.0.2.1",
        "error": "user_temporarily_disabled",
        "details": {"username": "alice"},
    }


def test_replays(run_cli: Any, shared_dir: Path, tmp_path: Path) -> None:
    frames = tmp_path / "stream.ndjson"
    frames.write_text("{}\n" + json.dumps(allocation_frame(8)) + "\n")
    done = run_cli(
        "run",
        "--source",
        "nomad",
        "-r",
        nomad_rules(shared_dir),
        "--replay",
        str(frames),
        "-o",
        "json",
    )
    assert done.returncode == 0, done.stderr
    rules = [json.loads(line)["rule"] for line in done.stdout.splitlines()]
    assert rules == ["Nomad Allocation with Non-Allowed Image"]  # rule_matching first
    assert json.loads(done.stderr.splitlines()[-1])["events_by_source"] == {"nomad": 1}
    events = tmp_path / "kc.jsonl"
    events.write_text(json.dumps(lockout(1, 1_717_000_000_000)) + "\n")
    done = run_cli("run", "-r", KEYCLOAK_RULES, "--replay", str(events), "-o", "json")
    assert done.returncode == 0, done.stderr
    (alert,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert alert["rule"] == "Keycloak brute-force login lockout" and alert["source"] == "keycloak"
    assert alert["output_fields"]["json.value[/details/username]"] == "alice"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "nomad", "--server", "ftp://x"], "invalid Nomad address"),
        (["--source", "nomad", "--topic", "Job:"], "invalid Nomad topic"),
        (["--source", "nomad", "--realm", "acme"], "--realm does not apply to the nomad source"),
        (["--source", "nomad", "--listen", "127.0.0.1:0"], "has no webhook"),
        (["--source", "nomad", "--token-file", "/nonexistent"], "is not a file"),
        (["--source", "keycloak"], "needs --server URL"),
        (["--source", "keycloak", "--server", "http://127.0.0.1:1"], "realm is required"),
        (
            ["--source", "keycloak", "--server", "http://127.0.0.1:1", "--realm", "r"],
            "needs credentials",
        ),
        (["--source", "okta", "--server", "http://127.0.0.1:1"], "applies to the keycloak"),
    ],
)
def test_bad_live_options_fail_in_one_line_before_any_work(
    run_cli: Any, args: list[str], message: str
) -> None:
    done = run_cli("run", "-r", KEYCLOAK_RULES, "--no-web", *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_a_config_file_key_with_a_typo_is_named(run_cli: Any, falconet_home: Path) -> None:
    config = falconet_home / "falconet.yaml"
    config.write_text("sources:\n  nomad:\n    adress: http://127.0.0.1:1\n")
    done = run_cli("--config", str(config), "run", "-r", KEYCLOAK_RULES, "--source", "nomad")
    assert done.returncode == 2
    assert "sources.nomad.address" in done.stderr


class Process:
    """`falconet run ...` in the background, stopped with SIGTERM."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), FALCONET_HOME=str(home), **(env or {}))
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "cli", "run", "-o", "json", "--no-web", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def stop(self) -> tuple[str, str]:
        self.popen.send_signal(signal.SIGTERM)
        stdout, stderr = self.popen.communicate(timeout=30)
        assert self.popen.returncode == 0, stderr
        return stdout, stderr

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


@pytest.fixture
def nomad() -> Iterator[NomadStandIn]:
    server = NomadStandIn(token="acl-token").start()
    yield server
    server.stop()


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_nomad_event_stream_until_sigterm_then_resume(
    nomad: NomadStandIn, falconet_home: Path, shared_dir: Path, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("acl-token\n")
    alerts = tmp_path / "alerts.json"
    args = ["-r", nomad_rules(shared_dir), "--source", "nomad", "--server", nomad.address]
    args += ["--token-file", str(token), "--topic", "Allocation", "--output-file", str(alerts)]
    allowed = "123456789123.dkr.ecr.eu-central-1.amazonaws.com/subpath/api:1"
    nomad.publish(allocation_frame(5, images=(allowed,), cpu=50, memory=100))  # no rule
    nomad.publish(allocation_frame(6, cpu=500, memory=100))
    first = Process(falconet_home, *args)
    try:
        wait_for(lambda: len(_lines(alerts)) == 1)
        _, stderr = first.stop()
    finally:
        first.kill()
    summary = json.loads(stderr.splitlines()[-1])
    assert summary["events_by_source"] == {"nomad": 2}
    assert [a["output_fields"]["nomad.index"] for a in _lines(alerts)] == [6]
    assert nomad.requests[0]["token"] == "acl-token"
    # falconet restarts: it resumes after index 6 from its cursor; nothing is evaluated twice.
    nomad.publish(allocation_frame(9, cpu=700, memory=100))
    second = Process(falconet_home, *args)
    try:
        wait_for(lambda: len(_lines(alerts)) == 2)
        _, stderr = second.stop()
    finally:
        second.kill()
    assert json.loads(stderr.splitlines()[-1])["events_by_source"] == {"nomad": 1}
    assert nomad.requests[-1]["query"]["index"] == ["7"]


def test_keycloak_admin_api_polling_until_sigterm(falconet_home: Path, tmp_path: Path) -> None:
    keycloak = KeycloakStandIn().start()
    secret = tmp_path / "secret"
    secret.write_text(keycloak.client_secret)
    alerts = tmp_path / "alerts.json"
    now = time.time_ns() // 1_000_000
    process = Process(
        falconet_home,
        *("-r", KEYCLOAK_RULES, "--source", "keycloak", "--server", keycloak.url),
        *("--realm", "acme", "--client-id", keycloak.client_id),
        *("--client-secret-file", str(secret), "--output-file", str(alerts)),
    )
    try:
        wait_for(lambda: any(r["method"] == "GET" for r in keycloak.requests))
        keycloak.events.append(lockout(1, now + 60_000))  # after the start point: "now"
        wait_for(lambda: len(_lines(alerts)) == 1)
        _, stderr = process.stop()
    finally:
        process.kill()
        keycloak.stop()
    assert _lines(alerts)[0]["rule"] == "Keycloak brute-force login lockout"
    assert json.loads(stderr.splitlines()[-1])["events_by_source"] == {"keycloak": 1}
    assert list((falconet_home / "state" / "sources").glob("keycloak-*.json"))


def test_keycloak_webhook_until_sigterm(falconet_home: Path, tmp_path: Path) -> None:
    secret = tmp_path / "hook"
    secret.write_text("0123abcd\n")
    process = Process(
        falconet_home,
        *("-r", KEYCLOAK_RULES, "--source", "keycloak", "--listen", "127.0.0.1:0"),
        *("--webhook-secret-file", str(secret)),
    )
    try:
        assert process.popen.stderr is not None
        line = process.popen.stderr.readline()
        assert "listening on http://127.0.0.1:" in line, line
        url = line.split()[-1]
        assert url.endswith("/keycloak")
        body = json.dumps(lockout(1, 1_717_000_000_000)).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Authorization": "Bearer 0123abcd"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        stdout, _ = process.stop()
    finally:
        process.kill()
    (alert,) = [json.loads(line) for line in stdout.splitlines()]
    assert alert["rule"] == "Keycloak brute-force login lockout"


def test_an_oversized_nomad_frame_becomes_an_internal_alert(
    nomad: NomadStandIn, falconet_home: Path, shared_dir: Path, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("acl-token\n")
    config = tmp_path / "falconet.yaml"
    config.write_text(
        f"sources:\n  nomad:\n    address: {nomad.address}\n    token_file: {token}\n"
        "    max_frame: 4096\n    max_buffer: 4096\n"
    )
    nomad.publish(allocation_frame(3, images=tuple(f"img{n}:1" for n in range(100))))
    nomad.publish(allocation_frame(4))  # docker.io image: a rule alert
    alerts_file = tmp_path / "alerts.json"
    process = Process(
        falconet_home,
        *("-r", nomad_rules(shared_dir), "--source", "nomad", "--output-file", str(alerts_file)),
        env={"FALCONET_CONFIG": str(config)},
    )
    try:
        wait_for(lambda: len(_lines(alerts_file)) == 2)
        _, stderr = process.stop()
    finally:
        process.kill()
    alerts = _lines(alerts_file)
    assert [(a["rule"], a["source"]) for a in alerts] == [
        ("Falco internal: nomad input dropped", "internal"),
        ("Nomad Allocation with Non-Allowed Image", "nomad"),
    ]
    assert alerts[0]["output_fields"]["max_frame"] == 4096
    summary = json.loads(stderr.splitlines()[-1])
    assert summary["events_by_source"] == {"nomad": 1} and summary["skipped_input"] == 1
