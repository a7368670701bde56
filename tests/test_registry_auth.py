"""Authentication: the scheme comes from the challenge; Bearer tokens are fetched and reused."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.artifacts import PushSpec, fetch_config, pull_artifact, push_artifact
from registry.auth import merge_scopes, parse_challenge
from registry.credentials import load_credentials, store_credentials
from registry.errors import AuthError
from registry.reference import parse_reference
from registry.store import ClientOptions, open_store
from tests.support.registry_server import PASSWORD, USER
from tests.support.token_registry import SERVICE, TokenRegistryServer, TokenService


@pytest.fixture
def token_registry(registry_factory, tmp_path_factory) -> Iterator[TokenRegistryServer]:
    registry_factory  # noqa: B018 - only for its skip when docker-registry is missing
    service = TokenService(tmp_path_factory.mktemp("token"))
    server = TokenRegistryServer(tmp_path_factory.mktemp("token-registry"))
    server.token_service = service
    server.start()
    yield server
    server.stop()
    service.stop()


def test_parse_challenge_reads_quoted_params() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg.example",'
        'scope="repository:a/b:pull,push"'
    )
    assert challenge is not None
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.example/token"
    assert challenge.params["scope"] == "repository:a/b:pull,push"
    basic = parse_challenge('Basic realm="basic-realm"')
    assert basic is not None and basic.scheme == "basic"


def test_merge_scopes_unions_actions_per_repository() -> None:
    merged = merge_scopes("repository:a/b:pull", "repository:a/b:push repository:c:pull")
    assert merged == "repository:a/b:pull,push repository:c:pull"


def test_bearer_flow_push_pull_and_token_reuse(token_registry, tmp_path: Path) -> None:
    service = token_registry.token_service
    assert service is not None
    options = ClientOptions(plain_http=True, username=USER, password=PASSWORD)
    rules = tmp_path / "tok_rules.yaml"
    rules.write_text("- rule: r\n  desc: d\n  condition: evt.num > 0\n")
    ref = parse_reference(f"{token_registry.host}/bearer/rules:1.0.0")
    push_artifact(
        open_store(ref, options),
        PushSpec(artifact_type="rulesfile", files=[rules], version="1.0.0"),
    )
    assert all(r["service"] == SERVICE for r in service.requests)
    before = len(service.requests)
    for out in ("a", "b", "c"):
        pull_artifact(open_store(ref, options), tmp_path / out)
    # Three pulls of the same repository: the cached pull token serves them all.
    assert len(service.requests) == before
    scopes = {r.get("scope") for r in service.requests}
    assert "repository:bearer/rules:pull" in scopes


def test_bearer_wrong_password_is_an_auth_error(token_registry, tmp_path: Path) -> None:
    options = ClientOptions(plain_http=True, username=USER, password="wrong")
    ref = parse_reference(f"{token_registry.host}/bearer/rules:1.0.0")
    with pytest.raises(AuthError, match="refused the credentials"):
        fetch_config(open_store(ref, options))


def test_cli_login_against_token_registry(run_cli, token_registry, falconet_home: Path) -> None:
    wrong = run_cli(
        "registry", "login", token_registry.host, "-u", USER, "--password-stdin",
        "--plain-http", input="nope",
    )  # fmt: skip
    assert wrong.returncode == 4
    right = run_cli(
        "registry", "login", token_registry.host, "-u", USER, "--password-stdin",
        "--plain-http", input=PASSWORD,
    )  # fmt: skip
    assert right.returncode == 0, right.stderr
    config = json.loads((falconet_home / "docker" / "config.json").read_text())
    assert token_registry.host in config["auths"]


def test_docker_config_lookup_honours_docker_config_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    options = ClientOptions()
    assert load_credentials("reg.example:5000", options) is None
    store_credentials("reg.example:5000", "me", "pw:with:colons", options)
    found = load_credentials("reg.example:5000", options)
    assert found is not None
    assert (found.username, found.password) == ("me", "pw:with:colons")
    # docker writes keys as URLs too; both spellings are found.
    (tmp_path / "dc" / "config.json").write_text(
        json.dumps({"auths": {"https://other.example": {"username": "u", "password": "p"}}})
    )
    other = load_credentials("other.example", options)
    assert other is not None and other.username == "u"


def test_oauth_client_credentials(run_cli, token_registry, falconet_home: Path, tmp_path) -> None:
    service = token_registry.token_service
    assert service is not None
    stored = falconet_home / "config" / "clientcredentials.json"
    args = ("registry", "auth", "oauth", token_registry.host, "--token-url", service.realm,
            "--client-id", USER, "--scopes",
            "repository:oauth/rules:pull,repository:oauth/rules:push")  # fmt: skip
    wrong = run_cli(*args, "--client-secret", "wrong")
    assert wrong.returncode == 4, wrong.stderr
    assert "refused the client credentials" in wrong.stderr
    assert not stored.exists()

    right = run_cli(*args, "--client-secret", PASSWORD)
    assert right.returncode == 0, right.stderr
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    saved = json.loads(stored.read_text())[token_registry.host]
    assert saved["TokenURL"] == service.realm and saved["Scopes"] == [
        "repository:oauth/rules:pull",
        "repository:oauth/rules:push",
    ]

    rules = tmp_path / "o.yaml"
    rules.write_text("- rule: r\n")
    pushed = run_cli(
        "registry", "push", f"{token_registry.host}/oauth/rules:1.0.0", str(rules),
        "--type", "rulesfile", "--version", "1.0.0", "--plain-http",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr


def test_identity_token_from_docker_config(
    token_registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker's `identitytoken` (Azure ACR and others): a refresh token POSTed to the realm."""
    from tests.support.token_registry import REFRESH_TOKEN

    service = token_registry.token_service
    assert service is not None
    docker = tmp_path / "docker"
    docker.mkdir()
    entry = {"auth": "", "identitytoken": REFRESH_TOKEN}
    (docker / "config.json").write_text(json.dumps({"auths": {token_registry.host: entry}}))
    options = ClientOptions(plain_http=True, docker_config_dir=docker)
    rules = tmp_path / "id_rules.yaml"
    rules.write_text("- rule: r\n")
    ref = parse_reference(f"{token_registry.host}/identity/rules:1.0.0")
    push_artifact(
        open_store(ref, options),
        PushSpec(artifact_type="rulesfile", files=[rules], version="1.0.0"),
    )
    grants = {r.get("grant_type") for r in service.requests}
    assert grants == {"refresh_token"}
