"""Per-source rulesets: the enabled rules indexed by event type, evaluated in definition order.

As Falco's evttype_index_ruleset: a syscall rule is listed under each event type its condition
can match (a rule without an evt.type constraint under every type), a plugin-source rule under
its source's single event kind. `rule_matching: first` stops at the first match, `all` returns
every match. Selection (minimum priority, enable/disable by rule name with `*` wildcards or by
tag, the falco.yaml `rules:` block) happens when a ruleset is built; a ruleset never changes
afterwards, so swapping in a new one is a single reference assignment (`RulesetSwitch.swap`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.errors import EngineError
from engine.rule_items import PRIORITIES, SYSCALL_SOURCE, parse_priority, priority_rank

Matching = Literal["first", "all"]


class RulesSelectionError(EngineError):
    """A bad selection step, minimum priority or matching mode (a usage error)."""

    exit_status = "usage"


# Event → evt.type name, for sources indexed by event type (None: every event is one kind).
EventTypeOf = Callable[[Any], str | None]


@dataclass(frozen=True, eq=False)
class CompiledRule:
    """A rule ready to evaluate. `matches(event) -> bool` is the compiled condition;
    `event_types` is None when the condition does not restrict evt.type."""

    name: str
    source: str
    priority: str
    tags: frozenset[str]
    enabled: bool
    index: int
    matches: Callable[[Any], bool]
    event_types: frozenset[str] | None
    output: Any = None  # the compiled output format (engine.output), rendered by the caller
    description: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)  # details for `rules describe`

    @property
    def rank(self) -> int:
        return priority_rank(self.priority)


@dataclass(frozen=True)
class SelectionStep:
    """One entry of falco.yaml's `rules:` block: enable or disable by rule pattern or tag."""

    enable: bool
    rule: str | None = None
    tag: str | None = None

    def applies_to(self, rule: CompiledRule) -> bool:
        if self.rule is not None:
            return _wildcard(self.rule).fullmatch(rule.name) is not None
        return self.tag in rule.tags


def _wildcard(pattern: str) -> re.Pattern[str]:
    # Falco's rule patterns only know `*`; other glob characters are literal.
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def parse_selection(entries: Iterable[Mapping[str, Any]]) -> list[SelectionStep]:
    """falco.yaml's `rules: [{enable: {rule|tag: x}}, {disable: ...}]` as selection steps."""
    steps = []
    for entry in entries:
        if len(entry) != 1 or next(iter(entry)) not in ("enable", "disable"):
            raise RulesSelectionError(
                f"invalid rules selection entry {dict(entry)!r}",
                hint="each entry is {enable: {rule: NAME}} or {disable: {tag: TAG}}",
            )
        action, target = next(iter(entry.items()))
        if (
            not isinstance(target, Mapping)
            or len(target) != 1
            or not ("rule" in target or "tag" in target)
        ):
            raise RulesSelectionError(
                f"invalid rules selection target {target!r}", hint="use {rule: NAME} or {tag: TAG}"
            )
        steps.append(
            SelectionStep(
                enable=action == "enable",
                rule=str(target["rule"]) if "rule" in target else None,
                tag=str(target["tag"]) if "tag" in target else None,
            )
        )
    return steps


def parse_selection_text(entries: Iterable[str]) -> list[SelectionStep]:
    """Selection steps written `enable:rule=PATTERN`, `disable:tag=TAG` (command lines)."""
    parsed = []
    for entry in entries:
        action, _, target = entry.partition(":")
        kind, _, value = target.partition("=")
        if action not in ("enable", "disable") or kind not in ("rule", "tag") or not value:
            raise RulesSelectionError(
                f"invalid rules selection {entry!r}",
                hint="write enable:rule=PATTERN, disable:rule=PATTERN, enable:tag=TAG or "
                "disable:tag=TAG",
            )
        parsed.append({action: {kind: value}})
    return parse_selection(parsed)


def select_enabled(
    rules: Iterable[CompiledRule],
    steps: Sequence[SelectionStep] = (),
    min_priority: str = "Debug",
) -> list[CompiledRule]:
    """The rules enabled after the file defaults, then each step in order, then the minimum
    priority (a rule less severe than it is never enabled)."""
    parsed = parse_priority(min_priority)
    if parsed is None:
        raise RulesSelectionError(
            f"unknown priority {min_priority!r}", hint="use one of: " + ", ".join(PRIORITIES)
        )
    limit = priority_rank(parsed)
    selected = []
    for rule in rules:
        enabled = rule.enabled
        for step in steps:
            if step.applies_to(rule):
                enabled = step.enable
        if enabled and rule.rank <= limit:
            selected.append(rule)
    return selected


class Ruleset:
    """The enabled rules of one source, indexed for evaluation."""

    def __init__(
        self,
        source: str,
        rules: Iterable[CompiledRule],
        matching: Matching = "first",
        event_type_of: EventTypeOf | None = None,
    ) -> None:
        if matching not in ("first", "all"):
            raise RulesSelectionError(
                f"unknown rule_matching {matching!r}", hint="use first or all"
            )
        self.source = source
        self.matching = matching
        self.rules: tuple[CompiledRule, ...] = tuple(sorted(rules, key=lambda r: r.index))
        self._event_type_of = event_type_of if source == SYSCALL_SOURCE else None
        self._any_type = tuple(r for r in self.rules if r.event_types is None)
        by_type: dict[str, list[CompiledRule]] = {}
        for rule in self.rules:
            for event_type in rule.event_types or ():
                by_type.setdefault(event_type, []).append(rule)
        # Rules without a type constraint are merged into every bucket, in definition order.
        self._by_type: dict[str, tuple[CompiledRule, ...]] = {
            event_type: tuple(sorted((*listed, *self._any_type), key=lambda r: r.index))
            for event_type, listed in by_type.items()
        }
        # The matched rules of an event, in definition order (one with rule_matching: first).
        self.evaluate: Callable[[Any], list[CompiledRule]] = self._dispatcher()

    def event_types(self) -> frozenset[str] | None:
        """The evt.type values some enabled rule needs (None: every type is needed)."""
        if self._any_type:
            return None
        return frozenset(self._by_type)

    def candidates(self, event: Any) -> tuple[CompiledRule, ...]:
        if self._event_type_of is None:
            return self.rules
        event_type = self._event_type_of(event)
        return self._by_type.get(event_type, self._any_type) if event_type else self._any_type

    def _dispatcher(self) -> Callable[[Any], list[CompiledRule]]:
        """`evaluate` for this ruleset. Most syscall events are of types no rule lists (futex,
        read, epoll_wait...), so the per-type work is decided once per type, not per event:
        each type's rules become one evaluator (see _bucket_evaluator), built the first time
        an event of that type arrives (a ruleset lists many types a host rarely produces, and
        building them all would slow every load and reload)."""
        first = self.matching == "first"
        if self._event_type_of is None:
            return _bucket_evaluator(self.rules, first)
        untyped = _bucket_evaluator(self._any_type, first)
        evaluators: dict[str, Callable[[Any], list[CompiledRule]]] = {}
        lookup, type_of, buckets = evaluators.get, self._event_type_of, self._by_type

        def build(event_type: str) -> Callable[[Any], list[CompiledRule]]:
            rules = buckets.get(event_type)
            evaluator = untyped if rules is None else _bucket_evaluator(rules, first, event_type)
            evaluators[event_type] = evaluator
            return evaluator

        def evaluate(event: Any) -> list[CompiledRule]:
            # A falsy type (none extracted) gets the untyped rules, as in candidates().
            event_type = type_of(event) or ""
            evaluator = lookup(event_type)
            if evaluator is None:
                evaluator = build(event_type) if event_type else untyped
            # Most events (futex, read, epoll_wait...) have no rule: spare them a call.
            return [] if evaluator is _no_match else evaluator(event)

        return evaluate

    def __len__(self) -> int:
        return len(self.rules)


@dataclass(frozen=True)
class Rulesets:
    """Every source's ruleset: what the engine evaluates events against."""

    by_source: Mapping[str, Ruleset]

    def evaluate(self, event: Any, source: str) -> list[CompiledRule]:
        ruleset = self.by_source.get(source)
        return ruleset.evaluate(event) if ruleset is not None else []

    def event_types(self, source: str = SYSCALL_SOURCE) -> frozenset[str] | None:
        ruleset = self.by_source.get(source)
        return ruleset.event_types() if ruleset is not None else frozenset()


class RulesetSwitch:
    """Holds the current rulesets; a reload swaps them with one reference assignment, so an
    event is always evaluated against one complete ruleset, old or new."""

    def __init__(self, rulesets: Rulesets) -> None:
        self.current = rulesets

    def swap(self, rulesets: Rulesets) -> Rulesets:
        previous, self.current = self.current, rulesets
        return previous

    def evaluate(self, event: Any, source: str) -> list[CompiledRule]:
        return self.current.evaluate(event, source)


def build_rulesets(
    rules: Iterable[CompiledRule],
    steps: Sequence[SelectionStep] = (),
    min_priority: str = "Debug",
    matching: Matching = "first",
    event_type_of: Mapping[str, EventTypeOf] | None = None,
) -> Rulesets:
    by_source: dict[str, list[CompiledRule]] = {}
    for rule in select_enabled(rules, steps, min_priority):
        by_source.setdefault(rule.source, []).append(rule)
    type_of = event_type_of or {}
    return Rulesets(
        {
            source: Ruleset(source, listed, matching, type_of.get(source))
            for source, listed in by_source.items()
        }
    )


def _no_match(event: Any) -> list[CompiledRule]:
    return []


def _bucket_evaluator(
    rules: Sequence[CompiledRule], first: bool, event_type: str | None = None
) -> Callable[[Any], list[CompiledRule]]:
    """Evaluate `rules` in definition order: the first match only, or every match. Rules
    loaded from files share one generated function (engine.condition.compiler.compile_chain:
    fields common to their conditions are extracted once per event), specialised for
    `event_type` when every event it sees has that evt.type; rules built from bare callables
    are called one by one."""
    if not rules:
        return _no_match
    chain = _compiled_chain(rules, first, event_type)
    if chain is not None:
        return chain
    pairs = tuple((rule, rule.matches) for rule in rules)
    if first:

        def first_match(event: Any) -> list[CompiledRule]:
            for rule, matches in pairs:
                if matches(event):
                    return [rule]
            return []

        return first_match

    def every_match(event: Any) -> list[CompiledRule]:
        return [rule for rule, matches in pairs if matches(event)]

    return every_match


def _compiled_chain(
    rules: Sequence[CompiledRule], first: bool, event_type: str | None
) -> Callable[[Any], list[CompiledRule]] | None:
    """The rules' expanded conditions compiled as one chain, or None when some rule has no
    condition tree (a rule built from a callable) or its source no field catalog. Rules whose
    condition cannot hold for `event_type` are left out of the chain."""
    from engine import condition_backend
    from engine.condition.compiler import compile_chain
    from engine.condition.evttypes import specialize_for_event_type

    conditions = [rule.info.get("expanded_condition") for rule in rules]
    sources = {rule.source for rule in rules}
    catalog = condition_backend.catalog_for(sources.pop()) if len(sources) == 1 else None
    if catalog is None or any(condition is None for condition in conditions):
        return None
    if event_type is not None:
        conditions = [specialize_for_event_type(c, event_type) for c in conditions]
    candidates = tuple(rule for rule, c in zip(rules, conditions, strict=True) if c is not False)
    if not candidates:
        return _no_match
    kept = [c for c in conditions if c is not False]
    if len(candidates) >= INDEX_MIN_RULES:
        indexed = _indexed_evaluator(candidates, kept, catalog, first)
        if indexed is not None:
            return indexed
    chain = compile_chain(kept, catalog, first=first)

    def evaluate(event: Any) -> list[CompiledRule]:
        positions = chain(event)
        return [candidates[position] for position in positions] if positions else []

    return evaluate


# Below this many rules in an event type's bucket one shared chain is as cheap as the index.
INDEX_MIN_RULES = 2


# The index pays when an event concerns few of a bucket's rules. Over its first SAMPLE_EVENTS
# events a bucket counts the candidates its index selects; when they are more than
# MAX_CANDIDATE_SHARE of its rules (every audit event is a create of a pod...), the rules are
# better evaluated in one shared chain, where their common fields are extracted once.
SAMPLE_EVENTS = 256
MAX_CANDIDATE_SHARE = 0.25


def _indexed_evaluator(
    rules: Sequence[CompiledRule], conditions: Sequence[Any], catalog: Any, first: bool
) -> Callable[[Any], list[CompiledRule]] | None:
    """The bucket's rules behind a candidate index (engine.condition.index): per event, the
    index picks the anchored rules that may match and only those are evaluated, each by its
    own condition compiled on its first use; the unanchored rules form one shared chain. The
    result is the per-rule evaluation's, in definition order. None when nothing is anchored.
    A bucket whose index selects most rules switches to the shared chain (see SAMPLE_EVENTS)."""
    from engine.condition.compiler import compile_chain, compile_condition
    from engine.condition.index import build_selector, plan_index

    plan = plan_index(conditions, catalog)
    if not plan.anchored:
        return None
    select = build_selector(conditions, catalog, plan)
    unanchored = tuple(i for i, anchor in enumerate(plan.anchors) if anchor is None)
    rest = (
        compile_chain([conditions[i] for i in unanchored], catalog, first=first)
        if unanchored
        else None
    )
    checks: list[Callable[[Any], bool]] = []

    def lazy(position: int) -> Callable[[Any], bool]:
        def compile_then_check(event: Any) -> bool:
            check = compile_condition(conditions[position], catalog).evaluate
            checks[position] = check
            return check(event)

        return compile_then_check

    checks.extend(lazy(position) for position in range(len(rules)))
    count = len(rules)

    def indexed(select: Callable[[Any], list[tuple[int, ...]]]) -> Callable[[Any], list[Any]]:
        if first:

            def first_match(event: Any) -> list[CompiledRule]:
                found = select(event)
                matched = rest(event) if rest is not None else ()
                limit = unanchored[matched[0]] if matched else count
                if found:
                    for position in sorted(set().union(*found)) if len(found) > 1 else found[0]:
                        if position >= limit:
                            break
                        if checks[position](event):
                            return [rules[position]]
                return [rules[limit]] if matched else []

            return first_match

        def every_match(event: Any) -> list[CompiledRule]:
            found = select(event)
            matched = [unanchored[i] for i in rest(event)] if rest is not None else []
            if found:
                matched.extend(p for p in set().union(*found) if checks[p](event))
                matched.sort()
            return [rules[position] for position in matched]

        return every_match

    sampled = [0, 0]  # events, candidates

    def decide() -> None:
        if sampled[1] > MAX_CANDIDATE_SHARE * count * sampled[0]:
            chain = compile_chain(conditions, catalog, first=first)

            def chained(event: Any) -> list[CompiledRule]:
                positions = chain(event)
                return [rules[position] for position in positions] if positions else []

            current[0] = chained
        else:
            current[0] = indexed(select)

    def counting_select(event: Any) -> list[tuple[int, ...]]:
        found = select(event)
        if found:
            sampled[1] += len(set().union(*found))
        sampled[0] += 1
        if sampled[0] >= SAMPLE_EVENTS:
            decide()
        return found

    current = [indexed(counting_select)]

    def evaluate(event: Any) -> list[CompiledRule]:
        return current[0](event)

    return evaluate


def tag_matches(rule: CompiledRule, tags: Iterable[str]) -> bool:
    """Whether a rule has any of `tags` (Falco's tag selection semantics)."""
    return not rule.tags.isdisjoint(tags)


__all__ = [
    "CompiledRule",
    "Matching",
    "RulesSelectionError",
    "Ruleset",
    "RulesetSwitch",
    "Rulesets",
    "SelectionStep",
    "build_rulesets",
    "parse_selection",
    "parse_selection_text",
    "select_enabled",
    "tag_matches",
]
