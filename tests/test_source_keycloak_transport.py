"""keycloak transports: the admin REST API poller against a stand-in Keycloak (paging, cursor
resume across a falconet restart in the middle of a poll and a Keycloak restart, token refresh)
and the push webhook over real HTTP(S) (secret, malformed and oversized bodies)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from engine.sources.errors import SourceError
from engine.sources.json_event import JsonEvent
from engine.sources.keycloak_transport import (
    KeycloakAuthError,
    KeycloakOptions,
    KeycloakPoller,
    KeycloakWebhook,
)
from engine.sources.webhooks import TlsFiles
from tests.support.certificates import TestCA as CertificateAuthority
from tests.support.keycloak_standin import KeycloakStandIn
from tests.support.source_fields import extract
from tests.support.waiting import wait_for

SOURCE = "keycloak"
T0 = 1_717_000_000_000


def user_event(n: int, when: int | None = None, with_id: bool = True) -> dict[str, Any]:
    event = {
        "time": T0 + n if when is None else when,
        "type": "LOGIN_ERROR" if n % 3 == 0 else "LOGIN",
        "realmId": "acme-id",
        "clientId": "portal",
        "userId": f"u{n}",
        "ipAddress": "192.0.2.10",
        "details": {"username": f"user{n}"},
    }
    if with_id:
        event["id"] = f"e{n}"
    return event


def admin_event(n: int) -> dict[str, Any]:
    return {
        "id": f"a{n}",
        "time": T0 + n,
        "realmId": "acme-id",
        "authDetails": {"realmId": "master", "clientId": "admin-cli", "userId": "root"},
        "operationType": "CREATE",
        "resourceType": "USER",
        "resourcePath": f"users/n{n}",
        "representation": json.dumps({"username": f"new{n}"}),
    }


class Sink:
    def __init__(self, fail_on_call: int | None = None) -> None:
        self.events: list[JsonEvent] = []
        self.calls = 0
        self.fail_on_call = fail_on_call
        self.alerts: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, events: list[JsonEvent]) -> None:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("falconet killed in the middle of a poll")
        self.events.extend(events)

    def alert(self, message: str, fields: dict[str, Any]) -> None:
        self.alerts.append((message, fields))

    def ids(self) -> list[str]:
        return [extract(SOURCE, "keycloak.eventID", e) for e in self.events]


@pytest.fixture
def keycloak() -> Iterator[KeycloakStandIn]:
    server = KeycloakStandIn().start()
    yield server
    server.stop()


def poller(server: KeycloakStandIn, cursor: Path | None = None, **extra: Any) -> KeycloakPoller:
    values: dict[str, Any] = {
        "server": server.url,
        "realm": server.realm,
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        "page_size": 100,
        "start_ms": T0,
        "cursor": cursor,
        "interval": 0.05,
        "backoff_initial": 0.05,
        "backoff_max": 0.1,
    }
    values.update(extra)
    return KeycloakPoller(KeycloakOptions(**values))


def test_pages_are_read_oldest_first_with_first_and_max(keycloak: KeycloakStandIn) -> None:
    keycloak.events = [user_event(n) for n in range(250, 0, -1)]  # stored in any order
    keycloak.admin_events = [admin_event(1)]
    sink = Sink()
    assert poller(keycloak).poll(sink) == 251
    assert sink.ids() == [f"e{n}" for n in range(1, 251)] + ["a1"]
    gets = [r["query"] for r in keycloak.requests if r["method"] == "GET"]
    assert [(q["first"], q["max"], q["direction"]) for q in gets[:3]] == [
        ("0", "100", "asc"),
        ("100", "100", "asc"),
        ("200", "100", "asc"),
    ]
    assert {q["dateFrom"] for q in gets} == {str(T0)}
    # Admin events: the representation parsed into Representation, time from `time`.
    admin = sink.events[-1]
    assert extract(SOURCE, "json.value[/Representation/username]", admin) == "new1"
    assert admin.time == (T0 + 1) * 1_000_000


def test_a_restart_in_the_middle_of_a_poll_loses_and_repeats_nothing(
    keycloak: KeycloakStandIn, tmp_path: Path
) -> None:
    cursor = tmp_path / "keycloak.cursor"
    # Three events share the last millisecond of the first page and the first of the second.
    keycloak.events = [user_event(n) for n in range(1, 99)]
    keycloak.events += [user_event(n, when=T0 + 99) for n in (99, 100, 101)]
    keycloak.events += [user_event(n) for n in range(102, 151)]
    crashed = Sink(fail_on_call=2)  # delivering the second page fails: the process dies
    with pytest.raises(RuntimeError):
        poller(keycloak, cursor).poll(crashed)
    assert crashed.ids() == [f"e{n}" for n in range(1, 101)]
    assert json.loads(cursor.read_text())["events"] == {"time": T0 + 99, "ids": ["e99", "e100"]}
    keycloak.restart()  # Keycloak restarts too: the old token is gone
    resumed = Sink()
    again = poller(keycloak, cursor)
    assert again.poll(resumed) == 50
    assert resumed.ids() == [f"e{n}" for n in range(101, 151)]
    assert again.stats.duplicates == 2  # e99 and e100, read again at the cursor's millisecond
    # New events, one in the cursor's millisecond: only they come next.
    keycloak.events += [user_event(151, when=T0 + 150), user_event(152)]
    later = Sink()
    assert again.poll(later) == 2
    assert later.ids() == ["e151", "e152"]


def test_events_without_an_id_are_told_apart_by_content(keycloak: KeycloakStandIn) -> None:
    keycloak.events = [user_event(n, when=T0 + 5, with_id=False) for n in (1, 2)]
    first = poller(keycloak, kinds=("events",))
    sink = Sink()
    assert first.poll(sink) == 2
    keycloak.events.append(user_event(3, when=T0 + 5, with_id=False))
    assert first.poll(sink) == 1
    assert [extract(SOURCE, "keycloak.user.userID", e) for e in sink.events] == ["u1", "u2", "u3"]


def test_the_token_is_refreshed_on_expiry_and_on_401(keycloak: KeycloakStandIn) -> None:
    keycloak.events = [user_event(1)]
    source = poller(keycloak, kinds=("events",))
    sink = Sink()
    source.poll(sink)
    keycloak.revoke_tokens()
    keycloak.events.append(user_event(2))
    source.poll(sink)
    assert sink.ids() == ["e1", "e2"]
    assert source.stats.token_refreshes == 2
    keycloak.token_lifetime = 1.0  # shorter than the refresh margin: a new token per request
    source._token.refresh()
    source.poll(sink)
    assert source.stats.token_refreshes >= 4


def test_run_retries_through_failures_and_a_keycloak_restart(keycloak: KeycloakStandIn) -> None:
    keycloak.events = [user_event(n) for n in range(1, 6)]
    source = poller(keycloak, kinds=("events",))
    sink = Sink()
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(sink, stop, sink.alert), daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(sink.events) == 5)
        keycloak.fail_next = 3
        keycloak.events.append(user_event(6))
        wait_for(lambda: len(sink.events) == 6)
        keycloak.restart()
        keycloak.events.append(user_event(7))
        wait_for(lambda: len(sink.events) == 7)
    finally:
        stop.set()
        thread.join(timeout=15)
    assert sink.ids() == [f"e{n}" for n in range(1, 8)]
    assert source.stats.failures >= 3


def test_wrong_credentials_fail_at_start_with_an_auth_error(keycloak: KeycloakStandIn) -> None:
    source = poller(keycloak, client_secret="nope")
    with pytest.raises(KeycloakAuthError, match="client credentials"):
        source.run(Sink(), threading.Event(), Sink().alert)


def test_an_unknown_realm_is_refused(keycloak: KeycloakStandIn) -> None:
    source = poller(keycloak, realm="other", auth_realm="acme")
    with pytest.raises(SourceError, match="no realm 'other'"):
        source.poll(Sink())
    client_realm = poller(keycloak, realm="acme", auth_realm="nope")
    with pytest.raises(SourceError, match="no realm 'nope'"):
        client_realm.run(Sink(), threading.Event(), Sink().alert)


def test_a_keycloak_before_24_listing_newest_first_is_refused(keycloak: KeycloakStandIn) -> None:
    keycloak.events = [user_event(n) for n in (1, 2)]
    keycloak.ignores_direction = True
    with pytest.raises(SourceError, match="newest first") as raised:
        poller(keycloak, kinds=("events",)).poll(Sink())
    assert "Keycloak 24" in (raised.value.hint or "")


def test_an_oversized_page_is_refused_and_alerted(keycloak: KeycloakStandIn) -> None:
    keycloak.events = [user_event(n) for n in range(1, 50)]
    source = poller(keycloak, kinds=("events",), max_page_bytes=1000)
    sink = Sink()
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(sink, stop, sink.alert), daemon=True)
    thread.start()
    wait_for(lambda: sink.alerts)
    stop.set()
    thread.join(timeout=15)
    assert sink.events == []
    assert "over 1000 bytes" in sink.alerts[0][0] and sink.alerts[0][1]["max_page_bytes"] == 1000


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"server": "keycloak:8080"}, "server URL"),
        ({"realm": ""}, "realm"),
        ({"client_secret": ""}, "credentials"),
        ({"kinds": ("logins",)}, "kinds"),
        ({"page_size": 0}, "page size"),
    ],
)
def test_bad_options_are_refused_before_any_work(bad: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {
        "server": "http://127.0.0.1:1",
        "realm": "acme",
        "client_id": "c",
        "client_secret": "s",
        **bad,
    }
    with pytest.raises(SourceError, match=message):
        KeycloakOptions(**values)


# The push webhook ---------------------------------------------------------------------------


@pytest.fixture
def webhook() -> Iterator[tuple[str, Sink]]:
    sink = Sink()
    connector = KeycloakWebhook("127.0.0.1:0", secret="hook-secret", max_body=4096)
    with connector.open(sink) as server:
        yield server.url, sink


AUTH = {"Authorization": "Bearer hook-secret"}


def test_webhook_accepts_one_event_per_post_without_a_json_content_type(
    webhook: tuple[str, Sink],
) -> None:
    url, sink = webhook
    with requests.Session() as session:
        for document in (user_event(1), admin_event(2)):
            # The exporter's StringEntity: text/plain.
            answer = session.post(url, data=json.dumps(document), headers=AUTH, timeout=10)
            assert (answer.status_code, answer.text) == (200, "1 events\n")
    assert sink.ids() == ["e1", "a2"]
    assert extract(SOURCE, "json.value[/Representation/username]", sink.events[1]) == "new2"


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (b'{"id": "x", "time": 1', AUTH, 400, "body is not JSON"),
        (b"[1, 2]", AUTH, 400, "one Keycloak event"),
        (b'"text"', AUTH, 400, "one Keycloak event"),
        (b"\xff\xfe", AUTH, 400, "not JSON"),
        (b"{}", {}, 401, "Authorization"),
        (b"{}", {"Authorization": "Bearer wrong"}, 401, "Authorization"),
        (b"x" * 5000, AUTH, 413, "body over 4096 bytes"),
    ],
)
def test_webhook_refuses_malformed_unauthorised_and_oversized_bodies(
    webhook: tuple[str, Sink], body: bytes, headers: dict[str, str], status: int, reason: str
) -> None:
    url, sink = webhook
    answer = requests.post(url, data=body, headers=headers, timeout=10)
    assert answer.status_code == status
    assert reason in answer.text
    assert sink.events == []
    # The endpoint keeps serving after a refusal.
    ok = requests.post(url, data=json.dumps(user_event(9)), headers=AUTH, timeout=10)
    assert ok.status_code == 200 and sink.ids() == ["e9"]


def test_webhook_over_tls(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "ca")
    sink = Sink()
    connector = KeycloakWebhook("127.0.0.1:0", tls=TlsFiles(ca.server_cert, ca.server_key))
    with connector.open(sink) as server:
        assert server.url.startswith("https://")
        answer = requests.post(
            server.url, data=json.dumps(user_event(3)), verify=str(ca.ca_cert), timeout=10
        )
    assert answer.status_code == 200 and sink.ids() == ["e3"]


def test_more_events_in_one_millisecond_than_the_cursor_holds_are_said(
    keycloak: KeycloakStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.sources import keycloak_transport

    monkeypatch.setattr(keycloak_transport, "MAX_IDS_AT_CURSOR", 3)
    keycloak.events = [user_event(n, when=T0 + 7) for n in range(1, 6)]
    source = poller(keycloak, kinds=("events",))
    sink = Sink()
    source._alert = sink.alert
    assert source.poll(sink) == 5
    assert source.stats.forgotten_ids == 2
    ((message, fields),) = sink.alerts
    assert "2 ids forgotten" in message and fields["n_forgotten_total"] == 2
