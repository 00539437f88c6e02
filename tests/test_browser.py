"""The page in a real (headless) Chromium: upload an example photo, submit, read the top-5 off the page."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from helpers import CLASSES, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPO_ROOT = Path(__file__).resolve().parents[1]
# Screenshots go to LANDMARK_SCREENSHOT_DIR when set (the README's picture is made that way), else to tmp_path.
SCREENSHOT_DIR = os.environ.get("LANDMARK_SCREENSHOT_DIR")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
        reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install -y chromium chromium-driver)",
    ),
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _submit(driver: webdriver.Chrome, photo: Path) -> None:
    def upload(d: webdriver.Chrome) -> bool:
        try:  # the photo input is re-rendered after Clear: find it again until it holds still
            d.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(photo))
        except StaleElementReferenceException:
            return False
        return True

    WebDriverWait(driver, 30).until(upload)
    driver.find_element(By.XPATH, "//button[normalize-space()='Submit']").click()


def test_upload_example_and_read_top5(browser: webdriver.Chrome, app_url: str, tmp_path: Path) -> None:
    wait = WebDriverWait(browser, 60)
    browser.get(app_url)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=file]"))
    _submit(browser, REPO_ROOT / "examples" / "taj_mahal.jpg")
    names = wait.until(lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "button.confidence-set dt")] or None)
    assert len(names) == 5 and set(names) <= {c.display_name for c in CLASSES}
    wait.until(lambda d: "Open in OpenStreetMap" in d.find_element(By.TAG_NAME, "body").text)
    best = next(c for c in CLASSES if c.display_name == names[0])
    assert_map_marks(browser, best.lat, best.lon)  # the embedded map shows the landmark the answer names
    assert browser.save_screenshot(str(Path(SCREENSHOT_DIR or tmp_path) / "app_screenshot_test_model.png"))

    (tmp_path / "notes.jpg").write_text("not a photo")
    browser.find_element(By.XPATH, "//button[normalize-space()='Clear']").click()
    _submit(browser, tmp_path / "notes.jpg")
    wait.until(lambda d: "Cannot read this photo" in d.find_element(By.TAG_NAME, "body").text)
    assert "notes.jpg is not an image file" in browser.find_element(By.TAG_NAME, "body").text
    wait.until(lambda d: broken_images(d) == [])  # the refused file is taken out of the photo input
    _submit(browser, REPO_ROOT / "examples" / "petra.jpg")  # and the next photo is answered as usual
    wait.until(lambda d: "Cannot read" not in d.find_element(By.TAG_NAME, "body").text)
    assert wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "button.confidence-set dt"))


def broken_images(driver: webdriver.Chrome) -> list[str]:
    """The <img> elements the browser could not draw (it shows a broken-image icon for them)."""
    return driver.execute_script(
        "return [...document.images].filter(i => i.complete && i.naturalWidth === 0).map(i => i.src)"
    )


def assert_map_marks(driver: webdriver.Chrome, lat: float, lon: float) -> None:
    (frame,) = driver.find_elements(By.CSS_SELECTOR, "iframe.landmark-map")
    src = frame.get_attribute("src")
    assert src.startswith("https://www.openstreetmap.org/export/embed.html?") and f"marker={lat:.5f}%2C{lon:.5f}" in src


@pytest.fixture(scope="module")
def shipped_app_url() -> Iterator[str]:
    """The app as a user starts it: `python app.py` with the model committed in models/default."""
    from landmark_lib.serve.service import LandmarkService
    from landmark_lib.serve.web import build_demo, launch

    demo = build_demo(LandmarkService.from_spec(REPO_ROOT / "models" / "default"))
    try:
        yield launch(demo, "127.0.0.1", free_port(), block=False)
    finally:
        demo.close()


@pytest.mark.parametrize(
    "example, expected", [("taj_mahal.jpg", "Taj Mahal"), ("petra.jpg", "Petra"), ("eiffel_tower.jpg", "Eiffel Tower")]
)
def test_shipped_model_names_the_example_landmark_in_the_page(browser, shipped_app_url, tmp_path, example, expected):
    wait = WebDriverWait(browser, 120)
    browser.get(shipped_app_url)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=file]"))
    _submit(browser, REPO_ROOT / "examples" / example)
    names = wait.until(lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "button.confidence-set dt")] or None)
    assert names[0] == expected
    wait.until(lambda d: "Open in OpenStreetMap" in d.find_element(By.TAG_NAME, "body").text)
    assert browser.save_screenshot(str(Path(SCREENSHOT_DIR or tmp_path) / f"app_{Path(example).stem}.png"))


def test_shipped_model_says_no_known_landmark_for_an_everyday_photo(browser, shipped_app_url, tmp_path):
    wait = WebDriverWait(browser, 120)
    browser.get(shipped_app_url)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=file]"))
    _submit(browser, REPO_ROOT / "examples" / "everyday_park_bench.jpg")
    wait.until(lambda d: "No known landmark recognised" in d.find_element(By.TAG_NAME, "body").text)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Closest known landmarks" in body and "Open in OpenStreetMap" not in body
    heading = browser.find_elements(By.CSS_SELECTOR, "[data-testid=label-output-value]")
    assert not heading or heading[0].text == "No known landmark"
    assert browser.save_screenshot(str(Path(SCREENSHOT_DIR or tmp_path) / "app_everyday_photo.png"))


def _click_example(driver: webdriver.Chrome, label: str) -> None:
    """Examples are buttons labelled with their landmark's name (not the file name)."""
    (button,) = [b for b in driver.find_elements(By.CSS_SELECTOR, "button.gallery-item") if b.text == label]
    button.click()


def test_examples_table_footer_and_phone_width(browser, shipped_app_url, tmp_path):
    """An example shows its landmark's name and, clicked, its answer and map; the known landmarks fold into a table
    with their places; the footer names the model; the page fits a 420 px phone (screenshots at both widths)."""
    wait = WebDriverWait(browser, 120)
    browser.get(shipped_app_url)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "button.gallery-item"))
    labels = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "button.gallery-item")]
    assert "Eiffel Tower" in labels and "No landmark (a park bench)" in labels and len(labels) == 17
    _click_example(browser, "Eiffel Tower")
    heading = "[data-testid=label-output-value]"
    wait.until(lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, heading)] == ["Eiffel Tower"])
    wait.until(lambda d: "Eiffel Tower — Paris, France" in d.find_element(By.TAG_NAME, "body").text)
    assert_map_marks(browser, 48.858, 2.294)
    screenshots = Path(SCREENSHOT_DIR or tmp_path)
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(screenshots / "app_desktop.png"))  # the README's picture
    summary = next(e for e in browser.find_elements(By.CSS_SELECTOR, "details summary") if e.is_displayed())
    assert summary.text == "The 66 landmarks the model knows"
    summary.click()
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "details table tbody tr")]
    assert len(rows) == 66 and "Eiffel Tower Paris, France" in rows
    assert "Model: the local export default (" in " ".join(browser.find_element(By.TAG_NAME, "body").text.split())

    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 420, "height": 900, "deviceScaleFactor": 1, "mobile": True}
    )
    browser.get(shipped_app_url)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "button.gallery-item"))
    _click_example(browser, "Taj Mahal")
    wait.until(lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, heading)] == ["Taj Mahal"])
    width, inner = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert inner == 420 and width <= inner  # nothing wider than the phone: no sideways scrolling
    assert browser.save_screenshot(str(screenshots / "app_phone.png"))


def test_two_tabs_at_desktop_and_phone_width(browser, shipped_app_url, tmp_path):
    """Recognise and Teach a landmark are tabs of one page, each with one upload area; screenshots of both tabs at
    desktop and phone width (reports/app_recognise_*.png, reports/app_teach_*.png)."""
    wait = WebDriverWait(browser, 120)
    screenshots = Path(SCREENSHOT_DIR or tmp_path)
    for width, height, name in ((1280, 1000, "desktop"), (420, 900, "phone")):
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": name == "phone"},
        )
        browser.get(shipped_app_url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "button.gallery-item"))
        tabs = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "button[role=tab]")]
        assert tabs == ["Recognise", "Teach a landmark"]
        assert len(visible_uploads(browser)) == 1
        assert browser.save_screenshot(str(screenshots / f"app_recognise_{name}.png"))
        browser.find_element(By.XPATH, "//button[@role='tab'][normalize-space()='Teach a landmark']").click()
        wait.until(
            lambda d: any(e.is_displayed() for e in d.find_elements(By.XPATH, "//button[normalize-space()='Teach']"))
        )
        assert len(visible_uploads(browser)) == 1 and "Recognise" in browser.find_element(By.TAG_NAME, "body").text
        assert browser.save_screenshot(str(screenshots / f"app_teach_{name}.png"))


def visible_uploads(driver: webdriver.Chrome) -> list:
    """The upload areas a visitor sees (the inactive tab's are hidden): file inputs in a displayed component."""
    return driver.execute_script(
        "return [...document.querySelectorAll('input[type=file]')]"
        ".filter(e => e.closest('.block') && e.closest('.block').offsetParent !== null).map(e => e.accept)"
    )
