"""okta, github and gcp_auditlog end to end: upstream plugin rules on event streams read from
files, through the loader and rulesets (rule_matching all, as a Falco configured so)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.loader import load_rules_files, rulesets_for
from engine.sources import provided_plugins
from engine.sources.readers import read_events


def alerts(
    shared_dir: Path, rules: str, source: str, documents: list[dict], tmp_path: Path
) -> list[tuple[int, str]]:
    loaded = load_rules_files([shared_dir / "upstream-rules" / rules], use_cache=False)
    assert [e.message for r in loaded.results for e in r.errors] == []
    assert loaded.unmet_plugin_requirements(provided_plugins()) == []
    rulesets = rulesets_for(loaded, matching="all")
    stream = tmp_path / f"{source}.jsonl"
    stream.write_text("".join(json.dumps(document) + "\n" for document in documents))
    found = []
    for event in read_events(source, stream):
        for rule in rulesets.evaluate(event, source):
            assert rule.output.render(event)
            found.append((event.num, rule.name))
    return found


def okta_event(
    published: str, event_type: str, actor: str = "00u1", result: str = "FAILURE"
) -> dict:
    return {
        "published": published,
        "eventType": event_type,
        "actor": {"id": actor, "displayName": "Eve"},
        "client": {"ipAddress": "203.0.113.5", "geographicalContext": {"country": "Narnia"}},
        "outcome": {"result": result},
    }


def test_okta_mfa_failures_fire_from_the_third_in_five_minutes(
    shared_dir: Path, tmp_path: Path
) -> None:
    mfa = "user.authentication.auth_via_mfa"
    documents = [
        okta_event("2024-01-01T10:00:00Z", mfa),
        okta_event("2024-01-01T10:01:00Z", mfa),
        okta_event("2024-01-01T10:01:30Z", mfa, actor="00u2"),  # another actor
        okta_event("2024-01-01T10:02:00Z", mfa),  # third for 00u1
        okta_event("2024-01-01T10:02:30Z", mfa),
        okta_event("2024-01-01T10:09:00Z", mfa),  # the others are older than 300 s
        okta_event("2024-01-01T10:10:00Z", "user.account.lock", result="SUCCESS"),
    ]
    assert alerts(shared_dir, "okta_rules.yaml", "okta", documents, tmp_path) == [
        (4, "Too many failed MFA in last 5min"),
        (5, "Too many failed MFA in last 5min"),
        (7, "User has been locked out in OKTA"),
    ]


def test_github_rules(shared_dir: Path, tmp_path: Path) -> None:
    repository = {
        "html_url": "https://github.com/acme/app",
        "private": False,
        "owner": {"login": "acme"},
    }
    documents = [
        {"webhook_type": "ping", "hook": {"id": 1, "type": "Repository"}, "repository": repository},
        {
            "webhook_type": "repository",
            "action": "publicized",
            "repository": repository,
            "sender": {"login": "x"},
        },
        {
            "webhook_type": "member",
            "action": "added",
            "member": {"login": "m"},
            "repository": repository,
        },
        {"webhook_type": "star", "action": "created", "repository": repository},
    ]
    assert alerts(shared_dir, "github.yaml", "github", documents, tmp_path) == [
        (1, "Webhook Connected"),
        (2, "Private Repository Becoming Public"),
        (3, "Add Collaborator to Repository"),
    ]


def test_gcp_public_bucket(shared_dir: Path, tmp_path: Path) -> None:
    entry = {
        "timestamp": "2024-02-03T04:05:06Z",
        "resource": {"type": "gcs_bucket", "labels": {"bucket_name": "b1", "project_id": "p1"}},
        "protoPayload": {
            "serviceName": "storage.googleapis.com",
            "methodName": "storage.setIamPermissions",
            "authenticationInfo": {"principalEmail": "eve@example.com"},
            "serviceData": {
                "policyDelta": {"bindingDeltas": [{"action": "ADD", "member": "allUsers"}]}
            },
        },
    }
    private = json.loads(json.dumps(entry))
    private["protoPayload"]["serviceData"]["policyDelta"]["bindingDeltas"][0]["member"] = (
        "user:bob@example.com"
    )
    found = alerts(
        shared_dir, "gcp_auditlog_rules.yaml", "gcp_auditlog", [entry, private], tmp_path
    )
    assert found == [
        (1, "GCP Bucket configured to be public"),
        (1, "GCP Bucket permissions modified"),
        (2, "GCP Bucket permissions modified"),
    ]
