"""The syscall field catalogue: every field the upstream rules use, with Falco's shapes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.errors import UnknownFieldError
from engine.fields import catalog
from engine.sources import provided_plugins
from engine.sources.syscall import event_names
from engine.versions import plugin_versions

FIELD = re.compile(
    r"\b((?:evt|proc|thread|fd|fs\.path|user|group|container|k8s|syscall)\.[a-z0-9_.]+[a-z0-9_])"
    r"(\[[^\]]*\])?"
)


def _syscall_catalog():  # type: ignore[no-untyped-def]
    cat = catalog("syscall")
    assert cat is not None
    return cat


def test_every_field_of_the_upstream_syscall_rules_resolves(shared_dir: Path) -> None:
    cat = _syscall_catalog()
    used: set[str] = set()
    for name in ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"):
        for line in (shared_dir / "upstream-rules" / name).read_text().splitlines():
            if line.lstrip().startswith("#"):
                continue
            for field, _arg in FIELD.findall(line):
                used.add(field)
    # Free text that looks like a field: "k8s.io" (a domain) and "user.log" (a file name) in
    # descriptions.
    missing = sorted(f for f in used if cat.split(f) is None)
    assert len(used) > 80
    assert missing == ["k8s.io", "user.log"]


@pytest.mark.parametrize(
    ("name", "ftype", "is_list", "arg"),
    [
        ("proc.aname", "string", False, "optional"),
        ("proc.apid", "int", False, "optional"),
        ("evt.arg", "string", False, "required"),
        ("fd.types", "string", True, "optional"),
        ("fd.net", "ipnet", False, "none"),
        ("fd.sport", "port", False, "none"),
        ("evt.rawres", "int", False, "none"),
        ("proc.duration", "reltime", False, "none"),
        ("container.start_ts", "abstime", False, "none"),
        ("user.loginuid", "int", False, "none"),
        ("proc.env", "string", False, "optional"),
    ],
)
def test_field_shapes_follow_falco(name: str, ftype: str, is_list: bool, arg: str) -> None:
    spec = _syscall_catalog().spec(name)
    assert spec is not None
    assert (spec.type, spec.is_list, spec.arg) == (ftype, is_list, arg)


def test_argument_forms_and_errors() -> None:
    cat = _syscall_catalog()
    assert cat.extractor("evt.arg.flags")[0].name == "evt.arg"
    assert cat.extractor("evt.arg", "flags")[0].name == "evt.arg"
    assert cat.extractor("proc.aname", "3")[0].no_rhs
    with pytest.raises(UnknownFieldError):
        cat.extractor("proc.aname", "x")
    with pytest.raises(UnknownFieldError):
        cat.extractor("evt.arg")
    with pytest.raises(UnknownFieldError):
        cat.extractor("proc.nobody")


def test_container_plugin_is_provided_for_required_plugin_versions() -> None:
    assert provided_plugins().get("container") == "0.4.0"
    assert plugin_versions()["container"] == "0.4.0"


def test_event_names_cover_rule_types_and_generic_syscalls() -> None:
    names = event_names()
    assert {"open", "openat2", "execveat", "ptrace", "connect", "madvise", "procexit"} <= names
    assert "list_a" not in names and "NA" not in names
