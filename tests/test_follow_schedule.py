"""Follow schedules: intervals, cron, startup modes; and the follower built from configuration."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from feeds.errors import ConfigError
from feeds.schedule import Schedule


def test_startup_modes_place_the_first_check() -> None:
    assert Schedule.parse("10m", None, "immediate").first_delay() == 0.0
    assert Schedule.parse("10m", None, "skip").first_delay() == 600.0
    delays = {Schedule.parse("10m", None, "jitter").first_delay() for _ in range(50)}
    assert all(0.0 <= d <= 600.0 for d in delays) and len(delays) > 1


def test_cron_waits_until_the_next_match() -> None:
    schedule = Schedule.parse(None, "0 */6 * * *", "skip")
    now = datetime(2026, 1, 1, 5, 59, 30, tzinfo=UTC).timestamp()
    assert schedule.next_delay(now) == 30.0
    assert schedule.first_delay(now) == 30.0


@pytest.mark.parametrize(
    ("every", "cron", "startup", "message"),
    [
        ("5x", None, "jitter", "invalid duration"),
        (None, "61 * * * *", "jitter", "invalid cron"),
        ("1h", None, "later", "invalid startup mode"),
    ],
)
def test_bad_schedules_are_usage_errors(
    every: str | None, cron: str | None, startup: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        Schedule.parse(every, cron, startup)
    assert raised.value.exit_status == "usage" and raised.value.hint


def test_follower_from_config_reads_the_follow_settings(falconet_home: Path) -> None:
    from feeds.context import FeedsContext
    from feeds.follow import follower_from_config
    from feeds.install import install_dirs_from

    config = falconet_home / "config" / "falconet.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(
        "artifact:\n  follow:\n    refs: [example.org/rules:1]\n    cron: '*/5 * * * *'\n"
        "    startup: skip\n    compliance: [pci-dss:10.2]\n    strength: explicit\n"
    )
    context = FeedsContext.load()
    follower = follower_from_config(context, install_dirs_from(context))
    assert follower is not None
    assert follower.options.refs == ("example.org/rules:1",)
    assert follower.schedule == Schedule(cron="*/5 * * * *", startup="skip")
    assert follower.options.selection is not None
    assert follower.options.selection.compliance == ("pci-dss:10.2",)
    assert follower.options.selection.strength == "explicit"
    config.write_text("artifact:\n  follow:\n    refs: []\n")
    context = FeedsContext.load()
    assert follower_from_config(context, install_dirs_from(context)) is None
