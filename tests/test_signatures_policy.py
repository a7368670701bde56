"""Which signature policy applies to a reference: --no-verify, falconet.yaml verify.policies,
the index entry's signature block, verify.require / --require-signature."""

from __future__ import annotations

import logging

import pytest

from feeds.errors import ConfigError
from feeds.verify_policy import resolve_policy

REF = "ghcr.io/falcosecurity/rules/falco-rules:3.0.0"
NO_CONFIG: dict = {"require": False, "policies": []}


def test_no_verify_skips_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        policy = resolve_policy(REF, {"cosign": {"key": "/k.pub"}}, NO_CONFIG, no_verify=True)
    assert policy.skip and policy.key_ref is None
    assert "--no-verify" in caplog.text


def test_config_policy_matches_registry_repository_glob() -> None:
    config = {
        "require": False,
        "policies": [
            {"match": "docker.io/*", "key": "/other.pub"},
            {"match": "ghcr.io/falcosecurity/*", "key": "/falco.pub"},
            {"match": "ghcr.io/*", "key": "/broad.pub"},
        ],
    }
    policy = resolve_policy(REF, None, config)
    assert policy.key_ref == "/falco.pub"  # first match in file order
    assert policy.require is True  # a policy with a key requires a signature unless it says not
    assert policy.origin == "verify.policies[1] (ghcr.io/falcosecurity/*)"
    assert resolve_policy("quay.io/x/y:1", None, config).key_ref is None


def test_tag_and_digest_do_not_take_part_in_matching() -> None:
    config = {"policies": [{"match": "ghcr.io/falcosecurity/rules/falco-rules", "key": "/k"}]}
    digest_ref = "ghcr.io/falcosecurity/rules/falco-rules@sha256:" + "0" * 64
    assert resolve_policy(digest_ref, None, config).key_ref == "/k"
    assert resolve_policy(REF, None, config).key_ref == "/k"


def test_config_policy_overrides_the_index_entry() -> None:
    config = {"policies": [{"match": "ghcr.io/*", "key": "/mine.pub", "require": False}]}
    policy = resolve_policy(REF, {"cosign": {"key": "/theirs.pub"}}, config)
    assert (policy.key_ref, policy.require) == ("/mine.pub", False)
    flagged = resolve_policy(
        REF, {"cosign": {"key": "/theirs.pub"}}, config, require_signature=True
    )
    assert flagged.require is True


def test_index_entry_key_is_required() -> None:
    policy = resolve_policy(REF, {"cosign": {"key": "https://example.org/k.pub"}}, NO_CONFIG)
    assert policy.key_ref == "https://example.org/k.pub" and policy.require
    assert policy.origin == "index entry signature"


def test_keyless_index_entry_is_required() -> None:
    signature = {
        "cosign": {
            "certificate-oidc-issuer": "https://token.actions.githubusercontent.com",
            "certificate-identity-regexp": "https://github.com/falcosecurity/rules/",
        }
    }
    policy = resolve_policy(REF, signature, NO_CONFIG)
    # Verified offline against the pinned Sigstore root (tests/test_keyless.py), so required.
    assert policy.key_ref is None and policy.require is True
    assert policy.keyless == signature["cosign"]
    assert resolve_policy(REF, signature, {"require": True}).require is True


@pytest.mark.parametrize(
    ("config", "flag", "require", "origin"),
    [
        (NO_CONFIG, False, False, "no policy"),
        ({"require": True}, False, True, "verify.require"),
        (NO_CONFIG, True, True, "--require-signature"),
    ],
)
def test_without_any_policy(config: dict, flag: bool, require: bool, origin: str) -> None:
    policy = resolve_policy(REF, None, config, require_signature=flag)
    assert policy.key_ref is None
    assert (policy.require, policy.origin) == (require, origin)


@pytest.mark.parametrize(
    ("config", "signature", "message"),
    [
        ({"policies": [{"key": "/k"}]}, None, "has no 'match' glob"),
        ({"policies": [{"match": "*", "key": "/k", "require": "yes"}]}, None, "true or false"),
        ({"policies": [{"match": "*", "key": 42}]}, None, "path, URL or PEM"),
        (NO_CONFIG, {"cosign": "key.pub"}, "must be a mapping"),
    ],
)
def test_malformed_policies_are_config_errors(config: dict, signature, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        resolve_policy(REF, signature, config)
    assert caught.value.exit_status == "usage"


def test_relative_keys_in_falconet_yaml_are_relative_to_it(tmp_path, monkeypatch) -> None:
    from feeds.config import load_config
    from feeds.verify_policy import config_verify

    monkeypatch.setenv("FALCONET_HOME", str(tmp_path / "home"))
    config_file = tmp_path / "etc" / "falconet.yaml"
    config_file.parent.mkdir()
    config_file.write_text(
        "verify:\n  policies:\n"
        "    - {match: 'a/*', key: keys/acme.pub}\n"
        "    - {match: 'b/*', key: /abs/b.pub}\n"
        "    - {match: 'c/*', key: 'https://example.org/c.pub'}\n"
    )
    keys = [p["key"] for p in config_verify(load_config(str(config_file)))["policies"]]
    assert keys == [
        str(config_file.parent / "keys/acme.pub"),
        "/abs/b.pub",
        "https://example.org/c.pub",
    ]
