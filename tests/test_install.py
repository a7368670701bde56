"""`artifact install` end to end against a real registry: staged, verified, all-or-nothing."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from registry.artifacts import PushSpec, push_artifact
from registry.options import ClientOptions
from registry.reference import parse_reference
from registry.store import open_store
from registry.tarball import targz_bytes
from tests.conftest import CliRunner
from tests.support.registry_server import RegistryServer


def push(
    server: RegistryServer,
    repo_tag: str,
    files: dict[str, bytes],
    tmp: Path,
    artifact_type: str = "rulesfile",
    version: str = "1.0.0",
    platforms: tuple[str, ...] = (),
) -> str:
    """Publish with falconet's core (the CLI's `registry push` is tested elsewhere)."""
    store = open_store(parse_reference(f"{server.host}/{repo_tag}"), ClientOptions(plain_http=True))
    paths = []
    for i, (name, data) in enumerate(files.items()):
        path = tmp / f"layer{i}-{name}"
        path.write_bytes(data)
        paths.append(path)
    spec = PushSpec(artifact_type, paths, version, platforms=platforms)
    return push_artifact(store, spec).digest


def rules_tarball(files: dict[str, str]) -> bytes:
    return targz_bytes({name: text.encode() for name, text in files.items()})


def installed(run_cli: CliRunner) -> dict[str, dict]:
    result = run_cli("artifact", "installed", "-o", "json")
    assert result.returncode == 0, result.stderr
    return {r["name"]: r for r in json.loads(result.stdout)}


def test_install_upgrade_keep_and_uninstall(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    rules = falconet_home / "rules"
    rules.mkdir()
    (rules / "falco.yaml").write_text("a file falconet does not own\n")
    v1 = push(
        registry,
        "rules/app:1.0.0",
        {
            "app.tar.gz": rules_tarball(
                {
                    "app_rules.yaml": "- list: a\n  items: [x]\n",
                    "app_extra.yaml": "- list: b\n  items: []\n",
                }
            )
        },
        tmp_path,
    )
    ref = f"{registry.host}/rules/app:1.0.0"
    first = run_cli("artifact", "install", ref, "--plain-http", "-o", "json")
    assert first.returncode == 0, first.stderr
    plan = json.loads(first.stdout)["artifacts"][0]
    assert (plan["action"], plan["digest"], plan["version"]) == ("install", v1, "1.0.0")
    assert sorted(p.name for p in rules.iterdir()) == [
        "app_extra.yaml",
        "app_rules.yaml",
        "falco.yaml",
    ]
    record = installed(run_cli)["app"]
    assert record["digest"] == v1 and len(record["files"]) == 2

    again = json.loads(run_cli("artifact", "install", ref, "--plain-http", "-o", "json").stdout)
    assert again["artifacts"][0]["action"] == "keep"
    assert again["artifacts"][0]["downloaded_blobs"] == 0

    # v2 stops shipping app_extra.yaml: it is removed, the file falconet does not own stays.
    v2 = push(
        registry,
        "rules/app:2.0.0",
        {"app.tar.gz": rules_tarball({"app_rules.yaml": "- list: a\n  items: [y]\n"})},
        tmp_path,
        version="2.0.0",
    )
    upgraded = run_cli(
        "artifact", "install", f"{registry.host}/rules/app:2.0.0", "--plain-http", "-o", "json"
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(upgraded.stdout)["artifacts"][0]["action"] == "upgrade"
    assert sorted(p.name for p in rules.iterdir()) == ["app_rules.yaml", "falco.yaml"]
    assert (rules / "app_rules.yaml").read_text() == "- list: a\n  items: [y]\n"
    assert installed(run_cli)["app"]["digest"] == v2

    removed = run_cli("artifact", "uninstall", "app")
    assert removed.returncode == 0, removed.stderr
    assert sorted(p.name for p in rules.iterdir()) == ["falco.yaml"]
    assert installed(run_cli) == {}


def test_dry_run_writes_nothing(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    push(registry, "rules/dry:1.0.0", {"dry_rules.yaml": b"- list: a\n  items: []\n"}, tmp_path)
    result = run_cli(
        "artifact", "install", f"{registry.host}/rules/dry:1.0.0", "--plain-http", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert "dry run: nothing was written" in result.stdout
    assert not (falconet_home / "rules").exists()
    assert installed(run_cli) == {}


def _evil_tarball() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        good = tarfile.TarInfo("ok_rules.yaml")
        good.size = 3
        tar.addfile(good, io.BytesIO(b"x\n\n"))
        link = tarfile.TarInfo("evil.yaml")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/shadow"
        tar.addfile(link)
    return buffer.getvalue()


def test_malicious_tarball_is_refused_and_nothing_changes(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    push(registry, "rules/good:1.0.0", {"good_rules.yaml": b"- list: a\n  items: []\n"}, tmp_path)
    push(registry, "rules/evil:1.0.0", {"evil.tar.gz": _evil_tarball()}, tmp_path)
    good = f"{registry.host}/rules/good:1.0.0"
    evil = f"{registry.host}/rules/evil:1.0.0"
    assert run_cli("artifact", "install", good, "--plain-http").returncode == 0
    before = sorted((falconet_home / "rules").iterdir())
    # Both in one run: the bad one must not leave the good one half-applied either.
    result = run_cli("artifact", "install", good, evil, "--plain-http")
    assert result.returncode == 1
    assert "symlink" in result.stderr.lower() and "Traceback" not in result.stderr
    assert sorted((falconet_home / "rules").iterdir()) == before
    assert set(installed(run_cli)) == {"good"}


def test_blob_edited_on_the_registry_is_refused(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    push(
        registry, "rules/tamper:1.0.0", {"tamper_rules.yaml": b"- list: a\n  items: []\n"}, tmp_path
    )
    manifest = json.loads(
        run_cli(
            "artifact", "manifest", f"{registry.host}/rules/tamper:1.0.0", "--plain-http"
        ).stdout
    )
    blob = registry.blob_path(manifest["layers"][0]["digest"])
    blob.write_bytes(blob.read_bytes()[:-4] + b"EVIL")
    result = run_cli("artifact", "install", f"{registry.host}/rules/tamper:1.0.0", "--plain-http")
    assert result.returncode == 6, result.stderr  # verification failed
    assert "digest" in result.stderr
    assert not (falconet_home / "rules" / "tamper_rules.yaml").exists()
    assert installed(run_cli) == {}


def test_plugin_installs_the_host_platform(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    from registry.artifacts import host_platform_string

    other = "linux/arm64" if host_platform_string() != "linux/arm64" else "linux/amd64"
    push(
        registry,
        "plugins/demo:0.3.0",
        {
            "host.tar.gz": targz_bytes({"libdemo.so": b"host build"}),
            "other.tar.gz": targz_bytes({"libdemo.so": b"other build"}),
        },
        tmp_path,
        artifact_type="plugin",
        version="0.3.0",
        platforms=(host_platform_string(), other),
    )
    result = run_cli("artifact", "install", f"{registry.host}/plugins/demo:0.3.0", "--plain-http")
    assert result.returncode == 0, result.stderr
    assert (falconet_home / "plugins" / "libdemo.so").read_bytes() == b"host build"
    refused = run_cli(
        "artifact",
        "install",
        f"{registry.host}/plugins/demo:0.3.0",
        "--plain-http",
        "--allowed-types",
        "rulesfile",
    )
    assert refused.returncode == 2 and "not one of the allowed types" in refused.stderr


def test_embedded_default_feed_installs_offline(run_cli: CliRunner, falconet_home: Path) -> None:
    """The main job: no configuration, no network, the embedded feed's ruleset installs."""
    result = run_cli("artifact", "install", "-o", "json")
    assert result.returncode == 0, result.stderr
    artifacts = {a["name"]: a for a in json.loads(result.stdout)["artifacts"]}
    assert artifacts["falconet-rules"]["action"] == "install"
    # Its dependency, the container plugin, is one falconet's engine stands in for.
    assert artifacts["container"]["action"] == "provided"
    assert (falconet_home / "rules" / "falconet_rules.yaml").is_file()


def test_unknown_index_name_is_not_found(run_cli: CliRunner, falconet_home: Path) -> None:
    # Only readable indexes (an index file of the test's own): a name none has is not found.
    index = falconet_home / "index.yaml"
    index.write_text("[]\n")
    (falconet_home / "config").mkdir(exist_ok=True)
    (falconet_home / "config" / "falconet.yaml").write_text(
        f"index:\n  defaults: false\nindexes:\n  - name: mine\n    url: file://{index}\n"
    )
    result = run_cli("artifact", "install", "no-such-artifact:1")
    assert result.returncode == 3, result.stderr
    assert "cannot find no-such-artifact" in result.stderr


def test_an_unreachable_index_is_a_network_error_not_not_found(run_cli: CliRunner) -> None:
    """falcosecurity's public index cannot be reached (made certain here by a proxy that
    refuses connections): a name it may hold is not "not found", and search is not an empty
    answer."""
    offline = {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    commands = [
        ("artifact", "install", "falco-rules:5"),
        ("artifact", "search", "k8saudit"),
        ("artifact", "info", "falco-rules"),
        ("artifact", "resolve", "falco-rules"),
    ]
    for args in commands:
        result = run_cli(*args, env=offline)
        assert result.returncode == 5, (args, result.stderr)
        assert "index falcosecurity could not be read" in result.stderr
    # What the readable embedded index holds still installs, and is still found, with a word.
    assert run_cli("artifact", "install", env=offline).returncode == 0
    partial = run_cli("artifact", "search", "falconet", env=offline)
    assert partial.returncode == 0 and "falconet-rules" in partial.stdout
    assert "index falcosecurity could not be read" in partial.stderr


@pytest.mark.parametrize("ref", ["UPPER/case", "name@sha256:abc"])
def test_malformed_refs_are_usage_errors(run_cli: CliRunner, ref: str) -> None:
    result = run_cli("artifact", "install", ref)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr


def test_embedded_feed_is_verified_offline(run_cli: CliRunner) -> None:
    result = run_cli("artifact", "install", "falconet-rules:0.2.0", "-o", "json")
    assert result.returncode == 0, result.stderr
    artifacts = {a["name"]: a for a in json.loads(result.stdout)["artifacts"]}
    verification = artifacts["falconet-rules"]["verification"]
    assert verification["verdict"] == "verified"
    assert verification["policy"] == "index entry signature"


def test_shipped_default_feed_is_up_to_date(tmp_path: Path) -> None:
    """The layout in the package is what the build script makes from the rules file now."""
    from feeds.default_feed.build import FEED_DIR, REPOSITORY, build_layout, shipped_digest

    assert build_layout(tmp_path / REPOSITORY) == shipped_digest(FEED_DIR / "layout" / REPOSITORY)


def _sign(run_cli: CliRunner, ref: str, prefix: Path) -> None:
    env = {"FALCONET_KEY_PASSWORD": "pw"}
    if not prefix.with_suffix(".key").exists():
        made = run_cli("key", "generate", "--output-prefix", str(prefix), env=env)
        assert made.returncode == 0, made.stderr
    signed = run_cli(
        "artifact", "sign", ref, "--key", str(prefix.with_suffix(".key")), "--plain-http", env=env
    )
    assert signed.returncode == 0, signed.stderr


def test_signature_policies_decide_what_installs(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ref_ok = f"{registry.host}/signed/ok:1.0.0"
    ref_other = f"{registry.host}/signed/other:1.0.0"
    ref_unsigned = f"{registry.host}/signed/unsigned:1.0.0"
    for ref in (ref_ok, ref_other, ref_unsigned):
        name = ref.rsplit("/", 1)[1].split(":")[0]
        push(
            registry,
            ref.split("/", 1)[1],
            {f"{name}_rules.yaml": b"- list: a\n  items: []\n"},
            tmp_path,
        )
    _sign(run_cli, ref_ok, ours)
    _sign(run_cli, ref_other, theirs)
    config = falconet_home / "config" / "falconet.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"verify:\n  policies:\n    - match: '{registry.host}/signed/*'\n      key: {ours}.pub\n"
    )

    good = run_cli("artifact", "install", ref_ok, "--plain-http", "-o", "json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["artifacts"][0]["verification"]["verdict"] == "verified"

    for bad in (ref_other, ref_unsigned):  # another key's signature; no signature at all
        result = run_cli("artifact", "install", bad, "--plain-http")
        assert result.returncode == 6, result.stderr
        assert "Traceback" not in result.stderr
    assert sorted(p.name for p in (falconet_home / "rules").iterdir()) == ["layer0-ok_rules.yaml"]

    skipped = run_cli("artifact", "install", ref_unsigned, "--plain-http", "--no-verify")
    assert skipped.returncode == 0, skipped.stderr
    assert "verification disabled" in skipped.stderr or "skipped" in skipped.stderr


def test_require_signature_refuses_artifacts_no_policy_covers(
    run_cli: CliRunner, registry: RegistryServer, falconet_home: Path, tmp_path: Path
) -> None:
    push(registry, "free/rules:1.0.0", {"free_rules.yaml": b"- list: a\n  items: []\n"}, tmp_path)
    ref = f"{registry.host}/free/rules:1.0.0"
    plain = run_cli("artifact", "install", ref, "--plain-http")
    assert plain.returncode == 0 and "unverified" in plain.stderr
    refused = run_cli(
        "artifact",
        "install",
        ref,
        "--plain-http",
        "--require-signature",
        "--rulesfiles-dir",
        str(tmp_path / "elsewhere"),
    )
    assert refused.returncode == 6, refused.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_compliance_selection_at_install(run_cli: CliRunner, falconet_home: Path) -> None:
    """--compliance writes the overlay and a Falco config.d selection; the state records it."""
    import yaml

    bad = run_cli("artifact", "install", "--compliance", "no-such-framework")
    assert bad.returncode in (2, 3) and not (falconet_home / "rules").exists()
    result = run_cli("artifact", "install", "--compliance", "pci-dss:10", "-o", "json")
    assert result.returncode == 0, result.stderr
    selection = json.loads(result.stdout)["selection"]
    fragment = yaml.safe_load(Path(selection["selection_file"]).read_text())
    enabled = [step["enable"]["rule"] for step in fragment["rules"][1:]]
    assert fragment["rules"][0] == {"disable": {"rule": "*"}}
    # Independently: the rules whose own tags plus the overlay's appended tags name a PCI DSS
    # 10.x control (Falco's enable-by-tag over the overlaid rules).
    tags: dict[str, set[str]] = {}
    for path in ("falconet_rules.yaml", "zz-falconet-compliance-overlay.yaml"):
        for item in yaml.safe_load((falconet_home / "rules" / path).read_text()):
            if "rule" in item:
                tags.setdefault(item["rule"], set()).update(item.get("tags", []))
    expected = [n for n, t in tags.items() if any(x.startswith("PCI_DSS_10.") for x in t)]
    assert sorted(enabled) == sorted(expected) and expected
    assert Path(selection["overlay"]).name == "zz-falconet-compliance-overlay.yaml"
    record = installed(run_cli)["falconet-rules"]
    assert record["selection"]["criteria"]["compliance"]
    assert record["selection"]["criteria"]["strength"] == "technique"
