"""The UI's optional login: pages and API closed without a session, CSRF-safe login and
logout (double-submit token, same origin), no open redirect."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.support.ui_fixtures import RunningUi, ui_factory  # noqa: F401  # fixture
from ui.auth import Credentials


@pytest.fixture
def store_url(tmp_path: Path) -> str:  # the login needs no second database
    return str(tmp_path / "alerts.db")


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_login_logout_and_csrf(ui_factory: Callable[..., RunningUi]) -> None:  # noqa: F811
    running = ui_factory(login=Credentials(users=(("alice", "wonder land"),)))
    browser = requests.Session()
    page = browser.get(running.url + "/ui/feeds", allow_redirects=False, timeout=30)
    assert page.status_code == 303 and page.headers["Location"] == "/ui/login?next=/ui/feeds"
    assert browser.get(running.url + "/ui/api/alerts", timeout=30).status_code == 401
    login = browser.get(running.url + "/ui/login?next=/ui/feeds", timeout=30)
    token = csrf_of(login.text)
    assert "SameSite=Strict" in login.headers["Set-Cookie"]
    form = {"user": "alice", "password": "wonder land", "next": "/ui/feeds"}

    no_token = browser.post(running.url + "/ui/login", data=form, allow_redirects=False)
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["error"]
    other_site = browser.post(
        running.url + "/ui/login",
        data={**form, "csrf": token},
        headers={"Origin": "http://evil.test"},
        allow_redirects=False,
    )
    assert other_site.status_code == 403
    wrong = browser.post(
        running.url + "/ui/login", data={**form, "csrf": token, "password": "x"}, timeout=30
    )
    assert wrong.status_code == 401 and "Wrong user or password" in wrong.text
    good = browser.post(
        running.url + "/ui/login", data={**form, "csrf": token}, allow_redirects=False
    )
    assert good.status_code == 303 and good.headers["Location"] == "/ui/feeds"
    assert "HttpOnly" in good.headers["Set-Cookie"]
    feeds = browser.get(running.url + "/ui/feeds", timeout=30)
    assert feeds.status_code == 200 and "alice" in feeds.text
    assert browser.get(running.url + "/ui/api/alerts", timeout=30).status_code == 200

    redirect = browser.post(
        running.url + "/ui/login",
        data={**form, "csrf": token, "next": "//evil.test/"},
        allow_redirects=False,
    )
    assert redirect.headers["Location"] == "/ui/alerts"  # never off this server

    out = browser.post(running.url + "/ui/logout", data={"csrf": token}, allow_redirects=False)
    assert out.status_code == 303
    after = browser.get(running.url + "/ui/api/alerts", timeout=30)
    assert after.status_code == 401
