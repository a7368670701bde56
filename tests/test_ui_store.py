"""The web UI's alert store, the same tests on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import insert

from tests.support.ui_fixtures import postgres, store_url  # noqa: F401  # fixtures
from ui.alerts import parse_time, to_row
from ui.errors import IngestError, StoreError, UsageError
from ui.schema import LATEST, schema_versions
from ui.store import AlertFilter, AlertStore, Retention

NOW = parse_time("2026-12-08T03:00:00Z", 0)
NS = 1_000_000_000


def alert(rule: str = "Shell in container", priority: str = "Warning", **extra: object) -> dict:
    document = {
        "hostname": "node-a",
        "priority": priority,
        "rule": rule,
        "source": "syscall",
        "output": f"03:00:00.000000000: {priority} {rule} (proc.name=bash)",
        "output_fields": {"proc.name": "bash", "container.id": "abc123"},
        "tags": ["container", "shell", "mitre_execution"],
        "time": "2026-12-08T03:00:00.000000000Z",
    }
    document.update(extra)
    return document


@pytest.fixture
def store(store_url: str):  # noqa: F811
    opened = AlertStore(store_url, Retention(None, None))
    yield opened
    opened.close()


def put(store: AlertStore, *documents: dict, received_ns: int | None = None) -> None:
    store.insert([to_row(d, NOW) for d in documents], received_ns=received_ns)


def test_filters_select_what_they_name(store: AlertStore) -> None:
    put(
        store,
        alert(),
        alert("Read sensitive file", "Error", hostname="node-b", tags=["filesystem"]),
        alert("Outbound to C2", "Critical", source="k8s_audit", output="Curl TO evil.example"),
        alert("Old one", "Notice", time="2026-12-01T00:00:00Z"),
    )

    def rules(**params: str) -> list[str]:
        where = AlertFilter.from_query({"range": "all", **params}, now_ns=NOW)
        return [a["rule"] for a in store.alerts(where)]

    assert set(rules(priority="Error")) == {"Read sensitive file", "Outbound to C2"}
    assert rules(rule="Old one") == ["Old one"]
    assert rules(hostname="node-b") == ["Read sensitive file"]
    assert rules(source="k8s_audit") == ["Outbound to C2"]
    assert rules(tag="filesystem") == ["Read sensitive file"]
    assert rules(tag="contain") == []  # a tag matches whole, not as a substring
    assert rules(text="curl to") == ["Outbound to C2"]  # case-insensitive
    assert rules(text="100%") == []  # LIKE wildcards are escaped
    assert "Old one" not in [
        a["rule"] for a in store.alerts(AlertFilter.from_query({"range": "24h"}, now_ns=NOW))
    ]
    assert rules(since="2026-12-07T00:00:00Z", until="2026-12-08T04:00:00Z")[-1] != "Old one"
    everything = store.alerts(AlertFilter.from_query({"range": "all"}, now_ns=NOW))
    assert everything[-1]["rule"] == "Old one"  # newest first
    newest = max(a["id"] for a in everything)
    put(store, alert("Later"))
    assert rules(after_id=str(newest)) == ["Later"]
    assert len(store.alerts(AlertFilter.from_query({"range": "all", "limit": "2"}))) == 2


def test_bad_filters_are_refused_with_the_reason() -> None:
    for params, words in (
        ({"priority": "loud"}, "priority"),
        ({"range": "3w"}, "range"),
        ({"limit": "-1"}, "limit"),
        ({"rule": "x" * 300}, "longer"),
        ({"since": "yesterday"}, "since"),
    ):
        with pytest.raises(UsageError, match=words):
            AlertFilter.from_query(params)
    assert AlertFilter.from_query({"limit": "100000"}).limit == 500


def test_counts_over_time_and_tops(store: AlertStore) -> None:
    put(store, *[alert(time=f"2026-12-08T02:{m:02d}:00Z") for m in range(0, 60, 10)])
    put(store, alert("Rare", hostname="node-b", time="2026-12-08T02:59:00Z"))
    stats = store.stats_for(AlertFilter.from_query({"range": "1h"}, now_ns=NOW), now_ns=NOW)
    assert stats["total"] == 7
    assert sum(stats["counts"]) == 7 and len(stats["counts"]) == 48
    assert stats["counts"][0] == 1  # 02:00 opens the range
    assert stats["top_rules"][0] == {"name": "Shell in container", "count": 6}
    assert stats["top_hosts"] == [{"name": "node-a", "count": 6}, {"name": "node-b", "count": 1}]
    assert store.counts_by_rule() == {"Shell in container": 6, "Rare": 1}


def test_response_outcomes_are_linked_to_their_alert(store: AlertStore) -> None:
    put(store, alert(), alert(hostname="node-b"))
    outcome = alert(
        "Falconet response action",
        "Notice",
        source="response",
        output="Response action process:terminate succeeded",
        output_fields={
            "response.action": "process:terminate",
            "response.status": "succeeded",
            "response.rule": "Kill shells",
            "alert.rule": "Shell in container",
        },
        time="2026-12-08T03:00:01Z",
    )
    put(store, outcome)
    acted_on = store.alerts(AlertFilter(rule="Shell in container", hostname="node-a"))[0]
    detail = store.alert(acted_on["id"])
    assert detail is not None
    assert [r["rule"] for r in detail["responses"]] == ["Falconet response action"]
    assert detail["document"]["output_fields"]["proc.name"] == "bash"
    (response,) = store.responses()
    assert response["alert_id"] == acted_on["id"]
    assert (response["action"], response["status"]) == ("process:terminate", "succeeded")
    assert store.alert(10**9) is None


def test_an_outcome_stored_before_its_alert_is_linked_when_read(store: AlertStore) -> None:
    """Posts from a fleet arrive in any order: the outcome may be stored first."""
    outcome = alert(
        "Falconet response action",
        "Notice",
        source="response",
        output="Response action process:terminate succeeded",
        output_fields={"response.action": "process:terminate", "alert.rule": "Shell in container"},
        time="2026-12-08T03:00:01Z",
    )
    put(store, outcome)
    put(store, alert())
    acted_on = store.alerts(AlertFilter(rule="Shell in container"))[0]
    (response,) = store.responses()
    assert response["alert_id"] == acted_on["id"]


def test_retention_by_age_then_by_size(store: AlertStore) -> None:
    put(store, alert("Old"), received_ns=NOW - 40 * 86400 * NS)
    put(store, *[alert(f"New {i}", output="x" * 2000) for i in range(10)], received_ns=NOW)
    store.retention = Retention(max_age_s=30 * 86400, max_bytes=None)
    assert store.prune(NOW) == 1
    assert store.stats.pruned_age == 1
    kept = store.alerts(AlertFilter(limit=500))
    assert "Old" not in [a["rule"] for a in kept]
    size = len(to_row(alert("New 0", output="x" * 2000)).document)
    store.retention = Retention(max_age_s=None, max_bytes=5 * size)
    deleted = store.prune(NOW)
    remaining = sorted(a["rule"] for a in store.alerts(AlertFilter(limit=500)))
    assert deleted == 10 - len(remaining) and store.stats.pruned_size == deleted
    assert 0 < len(remaining) <= 5
    assert remaining == sorted(f"New {i}" for i in range(10 - len(remaining), 10))  # oldest go


def test_node_status_keeps_the_latest(store: AlertStore) -> None:
    store.put_node("node-a", {"schema": "falconet.status/v1", "hostname": "node-a", "n": 1})
    store.put_node("node-a", {"schema": "falconet.status/v1", "hostname": "node-a", "n": 2})
    store.put_node("node-b", {"schema": "falconet.status/v1", "hostname": "node-b", "n": 1})
    nodes = store.nodes()
    assert [(n["hostname"], n["n"]) for n in nodes] == [("node-a", 2), ("node-b", 1)]


def test_migrations_are_versioned_and_applied_once(store_url: str) -> None:  # noqa: F811
    first = AlertStore(store_url)
    assert first.version == LATEST
    first.close()
    again = AlertStore(store_url)  # reopened: nothing re-applied
    with again.engine.connect() as connection:
        versions = connection.execute(schema_versions.select()).all()
    assert [v.version for v in versions] == list(range(1, LATEST + 1))
    with again.engine.begin() as connection:
        connection.execute(insert(schema_versions).values(version=LATEST + 1, applied_ns=0))
    again.close()
    with pytest.raises(StoreError, match="newer than this falconet"):
        AlertStore(store_url)


def test_unreachable_or_unsupported_stores_say_so(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unsupported database"):
        AlertStore("mysql://x/y")
    with pytest.raises(StoreError, match="cannot open the alert store") as caught:
        AlertStore("postgresql://someone:s3cret@127.0.0.1:1/none")
    assert "s3cret" not in str(caught.value)
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError):
        AlertStore(str(tmp_path / "dir.db"))


def test_alert_documents_are_checked_and_bounded() -> None:
    for document, words in (
        ([], "JSON object"),
        ({"rule": "r", "priority": "Warning"}, "missing output"),
        (alert(priority="Loud"), "Unknown priority"),
        (alert(tags="a,b"), "tags"),
        (alert(output_fields=[1]), "output_fields"),
        (alert(time="yesterday"), "RFC 3339"),
        (alert(rule=7), "rule"),
    ):
        with pytest.raises(IngestError, match=words):
            to_row(document, NOW)
    with pytest.raises(IngestError) as too_big:
        to_row(alert(output="x" * 70_000), NOW)
    assert too_big.value.status == 413
    row = to_row(alert(rule="r" * 2000, tags=["a|b"]), NOW)
    assert len(row.rule) == 512 and row.tags == "|a/b|"
    assert parse_time("2026-12-08T04:00:00.5+01:00", 0) == NOW + NS // 2
    assert to_row({k: v for k, v in alert().items() if k != "time"}, 123).time_ns == 123
    assert json.loads(row.document)["hostname"] == "node-a"
