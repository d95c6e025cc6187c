"""A headless Chromium driven by Selenium, for the dashboard's browser tests and `make screenshots`.

It uses Debian's `chromium` and `chromium-driver` packages (`make browser` installs them) through an
explicit driver path, so Selenium Manager never downloads a browser or a driver. The flags keep Chromium
off the network: without the background-networking ones it keeps trying to reach Google's update, sync
and field-trial services. Console messages are collected so a test can assert that a page logged none.
Selenium is a test dependency (`pip install -e '.[test]'`), imported only when a browser is opened."""

import base64
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver import Chrome

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
WINDOW = (1440, 1000)


def chromium_missing() -> str | None:
    """Why no browser can be opened here (None: it can)."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} not found (Debian package {package!r}; `make browser` installs it)"
    return None


@contextmanager
def headless_chromium(width: int = WINDOW[0], height: int = WINDOW[1]) -> Iterator["Chrome"]:
    """A fresh Chromium (a new profile in a temporary directory), quit and removed afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="nasscore-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_messages(driver: "Chrome") -> list[dict[str, str]]:
    """The browser console's messages since the last call (each has `level` and `message`)."""
    return list(driver.get_log("browser"))


def console_errors(driver: "Chrome") -> list[str]:
    """Messages logged at error level since the last call: script errors, failed loads, CSP violations."""
    return [entry["message"] for entry in console_messages(driver) if entry["level"] == "SEVERE"]


def save_full_page(driver: "Chrome", path: Path) -> None:
    """A PNG of the whole page at the window's width, taken by Chromium's DevTools protocol beyond the
    viewport (resizing the window instead would reflow the page while it is measured)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
