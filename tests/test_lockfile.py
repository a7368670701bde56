"""Plans (actions, downgrade refusal) and falconet.lock (stable YAML, --locked, --update)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from feeds.catalog import MemoryCatalog
from feeds.errors import ConfigError, NotFoundError
from feeds.lockfile import LockFile, lock_from, read_lock, require_lock, write_lock
from feeds.plan import (
    DOWNGRADE,
    INSTALL,
    KEEP,
    PROVIDED,
    REFUSED,
    REPLACE,
    UPGRADE,
    DowngradeRefusedError,
    build_plan,
)
from feeds.solver import Request, resolve
from feeds.versions import parse_range, parse_version


@dataclass(frozen=True)
class Installed:
    version: str
    digest: str


class DigestCatalog(MemoryCatalog):
    """A memory catalog that knows digests, as the registry-backed one does."""

    def digest(self, name: str, version: object) -> str | None:
        return f"sha256:{name}-{version}"


def catalog() -> DigestCatalog:
    cat = DigestCatalog()
    cat.publish("cloudtrail-rules", "0.12.0", depends_on=["cloudtrail:0.12.0", "json:0.7.0"])
    cat.publish("cloudtrail-rules", "0.13.0", depends_on=["cloudtrail:0.13.0", "json:0.7.0"])
    for version in ("0.12.0", "0.12.4", "0.13.0"):
        cat.publish("cloudtrail", version)
    for version in ("0.7.0", "0.7.2"):
        cat.publish("json", version)
    return cat


def request(text: str) -> Request:
    name, _, wanted = text.partition("@")
    return Request(name, parse_range(wanted or "*"), text)


def test_plan_lists_every_artifact_with_reason_and_action() -> None:
    cat = catalog()
    resolution = resolve([request("cloudtrail-rules@~0.12")], cat)
    installed = {
        "json": Installed("0.7.2", "sha256:json-0.7.2"),
        "cloudtrail": Installed("0.12.0", "sha256:old"),
    }
    plan = build_plan(resolution, cat, installed)
    rows = {e.name: (e.version, e.action, e.reason) for e in plan.entries}
    assert rows == {
        "cloudtrail-rules": ("0.12.0", INSTALL, "requested"),
        "cloudtrail": ("0.12.4", UPGRADE, "dependency of cloudtrail-rules"),
        "json": ("0.7.2", KEEP, "dependency of cloudtrail-rules"),
    }
    assert plan.entry("cloudtrail").digest == "sha256:cloudtrail-0.12.4"
    assert [e.name for e in plan.changes] == ["cloudtrail", "cloudtrail-rules"]
    assert plan.to_json()["artifacts"][0]["name"] == "cloudtrail"
    plan.check()  # nothing refused


def test_downgrade_is_refused_unless_allowed() -> None:
    # falcoctl#780: installing cloudtrail-rules 0.12 must not silently downgrade cloudtrail 0.13.
    cat = catalog()
    resolution = resolve([request("cloudtrail-rules@~0.12")], cat)
    installed = {"cloudtrail": Installed("0.13.0", "sha256:cloudtrail-0.13.0")}
    plan = build_plan(resolution, cat, installed)
    assert plan.entry("cloudtrail").action == REFUSED
    with pytest.raises(DowngradeRefusedError) as caught:
        plan.check()
    assert "cloudtrail 0.13.0 -> 0.12.4" in str(caught.value)
    assert caught.value.hint is not None and "--allow-downgrade" in caught.value.hint
    allowed = build_plan(resolution, cat, installed, allow_downgrade=True)
    assert allowed.entry("cloudtrail").action == DOWNGRADE
    allowed.check()


def test_same_version_with_a_new_digest_is_a_replace() -> None:
    cat = catalog()
    resolution = resolve([request("json@0.7.2")], cat)
    plan = build_plan(resolution, cat, {"json": Installed("0.7.2", "sha256:repushed")})
    assert plan.entry("json").action == REPLACE


def test_engine_provided_plugins_are_planned_as_provided() -> None:
    cat = catalog()
    resolution = resolve([request("cloudtrail-rules")], cat, provided={"json": "0.7.5"})
    plan = build_plan(resolution, cat)
    entry = plan.entry("json")
    assert (entry.action, entry.digest, entry.version) == (PROVIDED, None, "0.7.5")


def test_lock_round_trips_in_a_stable_order(tmp_path: Path) -> None:
    cat = catalog()
    resolution = resolve([request("cloudtrail-rules@~0.12")], cat)
    lock = lock_from(resolution, build_plan(resolution, cat))
    path = tmp_path / "falconet.lock"
    write_lock(path, lock)
    text = path.read_text()
    assert text.index("cloudtrail:") < text.index("cloudtrail-rules:") < text.index("json:")
    assert "cloudtrail-rules@~0.12:" in text
    again = read_lock(path)
    assert again == lock
    write_lock(path, again)
    assert path.read_text() == text  # byte-identical: reviewable diffs
    ref = again.artifact_for("cloudtrail-rules@~0.12")
    assert (ref.version, ref.digest) == ("0.12.0", "sha256:cloudtrail-rules-0.12.0")
    closure = again.closure(["cloudtrail-rules@~0.12"])
    assert [(a.name, a.version) for a in closure] == [
        ("cloudtrail", "0.12.4"),
        ("cloudtrail-rules", "0.12.0"),
        ("json", "0.7.2"),
    ]


def test_locked_install_needs_the_ref_in_the_lock(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="--locked needs a lock file"):
        require_lock(tmp_path / "falconet.lock")
    cat = catalog()
    resolution = resolve([request("json")], cat)
    lock = lock_from(resolution, build_plan(resolution, cat))
    with pytest.raises(NotFoundError, match=r"falco-rules is not in falconet\.lock"):
        lock.closure(["falco-rules"])


def test_update_re_resolves_one_entry_and_its_dependencies() -> None:
    cat = catalog()
    first = resolve([request("cloudtrail-rules"), request("json")], cat)
    lock = lock_from(first, build_plan(first, cat))
    cat.publish("cloudtrail-rules", "0.13.1", depends_on=["cloudtrail:0.13.0", "json:0.7.0"])
    cat.publish("cloudtrail", "0.13.2")
    cat.publish("json", "0.7.9")
    kept = resolve(
        [request("cloudtrail-rules"), request("json")], cat, prefer=lock.locked_versions()
    )
    assert {n: str(s.version) for n, s in kept.selected.items()} == {
        "cloudtrail-rules": "0.13.0",
        "cloudtrail": "0.13.0",
        "json": "0.7.2",
    }
    updated = resolve(
        [request("cloudtrail-rules"), request("json")],
        cat,
        prefer=lock.locked_versions(["cloudtrail-rules"]),
    )
    assert {n: str(s.version) for n, s in updated.selected.items()} == {
        "cloudtrail-rules": "0.13.1",
        "cloudtrail": "0.13.2",
        "json": "0.7.9",  # a dependency of the updated entry: unlocked with it
    }
    only_json = resolve(
        [request("cloudtrail-rules"), request("json")], cat, prefer=lock.locked_versions(["json"])
    )
    assert str(only_json.selected["cloudtrail-rules"].version) == "0.13.0"
    assert str(only_json.selected["json"].version) == "0.7.9"
    with pytest.raises(NotFoundError, match="ghost"):
        lock.locked_versions(["ghost"])


def test_lock_drops_artifacts_no_ref_needs_any_more() -> None:
    cat = catalog()
    cat.publish("cloudtrail-rules", "0.14.0", depends_on=["cloudtrail:0.13.0"])
    pin_old = {"cloudtrail-rules": parse_range("0.13.0")}
    old = resolve([request("cloudtrail-rules")], cat, pins=pin_old)
    lock = lock_from(old, build_plan(old, cat))
    assert "json" in lock.artifacts
    new = resolve([request("cloudtrail-rules")], cat)
    relocked = lock_from(new, build_plan(new, cat), previous=lock)
    assert set(relocked.artifacts) == {"cloudtrail", "cloudtrail-rules"}


@pytest.mark.parametrize(
    "text",
    ["not: [valid", "lock_version: 99\n", "lock_version: 1\nrefs:\n  a: {name: b}\n"],
)
def test_malformed_lock_is_a_clear_error(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LockFile.from_yaml(text, "falconet.lock")
    assert caught.value.hint == "delete it and run install to regenerate it"


def test_a_locked_version_that_no_longer_fits_yields_to_the_constraints() -> None:
    cat = catalog()
    first = resolve([request("json")], cat)
    lock = lock_from(first, build_plan(first, cat))
    assert lock.locked_versions() == {"json": parse_version("0.7.2")}
    cat.publish("json", "0.8.1")
    cat.publish("new-rules", "1.0.0", depends_on=["json:0.8.0"])
    later = resolve([request("json"), request("new-rules")], cat, prefer=lock.locked_versions())
    assert str(later.selected["json"].version) == "0.8.1"


def test_installed_requests_are_kept_but_not_locked() -> None:
    cat = catalog()
    requests = [request("json@0.7.0"), Request("cloudtrail", installed=True)]
    resolution = resolve(requests, cat, prefer={"cloudtrail": parse_version("0.12.0")})
    assert resolution.selected["cloudtrail"].reason == "installed"
    assert str(resolution.selected["cloudtrail"].version) == "0.12.0"
    lock = lock_from(resolution, build_plan(resolution, cat))
    assert lock.refs == {"json@0.7.0": "json"}
    assert set(lock.artifacts) == {"json"}
