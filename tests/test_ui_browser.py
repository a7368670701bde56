"""The web UI in a real headless Chromium (Debian's chromium + chromium-driver, via selenium):
every page loads, filters apply, a posted alert appears live, the detail shows every field, an
XSS payload stays text, the pages work by keyboard and at phone width. Runs on SQLite and on a
real PostgreSQL. Screenshots go to the test's temp dir (FALCONET_UI_SCREENSHOTS=DIR also copies
them there: that is how docs/img/ui-*.png were made)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.ui_fixtures import (  # noqa: F401  # fixtures
    RunningUi,
    installed_home,
    postgres,
    store_url,
    ui_factory,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
        reason="needs Debian's chromium and chromium-driver (`make debs`)",
    ),
]

XSS_RULE = '<img src=x onerror="window.__xss=1">'
XSS_OUTPUT = "<script>window.__xss=2</script> pwned"


def alert(rule: str, priority: str = "Warning", **extra: Any) -> dict[str, Any]:
    return {
        "hostname": "node-a",
        "priority": priority,
        "rule": rule,
        "source": "syscall",
        "output": f"{priority} {rule} (user=root proc.name=bash)",
        "output_fields": {"proc.name": "bash", "user.name": "root", "container.id": "c0ffee"},
        "tags": ["container", "shell"],
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        **extra,
    }


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let selenium-manager reach the network
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container: chromium's sandbox needs user namespaces
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,800",
        "--no-first-run",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_window_size(1280, 800)
    yield driver
    driver.quit()


def wait(driver: Any, predicate: Callable[[Any], Any], timeout: float = 20) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(predicate)


def shoot(driver: Any, tmp_path: Path, name: str) -> None:
    target = tmp_path / f"ui-{name}.png"
    driver.save_screenshot(str(target))
    assert target.stat().st_size > 1000
    copy_to = os.environ.get("FALCONET_UI_SCREENSHOTS")
    if copy_to:
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        shutil.copy(target, Path(copy_to) / target.name)


def post(running: RunningUi, body: Any) -> None:
    answer = requests.post(running.url + "/ingest", json=body, headers=running.headers, timeout=30)
    assert answer.status_code == 202, answer.text


def row_rules(driver: Any) -> list[str]:
    """The rule column, read in one script (the live list re-renders between two calls)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#alerts tbody tr td:nth-child(3)')]"
        ".map(cell => cell.textContent)"
    )


def rows(driver: Any) -> list[str]:
    return row_rules(driver)


def test_every_page_in_chromium(
    browser: Any,
    ui_factory: Callable[..., RunningUi],  # noqa: F811
    installed_home: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    from feeds.compliance.operations import coverage_report
    from feeds.context import FeedsContext
    from feeds.run_rules import installed_rules_files

    rules_files = [str(p) for p in installed_rules_files(FeedsContext.load())]
    running = ui_factory(rules_files=rules_files)
    real_rule = requests.get(running.url + "/ui/api/rules", timeout=60).json()["rules"][0]["name"]
    post(
        running,
        [
            alert(real_rule, "Critical", hostname="node-b"),
            alert("Custom filesystem rule", "Error", tags=["filesystem"]),
            alert("Contact K8S API server from container", "Notice"),
            alert(
                XSS_RULE,
                "Warning",
                output=XSS_OUTPUT,
                hostname="<b>bold</b>",
                output_fields={"evil.field": "<svg onload=window.__xss=3>", "proc.name": "sh"},
            ),
        ],
    )
    post(
        running,
        alert(
            "Falconet response action",
            "Notice",
            source="response",
            output="Response action process:terminate succeeded for response rule 'Kill shells'",
            output_fields={
                "response.action": "process:terminate",
                "response.status": "succeeded",
                "response.rule": "Kill shells",
                "alert.rule": real_rule,
            },
            hostname="node-b",
        ),
    )

    # -- Alerts: the list, the chart, tops; XSS inert ---------------------------------------------
    browser.get(running.url + "/ui/alerts")
    wait(browser, lambda d: len(rows(d)) == 5)
    assert browser.execute_script("return window.__xss") is None
    assert XSS_RULE in row_rules(browser)  # shown as the literal text
    assert browser.find_elements(By.CSS_SELECTOR, "#alerts tbody img, #alerts tbody script") == []
    assert XSS_OUTPUT in browser.find_element(By.ID, "alerts").text
    assert browser.find_elements(By.CSS_SELECTOR, "#chart svg rect")
    tops = browser.find_element(By.ID, "top-hosts").text
    assert "node-a" in tops and "<b>bold</b>" in tops
    shoot(browser, tmp_path, "alerts")

    # -- Filters ----------------------------------------------------------------------------------
    Select(browser.find_element(By.NAME, "priority")).select_by_value("Error")
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait(
        browser,
        lambda d: sorted(row_rules(d)) == sorted([real_rule, "Custom filesystem rule"]),
    )
    assert "priority=Error" in browser.current_url
    browser.find_element(By.NAME, "tag").send_keys("filesystem", Keys.ENTER)
    wait(browser, lambda d: row_rules(d) == ["Custom filesystem rule"])
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=reset]").click()
    wait(browser, lambda d: len(rows(d)) == 5)
    browser.find_element(By.NAME, "text").send_keys("PWNED", Keys.ENTER)  # free text, any case
    wait(browser, lambda d: row_rules(d) == [XSS_RULE])
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=reset]").click()
    wait(browser, lambda d: len(rows(d)) == 5)

    # -- Live: a POST appears without reloading ---------------------------------------------------
    marker = browser.execute_script("document.body.dataset.marker = 'same page'; return 1")
    post(running, alert("Live alert arrives", "Alert"))
    wait(browser, lambda d: row_rules(d)[:1] == ["Live alert arrives"])
    assert (
        marker == 1 and browser.execute_script("return document.body.dataset.marker") == "same page"
    )

    # -- Detail: every field, copy as JSON, keyboard ----------------------------------------------
    xss_button = next(
        b
        for b in browser.find_elements(By.CSS_SELECTOR, "#alerts tbody button.link")
        if b.text == XSS_RULE
    )
    xss_button.send_keys(Keys.ENTER)  # keyboard: the rule is a button
    dialog = wait(
        browser,
        lambda d: (
            d.find_element(By.ID, "detail").get_attribute("open") is not None
            and d.find_element(By.ID, "detail")
        ),
    )
    fields = dialog.find_element(By.ID, "detail-fields").text
    for expected in (
        "evil.field",
        "<svg onload=window.__xss=3>",
        "proc.name",
        XSS_OUTPUT,
    ):
        assert expected in fields
    document = json.loads(dialog.find_element(By.ID, "detail-json").text)
    assert document["rule"] == XSS_RULE and document["output_fields"]["proc.name"] == "sh"
    copy = dialog.find_element(By.ID, "copy-json")
    copy.click()
    wait(browser, lambda d: copy.text in ("Copied", "Selected: press Ctrl+C"))
    assert browser.execute_script("return window.__xss") is None
    shoot(browser, tmp_path, "alert-detail")
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait(browser, lambda d: d.find_element(By.ID, "detail").get_attribute("open") is None)

    # -- Phone width ------------------------------------------------------------------------------
    browser.set_window_size(390, 844)
    browser.get(running.url + "/ui/alerts")
    wait(browser, lambda d: len(rows(d)) == 6)
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1"
    )
    shoot(browser, tmp_path, "alerts-phone")
    browser.set_window_size(1280, 800)

    # -- Feeds ------------------------------------------------------------------------------------
    browser.get(running.url + "/ui/feeds")
    content = wait(
        browser,
        lambda d: (
            "falconet-rules" in d.find_element(By.ID, "content").text
            and d.find_element(By.ID, "content")
        ),
    )
    text = content.text
    assert "0.2.0" in text and "verified" in text and "every 6h" in text and "sha256:" in text
    shoot(browser, tmp_path, "feeds")

    # -- Compliance: the numbers of `compliance report` -------------------------------------------
    browser.get(running.url + "/ui/compliance?framework=pci-dss")
    totals = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#content .totals"))[0].text
    expected = coverage_report(rules_files, "pci-dss").totals()
    assert f"{expected['covered']}/{expected['controls']} controls covered" in totals
    assert f"({expected['coverage_percent']}%)" in totals
    drill = browser.find_elements(By.CSS_SELECTOR, "#content details summary")
    if drill:  # drill-down: a control's rules
        drill[0].click()
        item = browser.find_element(By.CSS_SELECTOR, "#content details[open] li").text
        assert "mitre" in item.lower() or "PCI" in item  # the rule's tags
    browser.execute_script("window.scrollTo(0, 0)")
    shoot(browser, tmp_path, "compliance")

    # -- Responses, linked to their alert ---------------------------------------------------------
    browser.get(running.url + "/ui/responses")
    content = wait(
        browser,
        lambda d: (
            "process:terminate" in d.find_element(By.ID, "content").text
            and d.find_element(By.ID, "content")
        ),
    )
    assert "succeeded" in content.text and "Kill shells" in content.text
    link = content.find_element(By.LINK_TEXT, real_rule)
    assert "rule=" in link.get_attribute("href")
    shoot(browser, tmp_path, "responses")

    # -- Rules with alert counts ------------------------------------------------------------------
    browser.get(running.url + "/ui/rules")
    content = wait(
        browser,
        lambda d: (
            "rules loaded" in d.find_element(By.ID, "content").text
            and d.find_element(By.ID, "content")
        ),
    )
    assert real_rule in content.text
    counted = browser.execute_script(
        "return [...document.querySelectorAll('#content a')].map(a => [a.textContent, a.href])"
    )
    assert [(text, parse_qs(urlsplit(href).query)["rule"]) for text, href in counted] == [
        ("1", [real_rule])
    ]
    shoot(browser, tmp_path, "rules")
    assert browser.execute_script("return window.__xss") is None
