"""Falco's `syscall_event_drops`: notice that the syscall source lost events and act on it.

Falco's rule (userspace/falco/event_drops.cpp), kept here:
- At most once per second, the capture counters are compared with the last check: the events
  the driver saw (`n_evts`, drops included) and the events it dropped (`n_drops`).
- With `simulate_drops`, every check adds one drop and the threshold is 0 (testing aid).
- When `n_drops / n_evts > threshold` (a fraction in [0, 1]) it is one *occurrence*; when the
  token bucket (`rate` tokens per second, `max_burst` tokens at most, full at the start) has a
  token, the *actions* are taken: `ignore`, `log` (a stderr line), `alert` (the internal alert
  "Falco internal: syscall event drop", priority Debug, source `internal`, through the output
  queue), `exit` (the run stops with status 1).
- The end-of-run summary reports the occurrences and the times actions were taken
  (`as_json()`; engine.runner.RunStats prints Falco's lines).

Replays check on event time as Falco does (one check per second of capture time); live capture
checks once per second of wall time (LiveSource calls `check` with the kernel's per-CPU
counters). Where Falco logs the `log` action at debug level (invisible with its default
log_level), falconet logs it as a warning: a drop is never silent.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.errors import EngineError
from engine.output import Priority, alert_hostname
from engine.response.ratelimit import RateLimit, TokenBucket
from engine.sinks import Alert, internal_alert

log = logging.getLogger(__name__)

DROP_RULE = "Falco internal: syscall event drop"
ACTIONS = ("ignore", "log", "alert", "exit")
ONE_SECOND_NS = 1_000_000_000
CONFIG_KEY = "syscall_event_drops"
KEYS = ("threshold", "actions", "rate", "max_burst", "simulate_drops")


class DropsConfigError(EngineError):
    """An invalid `syscall_event_drops` configuration (Falco refuses to start: status 1)."""

    exit_status = "error"


class DropsExitError(EngineError):
    """The `exit` action: the run stops (Falco exits 1). `run_stats` is set by the run loop, so
    the caller can still print the end-of-run summary."""

    exit_status = "error"
    run_stats: Any = None


class DropCounts(Protocol):
    """Capture counters since the start: per CPU where the source knows CPUs."""

    @property
    def total_counted(self) -> int: ...  # events the driver saw (drops included)

    @property
    def total_dropped(self) -> int: ...

    @property
    def dropped(self) -> tuple[int, ...]: ...


@dataclass(frozen=True)
class CaptureCounts:
    """Counters of a source without CPUs (a replay): events read, drops recorded."""

    total_counted: int = 0
    total_dropped: int = 0
    dropped: tuple[int, ...] = ()


@dataclass(frozen=True)
class DropsConfig:
    """falco.yaml's `syscall_event_drops` (defaults: falco.yaml's)."""

    threshold: float = 0.1
    actions: tuple[str, ...] = ("log", "alert")
    rate: float = 0.03333
    max_burst: float = 1.0
    simulate_drops: bool = False

    @classmethod
    def parse(
        cls, values: Mapping[str, Any], origins: str | Mapping[str, str] = CONFIG_KEY
    ) -> DropsConfig:
        """Check values as Falco does (its messages, so its users recognise them). `origins`
        says where the values came from (one place, or one per key), named in the error."""

        def where(key: str) -> str:
            return origins if isinstance(origins, str) else origins.get(key, CONFIG_KEY)

        unknown = sorted(set(values) - set(KEYS))
        if unknown:
            raise DropsConfigError(
                f"{where(unknown[0])}: unknown key '{CONFIG_KEY}.{unknown[0]}'",
                hint="valid keys: " + ", ".join(KEYS),
            )
        defaults = cls()
        threshold = _number(values, "threshold", defaults.threshold, where("threshold"))
        if not 0 <= threshold <= 1:
            raise DropsConfigError(
                f"{where('threshold')}: syscall event drops threshold must be a double in the "
                f"range [0, 1] (got {threshold:g})",
                hint="e.g. 0.1: act when more than 10% of the events of a second were dropped",
            )
        rate = _number(values, "rate", defaults.rate, where("rate"))
        max_burst = _number(values, "max_burst", defaults.max_burst, where("max_burst"))
        # Falco accepts these, and then never acts: refused, as a drop must not go unreported.
        for key, bad in (("rate", rate <= 0), ("max_burst", max_burst < 1)):
            if bad:
                raise DropsConfigError(
                    f"{where(key)}: syscall event drops rate must be > 0 and max_burst >= 1 "
                    f"(got rate {rate:g}, max_burst {max_burst:g})",
                    hint="Falco's defaults: rate 0.03333 (one action per 30 s), max_burst 1",
                )
        simulate = values.get("simulate_drops", defaults.simulate_drops)
        if not isinstance(simulate, bool):
            raise DropsConfigError(
                f"{where('simulate_drops')}: {CONFIG_KEY}.simulate_drops must be true or false",
                hint="simulate_drops: true fakes one drop per second (testing)",
            )
        actions = _actions(values.get("actions", list(defaults.actions)), where("actions"))
        return cls(threshold, actions, rate, max_burst, simulate)


def _number(values: Mapping[str, Any], key: str, default: float, origin: str) -> float:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise DropsConfigError(
            f"{origin}: {CONFIG_KEY}.{key} must be a number, got {value!r}",
            hint="see docs/syscall-event-drops.md",
        )
    return float(value)


def _actions(raw: Any, origin: str) -> tuple[str, ...]:
    """Falco's reading: in order, `log`/`alert` after `ignore` are refused, unknown names too;
    an empty list means `ignore`."""
    if raw is None:
        raw = []
    if not isinstance(raw, list | tuple):
        raise DropsConfigError(
            f"{origin}: {CONFIG_KEY}.actions must be a list", hint="e.g. actions: [log, alert]"
        )
    actions: list[str] = []
    for action in raw:
        if action not in ACTIONS:
            raise DropsConfigError(
                f"{origin}: available actions for syscall event drops are "
                f'"ignore", "log", "alert", and "exit" (got {action!r})',
                hint="e.g. actions: [log, alert]",
            )
        if action in ("log", "alert") and "ignore" in actions:
            raise DropsConfigError(
                f'{origin}: syscall event drop action "{action}" does not make sense with '
                'the "ignore" action',
                hint='remove "ignore", or keep it alone',
            )
        if action not in actions:
            actions.append(action)
    return tuple(actions) or ("ignore",)


@dataclass(frozen=True)
class DropDelta:
    """One check's view: what changed since the previous check."""

    events: int
    drops: int
    dropped_per_cpu: tuple[int, ...]


@dataclass
class DropsMonitor:
    """Checks the counters, counts occurrences, takes the configured actions.

    `emit` receives the internal alert (the run's output queue); without it, `check` returns
    the alert document to its caller instead (LiveSource used on its own)."""

    config: DropsConfig = field(default_factory=DropsConfig)
    emit: Callable[[Alert], Any] | None = None
    ebpf: bool = True
    hostname: str | None = None
    occurrences: int = field(default=0, init=False)
    actions_taken: int = field(default=0, init=False)
    suppressed: int = field(default=0, init=False)  # occurrences the bucket had no token for
    _last: tuple[int, int, tuple[int, ...]] | None = field(default=None, init=False)
    _next_check_ns: int = field(default=0, init=False)
    _bucket: TokenBucket | None = field(default=None, init=False)
    _now: float = field(default=0.0, init=False)

    @property
    def next_check_ns(self) -> int:
        """The event time after which `observe` checks again (0 before the first event)."""
        return self._next_check_ns

    # -- the two ways in ------------------------------------------------------------------------
    def observe(self, ts_ns: int, counts: Callable[[], DropCounts]) -> None:
        """Falco's per-event hook (replays): one check per second of event time. Raises
        DropsExitError for the `exit` action."""
        if self._next_check_ns == 0:
            self._next_check_ns = ts_ns + ONE_SECOND_NS
            self._last = _totals(counts())  # Falco reads the stats once at start
        elif ts_ns > self._next_check_ns:
            self._next_check_ns = ts_ns + ONE_SECOND_NS
            self.assess(counts(), ts_ns)

    def check(self, counters: DropCounts, now: float | None = None) -> dict[str, Any] | None:
        """The once-a-second hook (live capture; `now` in seconds, default the wall clock).
        Returns the alert document when the `alert` action fired and no `emit` is set."""
        now_ns = int((time.time() if now is None else now) * ONE_SECOND_NS)
        alert = self.assess(counters, now_ns)
        return alert.document if alert is not None and self.emit is None else None

    # -- Falco's rule ---------------------------------------------------------------------------
    def assess(self, counters: DropCounts, now_ns: int) -> Alert | None:
        """Compare with the previous counters; count an occurrence and take the actions when
        the drop fraction passes the threshold and the bucket allows."""
        delta = self._delta(counters)
        drops = delta.drops
        threshold = self.config.threshold
        if self.config.simulate_drops:
            log.info("Simulating syscall event drop")
            drops, threshold = drops + 1, 0.0
            delta = DropDelta(delta.events, drops, delta.dropped_per_cpu)
        # Falco divides by n_evts, which includes the drops; zero events with a drop is 100%.
        if drops <= 0 or drops / max(delta.events, drops) <= threshold:
            return None
        self.occurrences += 1
        if not self._take_token(now_ns):
            self.suppressed += 1
            log.debug("syscall event drop but token bucket depleted, skipping actions")
            return None
        self.actions_taken += 1
        return self._act(delta, now_ns)

    def _delta(self, counters: DropCounts) -> DropDelta:
        now = _totals(counters)
        events, drops, per_cpu = self._last or (0, 0, ())
        self._last = now
        per_cpu = per_cpu or (0,) * len(now[2])
        return DropDelta(
            now[0] - events,
            now[1] - drops,
            tuple(n - b for n, b in zip(now[2], per_cpu, strict=True)),
        )

    def _take_token(self, now_ns: int) -> bool:
        self._now = now_ns / ONE_SECOND_NS
        if self._bucket is None:  # full at the first occurrence, as Falco's bucket at start
            burst = self.config.max_burst
            limit = RateLimit(count=int(burst), per=burst / self.config.rate)
            self._bucket = TokenBucket(limit, clock=lambda: self._now)
        return self._bucket.take()

    def _act(self, delta: DropDelta, now_ns: int) -> Alert | None:
        message = f"{DROP_RULE}. {delta.drops} system calls dropped in last second."
        alert = None
        for action in self.config.actions:
            if action == "log":
                log.warning("%s", message)
            elif action == "alert":
                alert = self._alert(message, delta, now_ns)
                if self.emit is not None:
                    self.emit(alert)
            elif action == "exit":  # Falco's two critical log lines, as the error's one line
                raise DropsExitError(
                    f"{message} Exiting.",
                    hint="syscall_event_drops.actions has `exit`: raise the threshold, give "
                    "the capture a larger ring buffer, or use [log, alert]",
                )
        return alert

    def _alert(self, message: str, delta: DropDelta, now_ns: int) -> Alert:
        # Falco's fields, all deltas since the last check. The kernel's only drop cause is a
        # full ring buffer, so Falco's per-syscall-category buffer counters and its scratch-map,
        # page-fault and bug counters have no counterpart; falconet adds the drops per CPU.
        fields = {
            "n_evts": str(delta.events),
            "n_drops": str(delta.drops),
            "n_drops_buffer_total": str(delta.drops),
            "ebpf_enabled": str(int(self.ebpf)),
        }
        if delta.dropped_per_cpu:  # a replay has no CPUs
            fields["n_drops_per_cpu"] = ",".join(str(d) for d in delta.dropped_per_cpu)
        return internal_alert(
            DROP_RULE,
            message,
            Priority.DEBUG,
            fields,
            self.hostname or alert_hostname(),
            time_ns=now_ns,
            fields_in_text=True,
        )

    # -- reporting ------------------------------------------------------------------------------
    def as_json(self) -> dict[str, Any]:
        return {
            "occurrences": self.occurrences,
            "actions_taken": self.actions_taken,
            "suppressed": self.suppressed,
            "actions": list(self.config.actions),
            "threshold": self.config.threshold,
        }


def monitored(
    events: Iterable[Any], monitor: DropsMonitor, counts: Callable[[], DropCounts]
) -> Iterator[Any]:
    """The events, each first shown to the monitor (Falco checks before evaluating). The
    monitor is only called when it would act: the first event, and events past the next check
    time (this loop runs for every event of a replay)."""
    observe = monitor.observe
    next_check = -1
    for event in events:
        if event.ts > next_check:
            observe(event.ts, counts)
            next_check = monitor.next_check_ns
        yield event


def _totals(counters: DropCounts) -> tuple[int, int, tuple[int, ...]]:
    return counters.total_counted, counters.total_dropped, tuple(counters.dropped)


def capture_stats(
    counted: int, delivered: int, dropped: Sequence[int], left_in_ring: int = 0
) -> dict[str, Any]:
    """The live capture's figures for the run summary: events the kernel counted, delivered to
    falconet, dropped (total, per CPU, and as a share of the counted), left in the ring at stop,
    and in flight: counted but in none of those (being written while the counters were read;
    0 once the capture is stopped), so that the figures always add up."""
    total = sum(dropped)
    return {
        "kernel_counted": counted,
        "delivered": delivered,
        "left_in_ring": left_in_ring,
        "in_flight": max(0, counted - delivered - total - left_in_ring),
        "dropped": total,
        "dropped_per_cpu": list(dropped),
        "drop_percent": round(100.0 * total / counted, 3) if counted else 0.0,
    }
