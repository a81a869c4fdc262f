"""The dashboard in a real headless Chromium, on the session's embedded stack (which runs
the dashboard as `fillpipe up` does): the token check, the batch list, live progress
while a batch runs, previews that load, and the retry buttons.

Each test saves a screenshot in its tmp dir; with `FILLPIPE_SCREENSHOT_DIR` set, the
batch page's is also written there (the README's picture comes from this test).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from fillpipe.samples import make_samples
from fillpipe.stack import EmbeddedStack
from pipeline.runtime import Runtime
from pipeline.states import JobState
from tests.browser import chromium, wait_until
from tests.stacks import emulator_admin, upload_batch, wait_until_done

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PAUSE_REASON = "held by the dashboard test"
SAMPLE_PX = 128


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path_factory.mktemp("chromium")) as driver:
        yield driver


@pytest.fixture(scope="module")
def dashboard(stack: EmbeddedStack, browser: webdriver.Chrome) -> str:
    """The dashboard's URL, the browser signed in."""
    url = stack.env["FILLPIPE_DASHBOARD_URL"]
    browser.get(f"{url}/?token={stack.env['FILLPIPE_DASHBOARD_TOKEN']}")
    return url


def text_of(driver: webdriver.Chrome, selector: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, selector).text)


def shows(driver: webdriver.Chrome, selector: str, text: str) -> bool:
    """Whether an element of the page now loaded shows `text` (none there yet: False)."""
    return any(text in element.text for element in driver.find_elements(By.CSS_SELECTOR, selector))


def shoot(driver: webdriver.Chrome, path: Path) -> None:
    driver.save_screenshot(str(path))
    wanted = os.environ.get("FILLPIPE_SCREENSHOT_DIR")
    if wanted:
        driver.save_screenshot(str(Path(wanted) / path.name))


def loaded_previews(driver: webdriver.Chrome) -> int:
    """How many previews in the jobs table have loaded as images (0 while any has not)."""
    sizes = driver.execute_script(
        "return Array.from(document.querySelectorAll('#jobs img'))"
        ".map(img => img.complete ? img.naturalWidth : 0)"
    )
    return len(sizes) if all(sizes) else 0


def test_the_token_is_needed_once_and_leaves_the_address(
    stack: EmbeddedStack, tmp_path: Path
) -> None:
    url, token = stack.env["FILLPIPE_DASHBOARD_URL"], stack.env["FILLPIPE_DASHBOARD_TOKEN"]
    with chromium(tmp_path / "profile") as fresh:
        fresh.get(f"{url}/")
        assert "Sign in" in text_of(fresh, "h1")
        fresh.get(f"{url}/?token=not-the-token")
        assert "Sign in" in text_of(fresh, "h1")

        fresh.get(f"{url}/?token={token}")

        assert fresh.current_url == f"{url}/"
        assert "Accounts" in text_of(fresh, "main")
        fresh.get(f"{url}/api/accounts")
        assert '"account":"default"' in text_of(fresh, "body")
        shoot(fresh, tmp_path / "signed-in.png")


def test_a_running_batch_shows_live_progress_and_its_previews(
    stack_rt: Runtime,
    finetune_id: str,
    dashboard: str,
    browser: webdriver.Chrome,
    tmp_path: Path,
) -> None:
    account = stack_rt.ledger.account()
    account.pause(PAUSE_REASON)
    try:
        batch_id, _ = upload_batch(
            stack_rt, finetune_id, make_samples(6, size_px=SAMPLE_PX), tags={"test": "dashboard"}
        )
        browser.get(f"{dashboard}/")
        assert PAUSE_REASON in text_of(browser, "#accounts")
        browser.find_element(By.LINK_TEXT, batch_id).click()
        wait_until(browser, lambda d: text_of(d, "#finished") == "0/6 (0.0%)", timeout_s=30)
        browser.execute_script("window.notReloaded = true")
    finally:
        account.resume()
        stack_rt.ledger.slots.dispatch()

    wait_until(browser, lambda d: text_of(d, "#finished") == "6/6 (100.0%)", timeout_s=120)

    assert browser.execute_script("return window.notReloaded") is True
    assert int(browser.execute_script("return document.body.dataset.refreshes")) >= 1
    assert "stored 6" in text_of(browser, "#summary")
    # image, mask and output of each of the 6 jobs
    wait_until(browser, lambda d: loaded_previews(d) == 18, timeout_s=30)
    shoot(browser, tmp_path / "dashboard-batch.png")


def test_failed_jobs_are_retried_from_their_buttons(
    stack: EmbeddedStack,
    stack_rt: Runtime,
    finetune_id: str,
    dashboard: str,
    browser: webdriver.Chrome,
    tmp_path: Path,
) -> None:
    with emulator_admin(stack) as admin:
        admin.put("/admin/faults", json={"expire_tasks": 1}).raise_for_status()
        try:
            batch_id, _ = upload_batch(
                stack_rt, finetune_id, make_samples(2, size_px=SAMPLE_PX), tags={}
            )
            failed = wait_until_done(stack_rt.ledger, batch_id, timeout_s=120)
        finally:
            admin.put("/admin/faults", json={"expire_tasks": 0}).raise_for_status()
    assert failed.counts == {JobState.FAILED: 2}
    browser.get(f"{dashboard}/batches/{batch_id}?failed=1")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#jobs tr[data-job]")) == 2

    browser.find_element(By.CSS_SELECTOR, "#jobs button").click()

    wait_until(browser, lambda d: shows(d, ".notice", "1 job put back in line"), timeout_s=30)
    wait_until(browser, lambda d: "stored 1" in text_of(d, "#summary"), timeout_s=120)
    browser.find_element(By.ID, "retry-all").click()
    wait_until(browser, lambda d: shows(d, ".notice", "1 job put back in line"), timeout_s=30)
    wait_until(browser, lambda d: text_of(d, "#summary").count("stored 2") == 1, timeout_s=120)
    summary = wait_until_done(stack_rt.ledger, batch_id, timeout_s=30)
    assert summary.counts == {JobState.STORED: 2}
    shoot(browser, tmp_path / "dashboard-retried.png")
