"""The response engine: match alerts against response rules and run their actions.

The detection loop calls `submit(alert)`: matching is done there (cheap, compiled), and an alert
that matches is queued to a worker pool, so actions never block detection. `handle(alert)` does
the same synchronously and returns the outcomes (tests, `response test`). Every outcome is passed
to `on_outcome` as an event of source `response`. `swap(rules)` hot-reloads the rules; action
instances and the rate-limit state of unchanged rules survive a swap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from engine.output import alert_hostname
from engine.response.actions.base import Action
from engine.response.errors import ActionError, ActionRefused, ResponseRulesError
from engine.response.outcome import SOURCE, ActionOutcome
from engine.response.ratelimit import TokenBucket
from engine.response.rules import ActionSpec, ResponseRule, ResponseRules
from engine.response.templating import EVENT_KEY
from engine.sinks import Alert

log = logging.getLogger(__name__)

OutcomeCallback = Callable[[Alert], None]


@dataclass(frozen=True)
class PlannedAction:
    """An action as it would run for an alert: rendered parameters, whether dry-run."""

    response_rule: str
    action: str
    parameters: dict[str, Any]
    dry_run: bool
    on_failure: str
    error: str | None = None  # a parameter that could not be rendered

    def as_dict(self) -> dict[str, Any]:
        return {
            "response_rule": self.response_rule,
            "action": self.action,
            "dry_run": self.dry_run,
            "on_failure": self.on_failure,
            "parameters": self.parameters,
            **({"error": self.error} if self.error else {}),
        }


def _document(alert: Alert | Mapping[str, Any]) -> Mapping[str, Any]:
    """What rules match and actions read: the JSON alert, plus the event's own process
    identity under EVENT_KEY when the engine knows it (syscall alerts)."""
    if not isinstance(alert, Alert):
        return alert
    if alert.origin is None:
        return alert.document
    return {**alert.document, EVENT_KEY: dict(alert.origin)}


def _error_text(error: BaseException | None) -> str | None:
    if error is None:
        return None
    hint = getattr(error, "hint", None)
    return f"{error} (hint: {hint})" if hint else str(error)


class ResponseEngine:
    def __init__(
        self,
        rules: ResponseRules,
        on_outcome: OutcomeCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._on_outcome = on_outcome
        self._hostname = alert_hostname()
        self._actions: dict[str, Action] = {}
        self._actions_lock = threading.Lock()
        self._rule_buckets: dict[str, TokenBucket] = {}
        self._global_bucket: TokenBucket | None = None
        self._rules = rules
        self._install_limits(rules)
        self._pool = ThreadPoolExecutor(
            max_workers=rules.settings.workers, thread_name_prefix="falconet-response"
        )
        self._pending = threading.BoundedSemaphore(rules.settings.queue_size)
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()

    @property
    def rules(self) -> ResponseRules:
        return self._rules

    # -- rules ----------------------------------------------------------------------------------

    def _install_limits(self, rules: ResponseRules) -> None:
        buckets: dict[str, TokenBucket] = {}
        for rule in rules.rules:
            if rule.rate_limit is None:
                continue
            kept = self._rule_buckets.get(rule.name)
            keep = kept is not None and kept.limit == rule.rate_limit
            buckets[rule.name] = kept if keep else TokenBucket(rule.rate_limit, self._clock)
        self._rule_buckets = buckets
        limit = rules.settings.rate_limit
        if limit is None:
            self._global_bucket = None
        elif self._global_bucket is None or self._global_bucket.limit != limit:
            self._global_bucket = TokenBucket(limit, self._clock)

    def swap(self, rules: ResponseRules) -> None:
        """Hot reload: later alerts use `rules`; actions already queued finish as planned.
        The worker count is fixed at start."""
        self._install_limits(rules)
        self._rules = rules
        log.info("response rules reloaded: %d rules from %s", len(rules.rules), rules.path)

    # -- planning (no side effects) -------------------------------------------------------------

    def plan(self, alert: Alert | Mapping[str, Any]) -> list[PlannedAction]:
        """The actions that would run for `alert`, rendered; nothing runs, no limit is used."""
        document = _document(alert)
        rules = self._rules
        planned = []
        for rule in rules.matching(document):
            for spec in rule.actions:
                error = None
                try:
                    parameters = spec.plugin.render_parameters(spec.parameters, document)
                except ResponseRulesError as failure:
                    parameters, error = dict(spec.parameters), str(failure)
                planned.append(
                    PlannedAction(
                        rule.name,
                        spec.action,
                        parameters,
                        self._dry_run(rules, rule, spec),
                        spec.on_failure,
                        error,
                    )
                )
        return planned

    @staticmethod
    def _dry_run(rules: ResponseRules, rule: ResponseRule, spec: ActionSpec) -> bool:
        return rules.settings.dry_run or rule.dry_run or spec.dry_run

    # -- running --------------------------------------------------------------------------------

    def submit(self, alert: Alert | Mapping[str, Any]) -> bool:
        """Called on the detection path: never blocks. False when nothing matched or the
        response queue is full (counted as `dropped`)."""
        document = _document(alert)
        rules = self._rules
        matched = rules.matching(document) if document.get("source") != SOURCE else []
        if not matched:
            return False
        if not self._pending.acquire(blocking=False):
            self._count("dropped")
            log.warning("response queue full: alert %r not acted upon", document.get("rule"))
            return False

        def work() -> None:
            try:
                self._respond(document, rules, matched)
            except Exception:  # a bug in an action must not kill the worker
                log.exception("response to %r failed", document.get("rule"))
            finally:
                self._pending.release()

        self._pool.submit(work)
        return True

    def handle(self, alert: Alert | Mapping[str, Any]) -> list[ActionOutcome]:
        """Match and act synchronously; returns (and emits) every outcome."""
        document = _document(alert)
        if document.get("source") == SOURCE:  # never respond to a response: no loops
            return []
        rules = self._rules
        return self._respond(document, rules, rules.matching(document))

    def _respond(
        self, alert: Mapping[str, Any], rules: ResponseRules, matched: list[ResponseRule]
    ) -> list[ActionOutcome]:
        outcomes: list[ActionOutcome] = []
        for rule in matched:
            if not self._within_limits(rule):
                outcomes += [
                    self._outcome(rule, spec, alert, "rate_limited") for spec in rule.actions
                ]
                continue
            stop = False
            for spec in rule.actions:
                if stop:
                    outcomes.append(self._outcome(rule, spec, alert, "skipped"))
                    continue
                outcome = self._run_action(rules, rule, spec, alert)
                outcomes.append(outcome)
                stop = outcome.status in ("failed", "refused") and spec.on_failure == "stop"
        for outcome in outcomes:
            self._emit(outcome)
        return outcomes

    def _within_limits(self, rule: ResponseRule) -> bool:
        bucket = self._rule_buckets.get(rule.name)
        if bucket is not None and not bucket.take():
            return False
        return self._global_bucket is None or self._global_bucket.take()

    def _action(self, name: str, plugin: type[Action]) -> Action:
        with self._actions_lock:
            instance = self._actions.get(name)
            if instance is None:
                instance = self._actions[name] = plugin()
            return instance

    def _run_action(
        self, rules: ResponseRules, rule: ResponseRule, spec: ActionSpec, alert: Mapping[str, Any]
    ) -> ActionOutcome:
        started = time.perf_counter()
        parameters: dict[str, Any] = {}
        try:
            parameters = spec.plugin.render_parameters(spec.parameters, alert)
            if self._dry_run(rules, rule, spec):
                return self._outcome(rule, spec, alert, "dry_run", parameters, started=started)
            changed = self._action(spec.action, spec.plugin).run(parameters, alert)
        except ActionRefused as error:
            return self._outcome(
                rule, spec, alert, "refused", parameters, error=error, started=started
            )
        except (ActionError, ResponseRulesError, OSError) as error:
            return self._outcome(
                rule, spec, alert, "failed", parameters, error=error, started=started
            )
        except Exception as error:  # a bug in an action: reported as a failure, never fatal
            log.exception("action %s raised unexpectedly", spec.action)
            return self._outcome(
                rule, spec, alert, "failed", parameters, error=error, started=started
            )
        return self._outcome(rule, spec, alert, "succeeded", parameters, changed, started=started)

    def _outcome(
        self,
        rule: ResponseRule,
        spec: ActionSpec,
        alert: Mapping[str, Any],
        status: str,
        parameters: dict[str, Any] | None = None,
        changed: dict[str, Any] | None = None,
        error: BaseException | None = None,
        started: float | None = None,
    ) -> ActionOutcome:
        elapsed = 0.0 if started is None else (time.perf_counter() - started) * 1000
        return ActionOutcome(
            response_rule=rule.name,
            action=spec.action,
            status=status,
            alert_rule=str(alert.get("rule", "")),
            parameters=parameters if parameters is not None else {},
            changed=changed or {},
            error=_error_text(error),
            duration_ms=elapsed,
        )

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    def _emit(self, outcome: ActionOutcome) -> None:
        self._count(outcome.status)
        self._count(f"{outcome.action}:{outcome.status}")
        log.log(
            logging.WARNING if outcome.status in ("failed", "refused") else logging.INFO,
            "%s",
            outcome.summary(),
        )
        if self._on_outcome is not None:
            try:
                self._on_outcome(outcome.as_event(self._hostname))
            except Exception:  # the outputs failing must not break responses
                log.exception("cannot emit response outcome")

    def close(self, wait: bool = True) -> None:
        """Finish queued responses (when `wait`), then release the actions' resources."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        with self._actions_lock:
            actions, self._actions = list(self._actions.values()), {}
        for action in actions:
            try:
                action.close()
            except Exception:
                log.exception("closing action %s", action.name)
