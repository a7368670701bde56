"""Coverage reports: counts checked against an independent count; HTML rendered by Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from feeds.compliance.catalogue import load_catalogue
from tests.test_compliance_overlay import effective_tags, tag_matches, upstream_files

CATALOGUE = load_catalogue()


_TAGS: dict[str, dict[str, set[str]]] = {}


def _upstream_tags(shared_dir: Path, strength: str) -> dict[str, set[str]]:
    """Rule -> tags once the overlay of `strength` is applied (generated once per strength)."""
    from feeds.compliance.operations import generate_overlay

    if strength not in _TAGS:
        files = upstream_files(shared_dir)
        _TAGS[strength] = effective_tags(files, generate_overlay(files, strength).text)
    return _TAGS[strength]


@pytest.fixture(scope="module")
def upstream_tags(shared_dir: Path) -> dict[str, set[str]]:
    return _upstream_tags(shared_dir, "technique")


_REPORTS: dict[tuple[str, ...], str] = {}  # reports depend only on the shared files


def _report(run_cli, shared_dir: Path, framework: str, fmt: str, *extra: str) -> str:
    if (framework, fmt, *extra) not in _REPORTS:
        _REPORTS[framework, fmt, *extra] = _run_report(run_cli, shared_dir, framework, fmt, *extra)
    return _REPORTS[framework, fmt, *extra]


def _run_report(run_cli, shared_dir: Path, framework: str, fmt: str, *extra: str) -> str:
    result = run_cli(
        "compliance", "report", *upstream_files(shared_dir), "--framework", framework, "-o", fmt,
        *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def _expected_counts(
    framework: str, tags: dict[str, set[str]], strength: str = "technique"
) -> dict[str, int]:
    """Per catalogue control in force: how many rules carry its tag or a sub-control's tag."""
    return {
        control.id: sum(
            1
            for rule_tags in tags.values()
            if any(tag_matches(t, framework, control.id, strength) for t in rule_tags)
        )
        for control in CATALOGUE.frameworks[framework].active_controls
    }


@pytest.mark.parametrize(
    "framework", ["nist-800-53", "pci-dss", "mitre-attack", "fedramp", "hipaa"]
)
def test_json_report_counts_equal_an_independent_count(
    shared_dir: Path, run_cli, upstream_tags: dict[str, set[str]], framework: str
) -> None:
    report = json.loads(_report(run_cli, shared_dir, framework, "json"))
    expected = _expected_counts(framework, upstream_tags)
    assert {c["id"]: len(c["rules"]) for c in report["controls"]} == expected
    covered = sum(1 for n in expected.values() if n)
    totals = report["totals"]
    assert (totals["controls"], totals["covered"]) == (len(expected), covered)
    assert totals["uncovered"] == len(expected) - covered
    assert sorted(report["uncovered"]) == sorted(c for c, n in expected.items() if n == 0)
    mapped = {
        name
        for name, tags in upstream_tags.items()
        if any(tag_matches(t, framework, None) for t in tags)
    }
    assert totals["rules_mapped"] == len(mapped)
    assert totals["strength"] == "technique"
    # `rules` lists every rule linked at any strength, each with its strongest link.
    tactic_tags = _upstream_tags(shared_dir, "tactic")
    linked = {
        name
        for name, tags in tactic_tags.items()
        if any(tag_matches(t, framework, None, "tactic") for t in tags)
    }
    assert set(report["rules"]) == linked
    assert {n for n, r in report["rules"].items() if r["strength"] != "tactic"} == mapped
    assert totals["rules"] == len(upstream_tags)
    for family in report["families"]:
        in_family = [c for c in report["controls"] if c["family"] == family["id"]]
        assert family["controls"] == len(in_family)
        assert family["covered"] == sum(1 for c in in_family if c["rules"])


@pytest.mark.parametrize("framework", ["pci-dss", "soc2", "nist-800-53", "dora"])
def test_report_counts_per_strength_equal_the_overlay_of_that_strength(
    shared_dir: Path, run_cli, framework: str
) -> None:
    default = json.loads(_report(run_cli, shared_dir, framework, "json"))
    by_strength = default["totals"]["by_strength"]
    previous = -1
    for strength in ("explicit", "technique", "tactic"):
        expected = _expected_counts(framework, _upstream_tags(shared_dir, strength), strength)
        report = json.loads(_report(run_cli, shared_dir, framework, "json", "--strength", strength))
        assert {c["id"]: len(c["rules"]) for c in report["controls"]} == expected, strength
        covered = sum(1 for n in expected.values() if n)
        assert by_strength[strength]["covered"] == covered == report["totals"]["covered"]
        assert sorted(default["uncovered_by_strength"][strength]) == sorted(
            c for c, n in expected.items() if n == 0
        )
        assert covered >= previous  # weaker evidence never covers less
        previous = covered
    for control in default["controls"]:  # the strongest link of a covered control is known
        assert (control["strength"] is None) == (not control["rules_by_strength"]["tactic"])


def test_json_report_flags_controls_absent_from_the_catalogue(shared_dir: Path, run_cli) -> None:
    report = json.loads(_report(run_cli, shared_dir, "pci-dss", "json"))
    # Upstream's PCI_DSS_10.2.5 (a PCI DSS 3.2.1 number) is not a v4.0 requirement.
    assert report["unknown_controls"] == {"10.2.5": ["Launch Privileged Container"]}
    assert "cis" in report["unrecognised_tags"]


def test_markdown_report_has_totals_families_and_uncovered_controls(
    shared_dir: Path, run_cli
) -> None:
    text = _report(run_cli, shared_dir, "soc2", "markdown")
    report = json.loads(_report(run_cli, shared_dir, "soc2", "json"))
    totals = report["totals"]
    assert f"covered: **{totals['covered']}**" in text
    for family in report["families"]:
        assert (
            f"| {family['id']} | {family['title']} | {family['covered']} | {family['controls']} |"
            in text
        )
    for control in report["uncovered"]:
        assert any(
            line.startswith(f"| {control} |") and "**none**" in line for line in text.splitlines()
        )


def test_text_report_summarises(shared_dir: Path, run_cli) -> None:
    text = _report(run_cli, shared_dir, "dora", "text")
    report = json.loads(_report(run_cli, shared_dir, "dora", "json"))
    totals = report["totals"]
    assert text.startswith(
        f"DORA Regulation (EU) 2022/2554: {totals['covered']}/{totals['controls']}"
    )


def test_unknown_report_format_is_a_usage_error(shared_dir: Path, run_cli) -> None:
    result = run_cli(
        "compliance", "report", *upstream_files(shared_dir), "--framework", "dora", "-o", "pdf"
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr


class _DomFacts(HTMLParser):
    """What the test checks in the rendered DOM: bars, totals, control rows, external refs."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str]] = []
        self.totals: dict[str, str] = {}
        self.rows: dict[str, int] = {}
        self.external: list[str] = []
        self._total_id: str | None = None
        self.svg_count = 0
        self.segments: dict[str, list[tuple[str, int]]] = {}
        self.legend: list[str] = []
        self.strength_rows: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "svg" and a.get("id") == "family-chart":
            self.svg_count += 1
        if tag == "g" and "family-bar" in a.get("class", ""):
            self.bars.append(a)
        if tag == "rect" and "bar-covered" in a.get("class", "") and self.bars:
            family = self.bars[-1]["data-family"]
            self.segments.setdefault(family, []).append((a["data-strength"], int(a["data-added"])))
        if tag == "g" and "legend" in a.get("class", "").split():
            self.legend.append(a["data-strength"])
        if tag == "tr" and "strength" in a.get("class", "").split():
            self.strength_rows[a["data-strength"]] = int(a["data-covered"])
        if a.get("id", "").startswith("total-"):
            self._total_id = a["id"]
        if tag == "tr" and "control" in a.get("class", "").split():
            self.rows[a["data-control"]] = int(a["data-rules"])
        for key in ("src", "href"):
            if a.get(key, "").startswith(("http:", "https:", "//")):
                self.external.append(a[key])

    def handle_data(self, data: str) -> None:
        if self._total_id:
            self.totals[self._total_id] = data.strip()
            self._total_id = None


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium is not installed (Debian: apt-get install -y chromium)")


def _render(
    chromium: str, page: Path, tmp_path: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium-profile'}", *extra, page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip


def test_html_report_renders_in_headless_chromium_with_chart_and_counts(
    shared_dir: Path, run_cli, tmp_path: Path
) -> None:
    chromium = _chromium()
    page = tmp_path / "report.html"
    page.write_text(_report(run_cli, shared_dir, "nist-800-53", "html"))
    report = json.loads(_report(run_cli, shared_dir, "nist-800-53", "json"))
    rendered = _render(chromium, page, tmp_path, "--dump-dom")
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    dom = _DomFacts()
    dom.feed(rendered.stdout)
    assert dom.svg_count == 1
    assert [b["data-family"] for b in dom.bars] == [f["id"] for f in report["families"]]
    for bar, family in zip(dom.bars, report["families"], strict=True):
        assert (int(bar["data-covered"]), int(bar["data-controls"])) == (
            family["covered"],
            family["controls"],
        )
    totals = report["totals"]
    assert dom.totals["total-covered"] == str(totals["covered"])
    assert dom.totals["total-controls"] == str(totals["controls"])
    assert dom.totals["total-uncovered"] == str(totals["uncovered"])
    assert dom.rows == {c["id"]: len(c["rules"]) for c in report["controls"]}
    assert dom.external == []  # self-contained: nothing to fetch
    # The chart distinguishes strengths: one segment per strength, adding up to the tactic total.
    for bar, family in zip(dom.bars, report["families"], strict=True):
        for strength in ("explicit", "technique", "tactic"):
            assert int(bar[f"data-covered-{strength}"]) == family["covered_by_strength"][strength]
        added = dom.segments[bar["data-family"]]
        assert [s for s, _ in added] == ["explicit", "technique", "tactic"]
        assert sum(n for _, n in added) == family["covered_by_strength"]["tactic"]
    assert dom.legend == ["explicit", "technique", "tactic"]
    assert dom.strength_rows == {
        s: f["covered"] for s, f in report["totals"]["by_strength"].items()
    }
    shot = tmp_path / "report.png"
    rendered = _render(chromium, page, tmp_path, f"--screenshot={shot}", "--window-size=1000,1400")
    assert rendered.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_report_lists_event_types_of_compiled_rules(shared_dir: Path, run_cli) -> None:
    pytest.importorskip("engine.loader", reason="falconet's rules loader is absent")
    rules = json.loads(_report(run_cli, shared_dir, "nist-800-53", "json"))["rules"]
    # Clear Log Activities opens files for writing (Falco's open_write macro).
    assert set(rules["Clear Log Activities"]["event_types"]) >= {"open", "openat"}
    syscall = [r for r in rules.values() if r["source"] == "syscall"]
    assert syscall and all(r["event_types"] for r in syscall)
    audit = [r for r in rules.values() if r["source"] == "k8s_audit"]
    assert audit and all(r["event_types"] == ["*"] for r in audit)
