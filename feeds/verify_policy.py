"""Which signature policy applies to an artifact reference.

Sources, first applicable wins:
1. `--no-verify` (or `artifact.no_verify`): skip, logged as a warning.
2. `verify.policies` in falconet.yaml, in file order: `{match: <registry/repository glob>,
   key: <path | http(s) URL | inline PEM>, require: true|false (default true)}`. The user's own
   file overrides what an index says, so a mirror re-signed with the user's key verifies.
   A policy may name a keyless signer instead of a key: falcoctl's index keys
   `certificate-identity(-regexp)`, `certificate-oidc-issuer(-regexp)` and
   `certificate-github-workflow-{trigger,sha,name,repository,ref}`.
3. The index entry's `signature.cosign` (falcoctl's index format): a `key`, or a keyless
   signer (falcosecurity's entries): required, verified offline against the pinned Sigstore
   trusted root (registry.keyless).
4. Nothing: the artifact is "unverified", refused when `verify.require` or
   `--require-signature` is set.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from feeds.config import KEYLESS_POLICY_KEYS
from feeds.errors import ConfigError
from registry.reference import canonical_locator, is_full_reference, parse_reference
from registry.signatures import Policy

log = logging.getLogger(__name__)

KEYLESS_FIELDS = KEYLESS_POLICY_KEYS

__all__ = ["Policy", "config_verify", "resolve_policy"]


def resolve_policy(
    reference_str: str,
    index_entry_signature: dict[str, Any] | None,
    config_verify: dict[str, Any],
    *,
    no_verify: bool = False,
    require_signature: bool = False,
    index_name: str = "",
) -> Policy:
    """The policy for `reference_str` (a full reference; its tag/digest do not matter).

    `config_verify` is `{"require": bool, "policies": [...]}` (see `config_verify`);
    `index_name` names the index the entry's signature block came from, so a verdict can say
    whose key it trusted."""
    if no_verify:
        log.warning("signature verification disabled for %s (--no-verify)", reference_str)
        return Policy(skip=True, origin="--no-verify")
    require_all = bool(config_verify.get("require")) or require_signature
    trusted_root = config_verify.get("trusted_root")
    locator = _locator(reference_str)
    for number, entry in enumerate(config_verify.get("policies") or []):
        pattern = _checked_pattern(entry, number)
        # Both sides canonical: LOCALHOST:5000/x, localhost:5000/x and host:443/x are the
        # registries they name, so a spelling cannot dodge a policy.
        if fnmatch.fnmatchcase(locator, canonical_locator(pattern)):
            policy = _from_config_entry(entry, number, pattern, require_all, require_signature)
            return replace(policy, trusted_root=trusted_root) if policy.keyless else policy
    cosign = (index_entry_signature or {}).get("cosign") or {}
    if not isinstance(cosign, dict):
        raise ConfigError(
            f"index entry for {reference_str}: signature.cosign must be a mapping",
            "fix the index file (falcoctl's format: signature: {cosign: {key: ...}})",
        )
    if cosign.get("key"):
        return Policy(
            key_ref=str(cosign["key"]),
            require=True,
            origin="index entry signature",
            key_source="index",
            publisher=f"index {index_name}" if index_name else "an index entry",
        )
    keyless = {k: cosign[k] for k in KEYLESS_FIELDS if cosign.get(k)}
    if keyless:
        # Verified by default, as a key from the index is: the trusted root is pinned, so the
        # index only chooses which signer it expects.
        return Policy(
            require=True, origin="index entry signature (keyless)", keyless=keyless,
            trusted_root=trusted_root, key_source="index",
            publisher=f"index {index_name}" if index_name else "an index entry",
        )  # fmt: skip
    origin = "--require-signature" if require_signature else "verify.require"
    return Policy(require=require_all, origin=origin if require_all else "no policy")


def config_verify(config: Any) -> dict[str, Any]:
    """The `verify` section of a loaded feeds.config.Config, in resolve_policy's shape. Relative
    key paths written in falconet.yaml are taken relative to that file, not to the cwd."""
    policies = config.get("verify.policies", []) or []
    origin = config.values["verify.policies"].origin if "verify.policies" in config.values else ""
    if config.file is not None and origin.startswith("file:"):
        policies = [_anchored(entry, config.file.parent) for entry in policies]
    return {
        "require": config.get("verify.require", False),
        "policies": policies,
        "trusted_root": str(trusted_root_file(config)),
    }


def trusted_root_file(config: Any) -> Path:
    """The Sigstore trusted root a keyless verification trusts: `verify.trusted_root` in
    falconet.yaml, else the one `falconet trust update` installed (when absent, the
    production root embedded in sigstore-python is used)."""
    from feeds.paths import default_paths

    configured = config.get("verify.trusted_root", None)
    if configured:
        path = Path(str(configured)).expanduser()
        if not path.is_absolute() and config.file is not None:
            path = config.file.parent / path
        return path
    return default_paths().config_dir / "trust" / "trusted_root.json"


def _anchored(entry: Any, base: Path) -> Any:
    key = entry.get("key") if isinstance(entry, dict) else None
    if not isinstance(key, str) or not key or "-----BEGIN" in key or "://" in key:
        return entry
    path = Path(key).expanduser()
    return entry if path.is_absolute() else {**entry, "key": str(base / path)}


def _from_config_entry(
    entry: dict[str, Any], number: int, pattern: str, require_all: bool, require_flag: bool
) -> Policy:
    key = entry.get("key")
    keyless = {k: entry[k] for k in KEYLESS_FIELDS if entry.get(k)}
    require = entry.get("require", True)
    if not isinstance(require, bool):
        raise ConfigError(
            f"verify.policies[{number}] ({pattern}): require must be true or false, got {require!r}"
        )
    origin = f"verify.policies[{number}] ({pattern})"
    if keyless and key:
        raise ConfigError(
            f"verify.policies[{number}] ({pattern}): give either a key or a keyless signer",
            "remove key, or the certificate-* fields",
        )
    if keyless:
        return Policy(require=require or require_flag, origin=origin, keyless=keyless)
    if key is None or key == "":
        # A policy without a key can still demand a signature, which then cannot be checked.
        return Policy(require=require or require_all, origin=origin)
    if not isinstance(key, str):
        raise ConfigError(
            f"verify.policies[{number}] ({pattern}): key must be a path, URL or PEM text"
        )
    return Policy(key_ref=key, require=require or require_flag, origin=origin, key_source="config")


def _checked_pattern(entry: Any, number: int) -> str:
    pattern = entry.get("match") if isinstance(entry, dict) else None
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(
            f"verify.policies[{number}] has no 'match' glob",
            "each policy needs match: registry/repository glob, e.g. ghcr.io/falcosecurity/*",
        )
    return pattern


def _locator(reference_str: str) -> str:
    """registry/repository of a full reference; index names are matched as given."""
    if is_full_reference(reference_str):
        return canonical_locator(parse_reference(reference_str).locator)
    return reference_str.split("@", 1)[0].rsplit(":", 1)[0]
