"""The web endpoints over real HTTP: /healthz, /versions (read by the falcoctl-style
requirement check), /metrics (Prometheus text, parsed back), /rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from engine.metrics import Metrics
from engine.web import WebServer, WebServerError, rules_document
from feeds.requirements import check_requirement, load_engine_versions


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebServer]:
    rules = tmp_path / "app_rules.yaml"
    rules.write_text("- list: empty\n  items: []\n")
    server = WebServer(
        "127.0.0.1",
        0,
        Metrics(),
        rules=lambda: rules_document([rules], 7, {str(rules): "1.2.3"}),
    ).start()
    yield server
    server.stop()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_healthz_and_unknown_path(web: WebServer) -> None:
    assert requests.get(f"{web.url}/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(f"{web.url}/nope", timeout=5).status_code == 404


def test_healthz_reports_unhealthy_with_503() -> None:
    server = WebServer("127.0.0.1", 0, healthy=lambda: False).start()
    try:
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 503
    finally:
        server.stop()


def test_versions_is_what_a_falcoctl_style_requirement_check_reads(web: WebServer) -> None:
    engine = load_engine_versions(f"{web.url}/versions")
    assert engine.values["engine_version_semver"] == "0.57.0"
    assert set(engine.values) >= {"falco_version", "engine_version", "plugin_api_version"}
    assert check_requirement("engine_version_semver", "0.50.0", engine) is None
    unmet = check_requirement("engine_version_semver", "0.99.0", engine)
    assert unmet is not None


def test_metrics_expose_engine_and_follow_series(web: WebServer) -> None:
    metrics = web.metrics
    metrics.event("syscall", 5)
    metrics.dropped("syscall")
    metrics.alert("Write below etc", "Error")
    metrics.ruleset_loaded("sha256:abc", 42, 0.25)
    metrics.output_queue(3, 2)
    metrics.output_queue(1, 5)
    metrics.follow_checked("ref")
    metrics.follow_failed("ref")
    metrics.follow_succeeded("ref")
    response = requests.get(f"{web.url}/metrics", timeout=5)
    assert response.headers["Content-Type"].startswith("text/plain")
    values = samples(response.text)
    assert values[("falconet_events_total", (("source", "syscall"),))] == 5
    assert values[("falconet_drops_total", (("source", "syscall"),))] == 1
    key = ("falconet_alerts_total", (("priority", "Error"), ("rule", "Write below etc")))
    assert values[key] == 1
    assert values[("falconet_rules_loaded", ())] == 42
    assert values[("falconet_ruleset_info", (("digest", "sha256:abc"),))] == 1
    assert values[("falconet_reloads_total", (("result", "ok"),))] == 1
    assert values[("falconet_reload_duration_seconds_count", ())] == 1
    assert values[("falconet_output_queue_depth", ())] == 1
    assert values[("falconet_output_queue_overflow_total", ())] == 5
    assert values[("falconet_follow_checks_total", (("ref", "ref"),))] == 1
    assert values[("falconet_follow_failures_total", (("ref", "ref"),))] == 1
    assert values[("falconet_follow_last_success_timestamp_seconds", (("ref", "ref"),))] > 0


def test_rules_lists_files_with_digest_and_version(web: WebServer) -> None:
    import hashlib

    document = requests.get(f"{web.url}/rules", timeout=5).json()
    assert document["enabled_rules"] == 7
    (entry,) = document["files"]
    content = Path(entry["path"]).read_bytes()
    assert entry["sha256"] == hashlib.sha256(content).hexdigest()
    assert entry["version"] == "1.2.3"


def test_port_in_use_is_a_clear_error(web: WebServer) -> None:
    host, port = web.address.split(":")
    with pytest.raises(WebServerError, match="cannot listen on") as raised:
        WebServer(host, int(port))
    assert raised.value.hint and "--web" in raised.value.hint


def test_falcos_metric_families_as_falcos_dashboard_reads_them(web: WebServer) -> None:
    """Falco's names and labels (libs' prometheus converter), parsed back by the Prometheus
    parser; no `_created` series."""
    from prometheus_client.parser import text_string_to_metric_families

    falco = web.metrics.falco
    for _ in range(3):
        falco.rule_matched("Read sensitive file untrusted", "Warning", "syscall",
                           ["T1555", "container", "mitre_credential_access"])  # fmt: skip
    falco.rule_matched("Terminal shell in container", "Notice", "syscall", ["shell", "T1059.001"])
    falco.update(events={"syscall": 1000}, drops={"syscall": 7}, outputs_dropped=2, threads=42,
                 engines={"syscall": "bpf"})  # fmt: skip
    text = requests.get(f"{web.url}/metrics", timeout=5).text
    assert "_created" not in text
    series = {
        (sample.name, tuple(sorted((k, v) for k, v in sample.labels.items() if v))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    read = ("falcosecurity_falco_rules_matches_total", (
        ("priority", "4"), ("rule_name", "Read sensitive file untrusted"), ("source", "syscall"),
        ("tag_T1555", "true"), ("tag_container", "true"), ("tag_mitre_credential_access", "true"),
    ))  # fmt: skip
    assert series[read] == 3
    shell = ("falcosecurity_falco_rules_matches_total", (
        ("priority", "5"), ("rule_name", "Terminal shell in container"), ("source", "syscall"),
        ("tag_T1059_001", "true"), ("tag_shell", "true"),
    ))  # fmt: skip
    assert series[shell] == 1
    assert series[("falcosecurity_scap_n_evts_total", ())] == 1000
    assert series[("falcosecurity_scap_n_drops_total", ())] == 7
    assert series[("falcosecurity_falco_outputs_queue_num_drops_total", ())] == 2
    assert series[("falcosecurity_scap_n_threads_total", ())] == 42
    assert series[("falcosecurity_scap_engine_name_info",
                   (("engine_name", "bpf"), ("evt_source", "syscall")))] == 1  # fmt: skip
    names = {name for name, _ in series}
    for expected in ("falcosecurity_falco_version_info", "falcosecurity_falco_kernel_release_info",
                     "falcosecurity_evt_hostname_info", "falcosecurity_falco_cpu_usage_ratio",
                     "falcosecurity_falco_memory_rss_bytes", "falcosecurity_falco_memory_vsz_bytes",
                     "falcosecurity_falco_duration_seconds_total",
                     "falcosecurity_falco_start_timestamp_nanoseconds"):  # fmt: skip
        assert expected in names, expected
    assert 0 < series[("falcosecurity_falco_memory_rss_bytes", ())] < 4 << 30


def test_healthz_is_503_until_the_source_is_open(tmp_path: Path) -> None:
    """A live run's /healthz (the chart's startup probe) says ok only once the input is open."""
    from engine.daemon import MetricsPump
    from engine.runner import RunStats

    class _Detector:
        stats = RunStats()

    pump = MetricsPump(Metrics())
    server = WebServer("127.0.0.1", 0, healthy=pump.source_open).start()
    try:
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 503
        detector = _Detector()
        pump.attach(detector, None)  # type: ignore[arg-type]
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 503
        detector.stats.source_open = True
        assert requests.get(f"{server.url}/healthz", timeout=5).json() == {"status": "ok"}
    finally:
        server.stop()
