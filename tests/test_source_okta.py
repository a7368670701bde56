"""okta: System Log fields and the per-actor MFA counters (real per-stream state)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.sources.formats import EventFactory
from engine.sources.json_event import JsonEvent
from engine.sources.okta import MfaCounters
from engine.sources.readers import read_events
from tests.support.source_fields import extract

SOURCE = "okta"
FAILURE = "user.authentication.auth_via_mfa"
DENY = "user.mfa.okta_verify.deny_push"


def log_event(
    published: str, event_type: str = FAILURE, actor: str = "u1", result: str = "FAILURE"
) -> dict:
    return {
        "uuid": published + actor,
        "published": published,
        "eventType": event_type,
        "actor": {
            "id": actor,
            "type": "User",
            "alternateId": f"{actor}@example.com",
            "displayName": actor.upper(),
        },
        "client": {
            "ipAddress": "198.51.100.7",
            "geographicalContext": {
                "country": "France",
                "geolocation": {"lat": 48.85, "lon": 2.35},
            },
        },
        "outcome": {"result": result, "reason": "INVALID_CREDENTIALS"},
        "target": [
            {
                "id": "t1",
                "type": "User",
                "alternateId": "t@example.com",
                "displayName": "Target User",
            },
            {"id": "g1", "type": "UserGroup", "displayName": "Admins"},
        ],
        "debugContext": {"debugData": {"requestUri": "/app/salesforce/xyz/sso"}},
    }


def counts(
    factory: EventFactory, documents: list[dict], name: str = "okta.mfa.failure.countlast[300]"
) -> list[object]:
    return [
        extract(SOURCE, name, event) for doc in documents for event in factory.from_document(doc)
    ]


def test_failures_are_counted_per_actor_within_the_window() -> None:
    factory = EventFactory(SOURCE)
    documents = [
        log_event("2024-01-01T10:00:00Z"),
        log_event("2024-01-01T10:00:10Z"),
        log_event("2024-01-01T10:00:10Z", actor="u2"),
        log_event("2024-01-01T10:02:00Z"),
        # 400 s after the first: the first two fell out of the 300 s window
        log_event("2024-01-01T10:06:40Z"),
        # a success feeds no counter and extracts nothing
        log_event("2024-01-01T10:06:41Z", result="SUCCESS"),
    ]
    assert counts(factory, documents) == [1, 2, 1, 3, 2, None]


def test_same_timestamp_counts_once_and_denies_are_a_separate_counter() -> None:
    factory = EventFactory(SOURCE)
    documents = [
        log_event("2024-01-01T10:00:00Z"),
        log_event("2024-01-01T10:00:00Z"),
        log_event("2024-01-01T10:00:05Z", event_type=DENY),
    ]
    events = [event for document in documents for event in factory.from_document(document)]
    failures = [extract(SOURCE, "okta.mfa.failure.countlast[300]", event) for event in events]
    denies = [extract(SOURCE, "okta.mfa.deny.countlast[300]", event) for event in events]
    # each field counts its own kind, on events of that kind only
    assert (failures, denies) == ([1, 1, None], [None, None, 1])


def test_streams_do_not_share_counters() -> None:
    first, second = EventFactory(SOURCE), EventFactory(SOURCE)
    counts(first, [log_event("2024-01-01T10:00:00Z"), log_event("2024-01-01T10:00:01Z")])
    assert counts(second, [log_event("2024-01-01T10:00:02Z")]) == [1]


def test_counters_are_bounded() -> None:
    counters = MfaCounters(per_actor=3, max_keys=2)
    for second in range(10):
        counters.record(log_event(f"2024-01-01T10:00:0{second}Z"), second * 1_000_000_000)
    assert counters.count(log_event("x"), 9 * 1_000_000_000, 300) == 3
    for actor in ("a", "b", "c"):
        counters.record(log_event("x", actor=actor), 10 * 1_000_000_000)
    assert len(counters) == 2
    # expired keys start again from nothing
    late = 10 * 1_000_000_000 + 90_000 * 1_000_000_000
    assert counters.count(log_event("x", actor="c"), late, 300) == 0


def test_log_event_fields(tmp_path: Path) -> None:
    page = tmp_path / "logs.json"
    page.write_text(json.dumps([log_event("2024-01-01T10:00:00.5Z")]))  # an API page: an array
    (event,) = read_events(SOURCE, page)
    assert isinstance(event, JsonEvent)
    assert extract(SOURCE, "okta.evt.type", event) == FAILURE
    assert extract(SOURCE, "okta.actor.name", event) == "U1"
    assert extract(SOURCE, "okta.client.ip", event) == "198.51.100.7"
    assert extract(SOURCE, "okta.client.geo.country", event) == "France"
    assert extract(SOURCE, "okta.client.geo.lat", event) == "48.85"
    assert extract(SOURCE, "okta.target.user.name", event) == "Target User"
    assert extract(SOURCE, "okta.target.group.name", event) == "Admins"
    assert extract(SOURCE, "okta.target.app.alternateid", event) is None
    assert extract(SOURCE, "okta.targets.displayName", event) == "(Target User,Admins)"
    assert extract(SOURCE, "okta.targets.displayName[1]", event) == "Admins"
    assert extract(SOURCE, "okta.app", event) == "salesforce"
    assert extract(SOURCE, "okta.reason", event) == "INVALID_CREDENTIALS"
    # absent members read as "" (the plugin's struct defaults), not as missing
    assert extract(SOURCE, "okta.severity", event) == ""
    assert extract(SOURCE, "evt.time.iso8601", event) == "2024-01-01T10:00:00.500000000Z"
