"""The web UI in a real browser (headless Chromium through selenium) against the real
server (gunicorn on loopback), with callbacks taken in over HTTP."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from receiver.local import running_server
from tests.helpers import API_TOKEN, CHANNELS_ENV, MSGID, basic_auth, record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_SECONDS = 30

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        pytest.fail("CI: chromium and chromium-driver are needed", pytrace=False)
    pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)

# After the check: selenium is a test dependency, but a skip should not need it.
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The service under gunicorn with two workers (so the session key is shared)."""
    env = {
        **CHANNELS_ENV,
        "DATABASE_URL": database_url,
        "API_TOKENS": API_TOKEN,
        "SECRET_KEY": "browser-test-session-key",
        "WEB_CONCURRENCY": "2",
    }
    with open(tmp_path / "serve.log", "w") as log, running_server(env, output=log) as url:
        yield url


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium'}")
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def take_in(base: str, records: list[dict[str, Any]]) -> None:
    """Post callback records to the served intake, as UMS does."""
    answer = requests.post(
        f"{base}/callbacks/ums",
        data=json.dumps(records),
        headers={**basic_auth(), "Content-Type": "application/json"},
        timeout=(2, 10),
    )
    assert answer.status_code == 200, answer.text


def wait_until(browser: WebDriver, condition: Callable[[WebDriver], Any]) -> Any:
    """Wait (bounded) until ``condition`` holds in the browser."""
    return WebDriverWait(browser, WAIT_SECONDS, poll_frequency=0.2).until(condition)


def sign_in(browser: WebDriver, base: str, token: str) -> None:
    browser.get(f"{base}/ui/sign-in")
    field = browser.find_element(By.ID, "token")
    field.send_keys(token)
    browser.find_element(By.ID, "sign-in").click()


def text_of(browser: WebDriver, element_id: str) -> str:
    return str(browser.find_element(By.ID, element_id).text)


def test_a_person_signs_in_filters_watches_a_message_and_signs_out(
    served: str, browser: WebDriver
) -> None:
    take_in(served, [record(0, userid="u1", sender=0), record(2, userid="u1")])
    message_page = f"{served}/ui/messages/{quote(MSGID)}"

    browser.get(message_page)  # signed out: to the sign-in form
    wait_until(browser, lambda b: "/ui/sign-in" in b.current_url)
    sign_in(browser, served, "wrong-token")
    problem = wait_until(browser, lambda b: b.find_elements(By.ID, "problem"))
    assert "not one of the configured API tokens" in problem[0].text

    sign_in(browser, served, API_TOKEN)
    wait_until(browser, lambda b: b.current_url.rstrip("/").endswith("/ui"))
    assert MSGID in browser.page_source

    browser.get(f"{served}/ui/?status=arrived&since=")
    problem = browser.find_element(By.ID, "problem")
    assert problem.text.startswith("status: unknown status 'arrived'")

    browser.get(message_page)
    funnel = browser.find_element(By.CSS_SELECTOR, "#funnel svg.funnel")
    assert funnel.get_attribute("data-total") == "1"
    assert text_of(browser, "event-total") == "2"
    page_id = browser.execute_script("return window.__page = Math.random();")

    # More callbacks: the page shows them by itself, without a reload.
    take_in(served, [record(4, userid="u1"), record(2, userid="u2"), record(5, userid="u2")])
    wait_until(browser, lambda b: text_of(b, "event-total") == "5")
    wait_until(browser, lambda b: text_of(b, "target-total") == "2")
    wait_until(
        browser,
        lambda b: (
            b.find_element(By.CSS_SELECTOR, "#funnel svg.funnel").get_attribute("data-total") == "2"
        ),
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline tr.event")) == 5
    assert browser.execute_script("return window.__page;") == page_id  # the same page

    for url in (f"{served}/ui/", message_page, f"{served}/ui/quarantine"):
        browser.get(url)
        assert API_TOKEN not in browser.page_source and API_TOKEN not in browser.current_url

    browser.find_element(By.ID, "sign-out").click()
    wait_until(browser, lambda b: "/ui/sign-in" in b.current_url)
    browser.get(f"{served}/ui/")
    wait_until(browser, lambda b: "/ui/sign-in" in b.current_url)
    cookies = {c["name"]: c for c in browser.get_cookies()}
    assert API_TOKEN not in json.dumps(cookies)


def test_a_post_without_the_csrf_token_is_refused(served: str, browser: WebDriver) -> None:
    sign_in(browser, served, API_TOKEN)
    wait_until(browser, lambda b: b.current_url.rstrip("/").endswith("/ui"))
    # The sign-out form, with its hidden CSRF field taken out before it is sent.
    browser.execute_script("document.querySelector('input[name=csrf_token]').remove();")
    browser.find_element(By.ID, "sign-out").click()
    wait_until(browser, lambda b: "CSRF" in b.page_source)
    status = requests.post(f"{served}/ui/sign-out", timeout=(2, 10), allow_redirects=False)
    assert status.status_code == 400
    browser.get(f"{served}/ui/")
    assert browser.current_url.rstrip("/").endswith("/ui")  # still signed in
