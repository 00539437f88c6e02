"""The review page in a real (headless) Chromium: untick a row, "Save decisions", --apply the CSV it downloads."""

from __future__ import annotations

import time
from pathlib import Path

import test_browser
from selenium import webdriver
from selenium.webdriver.common.by import By

from landmark_lib.cli import main

from helpers import save_photo, time_limit

pytestmark = test_browser.pytestmark  # needs Chromium and ChromeDriver
browser = test_browser.browser  # the headless Chromium fixture


def test_decisions_saved_by_the_page_are_what_apply_writes(
    browser: webdriver.Chrome, model_dir: Path, tmp_path: Path
) -> None:
    lib = tmp_path / "lib"
    for name in ("keep.jpg", "drop.jpg"):
        save_photo(lib / name, seed=len(name))
    with time_limit(120):
        assert main(["geotag", str(lib), "--model", str(model_dir), "--review", str(tmp_path / "review.html")]) == 0
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    browser.get((tmp_path / "review.html").as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.confident")
    assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows] == ["drop.jpg", "keep.jpg"]
    assert all(r.find_element(By.TAG_NAME, "img").get_attribute("naturalWidth") != "0" for r in rows)  # thumbnails
    rows[0].find_element(By.CSS_SELECTOR, "input.accept").click()  # untick drop.jpg
    browser.find_element(By.ID, "save").click()
    deadline = time.monotonic() + 20
    while not (downloads / "decisions.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with time_limit(120):
        assert main(["geotag", str(lib), "--apply", str(downloads / "decisions.csv")]) == 0
    assert sorted(p.name for p in lib.glob("*.xmp")) == ["keep.jpg.xmp"]
