"""Falco's Prometheus metric families (Falco 0.4x `metrics` with the web server's /metrics), so
Falco's Grafana dashboard and alerting rules work on falconet unchanged.

Names follow libs' prometheus converter: `falcosecurity_<subsystem>_<name>_<unit>`, where a
count's unit is `total` (also on gauges, as Falco prints `falcosecurity_scap_n_threads_total`),
kibibytes become `_bytes`, percentages `_ratio`, and info families end in `_info` with value 1.
Rule matches carry Falco's labels: `rule_name`, `priority` as Falco's number (0 emergency ..
7 debug), `source`, and one `tag_<tag>="true"` label per rule tag.

Values are read when /metrics is scraped (a prometheus_client custom collector): nothing on the
event path.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Falco's priority numbers (falco_common::priority_type).
PRIORITY_NUMBERS = {
    "emergency": 0, "alert": 1, "critical": 2, "error": 3, "warning": 4, "notice": 5,
    "informational": 6, "info": 6, "debug": 7,
}  # fmt: skip
# Prometheus label names: [a-zA-Z_][a-zA-Z0-9_]*; a tag like "mitre_T1059.001" is sanitised.
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9_]")
# Distinct (rule, source) series kept: a ruleset with more rules than this still counts every
# match in the total, and the overflow is visible in its own series.
MAX_RULE_SERIES = 10_000
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class FalcoCounters:
    """What the run knows and the collector renders; updated off the event path."""

    started_ns: int = field(default_factory=time.time_ns)
    events: dict[str, int] = field(default_factory=dict)  # by source
    drops: dict[str, int] = field(default_factory=dict)  # by source
    outputs_dropped: int = 0
    threads: int = 0
    fds: int = 0
    engines: dict[str, str] = field(default_factory=dict)  # source -> engine name
    rules_files: list[str] = field(default_factory=list)
    config_files: list[str] = field(default_factory=list)
    matches: dict[tuple[str, str, str, tuple[str, ...]], int] = field(default_factory=dict)
    matches_overflow: int = 0


class FalcoMetricsCollector(Collector):
    def __init__(self, version: Callable[[], str], hostname: Callable[[], str]) -> None:
        self.counters = FalcoCounters()
        self._version = version
        self._hostname = hostname
        self._lock = threading.Lock()
        self._hashes: dict[tuple[str, float, int], str] = {}

    # -- updates (alert worker, metrics pump) ----------------------------------------------

    def rule_matched(self, rule: str, priority: str, source: str, tags: Iterable[str]) -> None:
        key = (rule, str(PRIORITY_NUMBERS.get(priority.lower(), 7)), source, tuple(sorted(tags)))
        with self._lock:
            matches = self.counters.matches
            if key in matches or len(matches) < MAX_RULE_SERIES:
                matches[key] = matches.get(key, 0) + 1
            else:
                self.counters.matches_overflow += 1

    def update(self, **values: Any) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self.counters, name, value)

    # -- the scrape ------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counters = FalcoCounters(**{k: _copy(v) for k, v in vars(self.counters).items()})
        yield _info("falcosecurity_falco_version", {"version": self._version()})
        yield _info("falcosecurity_falco_kernel_release", {"kernel_release": os.uname().release})
        yield _info("falcosecurity_evt_hostname", {"hostname": self._hostname()})
        for source, engine in sorted(counters.engines.items()):
            yield _info("falcosecurity_scap_engine_name", {"engine_name": engine,
                                                           "evt_source": source})  # fmt: skip
        yield from self._files("falcosecurity_falco_sha256_rules_files", counters.rules_files)
        yield from self._files("falcosecurity_falco_sha256_config_files", counters.config_files)
        yield _counter("falcosecurity_falco_outputs_queue_num_drops", counters.outputs_dropped)
        yield from _rule_matches(counters)
        syscall_events = counters.events.get("syscall", 0)
        yield _counter("falcosecurity_scap_n_evts", syscall_events)
        yield _counter("falcosecurity_scap_n_drops", counters.drops.get("syscall", 0))
        yield _gauge("falcosecurity_scap_n_threads_total", counters.threads)
        yield _gauge("falcosecurity_scap_n_fds_total", counters.fds)
        yield from _resources(counters, sum(counters.events.values()))

    def _files(self, name: str, paths: list[str]) -> Iterator[Metric]:
        family = GaugeMetricFamily(f"{name}_info", "https://falco.org/docs/metrics/",
                                   labels=["file_name", "sha256"])  # fmt: skip
        for path in paths:
            digest = self._sha256(path)
            if digest:
                family.add_metric([Path(path).name, digest], 1)
        yield family

    def _sha256(self, path: str) -> str:
        try:
            stat = os.stat(path)
        except OSError:
            return ""
        key = (path, stat.st_mtime, stat.st_size)
        if key not in self._hashes:
            if len(self._hashes) > 1024:
                self._hashes.clear()
            try:
                self._hashes[key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            except OSError:
                return ""
        return self._hashes[key]


def _copy(value: Any) -> Any:
    return (
        dict(value)
        if isinstance(value, dict)
        else list(value)
        if isinstance(value, list)
        else value
    )


def _info(name: str, labels: dict[str, str]) -> Metric:
    family = GaugeMetricFamily(f"{name}_info", "https://falco.org/docs/metrics/",
                               labels=list(labels))  # fmt: skip
    family.add_metric(list(labels.values()), 1)
    return family


def _counter(name: str, value: float) -> Metric:
    # CounterMetricFamily appends _total itself.
    return CounterMetricFamily(name, "https://falco.org/docs/metrics/", value=value)


def _gauge(name: str, value: float) -> Metric:
    return GaugeMetricFamily(name, "https://falco.org/docs/metrics/", value=value)


def _rule_matches(counters: FalcoCounters) -> Iterator[Metric]:
    """One family whose label names are the union of every rule's tag labels: a rule without
    a tag has that label empty, which Prometheus treats as absent, so each series carries
    exactly Falco's labels (Falco prints one HELP/TYPE per rule instead, which strict parsers
    refuse)."""
    series = []
    names: set[str] = set()
    for (rule, priority, source, tags), count in sorted(counters.matches.items()):
        tag_labels = {f"tag_{_LABEL_INVALID.sub('_', tag)}": "true" for tag in tags}
        names.update(tag_labels)
        series.append(({"priority": priority, "rule_name": rule, "source": source,
                         **tag_labels}, count))  # fmt: skip
    if counters.matches_overflow:
        series.append(({"priority": "7", "rule_name": "(other rules)", "source": "(any)"},
                       counters.matches_overflow))  # fmt: skip
    label_names = ["priority", "rule_name", "source", *sorted(names)]
    family = CounterMetricFamily(
        "falcosecurity_falco_rules_matches", "https://falco.org/docs/metrics/",
        labels=label_names,
    )  # fmt: skip
    for labels, count in series:
        family.add_metric([labels.get(name, "") for name in label_names], count)
    yield family


def _resources(counters: FalcoCounters, events: int) -> Iterator[Metric]:
    now_ns = time.time_ns()
    elapsed = max((now_ns - counters.started_ns) / 1e9, 1e-9)
    cpu_seconds = _cpu_seconds()
    yield _gauge("falcosecurity_falco_cpu_usage_ratio", cpu_seconds / elapsed)
    status = _proc_status()
    for field_name, metric in (("VmRSS", "memory_rss"), ("VmSize", "memory_vsz")):
        if field_name in status:
            yield _gauge(f"falcosecurity_falco_{metric}_bytes", status[field_name] * 1024)
    pss = _pss_kib()
    if pss is not None:
        yield _gauge("falcosecurity_falco_memory_pss_bytes", pss * 1024)
    yield _gauge("falcosecurity_falco_start_timestamp_nanoseconds", counters.started_ns)
    yield _counter("falcosecurity_falco_duration_seconds", int(elapsed))
    yield _gauge("falcosecurity_falco_evts_rate_sec", events / elapsed)
    boot = _boot_ns()
    if boot is not None:
        yield _gauge("falcosecurity_falco_host_boot_timestamp_nanoseconds", boot)
    yield _gauge("falcosecurity_falco_host_num_cpus_total", os.cpu_count() or 0)


def _cpu_seconds() -> float:
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime
    except (OSError, IndexError, ValueError):
        return time.process_time()


def _proc_status() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                values[name] = int(rest.split()[0])
    except (OSError, ValueError):
        pass
    return values


def _pss_kib() -> int | None:
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _boot_ns() -> int | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1]) * 1_000_000_000
    except (OSError, ValueError):
        return None
    return None


def default_hostname() -> str:
    return os.environ.get("FALCO_HOSTNAME") or socket.gethostname()
