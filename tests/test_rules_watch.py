"""The rules-file watcher of `falconet run`: inotify on real directories, debounced reloads."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from engine.daemon import RulesFileWatcher
from engine.inotify import DirectoryWatch, InotifyUnavailable


def test_inotify_wakes_on_a_change_and_not_without(tmp_path: Path) -> None:
    try:
        watch = DirectoryWatch([tmp_path])
    except InotifyUnavailable as error:
        pytest.skip(f"no inotify here: {error}")
    try:
        assert watch.wait(0.05) is False
        (tmp_path / "rules.yaml").write_text("- list: a\n  items: []\n")
        assert watch.wait(2) is True
        assert watch.wait(0.05) is False  # the events were consumed
    finally:
        watch.close()


def test_an_editor_save_by_rename_is_one_reload(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("v1\n")
    changes = threading.Semaphore(0)
    watcher = RulesFileWatcher(lambda: [rules], changes.release).start()
    try:
        replacement = tmp_path / ".rules.yaml.swp"
        replacement.write_text("v2\n")
        os.replace(replacement, rules)
        assert changes.acquire(timeout=5)
        assert not changes.acquire(timeout=0.6)  # one reload, not one per step of the save
        rules.write_text("v3\n")
        assert changes.acquire(timeout=5)
    finally:
        watcher.stop()
