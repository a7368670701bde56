"""`falconet run` as a daemon: the run loop (engine.runner.run) composed with what keeps it
current and observable while it runs.

- `Reloader` compiles a new ruleset off the event path and swaps it through the RulesetSwitch
  (one assignment, so every event is evaluated once, against one complete ruleset). An invalid
  ruleset never replaces a valid one: it is logged, counted and raised as an internal alert.
- `RulesFileWatcher` wakes on inotify events of the rules files' directories (polling their mtimes
  where inotify is unavailable), debounced: a change must be stable for 100 ms before it
  reloads, so an editor's write-then-rename is one reload.
- SIGHUP forces a reload; the feed follower's updates reload the same way.
- `MetricsPump` copies the run loop's counters (events by source, alerts, queue depth) into the
  Prometheus metrics served by engine.web.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from engine.errors import EngineError
from engine.output import Priority, alert_hostname
from engine.ruleset import RulesetSwitch
from engine.runner import Detector, RunRequest, RunStats, load_rulesets, run
from engine.sinks import Alert, OutputQueue, Sink, internal_alert

if TYPE_CHECKING:  # imported where used: a replay never needs inotify (ctypes) nor Prometheus
    from engine.inotify import DirectoryWatch
    from engine.metrics import Metrics

log = logging.getLogger(__name__)

WATCH_PERIOD = 0.1  # seconds between two mtime polls; also the debounce
PUMP_PERIOD = 0.5


def rules_digest(files: Sequence[str | Path]) -> str:
    """sha256 over the rules files' paths and contents, in load order."""
    digest = hashlib.sha256()
    for path in _expand(files):
        digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _expand(files: Sequence[str | Path]) -> list[Path]:
    paths: list[Path] = []
    for item in files:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        elif path.exists():
            paths.append(path)
    return paths


@dataclass
class Reloader:
    """Recompiles and swaps rulesets; the run loop never waits for it."""

    request: RunRequest
    metrics: Metrics
    switch: RulesetSwitch | None = None
    files: list[str] = field(default_factory=list)
    outputs: OutputQueue | None = None  # set once the run loop has built it
    enabled_rules: int = 0
    generation: int = 0
    document: dict[str, Any] = field(default_factory=dict)  # /rules: the files as loaded
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def load_initial(self) -> RulesetSwitch:
        """The first ruleset: errors here are fatal (the run refuses to start)."""
        self.files = [str(f) for f in self.request.rules_files]
        started = time.perf_counter()
        _, rulesets = load_rulesets(
            self.files, self.request.selection, cache_dir=self.request.rules_cache_dir
        )
        self.switch = RulesetSwitch(rulesets)
        self._loaded(rulesets, time.perf_counter() - started)
        return self.switch

    def reload(self, files: Sequence[str | Path] | None = None) -> bool:
        """Compile `files` (default: the current ones) and swap; keep the running ruleset and
        raise an internal alert when they do not load. True when swapped."""
        assert self.switch is not None, "load_initial() first"
        with self._lock:  # a watcher, SIGHUP and the follower may ask at once
            wanted = [str(f) for f in files] if files is not None else self.files
            started = time.perf_counter()
            try:
                # A candidate may be hostile (a feed, an edited file): compiled first by a
                # resource-limited child, so it cannot take this process's memory or time.
                _, rulesets = load_rulesets(wanted, self.request.selection, isolated=True)
            except EngineError as error:
                self._refused(wanted, error)
                return False
            self.switch.swap(rulesets)
            self.files = wanted
            self._loaded(rulesets, time.perf_counter() - started)
            log.info("ruleset %d active (%d rules)", self.generation, self.enabled_rules)
            return True

    def _loaded(self, rulesets: Any, seconds: float) -> None:
        self.enabled_rules = sum(len(r) for r in rulesets.by_source.values())
        self.generation += 1
        self.metrics.ruleset_loaded(rules_digest(self.files), self.enabled_rules, seconds)
        self.metrics.falco.update(rules_files=[str(p) for p in _expand(self.files)])
        from engine.web import rules_document

        self.document = rules_document(_expand(self.files), self.enabled_rules)

    def refuse_update(self, ref: str, why: str) -> None:
        """The follower refused an update (signature, requirements, compile): say so."""
        self._alert(f"update of {ref} refused, running rules kept ({why})", {"ref": ref})

    def _refused(self, files: list[str], error: EngineError) -> None:
        self.metrics.reload_failed()
        log.error("new rules not loaded, keeping the running ones: %s", error)
        self._alert(f"rules reload failed, running rules kept ({error})", {"rules_files": files})

    def _alert(self, why: str, fields: dict[str, Any]) -> None:
        if self.outputs is None:
            return
        self.outputs.put(
            internal_alert(
                "Falco internal: rules reload failed",
                f"Falco internal: {why}",
                Priority.ERROR,
                {**fields, "error": why},
                alert_hostname(),
            )
        )


class RulesFileWatcher:
    """Calls `on_change()` once the watched files have changed and then stayed the same for one
    period (debounce: an editor's write-then-rename is one reload). inotify on the files'
    directories wakes it up; without inotify it polls the mtimes every period."""

    def __init__(
        self, files: Callable[[], Sequence[str | Path]], on_change: Callable[[], Any]
    ) -> None:
        self._files = files
        self._on_change = on_change
        self._watch: DirectoryWatch | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _snapshot(self) -> dict[str, int]:
        stamps: dict[str, int] = {}
        for path in _expand(self._files()):
            try:
                stat = path.stat()
                stamps[str(path)] = stat.st_mtime_ns ^ stat.st_ino
            except OSError:  # removed mid-rename: the next look sees the new file
                stamps[str(path)] = -1
        return stamps

    def _directories(self) -> list[Path]:
        paths = [Path(p) for p in self._files()]
        return [p if p.is_dir() else p.parent for p in paths if p.exists()]

    def _waiter(self) -> Callable[[float], object]:
        """inotify's wait on the files' directories, else a sleep (then polling)."""
        from engine.inotify import InotifyUnavailable

        if self._watch is not None:
            self._watch.close()
            self._watch = None
        try:
            from engine.inotify import DirectoryWatch

            self._watch = DirectoryWatch(self._directories())
        except InotifyUnavailable as error:
            log.info("watching the rules files by polling: %s", error)
            return self._stop.wait
        return self._watch.wait

    def _loop(self, seen: dict[str, int], wait: Callable[[float], object]) -> None:
        pending: dict[str, int] | None = None
        while not self._stop.is_set():
            # Blocks until a change (inotify), or one period while a change settles.
            wait(WATCH_PERIOD if pending is not None else WATCH_PERIOD * 5)
            if self._stop.is_set():
                return
            now = self._snapshot()
            if now == seen:
                pending = None
            elif now == pending:  # changed, and stable for one period
                seen, pending = now, None
                self._on_change()
                wait = self._waiter()  # a follow update may bring new directories
            else:
                pending = now
                self._stop.wait(WATCH_PERIOD)

    def start(self) -> RulesFileWatcher:
        # The first snapshot and the inotify watch are taken before returning: a change made
        # once start() has returned is never mistaken for the starting state.
        self._thread = threading.Thread(
            target=self._loop,
            args=(self._snapshot(), self._waiter()),
            name="rules-watcher",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._watch is not None:
            self._watch.close()


class AlertMetricsSink(Sink):
    """Counts alerts by rule and priority, from the OutputQueue's worker (off the event path)."""

    kind: ClassVar[str] = "metrics"

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(True)
        self.metrics = metrics

    def write(self, alert: Alert) -> None:
        document = alert.document
        if document.get("source") not in ("internal", "response"):
            self.metrics.alert(str(document.get("rule")), str(document.get("priority")))
            self.metrics.falco.rule_matched(
                str(document.get("rule")),
                str(document.get("priority")),
                str(document.get("source")),
                [str(tag) for tag in document.get("tags") or ()],
            )


class MetricsPump:
    """Copies the detector's counters and the queue's depth into the metrics, off the event
    path (the run loop stays free of Prometheus calls)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.detector: Detector | None = None
        self.outputs: OutputQueue | None = None
        self._events: dict[str, int] = {}
        self._skipped: dict[str, int] = {}
        self._kernel_dropped: dict[str, int] = {}
        self._evicted: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-pump", daemon=True)

    def attach(self, detector: Detector, outputs: OutputQueue) -> None:
        self.detector, self.outputs = detector, outputs

    def source_open(self) -> bool:
        """/healthz: ok once the run's input is open (the probe attached, a listener up)."""
        return self.detector is not None and self.detector.stats.source_open

    def pump(self) -> None:
        if self.detector is None or self.outputs is None:
            return
        stats = self.detector.stats
        _add_deltas(dict(stats.events_by_source), self._events, self.metrics.event)
        # Records a source could not decode are its drops (the run's `skipped input`).
        source = next(iter(stats.events_by_source), "unknown")
        _add_deltas({source: stats.skipped_input}, self._skipped, self.metrics.dropped)
        # A live capture's kernel drops (failed ring-buffer reservations) are drops too.
        capture = stats.capture_now() if stats.capture_now is not None else stats.capture
        if capture is not None:
            _add_deltas({"syscall": capture["dropped"]}, self._kernel_dropped, self.metrics.dropped)
        if stats.state is not None:
            evicted = {"threads": stats.state.threads_evicted, "fds": stats.state.fds_evicted}
            _add_deltas(evicted, self._evicted, self.metrics.state_evicted)
        self.metrics.output_queue(self.outputs.depth, self.outputs.stats.overflow)
        self.metrics.output_sinks(
            {name: sink.as_json() for name, sink in self.outputs.sink_stats().items()}
        )
        if stats.webhook is not None:
            self.metrics.webhook_dropped(stats.webhook["dropped"])
        self._pump_falco(stats, capture)

    def _pump_falco(self, stats: Any, capture: dict[str, Any] | None) -> None:
        """Falco's families (engine.falco_metrics) from the same snapshot."""
        assert self.outputs is not None
        drops = dict(self._skipped)
        if capture is not None:
            drops["syscall"] = drops.get("syscall", 0) + int(capture.get("dropped", 0))
        state = stats.state
        threads = (
            0
            if state is None
            else max(0, state.threads_added - state.threads_removed - state.threads_evicted)
        )
        # Falco's engine names: the eBPF probe, a capture file, or a (built-in) plugin source.
        engines = {
            source: ("bpf" if capture is not None else "savefile")
            if source == "syscall"
            else "source_plugin"
            for source in stats.events_by_source
        }
        self.metrics.falco.update(
            engines=engines,
            events=dict(stats.events_by_source),
            drops=drops,
            outputs_dropped=self.outputs.stats.overflow,
            threads=threads,
        )

    def _loop(self) -> None:
        while not self._stop.wait(PUMP_PERIOD):
            self.pump()

    def start(self) -> MetricsPump:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.pump()


def _add_deltas(now: dict[str, int], seen: dict[str, int], add: Callable[[str, int], None]) -> None:
    for key, count in now.items():
        if count > seen.get(key, 0):
            add(key, count - seen.get(key, 0))
            seen[key] = count


@dataclass
class DaemonOptions:
    """What `falconet run` adds to a run: watching, web endpoints, feeds, response."""

    watch_rules: bool = True
    web: tuple[str, int] | None = None
    web_required: bool = True  # False for the default address: a busy port is only a warning
    follow: Callable[[Reloader, Metrics], Any] | None = None  # returns an object with stop()
    response_rules: str | None = None
    extra_sinks: Sequence[Sink] = ()
    web_extra: Callable[[Any, str], bool] | None = None  # more routes (engine.web ExtraRoutes)


def run_daemon(request: RunRequest, options: DaemonOptions) -> RunStats:
    """Run detection with hot reloads, web endpoints and (optionally) the feed follower and the
    response engine; return when run() returns (end of replay, SIGTERM/SIGINT)."""
    from engine.metrics import Metrics

    metrics = Metrics()
    reloader = Reloader(request, metrics)
    switch = reloader.load_initial()
    pump = MetricsPump(metrics)
    sinks: list[Sink] = [*options.extra_sinks, AlertMetricsSink(metrics)]
    response = _response_sink(options.response_rules, metrics) if options.response_rules else None
    if response is not None:
        sinks.append(response)

    def started(detector: Detector, outputs: OutputQueue) -> None:
        reloader.outputs = outputs
        pump.attach(detector, outputs)
        if response is not None:
            response.outputs = outputs

    stoppers: list[Any] = [pump.start()]
    try:
        if options.web:
            stoppers.extend(
                _web(
                    options.web,
                    options.web_required,
                    metrics,
                    reloader,
                    options.web_extra,
                    healthy=pump.source_open,
                )
            )
        if options.watch_rules:
            watcher = RulesFileWatcher(lambda: reloader.files, reloader.reload)
            stoppers.append(watcher.start())
        if options.watch_rules and response is not None:
            paths = [response.path]
            stoppers.append(RulesFileWatcher(lambda: paths, response.reload).start())
        if options.follow:
            stoppers.append(options.follow(reloader, metrics))
        previous_hup = _on_sighup(_reload_all(reloader, response))
        try:
            return run(request, switch=switch, extra_sinks=sinks, on_started=started)
        finally:
            _restore_sighup(previous_hup)
    finally:
        for stopper in reversed(stoppers):
            stopper.stop()


def _reload_all(reloader: Reloader, response: Any) -> Callable[[], None]:
    def reload() -> None:
        reloader.reload()
        if response is not None:
            response.reload()

    return reload


def _on_sighup(reload: Callable[[], None]) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None
    # The handler only starts a thread: compiling in a signal handler would stall the event loop.
    return signal.signal(
        signal.SIGHUP, lambda *_: threading.Thread(target=reload, daemon=True).start()
    )


def _restore_sighup(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGHUP, previous)


def _web(
    address: tuple[str, int],
    required: bool,
    metrics: Metrics,
    reloader: Reloader,
    extra: Callable[[Any, str], bool] | None = None,
    healthy: Callable[[], bool] | None = None,
) -> list[Any]:
    """The web server, started; none when the default address is busy (another falconet or
    Falco's own webserver): detection matters more than its endpoints."""
    from engine.web import WebServer, WebServerError

    try:
        server = WebServer(
            address[0],
            address[1],
            metrics,
            rules=lambda: reloader.document,
            healthy=healthy,
            extra=extra,
        )
    except WebServerError as error:
        if required:
            raise
        log.warning("no web endpoints: %s (choose one with --web HOST:PORT)", error)
        return []
    return [server.start()]


def _response_sink(path: str, metrics: Metrics) -> Any:
    from engine.daemon_response import DaemonResponseSink

    return DaemonResponseSink(path, metrics)
