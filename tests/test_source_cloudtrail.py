"""aws_cloudtrail extraction: the upstream CloudTrail sample and hand-made records, with the values
the cloudtrail plugin gives (plugins/cloudtrail extract.go)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from engine.sources.formats import EventFactory
from engine.sources.json_event import JsonEvent
from engine.sources.readers import ReadStats, read_events
from tests.support.source_fields import extract

SOURCE = "aws_cloudtrail"


def field(event: JsonEvent, name: str) -> object:
    return extract(SOURCE, name, event)


def record(**fields: object) -> dict:
    base: dict = {
        "eventTime": "2024-05-01T10:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "203.0.113.9",
        "userIdentity": {"type": "IAMUser", "userName": "bob", "accountId": "111122223333"},
    }
    base.update(fields)
    return base


def events_of(*records: dict) -> list[JsonEvent]:
    return list(EventFactory(SOURCE).from_document({"Records": list(records)}))


def test_upstream_sample(shared_dir: Path) -> None:
    (event,) = read_events(
        SOURCE, shared_dir / "upstream-events/cloudtrail/alice_start_instances.json"
    )
    assert field(event, "ct.user") == "Alice"
    assert field(event, "ct.name") == "StartInstances"
    assert field(event, "ct.src") == "ec2.amazonaws.com"
    assert field(event, "ct.shortsrc") == "ec2"
    assert field(event, "ct.region") == "us-east-2"
    assert field(event, "ct.srcip") == "205.251.233.176"
    assert field(event, "ct.user.identitytype") == "IAMUser"
    assert field(event, "ct.user.accountid") == "123456789012"
    assert field(event, "ct.error") is None  # rules test `not ct.error exists`
    assert field(event, "ct.readonly") is None  # the sample has no readOnly member
    assert (
        field(event, "json.value[/requestParameters/instancesSet/items/0/instanceId]")
        == "i-ebeaf9e2"
    )
    assert field(event, "ct.info") == "Alice via 205.251.233.176 ← StartInstances"
    assert field(event, "evt.plugininfo") == (
        "us-east-2 Alice ec2 StartInstances Alice via 205.251.233.176 ← StartInstances"
    )
    assert field(event, "evt.time.iso8601") == "2014-03-06T21:22:54.000000000Z"


def test_s3_fields_and_counters() -> None:
    (event,) = events_of(
        record(
            requestParameters={"bucketName": "logs", "key": "a/b.txt"},
            additionalEventData={"bytesTransferredIn": 0, "bytesTransferredOut": 33.0},
            readOnly=True,
        )
    )
    assert field(event, "s3.bucket") == "logs"
    assert field(event, "s3.uri") == "s3://logs/a/b.txt"
    assert field(event, "s3.bytes") == 33
    assert field(event, "s3.bytes.out") == 33
    assert field(event, "s3.cnt.get") == 1
    assert field(event, "s3.cnt.put") is None
    assert field(event, "ct.readonly") == "true"
    assert (
        field(event, "ct.info") == "bob via 203.0.113.9 ← GetObject Size=33 URI=s3://logs/a/b.txt"
    )


def test_assumed_role_users() -> None:
    (event,) = events_of(
        record(
            userIdentity={
                "type": "AssumedRole",
                "arn": "arn:aws:sts::111122223333:assumed-role/Admin/alice-session",
                "sessionContext": {"sessionIssuer": {"userName": "Admin"}},
            },
            recipientAccountId="999",
            readOnly=False,
            errorCode="AccessDenied",
        )
    )
    assert field(event, "ct.user") == "Admin"
    assert field(event, "ct.originaluser") == "alice-session"
    assert field(event, "ct.user.accountid") == "999"  # falls back to recipientAccountId
    assert field(event, "ct.error") == "AccessDenied"
    assert field(event, "ct.info").endswith("!→ GetObject")  # type: ignore[union-attr]


def test_ec2_image_ids_with_index() -> None:
    (event,) = events_of(
        record(
            eventSource="ec2.amazonaws.com",
            eventName="RunInstances",
            responseElements={
                "instancesSet": {"items": [{"imageId": "ami-1"}, {"imageId": "ami-2"}]}
            },
            requestParameters={
                "tagSpecificationSet": {
                    "items": [
                        {"resourceType": "instance", "tags": [{"key": "Name", "value": "web"}]}
                    ]
                }
            },
        )
    )
    assert field(event, "ec2.imageids") == ("ami-1", "ami-2")
    assert field(event, "ec2.imageids[1]") == ("ami-2",)
    assert field(event, "ec2.imageids[5]") is None
    assert field(event, "ec2.imageid") == "ami-1"
    assert field(event, "ec2.name") == "web"


def test_records_without_event_time_are_skipped(tmp_path: Path) -> None:
    trail = tmp_path / "trail.json.gz"
    trail.write_bytes(
        gzip.compress(json.dumps({"Records": [record(), {"eventName": "x"}]}).encode())
    )
    stats = ReadStats()
    events = list(read_events(SOURCE, tmp_path, stats))
    assert [field(e, "ct.name") for e in events] == ["GetObject"]
    assert (stats.files, stats.events, stats.skipped) == (1, 1, 1)
