"""The JSON sources' field catalogues cover every field the upstream plugin rules use, and each
source declares the upstream plugins (with versions) that the rules files require."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from engine.fields import catalog, known_sources
from engine.sources import provided_plugins

# (rules file below ../shared, source)
RULES_FILES = (
    ("upstream-rules/k8s_audit_rules.yaml", "k8s_audit"),
    ("upstream-rules/k8saudit-gke/k8s_audit_rules_gke.yaml", "k8s_audit"),
    (
        "upstream-events/falco-0.34.1-test-specs/pinned-rules/k8saudit-rules-0.5.0/k8s_audit_rules.yaml",
        "k8s_audit",
    ),
    ("upstream-rules/aws_cloudtrail_rules.yaml", "aws_cloudtrail"),
    ("upstream-rules/github.yaml", "github"),
    ("upstream-rules/okta_rules.yaml", "okta"),
    ("upstream-rules/gcp_auditlog_rules.yaml", "gcp_auditlog"),
)
FIELD_PREFIXES = "ka|jevt|json|ct|s3|ec2|ecr|iam|evt|github|okta|gcp"
FIELD = re.compile(rf"(?<![\w.%])((?:{FIELD_PREFIXES})\.[A-Za-z0-9_.]*[A-Za-z0-9_])(\[[^\]]*\])?")
OUTPUT_FIELD = re.compile(rf"%((?:{FIELD_PREFIXES})\.[A-Za-z0-9_.]*[A-Za-z0-9_])(\[[^\]]*\])?")
QUOTED = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")


def _items(path: Path) -> list[dict]:
    return [item for item in yaml.safe_load(path.read_text()) or [] if isinstance(item, dict)]


def fields_used(path: Path) -> set[tuple[str, str | None]]:
    """(field, argument) pairs in conditions, outputs and exception fields of a rules file."""
    used: set[tuple[str, str | None]] = set()

    def add(matches: list[tuple[str, str]]) -> None:
        for name, arg in matches:
            used.add((name, arg[1:-1] if arg else None))

    for item in _items(path):
        condition = item.get("condition")
        if isinstance(condition, str):
            add(FIELD.findall(QUOTED.sub('""', condition)))
        output = item.get("output")
        if isinstance(output, str):
            add(OUTPUT_FIELD.findall(output))
        for exception in item.get("exceptions") or []:
            names = exception.get("fields")
            for name in names if isinstance(names, list) else [names]:
                if isinstance(name, str):
                    add(FIELD.findall(name))
    return used


@pytest.mark.parametrize(("relative", "source"), RULES_FILES)
def test_every_field_the_upstream_rules_use_compiles(
    shared_dir: Path, relative: str, source: str
) -> None:
    used = fields_used(shared_dir / relative)
    assert used, "the scan found no field: the pattern is broken"
    fields = catalog(source)
    assert fields is not None
    missing = []
    for name, arg in sorted(used, key=lambda pair: (pair[0], pair[1] or "")):
        try:
            fields.extractor(name, arg)
        except Exception as error:
            missing.append(f"{name}[{arg}]: {error}")
    assert missing == []


def test_six_sources_are_registered() -> None:
    assert {"k8s_audit", "aws_cloudtrail", "github", "okta", "gcp_auditlog", "json"} <= set(
        known_sources()
    )


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _satisfies(provided: str, required: str) -> bool:
    # Falco's plugin requirement check: same major version, and at least the required one.
    have, need = _version_tuple(provided), _version_tuple(required)
    return have[0] == need[0] and have >= need


@pytest.mark.parametrize(
    ("relative", "source"), [entry for entry in RULES_FILES if "pinned-rules" not in entry[0]]
)
def test_required_plugin_versions_are_provided(
    shared_dir: Path, relative: str, source: str
) -> None:
    provided = provided_plugins()
    for item in _items(shared_dir / relative):
        for requirement in item.get("required_plugin_versions") or []:
            choices = [requirement, *requirement.get("alternatives", [])]
            assert any(
                choice["name"] in provided
                and _satisfies(provided[choice["name"]], str(choice["version"]))
                for choice in choices
            ), requirement


def test_k8s_audit_offers_the_json_fields_its_rules_use() -> None:
    fields = catalog("k8s_audit")
    assert fields is not None
    for name in ("jevt.value", "jevt.obj", "jevt.rawtime", "json.value"):
        assert fields.spec(name) is not None


def test_index_and_key_arguments_are_validated() -> None:
    from engine.errors import UnknownFieldError

    k8s = catalog("k8s_audit")
    assert k8s is not None
    with pytest.raises(UnknownFieldError):
        k8s.extractor("ka.req.pod.containers.image", "first")
    with pytest.raises(UnknownFieldError):
        k8s.extractor("ka.uri.param")  # the key is required
    with pytest.raises(UnknownFieldError):
        k8s.extractor("ka.verb", "x")
    okta = catalog("okta")
    assert okta is not None
    with pytest.raises(UnknownFieldError):
        okta.extractor("okta.mfa.failure.countlast")
