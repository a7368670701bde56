"""The Sigstore trusted root keyless verification uses: which one is in force, and replacing it
from a file (`falconet trust update --from FILE`), offline, as an air-gapped operator does
after fetching root-signing's `trusted_root.json` by their own means. No TUF client runs here:
the file is trusted as given by the operator, and checked to be a usable root first."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feeds.verify_policy import trusted_root_file
from registry.keyless.trust_root import (
    MAX_TRUSTED_ROOT_BYTES,
    TrustRoot,
    TrustRootError,
    load_trust_root,
    parse_trust_root,
)


@dataclass(frozen=True)
class TrustChange:
    path: Path
    previous: str | None  # sha256 of the root replaced, None when the embedded one was in force
    root: TrustRoot

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "previous_sha256": self.previous, **self.root.summary()}


def current_trust_root(config: Any) -> TrustRoot:
    return load_trust_root(trusted_root_file(config))


def update_trust_root(config: Any, source: Path) -> TrustChange:
    """Install `source` as the trusted root after checking it parses into usable keys."""
    try:
        with source.open("rb") as handle:
            data = handle.read(MAX_TRUSTED_ROOT_BYTES + 1)
    except OSError as error:
        raise TrustRootError(f"cannot read {source}: {error.strerror}", "check the path") from error
    if len(data) > MAX_TRUSTED_ROOT_BYTES:
        raise TrustRootError(
            f"{source} is larger than {MAX_TRUSTED_ROOT_BYTES} bytes: not a trusted root",
            "give Sigstore's trusted_root.json",
        )
    parse_trust_root(data, str(source))  # refuse an unusable root before replacing anything
    target = trusted_root_file(config)
    previous = load_trust_root(target).digest if target.exists() else None
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = target.with_name(f".{target.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    return TrustChange(target, previous, parse_trust_root(data, str(target)))


def reset_trust_root(config: Any) -> Path | None:
    """Remove the installed root (the embedded production root applies again)."""
    target = trusted_root_file(config)
    if not target.exists():
        return None
    target.unlink()
    return target
