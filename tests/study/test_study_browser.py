"""A real headless Chromium (Selenium) answers a question in the study app served by uvicorn."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from dreambench.study import db as sdb

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
                       reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(study_env):
    """The app on 127.0.0.1:<free port> in a background thread; yields its base URL."""
    import uvicorn

    from dreambench.study.app import create_app

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(study_env.db), host="127.0.0.1", port=port,
                                       log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path):
    pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,1000", f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _detached(element):
    """A wait condition: ``element`` left the document (the form posted and the next page loaded).

    ``expected_conditions.staleness_of`` only accepts StaleElementReferenceException; while the page is
    being replaced Chromium may instead answer "Node with given id does not belong to the document", which
    means the same thing."""
    from selenium.common.exceptions import WebDriverException

    def gone(_driver) -> bool:
        try:
            element.is_enabled()
        except WebDriverException:
            return True
        return False

    return gone


def test_rater_answers_in_a_real_browser(study_env, server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    token = study_env.tokens["alice"]
    browser.get(f"{server}/r/{token}")
    assert "Answered so far: 0" in browser.page_source
    qid = int(browser.find_element(By.NAME, "question_id").get_attribute("value"))
    # every image of the page loaded (naturalWidth > 0): served by key, no external assets
    imgs = browser.find_elements(By.TAG_NAME, "img")
    assert len(imgs) >= 2
    WebDriverWait(browser, 10).until(
        lambda d: all(d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                      for i in d.find_elements(By.TAG_NAME, "img")))
    shot = tmp_path / "question.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000
    if os.environ.get("DREAMBENCH_SCREENSHOT_DIR"):  # to look at the page by eye
        shutil.copy(shot, Path(os.environ["DREAMBENCH_SCREENSHOT_DIR"]) / "study_question.png")
    button = browser.find_element(By.ID, "answer-right")
    button.click()
    WebDriverWait(browser, 10).until(_detached(button))
    WebDriverWait(browser, 10).until(lambda d: "Answered so far: 1" in d.page_source)

    conn = sdb.connect(study_env.db)
    try:
        rows = conn.execute("SELECT a.question_id, a.shown, a.choice, q.a_on_left, r.name FROM answers a"
                            " JOIN questions q ON q.id = a.question_id JOIN raters r ON r.id = a.rater_id").fetchall()
    finally:
        conn.close()
    assert len(rows) == 1
    (row,) = rows
    assert (row["question_id"], row["shown"], row["name"]) == (qid, "right", "alice")
    assert row["choice"] == ("b" if row["a_on_left"] else "a")
