"""Artifact references: full registry refs and OCI image layout refs.

Full refs are `host[:port]/repository[:tag][@sha256:hex]`; layout refs are
`oci-layout:/path/to/dir[:tag|@sha256:hex]`. Short index names (`falco-rules:3`) are not
references of this module: feeds/ resolves them through indexes into one of these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from registry.errors import ReferenceError_

LAYOUT_PREFIX = "oci-layout:"

# The OCI distribution spec's grammar for repository path components, tags and digests.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
HOST_RE = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")


@dataclass(frozen=True)
class Reference:
    """A parsed reference. For layout refs `registry` is "" and `layout` is the directory."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None
    layout: Path | None = None

    @property
    def is_layout(self) -> bool:
        return self.layout is not None

    @property
    def target(self) -> str | None:
        """What to resolve in the repository: the digest when pinned, else the tag."""
        return self.digest or self.tag

    @property
    def locator(self) -> str:
        """The repository part alone (no tag, no digest)."""
        if self.layout is not None:
            return f"{LAYOUT_PREFIX}{self.layout}"
        return f"{self.registry}/{self.repository}"

    @property
    def name(self) -> str:
        """falcoctl's default artifact name: the last path element of the repository."""
        return self.repository.rsplit("/", 1)[-1]

    def with_tag(self, tag: str | None) -> Reference:
        return replace(self, tag=_checked_tag(tag) if tag else None, digest=None)

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=_checked_digest(digest))

    def __str__(self) -> str:
        text = self.locator
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


# Names of one registry: Docker Hub answers under all three.
EQUIVALENT_REGISTRIES = {"index.docker.io": "docker.io", "registry-1.docker.io": "docker.io"}
DEFAULT_PORTS = (":443", ":80")


def canonical_registry(host: str) -> str:
    """The one spelling of a registry host for trust decisions: lower case (DNS names are case
    insensitive), without a default port (443, 80), Docker Hub's aliases as docker.io. So
    `LOCALHOST:5000` and `localhost:5000`, `ghcr.io:443` and `ghcr.io` are the same registry
    to a signature policy."""
    host = host.lower()
    for port in DEFAULT_PORTS:
        if host.endswith(port):
            host = host[: -len(port)]
            break
    return EQUIVALENT_REGISTRIES.get(host, host)


def canonical_locator(locator: str) -> str:
    """`host/repository` (or a glob of it) with its host in canonical form; a layout or a
    host-less text is returned as is."""
    if locator.startswith(LAYOUT_PREFIX) or "/" not in locator:
        return locator
    host, rest = locator.split("/", 1)
    return f"{canonical_registry(host)}/{rest}"


def is_full_reference(text: str) -> bool:
    """True for `oci-layout:...` and `host/...` refs; False for index names like `name:tag`."""
    if text.startswith(LAYOUT_PREFIX):
        return True
    if "/" not in text:
        return False
    first = text.split("/", 1)[0]
    return "." in first or ":" in first or first == "localhost"


def parse_reference(text: str) -> Reference:
    text = text.strip()
    if text.startswith(LAYOUT_PREFIX):
        return _parse_layout(text[len(LAYOUT_PREFIX) :], text)
    if not is_full_reference(text):
        raise ReferenceError_(
            f"{text!r} is not a full reference",
            hint="use host[:port]/repository[:tag|@sha256:...] or oci-layout:/dir[:tag]; "
            "short names are resolved through indexes by `artifact` commands",
        )
    host, rest = text.split("/", 1)
    if not HOST_RE.match(host):
        raise ReferenceError_(f"invalid registry host {host!r} in {text!r}")
    rest, digest = _split_digest(rest)
    repository, tag = _split_tag(rest)
    if not _REPOSITORY_RE.match(repository):
        raise ReferenceError_(
            f"invalid repository {repository!r} in {text!r}",
            hint="repositories are lower case: letters, digits and . _ - separators",
        )
    return Reference(
        registry=host,
        repository=repository,
        tag=_checked_tag(tag) if tag else None,
        digest=_checked_digest(digest) if digest else None,
    )


def _parse_layout(rest: str, original: str) -> Reference:
    if not rest:
        raise ReferenceError_(f"{original!r} names no directory", hint="oci-layout:/path/to/dir")
    rest, digest = _split_digest(rest)
    path_text, tag = _split_tag(rest)
    path = Path(path_text).expanduser()
    return Reference(
        registry="",
        repository=path.name or str(path),
        tag=_checked_tag(tag) if tag else None,
        digest=_checked_digest(digest) if digest else None,
        layout=path.resolve(),
    )


def _split_digest(text: str) -> tuple[str, str | None]:
    if "@" in text:
        head, digest = text.rsplit("@", 1)
        return head, digest
    return text, None


def _split_tag(text: str) -> tuple[str, str | None]:
    """A tag is after the last ':' of the last path segment (a ':' earlier is a port)."""
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        head, tag = text.rsplit(":", 1)
        return head, tag
    return text, None


def _checked_tag(tag: str) -> str:
    if not _TAG_RE.match(tag):
        raise ReferenceError_(
            f"invalid tag {tag!r}", hint="tags are up to 128 characters of [A-Za-z0-9_.-]"
        )
    return tag


def _checked_digest(digest: str) -> str:
    if not _DIGEST_RE.match(digest):
        raise ReferenceError_(
            f"invalid digest {digest!r}", hint="only sha256:<64 lower-case hex> digests are used"
        )
    return digest
