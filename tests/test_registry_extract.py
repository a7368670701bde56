"""Safe extraction: every malicious or oversized tarball is refused and leaves nothing behind."""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.errors import UnsafeArchiveError
from registry.extract import extract_targz
from registry.tarball import targz_bytes


def _archive(tmp_path: Path, build: Callable[[tarfile.TarFile], None]) -> Path:
    path = tmp_path / "layer.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        # A harmless first entry: proves that refusing a later one undoes the earlier writes.
        info = tarfile.TarInfo("good.yaml")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"ok!\n"))
        build(tar)
    return path


def _entry(
    name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.linkname = link
    return info


def _add(info: tarfile.TarInfo, data: bytes = b"") -> Callable[[tarfile.TarFile], None]:
    return lambda tar: tar.addfile(info, io.BytesIO(data) if data else None)


def _sparse_big_file(size: int) -> Callable[[tarfile.TarFile], None]:
    class Zeros(io.RawIOBase):
        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            buffer[:] = bytes(len(buffer))
            return len(buffer)

    return lambda tar: tar.addfile(_entry("big.bin", size=size), Zeros())


MALICIOUS = {
    "absolute path": _add(_entry("/etc/passwd", size=1), b"x"),
    "dot-dot": _add(_entry("rules/../../escape.yaml", size=1), b"x"),
    "symlink": _add(_entry("link.yaml", tarfile.SYMTYPE, link="/etc/shadow")),
    "hardlink": _add(_entry("hard.yaml", tarfile.LNKTYPE, link="good.yaml")),
    "char device": _add(_entry("dev", tarfile.CHRTYPE)),
    "block device": _add(_entry("blk", tarfile.BLKTYPE)),
    "fifo": _add(_entry("pipe", tarfile.FIFOTYPE)),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_entries_are_refused_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    archive = _archive(tmp_path, MALICIOUS[case])
    dest = tmp_path / "stage"
    with pytest.raises(UnsafeArchiveError, match=r"refusing layer\.tar\.gz"):
        extract_targz(archive, dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "escape.yaml").exists()


def test_file_over_the_per_file_limit_is_refused(tmp_path: Path) -> None:
    archive = _archive(tmp_path, _sparse_big_file(2 << 20))
    dest = tmp_path / "stage"
    with pytest.raises(UnsafeArchiveError, match="limit"):
        extract_targz(archive, dest, max_file_size=1 << 20)
    assert list(dest.iterdir()) == []


def test_total_over_the_limit_is_refused(tmp_path: Path) -> None:
    def many(tar: tarfile.TarFile) -> None:
        for i in range(3):
            tar.addfile(_entry(f"f{i}", size=1000), io.BytesIO(b"a" * 1000))

    archive = _archive(tmp_path, many)
    dest = tmp_path / "stage"
    with pytest.raises(UnsafeArchiveError, match="total"):
        extract_targz(archive, dest, max_total_size=2500)
    assert list(dest.iterdir()) == []


def test_default_limits_refuse_a_65_mib_file(tmp_path: Path) -> None:
    archive = _archive(tmp_path, _sparse_big_file(65 << 20))
    with pytest.raises(UnsafeArchiveError, match="67108864"):
        extract_targz(archive, tmp_path / "stage")


def test_not_a_tarball_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "layer.tar.gz"
    archive.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(UnsafeArchiveError):
        extract_targz(archive, tmp_path / "stage")


def test_regular_files_and_dirs_extract_with_safe_modes(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(targz_bytes({"a.yaml": b"a: 1\n", "sub/b.yaml": b"b: 2\n"}))
    dest = tmp_path / "stage"
    files = extract_targz(archive, dest)
    assert sorted(map(str, files)) == ["a.yaml", "sub/b.yaml"]
    assert (dest / "sub/b.yaml").read_text() == "b: 2\n"
    assert (dest / "a.yaml").stat().st_mode & 0o7777 == 0o644
    assert [p.name for p in dest.iterdir() if p.name.startswith(".extract")] == []


def test_setuid_bits_are_dropped(tmp_path: Path) -> None:
    def setuid(tar: tarfile.TarFile) -> None:
        info = _entry("tool", size=2)
        info.mode = 0o4777
        tar.addfile(info, io.BytesIO(b"#!"))

    dest = tmp_path / "stage"
    extract_targz(_archive(tmp_path, setuid), dest)
    assert (dest / "tool").stat().st_mode & 0o7777 == 0o755


NAME_PARTS = st.sampled_from(["a", "b.yaml", "..", ".", "", "sub", "/", "x/../..", "c\\d"])
KINDS = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    members=st.lists(
        st.tuples(st.lists(NAME_PARTS, min_size=1, max_size=4), KINDS), min_size=1, max_size=6
    )
)
def test_whatever_the_archive_nothing_lands_outside(tmp_path: Path, members) -> None:
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    archive = work / "fuzz.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for parts, kind in members:
            name = "/".join(parts) or "."
            data = b"x" if kind == tarfile.REGTYPE else b""
            tar.addfile(_entry(name, kind, len(data), link="../../outside"), io.BytesIO(data))
    dest = work / "stage" / "inner"
    dest.mkdir(parents=True)
    try:
        files = extract_targz(archive, dest)
    except UnsafeArchiveError:
        assert list(dest.iterdir()) == []
        return
    for path in dest.rglob("*"):
        assert not path.is_symlink()
        assert path.resolve().is_relative_to(dest.resolve())
    assert all((dest / f).is_file() for f in files)
    assert sorted(p.name for p in work.iterdir()) == ["fuzz.tar.gz", "stage"]


def test_extract_layer_hashes_each_file_and_verifies_the_archive(tmp_path: Path) -> None:
    import hashlib

    from registry.digests import digest_file
    from registry.errors import DigestMismatchError
    from registry.extract import extract_layer

    contents = {"rules/a.yaml": b"- list: a\n  items: []\n", "b.yaml": b"- list: b\n"}
    archive = tmp_path / "layer.tar.gz"
    archive.write_bytes(targz_bytes(contents))
    digest = digest_file(archive)[0]

    files = extract_layer(archive, tmp_path / "ok", expected_digest=digest, durable=True)
    assert {str(f.path): (f.sha256, f.size) for f in files} == {
        name: (hashlib.sha256(data).hexdigest(), len(data)) for name, data in contents.items()
    }
    assert (tmp_path / "ok" / "rules" / "a.yaml").read_bytes() == contents["rules/a.yaml"]

    with pytest.raises(DigestMismatchError):
        extract_layer(archive, tmp_path / "wrong", expected_digest="sha256:" + "0" * 64)
    assert list((tmp_path / "wrong").iterdir()) == []

    # A corrupt copy that is not even a tarball any more is reported as corrupt, not unsafe,
    # so the caller fetches it again.
    archive.write_bytes(b"X" * archive.stat().st_size)
    with pytest.raises(DigestMismatchError):
        extract_layer(archive, tmp_path / "garbage", expected_digest=digest)
    assert list((tmp_path / "garbage").iterdir()) == []


def _two_file_tar() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in ("a.yaml", "b.yaml"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"xyz"))
    return raw.getvalue()


def test_multi_member_gzip_with_padding_extracts_and_truncated_gzip_is_refused(
    tmp_path: Path,
) -> None:
    import gzip

    from registry.digests import digest_file
    from registry.extract import extract_layer

    data = _two_file_tar()
    members = tmp_path / "members.tar.gz"
    members.write_bytes(gzip.compress(data[:700]) + gzip.compress(data[700:]) + bytes(64))
    files = extract_layer(members, tmp_path / "ok", expected_digest=digest_file(members)[0])
    assert sorted(str(f.path) for f in files) == ["a.yaml", "b.yaml"]

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(gzip.compress(data)[:-20])
    with pytest.raises(UnsafeArchiveError, match="ends before its end marker"):
        extract_layer(truncated, tmp_path / "cut")
    assert list((tmp_path / "cut").iterdir()) == []
