"""The dependency solver: from requested references to one version of every artifact needed.

Semantics (falcoctl's, fixed where it hurts users; see docs/dependencies.md):
- a dependency `json:0.7.0` in an artifact config allows every release compatible with 0.7.0
  (caret: same major, for 0.x same minor); the solver picks the HIGHEST version that satisfies
  every constraint from the whole graph, backtracking over the versions the repository has;
- a dependency with alternatives (`k8saudit:0.18.0|k8saudit-gke:0.9.0`) is satisfied by the
  first choice that is already part of the plan (requested or chosen earlier), then by a plugin
  the target engine already provides, then by one installed, then by the primary, then by the
  alternatives in order; a choice that leads to a conflict is abandoned for the next;
- candidates whose requirements the target engine does not meet are skipped;
- when nothing fits, the error names the conflicting chains
  (`cloudtrail-rules 0.12.0 -> json ^0.7.0` vs `k8saudit-rules 0.9.0 -> json ^1.0.0`).

The search is a depth-first search over an explicit stack of choice points (no recursion limit),
processing pending dependencies before deciding the next artifact, so a dead end is found as early
as the constraints allow. It backjumps (conflict-directed backjumping): every constraint remembers
the choice points it came from, and when a choice point runs out of options the search returns
straight to the latest choice point that contributed to the failure instead of retrying the
unrelated ones in between, which keeps large unsatisfiable graphs from exploding.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from feeds.catalog import Catalog, ConfigLike, DependencyLike
from feeds.errors import ConfigError, NotFoundError, RequirementUnmetError, ResolutionError
from feeds.requirements import EngineVersions, Unmet, unmet_requirements
from feeds.versions import (
    ANY,
    CARET,
    Version,
    VersionRange,
    compatible_range,
    falco_compatible,
    try_parse_version,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_STEPS = 200_000


@dataclass(frozen=True)
class Request:
    """One artifact the user asked for: index name and version range (ANY = newest)."""

    name: str
    range: VersionRange = ANY
    ref: str = ""  # as typed; the lock file's key
    # An installed artifact kept in the resolution so that what it depends on stays
    # satisfied; not something the user asked for (no lock entry, reason `installed`).
    installed: bool = False

    @property
    def label(self) -> str:
        if self.installed:
            return f"installed {self.name}"
        if self.ref:
            return self.ref
        return self.name if self.range.is_any else f"{self.name}@{self.range}"


@dataclass(frozen=True)
class Constraint:
    range: VersionRange
    origin: str  # `requested falco-rules@^5` or a chain `a 1.0.0 -> b 2.0.0 -> json ^0.7.0`
    causes: frozenset[int] = frozenset()  # the choice points (levels) it depends on


@dataclass(frozen=True)
class Selected:
    """One artifact of a resolution."""

    name: str
    version: Version
    tag: str | None  # None when the target engine provides it
    reason: str  # requested / dependency of X / alternative for Y (dependency of X)
    dependencies: tuple[str, ...] = ()  # the artifacts chosen for its dependencies
    requested: bool = False
    provided_by_engine: bool = False
    held_back: str | None = None  # why a newer allowed release was not taken (engine too old)


@dataclass(frozen=True)
class Resolution:
    requests: tuple[Request, ...]
    selected: Mapping[str, Selected]  # by name, sorted

    def closure(self, name: str) -> list[str]:
        """Every artifact `name` needs, transitively, sorted (itself only through a cycle)."""
        seen: set[str] = set()
        stack = list(self.selected[name].dependencies)
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.selected[current].dependencies)
        return sorted(seen)


@dataclass(frozen=True)
class _Obligation:
    """A dependency of a chosen artifact that no choice has satisfied yet."""

    parent: str
    parent_level: int  # the choice point that chose the parent's version
    chain: str  # the chain down to the parent, e.g. `a 1.0.0 -> b 2.0.0`
    dependency: DependencyLike


@dataclass(frozen=True)
class _Edge:
    child: str
    primary: str  # the dependency's own name; differs from child when an alternative was taken


@dataclass
class _State:
    chosen: dict[str, Version] = field(default_factory=dict)
    constraints: dict[str, tuple[Constraint, ...]] = field(default_factory=dict)
    queue: tuple[str, ...] = ()  # needed, not decided yet, in discovery order
    obligations: tuple[_Obligation, ...] = ()
    chains: dict[str, str] = field(default_factory=dict)
    edges: dict[str, tuple[_Edge, ...]] = field(default_factory=dict)
    provided: dict[str, Version] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)  # choice point of each chosen/provided

    def copy(self) -> _State:
        return _State(
            dict(self.chosen),
            dict(self.constraints),
            self.queue,
            self.obligations,
            dict(self.chains),
            dict(self.edges),
            dict(self.provided),
            dict(self.levels),
        )

    def needed(self, name: str) -> bool:
        return name in self.chosen or name in self.queue

    @property
    def depth(self) -> int:
        return len(self.chosen) + len(self.provided)


@dataclass
class _Frame:
    """A choice point: its options (lazily) and the levels its failures were caused by."""

    level: int
    options: Iterator[_State] = field(default_factory=lambda: iter(()))
    conflict: set[int] = field(default_factory=set)


class Solver:
    """One resolution run over a catalog. Configs read during the run are memoised."""

    def __init__(
        self,
        catalog: Catalog,
        engine: EngineVersions | None = None,
        installed: Mapping[str, Version] | None = None,
        provided: Mapping[str, str] | None = None,
        pins: Mapping[str, VersionRange] | None = None,
        pre: bool = False,
        max_steps: int = DEFAULT_MAX_STEPS,
        policy: str = CARET,
        prefer: Mapping[str, Version] | None = None,
        resolve_deps: bool = True,
    ) -> None:
        self.catalog = catalog
        self.engine = engine
        self.installed = dict(installed or {})
        self.provided = {
            name: parsed
            for name, text in (provided or {}).items()
            if (parsed := try_parse_version(text)) is not None
        }
        self.pins = dict(pins or {})
        # Versions tried first when allowed (falconet.lock): reproducible, never a conflict.
        self.prefer = dict(prefer or {})
        self.resolve_deps = resolve_deps  # False: the requested artifacts only (--no-deps)
        self.pre = pre
        self.max_steps = max_steps
        self.policy = policy
        self.steps = 0
        self._configs: dict[tuple[str, Version], ConfigLike] = {}
        self._unmet: dict[tuple[str, Version], list[Unmet]] = {}
        self._candidates: dict[tuple[str, tuple[VersionRange, ...]], list[Version]] = {}
        self._failure: tuple[int, Exception] | None = None
        self._kept_installed: set[str] = set()

    # -- entry point ----------------------------------------------------------------------

    def solve(self, requests: Sequence[Request]) -> Resolution:
        if not requests:
            raise ConfigError(
                "nothing to resolve", "name at least one artifact, e.g. falco-rules@^5"
            )
        initial = _State()
        self._kept_installed = {r.name for r in requests if r.installed}
        for request in requests:
            origin = f"requested {request.label}"
            self._add_constraint(initial, request.name, Constraint(request.range, origin))
            initial.chains[request.name] = ""
        self.catalog.prefetch(initial.queue)
        frames = [_Frame(0, iter([initial]))]
        while frames:
            frame = frames[-1]
            try:
                state = next(frame.options)
            except StopIteration:
                self._backjump(frames)
                continue
            self._count_step()
            if not state.obligations and not state.queue:
                return self._resolution(state, requests)
            child = _Frame(len(frames))
            child.options = self._successors(state, child)
            frames.append(child)
        raise self._failure[1] if self._failure else ResolutionError("no resolution found")

    @staticmethod
    def _backjump(frames: list[_Frame]) -> None:
        """The last choice point ran out of options: return to the latest one that caused it."""
        exhausted = frames.pop()
        conflict = exhausted.conflict - {exhausted.level}
        target = max(conflict, default=0)
        while frames and frames[-1].level > target:
            frames.pop()
        if frames:
            frames[-1].conflict |= conflict

    def _count_step(self) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise ResolutionError(
                f"dependency resolution gave up after {self.max_steps} steps",
                "narrow the version ranges (name@^X.Y) or pin the artifacts that conflict",
            )

    def _successors(self, state: _State, frame: _Frame) -> Iterator[_State]:
        if state.obligations:
            return self._satisfy(state, state.obligations[0], frame)
        return self._decide(state, self._most_constrained(state), frame)

    def _most_constrained(self, state: _State) -> str:
        """The undecided artifact with the fewest versions left: its dead ends show first."""
        return min(state.queue, key=lambda name: len(self._candidates_in(state, name)))

    def _candidates_in(self, state: _State, name: str) -> list[Version]:
        ranges = tuple(c.range for c in self._all_constraints(state, name))
        return self._candidates_for(name, ranges)

    # -- dependencies -----------------------------------------------------------------------

    def _satisfy(self, state: _State, obligation: _Obligation, frame: _Frame) -> Iterator[_State]:
        """Branch over the ways to satisfy one dependency, most preferred first."""
        dependency = obligation.dependency
        choices = [(dependency.name, dependency.version)]
        choices += [(alt.name, alt.version) for alt in dependency.alternatives]
        ranked = sorted(
            enumerate(choices), key=lambda item: (self._rank(state, item[1][0]), item[0])
        )
        for _, (name, version_text) in ranked:
            allowed = self._dependency_range(obligation, name, version_text)
            branch = state.copy()
            branch.obligations = state.obligations[1:]
            edge = _Edge(name, dependency.name)
            branch.edges[obligation.parent] = (*branch.edges.get(obligation.parent, ()), edge)
            if not branch.needed(name) and self._engine_provides(name, allowed):
                branch.provided[name] = self.provided[name]
                branch.levels[name] = frame.level
                yield branch
                continue
            origin = f"{obligation.chain} -> {name} {allowed}"
            causes = frozenset((obligation.parent_level, frame.level))
            if self._add_constraint(branch, name, Constraint(allowed, origin, causes), frame):
                branch.chains.setdefault(name, obligation.chain)
                yield branch

    def _rank(self, state: _State, name: str) -> int:
        if state.needed(name) or name in state.provided:
            return 0
        if name in self.provided:
            return 1
        if name in self.installed:
            return 2
        return 3

    def _dependency_range(self, obligation: _Obligation, name: str, text: str) -> VersionRange:
        try:
            return compatible_range(text, self.policy)
        except ConfigError:
            raise ResolutionError(
                f"invalid artifact config: {obligation.chain} depends on {name} {text!r}, "
                "which is not a semantic version",
                "the publisher must fix the artifact's config; pin another version meanwhile",
            ) from None

    def _engine_provides(self, name: str, allowed: VersionRange) -> bool:
        """A plugin the target engine already has (Falco's check: same major, at least)."""
        have = self.provided.get(name)
        if have is None:
            return False
        floor = next((b.version for b in allowed.bounds if b.op == ">="), None)
        return floor is None or falco_compatible(have, floor)

    def _add_constraint(
        self, state: _State, name: str, constraint: Constraint, frame: _Frame | None = None
    ) -> bool:
        """Record the constraint; False (and the conflict noted) when it excludes the choice."""
        state.constraints[name] = (*state.constraints.get(name, ()), constraint)
        chosen = state.chosen.get(name, state.provided.get(name))
        if chosen is not None and not constraint.range.allows(chosen, self.pre):
            if frame is not None:
                frame.conflict |= constraint.causes | {state.levels[name]}
            self._note_failure(state, lambda: self._conflict_error(name, state.constraints[name]))
            return False
        if chosen is None and frame is not None and not self._candidates_in(state, name):
            # Forward check: no release of `name` fits its constraints any more.
            constraints = self._all_constraints(state, name)
            for constraint in constraints:
                frame.conflict |= constraint.causes
            self._note_failure(state, lambda: self._no_candidate_error(name, constraints))
            return False
        if not state.needed(name) and name not in state.provided:
            state.queue = (*state.queue, name)
            self.catalog.prefetch([name])
        return True

    # -- decisions ---------------------------------------------------------------------------

    def _decide(self, state: _State, name: str, frame: _Frame) -> Iterator[_State]:
        """Branch over the versions of `name` allowed by its constraints, newest first."""
        constraints = self._all_constraints(state, name)
        # The constraints pruned this choice point's options: they share in any failure.
        for constraint in constraints:
            frame.conflict |= constraint.causes
        found = False
        for version in self._ordered(
            name, self._candidates_for(name, tuple(c.range for c in constraints))
        ):
            config = self._config(name, version)
            if self._unmet_for(name, version, config):
                continue
            found = True
            branch = state.copy()
            branch.queue = tuple(queued for queued in state.queue if queued != name)
            branch.chosen[name] = version
            branch.levels[name] = frame.level
            prefix = state.chains.get(name, "")
            chain = f"{prefix} -> {name} {version}" if prefix else f"{name} {version}"
            if not prefix and name in self._kept_installed:
                chain = f"installed {chain}"
            dependencies = config.dependencies if self.resolve_deps else ()
            branch.obligations = state.obligations + tuple(
                _Obligation(name, frame.level, chain, dep) for dep in dependencies
            )
            self.catalog.prefetch(
                [choice.name for dep in config.dependencies for choice in (dep, *dep.alternatives)]
            )
            yield branch
        if not found:
            self._note_failure(state, lambda: self._no_candidate_error(name, constraints))

    def _ordered(self, name: str, candidates: list[Version]) -> list[Version]:
        preferred = self.prefer.get(name)
        if preferred is None or preferred not in candidates:
            return candidates
        return [preferred, *(v for v in candidates if v != preferred)]

    def _all_constraints(self, state: _State, name: str) -> tuple[Constraint, ...]:
        constraints = state.constraints.get(name, ())
        if name in self.pins:
            constraints = (
                *constraints,
                Constraint(self.pins[name], f"falconet.lock pins {name} {self.pins[name]}"),
            )
        return constraints

    def _versions(self, name: str) -> dict[Version, str]:
        try:
            return self.catalog.versions(name)
        except NotFoundError as error:
            raise NotFoundError(
                f"cannot resolve {name}: {error}",
                error.hint or "add an index that lists it (falconet index add)",
            ) from None

    def _candidates_for(self, name: str, ranges: tuple[VersionRange, ...]) -> list[Version]:
        key = (name, ranges)
        if key not in self._candidates:
            self._candidates[key] = [
                v
                for v in sorted(self._versions(name), reverse=True)
                if all(r.allows(v, self.pre) for r in ranges)
            ]
        return self._candidates[key]

    def _config(self, name: str, version: Version) -> ConfigLike:
        key = (name, version)
        if key not in self._configs:
            config = self.catalog.config(name, version)
            declared = try_parse_version(config.version) if config.version else None
            if declared is not None and declared != version:
                log.warning(
                    "%s: tag %s holds a config declaring version %s", name, version, config.version
                )
            self._configs[key] = config
        return self._configs[key]

    def _unmet_for(self, name: str, version: Version, config: ConfigLike) -> list[Unmet]:
        if self.engine is None:
            return []
        key = (name, version)
        if key not in self._unmet:
            self._unmet[key] = unmet_requirements(config.requirements, self.engine)
        return self._unmet[key]

    # -- errors ----------------------------------------------------------------------------

    def _note_failure(self, state: _State, make_error: Callable[[], Exception]) -> None:
        """Keep the dead end reached deepest in the search: it explains the failure best.
        (The error is built only then: building it reads tag lists and configs.)"""
        if self._failure is None or state.depth > self._failure[0]:
            self._failure = (state.depth, make_error())

    def _conflict_error(self, name: str, constraints: Sequence[Constraint]) -> Exception:
        versions = sorted(self._versions(name))
        pair = _disjoint_pair(constraints, versions, self.pre)
        if pair is None:
            listed = "; ".join(c.origin for c in constraints)
            return ResolutionError(
                f"cannot satisfy {name}: no release fits all of: {listed}",
                f"available: {_list_versions(versions)}",
            )
        first, second = pair
        return ResolutionError(
            f"cannot satisfy {name}: {first.origin} conflicts with {second.origin}",
            "pin one side to a version whose dependencies agree, or ask the publisher "
            "for a compatible release",
        )

    def _no_candidate_error(self, name: str, constraints: Sequence[Constraint]) -> Exception:
        versions = sorted(self._versions(name))
        if not versions:
            return NotFoundError(
                f"{name} has no release tags (X.Y.Z) to resolve a range against",
                "use a tag (name:tag) or a digest (name@sha256:...)",
            )
        for constraint in constraints:
            if not any(constraint.range.allows(v, self.pre) for v in versions):
                return ResolutionError(
                    f"no release of {name} matches {constraint.range} ({constraint.origin})",
                    f"available: {_list_versions(versions)}"
                    + ("" if self.pre else " (pre-releases only with --pre)"),
                )
        in_range = [
            v for v in reversed(versions) if all(c.range.allows(v, self.pre) for c in constraints)
        ]
        if in_range and self.engine is not None:
            return self._requirement_error(name, constraints, in_range[0])
        return self._conflict_error(name, constraints)

    def _requirement_error(
        self, name: str, constraints: Sequence[Constraint], newest: Version
    ) -> Exception:
        assert self.engine is not None
        unmet = "; ".join(str(u) for u in self._unmet[(name, newest)])
        wanted = ", ".join(c.origin for c in constraints)
        fitting = self._newest_fitting(name)
        hint = (
            f"{name} {fitting} is the newest release this engine supports: ask for "
            f"{name}@{fitting}, or target a newer engine"
            if fitting
            else f"no release of {name} supports this engine; upgrade the engine"
        )
        return RequirementUnmetError(
            f"no release of {name} for {wanted} runs on engine {self.engine.engine_version_text}"
            f" ({self.engine.source}): {name} {newest} {unmet}",
            hint,
        )

    def _held_back(self, name: str, chosen: Version) -> str | None:
        """The newest release skipped for unmet requirements, when newer than the choice."""
        skipped = [v for (n, v), unmet in self._unmet.items() if n == name and unmet and v > chosen]
        if not skipped:
            return None
        newest = max(skipped)
        return f"{name} {newest} {'; '.join(str(u) for u in self._unmet[(name, newest)])}"

    def _newest_fitting(self, name: str) -> Version | None:
        for version in sorted(self._versions(name), reverse=True):
            if version.prerelease and not self.pre:
                continue
            if not self._unmet_for(name, version, self._config(name, version)):
                return version
        return None

    # -- result ----------------------------------------------------------------------------

    def _resolution(self, state: _State, requests: Sequence[Request]) -> Resolution:
        requested = {r.name for r in requests if not r.installed}
        parents: dict[str, list[tuple[str, _Edge]]] = {}
        for parent, edges in state.edges.items():
            for edge in edges:
                parents.setdefault(edge.child, []).append((parent, edge))
        selected: dict[str, Selected] = {}
        versions = self._versions
        for name in sorted({*state.chosen, *state.provided}):
            provided = name not in state.chosen
            version = state.provided[name] if provided else state.chosen[name]
            selected[name] = Selected(
                name=name,
                version=version,
                tag=None if provided else versions(name)[version],
                reason=_reason(name in requested, parents.get(name, []), provided),
                dependencies=tuple(sorted({e.child for e in state.edges.get(name, ())})),
                requested=name in requested,
                provided_by_engine=provided,
                held_back=None if provided else self._held_back(name, version),
            )
        return Resolution(tuple(requests), selected)


def _reason(requested: bool, parents: list[tuple[str, _Edge]], provided: bool) -> str:
    if requested:
        return "requested"
    if not parents:
        return "installed"
    parts = []
    for parent, edge in sorted(parents, key=lambda item: item[0]):
        if edge.primary != edge.child:
            parts.append(f"alternative for {edge.primary} (dependency of {parent})")
        else:
            parts.append(f"dependency of {parent}")
    reason = ", ".join(dict.fromkeys(parts))
    return f"{reason} (provided by the engine)" if provided else reason


def _disjoint_pair(
    constraints: Sequence[Constraint], versions: Sequence[Version], pre: bool
) -> tuple[Constraint, Constraint] | None:
    for i, first in enumerate(constraints):
        for second in constraints[i + 1 :]:
            both = (v for v in versions if first.range.allows(v, pre))
            if not any(second.range.allows(v, pre) for v in both):
                return first, second
    return None


def _list_versions(versions: Sequence[Version]) -> str:
    shown = [str(v) for v in sorted(versions, reverse=True)[:8]]
    more = len(versions) - len(shown)
    return ", ".join(shown) + (f" and {more} older" if more > 0 else "") if shown else "none"


def resolve(
    requests: Sequence[Request],
    catalog: Catalog,
    engine: EngineVersions | None = None,
    installed: Mapping[str, Version] | None = None,
    provided: Mapping[str, str] | None = None,
    pins: Mapping[str, VersionRange] | None = None,
    pre: bool = False,
    policy: str = CARET,
    prefer: Mapping[str, Version] | None = None,
    resolve_deps: bool = True,
) -> Resolution:
    """Resolve `requests` against `catalog` (see Solver for the semantics)."""
    solver = Solver(
        catalog,
        engine,
        installed,
        provided,
        pins,
        pre,
        policy=policy,
        prefer=prefer,
        resolve_deps=resolve_deps,
    )
    resolution = solver.solve(requests)
    log.debug("resolved %d artifacts in %d steps", len(resolution.selected), solver.steps)
    return resolution
