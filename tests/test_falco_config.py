"""`falconet run --falco-config FILE` as a real process: a falco.yaml written here in upstream's
layout (a faithful subset of Falco's own file, keys and defaults as it ships them) plus config.d
fragments, driving replays of k8s audit events."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from feeds.errors import ConfigError
from feeds.falco_config import read_falco_config
from tests.conftest import REPO_ROOT
from tests.support.certificates import TestCA
from tests.support.http_server import StaticServer
from tests.support.ports import free_port
from tests.support.waiting import wait_for

RULES = """
- rule: Pod created
  desc: d
  condition: ka.verb=create and ka.target.resource=pods
  output: pod created (user=%ka.user.name)
  priority: WARNING
  source: k8s_audit
  tags: [k8s, pods]
- rule: Pod deleted
  desc: d
  condition: ka.verb=delete and ka.target.resource=pods
  output: pod deleted (user=%ka.user.name)
  priority: NOTICE
  source: k8s_audit
  tags: [k8s, noisy]
- rule: Configmap created
  desc: d
  condition: ka.verb=create and ka.target.resource=configmaps
  output: configmap created (user=%ka.user.name)
  priority: INFO
  source: k8s_audit
  tags: [k8s, noisy]
"""

# The shape and defaults of upstream falco.yaml (falcosecurity/falco), the parts that matter
# here; `{rules}` and `{config_d}` are filled per test.
FALCO_YAML = """
config_files:
  - {config_d}
watch_config_files: true
rules_files:
  - {rules}
  - /etc/falco/falco_rules.local.yaml
  - /etc/falco/rules.d
load_plugins: []
plugins:
  - name: container
    library_path: libcontainer.so
    init_config:
      label_max_len: 100
      with_size: false
plugins_hostinfo: true
time_format_iso_8601: false
buffer_format_base64: false
priority: debug
json_output: false
json_include_output_property: true
json_include_message_property: false
json_include_output_fields_property: true
json_include_tags_property: true
buffered_outputs: false
rule_matching: first
outputs_queue:
  capacity: 0
append_output:
  - suggested_output: true
stdout_output:
  enabled: true
syslog_output:
  enabled: false
file_output:
  enabled: false
  keep_alive: false
  filename: ./events.txt
http_output:
  enabled: false
  url: ""
  user_agent: "falcosecurity/falco"
  insecure: false
  ca_cert: ""
  ca_bundle: ""
  ca_path: "/etc/ssl/certs"
  mtls: false
  client_cert: "/etc/ssl/certs/client.crt"
  client_key: "/etc/ssl/certs/client.key"
  echo: false
  compress_uploads: false
  keep_alive: false
  max_consecutive_timeouts: 5
program_output:
  enabled: false
  keep_alive: false
  program: "jq '{{text: .output}}' | curl -d @- -X POST https://hooks.slack.com/services/XXX"
webserver:
  enabled: true
  threadiness: 0
  listen_port: 8765
  listen_address: 0.0.0.0
  k8s_healthz_endpoint: /healthz
  prometheus_metrics_enabled: false
  ssl_enabled: false
  ssl_certificate: /etc/falco/falco.pem
log_stderr: true
log_syslog: true
log_level: info
libs_logger:
  enabled: true
  severity: info
output_timeout: 2000
syscall_event_timeouts:
  max_consecutives: 1000
syscall_event_drops:
  threshold: .1
  actions:
    - log
    - alert
  rate: .03333
  max_burst: 1
  simulate_drops: false
base_syscalls:
  custom_set: []
  repair: false
falco_libs:
  thread_table_size: 262144
"""


def _event(verb: str, resource: str, index: int) -> dict[str, Any]:
    return {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": str(index),
        "level": "Request", "stage": "ResponseComplete", "verb": verb,
        "user": {"username": "alice"},
        "objectRef": {"resource": resource, "namespace": "n", "name": f"x{index}"},
        "stageTimestamp": "2026-12-08T00:00:00.000000Z",
    }  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    events = tmp_path / "events.json"
    triples = [("create", "pods"), ("delete", "pods"), ("create", "configmaps")]
    events.write_text("\n".join(json.dumps(_event(v, r, i)) for i, (v, r) in enumerate(triples)))
    config_d = tmp_path / "config.d"
    config_d.mkdir()
    return {"dir": tmp_path, "rules": rules, "events": events, "config_d": config_d}


def _falco_yaml(setup: dict[str, Path], extra: str = "", **replace: str) -> Path:
    text = FALCO_YAML.format(rules=setup["rules"], config_d=setup["config_d"])
    for key, value in replace.items():
        text = re.sub(rf"^{key}: .*$", f"{key}: {value}", text, flags=re.M)
    path = setup["dir"] / "falco.yaml"
    path.write_text(text + extra)
    return path


def _run(
    run_cli: Any, setup: dict[str, Path], falco: Path, *args: str, env: dict | None = None
) -> Any:
    return run_cli(
        "run", "--falco-config", str(falco), "--replay", str(setup["events"]),
        "--source", "k8s_audit", *args, env=env,
    )  # fmt: skip


def _rules_fired(stdout: str) -> list[str]:
    return [json.loads(line)["rule"] for line in stdout.splitlines()]


def test_upstream_defaults_run_the_rules_files_in_text(run_cli: Any, setup: dict) -> None:
    done = _run(run_cli, setup, _falco_yaml(setup))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and "Warning pod created (user=alice)" in lines[0]
    assert not lines[0].startswith("2026-12-08T")  # local clock, not ISO 8601
    # Falco's valid keys without effect here: one line each, never an error
    for key in ("buffered_outputs", "log_level", "libs_logger", "falco_libs"):
        assert f"{key}: ignored" in done.stderr
    assert len(re.findall(r"log_level: ignored", done.stderr)) == 1
    assert "append_output" not in done.stderr  # the shipped suggested_output entry is no-op


def test_json_output_and_its_include_switches(run_cli: Any, setup: dict) -> None:
    falco = _falco_yaml(
        setup,
        json_output="true",
        json_include_output_property="false",
        json_include_tags_property="false",
        json_include_message_property="true",
    )
    done = _run(run_cli, setup, falco)
    assert done.returncode == 0, done.stderr
    alert = json.loads(done.stdout.splitlines()[0])
    assert alert["rule"] == "Pod created"
    assert "output" not in alert and "tags" not in alert
    assert alert["message"] == "pod created (user=alice)"
    assert alert["output_fields"]["ka.user.name"] == "alice"
    plain = _run(run_cli, setup, _falco_yaml(setup, json_output="true"))
    alert = json.loads(plain.stdout.splitlines()[0])
    assert "message" not in alert and alert["tags"] == ["k8s", "pods"] and "output" in alert


def test_flags_override_falco_yaml(run_cli: Any, setup: dict) -> None:
    falco = _falco_yaml(setup, json_output="true", priority="warning")
    done = _run(run_cli, setup, falco, "-o", "text", "--min-priority", "info")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3 and not done.stdout.startswith("{")


def test_stdout_disabled_and_file_output(run_cli: Any, setup: dict) -> None:
    alerts = setup["dir"] / "alerts.txt"
    falco = _falco_yaml(setup, json_output="true")
    text = falco.read_text()
    text = text.replace("stdout_output:\n  enabled: true", "stdout_output:\n  enabled: false")
    text = text.replace(
        "file_output:\n  enabled: false\n  keep_alive: false\n  filename: ./events.txt",
        f"file_output:\n  enabled: true\n  keep_alive: false\n  filename: {alerts}",
    )
    falco.write_text(text)
    done = _run(run_cli, setup, falco)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert _rules_fired(alerts.read_text()) == ["Pod created", "Pod deleted", "Configmap created"]


def test_rules_selection_by_tag_then_by_name(run_cli: Any, setup: dict) -> None:
    selection = "rules:\n  - disable:\n      tag: noisy\n  - enable:\n      rule: Pod del*\n"
    done = _run(run_cli, setup, _falco_yaml(setup, selection, json_output="true"))
    assert done.returncode == 0, done.stderr
    assert _rules_fired(done.stdout) == ["Pod created", "Pod deleted"]


def test_priority_and_iso_8601_times(run_cli: Any, setup: dict) -> None:
    falco = _falco_yaml(setup, priority="notice", time_format_iso_8601="true")
    done = _run(run_cli, setup, falco)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2  # the INFO rule is below `priority`
    assert all(line.startswith("2026-12-08T00:00:00.000000000+0000: ") for line in lines)


def test_config_d_fragment_overrides_and_appends(run_cli: Any, setup: dict) -> None:
    (setup["config_d"] / "10-priority.yaml").write_text("priority: warning\njson_output: true\n")
    done = _run(run_cli, setup, _falco_yaml(setup))
    assert done.returncode == 0, done.stderr
    assert _rules_fired(done.stdout) == ["Pod created"]
    # a later fragment in lexicographic order wins; add-only never replaces
    (setup["config_d"] / "20-priority.yaml").write_text("priority: notice\n")
    extra = setup["dir"] / "extra.yaml"
    extra.write_text("priority: emergency\n")
    falco = _falco_yaml(setup)
    falco.write_text(
        falco.read_text().replace(
            f"  - {setup['config_d']}\n",
            f"  - {setup['config_d']}\n  - path: {extra}\n    strategy: add-only\n",
        )
    )
    done = _run(run_cli, setup, falco)
    assert _rules_fired(done.stdout) == ["Pod created", "Pod deleted"]


def test_config_d_next_to_the_file_without_config_files(setup: dict) -> None:
    falco = setup["dir"] / "falco.yaml"
    falco.write_text(f"rules_files: [{setup['rules']}]\n")
    (setup["config_d"] / "a.yaml").write_text("rules_files: [/nonexistent/rules.yaml]\n")
    (setup["config_d"] / "b.yaml").write_text("json_output: true\n")
    settings = read_falco_config(falco, replay=True)
    assert settings.files == [
        str(falco),
        *(str(setup["config_d"] / n) for n in ("a.yaml", "b.yaml")),
    ]
    # append strategy: the fragment's rules_files follow the main file's; absent ones skipped
    assert settings.options["rules"] == [str(setup["rules"])]
    assert settings.options["output"] == "json"
    fragment = setup["config_d"] / "a.yaml"  # the last file to set the key
    assert (
        f"{fragment}: rules_files: /nonexistent/rules.yaml is absent: skipped" in settings.ignored
    )


def test_rules_file_singular_grpc_and_conflicts(setup: dict) -> None:
    falco = setup["dir"] / "old.yaml"
    falco.write_text(
        f"config_files: []\nrules_file: [{setup['rules']}]\n"
        "grpc: {enabled: false}\ngrpc_output: {enabled: false}\n"
    )
    settings = read_falco_config(falco)
    assert settings.options["rules"] == [str(setup["rules"])]
    assert f"{falco}: grpc: ignored (no effect in falconet)" in settings.ignored
    assert f"{falco}: grpc_output: ignored (no effect in falconet)" in settings.ignored
    falco.write_text(f"rules_file: [{setup['rules']}]\nrules_files: []\n")
    with pytest.raises(ConfigError, match="both rules_files and rules_file"):
        read_falco_config(falco)
    falco.write_text("rules:\n  - enable: {rule: a, tag: b}\n")
    with pytest.raises(ConfigError, match=r"rules\[0\]\.enable"):
        read_falco_config(falco)
    falco.write_text("priority: loud\n")
    with pytest.raises(ConfigError, match="priority: Unknown priority 'loud'"):
        read_falco_config(falco)
    falco.write_text("json_output: yes please\n")
    with pytest.raises(ConfigError, match="json_output: must be a bool"):
        read_falco_config(falco)


def test_misspelt_keys_exit_2_with_a_suggestion(run_cli: Any, setup: dict) -> None:
    done = _run(run_cli, setup, _falco_yaml(setup, "json_ouput: true\n"))
    assert done.returncode == 2
    assert "json_ouput" in done.stderr and "did you mean 'json_output'" in done.stderr
    falco = _falco_yaml(setup)
    falco.write_text(falco.read_text().replace("  filename: ./events.txt", "  filname: x"))
    done = _run(run_cli, setup, falco)
    assert done.returncode == 2
    assert "file_output.filname" in done.stderr and "'filename'" in done.stderr


def test_hostile_files_are_refused(setup: dict) -> None:
    bomb = setup["dir"] / "bomb.yaml"
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 8)]
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"bomb\.yaml"):
        read_falco_config(bomb)
    big = setup["dir"] / "big.yaml"
    big.write_text("log_level: info\n" + "#" * (5 * 1024 * 1024))
    with pytest.raises(ConfigError, match="larger than"):
        read_falco_config(big)
    nested = setup["dir"] / "nested.yaml"
    (setup["config_d"] / "x.yaml").write_text("config_files: [/etc]\n")
    nested.write_text(f"config_files: [{setup['config_d']}]\n")
    with pytest.raises(ConfigError, match="config_files: not allowed"):
        read_falco_config(nested)


def test_outputs_and_services_map_to_sinks(setup: dict) -> None:
    falco = setup["dir"] / "f.yaml"
    falco.write_text(
        "config_files: []\n"
        "http_output: {enabled: true, url: 'https://127.0.0.1:1/x', user_agent: ua, "
        "ca_bundle: /tmp/ca.pem, mtls: true, client_cert: c.pem, client_key: k.pem, "
        "compress_uploads: true}\n"
        "program_output: {enabled: true, program: cat, keep_alive: true}\n"
        "syslog_output: {enabled: false}\n"
        "webserver: {enabled: true, listen_address: 127.0.0.1, listen_port: 9999}\n"
        "outputs_queue: {capacity: 5}\n"
        "base_syscalls: {custom_set: [openat], repair: true}\n"
        "watch_config_files: false\n"
    )
    settings = read_falco_config(falco)
    http, program = settings.sinks[1], settings.sinks[0]
    assert http["headers"] == {"User-Agent": "ua"} and http["compress"] is True
    assert http["ca_file"] == "/tmp/ca.pem" and http["client_cert"] == "c.pem"
    assert program == {"type": "program", "command": "cat"}
    assert settings.options["web"] == "127.0.0.1:9999" and settings.watch is False
    assert settings.settings["outputs.queue_capacity"] == 5
    assert settings.settings["base_syscalls.custom_set"] == ["openat"]
    assert "web" not in read_falco_config(falco, replay=True).options
    assert settings.sink_specs({"output_http"}) == [program]


def test_http_output_with_mtls_and_compression(run_cli: Any, setup: dict) -> None:
    """http_output as falcosidekick users set it: a real TLS server on loopback that requires
    a client certificate, the CA from ca_cert, gzip bodies and Falco's user agent."""
    ca = TestCA(setup["dir"] / "pki")
    client_cert, client_key = ca.issue_client()
    server = StaticServer().start()
    assert server._server is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.ca_cert))
    context.load_cert_chain(ca.server_cert, ca.server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    server._server.socket = context.wrap_socket(server._server.socket, server_side=True)
    port = server._server.server_address[1]
    falco = _falco_yaml(setup, priority="warning")
    text = falco.read_text()
    start, end = text.index("http_output:\n"), text.index("program_output:\n")
    text = (
        text[:start]
        + (
            "http_output:\n  enabled: true\n"
            f"  url: https://127.0.0.1:{port}/falco\n  user_agent: falcosecurity/falco\n"
            f"  ca_cert: {ca.ca_cert}\n  mtls: true\n"
            f"  client_cert: {client_cert}\n  client_key: {client_key}\n"
            "  compress_uploads: true\n  keep_alive: false\n"
        )
        + text[end:]
    )
    falco.write_text(text)
    try:
        done = _run(run_cli, setup, falco)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    (request,) = server.requests
    assert request.path == "/falco" and request.headers["User-Agent"] == "falcosecurity/falco"
    assert request.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(request.body))["rule"] == "Pod created"
    assert "http_output.keep_alive: ignored" in done.stderr


def test_program_output_without_keep_alive_starts_one_program_per_alert(
    run_cli: Any, setup: dict
) -> None:
    out = setup["dir"] / "program.txt"
    falco = _falco_yaml(setup, json_output="true")
    text = falco.read_text()
    start, end = text.index("program_output:\n"), text.index("webserver:\n")
    program = f"cat >> {out}; echo end >> {out}"
    text = (
        text[:start]
        + (f"program_output:\n  enabled: true\n  keep_alive: false\n  program: '{program}'\n")
        + text[end:]
    )
    falco.write_text(text.replace("stdout_output:\n  enabled: true", "stdout_output: {}"))
    done = _run(run_cli, setup, falco)
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert lines[1::2] == ["end"] * 3  # one program run per alert
    assert [json.loads(line)["rule"] for line in lines[0::2]] == [
        "Pod created",
        "Pod deleted",
        "Configmap created",
    ]


def test_webserver_of_a_live_run_follows_falco_yaml(falconet_home: Path, setup: dict) -> None:
    """A live k8s audit webhook run: falco.yaml's webserver address serves /healthz; alerts as
    falco.yaml's json_output says; SIGTERM ends it."""
    port = free_port()
    falco = setup["dir"] / "live.yaml"
    falco.write_text(
        f"config_files: []\nrules_files: [{setup['rules']}]\njson_output: true\n"
        "syslog_output: {enabled: false}\n"
        f"webserver: {{enabled: true, listen_address: 127.0.0.1, listen_port: {port}}}\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), FALCONET_HOME=str(falconet_home))
    command = [sys.executable, "-m", "cli", "run", "--falco-config", str(falco),
               "--source", "k8s_audit", "--listen", "127.0.0.1:0"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stderr is not None
        line = ""
        for line in process.stderr:  # log lines come first; the process writes or exits
            if "listening on" in line:
                break
        assert "listening on http://127.0.0.1:" in line, line
        url = line.split()[-1]

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(healthy, timeout=30)
        body = json.dumps(
            {
                "kind": "EventList",
                "apiVersion": "audit.k8s.io/v1",
                "items": [_event("create", "pods", 1)],
            }
        ).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert _rules_fired(stdout) == ["Pod created"]


def test_environment_variables_are_resolved_as_falco_does(
    setup: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feeds.falco_config import expand_env

    monkeypatch.setenv("FC_JSON", "true")
    monkeypatch.setenv("FC_DIR", str(setup["dir"]))
    monkeypatch.setenv("FC_LOOP", "${FC_LOOP}")
    monkeypatch.delenv("FC_UNSET", raising=False)
    assert expand_env("a${FC_UNSET}b $${HOME} ${FC_LOOP}") == "ab ${HOME} ${FC_LOOP}"
    assert expand_env("cost $5 ${FC_JSON}") == "cost $5 ${FC_JSON}"  # a bare $ ends the scan
    falco = setup["dir"] / "env.yaml"
    falco.write_text(
        "config_files: []\njson_output: ${FC_JSON}\n"
        "file_output: {enabled: true, filename: '${FC_DIR}/alerts.json'}\n"
    )
    settings = read_falco_config(falco)
    assert settings.options["output"] == "json"
    assert settings.sinks[0]["path"] == f"{setup['dir']}/alerts.json"


def test_append_output_by_tag_rule_and_source(run_cli: Any, setup: dict) -> None:
    extra = """append_output:
  - suggested_output: true
  - match:
      tags: [k8s, pods]
    extra_output: "in %ka.target.namespace"
    extra_fields:
      - team: "${FC_TEAM}"
      - ka.verb
  - match:
      source: k8s_audit
      rule: Configmap created
    extra_output: "(cm)"
  - match:
      source: syscall
    extra_output: "never"
"""
    falco = _falco_yaml(setup, json_output="true")
    text = falco.read_text().replace("append_output:\n  - suggested_output: true\n", extra)
    falco.write_text(text)
    done = _run(run_cli, setup, falco, env={"FC_TEAM": "blue"})
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines()]
    created, deleted, configmap = alerts
    assert created["output"].endswith("pod created (user=alice) in n")
    assert created["output_fields"]["team"] == "blue"
    assert created["output_fields"]["ka.verb"] == "create"
    assert deleted["output"].endswith("pod deleted (user=alice)")
    assert "team" not in deleted["output_fields"]
    assert configmap["output"].endswith("configmap created (user=alice) (cm)")
    bad = text.replace('extra_output: "(cm)"', 'extra_output: "%ka.nosuchfield"')
    falco.write_text(bad)
    refused = _run(run_cli, setup, falco)
    assert (
        refused.returncode == 2 and "append_output for rule 'Configmap created'" in refused.stderr
    )


def test_errors_name_the_fragment_that_set_the_key(setup: dict) -> None:
    falco = setup["dir"] / "falco.yaml"
    falco.write_text("priority: debug\n")
    fragment = setup["config_d"] / "50-bad.yaml"
    fragment.write_text("priority: loud\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(fragment))}: priority: "):
        read_falco_config(falco)
    fragment.write_text("stdout_output: {enabeld: false}\n")
    with pytest.raises(ConfigError, match=r"50-bad\.yaml: stdout_output\.enabeld: .*'enabled'"):
        read_falco_config(falco)
