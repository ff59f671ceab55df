"""`shadowgate dashboard` served for real and rendered by a headless browser (Debian's chromium).

The screenshots go to $SHADOWGATE_TEST_ARTIFACTS (default .ci/artifacts) on every run, and to
docs/img/board.png and docs/img/review.png when SHADOWGATE_TEST_UPDATE_DOCS=1 (how those in the docs were
made).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from store.audit import entries
from store.reviews import marks, queue
from store.verdicts import latest
from tests.dashboard.conftest import NAMES, PASSWORD, USER, Filled, Stores
from tests.integration.tapkit import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1400",
)
NOTE_FIELD = "input[aria-label^='Note']"
LABELS = {"GO": "GO", "HOLD": "HOLD", "NO_GO": "NO-GO", "INSUFFICIENT_DATA": "INSUFFICIENT DATA"}


@pytest.fixture
def served(stores: Stores) -> Iterator[tuple[str, Filled]]:
    """`shadowgate --config F dashboard --port P` on the SQLite store, until the test ends."""
    filled = stores.get("sqlite")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shadowgate.cli",
            "--config",
            str(filled.config),
            "dashboard",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.fail(f"the dashboard did not come up: {err[-2000:]}")
            time.sleep(0.2)
        yield url, filled
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "_stcore/health", timeout=1) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            "this test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def test_the_board_renders_every_tenant_and_verdict_in_a_browser(
    served: tuple[str, Filled], browser: webdriver.Chrome
) -> None:
    url, filled = served
    verdicts = latest(filled.engine)
    wanted = [*NAMES, *NAMES.values(), *{LABELS[v.status] for v in verdicts}]

    browser.get(url)
    body = ""

    def rendered(driver: webdriver.Chrome) -> bool:
        nonlocal body
        body = driver.find_element(By.TAG_NAME, "body").text
        return all(w in body for w in wanted) and "pairs judged" in body

    try:
        WebDriverWait(browser, 45, poll_frequency=0.25).until(rendered)
    except Exception:
        pytest.fail(f"the board never showed {wanted}; it showed: {body[:3000]}")
    for v in verdicts:
        assert f"{v.body['n']} pairs judged" in body
    time.sleep(1.0)  # let the charts' and badges' styles settle before the picture

    _keep(browser.get_screenshot_as_png(), "board.png")


def test_the_review_page_marks_a_flag_from_the_keyboard_in_a_browser(
    served: tuple[str, Filled], browser: webdriver.Chrome
) -> None:
    url, filled = served
    tenant, route = "klinik-edge", "chat"  # the flags the review tests mark (tests/dashboard/test_review.py)
    waiting = queue(filled.engine, tenant=tenant, route=route)
    assert len(waiting) >= 2
    browser.set_window_size(1600, 1300)
    wait = WebDriverWait(browser, 45, poll_frequency=0.25)
    # The board first: until one run of app.py has called st.navigation, Streamlit 1.67 takes the
    # dashboard/pages/ folder for an old-style multipage app, and a page's own URL runs it alone.
    browser.get(url)
    wait.until(lambda d: "Cutover board" in d.find_element(By.TAG_NAME, "body").text)
    browser.get(f"{url}review?tenant={tenant}&route={route}")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[aria-label='Name']"))
    browser.find_element(By.CSS_SELECTOR, "input[aria-label='Name']").send_keys(USER)
    browser.find_element(By.CSS_SELECTOR, "input[type='password']").send_keys(PASSWORD)
    next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Sign in").click()

    def showing(key: str) -> Callable[[webdriver.Chrome], bool]:
        def check(driver: webdriver.Chrome) -> bool:
            body = driver.find_element(By.TAG_NAME, "body").text
            return f"key {key}" in body and bool(driver.find_elements(By.CSS_SELECTOR, NOTE_FIELD))

        return check

    wait.until(showing(waiting[0].key))
    assert f"1 of {len(waiting)} awaiting" in browser.find_element(By.TAG_NAME, "body").text
    note = browser.find_element(By.CSS_SELECTOR, NOTE_FIELD)
    note.click()
    # Letters typed into the note stay in the note: Streamlit ignores plain-key shortcuts there.
    note.send_keys("the candidate changed a figure the clinician reads: a real difference")
    time.sleep(1.0)  # let the marks' styles settle before the picture
    assert marks(filled.engine, [waiting[0].key]) == {}
    _keep(browser.get_screenshot_as_png(), "review.png")
    # Ctrl+Shift+D with the note still focused: a real difference, then the next pair.
    ActionChains(browser).key_down(Keys.CONTROL).key_down(Keys.SHIFT).send_keys("d").key_up(
        Keys.SHIFT
    ).key_up(Keys.CONTROL).perform()
    wait.until(showing(waiting[1].key))
    body = browser.find_element(By.TAG_NAME, "body").text
    assert f"Recorded: local:{USER} marks pair {waiting[0].key} a real difference" in body
    assert marks(filled.engine, [waiting[0].key]) == {waiting[0].key: "real"}
    last = entries(filled.engine, action="review", limit=1)[0]
    assert (last.actor, last.reason) == (
        f"local:{USER}",
        "the candidate changed a figure the clinician reads: a real difference",
    )
    # The next pair's note starts empty (the browser may show the new pair a moment before the field clears).
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, NOTE_FIELD).get_attribute("value") == "")


def _keep(shot: bytes, name: str) -> None:
    """A screenshot into the artifacts, and into docs/img with SHADOWGATE_TEST_UPDATE_DOCS=1."""
    assert shot.startswith(b"\x89PNG")
    assert len(shot) > 20_000  # a page, not a blank
    artifacts = Path(os.environ.get("SHADOWGATE_TEST_ARTIFACTS", ROOT / ".ci" / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / name).write_bytes(shot)
    if os.environ.get("SHADOWGATE_TEST_UPDATE_DOCS") == "1":
        docs = ROOT / "docs" / "img"
        docs.mkdir(parents=True, exist_ok=True)
        (docs / name).write_bytes(shot)
