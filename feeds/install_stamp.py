"""The stamp of the last full resolution, which lets a re-install skip resolving again.

`artifact install` resolves with the solver (tag lists, manifests, configs, requirements,
dependencies) and writes falconet.lock. Re-running the same install is the common case (a cron
job, a Helm hook, a container start), and then the resolution can only come out the same when
all of its inputs are unchanged. The stamp records those inputs next to the installed state:

- the refs as typed and the full reference each stood for (an index change moves a name);
- the digest of every installed artifact, which must be exactly the requested ones;
- the sha256 of the lock file written by that resolution;
- the engine identity (its /versions values), the platform, --pre and --resolve-deps.

It is written only for resolutions without dependencies (no artifact depends on another, none is
provided by the engine), so the solver's only remaining input is each requested artifact's own
config, which is immutable for its digest. The caller then confirms with one HEAD per pinned ref
that each tag still names the installed digest (a moved tag fails the check), and that the
installed files are intact; otherwise it resolves in full.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STAMP_NAME = "last-resolution.json"
STAMP_VERSION = 1


@dataclass(frozen=True)
class ResolutionStamp:
    refs: dict[str, str]  # ref as typed -> full reference (locator:tag or locator@digest)
    installed: dict[str, str]  # artifact name -> installed root digest
    lock_sha256: str
    inputs: dict[str, Any]  # engine identity and the resolve options that shape the result


def resolution_inputs(platform: str | None, pre: bool, resolve_deps: bool) -> dict[str, Any]:
    """What besides the refs, the installed state and the lock decides a resolution without
    dependencies: the engine's requirement values, the platform and the options."""
    return {
        "engine": _engine_identity(),
        "platform": platform or "",
        "pre": pre,
        "resolve_deps": resolve_deps,
    }


def _engine_identity() -> dict[str, str]:
    """The string values of falconet's /versions document, which requirements are checked
    against. Its plugin_versions only matter to dependencies, which a stamp never has, and
    listing them would import every event source."""
    from engine.versions import (
        ENGINE_VERSION,
        ENGINE_VERSION_SEMVER,
        PLUGIN_API_VERSION,
        falconet_version,
    )

    return {
        "falconet": falconet_version(),
        "engine_version": str(ENGINE_VERSION),
        "engine_version_semver": ENGINE_VERSION_SEMVER,
        "plugin_api_version": PLUGIN_API_VERSION,
    }


def file_sha256(path: Path) -> str | None:
    """The file's hex sha256 as the state records it; None when there is no file."""
    from feeds.install import sha256_file

    try:
        return sha256_file(path)
    except FileNotFoundError:
        return None


def read_stamp(state_dir: Path) -> ResolutionStamp | None:
    """The stamp, or None when there is none or it cannot be read (then install resolves)."""
    try:
        data = json.loads((state_dir / STAMP_NAME).read_text())
        if data.pop("version", None) != STAMP_VERSION:
            return None
        return ResolutionStamp(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_stamp(
    state_dir: Path,
    refs: Mapping[str, str],
    installed: Mapping[str, str],
    lock_path: Path,
    inputs: Mapping[str, Any],
) -> None:
    lock_sha256 = file_sha256(lock_path)
    if lock_sha256 is None:
        clear_stamp(state_dir)
        return
    stamp = ResolutionStamp(dict(refs), dict(installed), lock_sha256, dict(inputs))
    path = state_dir / STAMP_NAME
    tmp = path.with_name(f".{path.name}.tmp")
    # Not fsynced: a stamp lost in a crash only costs the next install a full resolution.
    tmp.write_text(json.dumps({"version": STAMP_VERSION, **asdict(stamp)}, sort_keys=True))
    os.replace(tmp, path)


def clear_stamp(state_dir: Path) -> None:
    (state_dir / STAMP_NAME).unlink(missing_ok=True)


def has_dependencies(artifacts: Iterable[Any]) -> bool:
    """Whether any locked artifact (feeds.lockfile.LockedArtifact) depends on another or is
    provided by the engine: then the fast path does not apply."""
    return any(a.dependencies or a.provided_by_engine for a in artifacts)
