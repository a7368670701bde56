"""The k8s audit and GitHub webhook endpoints over real HTTP(S) on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from engine.sources.errors import SourceError
from engine.sources.json_event import JsonEvent
from engine.sources.webhooks import (
    TlsFiles,
    WebhookServer,
    github_webhook,
    k8s_audit_webhook,
    signature,
)
from tests.support.certificates import TestCA as CertificateAuthority
from tests.support.source_fields import extract

JSON = {"Content-Type": "application/json"}
SECRET = "It's a Secret to Everybody"


def audit_event(audit_id: str, verb: str = "create") -> dict:
    return {
        "kind": "Event",
        "auditID": audit_id,
        "stageTimestamp": "2024-01-01T00:00:00Z",
        "verb": verb,
    }


class Received:
    def __init__(self) -> None:
        self.batches: list[list[JsonEvent]] = []

    def __call__(self, events: list[JsonEvent]) -> None:
        self.batches.append(events)

    @property
    def events(self) -> list[JsonEvent]:
        return [event for batch in self.batches for event in batch]


@pytest.fixture
def received() -> Received:
    return Received()


@pytest.fixture
def k8s(received: Received) -> Iterator[WebhookServer]:
    with k8s_audit_webhook("127.0.0.1:0", received) as server:
        yield server


@pytest.fixture
def github(received: Received) -> Iterator[WebhookServer]:
    with github_webhook("127.0.0.1:0", received, SECRET) as server:
        yield server


def test_apiserver_event_lists_and_single_events_are_accepted(
    k8s: WebhookServer, received: Received
) -> None:
    batch = {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "items": [audit_event("a"), audit_event("b", "delete")],
    }
    with requests.Session() as session:  # one kept-alive connection, as the apiserver does
        first = session.post(k8s.url, data=json.dumps(batch), headers=JSON, timeout=10)
        second = session.post(k8s.url, data=json.dumps(audit_event("c")), headers=JSON, timeout=10)
    assert (first.status_code, second.status_code) == (200, 200)
    assert [len(batch) for batch in received.batches] == [2, 1]
    assert [extract("k8s_audit", "ka.verb", e) for e in received.events] == [
        "create",
        "delete",
        "create",
    ]
    assert [e.num for e in received.events] == [1, 2, 3]
    assert k8s.stats.events == 3


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("POST", "/k8s-audit", {"Content-Type": "text/plain"}, b"{}", 400),
        ("POST", "/k8s-audit", JSON, b"{not json", 400),
        ("POST", "/k8s-audit", JSON, b'{"kind": "Pod"}', 400),
        ("POST", "/elsewhere", JSON, b"{}", 404),
        ("GET", "/k8s-audit", {}, b"", 405),
    ],
)
def test_bad_requests_are_refused(
    k8s: WebhookServer,
    received: Received,
    method: str,
    path: str,
    headers: dict,
    body: bytes,
    status: int,
) -> None:
    base = k8s.url.rsplit("/", 1)[0]
    response = requests.request(method, base + path, data=body, headers=headers, timeout=10)
    assert response.status_code == status
    assert response.text.strip()  # one line saying why
    assert received.batches == []
    assert k8s.stats.refused == {status: 1}


def test_oversized_bodies_are_refused(received: Received) -> None:
    with k8s_audit_webhook("127.0.0.1:0", received, max_body=1000) as server:
        response = requests.post(
            server.url,
            data=json.dumps([audit_event(str(i)) for i in range(50)]),
            headers=JSON,
            timeout=10,
        )
    assert response.status_code == 413
    assert received.batches == []


def test_callback_failures_answer_500_and_the_endpoint_survives(received: Received) -> None:
    calls: list[int] = []

    def flaky(events: list[JsonEvent]) -> None:
        calls.append(len(events))
        if len(calls) == 1:
            raise RuntimeError("engine hiccup")

    with k8s_audit_webhook("127.0.0.1:0", flaky) as server:
        statuses = [
            requests.post(
                server.url, data=json.dumps(audit_event(str(i))), headers=JSON, timeout=10
            ).status_code
            for i in range(2)
        ]
    assert statuses == [500, 200]
    # events count once the callback took them
    assert (server.stats.requests, server.stats.refused, server.stats.events) == (2, {500: 1}, 1)


def test_tls(tmp_path: Path, received: Received) -> None:
    ca = CertificateAuthority(tmp_path / "ca")
    with k8s_audit_webhook(
        "127.0.0.1:0", received, tls=TlsFiles(ca.server_cert, ca.server_key)
    ) as server:
        assert server.url.startswith("https://")
        ok = requests.post(
            server.url,
            data=json.dumps(audit_event("t")),
            headers=JSON,
            timeout=10,
            verify=str(ca.ca_cert),
        )
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(server.url, data=b"{}", headers=JSON, timeout=10)  # system CAs: untrusted
    assert ok.status_code == 200
    assert len(received.events) == 1


def test_listen_errors() -> None:
    with pytest.raises(SourceError, match="invalid listen address"):
        k8s_audit_webhook("localhost", print)
    with (
        k8s_audit_webhook("127.0.0.1:0", print) as server,
        pytest.raises(SourceError, match="cannot listen"),
    ):
        k8s_audit_webhook(f"127.0.0.1:{server.port}", print)


def _delivery(payload: dict, event: str = "member", key: str = SECRET) -> dict:
    body = json.dumps(payload).encode()
    return {
        "data": body,
        "headers": {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-Hub-Signature-256": signature(key.encode(), body),
        },
    }


def test_github_signed_deliveries_are_accepted(github: WebhookServer, received: Received) -> None:
    response = requests.post(
        github.url, timeout=10, **_delivery({"action": "added", "sender": {"login": "octocat"}})
    )
    assert response.status_code == 200
    (event,) = received.events
    assert extract("github", "github.type", event) == "member"
    assert extract("github", "github.user", event) == "octocat"


def test_github_form_encoded_delivery(github: WebhookServer, received: Received) -> None:
    body = urlencode({"payload": json.dumps({"action": "created"})}).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-GitHub-Event": "star",
        "X-Hub-Signature-256": signature(SECRET.encode(), body),
    }
    assert requests.post(github.url, data=body, headers=headers, timeout=10).status_code == 200
    assert extract("github", "github.type", received.events[0]) == "star"


def test_github_bad_or_missing_signatures_are_refused(
    github: WebhookServer, received: Received
) -> None:
    forged = _delivery({"action": "added"}, key="guessed")
    response = requests.post(github.url, timeout=10, **forged)
    assert (response.status_code, response.text.strip()) == (401, "signature mismatch")
    unsigned = _delivery({"action": "added"})
    del unsigned["headers"]["X-Hub-Signature-256"]
    assert requests.post(github.url, timeout=10, **unsigned).status_code == 401
    # a valid signature over a different body
    tampered = _delivery({"action": "added"})
    tampered["data"] = tampered["data"].replace(b"added", b"removed")
    assert requests.post(github.url, timeout=10, **tampered).status_code == 401
    assert received.batches == []
    assert github.stats.refused == {401: 3}


def test_github_needs_a_secret() -> None:
    with pytest.raises(SourceError, match="shared secret"):
        github_webhook("127.0.0.1:0", print, "")


def test_webhook_events_raise_the_same_alerts_as_the_files(shared_dir: Path) -> None:
    from engine.loader import load_rules_files, rulesets_for
    from engine.sources.readers import read_events

    rulesets = rulesets_for(load_rules_files([shared_dir / "upstream-rules/k8s_audit_rules.yaml"]))
    files = shared_dir / "upstream-events/k8s_audit"
    replayed = [
        r.name for e in read_events("k8s_audit", files) for r in rulesets.evaluate(e, "k8s_audit")
    ]
    served: list[str] = []

    def evaluate(events: list[JsonEvent]) -> None:
        served.extend(r.name for e in events for r in rulesets.evaluate(e, "k8s_audit"))

    documents = [
        json.loads(line)
        for path in sorted(files.glob("*.json"))
        for line in path.read_text().splitlines()
        if line.strip() and "auditID" in line
    ]
    with k8s_audit_webhook("127.0.0.1:0", evaluate) as server, requests.Session() as session:
        for start in range(0, len(documents), 10):
            batch = {"kind": "EventList", "items": documents[start : start + 10]}
            assert session.post(server.url, data=json.dumps(batch), headers=JSON, timeout=10).ok
    assert len(replayed) > 10
    assert served == replayed
