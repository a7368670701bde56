"""The solver against an in-memory catalog: falcoctl's dependency cases (deps_test.go), then
what falconet does differently (newest compatible, backtracking, alternatives, requirements)."""

from __future__ import annotations

import pytest

from feeds.catalog import MemoryCatalog
from feeds.errors import NotFoundError, RequirementUnmetError, ResolutionError
from feeds.requirements import EngineVersions
from feeds.solver import Request, Resolution, Solver, resolve
from feeds.versions import SAME_MAJOR, parse_range, parse_version


def versions(resolution: Resolution) -> dict[str, str]:
    return {name: str(s.version) for name, s in resolution.selected.items()}


def req(text: str) -> Request:
    name, _, wanted = text.partition("@")
    return Request(name, parse_range(wanted or "*"), text)


ENGINE = EngineVersions.from_document(
    {"engine_version_semver": "0.57.0", "engine_version": "57", "plugin_api_version": "3.11.0"},
    "test engine",
)


# -- falcoctl's cases -----------------------------------------------------------------------


def test_single_dependency_is_added() -> None:
    catalog = MemoryCatalog()
    catalog.publish("ref1", "1.0.0", depends_on=["dep1:1.2.3"])
    catalog.publish("dep1", "1.2.3")
    resolution = resolve([req("ref1")], catalog)
    assert versions(resolution) == {"ref1": "1.0.0", "dep1": "1.2.3"}
    assert resolution.selected["dep1"].reason == "dependency of ref1"
    assert resolution.selected["ref1"].reason == "requested"
    assert resolution.closure("ref1") == ["dep1"]


def test_shared_dependency_is_bumped_to_the_highest_required() -> None:
    catalog = MemoryCatalog()
    catalog.publish("ref1", "1.0.0", depends_on=["dep1:1.2.3"])
    catalog.publish("ref2", "1.0.0", depends_on=["dep1:1.3.0"])
    catalog.publish("dep1", "1.2.3")
    catalog.publish("dep1", "1.3.0")
    resolution = resolve([req("ref1"), req("ref2")], catalog)
    assert versions(resolution)["dep1"] == "1.3.0"
    assert resolution.selected["dep1"].reason == "dependency of ref1, dependency of ref2"


def test_major_conflict_names_both_chains() -> None:
    catalog = MemoryCatalog()
    catalog.publish("cloudtrail-rules", "0.12.0", depends_on=["json:0.7.0"])
    catalog.publish("k8saudit-rules", "0.9.0", depends_on=["json:1.0.0"])
    catalog.publish("json", "0.7.0")
    catalog.publish("json", "1.0.0")
    with pytest.raises(ResolutionError) as caught:
        resolve([req("cloudtrail-rules"), req("k8saudit-rules")], catalog)
    message = str(caught.value)
    assert "cloudtrail-rules 0.12.0 -> json ^0.7.0" in message
    assert "k8saudit-rules 0.9.0 -> json ^1.0.0" in message
    assert caught.value.exit_status == "requirement_unmet"


def test_alternative_provided_by_the_user_is_used() -> None:
    catalog = MemoryCatalog()
    catalog.publish("ref1", "1.0.0", depends_on=["dep1:1.0.0|alt1:1.0.0"])
    catalog.publish("dep1", "1.0.0")
    catalog.publish("alt1", "1.0.0")
    resolution = resolve([req("ref1"), req("alt1")], catalog)
    assert versions(resolution) == {"ref1": "1.0.0", "alt1": "1.0.0"}
    assert resolution.selected["ref1"].dependencies == ("alt1",)


def test_incompatible_requested_alternative_falls_back_to_the_primary() -> None:
    # falcoctl errors here; falconet satisfies the dependency with its primary instead.
    catalog = MemoryCatalog()
    catalog.publish("ref1", "1.0.0", depends_on=["dep1:1.0.0|alt1:2.0.0"])
    catalog.publish("dep1", "1.0.0")
    catalog.publish("alt1", "1.0.0")
    catalog.publish("alt1", "2.0.0")
    resolution = resolve([req("ref1"), req("alt1@^1")], catalog)
    assert versions(resolution) == {"ref1": "1.0.0", "alt1": "1.0.0", "dep1": "1.0.0"}


def test_incompatible_alternative_without_primary_is_a_conflict() -> None:
    catalog = MemoryCatalog()
    catalog.publish("ref1", "1.0.0", depends_on=["dep1:1.0.0|alt1:2.0.0"])
    catalog.publish("alt1", "1.0.0")
    catalog.publish("alt1", "2.0.0")
    catalog.publish("dep1", "2.0.0")  # the primary exists only in an incompatible major
    with pytest.raises(ResolutionError) as caught:
        resolve([req("ref1"), req("alt1@^1")], catalog)
    assert "alt1" in str(caught.value) or "dep1" in str(caught.value)


@pytest.mark.parametrize(
    ("written", "published", "expected"),
    [("1", "1.4.0", "1.4.0"), ("1.2", "1.2.9", "1.2.9"), ("v1.2.3", "1.9.0", "1.9.0")],
)
def test_tolerant_dependency_versions(written: str, published: str, expected: str) -> None:
    catalog = MemoryCatalog()
    catalog.publish("ref1", "1.0.0", depends_on=[f"dep1:{written}"])
    catalog.publish("dep1", "1.0.0")
    catalog.publish("dep1", published)
    catalog.publish("dep1", "2.0.0")
    assert versions(resolve([req("ref1")], catalog))["dep1"] == expected


def test_tolerant_zero_allows_every_0x() -> None:
    catalog = MemoryCatalog()
    catalog.publish("ref1", "1.0.0", depends_on=["dep1:0"])
    for version in ("0.1.0", "0.9.2", "1.0.0"):
        catalog.publish("dep1", version)
    assert versions(resolve([req("ref1")], catalog))["dep1"] == "0.9.2"


def test_transitive_chain_rules_plugin_plugin() -> None:
    catalog = MemoryCatalog()
    catalog.publish("rules", "1.0.0", depends_on=["plugin1:1.0.0"])
    catalog.publish("plugin1", "1.0.0", depends_on=["plugin2:1.0.0"])
    catalog.publish("plugin2", "1.0.0")
    resolution = resolve([req("rules")], catalog)
    assert versions(resolution) == {"rules": "1.0.0", "plugin1": "1.0.0", "plugin2": "1.0.0"}
    assert resolution.selected["plugin2"].reason == "dependency of plugin1"
    assert resolution.closure("rules") == ["plugin1", "plugin2"]


def complex_graph() -> MemoryCatalog:
    catalog = MemoryCatalog()
    catalog.publish("k8saudit-rules", "0.5.0", depends_on=["k8saudit:0.5.0", "json:0.6.0"])
    catalog.publish("cloudtrail-rules", "0.8.0", depends_on=["cloudtrail:0.7.0", "json:0.7.0"])
    catalog.publish("k8saudit", "0.5.0", depends_on=["json:0.6.0"])
    catalog.publish("cloudtrail", "0.7.0", depends_on=["json:0.7.0"])
    catalog.publish("json", "0.6.0")
    catalog.publish("json", "0.7.0")
    return catalog


def test_complex_graph_bumps_json_under_falcos_same_major_rule() -> None:
    # falcoctl's complex case: json required 0.6.0 by one ruleset and 0.7.0 by another.
    requests = [req("k8saudit-rules"), req("cloudtrail-rules")]
    resolution = resolve(requests, complex_graph(), policy=SAME_MAJOR)
    assert versions(resolution) == {
        "k8saudit-rules": "0.5.0",
        "cloudtrail-rules": "0.8.0",
        "k8saudit": "0.5.0",
        "cloudtrail": "0.7.0",
        "json": "0.7.0",
    }


def test_complex_graph_is_a_conflict_under_caret() -> None:
    # Caret semantics: 0.6.x and 0.7.x are different series; the error names both chains.
    with pytest.raises(ResolutionError) as caught:
        resolve([req("k8saudit-rules"), req("cloudtrail-rules")], complex_graph())
    assert "-> json ^0.6.0" in str(caught.value)
    assert "-> json ^0.7.0" in str(caught.value)


# -- beyond falcoctl -------------------------------------------------------------------------


def test_newest_compatible_not_the_minimum_tag() -> None:
    # falcoctl#780: falcoctl pulls json:0.7.0 exactly; falconet takes the newest 0.7.x.
    catalog = MemoryCatalog()
    catalog.publish("cloudtrail-rules", "0.12.0", depends_on=["json:0.7.0"])
    for version in ("0.7.0", "0.7.3", "0.8.0"):
        catalog.publish("json", version)
    assert versions(resolve([req("cloudtrail-rules")], catalog))["json"] == "0.7.3"


def test_backtracks_to_an_older_parent_whose_dependency_fits() -> None:
    catalog = MemoryCatalog()
    catalog.publish("app", "2.0.0", depends_on=["lib:2.0.0"])
    catalog.publish("app", "1.5.0", depends_on=["lib:1.0.0"])
    catalog.publish("other", "1.0.0", depends_on=["lib:1.1.0"])
    catalog.publish("lib", "1.1.0")
    catalog.publish("lib", "2.0.0")
    resolution = resolve([req("app"), req("other")], catalog)
    assert versions(resolution) == {"app": "1.5.0", "other": "1.0.0", "lib": "1.1.0"}


def test_backtracks_over_a_shared_dependency_version() -> None:
    # lib 1.3.0 needs base ^2 but `top` pins base to 1.x: lib must fall back to 1.2.0.
    catalog = MemoryCatalog()
    catalog.publish("top", "1.0.0", depends_on=["lib:1.0.0", "base:1.0.0"])
    catalog.publish("lib", "1.2.0", depends_on=["base:1.0.0"])
    catalog.publish("lib", "1.3.0", depends_on=["base:2.0.0"])
    catalog.publish("base", "1.0.0")
    catalog.publish("base", "2.0.0")
    assert versions(resolve([req("top")], catalog)) == {
        "top": "1.0.0",
        "lib": "1.2.0",
        "base": "1.0.0",
    }


def test_alternative_taken_when_the_primary_cannot_be_satisfied() -> None:
    catalog = MemoryCatalog()
    catalog.publish("k8saudit-rules", "0.9.0", depends_on=["k8saudit:0.18.0|k8saudit-gke:0.9.0"])
    catalog.publish("k8saudit", "0.17.0")
    catalog.publish("k8saudit-gke", "0.9.1")
    resolution = resolve([req("k8saudit-rules")], catalog)
    assert versions(resolution) == {"k8saudit-rules": "0.9.0", "k8saudit-gke": "0.9.1"}
    assert (
        resolution.selected["k8saudit-gke"].reason
        == "alternative for k8saudit (dependency of k8saudit-rules)"
    )


def test_installed_alternative_is_preferred_over_the_primary() -> None:
    catalog = MemoryCatalog()
    catalog.publish("k8saudit-rules", "0.9.0", depends_on=["k8saudit:0.18.0|k8saudit-eks:0.12.0"])
    catalog.publish("k8saudit", "0.18.0")
    catalog.publish("k8saudit-eks", "0.12.0")
    installed = {"k8saudit-eks": parse_version("0.12.0")}
    resolution = resolve([req("k8saudit-rules")], catalog, installed=installed)
    assert set(resolution.selected) == {"k8saudit-rules", "k8saudit-eks"}


def test_plugin_the_engine_provides_is_not_installed() -> None:
    catalog = MemoryCatalog()
    catalog.publish("cloudtrail-rules", "0.12.0", depends_on=["cloudtrail:0.12.0", "json:0.7.0"])
    catalog.publish("cloudtrail", "0.12.0")
    catalog.publish("json", "0.7.0")
    resolution = resolve(
        [req("cloudtrail-rules")], catalog, provided={"json": "0.7.2", "cloudtrail": "0.11.0"}
    )
    assert resolution.selected["json"].provided_by_engine
    assert str(resolution.selected["json"].version) == "0.7.2"
    # The engine's cloudtrail 0.11.0 is too old for ^0.12.0: the registry's is installed.
    assert not resolution.selected["cloudtrail"].provided_by_engine


def test_requested_range_picks_the_newest_in_range() -> None:
    catalog = MemoryCatalog()
    for version in ("4.9.0", "5.0.0", "5.1.0", "5.1.3", "5.2.0-rc.1", "6.0.0"):
        catalog.publish("falco-rules", version)
    assert versions(resolve([req("falco-rules@^5.1")], catalog))["falco-rules"] == "5.1.3"
    assert versions(resolve([req("falco-rules@~5.1.0")], catalog))["falco-rules"] == "5.1.3"
    assert versions(resolve([req("falco-rules@>=5.0,<5.1")], catalog))["falco-rules"] == "5.0.0"
    assert versions(resolve([req("falco-rules")], catalog))["falco-rules"] == "6.0.0"
    pre = Solver(catalog, pre=True).solve([req("falco-rules@^5")])
    assert versions(pre)["falco-rules"] == "5.2.0-rc.1"


def test_range_with_no_release_says_what_exists() -> None:
    catalog = MemoryCatalog()
    catalog.publish("falco-rules", "4.0.0")
    with pytest.raises(ResolutionError) as caught:
        resolve([req("falco-rules@^5")], catalog)
    assert "no release of falco-rules matches ^5" in str(caught.value)
    assert caught.value.hint is not None and "4.0.0" in caught.value.hint


def test_unknown_dependency_is_not_found() -> None:
    catalog = MemoryCatalog()
    catalog.publish("rules", "1.0.0", depends_on=["ghost:1.0.0"])
    with pytest.raises(NotFoundError, match="ghost"):
        resolve([req("rules")], catalog)


def test_latest_compatible_skips_versions_the_engine_cannot_run() -> None:
    # rules#293: the newest falco-rules needs a newer engine than the target.
    catalog = MemoryCatalog()
    catalog.publish("falco-rules", "4.0.0", requires=["engine_version_semver:0.50.0"])
    catalog.publish("falco-rules", "5.0.0", requires=["engine_version_semver:0.57.0"])
    catalog.publish("falco-rules", "5.1.0", requires=["engine_version_semver:0.58.0"])
    resolution = resolve([req("falco-rules@latest-compatible")], catalog, engine=ENGINE)
    assert versions(resolution)["falco-rules"] == "5.0.0"
    assert resolution.selected["falco-rules"].held_back == (
        "falco-rules 5.1.0 requires engine_version_semver 0.58.0 "
        "(engine has 0.57.0: engine is older)"
    )


def test_requirement_unmet_names_requirement_engine_and_what_fits() -> None:
    catalog = MemoryCatalog()
    catalog.publish("falco-rules", "5.0.0", requires=["engine_version_semver:0.57.0"])
    catalog.publish("falco-rules", "6.0.0", requires=["engine_version_semver:0.60.0"])
    with pytest.raises(RequirementUnmetError) as caught:
        resolve([req("falco-rules@^6")], catalog, engine=ENGINE)
    message = str(caught.value)
    assert "engine_version_semver 0.60.0" in message
    assert "0.57.0" in message
    assert caught.value.hint is not None and "falco-rules 5.0.0" in caught.value.hint


def test_requirement_filters_dependency_versions_too() -> None:
    catalog = MemoryCatalog()
    catalog.publish("rules", "1.0.0", depends_on=["plugin:1.0.0"])
    catalog.publish("plugin", "1.0.0", requires=["plugin_api_version:3.0.0"])
    catalog.publish("plugin", "1.1.0", requires=["plugin_api_version:3.20.0"])
    resolution = resolve([req("rules")], catalog, engine=ENGINE)
    assert versions(resolution)["plugin"] == "1.0.0"


def test_pins_from_a_lock_hold_unless_lifted() -> None:
    catalog = MemoryCatalog()
    catalog.publish("rules", "1.0.0", depends_on=["plugin:1.0.0"])
    for version in ("1.0.0", "1.2.0"):
        catalog.publish("plugin", version)
    pinned = resolve([req("rules")], catalog, pins={"plugin": parse_range("1.0.0")})
    assert versions(pinned)["plugin"] == "1.0.0"
    assert versions(resolve([req("rules")], catalog))["plugin"] == "1.2.0"


def test_floating_tags_are_not_versions() -> None:
    catalog = MemoryCatalog()
    catalog.publish("falco-rules", "5.1.0")
    catalog.add("falco-rules", "5")  # a floating tag pointing somewhere
    catalog.add("falco-rules", "latest")
    assert list(map(str, catalog.versions("falco-rules"))) == ["5.1.0"]


def test_deep_chains_do_not_hit_the_recursion_limit() -> None:
    catalog = MemoryCatalog()
    for index in range(1500):
        catalog.publish(f"a{index}", "1.0.0", depends_on=[f"a{index + 1}:1.0.0"])
    catalog.publish("a1500", "1.0.0")
    assert len(resolve([req("a0")], catalog).selected) == 1501


def test_without_dependency_resolution_only_requests_are_chosen() -> None:
    catalog = MemoryCatalog()
    catalog.publish("rules", "1.0.0", depends_on=["ghost:1.0.0"])
    resolution = resolve([req("rules")], catalog, resolve_deps=False)
    assert versions(resolution) == {"rules": "1.0.0"}
    assert resolution.selected["rules"].dependencies == ()


def test_dependency_cycles_resolve() -> None:
    catalog = MemoryCatalog()
    catalog.publish("a", "1.0.0", depends_on=["b:1.0.0"])
    catalog.publish("b", "1.0.0", depends_on=["a:1.0.0"])
    resolution = resolve([req("a")], catalog)
    assert versions(resolution) == {"a": "1.0.0", "b": "1.0.0"}
    assert resolution.closure("a") == ["a", "b"]


def test_a_config_with_a_non_semver_dependency_is_reported() -> None:
    catalog = MemoryCatalog()
    catalog.publish("rules", "1.0.0", depends_on=["json:seven"])
    catalog.publish("json", "1.0.0")
    with pytest.raises(ResolutionError, match=r"invalid artifact config: rules 1\.0\.0 depends"):
        resolve([req("rules")], catalog)


def test_conflict_message_carries_the_whole_chain() -> None:
    catalog = MemoryCatalog()
    catalog.publish("bundle", "2.0.0", depends_on=["cloudtrail-rules:0.12.0"])
    catalog.publish("cloudtrail-rules", "0.12.0", depends_on=["json:0.7.0"])
    catalog.publish("k8saudit-rules", "0.9.0", depends_on=["json:1.0.0"])
    catalog.publish("json", "0.7.0")
    catalog.publish("json", "1.0.0")
    with pytest.raises(ResolutionError) as caught:
        resolve([req("bundle"), req("k8saudit-rules")], catalog)
    assert "bundle 2.0.0 -> cloudtrail-rules 0.12.0 -> json ^0.7.0" in str(caught.value)


def test_search_budget_ends_with_a_clear_error() -> None:
    catalog = MemoryCatalog()
    for index in range(30):
        catalog.publish(f"a{index}", "1.0.0", depends_on=[f"a{index + 1}:1.0.0"])
    catalog.publish("a30", "1.0.0")
    with pytest.raises(ResolutionError, match="gave up after 10 steps") as caught:
        Solver(catalog, max_steps=10).solve([req("a0")])
    assert caught.value.hint is not None and "pin" in caught.value.hint
