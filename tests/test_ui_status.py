"""A node's status document (`falconet run --report-to`): feeds as feeds/ records them (signature,
follow, last check, last-good and rollback), compliance as `compliance report` counts it."""

from __future__ import annotations

from pathlib import Path

from tests.support.ui_fixtures import installed_home  # noqa: F401  # fixture
from ui.status import SCHEMA, FollowLog, check_status, status_document


def test_status_document_of_an_installed_followed_host(installed_home: Path) -> None:  # noqa: F811
    from feeds import lastgood
    from feeds.compliance.operations import coverage_report
    from feeds.context import FeedsContext
    from feeds.follow import CheckResult
    from feeds.run_rules import installed_rules_files
    from feeds.state import StateStore

    context = FeedsContext.load()
    (record,) = StateStore(context.state_dir).all()
    # What an update leaves behind: the previous set kept as last-good.
    lastgood.promote(
        context.state_dir, lastgood.snapshot(context.state_dir, [record]), [record.name]
    )
    log = FollowLog()
    log.record([CheckResult("falconet-rules", "unchanged", digest=record.digest)])
    files = installed_rules_files(context)

    document = check_status(status_document(None, files, log, {"succeeded": 2}, "node-9"))
    assert document["schema"] == SCHEMA and document["hostname"] == "node-9"
    (artifact,) = document["feeds"]["artifacts"]
    assert artifact["signature"]["verdict"] == "verified"
    assert artifact["signature"]["key"].startswith("sha256:")
    assert artifact["followed"] is True
    assert artifact["last_check"]["status"] == "unchanged"
    assert artifact["last_good"] == {"version": record.version, "digest": record.digest}
    assert artifact["rollback"] == "falconet artifact rollback falconet-rules"
    assert document["feeds"]["follow"]["schedule"] == "every 6h"
    pci = next(c for c in document["compliance"] if c["framework"] == "pci-dss")
    totals = coverage_report(files, "pci-dss").totals()
    assert (pci["covered"], pci["controls"]) == (totals["covered"], totals["controls"])
    assert document["responses"] == {"succeeded": 2}
