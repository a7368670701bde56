"""Tag conventions: falcoctl's floating tags, cosign signature tags, semver ordering."""

from __future__ import annotations

import re

import semver

SIGNATURE_TAG_RE = re.compile(r"^sha256-[a-f0-9]{64}\.(sig|att|sbom)$")


def floating_tags(version: str) -> list[str]:
    """falcoctl's --add-floating-tags: X.Y.Z, X and X.Y (no `latest`, no newest check)."""
    parsed = semver.Version.parse(version)
    return [version, str(parsed.major), f"{parsed.major}.{parsed.minor}"]


def signature_tag(digest: str) -> str:
    """cosign's legacy tag for the signature of a manifest: sha256-<hex>.sig."""
    algorithm, hexdigest = digest.split(":", 1)
    return f"{algorithm}-{hexdigest}.sig"


def is_signature_tag(tag: str) -> bool:
    return tag.endswith(".sig") or bool(SIGNATURE_TAG_RE.match(tag))


def _semver_of(tag: str) -> semver.Version | None:
    try:
        return semver.Version.parse(tag)
    except ValueError:
        return None


def sort_tags(tags: list[str], hide_signatures: bool = True) -> list[str]:
    """Semver tags in version order, then the others (floating `5`, `latest`) alphabetically."""
    visible = [t for t in tags if not (hide_signatures and is_signature_tag(t))]
    versioned = sorted(
        ((v, t) for t in visible if (v := _semver_of(t)) is not None), key=lambda pair: pair[0]
    )
    others = sorted(t for t in visible if _semver_of(t) is None)
    return [t for _, t in versioned] + others
