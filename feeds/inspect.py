"""`artifact info|config|manifest`: what a reference designates, through indexes or directly."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from feeds.resolve import UserRef, parse_user_ref

if TYPE_CHECKING:
    from feeds.context import FeedsContext
    from registry.store import ArtifactStore


@dataclass(frozen=True)
class ArtifactInfo:
    ref: str
    locator: str
    tags: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "repository": self.locator, "tags": self.tags}


def open_user_ref(context: FeedsContext, text: str) -> tuple[UserRef, ArtifactStore]:
    from registry.reference import parse_reference

    user_ref = parse_user_ref(text, context.indexes)
    return user_ref, context.open_store(parse_reference(user_ref.full))


def artifact_info(context: FeedsContext, text: str) -> ArtifactInfo:
    """Tags of the artifact's repository, sorted by semver, signature tags hidden."""
    from registry.tags import sort_tags

    user_ref, store = open_user_ref(context, text)
    return ArtifactInfo(text, user_ref.locator, sort_tags(store.list_tags()))


def artifact_manifest(context: FeedsContext, text: str, platform: str | None) -> dict[str, Any]:
    from registry.artifacts import resolve_artifact

    _, store = open_user_ref(context, text)
    resolved = resolve_artifact(store, store.reference.target, platform)
    return json.loads(resolved.manifest_bytes)


def artifact_config(context: FeedsContext, text: str, platform: str | None) -> dict[str, Any]:
    from registry.artifacts import fetch_config

    _, store = open_user_ref(context, text)
    _, raw, _ = fetch_config(store, store.reference.target, platform)
    return json.loads(raw)
