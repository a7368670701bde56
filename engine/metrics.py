"""falconet's Prometheus metrics, in their own registry (one per process, or per test).

The run loop updates the engine metrics through the small methods below; feeds.follow updates
the follow metrics (it takes any object with `follow_checked`, `follow_succeeded`,
`follow_updated`, `follow_failed`). engine.web serves `render()` at /metrics.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from engine.falco_metrics import FalcoMetricsCollector, default_hostname
from engine.versions import falconet_version

PREFIX = "falconet"
# No `<counter>_created` series: Falco prints none, and they double every counter's lines.
disable_created_metrics()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Falco's own families (falcosecurity_*), beside falconet's: Falco's dashboards work.
        self.falco = FalcoMetricsCollector(falconet_version, default_hostname)
        r.register(self.falco)
        self.events = Counter(f"{PREFIX}_events", "Events evaluated.", ["source"], registry=r)
        self.drops = Counter(f"{PREFIX}_drops", "Events dropped.", ["source"], registry=r)
        self.alerts = Counter(
            f"{PREFIX}_alerts", "Alerts raised.", ["rule", "priority"], registry=r
        )
        self.rules_loaded = Gauge(f"{PREFIX}_rules_loaded", "Enabled rules.", registry=r)
        self.ruleset_info = Gauge(
            f"{PREFIX}_ruleset_info", "The running ruleset (value 1).", ["digest"], registry=r
        )
        self.reloads = Counter(f"{PREFIX}_reloads", "Ruleset reloads.", ["result"], registry=r)
        self.reload_seconds = Histogram(
            f"{PREFIX}_reload_duration_seconds", "Time to compile and swap a ruleset.", registry=r
        )
        self.follow_checks = Counter(
            f"{PREFIX}_follow_checks", "Follow checks.", ["ref"], registry=r
        )
        self.follow_updates = Counter(
            f"{PREFIX}_follow_updates", "Follow updates applied.", ["ref"], registry=r
        )
        self.follow_failures = Counter(
            f"{PREFIX}_follow_failures", "Failed follow checks or updates.", ["ref"], registry=r
        )
        self.follow_last_success = Gauge(
            f"{PREFIX}_follow_last_success_timestamp_seconds",
            "Time of the last successful follow check.",
            ["ref"],
            registry=r,
        )
        self.response_actions = Counter(
            f"{PREFIX}_response_actions",
            "Response action outcomes.",
            ["action", "status"],
            registry=r,
        )
        self.state_evictions = Counter(
            f"{PREFIX}_state_evictions",
            "Entries evicted from a full state table (syscall threads, fds).",
            ["table"],
            registry=r,
        )
        self.queue_depth = Gauge(f"{PREFIX}_output_queue_depth", "Queued alerts.", registry=r)
        self.queue_overflow = Counter(
            f"{PREFIX}_output_queue_overflow", "Alerts dropped: queue full.", registry=r
        )
        self.sink_alerts = Counter(
            f"{PREFIX}_output_sink_alerts",
            "Alerts by output sink and result (delivered, dropped: queue full or circuit "
            "open, failed: the sink raised).",
            ["sink", "result"],
            registry=r,
        )
        self.webhook_drops = Counter(
            f"{PREFIX}_webhook_dropped_clients",
            "Webhook connections closed at the listener's limits, by reason "
            "(idle, slow, headers, busy, buffer).",
            ["reason"],
            registry=r,
        )
        self.sink_depth = Gauge(
            f"{PREFIX}_output_sink_queue_depth", "Alerts queued for a sink.", ["sink"], registry=r
        )

    # -- the run loop ----------------------------------------------------------------------

    def event(self, source: str, count: int = 1) -> None:
        self.events.labels(source).inc(count)

    def state_evicted(self, table: str, count: int) -> None:
        self.state_evictions.labels(table=table).inc(count)

    def dropped(self, source: str, count: int = 1) -> None:
        self.drops.labels(source).inc(count)

    def alert(self, rule: str, priority: str) -> None:
        self.alerts.labels(rule, priority).inc()

    def ruleset_loaded(self, digest: str, enabled_rules: int, seconds: float) -> None:
        self.ruleset_info.clear()
        self.ruleset_info.labels(digest).set(1)
        self.rules_loaded.set(enabled_rules)
        self.reloads.labels("ok").inc()
        self.reload_seconds.observe(seconds)

    def reload_failed(self) -> None:
        self.reloads.labels("failed").inc()

    def output_queue(self, depth: int, overflow_total: int) -> None:
        self.queue_depth.set(depth)
        # Counters only go up: add what the queue reports beyond what was counted.
        seen = self.queue_overflow._value.get()
        if overflow_total > seen:
            self.queue_overflow.inc(overflow_total - seen)

    def output_sinks(self, sinks: dict[str, dict[str, int]]) -> None:
        """Per-sink totals (engine.sinks.SinkStats.as_json) into counters that only go up."""
        for name, stats in sinks.items():
            self.sink_depth.labels(name).set(stats.get("queued", 0))
            for result in ("delivered", "dropped", "failed"):
                counter = self.sink_alerts.labels(name, result)
                seen = counter._value.get()
                if stats.get(result, 0) > seen:
                    counter.inc(stats[result] - seen)

    def webhook_dropped(self, dropped: dict[str, int]) -> None:
        """The listener's drop totals by reason, into counters that only go up."""
        for reason, total in dropped.items():
            counter = self.webhook_drops.labels(reason)
            seen = counter._value.get()
            if total > seen:
                counter.inc(total - seen)

    def response_action(self, action: str, status: str) -> None:
        self.response_actions.labels(action, status).inc()

    # -- feeds.follow ----------------------------------------------------------------------

    def follow_checked(self, ref: str) -> None:
        self.follow_checks.labels(ref).inc()

    def follow_succeeded(self, ref: str) -> None:
        self.follow_last_success.labels(ref).set(time.time())

    def follow_updated(self, ref: str) -> None:
        self.follow_updates.labels(ref).inc()

    def follow_failed(self, ref: str) -> None:
        self.follow_failures.labels(ref).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
