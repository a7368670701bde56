"""The solver against artifacts pushed to a real registry (Debian's docker-registry): tag lists,
config layers and digests come over HTTP, as `install` will see them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from feeds.errors import NotFoundError, RequirementUnmetError, ResolutionError
from feeds.plan import INSTALL, REFUSED, build_plan
from feeds.registry_catalog import RegistryCatalog
from feeds.requirements import EngineVersions
from feeds.solver import Request, resolve
from feeds.versions import parse_range, parse_version
from registry.artifacts import PushSpec, parse_dependency, parse_requirement, push_artifact
from registry.reference import parse_reference
from registry.store import ClientOptions, open_store

pytestmark = pytest.mark.registry

Publish = Callable[..., str]


@pytest.fixture
def published(registry, tmp_path: Path) -> Iterator[tuple[Publish, RegistryCatalog]]:
    options = ClientOptions(plain_http=True, cache_dir=tmp_path / "cache")
    locate = {}

    def locator(name: str) -> str:
        if name not in locate:
            raise NotFoundError(f"cannot find {name} among the configured indexes")
        return locate[name]

    def publish(name: str, version: str, depends_on=(), requires=(), floating=False) -> str:
        locate[name] = f"{registry.host}/falcosecurity/{name}"
        rules = tmp_path / f"{name}-{version}.yaml"
        rules.write_text(f"- list: {name.replace('-', '_')}_items\n  items: []\n")
        store = open_store(parse_reference(f"{locate[name]}:{version}"), options)
        result = push_artifact(
            store,
            PushSpec(
                artifact_type="rulesfile",
                files=[rules],
                version=version,
                name=name,
                dependencies=[parse_dependency(d) for d in depends_on],
                requirements=[parse_requirement(r) for r in requires],
                add_floating_tags=floating,
            ),
        )
        return result.digest

    def open_repository(locator_text: str):
        return open_store(parse_reference(f"{locator_text}:latest"), options)

    with RegistryCatalog(locator, open_repository) as catalog:
        yield publish, catalog


def chosen(resolution) -> dict[str, str]:
    return {name: str(s.version) for name, s in resolution.selected.items()}


def test_shared_dependency_bumped_to_the_newest_compatible(published) -> None:
    publish, catalog = published
    publish("k8saudit-rules", "0.9.0", depends_on=["json:0.7.0"])
    publish("cloudtrail-rules", "0.12.0", depends_on=["json:0.7.1"])
    for version in ("0.7.0", "0.7.1", "0.7.4"):
        publish("json", version, floating=True)  # floating tags 0, 0.7 must be ignored
    newest = publish("json", "0.8.0")
    assert newest.startswith("sha256:")
    resolution = resolve([Request("k8saudit-rules"), Request("cloudtrail-rules")], catalog)
    assert chosen(resolution) == {
        "k8saudit-rules": "0.9.0",
        "cloudtrail-rules": "0.12.0",
        "json": "0.7.4",
    }
    assert catalog.tag_list_requests == 3  # one per repository, however often it was asked


def test_plan_carries_the_registry_digest(published) -> None:
    publish, catalog = published
    digest = publish("falco-rules", "5.1.0")
    publish("falco-rules", "5.0.0")
    resolution = resolve([Request("falco-rules", parse_range("^5"), "falco-rules@^5")], catalog)
    plan = build_plan(resolution, catalog)
    entry = plan.entry("falco-rules")
    assert (entry.version, entry.digest, entry.action) == ("5.1.0", digest, INSTALL)
    assert entry.reference.endswith(f"/falcosecurity/falco-rules@{digest}")


def test_major_conflict_names_both_chains(published) -> None:
    publish, catalog = published
    publish("cloudtrail-rules", "0.12.0", depends_on=["json:0.7.0"])
    publish("k8saudit-rules", "0.9.0", depends_on=["json:1.0.0"])
    publish("json", "0.7.0")
    publish("json", "1.0.0")
    with pytest.raises(ResolutionError) as caught:
        resolve([Request("cloudtrail-rules"), Request("k8saudit-rules")], catalog)
    assert "cloudtrail-rules 0.12.0 -> json ^0.7.0" in str(caught.value)
    assert "k8saudit-rules 0.9.0 -> json ^1.0.0" in str(caught.value)


def test_backtracking_and_alternatives_over_real_tags(published) -> None:
    publish, catalog = published
    publish("k8saudit-rules", "0.10.0", depends_on=["k8saudit:0.20.0|k8saudit-eks:0.13.0"])
    publish("k8saudit-rules", "0.9.0", depends_on=["k8saudit:0.18.0|k8saudit-eks:0.12.0"])
    publish("k8saudit", "0.18.2")
    publish("k8saudit-eks", "0.12.5")
    installed = {"k8saudit-eks": parse_version("0.12.5")}
    resolution = resolve([Request("k8saudit-rules")], catalog, installed=installed)
    # 0.10.0 needs k8saudit 0.20 or eks 0.13, neither published: back to 0.9.0 with the
    # installed alternative preferred over the primary.
    assert chosen(resolution) == {"k8saudit-rules": "0.9.0", "k8saudit-eks": "0.12.5"}
    assert resolution.selected["k8saudit-eks"].reason.startswith("alternative for k8saudit")


def test_latest_compatible_and_unmet_requirements(published) -> None:
    publish, catalog = published
    publish("falco-rules", "4.0.0", requires=["engine_version_semver:0.50.0"])
    publish("falco-rules", "5.0.0", requires=["engine_version_semver:0.60.0"])
    engine = EngineVersions.from_document({"engine_version_semver": "0.57.0"}, "Falco 0.41")
    best = resolve(
        [Request("falco-rules", parse_range("latest-compatible"))], catalog, engine=engine
    )
    assert chosen(best) == {"falco-rules": "4.0.0"}
    with pytest.raises(RequirementUnmetError) as caught:
        resolve([Request("falco-rules", parse_range("^5"))], catalog, engine=engine)
    assert "engine_version_semver 0.60.0" in str(caught.value)
    assert caught.value.hint is not None and "falco-rules 4.0.0" in caught.value.hint


def test_downgrade_of_an_installed_dependency_is_refused(published) -> None:
    publish, catalog = published
    publish("cloudtrail-rules", "0.12.0", depends_on=["cloudtrail:0.12.0"])
    publish("cloudtrail", "0.12.1")
    publish("cloudtrail", "0.13.0")

    class Record:
        version = "0.13.0"
        digest = "sha256:" + "0" * 64

    resolution = resolve([Request("cloudtrail-rules")], catalog)
    plan = build_plan(resolution, catalog, {"cloudtrail": Record()})
    assert plan.entry("cloudtrail").action == REFUSED


def test_unknown_dependency_name(published) -> None:
    publish, catalog = published
    publish("rules", "1.0.0", depends_on=["ghost:1.0.0"])
    with pytest.raises(NotFoundError, match="ghost"):
        resolve([Request("rules")], catalog)


def test_registry_catalog_hands_the_installer_what_it_fetched(published) -> None:
    publish, catalog = published
    digest = publish("rules", "1.0.0", depends_on=["plugin:1.0.0"])
    publish("plugin", "1.0.0")
    resolution = resolve([Request("rules")], catalog)
    version = resolution.selected["rules"].version
    assert catalog.resolved("rules", version).root.digest == digest
    assert catalog.resolved("rules", version).artifact_type == "rulesfile"
    assert catalog.config("rules", version).dependencies[0].name == "plugin"
    assert catalog.store("rules").reference.repository == "falcosecurity/rules"
