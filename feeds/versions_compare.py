"""Version ordering for install actions (tolerant, as falcoctl's semver.ParseTolerant)."""

from __future__ import annotations

import re

import semver

_TOLERANT = re.compile(
    r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


def tolerant(version: str) -> semver.Version:
    match = _TOLERANT.match(version.strip())
    if match is None:
        raise ValueError(f"{version!r} is not a version")
    major, minor, patch, pre = match.groups()
    return semver.Version(int(major), int(minor or 0), int(patch or 0), pre)


def compare_versions(a: str, b: str) -> int:
    return tolerant(a).compare(tolerant(b))
