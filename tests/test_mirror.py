"""`artifact mirror`: the air-gap path, signatures included, verified against the copy."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import CliRunner
from tests.support.registry_server import RegistryServer
from tests.test_install import push

KEY_ENV = {"FALCONET_KEY_PASSWORD": "pw"}


def test_mirror_to_layout_then_install_offline_with_verification(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    for version in ("1.0.0", "1.1.0"):
        push(
            registry,
            f"acme/rules:{version}",
            {"acme_rules.yaml": f"- list: v\n  items: ['{version}']\n".encode()},
            tmp_path,
            version=version,
        )
    prefix = tmp_path / "release"
    assert run_cli("key", "generate", "--output-prefix", str(prefix), env=KEY_ENV).returncode == 0
    for version in ("1.0.0", "1.1.0"):
        signed = run_cli(
            "artifact",
            "sign",
            f"{registry.host}/acme/rules:{version}",
            "--key",
            f"{prefix}.key",
            "--plain-http",
            env=KEY_ENV,
        )
        assert signed.returncode == 0, signed.stderr
    (falconet_home / "config").mkdir()
    (falconet_home / "config" / "falconet.yaml").write_text(
        f"verify:\n  policies:\n    - match: '*/acme/rules'\n      key: {prefix}.pub\n"
    )

    mirror_dir = tmp_path / "airgap"
    result = run_cli(
        "artifact",
        "mirror",
        f"{registry.host}/acme/rules",
        f"oci-layout:{mirror_dir}/rules",
        "--all-tags",
        "--plain-http",
        "--write-index",
        str(mirror_dir / "index.yaml"),
        "-o",
        "json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {t["tag"] for t in report["tags"]} == {"1.0.0", "1.1.0"}
    assert len(report["signatures"]) == 2
    assert {v["verdict"] for v in report["verification"]} == {"verified"}

    registry.stop()  # from here on, the machine is air-gapped
    (falconet_home / "config" / "falconet.yaml").write_text(
        "index:\n  defaults: false\n"
        f"verify:\n  policies:\n    - match: 'oci-layout:{mirror_dir}/*'\n      key: {prefix}.pub\n"
    )
    added = run_cli("index", "add", "airgap", str(mirror_dir / "index.yaml"))
    assert added.returncode == 0, added.stderr
    installed = run_cli("artifact", "install", "rules:1.1.0", "-o", "json")
    assert installed.returncode == 0, installed.stderr
    artifact = json.loads(installed.stdout)["artifacts"][0]
    assert artifact["verification"]["verdict"] == "verified"
    assert (falconet_home / "rules" / "layer0-acme_rules.yaml").read_text() == (
        "- list: v\n  items: ['1.1.0']\n"
    )


def test_mirror_refuses_an_artifact_that_fails_its_policy(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    push(registry, "acme/unsigned:1.0.0", {"u_rules.yaml": b"- list: a\n  items: []\n"}, tmp_path)
    (falconet_home / "config").mkdir()
    (falconet_home / "config" / "falconet.yaml").write_text("verify:\n  require: true\n")
    result = run_cli(
        "artifact",
        "mirror",
        f"{registry.host}/acme/unsigned:1.0.0",
        f"oci-layout:{tmp_path}/copy",
        "--plain-http",
    )
    assert result.returncode == 6, result.stderr
    assert not (tmp_path / "copy").exists()
