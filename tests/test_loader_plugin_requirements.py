"""Plugin requirement checks, transcribed from Falco's
unit_tests/engine/test_plugin_requirements.cpp (load must succeed, then every requirement entry
must be met by one of its alternatives at a compatible version)."""

from __future__ import annotations

import pytest

from engine.loader import load_contents

K8S_01 = "- required_plugin_versions:\n  - name: k8saudit\n    version: 0.1.0\n"
K8S_JSON = K8S_01 + "  - name: json\n    version: 0.3.0\n"
K8S_01_02 = K8S_01 + "- required_plugin_versions:\n  - name: k8saudit\n    version: 0.2.0\n"
K8S_ALT = K8S_01 + "    alternatives:\n      - name: k8saudit-other\n        version: 0.4.0\n"
MULTI_ALT = K8S_ALT + (
    "  - name: json\n    version: 0.3.0\n"
    "    alternatives:\n      - name: json2\n        version: 0.1.0\n"
)
MULTI_ALT_VERSIONS = MULTI_ALT + (
    "- required_plugin_versions:\n  - name: k8saudit\n    version: 1.0.0\n"
    "    alternatives:\n      - name: k8saudit-other\n        version: 0.7.0\n"
)
OVERLAPPING = K8S_01 + "    alternatives:\n      - name: k8saudit\n        version: 0.4.0\n"


def requirements_met(provided: dict[str, str], content: str) -> bool:
    loaded = load_contents([("test", content)], use_cache=False)
    if not loaded.successful:
        return False
    return loaded.unmet_plugin_requirements(provided) == []


@pytest.mark.parametrize(
    ("provided", "content"),
    [
        ({"k8saudit": "0.1.0"}, ""),
        ({"k8saudit": "0.1.0"}, K8S_01),
        ({"k8saudit": "0.2.0"}, K8S_01),
        ({"k8saudit": "0.1.0", "json": "0.3.0"}, K8S_JSON),
        ({"k8saudit": "0.2.0"}, K8S_01_02),
        ({"k8saudit-other": "0.5.0"}, K8S_ALT),
        ({"k8saudit-other": "0.5.0", "json2": "0.5.0"}, MULTI_ALT),
        ({"k8saudit-other": "0.7.0", "json2": "0.5.0"}, MULTI_ALT_VERSIONS),
    ],
)
def test_check_plugin_requirements_success(provided: dict[str, str], content: str) -> None:
    assert requirements_met(provided, content)


@pytest.mark.parametrize(
    ("provided", "content"),
    [
        ({}, K8S_01),
        ({"k8saudit": "0.1.0"}, K8S_01.replace("name: k8saudit", "name: k8saudit2")),
        ({"k8saudit": "0.1.0"}, K8S_01.replace("0.1.0", "0.2.0")),
        ({"k8saudit": "0.1.0"}, K8S_JSON),
        ({"k8saudit": "0.1.0"}, K8S_01_02),
        ({"k8saudit2": "0.5.0"}, K8S_ALT),
        ({"k8saudit": "0.5.0"}, OVERLAPPING),  # a duplicate alternative is a load error
        ({"k8saudit-other": "0.5.0", "json3": "0.5.0"}, MULTI_ALT),
        ({"k8saudit": "0.7.0", "json2": "0.5.0"}, MULTI_ALT_VERSIONS.replace("0.1.0", "0.4.0", 1)),
    ],
)
def test_check_plugin_requirements_reject(provided: dict[str, str], content: str) -> None:
    assert not requirements_met(provided, content)
