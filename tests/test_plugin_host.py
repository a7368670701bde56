"""The native plugin host with falconet's own C test plugins (tests/data/plugins), compiled with
the system compiler for this session: loading and ABI checks, init (schema, failures), sourcing
(timeouts, EOF, async events, progress), extraction (types, lists, arguments, sources), plugin
misbehaviour reported by name, and rules over plugin fields firing on replay and live streams."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from engine.fields import catalog, known_sources
from engine.runner import (
    RequirementUnmetError,
    RunRequest,
    load_rulesets,
    native_plugins,
    run,
)
from engine.sources.plugin_host import PluginConfig, activated, load_plugins
from engine.sources.plugin_host.errors import (
    PluginApiVersionError,
    PluginConfigError,
    PluginError,
    PluginNotFoundError,
)
from engine.sources.plugin_host.library import api_compatible
from engine.sources.plugin_host.stream import PluginStream
from engine.versions import plugin_versions, versions_document
from tests.support.sinks import CollectingSink
from tests.support.test_plugins import build_plugins


@pytest.fixture(scope="session")
def plugins_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_plugins(tmp_path_factory.mktemp("plugins"))


def _load(plugins_dir: Path, *configs: PluginConfig):
    return load_plugins(list(configs), [c.name for c in configs], plugins_dir)


def test_api_version_rule() -> None:
    assert api_compatible((3, 0, 0), (3, 12, 0))
    assert api_compatible((3, 12, 0), (3, 12, 0))
    assert not api_compatible((3, 12, 1), (3, 12, 0))
    assert not api_compatible((3, 13, 0), (3, 12, 0))
    assert not api_compatible((2, 0, 0), (3, 12, 0))


def test_plugin_info_and_capabilities(plugins_dir: Path) -> None:
    plugins = _load(plugins_dir, PluginConfig("testsrc"), PluginConfig("testext"))
    try:
        source, extractor = (p.plugin for p in plugins.plugins)
        assert (source.name, source.version, source.contact) == (
            "testsrc",
            "1.2.3",
            "falconet tests",
        )
        assert source.description == "falconet test source plugin"
        assert source.capabilities == ["sourcing", "extraction", "parsing", "async"]
        assert (source.id, source.event_source) == (999, "testsrc")
        assert extractor.capabilities == ["extraction"]
        assert extractor.extract_sources == ("json",)
        assert source.async_events == ("testsrc_opened",)
        assert source.list_open_params()[0] == {
            "value": "5 1",
            "desc": "five events, one per batch",
        }
    finally:
        plugins.close()


def test_too_new_api_version_is_refused_by_name(plugins_dir: Path) -> None:
    with pytest.raises(PluginApiVersionError) as caught:
        _load(plugins_dir, PluginConfig("testsrc_toonew"))
    message = str(caught.value)
    assert message.startswith("plugin testsrc_toonew: requires plugin API version 3.99.0")
    assert "3.12.0" in message and "\n" not in message


def test_bad_field_json_is_reported_by_name(plugins_dir: Path) -> None:
    with pytest.raises(
        PluginError, match=r"^plugin testsrc_badfields: get_fields returned invalid"
    ):
        _load(plugins_dir, PluginConfig("testsrc_badfields"))


def test_init_failure_carries_the_plugins_message(plugins_dir: Path) -> None:
    with pytest.raises(PluginError) as caught:
        _load(plugins_dir, PluginConfig("testsrc_initfail"))
    assert str(caught.value) == (
        "plugin testsrc_initfail: init failed: "
        "cannot reach the collector at 192.0.2.1:9 (connection refused)"
    )


def test_init_config_is_validated_against_the_schema(plugins_dir: Path) -> None:
    good = _load(plugins_dir, PluginConfig("testsrc_schema", init_config='{"user_prefix":"x-"}'))
    good.close()
    with pytest.raises(PluginConfigError, match=r"maxLength|too long") as caught:
        _load(
            plugins_dir,
            PluginConfig("testsrc_schema", init_config='{"user_prefix":"' + "y" * 40 + '"}'),
        )
    assert "at user_prefix" in str(caught.value)
    with pytest.raises(PluginConfigError, match="Additional properties"):
        _load(plugins_dir, PluginConfig("testsrc_schema", init_config='{"color":"red"}'))
    with pytest.raises(PluginConfigError, match="not JSON"):
        _load(plugins_dir, PluginConfig("testsrc_schema", init_config="user_prefix=x"))


def test_missing_library_names_the_plugin(plugins_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(
        PluginNotFoundError, match=r"^plugin nothere: no library at .*libnothere\.so"
    ):
        load_plugins([], ["nothere"], plugins_dir)
    not_a_plugin = tmp_path / "libc_copy.so"
    not_a_plugin.write_bytes(b"\x7fELF garbage")
    with pytest.raises(PluginError, match=r"^plugin odd: cannot load"):
        load_plugins([PluginConfig("odd", library_path=str(not_a_plugin))], ["odd"], plugins_dir)


def test_stream_timeouts_eof_async_and_host_stamps(plugins_dir: Path) -> None:
    plugins = _load(
        plugins_dir,
        PluginConfig("testsrc", init_config='{"user_prefix":"u-"}', open_params="7 3 2"),
    )
    with activated(plugins):
        owner = plugins.plugins[0]
        with PluginStream(owner, plugins) as stream:
            events = list(stream.events())
        # One async event (pushed on the first call), then 7 events in batches of 3, with a
        # TIMEOUT every second call, then EOF.
        assert [e.async_name for e in events] == ["testsrc_opened"] + [""] * 7
        assert [e.num for e in events] == list(range(1, 9))
        assert events[1].data == b'{"n":1,"user":"u-bob","action":"read"}'
        assert stream.stats.timeouts == 3 and stream.stats.events == 7
        assert stream.stats.progress == (100.0, "7/7 events")
        for event in events:
            assert event.time != 2**64 - 1 and event.time > 1_600_000_000 * 10**9
            at = 38 if event.async_name else 34  # after 3 (async) or 2 parameter lengths
            assert int.from_bytes(event.raw[at : at + 4], "little") == 999  # filled by the host
            assert int.from_bytes(event.raw[:8], "little") == event.time


def _extract(source: str, name: str, event, arg: str | None = None):
    found = catalog(source)
    assert found is not None
    _, extractor = found.extractor(name, arg)
    return extractor(event)


def test_fields_types_lists_arguments_and_parsing(plugins_dir: Path) -> None:
    plugins = _load(plugins_dir, PluginConfig("testsrc", open_params="5 5"))
    with activated(plugins):
        specs = {s.name: s for s in catalog("testsrc").specs()}
        assert specs["testsrc.n"].type == "uint" and specs["testsrc.admin"].type == "bool"
        assert specs["testsrc.tags"].is_list and specs["testsrc.field"].arg == "required"
        assert specs["evt.pluginname"] and "json.value" not in specs
        with PluginStream(plugins.plugins[0], plugins) as stream:
            events = [e for e in stream.events() if not e.async_name]
        fifth = events[4]
        assert _extract("testsrc", "testsrc.n", fifth) == 5
        assert _extract("testsrc", "testsrc.user", fifth) == "mallory"
        assert _extract("testsrc", "testsrc.tags", fifth) == ("odd", "mallory")
        assert _extract("testsrc", "testsrc.field", fifth, "action") == "delete"
        assert _extract("testsrc", "testsrc.field", fifth, "nope") is None
        assert _extract("testsrc", "testsrc.digit", events[3], "0") == 4
        assert _extract("testsrc", "testsrc.admin", fifth) is True
        assert _extract("testsrc", "evt.pluginname", fifth) == "testsrc"
        assert _extract("testsrc", "evt.plugininfo", fifth).startswith("testsrc {")
        # parse_event saw every event (the async one too) before extraction
        assert _extract("testsrc", "testsrc.parsed", events[0]) == 6


def test_misbehaving_extraction_and_events_are_one_line_errors(plugins_dir: Path) -> None:
    plugins = _load(plugins_dir, PluginConfig("testsrc_badextract"))
    with activated(plugins):
        with PluginStream(plugins.plugins[0], plugins) as stream:
            event = list(stream.events())[1]  # after the async event
        with pytest.raises(PluginError) as caught:
            _extract("testsrc", "testsrc.user", event)
        assert str(caught.value) == (
            "plugin testsrc_badextract: field testsrc.user returned 2 values, "
            "but it is not a list field"
        )
    plugins = _load(plugins_dir, PluginConfig("testsrc_extrafield"))
    with activated(plugins):
        with PluginStream(plugins.plugins[0], plugins) as stream:
            event = list(stream.events())[1]
        with pytest.raises(PluginError) as caught:
            _extract("testsrc", "testsrc.extra", event)
        assert str(caught.value) == (
            "plugin testsrc_extrafield: extract_fields failed for testsrc.extra: unknown field id 8"
        )
    plugins = _load(plugins_dir, PluginConfig("testsrc_badevent"))
    with (
        activated(plugins),
        PluginStream(plugins.plugins[0], plugins) as stream,
        pytest.raises(PluginError, match=r"^plugin testsrc_badevent: event 2 has the wrong length"),
    ):
        list(stream.events())


def test_extractor_plugins_apply_to_their_declared_sources(plugins_dir: Path) -> None:
    plugins = _load(plugins_dir, PluginConfig("testext"), PluginConfig("testany"))
    with activated(plugins):
        assert catalog("json").spec("testext.user") is not None
        assert catalog("k8s_audit").spec("testext.user") is None  # declared: json only
        for source in ("k8s_audit", "syscall", "okta"):
            assert catalog(source).spec("testany.value") is not None  # declared none: all
        from engine.sources.formats import EventFactory

        event = next(EventFactory("json").from_document({"user": "carol", "n": 1}))
        assert _extract("json", "testext.user", event) == "carol"
        assert _extract("json", "testany.value", event, "user") == "carol"
        assert _extract("json", "testext.evtype", event) == 322
    assert catalog("json").spec("testext.user") is None  # unloaded: the built-in catalog again


def test_plugin_source_replaces_the_builtin_source(plugins_dir: Path) -> None:
    plugins = _load(plugins_dir, PluginConfig("testsrc_json"))
    with activated(plugins):
        fields = {s.name for s in catalog("json").specs()}
        assert "testsrc.user" in fields and "json.value" not in fields
        assert plugin_versions()["testsrc_json"] == "1.2.3"
    assert "json.value" in {s.name for s in catalog("json").specs()}


RULES = """
- required_plugin_versions:
    - name: testsrc
      version: 1.0.0
      alternatives:
        - name: testsrc_schema
          version: 1.2.0
- rule: Mallory deletes
  desc: a delete by mallory
  condition: testsrc.action = delete and testsrc.admin = true and testsrc.tags intersects (odd)
  output: "%testsrc.user deleted (n=%testsrc.n, %testsrc.field[action])"
  priority: WARNING
  source: testsrc
"""


def test_rules_over_plugin_fields_fire_on_the_live_stream(
    plugins_dir: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    request = RunRequest(
        [rules],
        stdout=False,
        plugins=[PluginConfig("testsrc", open_params="30 8")],
        load_plugins=["testsrc"],
        plugins_dir=str(plugins_dir),
    )
    sink = CollectingSink()
    with native_plugins(request):
        assert known_sources().count("testsrc") == 1
        assert versions_document()["plugin_versions"]["testsrc"] == "1.2.3"
        stats = run(request, extra_sinks=[sink])
    # delete (n % 5 == 0), mallory (n % 3 == 2), odd: only n = 5 of 1..30
    assert [a.document["output_fields"]["testsrc.n"] for a in sink.alerts] == [5]
    assert sink.alerts[0].document["output"].endswith("mallory deleted (n=5, delete)")
    assert sink.alerts[0].document["source"] == "testsrc"
    assert stats.events_by_source["testsrc"] == 31  # 30 events and the async one
    assert "testsrc" not in known_sources()


def test_required_plugin_versions_need_a_loaded_plugin(plugins_dir: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    with pytest.raises(RequirementUnmetError, match="must load one of: testsrc"):
        load_rulesets([rules])
    # the alternative satisfies it (and provides the testsrc source)
    request = RunRequest([rules], load_plugins=["testsrc_schema"], plugins_dir=str(plugins_dir))
    with native_plugins(request):
        _, rulesets = load_rulesets([rules])
        assert "testsrc" in rulesets.by_source


def test_extractor_fields_fire_on_a_replay(plugins_dir: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(json.dumps({"user": u, "op": o}) for u, o in [("ann", "rm"), ("eve", "rm")])
        + "\n"
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        textwrap.dedent(
            """
            - rule: Eve removes
              desc: x
              condition: testext.user = eve and testany.value[op] = rm and testext.len > 10
              output: "%testext.user removed (%json.value[/op])"
              priority: ERROR
              source: json
            - rule: Syscall with a plugin field
              desc: compiles because testany declares no source
              condition: evt.type = execve and testany.evtype > 0
              output: "%proc.name"
              priority: DEBUG
            """
        )
    )
    request = RunRequest(
        [rules],
        source="json",
        replay=str(events),
        stdout=False,
        load_plugins=["testext", "testany"],
        plugins_dir=str(plugins_dir),
    )
    sink = CollectingSink()
    with native_plugins(request):
        run(request, extra_sinks=[sink])
    assert [a.document["output"].split(": Error ")[1] for a in sink.alerts] == ["eve removed (rm)"]


def test_cli_run_with_plugins_from_the_config(
    plugins_dir: Path, tmp_path: Path, run_cli, falconet_home: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    config = falconet_home / "config" / "falconet.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        textwrap.dedent(
            f"""
            artifact:
              install:
                plugins_dir: {plugins_dir}
            plugins:
              - name: testsrc
                init_config:
                  user_prefix: ""
                open_params: "10 4 3"
            load_plugins: [testsrc]
            """
        )
    )
    done = run_cli("run", "-r", str(rules), "--no-web", "-o", "json")
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["output_fields"]["testsrc.n"] for a in alerts] == [5]
    # A replay of payload lines through the same plugin source
    payloads = tmp_path / "payloads.jsonl"
    payloads.write_text('{"n":35,"user":"mallory","action":"delete"}\n{"n":36}\n')
    done = run_cli("run", "-r", str(rules), "--replay", str(payloads), "-o", "json")
    assert done.returncode == 0, done.stderr
    assert [
        json.loads(line)["output_fields"]["testsrc.n"] for line in done.stdout.splitlines()
    ] == [35]


def test_cli_reports_a_broken_plugin_in_one_line(
    plugins_dir: Path, tmp_path: Path, run_cli
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    env = {"FALCONET_ARTIFACT_INSTALL_PLUGINS_DIR": str(plugins_dir)}
    done = run_cli("run", "-r", str(rules), "--no-web", "--plugin", "testsrc_badfields", env=env)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "plugin testsrc_badfields: get_fields returned invalid JSON" in done.stderr
    done = run_cli("run", "-r", str(rules), "--no-web", "--plugin", "testsrc_toonew", env=env)
    assert done.returncode == 7 and "Traceback" not in done.stderr


def test_tables_input_is_never_null(plugins_dir: Path) -> None:
    # testsrc fails init when the tables input is NULL: loading at all proves the struct is there.
    _load(plugins_dir, PluginConfig("testsrc")).close()


def test_live_idle_plugin_serves_versions_and_stops_on_sigterm(
    plugins_dir: Path, tmp_path: Path, falconet_home: Path
) -> None:
    """A plugin that only ever answers TIMEOUT (open params "0 1 1": no events, every call a
    timeout) keeps the run alive without spinning; /versions lists it; SIGTERM ends the run."""
    import signal
    import subprocess
    import sys
    import urllib.request

    from tests.conftest import REPO_ROOT
    from tests.support.ports import free_port
    from tests.support.waiting import wait_for

    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    config = falconet_home / "config" / "falconet.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"artifact: {{install: {{plugins_dir: '{plugins_dir}'}}}}\n"
        "plugins: [{name: testsrc, open_params: '0 1 1'}]\n"
    )
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "FALCONET_HOME": str(falconet_home)}
    command = [sys.executable, "-m", "cli", "run", "-r", str(rules), "--plugin", "testsrc"]
    process = subprocess.Popen(
        [*command, "--web", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def versions() -> dict | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/versions", timeout=2) as r:
                    return json.load(r)
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                return None

        document = wait_for(versions, timeout=60)
        assert document["plugin_versions"]["testsrc"] == "1.2.3"
        assert document["plugin_api_version"] == "3.12.0"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        assert "Events processed: 1 (testsrc: 1)" in stderr  # the async event only
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_installed_plugin_artifact_is_found_by_name(
    plugins_dir: Path, tmp_path: Path, run_cli, registry, falconet_home: Path
) -> None:
    """`artifact install` puts lib<name>.so in the plugins directory; `run --plugin NAME` loads
    it from there with its `plugins:` entry (no library_path)."""
    from registry.artifacts import host_platform_string
    from registry.tarball import targz_bytes
    from tests.test_install import push

    library = (plugins_dir / "libtestsrc.so").read_bytes()
    push(
        registry,
        "plugins/testsrc:1.2.3",
        {"host.tar.gz": targz_bytes({"libtestsrc.so": library})},
        tmp_path,
        artifact_type="plugin",
        version="1.2.3",
        platforms=(host_platform_string(),),
    )
    done = run_cli("artifact", "install", f"{registry.host}/plugins/testsrc:1.2.3", "--plain-http")
    assert done.returncode == 0, done.stderr
    assert (falconet_home / "plugins" / "libtestsrc.so").read_bytes() == library
    (falconet_home / "config").mkdir(exist_ok=True)
    (falconet_home / "config" / "falconet.yaml").write_text(
        "plugins: [{name: testsrc, open_params: '6 2'}]\n"
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    done = run_cli("run", "-r", str(rules), "--plugin", "testsrc", "--no-web", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["rule"] for line in done.stdout.splitlines()] == ["Mallory deletes"]


def _scap_with_plugin_events(path: Path, events: list[tuple[int, int, bytes]]) -> None:
    """A minimal .scap capture (section header, then V2 event blocks) holding plugin events
    (ts, plugin id, data), as Falco writes captures of plugin sources."""
    import struct

    from engine.sources.plugin_host.events import encode_plugin_event

    def block(block_type: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        total = 12 + len(body)
        return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 2, -1))
    for ts, plugin_id, data in events:
        out += block(0x216, struct.pack("<H", 0) + encode_plugin_event(data, ts, plugin_id, 42))
    path.write_bytes(out)


def test_rules_over_plugin_fields_fire_on_a_scap_replay(plugins_dir: Path, tmp_path: Path) -> None:
    capture = tmp_path / "plugin.scap"
    _scap_with_plugin_events(
        capture,
        [
            (1_700_000_000_000_000_001, 999, b'{"n":5,"user":"mallory","action":"delete"}'),
            (1_700_000_000_000_000_002, 7, b'{"n":35,"user":"mallory","action":"delete"}'),
            (1_700_000_000_000_000_003, 999, b'{"n":6,"user":"alice","action":"read"}'),
            (1_700_000_000_000_000_004, 999, b'{"n":65,"user":"mallory","action":"delete"}'),
        ],
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    request = RunRequest(
        [rules],
        replay=str(capture),
        stdout=False,
        load_plugins=["testsrc"],
        plugins_dir=str(plugins_dir),
    )
    sink = CollectingSink()
    with native_plugins(request):
        stats = run(request, extra_sinks=[sink])
    # the event of plugin id 7 belongs to another plugin: skipped
    assert stats.events_by_source["testsrc"] == 3
    assert [
        (a.document["output_fields"]["testsrc.n"], a.document["time"]) for a in sink.alerts
    ] == [
        (5, "2023-11-14T22:13:20.000000001Z"),
        (65, "2023-11-14T22:13:20.000000004Z"),
    ]


def test_cli_plugin_info(plugins_dir: Path, run_cli) -> None:
    env = {"FALCONET_ARTIFACT_INSTALL_PLUGINS_DIR": str(plugins_dir)}
    done = run_cli("plugin", "info", "testsrc_schema", "-o", "json", env=env)
    assert done.returncode == 0, done.stderr
    described = json.loads(done.stdout)
    assert described["event_source"] == "testsrc" and described["id"] == 999
    assert described["init_schema"]["properties"]["user_prefix"]["maxLength"] == 16
    assert described["open_params"][1]["value"] == "1000 100"
    assert {"name": "testsrc.tags", "type": "string", "is_list": True, "arg": "none"}.items() <= (
        described["fields"][3].items()
    )
    done = run_cli("plugin", "info", str(plugins_dir / "libtestany.so"), env=env)
    assert done.returncode == 0 and "Capabilities: extraction" in done.stdout
    done = run_cli("plugin", "info", "testsrc_toonew", env=env)
    assert done.returncode == 7 and "plugin testsrc_toonew: requires plugin API" in done.stderr


def test_load_plugins_selects_as_falco_does(tmp_path: Path) -> None:
    from feeds.config import load_config
    from feeds.run_settings import plugin_settings

    config = tmp_path / "falconet.yaml"
    entries = "plugins: [{name: a, init_config: {x: 1}}, {name: b, open_params: '5 1'}]\n"
    config.write_text(entries)
    configs, load, _ = plugin_settings(load_config(str(config)), ["c"])
    assert load == ["a", "b", "c"]  # no load_plugins: every entry
    assert configs[0].init_config == '{"x": 1}' and configs[1].open_params == "5 1"
    config.write_text(entries + "load_plugins: []\n")
    assert plugin_settings(load_config(str(config)))[1] == []
    config.write_text(entries + "load_plugins: [b]\n")
    assert plugin_settings(load_config(str(config)), ["c"])[1] == ["b", "c"]
    config.write_text("plugins: [{name: a, libary_path: x}]\n")
    from feeds.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown key 'plugins\.libary_path'") as caught:
        load_config(str(config))
    assert caught.value.hint == "did you mean 'library_path'?"
