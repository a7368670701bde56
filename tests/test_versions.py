"""Tolerant version parsing and version ranges (feeds/versions.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feeds.errors import ConfigError
from feeds.versions import (
    SAME_MAJOR,
    compatible_range,
    is_release_tag,
    parse_range,
    parse_version,
    release_versions,
    try_parse_version,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", "1.0.0"),
        ("1.2", "1.2.0"),
        ("v1.2.3", "1.2.3"),
        ("0", "0.0.0"),
        ("V2.0.1-rc.1+build.5", "2.0.1-rc.1+build.5"),
        (" 3.4.5 ", "3.4.5"),
    ],
)
def test_tolerant_parsing_as_falcoctl(text: str, expected: str) -> None:
    assert str(parse_version(text)) == expected


@pytest.mark.parametrize("text", ["", "latest", "1.2.3.4", "a.b.c", "01.2.3", "1..2", "-1"])
def test_not_versions(text: str) -> None:
    assert try_parse_version(text) is None
    with pytest.raises(ConfigError, match="is not a semantic version"):
        parse_version(text)


@pytest.mark.parametrize(
    ("tag", "release"),
    [
        ("5.1.0", True),
        ("v5.1.0", True),
        ("5.2.0-rc.1", True),
        ("5", False),
        ("5.1", False),
        ("latest", False),
        ("sha256-abc.sig", False),
    ],
)
def test_only_exact_version_tags_are_releases(tag: str, release: bool) -> None:
    assert is_release_tag(tag) is release


def test_release_versions_prefers_the_plain_tag() -> None:
    found = release_versions(["v1.0.0", "1.0.0", "latest", "1"])
    assert {str(v): tag for v, tag in found.items()} == {"1.0.0": "1.0.0"}


ALLOWS = [
    ("^5.1", ["5.1.0", "5.9.9"], ["5.0.9", "6.0.0", "6.0.0-rc.1"]),
    ("^0.7", ["0.7.0", "0.7.9"], ["0.8.0", "0.6.9", "1.0.0"]),
    ("^0.7.2", ["0.7.2", "0.7.5"], ["0.7.1", "0.8.0"]),
    ("^0", ["0.0.1", "0.99.0"], ["1.0.0"]),
    ("^1", ["1.0.0", "1.5.0"], ["2.0.0"]),
    ("~5.1.2", ["5.1.2", "5.1.9"], ["5.2.0", "5.1.1"]),
    ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
    (">=5.0,<6", ["5.0.0", "5.99.1"], ["4.9.9", "6.0.0"]),
    (">= 5.0 < 6", ["5.0.0"], ["6.0.0"]),
    (">5.0.0 <=5.2.0", ["5.0.1", "5.2.0"], ["5.0.0", "5.2.1"]),
    ("5", ["5.0.0", "5.3.0"], ["6.0.0", "4.0.0"]),
    ("5.1", ["5.1.0", "5.1.7"], ["5.2.0"]),
    ("5.1.0", ["5.1.0"], ["5.1.1"]),
    ("=5.1.0", ["5.1.0"], ["5.1.1"]),
    ("latest-compatible", ["0.0.1", "99.0.0"], ["1.0.0-rc.1"]),
    ("*", ["1.0.0"], ["2.0.0-alpha"]),
]


@pytest.mark.parametrize(("text", "inside", "outside"), ALLOWS)
def test_range_membership(text: str, inside: list[str], outside: list[str]) -> None:
    allowed = parse_range(text)
    assert all(allowed.allows(parse_version(v)) for v in inside)
    assert not any(allowed.allows(parse_version(v)) for v in outside)


def test_pre_releases_only_when_asked_or_named() -> None:
    rc = parse_version("5.2.0-rc.1")
    assert not parse_range("^5").allows(rc)
    assert parse_range("^5").allows(rc, pre=True)
    assert parse_range(">=5.2.0-rc.0").allows(rc)  # names a pre-release of 5.2.0
    assert not parse_range(">=5.1.0-rc.0").allows(rc)  # a pre-release of another version


def test_select_sorts_newest_first() -> None:
    versions = [parse_version(v) for v in ("5.0.0", "5.2.0", "5.1.0", "6.0.0")]
    assert [str(v) for v in parse_range("^5").select(versions)] == ["5.2.0", "5.1.0", "5.0.0"]


@pytest.mark.parametrize("text", ["^", ">=", "^five", ">=1.0,,<<2", "~1.2.3.4", "1.0 || 2.0"])
def test_invalid_ranges_are_usage_errors(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_range(text)
    assert caught.value.exit_status == "usage"
    assert caught.value.hint is not None and "^1.2" in caught.value.hint


def test_dependency_compatibility_policies() -> None:
    caret = compatible_range("0.7.0")
    major = compatible_range("0.7.0", SAME_MAJOR)
    assert caret.allows(parse_version("0.7.4")) and not caret.allows(parse_version("0.8.0"))
    assert major.allows(parse_version("0.8.0")) and not major.allows(parse_version("1.0.0"))
    assert not major.allows(parse_version("0.6.9"))


versions = st.builds(
    lambda a, b, c: f"{a}.{b}.{c}", st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)
)


@given(versions, versions)
def test_caret_agrees_with_its_definition(base: str, candidate: str) -> None:
    low, value = parse_version(base), parse_version(candidate)
    same_series = value.major == low.major and (low.major > 0 or value.minor == low.minor)
    assert parse_range(f"^{base}").allows(value) == (value >= low and same_series)
