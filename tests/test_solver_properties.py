"""Property tests over random small dependency graphs: every plan the solver returns satisfies
every constraint, and when it says no plan exists an exhaustive search over all assignments
agrees."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.catalog import MemoryCatalog
from feeds.errors import FeedsError
from feeds.requirements import EngineVersions, unmet_requirements
from feeds.solver import Request, Solver
from feeds.versions import SAME_MAJOR, Version, compatible_range, parse_range, parse_version
from registry.artifacts import ArtifactConfig, Dependency, Requirement

NAMES = ["a", "b", "c", "d"]
POOL = ["0.1.0", "0.1.2", "0.2.0", "1.0.0", "1.3.0", "2.0.0"]
ENGINE = EngineVersions.from_document({"engine_version_semver": "0.57.0"}, "property engine")
ENGINE_REQUIREMENTS = ["0.50.0", "0.57.0", "0.58.0"]


@st.composite
def graphs(draw: st.DrawFn) -> tuple[MemoryCatalog, list[Request]]:
    names = NAMES[: draw(st.integers(2, len(NAMES)))]
    catalog = MemoryCatalog()
    for name in names:
        for version in draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=3, unique=True)):
            dependencies = []
            others = [n for n in names if n != name]
            for dep_name in draw(st.lists(st.sampled_from(others), max_size=2, unique=True)):
                alternatives = tuple(
                    Requirement(alt, draw(st.sampled_from(POOL)))
                    for alt in draw(
                        st.lists(
                            st.sampled_from([n for n in others if n != dep_name] or others),
                            max_size=1,
                        )
                    )
                    if alt != dep_name
                )
                dependencies.append(Dependency(dep_name, draw(st.sampled_from(POOL)), alternatives))
            requirements = ()
            if draw(st.booleans()):
                wanted = draw(st.sampled_from(ENGINE_REQUIREMENTS))
                requirements = (Requirement("engine_version_semver", wanted),)
            config = ArtifactConfig(name, version, tuple(dependencies), requirements)
            catalog.add(name, version, config)
    requested = draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
    ranges = ["*", "^0.1", "^1", ">=1.0,<2", "~0.2.0"]
    requests = [Request(name, parse_range(draw(st.sampled_from(ranges)))) for name in requested]
    return catalog, requests


def valid(
    assignment: Mapping[str, Version],
    catalog: MemoryCatalog,
    requests: list[Request],
    policy: str,
) -> bool:
    if any(r.name not in assignment or not r.range.allows(assignment[r.name]) for r in requests):
        return False
    for name, version in assignment.items():
        config = catalog.config(name, version)
        if unmet_requirements(config.requirements, ENGINE):
            return False
        for dep in config.dependencies:
            choices = [(dep.name, dep.version)] + [(a.name, a.version) for a in dep.alternatives]
            if not any(
                n in assignment and compatible_range(v, policy).allows(assignment[n])
                for n, v in choices
            ):
                return False
    return True


def exhaustive_solution_exists(
    catalog: MemoryCatalog, requests: list[Request], policy: str
) -> bool:
    names = sorted(catalog._configs)
    options = [[None, *catalog.versions(name)] for name in names]
    for combination in itertools.product(*options):
        assignment = {n: v for n, v in zip(names, combination, strict=True) if v is not None}
        if valid(assignment, catalog, requests, policy):
            return True
    return False


def check(
    catalog: MemoryCatalog,
    requests: list[Request],
    policy: str,
    prefer: dict[str, Version] | None = None,
) -> None:
    try:
        resolution = Solver(catalog, engine=ENGINE, policy=policy, prefer=prefer).solve(requests)
    except FeedsError:
        assert not exhaustive_solution_exists(catalog, requests, policy)
        return
    assignment = {name: s.version for name, s in resolution.selected.items()}
    assert valid(assignment, catalog, requests, policy)
    # Each selected artifact is requested or reached through a dependency edge.
    reached = {r.name for r in requests}
    for selected in resolution.selected.values():
        reached.update(selected.dependencies)
    assert reached == set(resolution.selected)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_plans_are_valid_and_failures_are_real_caret(
    graph: tuple[MemoryCatalog, list[Request]],
) -> None:
    check(*graph, policy="caret")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_plans_are_valid_and_failures_are_real_same_major(
    graph: tuple[MemoryCatalog, list[Request]],
) -> None:
    check(*graph, policy=SAME_MAJOR)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(POOL), min_size=1, max_size=6, unique=True))
def test_a_lone_request_gets_the_newest_version(published: list[str]) -> None:
    catalog = MemoryCatalog()
    for version in published:
        catalog.publish("solo", version)
    resolution = Solver(catalog).solve([Request("solo")])
    assert resolution.selected["solo"].version == max(parse_version(v) for v in published)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.data())
def test_lock_preferences_never_change_what_is_solvable(
    graph: tuple[MemoryCatalog, list[Request]], data: st.DataObject
) -> None:
    catalog, requests = graph
    prefer = {
        name: data.draw(st.sampled_from(sorted(catalog.versions(name))))
        for name in data.draw(st.lists(st.sampled_from(sorted(catalog._configs)), unique=True))
    }
    check(catalog, requests, "caret", prefer)
