"""File readers: JSON or JSON lines, gzip by content, directories, bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from engine.sources.errors import InputFormatError, InputNotFoundError, UnknownSourceError
from engine.sources.readers import ReadStats, read_events, replay


def audit_event(audit_id: str) -> dict:
    return {
        "kind": "Event",
        "auditID": audit_id,
        "stageTimestamp": "2024-01-01T00:00:00.000001Z",
        "verb": "get",
    }


def ids(events: object) -> list[str]:
    return [event.data["auditID"] for event in events]  # type: ignore[attr-defined]


def test_json_lines_with_a_bad_line_are_read_around_it(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text(
        json.dumps(audit_event("a"))
        + "\n\nnot json\n"
        + json.dumps({"kind": "EventList", "items": [audit_event("b")]})
        + "\n"
    )
    stats = ReadStats()
    events = list(read_events("k8s_audit", log, stats))
    assert ids(events) == ["a", "b"]
    assert [e.num for e in events] == [1, 2]
    assert (stats.events, stats.skipped, stats.skipped_by_file) == (2, 1, {str(log): 1})


def test_a_gzipped_event_list_whatever_its_name(tmp_path: Path) -> None:
    data = json.dumps(
        {"kind": "EventList", "items": [audit_event("x"), audit_event("y")]}, indent=2
    )
    (tmp_path / "batch.json").write_bytes(gzip.compress(data.encode()))
    assert ids(read_events("k8s_audit", tmp_path / "batch.json")) == ["x", "y"]


def test_directories_are_read_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "2.json").write_text(json.dumps(audit_event("second")))
    (tmp_path / "1.json").write_text(json.dumps(audit_event("first")))
    (tmp_path / "README.md").write_text("ignored")
    stats = ReadStats()
    assert ids(read_events("k8s_audit", tmp_path, stats)) == ["first", "second"]
    assert stats.files == 2


def test_unrecognised_documents_are_skipped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "odd.json").write_text('{"kind": 0}')
    stats = ReadStats()
    assert list(read_events("k8s_audit", tmp_path / "odd.json", stats)) == []
    assert stats.skipped == 1
    assert "data not recognized as a k8s audit event" in caplog.text


def test_a_broken_document_is_an_error(tmp_path: Path) -> None:
    broken = tmp_path / "trail.json"
    broken.write_text('{"Records": [\n  {"eventName": "x",\n  "eventTime": \n')
    with pytest.raises(InputFormatError, match="not JSON"):
        list(read_events("aws_cloudtrail", broken))


def test_corrupt_gzip_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "trail.json.gz"
    bad.write_bytes(gzip.compress(b'{"Records": []}')[:12])
    with pytest.raises(InputFormatError, match="corrupt or truncated gzip"):
        list(read_events("aws_cloudtrail", bad))


def test_a_truncated_gzipped_log_delivers_the_events_before_the_damage(tmp_path: Path) -> None:
    lines = "".join(json.dumps(audit_event(str(i))) + "\n" for i in range(2000))
    whole = gzip.compress(lines.encode())
    log = tmp_path / "audit.log.gz"
    log.write_bytes(whole[: len(whole) // 2])
    seen: list[str] = []
    with pytest.raises(InputFormatError, match="truncated"):
        for event in read_events("k8s_audit", log):
            seen.append(event.data["auditID"])
    assert 0 < len(seen) < 2000
    assert seen == [str(i) for i in range(len(seen))]  # in order, none lost before the damage


def test_missing_path_and_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError) as missing:
        list(read_events("okta", tmp_path / "nope.json"))
    assert missing.value.exit_status == "not_found"
    with pytest.raises(UnknownSourceError) as unknown:
        list(read_events("syslog", tmp_path))
    assert unknown.value.exit_status == "usage"
    assert "k8s_audit" in (unknown.value.hint or "")


def test_json_source_takes_each_document_as_one_event(tmp_path: Path) -> None:
    (tmp_path / "any.jsonl").write_text('{"a": 1}\n[1, 2]\n"text"\n')
    seen: list[object] = []
    stats = replay("json", tmp_path / "any.jsonl", lambda event: seen.append(event.data))
    assert seen == [{"a": 1}, [1, 2], "text"]
    assert stats.events == 3
