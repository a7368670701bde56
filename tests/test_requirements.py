"""Requirement checks against Falco /versions documents: falcoctl's follower cases, Falco's
plugin requirement semantics, and loading a /versions document from a file or a URL."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from feeds.errors import ConfigError, NotFoundError, RequirementUnmetError
from feeds.requirements import (
    EngineVersions,
    EngineVersionsNetworkError,
    check_requirement,
    ensure_plugin_requirements,
    ensure_requirements,
    load_engine_versions,
    parse_required_plugin_versions,
    unmet_plugin_requirements,
)
from registry.artifacts import Requirement

FALCO_0_26 = {"engine_version_semver": "0.26.0", "engine_version": "26"}
OLD_FALCO = {"engine_version": "26"}


def engine(document: dict[str, object]) -> EngineVersions:
    return EngineVersions.from_document(document, "test")


# falcoctl's follower tests (cmd/artifact/follow): (requirement, value, falco document, met)
FOLLOWER_CASES = [
    ("engine_version_semver", "0.26.0", FALCO_0_26, True),
    ("engine_version_semver", "26", FALCO_0_26, False),  # integer against a semver key
    ("engine_version_semver", "0.26.0", OLD_FALCO, False),  # old Falco lacks the key
    ("engine_version", "26", OLD_FALCO, True),
    ("engine_version", "0.26.0", OLD_FALCO, False),  # semver against an integer key
]


@pytest.mark.parametrize(("name", "required", "document", "met"), FOLLOWER_CASES)
def test_falcoctl_follower_cases(
    name: str, required: str, document: dict[str, object], met: bool
) -> None:
    assert (check_requirement(name, required, engine(document)) is None) is met


@pytest.mark.parametrize(
    ("name", "required", "reason"),
    [
        ("engine_version_semver", "0.27.0", "engine is older"),
        ("engine_version_semver", "1.0.0", "major version mismatch"),
        ("engine_version", "27", "engine is older"),
        ("plugin_api_version", "3.0.0", "unrecognized requirement"),
        ("engine_version_semver", "0.x", "required version is not semver"),
    ],
)
def test_unmet_reasons(name: str, required: str, reason: str) -> None:
    unmet = check_requirement(name, required, engine(FALCO_0_26))
    assert unmet is not None and unmet.reason == reason


def test_integer_engine_version_is_read_from_the_semver_when_alone() -> None:
    # Falco reads required_engine_version N as 0.N.0.
    only_semver = engine({"engine_version_semver": "0.57.0"})
    assert check_requirement("engine_version", "57", only_semver) is None
    assert check_requirement("engine_version", "58", only_semver) is not None


def test_unmet_error_names_requirement_and_engine_version() -> None:
    requirements = [
        Requirement("engine_version_semver", "0.58.0"),
        Requirement("plugin_api_version", "3.0.0"),
    ]
    target = engine({**FALCO_0_26, "plugin_api_version": "3.11.0"})
    with pytest.raises(RequirementUnmetError) as caught:
        ensure_requirements("falco-rules 5.1.0", requirements, target)
    message = str(caught.value)
    assert "falco-rules 5.1.0 requires engine_version_semver 0.58.0" in message
    assert "engine has 0.26.0" in message
    assert "plugin_api_version" not in message  # met
    assert caught.value.exit_status == "requirement_unmet"


def test_falconet_engine_versions_come_from_the_engine_package() -> None:
    from engine.versions import ENGINE_VERSION_SEMVER, PLUGIN_API_VERSION

    local = load_engine_versions(None)
    assert local.values["engine_version_semver"] == ENGINE_VERSION_SEMVER
    assert local.values["plugin_api_version"] == PLUGIN_API_VERSION
    ensure_requirements(
        "falco-rules", [Requirement("engine_version_semver", ENGINE_VERSION_SEMVER)], local
    )


DOCUMENT = {
    "falco_version": "0.42.0",
    "libs_version": "0.22.0",
    "plugin_api_version": "3.11.0",
    "engine_version": "57",
    "engine_version_semver": "0.57.0",
    "plugin_versions": {"container": "0.4.1", "json": "0.7.3"},
}


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "versions.json"
    path.write_text(json.dumps(DOCUMENT))
    loaded = load_engine_versions(str(path))
    assert loaded.engine_version_text == "0.57.0"
    assert loaded.plugin_versions == {"container": "0.4.1", "json": "0.7.3"}
    assert loaded.source == str(path)


@pytest.mark.parametrize(
    ("content", "error", "text"),
    [
        (None, NotFoundError, "does not exist"),
        ("{nope", ConfigError, "not JSON"),
        ("[1, 2]", ConfigError, "not a Falco /versions document"),
    ],
)
def test_bad_files(tmp_path: Path, content: str | None, error: type, text: str) -> None:
    path = tmp_path / "versions.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(error, match=text) as caught:
        load_engine_versions(str(path))
    assert caught.value.hint


class _Versions(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/versions" else 404
        body = json.dumps(DOCUMENT).encode() if status == 200 else b"not found"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def falco_webserver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Versions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_load_from_url(falco_webserver: str) -> None:
    loaded = load_engine_versions(f"{falco_webserver}/versions")
    assert loaded.values["falco_version"] == "0.42.0"
    with pytest.raises(EngineVersionsNetworkError, match="HTTP 404"):
        load_engine_versions(f"{falco_webserver}/nope")


def test_unreachable_url_is_a_network_error() -> None:
    # A port just released by this process has no listener: the connection is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EngineVersionsNetworkError) as caught:
        load_engine_versions(f"http://127.0.0.1:{port}/versions")
    assert caught.value.exit_status == "network"
    assert caught.value.hint is not None


# -- required_plugin_versions (Falco's check after loading rules) -----------------------------


def upstream_requirements(shared: Path, name: str) -> list:
    document = yaml.safe_load((shared / "upstream-rules" / name).read_text())
    item = next(i for i in document if "required_plugin_versions" in i)
    return parse_required_plugin_versions(item["required_plugin_versions"])


def test_k8saudit_rules_accept_any_alternative(shared_dir: Path) -> None:
    required = upstream_requirements(shared_dir, "k8s_audit_rules.yaml")
    assert unmet_plugin_requirements(required, {"k8saudit-eks": "0.12.3", "json": "0.7.1"}) == []
    unmet = unmet_plugin_requirements(required, {"k8saudit": "0.17.0", "json": "0.7.1"})
    assert [entry.name for entry in unmet] == ["k8saudit"]
    # Falco's semantics: same major and at least the version (1.0.0 is another major).
    assert (
        unmet_plugin_requirements(required, {"k8saudit": "0.20.0", "json": "1.0.0"})[0].name
        == "json"
    )


def test_plugin_requirement_error_lists_every_choice(shared_dir: Path) -> None:
    required = upstream_requirements(shared_dir, "k8s_audit_rules.yaml")
    with pytest.raises(RequirementUnmetError) as caught:
        ensure_plugin_requirements("k8s_audit_rules.yaml", required, {"json": "0.7.0"})
    message = str(caught.value)
    assert "must load one of: k8saudit (>= 0.18.0), k8saudit-aks (>= 0.6.0)" in message
    assert "loaded: json 0.7.0" in message


def test_duplicate_names_in_one_entry_are_rejected() -> None:
    with pytest.raises(ConfigError, match="repeats a name"):
        parse_required_plugin_versions(
            [
                {
                    "name": "json",
                    "version": "0.7.0",
                    "alternatives": [{"name": "json", "version": "1"}],
                }
            ]
        )
