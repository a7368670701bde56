"""The detection run loop: events from a source → the current rulesets (through a RulesetSwitch)
→ Falco's alert (text line and JSON document) → the bounded output queue → sinks.

Sources: a replayed syscall capture (.scap or falconet's format), JSON event files of a plugin
source, or a webhook endpoint (k8s audit, GitHub) served until SIGTERM/SIGINT. Each event is
evaluated against `switch.current`, read once per event, so a reload between two events is one
reference assignment (`RulesetSwitch.swap`): no event is lost or evaluated twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import versions
from engine.drops_monitor import (
    CaptureCounts,
    DropsConfig,
    DropsExitError,
    DropsMonitor,
    capture_stats,
    monitored,
)
from engine.errors import EngineError
from engine.loader import (
    LoadedRules,
    RulesInvalidError,
    load_contents,
    load_rules_files,
    rulesets_for,
)
from engine.output import (
    AlertTemplate,
    JsonOptions,
    Priority,
    alert_hostname,
    text_line,
)
from engine.ruleset import CompiledRule, Matching, Rulesets, RulesetSwitch, SelectionStep
from engine.sinks import (
    LIVE_QUEUE_CAPACITY,
    REPLAY_QUEUE_CAPACITY,
    Alert,
    OutputQueue,
    Sink,
    StdoutSink,
    build_sink,
    internal_alert,
)

if TYPE_CHECKING:
    from bpf.options import LiveOptions
    from engine.sources.connectors import Connector
    from engine.sources.plugin_host import PluginConfig, PluginSet
    from engine.sources.syscall.state import StateCounters, StateTracker
    from engine.sources.webhooks import WebhookLimits

log = logging.getLogger(__name__)

SYSCALL = "syscall"
WEBHOOK_SOURCES = ("k8s_audit", "github")
GITHUB_SECRET_ENV = "FALCONET_GITHUB_WEBHOOK_SECRET"
# Falco's outputs_queue.capacity default is 0 (unbounded); falconet bounds each sink's queue
# (engine.sinks): live runs drop what a slow sink cannot take (counted per sink), replays make
# the reader wait for room so every alert is kept without unbounded memory.
ENGINE_VERSION_MESSAGE = "Rules require engine version"


class RequirementUnmetError(EngineError):
    """Rules need an engine version or a plugin this engine does not provide."""

    exit_status = "requirement_unmet"


class LiveCaptureUnavailableError(EngineError):
    exit_status = "requirement_unmet"


class RunUsageError(EngineError):
    exit_status = "usage"


@dataclass(frozen=True)
class Selection:
    """Which loaded rules run: falco -t (tags), -T (disable_tags), -D (disable_rules, `*`
    wildcards), the minimum priority and the matching mode."""

    tags: Sequence[str] = ()
    disable_tags: Sequence[str] = ()
    disable_rules: Sequence[str] = ()
    min_priority: str = "Debug"
    matching: Matching = "first"
    # Exactly these rules (a compliance selection, falconet's `rules:` fragment); then the rest.
    only_rules: Sequence[str] = ()
    # falco.yaml's `rules:` enable/disable entries, in order: after only_rules (what the rules
    # files enable), before the command line's -t/-T/-D, as Falco applies them.
    config_steps: Sequence[SelectionStep] = ()
    # falco.yaml's append_output entries (engine.append_output.AppendOutput)
    append_output: Sequence[Any] = ()

    def steps(self) -> list[SelectionStep]:
        if self.tags and (self.disable_tags or self.disable_rules):
            # Falco refuses the mix too: what -t enables and -T/-D disable would be ambiguous.
            raise RunUsageError(
                "--tag cannot be combined with --disable-tag or --disable-rule",
                hint="select with --tag alone, or disable with --disable-tag/--disable-rule",
            )
        steps = []
        if self.only_rules:
            steps.append(SelectionStep(enable=False, rule="*"))
            steps += [SelectionStep(enable=True, rule=name) for name in self.only_rules]
        steps += self.config_steps
        if self.tags:
            # falco -t: every rule off, then the rules carrying any of the tags on.
            steps.append(SelectionStep(enable=False, rule="*"))
            steps += [SelectionStep(enable=True, tag=tag) for tag in self.tags]
        steps += [SelectionStep(enable=False, tag=tag) for tag in self.disable_tags]
        steps += [SelectionStep(enable=False, rule=name) for name in self.disable_rules]
        return steps


def check_requirements(loaded: LoadedRules) -> None:
    """Raise when the rules need a newer engine or a plugin no built-in source stands in for,
    or when a file is invalid."""
    for result in loaded.results:
        for message in result.errors:
            if message.message.startswith(ENGINE_VERSION_MESSAGE):
                raise RequirementUnmetError(
                    f"{result.name}: {message.message}",
                    hint="use rules written for this engine (see `falconet version`)",
                )
    if not loaded.successful:
        raise RulesInvalidError(loaded)
    unmet = loaded.unmet_plugin_requirements(versions.plugin_versions())
    if unmet:
        raise RequirementUnmetError(
            unmet[0],
            hint="falconet's built-in sources and loaded plugins provide: " + _provided_text(),
        )


def _provided_text() -> str:
    return ", ".join(f"{n} {v}" for n, v in sorted(versions.plugin_versions().items()))


def load_rulesets(
    files: Sequence[str | Path],
    selection: Selection = Selection(),
    isolated: bool = False,
    cache_dir: Path | None = None,
) -> tuple[LoadedRules, Rulesets]:
    """Load rules files in order, check their requirements, and build the selected rulesets.
    `isolated`: a candidate replacing running rules is first compiled by a resource-limited
    child process (engine.compile_guard), then the contents it vetted are compiled here.
    `cache_dir`: the on-disk cache of loads (engine.compile_cache)."""
    if isolated:
        from engine.compile_guard import vet_rules_files

        loaded = load_contents(vet_rules_files(files))
    else:
        loaded = load_rules_files(files, cache_dir=cache_dir)
    check_requirements(loaded)
    if selection.append_output:
        from engine.append_output import with_appended_output

        rules = with_appended_output(loaded.rules, selection.append_output)
        loaded = dataclasses.replace(loaded, rules=rules)
    rulesets = rulesets_for(loaded, selection.steps(), selection.min_priority, selection.matching)
    return loaded, rulesets


@dataclass
class RunStats:
    """What a run saw: events by source, alerts by rule and priority, drops."""

    events_by_source: Counter[str] = field(default_factory=Counter)
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    alerts_by_priority: Counter[Priority] = field(default_factory=Counter)
    skipped_input: int = 0
    dropped_alerts: int = 0
    seconds: float = 0.0
    # per output sink: delivered / dropped (queue full, breaker open) / failed / queued
    outputs: dict[str, dict[str, int]] | None = None
    # webhook listener: requests, refused by status, clients dropped by reason
    webhook: dict[str, Any] | None = None
    # syscall source: syscall_event_drops occurrences/actions, and (live) the kernel's counters
    syscall_event_drops: dict[str, Any] | None = None
    capture: dict[str, Any] | None = None
    # While a live capture runs: its current counters (the daemon's metrics read them).
    capture_now: Callable[[], dict[str, Any]] | None = field(default=None, repr=False)
    # syscall source: the state tracker's counters (evictions of full thread/fd tables), live
    state: StateCounters | None = field(default=None, repr=False)
    # The input is open (the probe attached, the listener listening, the replay started):
    # /healthz says ok only from then on, so a pod is ready only once it detects.
    source_open: bool = field(default=False, repr=False)

    @property
    def events(self) -> int:
        return sum(self.events_by_source.values())

    @property
    def alerts(self) -> int:
        return sum(self.alerts_by_rule.values())

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "events_by_source": dict(self.events_by_source),
            "alerts": self.alerts,
            "alerts_by_rule": dict(self.alerts_by_rule),
            "alerts_by_priority": {p.falco_name: n for p, n in self.alerts_by_priority.items()},
            "skipped_input": self.skipped_input,
            "dropped_alerts": self.dropped_alerts,
            "seconds": round(self.seconds, 6),
            "events_per_second": round(self.events_per_second, 1),
            **_present(
                syscall_event_drops=self.syscall_event_drops,
                capture=self.capture,
                outputs=self.outputs,
                webhook=self.webhook,
            ),
            **_present(state=self.state.as_json() if self.state is not None else None),
        }

    def summary_text(self) -> str:
        """Falco's end-of-run summary, then falconet's throughput line."""
        lines = [f"Events detected: {self.alerts}", "Rule counts by severity:"]
        for priority in sorted(self.alerts_by_priority):
            lines.append(f"   {priority.name}: {self.alerts_by_priority[priority]}")
        lines.append("Triggered rules by rule name:")
        lines += [f"   {rule}: {n}" for rule, n in self.alerts_by_rule.most_common()]
        by_source = ", ".join(f"{s}: {n}" for s, n in sorted(self.events_by_source.items()))
        lines.append(
            f"Events processed: {self.events} ({by_source or 'none'}) in {self.seconds:.3f}s "
            f"({self.events_per_second:,.0f} events/s); skipped input: {self.skipped_input}; "
            f"alerts dropped: {self.dropped_alerts}"
        )
        lines += _drop_lines(self.syscall_event_drops, self.capture)
        state = self.state
        if state is not None and (state.threads_evicted or state.fds_evicted):
            lines.append(
                f"State tables full: {state.threads_evicted} threads and {state.fds_evicted} fds "
                "evicted (least recently active first)"
            )
        lines += _output_lines(self.outputs)
        if self.webhook is not None:
            lines.append(
                f"Webhook: {self.webhook['requests']} requests; refused: "
                f"{_counts_text(self.webhook['refused'])}; clients dropped: "
                f"{_counts_text(self.webhook['dropped'])}"
            )
        return "\n".join(lines)


def _present(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {n}" for key, n in sorted(counts.items())) or "none"


def _output_lines(outputs: dict[str, dict[str, int]] | None) -> list[str]:
    """One line for the sinks, only when one of them lost or failed alerts."""
    if not outputs or not any(s["dropped"] or s["failed"] for s in outputs.values()):
        return []
    return [
        "Outputs: "
        + "; ".join(
            f"{name}: {s['delivered']} delivered, {s['dropped']} dropped, {s['failed']} failed"
            for name, s in outputs.items()
        )
    ]


def _drop_lines(monitor: dict[str, Any] | None, capture: dict[str, Any] | None) -> list[str]:
    """Falco's drop-monitoring lines, then the live capture's counters."""
    lines = []
    if monitor is not None:
        lines += [
            "Syscall event drop monitoring:",
            f"   - event drop detected: {monitor['occurrences']} occurrences",
            f"   - num times actions taken: {monitor['actions_taken']}",
        ]
    if capture is not None:
        # counted = delivered + dropped + left in the ring + in flight, always.
        lines.append(
            f"Capture: {capture['kernel_counted']} events counted in the kernel = "
            f"{capture['delivered']} delivered + {capture['dropped']} dropped "
            f"({capture['drop_percent']:.3f}%; per CPU: "
            f"{','.join(str(n) for n in capture['dropped_per_cpu']) or '-'}) + "
            f"{capture.get('left_in_ring', 0)} left unread in the ring at stop + "
            f"{capture.get('in_flight', 0)} in flight"
        )
    return lines


class AlertFormatter:
    """A matched rule and its event as Falco's alert (both shapes)."""

    def __init__(
        self,
        iso8601: bool = False,
        hostname: str | None = None,
        options: JsonOptions | None = None,
    ) -> None:
        self.iso8601 = iso8601
        self.hostname = hostname or alert_hostname()
        self._options = options or JsonOptions()
        self._priorities: dict[str, Priority] = {}
        self._templates: dict[tuple[CompiledRule, str], AlertTemplate] = {}
        self._identity: Callable[[Any], dict[str, int] | None] | None = None

    def priority(self, rule: CompiledRule) -> Priority:
        cached = self._priorities.get(rule.priority)
        if cached is None:
            cached = self._priorities[rule.priority] = Priority.parse(rule.priority)
        return cached

    def template(self, rule: CompiledRule, source: str) -> AlertTemplate:
        """The rule's JSON alert skeleton, made on its first alert (rules of a replaced
        ruleset drop out when the table is full)."""
        key = (rule, source)
        template = self._templates.get(key)
        if template is None:
            if len(self._templates) >= 65536:
                self._templates.clear()
            template = self._templates[key] = AlertTemplate(
                priority=self.priority(rule),
                rule=rule.name,
                source=source,
                tags=rule.tags,
                hostname=self.hostname,
                iso8601=self.iso8601,
                options=self._options,
            )
        return template

    def alert(self, rule: CompiledRule, event: Any, source: str) -> Alert:
        priority = self.priority(rule)
        output, fields = (
            rule.output.render_with_fields(event) if rule.output is not None else ("", {})
        )
        time_ns = event.ts
        line = text_line(time_ns, priority, output, self.iso8601)
        return Alert(
            line,
            self.template(rule, source).document(time_ns, line, output, fields),
            self._origin(event) if source == SYSCALL else None,
        )

    def _origin(self, event: Any) -> dict[str, int] | None:
        """The event's process identity, for response actions (process:terminate)."""
        if self._identity is None:
            from engine.sources.syscall.catalog import process_identity

            self._identity = process_identity
        try:
            return self._identity(event)
        except AttributeError:  # an event without process state (a test's stand-in)
            return None


class Detector:
    """Evaluates events against the switch's current rulesets and queues their alerts."""

    def __init__(
        self,
        switch: RulesetSwitch,
        outputs: OutputQueue,
        formatter: AlertFormatter,
        all_events: bool = False,
        stats: RunStats | None = None,
    ) -> None:
        self.switch = switch
        self.outputs = outputs
        self.formatter = formatter
        self.all_events = all_events
        self.stats = stats or RunStats()
        self._lock = threading.Lock()  # webhook handlers run on several threads

    def _raise(self, rules: list[CompiledRule], event: Any, source: str) -> None:
        stats = self.stats
        for rule in rules:
            alert = self.formatter.alert(rule, event, source)
            stats.alerts_by_rule[rule.name] += 1
            stats.alerts_by_priority[self.formatter.priority(rule)] += 1
            if not self.outputs.put(alert):
                stats.dropped_alerts += 1

    def process(self, events: Iterable[Any], source: str) -> int:
        """Evaluate every event (enter events only with all_events); returns the count."""
        switch = self.switch
        skip_enter = source == SYSCALL and not self.all_events
        count = 0
        seen: Rulesets | None = None
        ruleset = None
        try:
            for event in events:
                count += 1
                if skip_enter and event.dir == ">":
                    continue
                # One read of switch.current per event: a swap lands between two events.
                current = switch.current
                if current is not seen:
                    seen, ruleset = current, current.by_source.get(source)
                if ruleset is None:
                    continue
                matched = ruleset.evaluate(event)
                if matched:
                    self._raise(matched, event, source)
        finally:  # a stop signal ends a replay early: what was processed still counts
            self.stats.events_by_source[source] += count
        return count

    def process_batch(self, events: list[Any], source: str) -> None:
        """Thread-safe entry point for webhook deliveries."""
        with self._lock:
            self.process(events, source)


@dataclass(frozen=True)
class RunRequest:
    """Everything `falconet run` needs, as plain values."""

    rules_files: Sequence[str | Path]
    source: str | None = None
    replay: str | None = None
    listen: str | None = None
    json_output: bool = False
    iso8601: bool = False
    all_events: bool = False
    selection: Selection = field(default_factory=Selection)
    outputs: Sequence[dict[str, Any]] = ()  # sink specs for engine.sinks.build_sink
    stdout: bool = True
    # falco.yaml's json_include_* switches
    json_options: JsonOptions = field(default_factory=JsonOptions)
    # falco.yaml's syscall_event_drops (syscall source)
    drops: DropsConfig = field(default_factory=DropsConfig)
    # live syscall capture: base_syscalls and the ring buffer size (None: the defaults)
    live: LiveOptions | None = None
    # a live input of a JSON source (Keycloak poller or webhook, Nomad event stream)
    connector: Connector | None = None
    # native plugins (Falco's `plugins:` entries and `load_plugins` names; docs/plugins.md)
    plugins: Sequence[PluginConfig] = ()
    load_plugins: Sequence[str] = ()
    plugins_dir: str = ""
    # where loads of rules files are kept between runs (None: not kept)
    rules_cache_dir: Path | None = None
    # webhook listener bounds (None: engine.sources.webhooks.WebhookLimits' defaults)
    webhook_limits: WebhookLimits | None = None
    # alerts queued per output sink
    queue_capacity: int | None = None


@contextlib.contextmanager
def native_plugins(request: RunRequest) -> Iterator[PluginSet | None]:
    """The request's plugins loaded and registered (sources, fields, versions) around a run;
    unloaded afterwards. Rules over plugin fields compile only inside this block."""
    if not request.load_plugins:
        yield None
        return
    from engine.sources.plugin_host import activated, load_plugins

    plugins = load_plugins(request.plugins, request.load_plugins, Path(request.plugins_dir))
    with activated(plugins):
        yield plugins


def _plugin_source(source: str) -> Any:
    """The loaded plugin providing `source`, if any."""
    from engine.sources.plugin_host import active_plugins

    plugins = active_plugins()
    return plugins.by_source(source) if plugins is not None else None


def check_run_options(min_priority: str, listen: str | None) -> None:
    """Option values a run would only reach after installing feeds or opening endpoints,
    checked first: a typo costs nothing and leaves nothing behind."""
    from engine.ruleset import PRIORITIES, RulesSelectionError, parse_priority

    if parse_priority(min_priority) is None:
        raise RulesSelectionError(
            f"--min-priority: unknown priority {min_priority!r}",
            hint="use one of: " + ", ".join(PRIORITIES),
        )
    if listen is not None:
        from engine.sources.errors import SourceError
        from engine.sources.webhooks import parse_listen

        try:
            parse_listen(listen)
        except SourceError as error:  # an option's value: a usage error
            raise RunUsageError(f"--listen: {error}", hint=error.hint) from error


def live_preflight() -> None:
    """The privileges live capture needs, checked before any other work of a live run
    (installing the default feed, opening web endpoints): raises the bpf requirement error."""
    from bpf.setup import check_privileges

    check_privileges()


def choose_source(requested: str | None, rule_sources: Iterable[str]) -> str:
    """The source asked for; else the only source the rules are written for; else syscall."""
    if requested:
        from engine.fields import known_sources

        if requested not in known_sources():
            raise RunUsageError(
                f"unknown source {requested!r}",
                hint="use one of: " + ", ".join(sorted(known_sources())),
            )
        return requested
    sources = sorted(set(rule_sources))
    return sources[0] if len(sources) == 1 else SYSCALL


def _build_sinks(request: RunRequest) -> list[Sink]:
    sinks: list[Sink] = [StdoutSink(request.json_output)] if request.stdout else []
    for spec in request.outputs:
        if spec.get("type") == "http":
            sinks.append(build_sink(spec))  # always Falco's JSON alert: what falcosidekick reads
        else:
            sinks.append(build_sink({"json_output": request.json_output, **spec}))
    return sinks


def _replay(
    detector: Detector,
    source: str,
    path: str,
    swappable: bool,
    monitor: DropsMonitor | None = None,
    tracker: StateTracker | None = None,
) -> None:
    """Evaluate every event of a capture or JSON event file/directory. With rules that cannot
    change during the replay, only the event types they and the state tracker need are
    decoded; with `swappable` rules every event is, since a new ruleset may need any type."""
    stats = detector.stats
    if source == SYSCALL:
        from engine.sources.syscall.replay import open_replay

        with open_replay(path, tracker) as replay:
            rule_types = None if swappable else detector.switch.current.event_types(SYSCALL)
            wanted = replay.needed_events(rule_types)
            events: Iterable[Any] = replay.events(wanted)
            if monitor is not None and monitor.config.simulate_drops:
                # A capture file records no drop counters (Falco reads zeros from one): only
                # simulated drops can be found, so only then is each event's time looked at.
                events = monitored(events, monitor, lambda: CaptureCounts(replay.stats.events))
            processed = detector.process(events, source)
            read = replay.stats
            # Events the reader skipped undecoded (no rule and no state needs them) were read.
            stats.events_by_source[source] += max(0, read.events - processed)
            stats.skipped_input += read.unknown_events
        return
    owner = _plugin_source(source)
    if owner is not None:
        from engine.sources.plugin_host import active_plugins
        from engine.sources.plugin_host.stream import replay

        detector.process(replay(owner, active_plugins(), path), source)
        return
    from engine.sources.readers import ReadStats, read_events

    read_stats = ReadStats()
    detector.process(read_events(source, path, read_stats), source)
    stats.skipped_input += read_stats.skipped


class Stopped(Exception):
    """SIGTERM or SIGINT arrived during a replay."""


@dataclass
class _Signals:
    """SIGTERM/SIGINT stop the run (a replay between two events, through `Stopped`); SIGUSR1
    reopens file outputs (logrotate)."""

    interrupt: bool  # raise Stopped in the main thread (replay) rather than only set `stop`
    stop: threading.Event = field(default_factory=threading.Event)
    previous: dict[int, Any] = field(default_factory=dict)

    def _on_stop(self, *_: object) -> None:
        self.stop.set()
        if self.interrupt:
            raise Stopped

    def install(self, outputs: OutputQueue) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        handlers: dict[int, Callable[..., None]] = {
            signal.SIGTERM: self._on_stop,
            signal.SIGINT: self._on_stop,
            signal.SIGUSR1: lambda *_: outputs.reopen(),
        }
        for number, handler in handlers.items():
            self.previous[number] = signal.signal(number, handler)

    def restore(self) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)


def run(
    request: RunRequest,
    switch: RulesetSwitch | None = None,
    extra_sinks: Sequence[Sink] = (),
    on_started: Callable[[Detector, OutputQueue], None] | None = None,
) -> RunStats:
    """Run detection: replay the input and return, or serve the webhook until signalled.

    `switch` lets a caller (the follower) swap rulesets while the run goes on; without it the
    request's rules files are loaded here. `extra_sinks` receive alerts besides the request's
    outputs. `on_started` gets the detector and output queue before the first event (the
    daemon's metrics and internal alerts)."""
    swappable = switch is not None
    if switch is None:
        loaded, rulesets = load_rulesets(
            request.rules_files, request.selection, cache_dir=request.rules_cache_dir
        )
        switch = RulesetSwitch(rulesets)
        rule_sources: Iterable[str] = {rule.source for rule in loaded.rules}
    else:
        rule_sources = switch.current.by_source
    source = choose_source(request.source, rule_sources)
    _check_mode(request, source)
    if source not in switch.current.by_source:
        log.warning("no enabled rule is for the %s source: no alert can be raised", source)
    replay = bool(request.replay)
    outputs = OutputQueue(
        [*_build_sinks(request), *extra_sinks],
        capacity=request.queue_capacity
        or (REPLAY_QUEUE_CAPACITY if replay else LIVE_QUEUE_CAPACITY),
        block=replay,  # a replay waits for room (backpressure); a live run drops, counted
    )
    formatter = AlertFormatter(request.iso8601, options=request.json_options)
    detector = Detector(switch, outputs, formatter, request.all_events)
    monitor = None
    tracker = None
    if source == SYSCALL:
        from engine.sources.syscall.state import StateTracker
        from engine.state_pressure import StatePressure

        monitor = DropsMonitor(request.drops, emit=outputs.put, ebpf=not request.replay)
        tracker = StateTracker()
        tracker.on_eviction = StatePressure(outputs.put).note
        detector.stats.state = tracker.counters
    if on_started is not None:
        on_started(detector, outputs)
    signals = _Signals(interrupt=bool(request.replay))
    signals.install(outputs)
    started = time.perf_counter()
    try:
        if request.replay:
            detector.stats.source_open = True
            _replay(detector, source, request.replay, swappable, monitor, tracker)
        elif request.connector is not None:
            _connect(request.connector, detector, outputs, formatter.hostname, signals.stop)
        elif source == SYSCALL:
            assert monitor is not None
            _live(detector, signals.stop, monitor, _live_options(request), tracker)
        elif _plugin_source(source) is not None:
            _plugin_stream(detector, source, signals.stop)
        else:
            _serve(request, source, detector, signals.stop)
    except Stopped:
        log.warning("stopped by a signal: the alerts raised so far are delivered")
    except DropsExitError as error:
        error.run_stats = detector.stats  # the caller still prints the summary, as Falco does
        raise
    finally:
        detector.stats.seconds = time.perf_counter() - started
        if monitor is not None:
            detector.stats.syscall_event_drops = monitor.as_json()
        outputs.close()
        signals.restore()
        detector.stats.dropped_alerts = max(detector.stats.dropped_alerts, outputs.stats.overflow)
        detector.stats.outputs = {
            name: sink.as_json() for name, sink in outputs.sink_stats().items()
        }
    return detector.stats


def _check_mode(request: RunRequest, source: str) -> None:
    if request.replay and request.listen:
        raise RunUsageError("--replay and --listen exclude each other", hint="give one of them")
    if request.replay:
        return
    if request.connector is not None:
        if request.connector.source != source:
            raise RunUsageError(
                f"a {request.connector.source} input cannot feed the {source} source",
                hint=f"give --source {request.connector.source}",
            )
        return
    if source == SYSCALL:
        return  # live eBPF capture (bpf/); its requirements are checked when it starts
    if _plugin_source(source) is not None:
        if request.listen:
            raise RunUsageError(
                f"the {source} source comes from a plugin: it reads what its open_params say",
                hint="drop --listen; set the plugin's open_params in falconet.yaml",
            )
        return
    if source not in WEBHOOK_SOURCES:
        raise RunUsageError(
            f"the {source} source reads files only",
            hint=f"give --replay PATH (webhook endpoints: {', '.join(WEBHOOK_SOURCES)})",
        )
    if not request.listen:
        raise RunUsageError(
            f"the {source} source needs --replay PATH or --listen ADDR",
            hint="e.g. --listen 127.0.0.1:9765",
        )


def _connect(
    connector: Connector,
    detector: Detector,
    outputs: OutputQueue,
    hostname: str,
    stop: threading.Event,
) -> None:
    """A live JSON input until `stop`; input it had to drop becomes an internal alert."""
    from engine.sinks import internal_alert

    source = connector.source
    detector.stats.source_open = True  # the connector reconnects on its own from here

    def deliver(events: list[Any]) -> None:
        detector.process_batch(events, source)

    def alert(message: str, fields: dict[str, Any]) -> None:
        detector.stats.skipped_input += 1
        rule = f"Falco internal: {source} input dropped"
        outputs.put(internal_alert(rule, message, Priority.ERROR, fields, hostname))

    connector.run(deliver, stop, alert)


def _plugin_stream(detector: Detector, source: str, stop: threading.Event) -> None:
    """The sourcing plugin's events until EOF or SIGTERM/SIGINT."""
    from engine.sources.plugin_host import active_plugins
    from engine.sources.plugin_host.stream import PluginStream

    plugins = active_plugins()
    assert plugins is not None
    owner = plugins.by_source(source)
    with PluginStream(owner, plugins, stop) as stream:
        detector.stats.source_open = True
        detector.process(stream.events(), source)
    log.info("plugin %s: %s", owner.name, stream.stats)


def _live_options(request: RunRequest) -> LiveOptions:
    from bpf.options import LiveOptions as DefaultOptions

    return request.live or DefaultOptions()


def _live(
    detector: Detector,
    stop: threading.Event,
    monitor: DropsMonitor,
    options: LiveOptions,
    tracker: StateTracker | None = None,
) -> None:
    """Live syscalls from the eBPF probe until `stop`. The kernel's interesting-syscall map
    follows the switch: a swapped ruleset rewrites it in place before its first event. The
    kernel's drop counters go to `monitor` once a second (Falco's syscall_event_drops: the
    rate-limited internal alert, log line or exit); the run's stats get the capture counters."""
    from bpf.capture import LiveSource

    switch = detector.switch
    current = switch.current
    live = LiveSource(
        current.event_types(SYSCALL),
        tracker=tracker,
        base=options.base,
        ringbuf_pages=options.ringbuf_pages,
        drop_monitor=monitor,
    )

    def capture_now() -> dict[str, Any]:
        return _capture_figures(live.stats())

    def events() -> Iterator[Any]:
        nonlocal current
        for event in live.events(stop):
            if switch.current is not current:
                current = switch.current
                live.update_interesting(current.event_types(SYSCALL))
            yield event

    with live:
        detector.stats.source_open = True  # the probe is attached
        detector.stats.capture_now = capture_now
        try:
            detector.process(events(), SYSCALL)
        finally:
            detector.stats.capture_now = None
            # Detached first, then counted: the summary's figures add up.
            detector.stats.capture = _capture_figures(live.stop_capture())
            log.debug("live capture: %s", live.stats().as_json())


def _capture_figures(stats: Any) -> dict[str, Any]:
    kernel = stats.kernel
    return capture_stats(kernel.total_counted, stats.delivered, kernel.dropped, stats.left_in_ring)


def _serve(
    request: RunRequest,
    source: str,
    detector: Detector,
    stop: threading.Event,
) -> None:

    from engine.sources.webhooks import github_webhook, k8s_audit_webhook

    assert request.listen is not None

    def deliver(events: list[Any]) -> None:
        detector.process_batch(events, source)

    if source == "github":
        secret = os.environ.get(GITHUB_SECRET_ENV, "")
        if not secret:
            raise RunUsageError(
                "the github webhook needs a shared secret",
                hint=f"set {GITHUB_SECRET_ENV} to the webhook's secret",
            )
        server = github_webhook(request.listen, deliver, secret, limits=request.webhook_limits)
    else:
        server = k8s_audit_webhook(request.listen, deliver, limits=request.webhook_limits)
    reporter = WebhookDropReporter(detector)
    with server:  # the server logs the URL it listens on
        detector.stats.source_open = True
        try:
            while not stop.wait(0.5):
                detector.stats.webhook = server.stats.as_json()
                reporter.check(detector.stats.webhook)
        finally:
            detector.stats.webhook = server.stats.as_json()


# Clients dropped by the webhook's limits for their pace or size (idle keep-alive closes are
# routine, not reported).
_REPORTED_DROPS = ("slow", "headers", "busy", "buffer")


class WebhookDropReporter:
    """A rate-limited internal alert when the webhook listener drops clients at its limits."""

    def __init__(self, detector: Detector, interval: float = 10.0) -> None:
        self.detector, self.interval = detector, interval
        self._reported = 0
        self._last = -interval

    def check(self, stats: dict[str, Any], now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        dropped = {k: v for k, v in stats["dropped"].items() if k in _REPORTED_DROPS}
        total = sum(dropped.values())
        if total <= self._reported or now - self._last < self.interval:
            return False
        new, self._reported, self._last = total - self._reported, total, now
        reasons = ", ".join(f"{reason}: {count}" for reason, count in dropped.items())
        self.detector.outputs.put(
            internal_alert(
                "Falco internal: webhook clients dropped",
                f"Falco internal: webhook clients dropped at the listener's limits, {new} "
                f"since the last report (total by reason: {reasons})",
                Priority.WARNING,
                {"n_drops": new, "n_drops_total": total, "n_drops_by_reason": dropped},
                self.detector.formatter.hostname,
            )
        )
        return True
