"""Fleet ingest into the web UI over HTTP: Falco's http_output, falcosidekick's webhook and
falconet's --output-http shapes; authentication, malformed bodies, limits and bursts. Every
test runs against SQLite and a real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import requests

from tests.support.ui_fixtures import (  # noqa: F401  # fixtures
    BASIC,
    TOKEN,
    RunningUi,
    postgres,
    store_url,
    ui_factory,
)
from tests.support.waiting import wait_for

FALCO_ALERT = {  # as Falco 0.4x's http_output posts it (json_output: true)
    "hostname": "node-a",
    "output": "03:00:00.000000000: Warning Shell spawned in a container (user=root "
    "container_id=abc123 shell=bash)",
    "output_fields": {"container.id": "abc123", "proc.name": "bash", "user.name": "root"},
    "priority": "Warning",
    "rule": "Terminal shell in container",
    "source": "syscall",
    "tags": ["container", "mitre_execution", "shell"],
    "time": "2026-12-08T03:00:00.123456789Z",
}
SIDEKICK_ALERT = {  # falcosidekick's webhook output: the same payload plus its uuid
    **FALCO_ALERT,
    "uuid": "2f0d5f3e-8d0e-4f59-a2f7-1c5c7f0b9c11",
    "hostname": "node-b",
}

Factory = Callable[..., RunningUi]


def post(running: RunningUi, body: object, **kwargs: object) -> requests.Response:
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", running.headers)}  # type: ignore[arg-type]
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(running.url + "/ingest", data=data, headers=headers, timeout=30, **kwargs)


def stored(running: RunningUi, **params: str) -> list[dict]:
    answer = requests.get(
        running.url + "/ui/api/alerts", params={"range": "all", **params}, timeout=30
    )
    return answer.json()["alerts"]


def counters(running: RunningUi) -> dict[str, int]:
    return requests.get(running.url + "/ui/api/status", timeout=30).json()["ingest"]


def test_falco_and_falcosidekick_shapes_are_stored(ui_factory: Factory) -> None:  # noqa: F811
    running = ui_factory()
    assert post(running, FALCO_ALERT).status_code == 202
    assert post(running, [SIDEKICK_ALERT, FALCO_ALERT]).json() == {"accepted": 2, "dropped": 0}
    lines = (json.dumps(FALCO_ALERT) + "\n" + json.dumps(SIDEKICK_ALERT) + "\n").encode()
    answer = post(
        running, lines, headers={**running.headers, "Content-Type": "application/x-ndjson"}
    )
    assert answer.status_code == 202, answer.text
    basic = requests.post(running.url + "/ingest", json=FALCO_ALERT, auth=BASIC, timeout=30)
    assert basic.status_code == 202
    found = wait_for(lambda: len(stored(running)) == 6 and stored(running))
    assert {a["hostname"] for a in found} == {"node-a", "node-b"}
    detail = requests.get(f"{running.url}/ui/api/alerts/{found[0]['id']}", timeout=30).json()
    assert detail["document"]["output_fields"]["proc.name"] == "bash"
    assert detail["time_ns"] == 1_796_698_800_123_456_789


def test_unauthenticated_and_malformed_posts_are_refused(ui_factory: Factory) -> None:  # noqa: F811
    running = ui_factory()
    none = post(running, FALCO_ALERT, headers={})
    assert none.status_code == 401 and "credentials" in none.json()["error"]
    assert "Basic" in none.headers["WWW-Authenticate"]
    wrong = post(running, FALCO_ALERT, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    bad_basic = requests.post(
        running.url + "/ingest", json=FALCO_ALERT, auth=(BASIC[0], "wrong"), timeout=30
    )
    assert bad_basic.status_code == 401
    cases = [
        (b"{not json", 400, "malformed JSON"),
        (b"", 400, "empty body"),
        (b"\xff\xfe", 400, "UTF-8"),
        (json.dumps({"hello": "world"}).encode(), 400, "not a Falco alert"),
        (json.dumps({**FALCO_ALERT, "priority": "Loud"}).encode(), 400, "Unknown priority"),
        (json.dumps([FALCO_ALERT, {"rule": 1}]).encode(), 400, "not a Falco alert"),
    ]
    for body, status, words in cases:
        answer = post(running, body)
        assert answer.status_code == status, (body, answer.text)
        assert words in answer.json()["error"]
    as_form = requests.post(
        running.url + "/ingest",
        data=json.dumps(FALCO_ALERT),
        headers={**running.headers, "Content-Type": "text/plain"},
        timeout=30,
    )
    assert as_form.status_code == 415
    cross_site = post(
        running, FALCO_ALERT, headers={**running.headers, "Origin": "http://evil.test"}
    )
    assert cross_site.status_code == 403
    huge = post(running, b"[" + b" " * (5 << 20) + b"]")
    assert huge.status_code == 413
    assert stored(running) == []  # nothing of the refused bodies was kept
    seen = counters(running)
    assert seen["unauthorized"] == 3 and seen["invalid"] == len(cases)


def test_a_burst_beyond_the_queue_is_counted_and_reported(ui_factory: Factory) -> None:  # noqa: F811
    running = ui_factory(queue_size=20)
    burst = [{**FALCO_ALERT, "output": f"burst {i}"} for i in range(3000)]
    answer = post(running, burst)
    assert answer.status_code in (202, 503)
    result = answer.json() if answer.status_code == 202 else {"accepted": 0, "dropped": 3000}
    assert result["dropped"] > 0 and result["accepted"] + result["dropped"] == 3000
    seen = wait_for(lambda: (c := counters(running))["stored"] >= result["accepted"] + 1 and c)
    assert seen["dropped"] == result["dropped"]
    assert seen["accepted"] == result["accepted"]
    (report,) = stored(running, source="internal")
    assert report["rule"] == "Falco internal: UI ingest queue full"
    assert f"{result['dropped']} alerts dropped" in report["output"]


def test_node_status_documents(ui_factory: Factory) -> None:  # noqa: F811
    running = ui_factory()
    document = {
        "schema": "falconet.status/v1",
        "hostname": "node-7",
        "feeds": {"artifacts": [], "follow": {"refs": [], "schedule": "every 6h", "checks": {}}},
        "compliance": [{"framework": "pci", "name": "PCI DSS", "covered": 3, "controls": 9}],
    }
    url = running.url + "/ingest/status"
    answer = requests.post(url, json=document, headers=running.headers, timeout=30)
    assert answer.status_code == 202, answer.text
    bad = requests.post(url, json={"hostname": "x"}, headers=running.headers, timeout=30)
    assert bad.status_code == 400 and "falconet.status/v1" in bad.json()["error"]
    assert requests.post(url, json=document, timeout=30).status_code == 401
    nodes = requests.get(running.url + "/ui/api/feeds", timeout=30).json()["nodes"]
    assert [n["hostname"] for n in nodes] == ["node-7"]
    assert nodes[0]["compliance"][0]["covered"] == 3


@pytest.mark.parametrize("path", ["/ui/alerts", "/ui/feeds", "/ui/api/alerts"])
def test_ingest_without_credentials_configured_is_off(ui_factory: Factory, path: str) -> None:  # noqa: F811
    running = ui_factory()
    running.ui.app.options.ingest_auth = None  # type: ignore[attr-defined]
    answer = post(running, FALCO_ALERT)
    assert answer.status_code == 401 and "--auth-file" in answer.json()["error"]
    page = requests.get(running.url + path, timeout=30)
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_connections_beyond_the_cap_are_closed_and_counted(
    ui_factory: Factory,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ui.server

    monkeypatch.setattr(ui.server, "MAX_CONNECTIONS", 3)
    running = ui_factory()
    running.ui.app.options.stream_keepalive = 0.2  # type: ignore[attr-defined]  # quick to notice
    streams = [
        requests.get(running.url + "/ui/api/stream", stream=True, timeout=30) for _ in range(3)
    ]
    try:
        for stream in streams:  # each holds its connection's thread
            assert stream.status_code == 200
        server = running.server._server  # type: ignore[attr-defined]
        with pytest.raises(requests.ConnectionError):
            requests.get(running.url + "/ui/alerts", timeout=30)
        assert server.refused == 1
    finally:
        for stream in streams:
            stream.close()

    def served() -> bool:  # the streams' threads end once they find their client gone
        try:
            return requests.get(running.url + "/ui/alerts", timeout=30).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(served)
