"""file:quarantine on real files, exec:script with real programs, http:webhook to a real local
HTTP server."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import stat
from pathlib import Path
from typing import Any

from tests.support.certificates import TestCA as CertificateAuthority
from tests.support.http_server import StaticServer
from tests.support.response import respond_once


def alert(**fields: Any) -> dict[str, Any]:
    return {
        "rule": "Write below binary dir",
        "priority": "Error",
        "source": "syscall",
        "hostname": "node-1",
        "time": "2026-01-01T00:00:00.000000000Z",
        "output_fields": {"proc.name": "curl", "proc.pid": 77, **fields},
    }


def test_quarantine_moves_the_file_keeps_metadata_and_leaves_a_record(tmp_path: Path) -> None:
    victim = tmp_path / "bin" / "dropper"
    victim.parent.mkdir()
    victim.write_bytes(b"#!/bin/sh\necho pwned\n")
    os.chmod(victim, 0o755)
    digest = hashlib.sha256(victim.read_bytes()).hexdigest()
    vault = tmp_path / "quarantine"
    outcome = respond_once(
        "file:quarantine", alert(**{"fd.name": str(victim)}), directory=str(vault)
    )
    assert outcome.status == "succeeded", outcome.error
    assert not victim.exists()
    assert stat.S_IMODE(vault.stat().st_mode) == 0o700
    held = vault / digest
    assert held.read_bytes() == b"#!/bin/sh\necho pwned\n"
    assert stat.S_IMODE(held.stat().st_mode) == 0o400
    record = json.loads(Path(outcome.changed["record"]).read_text())
    assert record["original_path"] == str(victim)
    assert record["sha256"] == digest
    assert record["mode"] == "0o755"
    assert record["alert"]["rule"] == "Write below binary dir"


def test_quarantine_refuses_symlinks_and_reports_missing_files(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target)
    vault = str(tmp_path / "q")
    refused = respond_once("file:quarantine", alert(**{"fd.name": str(link)}), directory=vault)
    assert refused.status == "refused" and target.read_text() == "keep" and link.is_symlink()
    gone = respond_once(
        "file:quarantine", alert(**{"fd.name": str(tmp_path / "nope")}), directory=vault
    )
    assert gone.status == "failed" and "no longer exists" in (gone.error or "")
    no_field = respond_once("file:quarantine", alert(), directory=vault)
    assert no_field.status == "failed" and "fd.name" in str(no_field.error)


def test_script_gets_the_alert_on_stdin_and_its_output_is_captured(tmp_path: Path) -> None:
    script = tmp_path / "respond.sh"
    script.write_text(
        "#!/bin/sh\n"
        "pid=$(python3 -c 'import json,sys; "
        'print(json.load(sys.stdin)["output_fields"]["proc.pid"])\')\n'
        'echo "pid=$pid"\n'
        'echo "to stderr $EXTRA" >&2\n'
    )
    os.chmod(script, 0o755)
    outcome = respond_once("exec:script", alert(), command=[str(script)], env={"EXTRA": "x1"})
    assert outcome.status == "succeeded", outcome.error
    assert outcome.changed["stdout"] == "pid=77\n"
    assert outcome.changed["stderr"] == "to stderr x1\n"


def test_script_timeout_and_failure_are_failed_outcomes() -> None:
    slow = respond_once("exec:script", alert(), command="sleep 10", timeout=0.2)
    assert slow.status == "failed" and "timed out" in (slow.error or "")
    failing = respond_once("exec:script", alert(), command=["sh", "-c", "echo boom >&2; exit 3"])
    assert failing.status == "failed" and "status 3: boom" in (failing.error or "")
    missing = respond_once("exec:script", alert(), command=["/nonexistent/program"])
    assert missing.status == "failed" and "not found" in (missing.error or "")


def test_webhook_posts_a_templated_body_with_headers() -> None:
    server = StaticServer().start()
    try:
        outcome = respond_once(
            "http:webhook",
            alert(**{"fd.name": "/usr/bin/x"}),
            url=server.url + "/hook",
            headers={"X-Token": "t0k"},
            body={"text": "${rule} by ${proc.name} on ${hostname}", "pid": "${proc.pid}"},
        )
    finally:
        server.stop()
    assert outcome.status == "succeeded", outcome.error
    (request,) = server.requests
    assert request.path == "/hook" and request.headers["X-Token"] == "t0k"
    assert json.loads(request.body) == {
        "text": "Write below binary dir by curl on node-1",
        "pid": 77,
    }


def test_webhook_default_body_is_the_alert_and_5xx_is_retried() -> None:
    server = StaticServer(post_status=503).start()
    try:
        failed = respond_once("http:webhook", alert(), url=server.url, retries=2)
        assert failed.status == "failed" and "after 3 attempts: HTTP 503" in (failed.error or "")
        assert len(server.requests) == 3
        server.post_status = 200
        done = respond_once("http:webhook", alert(), url=server.url)
    finally:
        server.stop()
    assert done.status == "succeeded"
    assert json.loads(server.requests[-1].body)["rule"] == "Write below binary dir"


def test_webhook_4xx_is_not_retried() -> None:
    server = StaticServer(post_status=403).start()
    try:
        outcome = respond_once("http:webhook", alert(), url=server.url, retries=3)
    finally:
        server.stop()
    assert outcome.status == "failed" and "HTTP 403" in (outcome.error or "")
    assert len(server.requests) == 1


def test_webhook_over_tls_verifies_the_server_with_the_given_ca(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "tls")
    server = StaticServer()
    server.start()
    assert server._server is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ca.server_cert, ca.server_key)
    server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
    url = server.url.replace("http://", "https://")
    try:
        untrusted = respond_once("http:webhook", alert(), url=url, retries=0)
        trusted = respond_once("http:webhook", alert(), url=url, ca_file=str(ca.ca_cert))
    finally:
        server.stop()
    assert untrusted.status == "failed" and "CERTIFICATE_VERIFY_FAILED" in (untrusted.error or "")
    assert trusted.status == "succeeded", trusted.error
    assert [r.method for r in server.requests] == ["POST"]
