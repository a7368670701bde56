"""From what a user types to a full reference: index names (`name`, `name:tag`,
`name@sha256:...`, `name@<range>`), full references (`host[:port]/repo[:tag|@digest]`) and OCI
image layouts (`oci-layout:/dir[:tag|@digest]`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from feeds.errors import ConfigError
from feeds.indexes import IndexEntry, IndexStore
from registry.reference import is_full_reference

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")


@dataclass(frozen=True)
class UserRef:
    text: str  # as typed
    locator: str  # host/repo or oci-layout:/dir (no tag, no digest)
    tag: str | None = None
    digest: str | None = None
    version_range: str | None = None  # `name@^5.1` etc. (resolved by the solver)
    entry: IndexEntry | None = None  # the index entry, for index names

    @property
    def name(self) -> str:
        return self.entry.name if self.entry else self.locator.rsplit("/", 1)[-1]

    @property
    def full(self) -> str:
        """The full reference (tag `latest` when neither tag, digest nor range was given)."""
        if self.digest:
            return f"{self.locator}@{self.digest}"
        return f"{self.locator}:{self.tag or 'latest'}"


def split_tag_digest(rest: str) -> tuple[str, str | None, str | None]:
    """`name[:tag][@digest-or-range]` -> (name, tag, the part after @)."""
    at = None
    if "@" in rest:
        rest, at = rest.split("@", 1)
    tag = None
    if ":" in rest:
        rest, tag = rest.rsplit(":", 1)
    return rest, tag, at


def parse_user_ref(text: str, indexes: IndexStore | None) -> UserRef:
    text = text.strip()
    if not text:
        raise ConfigError("empty reference", "give an index name or host/repository[:tag]")
    if is_full_reference(text):  # from registry.reference
        return _full(text)
    name, tag, at = split_tag_digest(text)
    if not _NAME.match(name):
        raise ConfigError(
            f"invalid reference {text!r}",
            "use an index name (falco-rules:5) or host/repository:tag",
        )
    digest, version_range = (at, None) if at and _DIGEST.match(at) else (None, at)
    if at and at.startswith("sha256:") and not digest:
        raise ConfigError(f"invalid digest in {text!r}", "digests are sha256:<64 hex>")
    if tag and version_range:
        raise ConfigError(f"{text!r} has both a tag and a version range", "give one of them")
    if indexes is None:
        raise ConfigError(
            f"{text!r} is an index name but no index is configured",
            "use a full reference host/repository:tag",
        )
    entry = indexes.find(name)
    return UserRef(text, entry.locator, tag, digest, version_range, entry)


def _full(text: str) -> UserRef:
    from registry.reference import parse_reference

    version_range = None
    head, at, tail = text.rpartition("@")
    if at and not tail.startswith("sha256:"):
        text, version_range = head, tail  # host/repo@^5.1: a range, resolved by the solver
    reference = parse_reference(text)
    return UserRef(
        text if not version_range else f"{text}@{version_range}",
        reference.locator,
        reference.tag,
        reference.digest,
        version_range,
    )
