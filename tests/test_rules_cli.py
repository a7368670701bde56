"""`falconet rules ...` as a real process: falco -V text and JSON, exit statuses, describe,
list, schema."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from engine.fields import catalog
from tests.conftest import CliRunner

GOOD = """\
- required_engine_version: 0.26.0
- list: shells
  items: [bash, sh]
- macro: spawned
  condition: evt.type in (execve, execveat)
- rule: Shell spawned
  desc: a shell
  condition: spawned and proc.name in (shells)
  output: shell %proc.name (cmd=%proc.cmdline)
  priority: WARNING
  tags: [shell, mitre_execution]
- rule: Quiet open
  desc: an open
  condition: evt.type = open and fd.name startswith /etc
  output: open %fd.name
  priority: INFO
  enabled: false
"""


def _need_compiler() -> None:
    if catalog("syscall") is None:
        pytest.skip("the syscall field catalog is not registered in this tree yet")
    for module in ("engine.condition.compiler", "engine.condition.evttypes", "engine.output"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not in this tree yet")


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_validate_invalid_file_text(run_cli: CliRunner, tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", "- list: ok\n  items: []\n\n- macro: broken\n")
    done = run_cli("rules", "validate", bad)
    assert done.returncode == 1
    assert done.stdout.startswith(f"{bad}: Invalid\n")
    assert "1 Errors:\n" in done.stdout
    assert f"    macro 'broken': ({bad}:3:2)\n" in done.stdout
    assert "------\n- macro: broken\n  ^\n------\n" in done.stdout
    assert (
        "LOAD_ERR_YAML_VALIDATE (Error validating internal structure of YAML file): "
        "Item has no mapping for key 'condition'" in done.stdout
    )
    assert "Traceback" not in done.stderr


def test_validate_invalid_file_json(run_cli: CliRunner, tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", "this : is : not : yaml\n")
    done = run_cli("rules", "validate", bad, "-o", "json")
    assert done.returncode == 1
    (result,) = json.loads(done.stdout)["falco_load_results"]
    assert result["name"] == bad
    assert result["successful"] is False
    (error,) = result["errors"]
    assert error["code"] == "LOAD_ERR_YAML_PARSE"
    assert error["codedesc"] == "YAML parse error"
    position = error["context"]["locations"][-1]["position"]
    assert (position["line"], position["column"], position["offset"]) == (0, 10, 10)
    assert error["context"]["snippet"] == "this : is : not : yaml\n          ^\n"
    assert result["warnings"] == []


def test_validate_missing_file_is_one_line(run_cli: CliRunner, tmp_path: Path) -> None:
    done = run_cli("rules", "validate", str(tmp_path / "nope.yaml"))
    assert done.returncode == 3
    assert done.stderr.startswith("error: rules file ")
    assert "hint:" in done.stderr
    assert done.stdout == ""


def test_bad_output_format_is_usage_error(run_cli: CliRunner, tmp_path: Path) -> None:
    done = run_cli("rules", "validate", write(tmp_path, "a.yaml", GOOD), "-o", "yaml")
    assert done.returncode == 2


def test_schema_is_json_schema_accepting_a_rules_file(run_cli: CliRunner) -> None:
    done = run_cli("rules", "schema")
    assert done.returncode == 0
    schema = json.loads(done.stdout)
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(GOOD), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"rule": "x", "priority": "LOUD"}], schema)


def test_validate_ok_and_warnings(run_cli: CliRunner, tmp_path: Path) -> None:
    _need_compiler()
    good = write(tmp_path, "good.yaml", GOOD)
    done = run_cli("rules", "validate", good)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{good}: Ok\n"
    warned = write(tmp_path, "warned.yaml", GOOD + "- list: unused\n  items: [x]\n")
    done = run_cli("rules", "validate", good, warned)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{good}: Ok\n{warned}: Ok, with warnings\n"
    assert "LOAD_UNUSED_LIST (Unused list): List not referred to by any other rule/macro" in (
        done.stderr
    )


def test_validate_files_accumulate(run_cli: CliRunner, tmp_path: Path) -> None:
    _need_compiler()
    base = write(tmp_path, "base.yaml", GOOD)
    local = write(
        tmp_path,
        "local.yaml",
        "- rule: Shell spawned\n  condition: and not proc.pname = sshd\n"
        "  override: {condition: append}\n- rule: Nope\n  enabled: false\n",
    )
    done = run_cli("rules", "validate", base, local, "-o", "json")
    assert done.returncode == 1
    first, second = json.loads(done.stdout)["falco_load_results"]
    assert first["successful"] is True
    assert second["successful"] is False
    assert second["errors"][0]["message"] == (
        "Rule has 'enabled' key but no rule by that name already exists"
    )


def test_describe_json_like_falco_L(run_cli: CliRunner, tmp_path: Path) -> None:
    _need_compiler()
    good = write(tmp_path, "good.yaml", GOOD)
    done = run_cli("rules", "describe", good, "-o", "json")
    assert done.returncode == 0, done.stderr
    described = json.loads(done.stdout)
    assert described["required_engine_version"] == "0.26.0"
    shell = described["rules"][0]
    assert shell["info"]["name"] == "Shell spawned"
    assert shell["info"]["priority"] == "Warning"
    assert shell["info"]["tags"] == ["mitre_execution", "shell"]
    details = shell["details"]
    assert details["macros"] == ["spawned"]
    assert details["lists"] == ["shells"]
    assert details["condition_compiled"] == (
        "(evt.type in (execve, execveat) and proc.name in (bash, sh))"
    )
    assert details["condition_fields"] == ["evt.type", "proc.name"]
    assert details["output_fields"] == ["proc.name", "proc.cmdline"]
    assert details["events"] == ["asyncevent", "execve", "execveat"]
    assert [m["info"]["name"] for m in described["macros"]] == ["spawned"]
    assert described["lists"][0]["details"] == {
        "used": True,
        "lists": [],
        "items_compiled": ["bash", "sh"],
        "plugins": [],
    }
    one = run_cli("rules", "describe", good, "--rule", "Quiet open", "-o", "json")
    assert [r["info"]["name"] for r in json.loads(one.stdout)["rules"]] == ["Quiet open"]
    missing = run_cli("rules", "describe", good, "--rule", "Nope")
    assert missing.returncode == 3
    assert missing.stderr.startswith('error: Rule "Nope" is not loaded')


def test_list_with_tag_filter(run_cli: CliRunner, tmp_path: Path) -> None:
    _need_compiler()
    good = write(tmp_path, "good.yaml", GOOD)
    done = run_cli("rules", "list", good, "-o", "json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [(r["name"], r["enabled"], r["event_types"]) for r in listed] == [
        ("Shell spawned", True, ["execve", "execveat"]),
        ("Quiet open", False, ["open"]),
    ]
    tagged = run_cli("rules", "list", good, "--tag", "shell")
    assert tagged.returncode == 0
    assert "Shell spawned" in tagged.stdout
    assert "Quiet open" not in tagged.stdout
    invalid = write(tmp_path, "bad.yaml", "- foo\n")
    refused = run_cli("rules", "list", invalid)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: invalid rules file {invalid}: LOAD_ERR_YAML_VALIDATE")


def test_unmet_plugin_requirement_exit_status(run_cli: CliRunner, tmp_path: Path) -> None:
    needs = write(
        tmp_path,
        "needs.yaml",
        "- required_plugin_versions:\n  - name: nosuchplugin\n    version: 1.2.0\n"
        "    alternatives:\n    - name: nosuchplugin-eks\n      version: 0.1.0\n",
    )
    done = run_cli("rules", "validate", needs)
    assert done.returncode == 7
    assert done.stdout == f"{needs}: Ok\n"
    assert done.stderr.startswith(
        "error: Plugin requirement not satisfied, must load one of: nosuchplugin (>= 1.2.0), "
        "nosuchplugin-eks (>= 0.1.0)\nhint: "
    )


@pytest.mark.parametrize(
    ("provided", "satisfied"),
    [
        ({"k8saudit": "0.18.0"}, True),
        ({"k8saudit": "0.19.3"}, True),
        ({"k8saudit": "0.17.9"}, False),
        ({"k8saudit": "1.18.0"}, False),  # another major version is not compatible
        ({"k8saudit-gke": "0.9.0"}, True),  # any alternative satisfies the entry
        ({}, False),
    ],
)
def test_plugin_requirement_semantics(provided: dict[str, str], satisfied: bool) -> None:
    from engine.loader import load_contents

    loaded = load_contents(
        [
            (
                "req.yaml",
                "- required_plugin_versions:\n  - name: k8saudit\n    version: 0.18.0\n"
                "    alternatives:\n    - name: k8saudit-gke\n      version: 0.9.0\n",
            )
        ],
        use_cache=False,
    )
    assert (loaded.unmet_plugin_requirements(provided) == []) is satisfied


def test_validate_reports_schema_status_like_falco(run_cli: CliRunner, tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", "- list: l\n  items: [a, 1]\n")
    odd = write(tmp_path, "odd.yaml", "- list: l\n  items: [a]\n  override_written_wrong: {}\n")
    done = run_cli("rules", "validate", good, odd, "-o", "json")
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout)["falco_load_results"]
    assert (first["schema_valid"], first["schema_warnings"]) == (True, [])
    assert second["successful"] is True  # schema problems are never fatal
    assert second["schema_valid"] is False
    assert second["schema_warnings"] == [
        "failed for <root>[0]: Additional properties are not allowed "
        "('override_written_wrong' was unexpected)"
    ]


def test_validate_text_is_falco_verbose_format(run_cli: CliRunner, tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", "- list: ok\n  items: []\n\n- macro: broken\n")
    empty = write(tmp_path, "empty.yaml", "")
    done = run_cli("rules", "validate", bad, empty)
    assert done.returncode == 1
    assert done.stdout == (
        f"{bad}: Invalid\n"
        "1 Schema warnings:\n"
        "------\n"
        "failed for <root>[1]: 'condition' is a required property\n"
        "------\n"
        "\n"
        "1 Errors:\n"
        f"In rules content: ({bad}:0:0)\n"
        f"    macro 'broken': ({bad}:3:2)\n"
        "------\n"
        "- macro: broken\n"
        "  ^\n"
        "------\n"
        "LOAD_ERR_YAML_VALIDATE (Error validating internal structure of YAML file): "
        "Item has no mapping for key 'condition'\n"
        "\n"
        f"{empty}: Ok, with warnings\n"
    )
    # The list read before the error stays collected (as in Falco) and is unused.
    assert "LOAD_UNUSED_LIST (Unused list)" in done.stderr


def test_directory_loads_yaml_files_alphabetically(run_cli: CliRunner, tmp_path: Path) -> None:
    rules_d = tmp_path / "rules.d"
    rules_d.mkdir()
    (rules_d / "b.yaml").write_text("- list: l\n  items: [b]\n  override: {items: append}\n")
    (rules_d / "a.yml").write_text("- list: l\n  items: [a]\n")
    (rules_d / "c.txt").write_text("not rules")
    done = run_cli("rules", "validate", str(rules_d), "-o", "json")
    assert done.returncode == 0, done.stderr
    names = [r["name"] for r in json.loads(done.stdout)["falco_load_results"]]
    assert names == [str(rules_d / "a.yml"), str(rules_d / "b.yaml")]


def test_list_applies_falco_yaml_selection_and_min_priority(
    run_cli: CliRunner, tmp_path: Path
) -> None:
    _need_compiler()
    good = write(tmp_path, "good.yaml", GOOD)
    done = run_cli(
        "rules", "list", good, "-o", "json",
        "--select", "disable:rule=*", "--select", "enable:tag=shell", "--select",
        "enable:rule=Quiet*",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {r["name"]: r["enabled"] for r in json.loads(done.stdout)} == {
        "Shell spawned": True,
        "Quiet open": True,
    }
    done = run_cli("rules", "list", good, "-o", "json", "--min-priority", "notice")
    assert {r["name"]: r["enabled"] for r in json.loads(done.stdout)} == {
        "Shell spawned": True,
        "Quiet open": False,
    }
    bad = run_cli("rules", "list", good, "--select", "toggle:rule=x")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: invalid rules selection 'toggle:rule=x'\nhint: ")


def test_describe_list_name_with_a_space(run_cli: CliRunner, tmp_path: Path) -> None:
    """Such a list only parses after substitution; describe still works."""
    _need_compiler()
    spaced = write(
        tmp_path,
        "spaced.yaml",
        "- list: test list\n  items: [open, openat]\n- rule: r\n  desc: d\n"
        "  condition: evt.type in (test list)\n  output: o\n  priority: INFO\n",
    )
    done = run_cli("rules", "describe", spaced, "-o", "json")
    assert done.returncode == 0, done.stderr
    details = json.loads(done.stdout)["rules"][0]["details"]
    assert details["condition_compiled"] == "evt.type in (open, openat)"
    assert details["events"] == ["asyncevent", "open", "openat"]


def test_empty_directory_is_an_error(run_cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "rules.d").mkdir()
    done = run_cli("rules", "validate", str(tmp_path / "rules.d"))
    assert done.returncode == 3
    assert done.stderr.startswith(f"error: no rules files to load in {tmp_path / 'rules.d'}\n")


def test_unreadable_file_is_one_line_error(run_cli: CliRunner, tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe- rule: x\n")
    done = run_cli("rules", "validate", str(binary))
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot read rules file {binary}: ")
    assert "Traceback" not in done.stderr


def test_describe_text_is_falco_L_layout(run_cli: CliRunner, tmp_path: Path) -> None:
    _need_compiler()
    good = write(tmp_path, "good.yaml", GOOD)
    done = run_cli("rules", "describe", good)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"{'Rule':<50} Description\n"
        f"{'----':<50} -----------\n"
        f"{'Shell spawned':<50} a shell \n\n"
        f"{'Quiet open':<50} an open \n\n"
    )
