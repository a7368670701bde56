"""Indexes in falcoctl's format: parsing, the cache with ETag revalidation, add/list/remove."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeds.indexes import IndexStore, dump_index, parse_duration, parse_index, search
from tests.conftest import CliRunner
from tests.support.http_server import StaticServer

INDEX = """\
- name: falco-rules
  type: rulesfile
  registry: ghcr.io
  repository: falcosecurity/rules/falco-rules
  description: Falco rules that are loaded by default
  home: https://github.com/falcosecurity/rules/blob/main/rules/falco_rules.yaml
  keywords: [falco-rules]
  license: apache-2.0
  maintainers: [{email: cncf-falco-dev@lists.cncf.io, name: The Falco Authors}]
  sources: [https://github.com/falcosecurity/rules/blob/main/rules/falco_rules.yaml]
  signature:
    cosign:
      certificate-oidc-issuer: https://token.actions.githubusercontent.com
      certificate-identity-regexp: https://github.com/falcosecurity/rules/
- name: k8saudit
  type: plugin
  registry: ghcr.io
  repository: falcosecurity/plugins/plugin/k8saudit
  keywords: [audit, kubernetes]
  compliance: [pci-dss, soc2]
"""


@pytest.fixture
def index_server() -> Iterator[StaticServer]:
    server = StaticServer({"/index.yaml": INDEX.encode()}).start()
    yield server
    server.stop()


def test_parse_reads_falcoctl_entries_and_extensions() -> None:
    entries = parse_index(INDEX, "test", "t")
    assert [e.name for e in entries] == ["falco-rules", "k8saudit"]
    assert entries[0].locator == "ghcr.io/falcosecurity/rules/falco-rules"
    assert entries[0].signature["cosign"]["certificate-identity-regexp"].endswith("/rules/")
    assert entries[1].compliance == ("pci-dss", "soc2")


def test_duplicate_names_are_an_error() -> None:
    doubled = INDEX + "- {name: k8saudit, type: plugin, registry: r, repository: x}\n"
    with pytest.raises(Exception, match="duplicate entry found: k8saudit"):
        parse_index(doubled, "test", "t")


def test_unknown_keys_are_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        parse_index(
            "- {name: a, type: asset, registry: r, repository: x, colour: red}\n", "test", "t"
        )
    assert "unknown keys colour" in caplog.text


def test_dump_is_sorted_and_round_trips() -> None:
    entries = parse_index(INDEX, "test", "t")
    again = parse_index(dump_index(reversed(entries)), "test", "t")
    assert [e.name for e in again] == ["falco-rules", "k8saudit"]
    assert again[0].to_yaml_dict() == entries[0].to_yaml_dict()


def test_cache_revalidates_with_etag(tmp_path: Path, index_server: StaticServer) -> None:
    store = IndexStore(
        tmp_path / "config", tmp_path / "cache", [], include_defaults=False, ttl_seconds=0
    )
    store.add("mine", f"{index_server.url}/index.yaml")
    assert len(index_server.requests) == 1
    store.update(["mine"])
    second = index_server.requests[-1]
    assert second.headers.get("If-None-Match")  # conditional: unchanged index, no body
    assert [e.name for e in store.sources[0].entries] == ["falco-rules", "k8saudit"]
    fresh = IndexStore(
        tmp_path / "config", tmp_path / "cache", [], include_defaults=False, ttl_seconds=3600
    )
    fresh.load_all()
    assert len(index_server.requests) == 2  # within the TTL: served from cache, no request


def test_add_refuses_unreachable_index_and_duplicates(
    tmp_path: Path, index_server: StaticServer
) -> None:
    store = IndexStore(tmp_path / "config", tmp_path / "cache", [], include_defaults=False)
    with pytest.raises(Exception, match="HTTP 404"):
        store.add("missing", f"{index_server.url}/nope.yaml")
    assert not (tmp_path / "config" / "indexes.yaml").exists()
    store.add("mine", f"{index_server.url}/index.yaml")
    with pytest.raises(Exception, match="already exists"):
        store.add("mine", f"{index_server.url}/index.yaml")


def test_search_by_name_ratio_keyword_type_and_compliance() -> None:
    entries = parse_index(INDEX, "test", "t")
    assert [e.name for e in search(entries, ["falco-rule"])] == ["falco-rules"]
    assert [e.name for e in search(entries, ["kubernetes"])] == ["k8saudit"]
    assert search(entries, ["kubernetes"], artifact_type="rulesfile") == []
    assert [e.name for e in search(entries, ["audit"], compliance="soc2")] == ["k8saudit"]


def test_durations() -> None:
    assert parse_duration("168h") == 168 * 3600
    assert parse_duration("1h30m") == 5400
    with pytest.raises(Exception, match="invalid duration"):
        parse_duration("soon")


def test_cli_index_add_list_remove(
    run_cli: CliRunner, index_server: StaticServer, falconet_home: Path
) -> None:
    added = run_cli("index", "add", "mine", f"{index_server.url}/index.yaml")
    assert added.returncode == 0, added.stderr
    assert "2 entries" in added.stdout
    listed = json.loads(run_cli("index", "list", "-o", "json").stdout)
    by_name = {r["name"]: r for r in listed}
    assert by_name["mine"]["entries"] == 2 and by_name["mine"]["origin"] == "added"
    assert by_name["falconet"]["entries"] >= 1  # the embedded feed is always there
    again = run_cli("index", "add", "mine", f"{index_server.url}/index.yaml")
    assert again.returncode == 2 and "already exists" in again.stderr
    removed = run_cli("index", "remove", "mine")
    assert removed.returncode == 0
    listed = json.loads(run_cli("index", "list", "-o", "json").stdout)
    assert "mine" not in {r["name"] for r in listed}
    missing = run_cli("index", "remove", "mine")
    assert missing.returncode == 3 and "no index named mine" in missing.stderr
