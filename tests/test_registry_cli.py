"""`falconet registry ...` as a real process against real registries (plain, Basic auth, TLS)."""

from __future__ import annotations

import json
import os
import stat
import tarfile
from pathlib import Path

from tests.support.ports import free_port
from tests.support.registry_server import PASSWORD, USER

RULES = "- required_engine_version: 0.31.0\n- rule: r\n  desc: d\n  condition: evt.type=open\n"


def _rules(tmp_path: Path) -> Path:
    path = tmp_path / "team_rules.yaml"
    path.write_text(RULES)
    return path


def test_push_then_pull_json(run_cli, registry, tmp_path: Path) -> None:
    ref = f"{registry.host}/team/rules:1.0.0"
    pushed = run_cli(
        "registry", "push", ref, str(_rules(tmp_path)), "--type", "rulesfile",
        "--version", "1.0.0", "--add-floating-tags", "--annotation-source",
        "https://example.com/team/rules", "--plain-http", "-o", "json",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    result = json.loads(pushed.stdout)
    assert result["tags"] == ["1.0.0", "1", "1.0"]
    assert result["config"]["requirements"] == [
        {"name": "engine_version_semver", "version": "0.31.0"}
    ]

    out = tmp_path / "out"
    pulled = run_cli(
        "registry", "pull", f"{registry.host}/team/rules:1", "--dest-dir", str(out),
        "--plain-http", "-o", "json",
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    info = json.loads(pulled.stdout)
    assert info["digest"] == result["digest"]
    with tarfile.open(out / "team_rules.tar.gz") as tar:
        assert tar.getnames() == ["team_rules.yaml"]


def test_plugin_push_text_output_names_platforms(run_cli, registry, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "libx.so").write_bytes(b"amd")
    (tmp_path / "b" / "libx.so").write_bytes(b"arm")
    pushed = run_cli(
        "registry", "push", f"{registry.host}/plugins/x:0.1.0",
        str(tmp_path / "a" / "libx.so"), str(tmp_path / "b" / "libx.so"),
        "--type", "plugin", "--version", "0.1.0",
        "--platform", "linux/amd64", "--platform", "linux/arm64", "--plain-http",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    assert "[linux/amd64]" in pushed.stdout and "[linux/arm64]" in pushed.stdout


def test_bad_input_is_one_line_with_hint_and_usage_status(run_cli, tmp_path: Path) -> None:
    bad_ref = run_cli("registry", "pull", "falco-rules:3")
    assert bad_ref.returncode == 2
    assert bad_ref.stderr.startswith("error: 'falco-rules:3' is not a full reference")
    assert "hint:" in bad_ref.stderr and "Traceback" not in bad_ref.stderr

    bad_version = run_cli(
        "registry", "push", "127.0.0.1:1/x/y:1", str(_rules(tmp_path)),
        "--type", "rulesfile", "--version", "v1.0",
    )  # fmt: skip
    assert bad_version.returncode == 2
    assert "strict semver" in bad_version.stderr


def test_refused_connection_fails_fast_naming_the_host(run_cli, tmp_path: Path) -> None:
    host = f"127.0.0.1:{free_port()}"
    result = run_cli("registry", "pull", f"{host}/x/y:1", "--plain-http", timeout=30)
    assert result.returncode == 5
    assert f"cannot connect to {host}" in result.stderr


def test_login_refuses_a_wrong_password_and_stores_a_right_one(
    run_cli, registry_factory, falconet_home: Path, tmp_path: Path
) -> None:
    server = registry_factory(auth=True)
    config = falconet_home / "docker" / "config.json"
    wrong = run_cli(
        "registry", "login", server.host, "-u", USER, "--password-stdin", "--plain-http",
        input="not-the-password\n",
    )  # fmt: skip
    assert wrong.returncode == 4, wrong.stderr
    assert "refused the credentials" in wrong.stderr
    assert not config.exists()

    anonymous = run_cli(
        "registry", "push", f"{server.host}/p/r:1.0.0", str(_rules(tmp_path)),
        "--type", "rulesfile", "--version", "1.0.0", "--plain-http",
    )  # fmt: skip
    assert anonymous.returncode == 4
    assert "registry login" in anonymous.stderr

    right = run_cli(
        "registry", "login", server.host, "-u", USER, "--password-stdin", "--plain-http",
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert right.returncode == 0, right.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert server.host in json.loads(config.read_text())["auths"]

    pushed = run_cli(
        "registry", "push", f"{server.host}/p/r:1.0.0", str(_rules(tmp_path)),
        "--type", "rulesfile", "--version", "1.0.0", "--plain-http",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr

    logout = run_cli("registry", "logout", server.host)
    assert logout.returncode == 0
    assert server.host not in json.loads(config.read_text()).get("auths", {})


def test_credential_helper_stores_and_serves_secrets(
    run_cli, registry_factory, falconet_home: Path, tmp_path: Path
) -> None:
    """docker-credential-* protocol: a real helper program backed by a file."""
    server = registry_factory(auth=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    vault = tmp_path / "vault.json"
    helper = bin_dir / "docker-credential-filevault"
    helper.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"vault = {str(vault)!r}\n"
        "try:\n    data = json.load(open(vault))\nexcept FileNotFoundError:\n    data = {}\n"
        "action = sys.argv[1]\npayload = sys.stdin.read().strip()\n"
        "if action == 'store':\n"
        "    entry = json.loads(payload); data[entry['ServerURL']] = entry\n"
        "    json.dump(data, open(vault, 'w'))\n"
        "elif action == 'get':\n"
        "    if payload not in data:\n        print('credentials not found in native keychain')\n"
        "        sys.exit(1)\n"
        "    print(json.dumps(data[payload]))\n"
        "elif action == 'erase':\n    data.pop(payload, None); json.dump(data, open(vault, 'w'))\n"
    )
    helper.chmod(0o755)
    (falconet_home / "docker").mkdir()
    config = falconet_home / "docker" / "config.json"
    config.write_text(json.dumps({"credsStore": "filevault"}))
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}

    right = run_cli(
        "registry", "login", server.host, "-u", USER, "--password-stdin", "--plain-http",
        input=PASSWORD, env=env,
    )  # fmt: skip
    assert right.returncode == 0, right.stderr
    assert "docker-credential-filevault" in right.stdout
    assert "auths" not in json.loads(config.read_text())
    assert json.loads(vault.read_text())[server.host]["Secret"] == PASSWORD

    pushed = run_cli(
        "registry", "push", f"{server.host}/p/r:1.0.0", str(_rules(tmp_path)),
        "--type", "rulesfile", "--version", "1.0.0", "--plain-http", env=env,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr


def test_tls_registry_needs_its_ca(run_cli, registry_factory, tmp_path: Path) -> None:
    server = registry_factory(tls=True)
    assert server.ca is not None
    args = (
        "registry", "push", f"{server.host}/tls/r:1.0.0", str(_rules(tmp_path)),
        "--type", "rulesfile", "--version", "1.0.0",
    )  # fmt: skip
    refused = run_cli(*args)
    assert refused.returncode == 5
    assert "TLS connection" in refused.stderr and "--ca-file" in refused.stderr

    trusted = run_cli(*args, "--ca-file", str(server.ca.ca_cert))
    assert trusted.returncode == 0, trusted.stderr

    plain = run_cli("registry", "pull", f"{server.host}/tls/r:1.0.0", "--plain-http")
    assert plain.returncode == 5
    assert "speaks HTTPS" in plain.stderr

    insecure = run_cli(
        "registry", "pull", f"{server.host}/tls/r:1.0.0", "--dest-dir", str(tmp_path / "o"),
        "--insecure-skip-tls-verify",
    )  # fmt: skip
    assert insecure.returncode == 0, insecure.stderr


def test_tls_and_basic_auth_together(run_cli, registry_factory, tmp_path: Path) -> None:
    server = registry_factory(tls=True, auth=True)
    assert server.ca is not None
    ca = str(server.ca.ca_cert)
    login = run_cli(
        "registry", "auth", "basic", server.host, "-u", USER, "--password-stdin",
        "--ca-file", ca, input=PASSWORD,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    pushed = run_cli(
        "registry", "push", f"{server.host}/tls/r:1.0.0", str(_rules(tmp_path)),
        "--type", "rulesfile", "--version", "1.0.0", "--ca-file", ca,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr


def test_mutual_tls_needs_the_client_certificate(
    run_cli, registry_factory, tmp_path_factory, tmp_path: Path
) -> None:
    from tests.support.registry_server import RegistryServer

    registry_factory  # noqa: B018 - only for its skip when docker-registry is missing
    server = RegistryServer(tmp_path_factory.mktemp("mtls-registry"), tls=True, mutual_tls=True)
    server.start()
    assert server.ca is not None
    try:
        args = (
            "registry", "push", f"{server.host}/mtls/r:1.0.0", str(_rules(tmp_path)),
            "--type", "rulesfile", "--version", "1.0.0", "--ca-file", str(server.ca.ca_cert),
        )  # fmt: skip
        refused = run_cli(*args)
        assert refused.returncode == 5, refused.stderr
        assert "refused the TLS client certificate" in refused.stderr
        assert "--client-cert" in refused.stderr
        accepted = run_cli(
            *args, "--client-cert", str(server.client_cert), "--client-key", str(server.client_key)
        )
        assert accepted.returncode == 0, accepted.stderr
    finally:
        server.stop()


def test_unwritable_destination_is_one_clear_line(run_cli, tmp_path: Path) -> None:
    layout = tmp_path / "feed"
    pushed = run_cli(
        "registry", "push", f"oci-layout:{layout}:1.0.0", str(_rules(tmp_path)),
        "--type", "rulesfile", "--version", "1.0.0",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_cli("registry", "pull", f"oci-layout:{layout}:1.0.0", "--dest-dir", str(blocker))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: cannot write to {blocker}")
    assert "Traceback" not in result.stderr and "bug" not in result.stderr


def test_system_trust_store_is_used(run_cli, registry_factory, tmp_path: Path) -> None:
    """OpenSSL's default CA file (SSL_CERT_FILE here) is trusted without --ca-file."""
    server = registry_factory(tls=True)
    assert server.ca is not None
    env = {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "", "SSL_CERT_FILE": str(server.ca.ca_cert)}
    pushed = run_cli(
        "registry", "push", f"{server.host}/sys/r:1.0.0", str(_rules(tmp_path)),
        "--type", "rulesfile", "--version", "1.0.0", env=env,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
