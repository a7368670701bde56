"""Broken local state and storage get a one-line diagnosis naming the file and the fix (or
repair themselves), never "this is a bug" and never every `artifact` command bricked (issue 14).

Disk-full and read-only cases mount a small tmpfs of their own (root only). Layer refusals use
real tar.gz files on disk."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CliRunner
from tests.support.http_server import StaticServer

EMBEDDED = "falconet-rules:0.2.0"


def _installed_record(home: Path) -> Path:
    records = list(home.rglob("installed/falconet-rules.json"))
    assert len(records) == 1, records
    return records[0]


def _one_line_diagnosis(stderr: str, must_name: Path) -> None:
    assert str(must_name) in stderr, stderr
    assert "bug" not in stderr and "Traceback" not in stderr, stderr


def test_damaged_installed_record_is_named_and_other_commands_still_work(
    run_cli: CliRunner, falconet_home: Path
) -> None:
    assert run_cli("artifact", "install", EMBEDDED).returncode == 0
    record = _installed_record(falconet_home)
    record.write_text('{"name": "falconet-rules", "files": [')  # torn write, disk damage
    listed = run_cli("artifact", "installed")
    assert listed.returncode == 0, listed.stderr
    _one_line_diagnosis(listed.stderr, record)
    again = run_cli("artifact", "install", EMBEDDED)
    assert again.returncode == 1
    _one_line_diagnosis(again.stderr, record)
    assert "delete" in again.stderr


def test_damaged_install_journal_is_named_with_its_repair(
    run_cli: CliRunner, falconet_home: Path
) -> None:
    assert run_cli("artifact", "install", EMBEDDED).returncode == 0
    journal = _installed_record(falconet_home).parent.parent / "transaction.json"
    journal.write_bytes(b"\x00\x01not json")
    result = run_cli("artifact", "install", EMBEDDED)
    assert result.returncode == 1
    _one_line_diagnosis(result.stderr, journal)
    journal.unlink()  # the repair the message gives
    assert run_cli("artifact", "install", EMBEDDED).returncode == 0


@pytest.fixture
def index_server() -> Iterator[StaticServer]:
    entry = (
        b"- name: local-rules\n  type: rulesfile\n  registry: 127.0.0.1:1\n"
        b"  repository: local/rules\n"
    )
    server = StaticServer({"/index.yaml": entry}).start()
    yield server
    server.stop()


def test_damaged_index_cache_repairs_itself(
    run_cli: CliRunner, falconet_home: Path, index_server: StaticServer
) -> None:
    assert run_cli("index", "add", "local", f"{index_server.url}/index.yaml").returncode == 0
    cached = list(falconet_home.rglob("indexes/*.yaml")) + list(
        falconet_home.rglob("indexes/*.json")
    )
    cached = [p for p in cached if p.parent.name == "indexes" and p.name != "indexes.yaml"]
    assert cached
    for path in cached:
        path.write_bytes(b"{\xff broken")
    result = run_cli("artifact", "list")
    assert result.returncode == 0, result.stderr
    assert "local-rules" in result.stdout
    assert "bug" not in result.stderr


def test_damaged_added_indexes_file_is_named(
    run_cli: CliRunner, falconet_home: Path, index_server: StaticServer
) -> None:
    assert run_cli("index", "add", "local", f"{index_server.url}/index.yaml").returncode == 0
    added = next(falconet_home.rglob("config/indexes.yaml"))
    added.write_text("configs: {oops")
    result = run_cli("index", "list")
    assert result.returncode == 2
    _one_line_diagnosis(result.stderr, added)


# -- storage: a full disk and a read-only rules directory ------------------------------------


@pytest.fixture
def small_mount(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mount_point = tmp_path / "rules"
    mount_point.mkdir()
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=False)


def _mount(point: Path, options: str) -> None:
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


def test_full_rules_directory_says_no_space_left_on_it(
    run_cli: CliRunner, small_mount: Path
) -> None:
    _mount(small_mount, "size=4k")  # one page: the embedded rules file (~10 KiB) cannot fit
    result = run_cli("artifact", "install", EMBEDDED, "--rulesfiles-dir", str(small_mount))
    assert result.returncode == 1, result.stderr
    assert f"no space left on {small_mount}" in result.stderr
    _one_line_diagnosis(result.stderr, small_mount)
    assert os.listdir(small_mount) == []  # nothing half-written left behind


def test_read_only_rules_directory_says_so(run_cli: CliRunner, small_mount: Path) -> None:
    _mount(small_mount, "ro")
    result = run_cli("artifact", "install", EMBEDDED, "--rulesfiles-dir", str(small_mount))
    assert result.returncode == 1, result.stderr
    assert f"{small_mount} is read-only" in result.stderr
    _one_line_diagnosis(result.stderr, small_mount)


# -- layers: member count from the headers, control characters in names ----------------------


def _archive(path: Path, names: list[str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return path


def test_layer_with_tens_of_thousands_of_members_is_refused_before_writing_any(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry import extract
    from registry.errors import UnsafeArchiveError

    archive = _archive(tmp_path / "many.tar.gz", [f"f{i}.yaml" for i in range(30_000)])
    written: list[str] = []
    real_copy = extract._copy_member

    def counting_copy(tar, member, target, durable):  # type: ignore[no-untyped-def]
        written.append(member.name)
        return real_copy(tar, member, target, durable)

    monkeypatch.setattr(extract, "_copy_member", counting_copy)
    dest = tmp_path / "stage"
    with pytest.raises(UnsafeArchiveError, match="more than 10000 entries"):
        extract.extract_layer(archive, dest, durable=True)
    assert written == []  # refused from the headers: not one member was written
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize("name", ["rules\n.yaml", "a\rb.yaml", "x\x1b[2Jy.yaml", "tab\there"])
def test_member_names_with_control_characters_are_refused(tmp_path: Path, name: str) -> None:
    from registry.errors import UnsafeArchiveError
    from registry.extract import extract_layer

    archive = _archive(tmp_path / "names.tar.gz", ["ok.yaml", name])
    with pytest.raises(UnsafeArchiveError, match="control characters") as raised:
        extract_layer(archive, tmp_path / "stage")
    assert "\n" not in str(raised.value) and "\x1b" not in str(raised.value)
    assert list((tmp_path / "stage").iterdir()) == []


def test_config_file_that_is_not_text_is_named(run_cli: CliRunner, falconet_home: Path) -> None:
    config = falconet_home / "config" / "falconet.yaml"
    config.parent.mkdir()
    config.write_bytes(b"\xff\xfe\x00garbage")
    result = run_cli("artifact", "list")
    assert result.returncode == 2
    _one_line_diagnosis(result.stderr, config)
