"""github and gcp_auditlog extraction on hand-made deliveries and log entries (values as the
github and gcpaudit plugins give them)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.sources.formats import EventFactory
from engine.sources.json_event import JsonEvent
from engine.sources.readers import read_events
from tests.support.source_fields import extract


def one(source: str, document: dict) -> JsonEvent:
    (event,) = EventFactory(source).from_document(document)
    return event


def test_github_delivery_fields() -> None:
    event = one(
        "github",
        {
            "webhook_type": "member",
            "action": "added",
            "sender": {"login": "octocat"},
            "repository": {
                "html_url": "https://github.com/acme/app",
                "private": False,
                "owner": {"login": "acme"},
            },
            "organization": {"login": "acme"},
            "member": {"login": "mallory"},
            "changes": {"permission": {"to": "admin"}},
            "hook": {"id": 42, "type": "Repository"},
            "commits": [{"added": ["a.py", "b.py"], "modified": ["c.py"]}, {"added": ["d.py"]}],
        },
    )
    values = {
        name: extract("github", name, event)
        for name in (
            "github.type",
            "github.action",
            "github.user",
            "github.repo.name",
            "github.repo.public",
            "github.org",
            "github.owner",
            "github.collaborator.name",
            "github.collaborator.role",
            "github.webhook.id",
            "github.commit.added",
            "github.workflow.filename",
            "github.diff.has_secrets",
            "github.workflow.has_miners",
        )
    }
    assert values == {
        "github.type": "member",
        "github.action": "added",
        "github.user": "octocat",
        "github.repo.name": "acme/app",
        "github.repo.public": "true",
        "github.org": "acme",
        "github.owner": "acme",
        "github.collaborator.name": "mallory",
        "github.collaborator.role": "admin",
        "github.webhook.id": "42",
        # per commit joined by ",", commits concatenated without a separator (as upstream)
        "github.commit.added": "a.py,b.pyd.py",
        "github.workflow.filename": "",
        "github.diff.has_secrets": "",
        "github.workflow.has_miners": None,
    }


def test_github_secret_scan_results_when_present() -> None:
    event = one(
        "github",
        {
            "webhook_type": "push",
            "repository": {"html_url": "https://github.com/acme/app"},
            "head_commit": {"id": "abc123"},
            "files": [{"name": "k.txt", "matches": [{"desc": "AWS key", "line": 3}]}],
        },
    )
    assert extract("github", "github.diff.has_secrets", event) == "true"
    assert extract("github", "github.diff.committed_secrets.desc", event) == "AWS key"
    assert extract("github", "github.diff.committed_secrets.lines", event) == "3"
    assert extract("github", "github.diff.committed_secrets.links", event) == (
        "https://github.com/acme/app/blob/abc123/k.txt/#L3"
    )


def test_gcp_log_entry_fields() -> None:
    entry = {
        "timestamp": "2024-02-03T04:05:06.123456789Z",
        "resource": {
            "type": "gcs_bucket",
            "labels": {"bucket_name": "b1", "project_id": "p1", "location": "eu"},
        },
        "protoPayload": {
            "serviceName": "storage.googleapis.com",
            "methodName": "storage.setIamPermissions",
            "authenticationInfo": {"principalEmail": "eve@example.com"},
            "requestMetadata": {"callerIp": "192.0.2.1", "callerSuppliedUserAgent": "curl"},
            "serviceData": {
                "policyDelta": {"bindingDeltas": [{"action": "ADD", "member": "allUsers"}]}
            },
        },
    }
    event = one("gcp_auditlog", entry)
    assert extract("gcp_auditlog", "gcp.user", event) == "eve@example.com"
    assert extract("gcp_auditlog", "gcp.callerIP", event) == "192.0.2.1"
    assert extract("gcp_auditlog", "gcp.storage.bucket", event) == "b1"
    assert extract("gcp_auditlog", "gcp.location", event) == "eu"
    assert (
        extract("gcp_auditlog", "gcp.policyDelta", event)
        == '[{"action":"ADD","member":"allUsers"}]'
    )
    assert extract("gcp_auditlog", "gcp.resourceLabels", event) == (
        '{"bucket_name":"b1","project_id":"p1","location":"eu"}'
    )
    assert extract("gcp_auditlog", "gcp.logging.sink", event) is None
    assert extract("gcp_auditlog", "json.value[/resource/labels/project_id]", event) == "p1"
    assert event.time % 1_000_000_000 == 123_456_789


def test_gcp_location_from_zone() -> None:
    event = one("gcp_auditlog", {"resource": {"labels": {"zone": "us-central1-a"}}})
    assert extract("gcp_auditlog", "gcp.location", event) == "us-central1"


def test_github_deliveries_from_the_api_are_unwrapped(tmp_path: Path) -> None:
    delivery = {
        "id": 1,
        "event": "repository",
        "action": "publicized",
        "delivered_at": "2024-01-01T00:00:00Z",
        "request": {
            "headers": {"X-GitHub-Event": "repository"},
            "payload": {"action": "publicized", "sender": {"login": "octocat"}},
        },
    }
    saved = {"webhook_type": "star", "action": "created"}
    path = tmp_path / "deliveries.jsonl"
    path.write_text(json.dumps(delivery) + "\n" + json.dumps(saved) + "\n")
    events = list(read_events("github", path))
    assert [extract("github", "github.type", e) for e in events] == ["repository", "star"]
    assert extract("github", "github.user", events[0]) == "octocat"
