"""The page driven as a person uses it, in Debian's Chromium through Selenium: open a picture, paint a stroke
with the mouse, press Fill, wait for the result. ``tests/test_app_browser.py`` asserts on what comes back; the
screenshot in docs/inference.md is made by the same code:

    python -m tests.browser --checkpoint CKPT --picture examples/images/astronaut.png --screenshot docs/app.png
"""
from __future__ import annotations

import argparse
import base64
import os
import shutil
from dataclasses import dataclass

import cv2
import numpy as np

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_SECONDS = 120
STROKE = ((0.35, 0.30), (0.65, 0.45))      # from, to: fractions of the shown picture's width and height
BRUSH = 24                                 # screen pixels


def available() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


def chromium(width: int = 1280, height: int = 820):
    """Headless Chromium with the system's chromedriver (given explicitly, so Selenium never downloads one)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@dataclass
class Fill:
    """What one fill in the page produced: the result as the page offers it for download (decoded as
    stored), the stroke that was painted (picture pixels) and the brush's diameter, the status line and the
    mode that ran."""
    result: np.ndarray
    stroke: tuple[tuple[float, float], tuple[float, float]]
    brush: float
    status: str
    mode: str


def body_state(driver, states: tuple[str, ...]) -> str:
    """Wait (bounded) until the page's ``body[data-state]`` is one of ``states``; return it."""
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.find_element("tag name", "body").get_attribute("data-state") in states)
    return driver.find_element("tag name", "body").get_attribute("data-state")


def open_picture(driver, url: str, picture: str) -> None:
    """Load the page, wait for the model's description, open ``picture`` with the file chooser."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(url)
    WebDriverWait(driver, WAIT_SECONDS).until(lambda d: "trained on" in d.find_element(By.ID, "model").text)
    driver.find_element(By.ID, "open").send_keys(os.path.abspath(picture))
    body_state(driver, ("ready",))


def paint(driver, stroke=STROKE, brush: int = BRUSH) -> tuple[tuple[tuple[float, float], ...], float]:
    """Drag the mouse along ``stroke`` (fractions of the shown picture) with a ``brush``-pixel brush;
    returns the stroke and the brush diameter in picture pixels."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    driver.execute_script("const b = document.getElementById('brush'); b.value = arguments[0];"
                          "b.dispatchEvent(new Event('input'));", brush)
    canvas = driver.find_element(By.ID, "mask")
    shown_width, shown_height, width = driver.execute_script(
        "const c = arguments[0], r = c.getBoundingClientRect(); return [r.width, r.height, c.width];", canvas)
    points = [(round(fx * shown_width), round(fy * shown_height)) for fx, fy in stroke]
    actions = ActionChains(driver, duration=10)
    actions.move_to_element_with_offset(canvas, points[0][0] - round(shown_width / 2),
                                        points[0][1] - round(shown_height / 2))
    actions.click_and_hold()
    steps = 12
    (x0, y0), (x1, y1) = points
    for step in range(steps):
        actions.move_by_offset(round(x0 + (x1 - x0) * (step + 1) / steps) - round(x0 + (x1 - x0) * step / steps),
                               round(y0 + (y1 - y0) * (step + 1) / steps) - round(y0 + (y1 - y0) * step / steps))
    actions.release().perform()
    scale = width / shown_width
    return tuple((x * scale, y * scale) for x, y in points), brush * scale


def press_fill(driver) -> str:
    """Click Fill and wait for the page to show the result or an error; returns ``filled`` or ``error``."""
    from selenium.webdriver.common.by import By
    driver.find_element(By.ID, "fill").click()
    return body_state(driver, ("filled", "error"))


def downloaded(driver) -> np.ndarray:
    """The picture behind the page's Download link, decoded as stored."""
    encoded = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(document.getElementById('download').href).then(r => r.arrayBuffer()).then(buffer => {"
        "  let text = ''; for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);"
        "  done(btoa(text)); });")
    return cv2.imdecode(np.frombuffer(base64.b64decode(encoded), np.uint8), cv2.IMREAD_UNCHANGED)


def paint_and_fill(driver, stroke=STROKE, screenshot: str | None = None) -> Fill:
    """Paint ``stroke`` on the open picture, Fill, and return what came back (a page error is raised)."""
    from selenium.webdriver.common.by import By
    painted, brush = paint(driver, stroke)
    if press_fill(driver) == "error":
        raise AssertionError(f"the page shows an error: {driver.find_element(By.ID, 'error').text}")
    if screenshot:
        driver.save_screenshot(screenshot)
    return Fill(downloaded(driver), painted, brush, driver.find_element(By.ID, "status").text,
                driver.find_element(By.TAG_NAME, "body").get_attribute("data-mode"))


def stroke_distance(shape: tuple[int, int], stroke) -> np.ndarray:
    """Distance of every pixel centre of an H×W picture to the stroke's segment, in pixels."""
    (x0, y0), (x1, y1) = stroke
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / (dx * dx + dy * dy), 0, 1)
    return np.hypot(xs - (x0 + t * dx), ys - (y0 + t * dy))


def main() -> None:
    from tests.app_server import serving

    parser = argparse.ArgumentParser(description="Make the screenshot of the page in docs/inference.md")
    parser.add_argument("--checkpoint", required=True, help="checkpoint app.py serves")
    parser.add_argument("--picture", required=True, help="picture to open in the page")
    parser.add_argument("--screenshot", required=True, help="PNG to write")
    args = parser.parse_args()
    with serving(args.checkpoint) as server:
        driver = chromium()
        try:
            open_picture(driver, server.url + "/", args.picture)
            filled = paint_and_fill(driver, screenshot=args.screenshot)
        finally:
            driver.quit()
    print(f"wrote {args.screenshot}: {filled.status}")


if __name__ == "__main__":
    main()
