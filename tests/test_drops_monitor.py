"""engine.drops_monitor: Falco's syscall_event_drops rule, its configuration checks, its actions,
and how `falconet run` reads it from falconet.yaml and reports it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from engine.drops_monitor import (
    DROP_RULE,
    CaptureCounts,
    DropsConfig,
    DropsConfigError,
    DropsExitError,
    DropsMonitor,
)
from engine.sinks import Alert

SECOND = 1_000_000_000


def _monitor(**config: Any) -> tuple[DropsMonitor, list[Alert]]:
    alerts: list[Alert] = []
    return DropsMonitor(DropsConfig.parse(config), emit=alerts.append, ebpf=True), alerts


# -- configuration -------------------------------------------------------------------------------


def test_defaults_are_falco_yaml_ones() -> None:
    config = DropsConfig.parse({})
    assert (config.threshold, config.actions, config.rate, config.max_burst) == (
        0.1,
        ("log", "alert"),
        0.03333,
        1.0,
    )
    assert config.simulate_drops is False


@pytest.mark.parametrize("threshold", [-1, 1.1, -0.0001])
def test_threshold_outside_0_1_is_refused_with_falcos_message(threshold: float) -> None:
    with pytest.raises(DropsConfigError, match="threshold must be a double in the range") as info:
        DropsConfig.parse({"threshold": threshold}, "file:/etc/falconet.yaml")
    assert str(info.value).startswith("file:/etc/falconet.yaml: ")
    assert info.value.exit_status == "error"  # Falco exits 1
    assert info.value.hint


def test_the_error_names_the_origin_of_the_offending_value() -> None:
    origins = {"threshold": "default", "rate": "env:FALCONET_SYSCALL_EVENT_DROPS_RATE"}
    with pytest.raises(DropsConfigError, match=r"^env:FALCONET_SYSCALL_EVENT_DROPS_RATE: "):
        DropsConfig.parse({"threshold": 0.1, "rate": -1}, origins)


@pytest.mark.parametrize("later", ["log", "alert"])
def test_log_or_alert_after_ignore_is_refused(later: str) -> None:
    with pytest.raises(DropsConfigError, match=f'action "{later}" does not make sense'):
        DropsConfig.parse({"actions": ["ignore", later]})


def test_actions_keep_their_order_without_repeats_and_empty_means_ignore() -> None:
    assert DropsConfig.parse({"actions": ["alert", "log", "alert"]}).actions == ("alert", "log")
    assert DropsConfig.parse({"actions": []}).actions == ("ignore",)
    assert DropsConfig.parse({"actions": ["ignore", "exit"]}).actions == ("ignore", "exit")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"actions": ["page"]}, "available actions for syscall event drops"),
        ({"actions": "log"}, "must be a list"),
        ({"rate": 0}, "rate must be > 0"),
        ({"max_burst": 0.5}, "max_burst >= 1"),
        ({"threshold": "high"}, "must be a number"),
        ({"threshold": True}, "must be a number"),
        ({"simulate_drops": "yes"}, "must be true or false"),
        ({"treshold": 0.2}, "unknown key 'syscall_event_drops.treshold'"),
    ],
)
def test_bad_values_are_one_clear_error(values: dict[str, Any], message: str) -> None:
    with pytest.raises(DropsConfigError, match=message):
        DropsConfig.parse(values)


# -- Falco's rule --------------------------------------------------------------------------------


def test_a_drop_fraction_above_the_threshold_alerts_with_falcos_fields() -> None:
    monitor, alerts = _monitor(threshold=0.1, actions=["alert"])
    monitor.assess(CaptureCounts(1000, 20, (15, 5)), 1 * SECOND)
    monitor.assess(CaptureCounts(2000, 170, (115, 55)), 2 * SECOND)
    assert monitor.occurrences == monitor.actions_taken == 1
    (alert,) = alerts
    document = alert.document
    assert document["rule"] == DROP_RULE
    assert document["priority"] == "Debug"
    assert document["source"] == "internal"
    message = f"{DROP_RULE}. 150 system calls dropped in last second."
    assert document["output"] == f"00:00:02.000000000: Debug {message}"
    fields = document["output_fields"]
    assert fields["n_evts"] == "1000" and fields["n_drops"] == "150"
    assert fields["n_drops_buffer_total"] == "150"  # Falco's "total": all causes, this second
    assert fields["n_drops_per_cpu"] == "100,50"
    assert fields["ebpf_enabled"] == "1"
    # Falco's text line: the message, then the fields in parentheses.
    expected_fields = (
        "ebpf_enabled=1 n_drops=150 n_drops_buffer_total=150 n_drops_per_cpu=100,50 n_evts=1000"
    )
    assert alert.text == f"00:00:02.000000000: Debug {message} ({expected_fields})"


def test_the_threshold_is_exclusive_and_counts_only_new_drops() -> None:
    monitor, alerts = _monitor(threshold=0.1, actions=["alert"], max_burst=10)
    monitor.assess(CaptureCounts(1000, 100), 1 * SECOND)  # 10%: not above the threshold
    monitor.assess(CaptureCounts(2000, 100), 2 * SECOND)  # no new drops
    assert monitor.occurrences == 0 and not alerts
    monitor.assess(CaptureCounts(3000, 201), 3 * SECOND)  # 10.1%
    assert monitor.occurrences == 1 and len(alerts) == 1


def test_the_token_bucket_limits_actions_not_occurrences() -> None:
    monitor, alerts = _monitor(threshold=0, actions=["alert"], rate=0.1, max_burst=2)
    for second in range(1, 6):  # a drop every second for 5 s: 2 from the burst, none refilled
        monitor.assess(CaptureCounts(second * 100, second), second * SECOND)
    assert (monitor.occurrences, monitor.actions_taken, monitor.suppressed) == (5, 2, 3)
    monitor.assess(CaptureCounts(10_000, 100), 16 * SECOND)  # 10 s later: one token back
    assert monitor.actions_taken == 3 and len(alerts) == 3


def test_log_action_is_a_warning_and_ignore_does_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    ignoring, ignored = _monitor(actions=["ignore"], simulate_drops=True)
    ignoring.assess(CaptureCounts(), SECOND)
    assert ignoring.actions_taken == 1 and not ignored and DROP_RULE not in caplog.text
    logging_monitor, alerts = _monitor(actions=["log"], simulate_drops=True)
    logging_monitor.assess(CaptureCounts(), SECOND)
    assert not alerts
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        f"{DROP_RULE}. 1 system calls dropped in last second."
    ]


def test_exit_action_raises_after_the_other_actions() -> None:
    monitor, alerts = _monitor(actions=["alert", "exit"], simulate_drops=True)
    with pytest.raises(DropsExitError, match=r"dropped in last second\. Exiting\.$"):
        monitor.assess(CaptureCounts(), SECOND)
    assert len(alerts) == 1 and monitor.actions_taken == 1


def test_observe_checks_once_per_second_of_event_time() -> None:
    """Falco's per-event hook: the first event arms the check, then a check happens at the first
    event more than one second after the last check."""
    monitor, alerts = _monitor(actions=["alert"], simulate_drops=True, max_burst=100)
    times = [0.0, 0.5, 1.0, 1.0000001, 1.5, 2.0, 2.2, 3.1, 9.9]
    for seconds in times:
        monitor.observe(int(seconds * SECOND) + 10 * SECOND, CaptureCounts)
    # 1.0 is not past 0.0 + 1 s; 1.0000001 is (next: 2.0000001); 2.2 is (next: 3.2); 3.1 is not
    assert monitor.occurrences == 3
    assert [a.document["time"][:19] for a in alerts] == [
        "1970-01-01T00:00:11",
        "1970-01-01T00:00:12",
        "1970-01-01T00:00:19",
    ]


def test_monitored_events_pass_through_and_check_as_observe_does() -> None:
    from types import SimpleNamespace

    from engine.drops_monitor import monitored

    events = [SimpleNamespace(ts=int(s * SECOND)) for s in (5, 5.5, 6, 6.01, 6.5, 7.2, 8.1, 15)]
    by_observe, _ = _monitor(actions=["alert"], simulate_drops=True, max_burst=100)
    for event in events:
        by_observe.observe(event.ts, CaptureCounts)
    wrapped, alerts = _monitor(actions=["alert"], simulate_drops=True, max_burst=100)
    assert list(monitored(events, wrapped, CaptureCounts)) == events
    assert wrapped.occurrences == by_observe.occurrences == 3  # at 6.01, 7.2 and 15
    assert len(alerts) == 3


def test_check_returns_the_document_only_without_an_emitter() -> None:
    standalone = DropsMonitor(DropsConfig(threshold=0.0, actions=("alert",)))
    assert standalone.check(CaptureCounts(10, 0), now=1) is None
    document = standalone.check(CaptureCounts(20, 5), now=2)
    assert document is not None and document["output_fields"]["n_drops"] == "5"
    wired, alerts = _monitor(threshold=0, actions=["alert"])
    wired.check(CaptureCounts(10, 0), now=1)
    assert wired.check(CaptureCounts(20, 5), now=2) is None and len(alerts) == 1


# -- falconet run --------------------------------------------------------------------------------


def _write_config(home: Path, text: str) -> None:
    config = home / "config/falconet.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)


def _replay_args(shared_dir: Path) -> list[str]:
    specs = shared_dir / "upstream-events/falco-0.34.1-test-specs"
    capture = shared_dir / "upstream-captures/ping_sendto.scap"
    return ["run", "-r", str(specs / "rules/single_rule.yaml"), "--replay", str(capture)]


def test_run_reads_falconet_yaml_and_reports_in_the_json_summary(
    shared_dir: Path, falconet_home: Path, run_cli: Any
) -> None:
    _write_config(
        falconet_home,
        "syscall_event_drops:\n  actions: [alert]\n  max_burst: 3\n  simulate_drops: true\n",
    )
    done = run_cli(*_replay_args(shared_dir), "-o", "json")
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines()]
    drops = [a for a in alerts if a["rule"] == DROP_RULE]
    assert len(drops) == 3  # 9 one-second checks over the 10 s capture, a bucket of 3
    assert all(a["source"] == "internal" and a["priority"] == "Debug" for a in drops)
    assert drops[0]["output_fields"]["ebpf_enabled"] == "0"
    summary = json.loads(done.stderr.strip().splitlines()[-1])
    assert summary["syscall_event_drops"]["occurrences"] == 9
    assert summary["syscall_event_drops"]["actions_taken"] == 3
    assert "capture" not in summary  # a replay has no kernel counters


def test_run_refuses_a_bad_setting_naming_its_origin(
    shared_dir: Path, falconet_home: Path, run_cli: Any
) -> None:
    done = run_cli(
        *_replay_args(shared_dir), env={"FALCONET_SYSCALL_EVENT_DROPS_THRESHOLD": "-0.5"}
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0] == (
        "error: env:FALCONET_SYSCALL_EVENT_DROPS_THRESHOLD: syscall event drops threshold must "
        "be a double in the range [0, 1] (got -0.5)"
    )
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in done.stderr and not done.stdout


def test_run_exit_action_prints_the_summary_then_exits_1(
    shared_dir: Path, falconet_home: Path, run_cli: Any
) -> None:
    _write_config(falconet_home, "syscall_event_drops: {actions: [exit], simulate_drops: true}\n")
    done = run_cli(*_replay_args(shared_dir))
    assert done.returncode == 1
    assert "   - event drop detected: 1 occurrences" in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-2]
        .endswith("1 system calls dropped in last second. Exiting.")
    )
