"""A real headless Chromium fills the IPv6 form, solves the CAPTCHA (test key), follows the emailed link.

Set SCREENSHOT_DIR=docs/img to refresh the screenshots in docs/verification.md.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fswl.app.home import Home
from tests.conftest import require
from tests.harness.mail import mail_sink
from tests.harness.web import link
from tests.test_verify_web import ANSWER, start

pytestmark = pytest.mark.integration

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=900,1100"]


@pytest.fixture
def chrome(tmp_path: Path):
    chromium = require("chromium", "the IPv6 form test drives a real browser")
    driver_path = require("chromedriver", "the IPv6 form test drives a real browser")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver, text: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 15).until(lambda d: text in d.page_source, f"no page with {text!r}")


def test_chromium_lists_an_ipv6_network_through_the_form(chrome, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    shots = tmp_path / "shots"
    shots.mkdir()
    root = tmp_path / "home"
    root.mkdir()

    def shot(name: str) -> None:
        chrome.save_screenshot(str(shots / f"verify-{name}.png"))

    with mail_sink() as (sink, sink_port), start(root, sink_port) as ports:
        base = f"http://127.0.0.1:{ports['web']}"
        chrome.get(base + "/why?sender=mo%40example.org&ip=2a01%3A4f8%3Ac0c%3A1234%3A%3A25")
        assert "Why was this mail deferred?" in chrome.title
        shot("1-why")
        chrome.find_element(By.LINK_TEXT, "self-service form").click()
        wait_for_text(chrome, "List an IPv6 mail server")
        assert chrome.find_element(By.ID, "ip").get_attribute("value") == "2a01:4f8:c0c:1234::25"
        assert chrome.execute_script("return document.querySelector('img.captcha').naturalWidth") > 0
        chrome.find_element(By.CSS_SELECTOR, "input[name=prefix][value='64']").click()
        chrome.find_element(By.ID, "answer").send_keys(ANSWER.lower())
        shot("2-form")
        chrome.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for_text(chrome, "We mailed a link")
        shot("3-mailed")
        message = sink.wait_for("mo@example.org")
        (shots / "verify-mail.txt").write_text(message.get_content())
        chrome.get(link(message, "confirm"))
        assert "2a01:4f8:c0c:1234::/64" in chrome.page_source
        shot("4-confirm")
        chrome.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for_text(chrome, "mo@example.org is now listed for 2a01:4f8:c0c:1234::/64")
        shot("5-listed")
        chrome.get(link(message, "confirm"))
        assert "already used" in chrome.page_source
        shot("6-used")
    assert Home(root).whitelist.lookup("mo@example.org", "2a01:4f8:c0c:1234::99") is not None
    target = os.environ.get("SCREENSHOT_DIR")
    if target:
        for item in shots.glob("*.png"):
            shutil.copy(item, Path(target) / item.name)
