"""The page in a real browser (Debian's Chromium through Selenium) against a real ``app.py``: paint a stroke
with the mouse, Fill, get back a picture that changed inside the stroke and nowhere else; fill again on the
result; a refusal from the server shows up as text.

Skipped where Chromium or Selenium is missing, except under ``.ci/run`` (``DEEPFILL_REQUIRE_BROWSER=1``),
which installs them."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from skimage import data

from tests import browser


@pytest.fixture(scope="module")
def page(app_server):
    """A Chromium window and the running server (which refuses pictures over 256×256)."""
    missing = browser.available()
    if missing:
        if os.environ.get("DEEPFILL_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    driver = browser.chromium()
    try:
        yield driver, app_server.url + "/"
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("browser") / "astronaut.png")
    cv2.imwrite(path, cv2.resize(data.astronaut()[:, :, ::-1], (256, 256), interpolation=cv2.INTER_AREA))
    return path


def regions(shape, fill: browser.Fill) -> tuple[np.ndarray, np.ndarray]:
    """Pixels surely inside the painted stroke, and surely outside it (antialiased rims left out)."""
    distance = browser.stroke_distance(shape, fill.stroke)
    return distance < fill.brush / 2 - 2, distance > fill.brush / 2 + 2


def test_paint_fill_and_fill_again(page, photo, tmp_path):
    driver, url = page
    original = cv2.imread(photo, cv2.IMREAD_UNCHANGED)
    browser.open_picture(driver, url, photo)
    screenshot = str(tmp_path / "page.png")
    first = browser.paint_and_fill(driver, screenshot=screenshot)
    inside, outside = regions(original.shape[:2], first)
    assert first.result.shape == original.shape and first.result.dtype == original.dtype
    assert inside.sum() > 500
    assert (first.result[outside] == original[outside]).all()
    assert (first.result[inside] != original[inside]).any(axis=-1).mean() > 0.9
    assert first.mode == "full" and "mode: full" in first.status and "256×256" in first.status
    shot = cv2.imread(screenshot)
    assert shot is not None and shot.shape[1] >= 1000

    second = browser.paint_and_fill(driver, stroke=((0.2, 0.8), (0.5, 0.75)))    # on the result
    inside, outside = regions(original.shape[:2], second)
    assert (second.result[outside] == first.result[outside]).all()
    assert (second.result[inside] != first.result[inside]).any(axis=-1).mean() > 0.9


def test_a_refusal_appears_in_the_page(page, tmp_path):
    from selenium.webdriver.common.by import By
    driver, url = page
    big = str(tmp_path / "big.png")
    cv2.imwrite(big, np.full((300, 300, 3), 90, np.uint8))       # over the server's 256×256 limit
    browser.open_picture(driver, url, big)
    browser.paint(driver)
    assert browser.press_fill(driver) == "error"
    error = driver.find_element(By.ID, "error")
    assert error.is_displayed() and "HTTP 413" in error.text and "300x300" in error.text
    assert driver.find_element(By.ID, "fill").is_enabled()      # the page stays usable


@pytest.fixture()
def menu_page(menu_server):
    """A Chromium window on ``app.py --checkpoint places2_v2`` with places2 also in its cache."""
    missing = browser.available()
    if missing:
        if os.environ.get("DEEPFILL_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    driver = browser.chromium()
    try:
        yield driver, menu_server.url + "/"
    finally:
        driver.quit()


def test_the_page_names_its_model_and_switches_with_the_menu(menu_page, photo, tmp_path):
    """The header says which model fills (name, generation, what it learnt from); the menu loads the other
    cached model on the server, and the next fill is made with it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    driver, url = menu_page
    browser.open_picture(driver, url, photo)
    assert driver.find_element(By.ID, "title").text == "DeepFill v2"
    described = driver.find_element(By.ID, "model").text
    assert "places2_v2 · trained on Places2, 256×256 pictures with boxes and free-form brush strokes" in described
    menu = Select(driver.find_element(By.ID, "model-menu"))
    assert menu.first_selected_option.text == "places2_v2"
    assert [option.text for option in menu.options] == ["places2", "places2_v2"]
    screenshot = str(tmp_path / "menu.png")
    first = browser.paint_and_fill(driver, screenshot=screenshot)
    assert "places2_v2:" in first.status

    menu.select_by_visible_text("places2")
    WebDriverWait(driver, browser.WAIT_SECONDS).until(
        lambda d: d.find_element(By.ID, "title").text == "DeepFill v1" and d.find_element(By.ID, "fill").is_enabled())
    assert "brush strokes suit a v2 model" in driver.find_element(By.ID, "model").text
    assert "Now filling with places2" in driver.find_element(By.ID, "status").text
    second = browser.paint_and_fill(driver, stroke=((0.2, 0.8), (0.5, 0.75)))
    assert "places2:" in second.status and "mode: full" in second.status
    inside, outside = regions(first.result.shape[:2], second)
    assert (second.result[outside] == first.result[outside]).all()
    assert (second.result[inside] != first.result[inside]).any(axis=-1).mean() > 0.9
    shot = cv2.imread(screenshot)
    assert shot is not None and shot.shape[1] >= 1000
