"""A headless Chromium for the dashboard's browser tests: Debian's `chromium`, driven by
selenium through Debian's `chromium-driver` (`.ci/run` installs both)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Headless on a closed network: nothing of Chromium's own reaches out.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
NOT_THERE_YET = (NoSuchElementException, StaleElementReferenceException)


def require_chromium() -> None:
    """Skip where Chromium is not installed, but fail in CI, which installs it."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with an empty profile in `profile`, quit afterwards."""
    require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(
    driver: webdriver.Chrome, condition: Callable[[webdriver.Chrome], object], timeout_s: float
) -> object:
    """Until `condition` holds; an element missing or replaced meanwhile (a page loading,
    a live refresh swapping it) is asked again."""
    wait = WebDriverWait(driver, timeout_s, poll_frequency=0.1, ignored_exceptions=NOT_THERE_YET)
    return wait.until(condition)
