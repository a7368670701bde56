"""keycloak: the plugin's fields on events written from Keycloak's documented representations
(EventRepresentation, AdminEventRepresentation), the upstream rules files and falconet's own
Keycloak rules firing on them."""

from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path

import pytest

from engine.fields import catalog
from engine.loader import load_rules_files, rulesets_for
from engine.sources import keycloak, provided_plugins
from engine.sources.formats import EventFactory
from engine.sources.readers import read_events
from tests.support.source_fields import extract

SOURCE = "keycloak"
OWN_RULES = Path(keycloak.__file__).with_name("falconet_keycloak_rules.yaml")
REALM = "7f3c1b9e-acme"


PLUGIN_FIELDS = (
    "keycloak.eventID",
    "keycloak.error",
    "keycloak.realmID",
    "keycloak.user.eventType",
    "keycloak.user.clientID",
    "keycloak.user.userID",
    "keycloak.user.sessionID",
    "keycloak.user.ipAddress",
    "keycloak.admin.authDetails.realmID",
    "keycloak.admin.authDetails.clientID",
    "keycloak.admin.authDetails.userID",
    "keycloak.admin.authDetails.ipAddress",
    "keycloak.admin.resourceType",
    "keycloak.admin.operationType",
    "keycloak.admin.resourcePath",
)


def login_error(n: int, error: str = "invalid_user_credentials", ip: str = "203.0.113.9") -> dict:
    return {
        "id": f"evt-{n}",
        "time": 1_717_000_000_000 + n * 1000,
        "type": "LOGIN_ERROR",
        "realmId": REALM,
        "clientId": "account-console",
        "userId": "u-alice",
        "ipAddress": ip,
        "error": error,
        "details": {"auth_method": "openid-connect", "username": "alice"},
    }


def admin_event(
    n: int, resource_type: str, path: str, representation: object, operation: str = "CREATE"
) -> dict:
    return {
        "id": f"adm-{n}",
        "time": 1_717_000_100_000 + n * 1000,
        "realmId": REALM,
        "authDetails": {
            "realmId": "master-id",
            "clientId": "admin-cli",
            "userId": "u-root",
            "ipAddress": "2001:db8::7",
        },
        "resourceType": resource_type,
        "operationType": operation,
        "resourcePath": path,
        "representation": json.dumps(representation),
        "error": None,
    }


def user_created(n: int) -> dict:
    return admin_event(
        n, "USER", "users/u-mallory", {"username": "mallory", "enabled": True, "email": "m@x.io"}
    )


def role_granted(n: int, role: str, kind: str = "REALM_ROLE_MAPPING") -> dict:
    return admin_event(
        n, kind, "users/u-bob/role-mappings/realm", [{"id": "r1", "name": role, "composite": False}]
    )


def events_of(*documents: dict) -> list:
    factory = EventFactory(SOURCE)
    return [event for document in documents for event in factory.from_document(document)]


def test_the_plugins_fields_and_types() -> None:
    fields = {spec.name: spec for spec in catalog(SOURCE).specs() if spec.name.startswith(SOURCE)}
    counters = {"keycloak.login.failures.countlast", "keycloak.login.failures.ip.countlast"}
    assert set(fields) - counters == set(PLUGIN_FIELDS)  # falconet adds the two counters
    assert all(fields[name].type == "uint" and fields[name].arg == "required" for name in counters)
    fields = {name: spec for name, spec in fields.items() if name not in counters}
    assert {name for name, spec in fields.items() if spec.type == "ipaddr"} == {
        "keycloak.user.ipAddress",
        "keycloak.admin.authDetails.ipAddress",
    }
    assert all(spec.type in ("string", "ipaddr") and spec.arg == "none" for spec in fields.values())


def test_user_event_fields_and_time() -> None:
    (event,) = events_of(login_error(1))
    assert event.time == (1_717_000_000_000 + 1000) * 1_000_000
    assert extract(SOURCE, "keycloak.eventID", event) == "evt-1"
    assert extract(SOURCE, "keycloak.user.eventType", event) == "LOGIN_ERROR"
    assert extract(SOURCE, "keycloak.user.clientID", event) == "account-console"
    assert extract(SOURCE, "keycloak.user.ipAddress", event) == ipaddress.ip_address("203.0.113.9")
    assert extract(SOURCE, "keycloak.error", event) == "invalid_user_credentials"
    # Go struct defaults: admin fields of a user event read "", the admin address nothing.
    assert extract(SOURCE, "keycloak.admin.resourceType", event) == ""
    assert extract(SOURCE, "keycloak.admin.authDetails.ipAddress", event) is None
    assert extract(SOURCE, "json.value[/details/username]", event) == "alice"


def test_admin_event_representation_is_parsed_into_Representation() -> None:
    (event,) = events_of(user_created(1))
    assert extract(SOURCE, "keycloak.admin.resourceType", event) == "USER"
    assert extract(SOURCE, "keycloak.admin.operationType", event) == "CREATE"
    assert extract(SOURCE, "keycloak.admin.authDetails.userID", event) == "u-root"
    assert extract(SOURCE, "keycloak.admin.authDetails.ipAddress", event) == (
        ipaddress.ip_address("2001:db8::7")
    )
    assert extract(SOURCE, "json.value[/Representation/username]", event) == "mallory"
    assert extract(SOURCE, "json.value[/representation]", event) == ""
    assert extract(SOURCE, "keycloak.user.eventType", event) == ""
    # keycloak.error: a JSON null is no string: "" as the plugin's struct reads it.
    assert extract(SOURCE, "keycloak.error", event) == ""


def test_representation_that_is_not_json_is_kept_as_text() -> None:
    document = user_created(1)
    document["representation"] = "{not json"
    (event,) = events_of(document)
    assert extract(SOURCE, "json.value[/representation]", event) == "{not json"
    assert extract(SOURCE, "json.value[/Representation]", event) is None


def test_a_bad_address_reads_absent_and_a_missing_time_is_the_arrival() -> None:
    document = login_error(1, ip="not-an-ip")
    del document["time"]
    before = time.time_ns()
    (event,) = events_of(document)
    assert extract(SOURCE, "keycloak.user.ipAddress", event) is None
    assert before <= event.time <= time.time_ns()


def test_api_pages_and_json_lines_replay(tmp_path: Path) -> None:
    page = tmp_path / "page.json"
    page.write_text(json.dumps([login_error(1), login_error(2)]))
    lines = tmp_path / "events.jsonl"
    lines.write_text(json.dumps(user_created(3)) + "\n" + "[1, 2]\n")
    ids = [extract(SOURCE, "keycloak.eventID", e) for e in read_events(SOURCE, tmp_path)]
    assert ids == ["adm-3", "evt-1", "evt-2"]  # by file name; the non-object line skipped


@pytest.mark.parametrize("name", ["keycloak_rules.yaml", "exporter_hack_keycloak_rules.yaml"])
def test_upstream_keycloak_rules_load_and_fire(shared_dir: Path, name: str) -> None:
    loaded = load_rules_files(
        [shared_dir / "upstream-plugins" / "keycloak" / name], use_cache=False
    )
    assert [e.message for r in loaded.results for e in r.errors] == []
    assert loaded.unmet_plugin_requirements(provided_plugins()) == []
    rulesets = rulesets_for(loaded, matching="all")
    fired = []
    for event in events_of(login_error(1), user_created(2)):
        for rule in rulesets.evaluate(event, SOURCE):
            fired.append((rule.name, rule.output.render(event)))
    if name == "keycloak_rules.yaml":
        assert fired == []  # macros only
        return
    assert fired == [
        (
            "Keycloak user event",
            "event type=LOGIN_ERROR for user=u-alice on realm=7f3c1b9e-acme and "
            "client=account-console with IP=203.0.113.9",
        ),
        (
            "Keycloak admin event",
            "Action made on user=mallory by user u-root with IP=2001:db8::7",
        ),
    ]


def test_own_rules_fire_on_lockouts_user_creation_and_role_grants() -> None:
    loaded = load_rules_files([OWN_RULES], use_cache=False)
    assert [e.message for r in loaded.results for e in r.errors] == []
    assert [w.message for r in loaded.results for w in r.warnings] == []
    assert loaded.unmet_plugin_requirements(provided_plugins()) == []
    rulesets = rulesets_for(loaded, matching="all")
    lockout = login_error(4)
    lockout.update(type="USER_DISABLED_BY_TEMPORARY_LOCKOUT", error="")
    documents = [
        login_error(1),
        login_error(2),
        login_error(3, error="user_temporarily_disabled"),
        lockout,
        user_created(5),
        role_granted(6, "offline_access"),
        role_granted(7, "realm-admin", kind="CLIENT_ROLE_MAPPING"),
        # a role removed, a user updated: no alert
        admin_event(
            8,
            "REALM_ROLE_MAPPING",
            "users/u-bob/role-mappings/realm",
            [{"name": "admin"}],
            "DELETE",
        ),
        admin_event(9, "USER", "users/u-bob", {"username": "bob"}, "UPDATE"),
    ]
    fired = [
        (event.num, rule.name, rule.priority.upper())
        for event in events_of(*documents)
        for rule in rulesets.evaluate(event, SOURCE)
    ]
    assert fired == [
        (3, "Keycloak brute-force login lockout", "WARNING"),
        (4, "Keycloak brute-force login lockout", "WARNING"),
        (5, "Keycloak user created by an administrator", "NOTICE"),
        (6, "Keycloak role granted", "NOTICE"),
        (7, "Keycloak privileged role granted", "CRITICAL"),
    ]
    (created,) = events_of(user_created(5))
    (rule,) = rulesets.evaluate(created, SOURCE)
    assert "username=mallory" in rule.output.render(created)


def failure(n: int, seconds: int, user: str = "u-alice", ip: str = "203.0.113.9") -> dict:
    event = login_error(n, ip=ip)
    event["time"] = 1_717_000_000_000 + seconds * 1000
    event["userId"] = user
    return event


def test_failed_login_counters_per_user_and_per_address() -> None:
    documents = [failure(n, n * 30) for n in range(1, 7)]  # alice, every 30 s
    documents.append(failure(7, 600))  # 420 s after the previous: the window is empty again
    unknown = failure(8, 601, user="")
    unknown["details"]["username"] = "root"  # no such user: counted by the attempted name
    documents += [unknown, failure(9, 602, user="")]
    documents[-1]["details"]["username"] = "root"
    documents.append(user_created(10))  # not a failed login: no count
    events = events_of(*documents)
    by_user = [extract(SOURCE, "keycloak.login.failures.countlast[300]", e) for e in events]
    assert by_user == [1, 2, 3, 4, 5, 6, 1, 1, 2, None]
    by_ip = [extract(SOURCE, "keycloak.login.failures.ip.countlast[60]", e) for e in events]
    assert by_ip == [1, 2, 2, 2, 2, 2, 1, 2, 3, None]  # 30 s apart: two in any 60 s
    # Another stream (another endpoint or poller) starts from nothing.
    (again,) = events_of(failure(1, 1))
    assert extract(SOURCE, "keycloak.login.failures.countlast[300]", again) == 1


def test_own_rules_fire_on_repeated_failures_by_user_and_by_address() -> None:
    loaded = load_rules_files([OWN_RULES], use_cache=False)
    rulesets = rulesets_for(loaded, matching="all")
    guessing = [failure(n, n) for n in range(1, 7)]
    spraying = [failure(n, 100 + n, user=f"u{n}", ip="198.51.100.1") for n in range(10, 30)]
    fired = [
        (extract(SOURCE, "keycloak.eventID", event), rule.name)
        for event in events_of(*guessing, *spraying)
        for rule in rulesets.evaluate(event, SOURCE)
    ]
    assert fired == [
        ("evt-5", "Keycloak repeated failed logins"),
        ("evt-6", "Keycloak repeated failed logins"),
        ("evt-29", "Keycloak repeated failed logins"),
    ]
