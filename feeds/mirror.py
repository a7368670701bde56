"""`artifact mirror`: copy artifacts with their signatures between registries and OCI layouts,
verifying them on the way, and optionally write an index for the copy (the air-gap path:
falcosecurity/falcoctl#264, #267)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from feeds.errors import ConfigError
from feeds.indexes import IndexEntry, dump_index, parse_index
from feeds.resolve import parse_user_ref

if TYPE_CHECKING:
    from feeds.context import FeedsContext

log = logging.getLogger(__name__)


@dataclass
class MirrorReport:
    source: str
    destination: str
    tags: list[dict[str, str]] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    verification: list[dict[str, Any]] = field(default_factory=list)
    blobs_copied: int = 0
    blobs_present: int = 0
    index_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        return vars(self)


def mirror_artifact(
    context: FeedsContext,
    source: str,
    destination: str,
    *,
    all_tags: bool = False,
    no_verify: bool = False,
    require_signature: bool = False,
    index_file: Path | None = None,
) -> MirrorReport:
    from feeds.verify_policy import config_verify, resolve_policy
    from registry.mirror import mirror
    from registry.reference import parse_reference
    from registry.signatures import verify_artifact
    from registry.tags import is_signature_tag

    user_ref = parse_user_ref(source, context.indexes)
    if user_ref.version_range:
        raise ConfigError(
            "mirror copies tags or digests, not version ranges", "give a tag, or --all-tags"
        )
    src_ref = parse_reference(user_ref.full if not all_tags else user_ref.locator)
    dst_ref = parse_reference(destination)
    if dst_ref.digest:
        raise ConfigError("the destination cannot be a digest", "give a repository or a tag")
    src = context.open_store(src_ref)
    dst = context.open_store(dst_ref)
    tags = (
        [t for t in src.list_tags() if not is_signature_tag(t)]
        if all_tags
        else [src_ref.tag]
        if src_ref.tag and not src_ref.digest
        else None
    )
    signature = user_ref.entry.signature if user_ref.entry else None
    policy = resolve_policy(
        user_ref.full,
        signature,
        config_verify(context.config),
        no_verify=no_verify,
        require_signature=require_signature,
        index_name=user_ref.entry.index if user_ref.entry else "",
    )
    report = MirrorReport(str(src_ref), str(dst_ref))
    verified: set[str] = set()
    for target in tags or [src_ref.digest or "latest"]:
        root = src.resolve(target)
        if root.digest not in verified:  # floating tags share digests: verify each once
            result = verify_artifact(src, src_ref, root.digest, policy)
            report.verification.append(
                {"tag": target, "digest": root.digest, "verdict": result.verdict}
            )
            verified.add(root.digest)
    copied = mirror(src, dst, tags)
    report.tags = [{"tag": t, "digest": d} for t, d in copied.tags]
    report.signatures = copied.signatures
    report.blobs_copied, report.blobs_present = copied.blobs_copied, copied.blobs_present
    if index_file is not None:
        kind = _artifact_type(src, copied.tags[0][1]) if copied.tags else "rulesfile"
        entry = _mirrored_entry(user_ref.entry, src_ref, dst_ref, kind)
        _upsert_index(index_file, entry)
        report.index_file = str(index_file)
    return report


def _artifact_type(store: Any, digest: str) -> str:
    from registry.artifacts import resolve_artifact
    from registry.errors import NotFoundError

    try:
        return resolve_artifact(store, digest).artifact_type
    except NotFoundError:  # an image index without this host's platform: a plugin
        return "plugin"


def _mirrored_entry(entry: IndexEntry | None, src_ref: Any, dst_ref: Any, kind: str) -> IndexEntry:
    if dst_ref.is_layout:
        registry = f"oci-layout:{Path(dst_ref.layout).parent}"
        repository = Path(dst_ref.layout).name
    else:
        registry, repository = dst_ref.registry, dst_ref.repository
    if entry is None:
        return IndexEntry(
            name=src_ref.name,
            type="rulesfile",
            registry=registry,
            repository=repository,
            description=f"mirror of {src_ref.locator}",
        )
    return replace(entry, registry=registry, repository=repository, index="")


def _upsert_index(path: Path, entry: IndexEntry) -> None:
    entries = parse_index(path.read_text(), str(path), path.stem) if path.is_file() else []
    merged = [e for e in entries if e.name != entry.name] + [entry]
    text = dump_index(merged)
    yaml.safe_load(text)  # what we write must read back
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
