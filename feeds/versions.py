"""Semantic versions and version ranges as falconet's references and artifact configs use them.

Versions are parsed tolerantly, as falcoctl's `semver.ParseTolerant` does: `1` is 1.0.0, `1.2` is
1.2.0, a leading `v` is dropped. Ranges (the part after `@` in `falco-rules@^5.1`):

- `^1.2.3` compatible: same major; for 0.x the same minor (`^0.7` is >=0.7.0 <0.8.0);
  a bare `^0` allows every 0.x;
- `~1.2.3` same minor (`~1` is the same major);
- comparators `>=`, `>`, `<=`, `<`, `=` joined by `,` or spaces: `>=5.0,<6`;
- `1.2.3` exactly that version; `*` or `latest-compatible` any version (the solver then keeps
  the newest one whose requirements the target engine meets).

Pre-releases match only when asked for (`pre=True`), or when the range names a pre-release of the
same major.minor.patch (npm's rule: `>=1.0.0-rc.1` admits `1.0.0-rc.2`, not `1.1.0-rc.1`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import semver

from feeds.errors import ConfigError

Version = semver.Version

LATEST_COMPATIBLE = "latest-compatible"

_TOLERANT = re.compile(
    r"^[vV]?(?P<core>\d+(?:\.\d+){0,2})(?P<rest>(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)$"
)
_STRICT_TAG = re.compile(r"^[vV]?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_COMPARATOR = re.compile(r"^(?P<op>\^|~|>=|<=|>|<|==|=)?\s*(?P<version>\S+)$")
_OPERATORS: dict[str, Callable[[Version, Version], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "=": operator.eq,
}


def parse_version(text: str, what: str = "version") -> Version:
    """Tolerant parse (`1`, `1.2`, `v1.2.3`, `1.2.3-rc.1+build`); ConfigError when not semver."""
    parsed = try_parse_version(text)
    if parsed is None:
        raise ConfigError(
            f"{what} {text!r} is not a semantic version",
            "use MAJOR[.MINOR[.PATCH]][-PRERELEASE], e.g. 1.2.3",
        )
    return parsed


def try_parse_version(text: str) -> Version | None:
    match = _TOLERANT.match(str(text).strip())
    if not match:
        return None
    try:
        return Version.parse(match["core"] + match["rest"], optional_minor_and_patch=True)
    except ValueError:
        return None


def _component_count(text: str) -> int:
    match = _TOLERANT.match(text.strip())
    return match["core"].count(".") + 1 if match else 3


def is_release_tag(tag: str) -> bool:
    """True for a tag naming one version (`1.2.3`, `v1.2.3-rc.1`), not a floating `1` or `1.2`.

    Floating tags move; the solver only takes versions from tags that name exactly one version.
    """
    return bool(_STRICT_TAG.match(tag))


def release_versions(tags: Iterable[str]) -> dict[Version, str]:
    """{version: tag} for every release tag; when `v1.2.3` and `1.2.3` both exist, `1.2.3` wins."""
    found: dict[Version, str] = {}
    for tag in sorted(tags, key=lambda t: t.lower().startswith("v")):
        if is_release_tag(tag):
            version = try_parse_version(tag)
            if version is not None and version not in found:
                found[version] = tag
    return found


@dataclass(frozen=True)
class _Bound:
    op: str
    version: Version

    def allows(self, version: Version) -> bool:
        if self.op == "<" and not self.version.prerelease:
            # `<6` must not admit 6.0.0-rc.1, which semver orders below 6.0.0.
            return version.finalize_version() < self.version
        return _OPERATORS[self.op](version, self.version)


@dataclass(frozen=True)
class VersionRange:
    """A conjunction of bounds; `text` is what the user or the config wrote."""

    text: str
    bounds: tuple[_Bound, ...] = ()

    def allows(self, version: Version, pre: bool = False) -> bool:
        if version.prerelease and not pre and not self._names_prerelease_of(version):
            return False
        return all(bound.allows(version) for bound in self.bounds)

    def _names_prerelease_of(self, version: Version) -> bool:
        core = version.finalize_version()
        return any(
            b.version.prerelease and b.version.finalize_version() == core for b in self.bounds
        )

    @property
    def is_any(self) -> bool:
        return not self.bounds

    def select(self, versions: Iterable[Version], pre: bool = False) -> list[Version]:
        """The versions this range allows, newest first."""
        return sorted((v for v in versions if self.allows(v, pre)), reverse=True)

    def __str__(self) -> str:
        return self.text


ANY = VersionRange("*")


def parse_range(text: str) -> VersionRange:
    """Parse a range (`^5.1`, `~5.1.2`, `>=5.0,<6`, `5.1.0`, `*`, `latest-compatible`)."""
    stripped = text.strip()
    if stripped in ("", "*", "x", LATEST_COMPATIBLE, "latest"):
        return VersionRange(stripped or "*")
    bounds: list[_Bound] = []
    # `>= 5.0, < 6` and `>=5.0 <6` are the same range: glue operators to their versions first.
    glued = re.sub(r"(>=|<=|==|>|<|=|\^|~)\s+", r"\1", stripped)
    for part in re.split(r"[,\s]+", glued):
        if part:
            bounds.extend(_parse_comparator(part, text))
    return VersionRange(stripped, tuple(bounds))


def _parse_comparator(part: str, whole: str) -> list[_Bound]:
    match = _COMPARATOR.match(part.strip())
    if not match or try_parse_version(match["version"]) is None:
        raise ConfigError(
            f"invalid version range {whole!r}",
            "use ^1.2, ~1.2.3, '>=1.0,<2', 1.2.3 or latest-compatible",
        )
    op = match["op"] or "="
    raw = match["version"]
    version = parse_version(raw)
    if op == "^":
        return [_Bound(">=", version), _Bound("<", caret_ceiling(version, _component_count(raw)))]
    if op == "~":
        return [_Bound(">=", version), _Bound("<", tilde_ceiling(version, _component_count(raw)))]
    if op == "=" and not match["op"] and _component_count(raw) < 3:
        # A bare partial version (`5`, `5.1`) means that series, like a floating tag.
        return [_Bound(">=", version), _Bound("<", tilde_ceiling(version, _component_count(raw)))]
    return [_Bound("=" if op == "==" else op, version)]


def caret_ceiling(version: Version, components: int = 3) -> Version:
    """Exclusive upper bound of `^version`: next major, or next minor for 0.x."""
    if version.major == 0 and components >= 2:
        return Version(0, version.minor + 1, 0)
    return Version(version.major + 1, 0, 0)


def tilde_ceiling(version: Version, components: int = 3) -> Version:
    """Exclusive upper bound of `~version`: next minor, or next major for `~1`."""
    if components == 1:
        return Version(version.major + 1, 0, 0)
    return Version(version.major, version.minor + 1, 0)


CARET = "caret"
SAME_MAJOR = "major"


def compatible_range(
    version_text: str, policy: str = CARET, what: str = "dependency version"
) -> VersionRange:
    """What a dependency `name:version` in an artifact config allows.

    CARET (`^version`): same major, for 0.x the same minor. SAME_MAJOR: Falco's own plugin
    check and falcoctl's rule (0.7.1 satisfies 0.6.0). falcoctl installs exactly the tag named;
    falconet takes the newest release the policy allows.
    """
    version = parse_version(version_text, what)
    if policy == SAME_MAJOR:
        ceiling = Version(version.major + 1, 0, 0)
        return VersionRange(
            f">={version_text} (same major)", (_Bound(">=", version), _Bound("<", ceiling))
        )
    ceiling = caret_ceiling(version, _component_count(version_text))
    return VersionRange(f"^{version_text}", (_Bound(">=", version), _Bound("<", ceiling)))


def falco_compatible(available: Version, required: Version) -> bool:
    """libsinsp's `compatible_with`: the same major and at least the required version."""
    return available.major == required.major and available >= required
