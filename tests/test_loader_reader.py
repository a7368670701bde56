"""Reading rules files into the collector: Falco's structure checks, codes, messages, positions,
the append/override matrix, redefinitions and the legacy items (falco rule_loader_reader.cpp and
rule_loader_collector.cpp semantics; cases after falco unit_tests/engine/test_rule_loader.cpp)."""

from __future__ import annotations

import textwrap

import pytest

from engine import yamlfile
from engine.load_result import ErrorCode, LoadResult, WarningCode
from engine.rule_collector import Collector
from engine.rule_reader import RulesReader

RULE = """
- rule: r1
  desc: d
  condition: evt.type = open
  output: o
  priority: WARNING
"""


def read(text: str, *more: str) -> tuple[Collector, list[LoadResult]]:
    collector = Collector(
        source_known=lambda source: source in ("syscall", "k8s_audit"),
        field_is_valid=lambda source, name: not name.startswith("not."),
    )
    results = []
    for index, content in enumerate((text, *more)):
        result = LoadResult(f"file{index}.yaml")
        RulesReader(collector, result, textwrap.dedent(content)).read()
        results.append(result)
    return collector, results


def only_error(result: LoadResult) -> tuple[str, str]:
    assert len(result.errors) == 1, result.errors
    error = result.errors[0]
    return error.code.name, error.message


def warning_codes(result: LoadResult) -> list[str]:
    return [w.code.name for w in result.warnings]


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("a: b\n", "LOAD_ERR_YAML_VALIDATE", "Rules content is not yaml array of objects"),
        (
            "- foo\n",
            "LOAD_ERR_YAML_VALIDATE",
            "Unexpected element type. Each element should be a yaml associative array.",
        ),
        ("- list: l\n", "LOAD_ERR_YAML_VALIDATE", "Item has no mapping for key 'items'"),
        ("- macro: m\n", "LOAD_ERR_YAML_VALIDATE", "Item has no mapping for key 'condition'"),
        ("- rule:\n  desc: x\n", "LOAD_ERR_YAML_VALIDATE", "Mapping for key 'rule' is empty"),
        ("- list:\n  items: []\n", "LOAD_ERR_YAML_VALIDATE", "Mapping for key 'list' is empty"),
        (
            "- rule: r\n  desc: d\n  condition: c\n  priority: INFO\n",
            "LOAD_ERR_YAML_VALIDATE",
            "Item has no mapping for key 'output'",
        ),
        (
            "- rule: r\n  desc: d\n  condition: c\n  output: o\n  priority: loud\n",
            "LOAD_ERR_YAML_VALIDATE",
            "Invalid priority",
        ),
        (
            "- list: l\n  items: x\n",
            "LOAD_ERR_YAML_VALIDATE",
            "Value is not a sequence",
        ),
        (
            "- list: l\n  items: [[a]]\n",
            "LOAD_ERR_YAML_VALIDATE",
            "sequence value is not scalar",
        ),
        (
            "- required_engine_version: not-a-number\n",
            "LOAD_ERR_YAML_VALIDATE",
            "Unable to parse engine version 'not-a-number' as a semver string. "
            'Expected "x.y.z" semver format.',
        ),
        (
            "- required_engine_version: 9999999\n",
            "LOAD_ERR_VALIDATE",
            "Rules require engine version 0.9999999.0, but engine version is 0.57.0",
        ),
        (
            "- required_engine_version: 1.0.0\n",
            "LOAD_ERR_VALIDATE",
            "Rules require engine version 1.0.0, but engine version is 0.57.0",
        ),
        (
            "- required_plugin_versions:\n  - name: k8saudit\n    version: 1.0.0\n"
            "    alternatives:\n    - name: k8saudit\n      version: 2.0.0\n",
            "LOAD_ERR_VALIDATE",
            "Defined multiple alternative version requirements for plugin 'k8saudit'",
        ),
        (
            "- required_plugin_versions:\n  - name: json\n    version: latest\n",
            "LOAD_ERR_VALIDATE",
            "Invalid required version 'latest' for plugin 'json'",
        ),
    ],
)
def test_structure_errors(text: str, code: str, message: str) -> None:
    _, (result,) = read(text)
    assert only_error(result) == (code, message)


def test_engine_versions_accepted_and_the_highest_kept() -> None:
    collector, (result,) = read(
        "- required_engine_version: 15\n- required_engine_version: 0.57.0\n"
        "- required_engine_version: 2\n"
    )
    assert result.successful
    assert collector.required_engine_version is not None
    assert collector.required_engine_version.version == "0.57.0"


def test_yaml_parse_error_has_position() -> None:
    _, (result,) = read("this : is : not : yaml\n")
    code, _ = only_error(result)
    assert code == "LOAD_ERR_YAML_PARSE"
    last = result.errors[0].context.locations[-1].position
    assert (last.line, last.column) == (0, 10)


def test_reading_stops_at_first_error() -> None:
    collector, (result,) = read("- list: a\n  items: [x]\n- foo\n- list: b\n  items: [y]\n")
    assert not result.successful
    assert list(collector.lists) == ["a"]


def test_yaml_cpp_scalars_bare_equals_and_bang_tags_are_text() -> None:
    collector, (result,) = read(
        """
        - rule: r1
          desc: != after the tag
          condition: evt.type = open
          output: o
          priority: INFO
          exceptions:
            - name: e
              fields: [proc.name, fd.name]
              comps: [=, in]
              values:
                - [cat, [a, b]]
        """
    )
    assert result.successful, result.errors
    rule = collector.rules["r1"]
    # yaml-cpp drops the unknown local tag `!=`, as PyYAML keeps it: the text is what follows.
    assert rule.desc == "after the tag"
    assert [c.item for c in rule.exceptions[0].comps.items] == ["=", "in"]


def test_unknown_key_and_unknown_item_warn() -> None:
    _, (result,) = read("- list: l\n  items: []\n  colour: red\n- thing: 1\n")
    assert result.successful
    assert warning_codes(result) == ["LOAD_UNKNOWN_KEY", "LOAD_UNKNOWN_ITEM"]
    assert result.warnings[0].message == "Unknown key 'colour'. The key will be ignored."


def test_invalid_list_and_macro_names_warn() -> None:
    _, (result,) = read("- list: 'a b'\n  items: []\n- macro: 1m\n  condition: x\n")
    assert warning_codes(result) == ["LOAD_INVALID_LIST_NAME", "LOAD_INVALID_MACRO_NAME"]


def test_redefinition_replaces_but_keeps_first_position() -> None:
    collector, _ = read(
        RULE + RULE.replace("r1", "r2") + RULE.replace("evt.type = open", "evt.type = close")
    )
    assert list(collector.rules) == ["r1", "r2"]
    assert collector.rules["r1"].condition == "evt.type = close"
    assert collector.rules["r1"].index < collector.rules["r2"].index


def test_deprecated_append_concatenates_and_warns() -> None:
    collector, (result,) = read(
        RULE
        + "- rule: r1\n  condition: and proc.name = cat\n  append: true\n"
        + "- list: l\n  items: [a]\n- list: l\n  items: [b]\n  append: true\n"
        + "- macro: m\n  condition: x\n- macro: m\n  condition: or y\n  append: true\n"
    )
    assert result.successful
    assert collector.rules["r1"].condition == "evt.type = open and proc.name = cat"
    assert collector.lists["l"].items == ["a", "b"]
    assert collector.macros["m"].condition == "x or y"
    assert warning_codes(result) == ["LOAD_DEPRECATED_ITEM"] * 3


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            "- rule: r1\n  condition: x\n  append: true\n  override: {condition: append}\n",
            "Keys 'override' and 'append: true' cannot be used together. Add an 'append' "
            "entry (e.g. 'condition: append') under 'override' instead.",
        ),
        (
            "- rule: r1\n  priority: INFO\n  override: {priority: append}\n",
            "Key 'priority' cannot be appended to, use 'replace' instead",
        ),
        (
            "- rule: r1\n  source: k8s_audit\n  override: {source: replace}\n",
            "Key 'source' cannot be replaced",
        ),
        (
            "- rule: r1\n  condition: x\n  override: {condition: prepend}\n",
            "Invalid override operation for key 'condition': 'prepend'. Allowed values are: "
            "append replace ",
        ),
        (
            "- rule: r1\n  override: {enabled: replace}\n",
            "An replace override for 'enabled' was specified but 'enabled' is not defined",
        ),
        (
            "- rule: r1\n  condition: and x\n  priority: INFO\n  override: {condition: append}\n",
            "Unexpected key 'priority': no corresponding entry under 'override' is defined.",
        ),
        (
            "- list: l\n  items: [a]\n  override: {items: prepend}\n",
            "Invalid override operation for key 'items': 'prepend'. Allowed values are: "
            "append replace ",
        ),
    ],
)
def test_override_matrix_errors(item: str, message: str) -> None:
    _, (result,) = read(RULE + "- list: l\n  items: []\n" + item)
    assert only_error(result) == ("LOAD_ERR_YAML_VALIDATE", message)


def test_override_append_and_replace_on_one_item() -> None:
    collector, (result,) = read(
        RULE
        + """
- rule: r1
  condition: and proc.name = cat
  desc: more
  tags: [b, a]
  priority: error
  enabled: false
  override:
    condition: append
    desc: append
    tags: append
    priority: replace
    enabled: replace
"""
    )
    assert result.successful, result.errors
    rule = collector.rules["r1"]
    assert rule.condition == "evt.type = open and proc.name = cat"
    assert rule.desc == "d more"
    assert rule.tags == {"a", "b"}
    assert (rule.priority, rule.enabled) == ("Error", False)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            "- list: nope\n  items: [a]\n  override: {items: append}\n",
            "List uses 'append' or 'override.items: append' but no list by that name already "
            "exists",
        ),
        (
            "- macro: nope\n  condition: x\n  append: true\n",
            "Macro uses 'append' or 'override.condition: append' but no macro by that name "
            "already exists",
        ),
        (
            "- rule: nope\n  condition: x\n  override: {condition: append}\n",
            "Rule uses 'append' or 'override.<key>: append' but no rule by that name already "
            "exists",
        ),
        (
            "- rule: nope\n  enabled: false\n  override: {enabled: replace}\n",
            "An 'override.<key>: replace' to a rule was requested but no rule by that name "
            "already exists",
        ),
        (
            "- rule: nope\n  enabled: false\n",
            "Rule has 'enabled' key but no rule by that name already exists",
        ),
        (
            "- rule: r1\n  append: true\n",
            "Appended rule must have exceptions or condition property",
        ),
        (
            "- rule: r1\n  desc: d\n  condition: c\n  output: o\n  priority: INFO\n"
            "  source: k8s_audit\n",
            "Rule has been re-defined with a different source",
        ),
    ],
)
def test_append_replace_need_a_previous_item(item: str, message: str) -> None:
    _, (result,) = read(RULE + item)
    assert only_error(result) == ("LOAD_ERR_VALIDATE", message)


def test_files_accumulate_so_later_files_override() -> None:
    collector, results = read(
        RULE, "- rule: r1\n  enabled: false\n  override: {enabled: replace}\n"
    )
    assert all(r.successful for r in results)
    assert collector.rules["r1"].enabled is False


def test_legacy_enabled_only_item_warns_and_applies() -> None:
    collector, (result,) = read(RULE + "- rule: r1\n  enabled: false\n")
    assert result.successful
    assert warning_codes(result) == ["LOAD_DEPRECATED_ITEM"]
    assert collector.rules["r1"].enabled is False


def test_legacy_append_ignores_enabled() -> None:
    collector, (result,) = read(
        RULE + "- rule: r1\n  condition: and x\n  enabled: false\n  append: true\n"
    )
    assert result.successful
    assert collector.rules["r1"].enabled is True


def test_unknown_source_warns_and_marks_rule() -> None:
    collector, (result,) = read(RULE.replace("priority: WARNING", "priority: INFO\n  source: okta"))
    assert warning_codes(result) == ["LOAD_UNKNOWN_SOURCE"]
    assert result.warnings[0].message == "Unknown source okta, skipping"
    assert collector.rules["r1"].unknown_source


@pytest.mark.parametrize(
    ("exception", "message"),
    [
        (
            "{name: e, fields: [proc.name, fd.name], comps: [=]}",
            "Fields and comps lists must have equal length",
        ),
        (
            "{name: e, fields: [proc.name], comps: [no-comp]}",
            "'no-comp' is not a supported comparison operator",
        ),
        (
            "{name: e, fields: proc.name, comps: =}",
            "When fields is a single value, comps must "
            "be one of (in, pmatch, intersects) or a modifier operator (e.g. startswith oneof)",
        ),
        ("{name: e, fields: proc.name, comps: [in]}", "Fields and comps must both be strings"),
        ("{name: e, fields: [not.exist]}", "'not.exist' is not a supported filter field"),
    ],
)
def test_exception_validation(exception: str, message: str) -> None:
    _, (result,) = read(RULE + f"  exceptions: [{exception}]\n")
    assert only_error(result) == ("LOAD_ERR_VALIDATE", message)


def test_empty_exception_entries_count_as_absent() -> None:
    """Falco's entry::is_valid: empty fields are missing fields, empty comps get defaults."""
    _, (missing,) = read(RULE + "  exceptions: [{name: e, fields: [], values: []}]\n")
    assert only_error(missing) == (
        "LOAD_ERR_VALIDATE",
        "Rule exception item must have fields property with a list of fields",
    )
    collector, (ok,) = read(RULE + "  exceptions: [{name: e, fields: [proc.name], comps: []}]\n")
    assert ok.successful, ok.errors
    assert [c.item for c in collector.rules["r1"].exceptions[0].comps.items] == ["="]


def test_exception_of_a_new_rule_needs_fields() -> None:
    _, (result,) = read(RULE + "  exceptions: [{name: e, values: []}]\n")
    assert only_error(result) == ("LOAD_ERR_YAML_VALIDATE", "Item has no mapping for key 'fields'")


def test_exception_operators_trimmed_and_modifiers_accepted() -> None:
    collector, (result,) = read(
        RULE + "  exceptions: [{name: e, fields: [proc.name], comps: [' startswith oneof ']}]\n"
    )
    assert result.successful, result.errors
    assert collector.rules["r1"].exceptions[0].comps.items[0].item == "startswith oneof"


def test_exception_append_values_only() -> None:
    base = RULE + "  exceptions: [{name: e, fields: [proc.name], values: [[a]]}]\n"
    collector, (ok,) = read(
        base
        + "- rule: r1\n  exceptions: [{name: e, values: [[b]]}]\n  override: {exceptions: append}\n"
    )
    assert ok.successful, ok.errors
    assert [v.items[0].item for v in collector.rules["r1"].exceptions[0].values] == ["a", "b"]
    _, (bad,) = read(
        base + "- rule: r1\n  exceptions: [{name: e, fields: [fd.name], values: [[b]]}]\n"
        "  override: {exceptions: append}\n"
    )
    assert only_error(bad) == (
        "LOAD_ERR_VALIDATE",
        "Can not append exception fields to existing exception, only values",
    )


def test_duplicate_exception_name_and_empty_append_warn() -> None:
    _, (result,) = read(
        RULE
        + "  exceptions: [{name: e, fields: [proc.name]}, {name: e, fields: [fd.name]}]\n"
        + "- rule: r1\n  exceptions: [{name: e}]\n  override: {exceptions: append}\n"
    )
    assert result.successful, result.errors
    assert warning_codes(result) == ["LOAD_EXCEPTION_NAME_NOT_UNIQUE", "LOAD_APPEND_NO_VALUES"]


def test_error_context_names_item_and_points_into_file() -> None:
    text = "- list: fine\n  items: []\n\n- macro: broken\n"
    _, (result,) = read(text)
    error = result.errors[0]
    item = error.context.locations[1]
    assert (item.item_type.value, item.item_name) == ("macro", "broken")
    assert (item.position.line, item.position.column) == (3, 2)
    snippet = error.context.snippet({"file0.yaml": text})
    assert snippet == "- macro: broken\n  ^\n"
    as_json = error.as_json({"file0.yaml": text})
    assert as_json["code"] == "LOAD_ERR_YAML_VALIDATE"
    assert as_json["codedesc"] == ErrorCode.LOAD_ERR_YAML_VALIDATE.short
    assert as_json["context"]["locations"][1]["position"] == {
        "name": "file0.yaml",
        "line": 3,
        "column": 2,
        "offset": 28,
    }


def test_warning_json_has_long_description() -> None:
    _, (result,) = read("- thing: 1\n")
    as_json = result.as_json({})
    assert as_json["successful"] is True
    assert as_json["warnings"][0]["code"] == "LOAD_UNKNOWN_ITEM"
    assert as_json["warnings"][0]["codedesc"].startswith("An unknown top-level object")
    assert WarningCode.LOAD_UNKNOWN_ITEM.name == as_json["warnings"][0]["code"]


def test_yaml_helpers_decode_like_yaml_cpp() -> None:
    assert [yamlfile.decode_bool(t) for t in ("yes", "On", "FALSE", "fAlse", "1")] == [
        True,
        True,
        False,
        None,
        None,
    ]
    assert [yamlfile.decode_uint(t) for t in ("15", "0x10", "-1", "1.5", "")] == [
        15,
        16,
        None,
        None,
        None,
    ]
