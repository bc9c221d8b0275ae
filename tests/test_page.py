"""The page in a real browser: Debian's headless chromium driven by selenium fills the form,
submits it, waits for the pick, and takes screenshots: into the test's temporary folder, or
into docs/img (the ones docs/serve.md shows) when QWENFIT_DOC_SCREENSHOTS=1, so that a test
run never rewrites tracked files.

Skipped when chromium or its driver is absent (.ci/run installs them with apt-get).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("uvicorn")
webdriver = pytest.importorskip("selenium.webdriver")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from serve_support import allow_loopback, running_server  # noqa: E402

DOC_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the screenshots go (see the module docstring)."""
    return DOC_IMG if os.environ.get("QWENFIT_DOC_SCREENSHOTS") == "1" else tmp_path


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or (
    "/usr/lib/chromium/chromedriver" if Path("/usr/lib/chromium/chromedriver").exists() else None
)
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver"
)


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    allow_loopback(monkeypatch)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_server() as base:
        yield base


def browser(width: int, height: int, phone: bool = False) -> Any:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    if phone:  # a window cannot be narrower than 500 px; emulate the phone's viewport instead
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
        )
    return driver


def plan(driver: Any, url: str) -> str:
    """Fill the form with the keyboard-reachable controls, submit, return the pick's text."""
    driver.get(url + "/")
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: len(Select(d.find_element(By.ID, "gpu")).options) > 10)
    Select(driver.find_element(By.ID, "gpu")).select_by_value("RTX 4090")
    driver.find_element(By.ID, "ram").send_keys("64GB")
    Select(driver.find_element(By.ID, "runtime")).select_by_value("llama.cpp")
    Select(driver.find_element(By.ID, "task")).select_by_value("code")
    driver.find_element(By.ID, "context").send_keys("64k")
    driver.find_element(By.ID, "go").click()
    pick = wait.until(ec.visibility_of_element_located((By.ID, "the-pick")))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#curve svg polyline"))
    text: str = pick.text
    return text


def test_form_shows_the_pick_bars_curve_and_commands(url: str, shots: Path) -> None:
    import httpx

    expected = httpx.post(
        url + "/v1/recommend",
        json={
            "gpu": "RTX 4090",
            "ram": "64GB",
            "runtime": "llama.cpp",
            "task": "code",
            "context": "64k",
        },
        timeout=30,
    ).json()["recommend"]["recommendations"]
    shots.mkdir(parents=True, exist_ok=True)
    driver = browser(1200, 2200)
    try:
        text = plan(driver, url)
        best = expected[0]
        assert best["display_name"] in text and best["quant"] in text and "64k" in text
        steps = driver.find_elements(By.CSS_SELECTOR, "#launch pre")
        assert [s.text for s in steps] == [s["shell"] for s in best["launch"]["steps"]]
        assert driver.find_elements(By.CSS_SELECTOR, "#launch button.copy")
        bars = driver.find_elements(By.CSS_SELECTOR, "#bars .bar")
        assert len(bars) >= 1 and "GPU 0" in bars[0].get_attribute("aria-label")
        rows = driver.find_elements(By.CSS_SELECTOR, "#alternatives tbody tr")
        assert len(rows) == len(expected) - 1
        assert not driver.find_element(By.ID, "status").get_attribute("class")  # no error
        driver.save_screenshot(str(shots / "serve-desktop.png"))
    finally:
        driver.quit()


def test_phone_width_and_an_error(url: str, shots: Path) -> None:
    driver = browser(390, 2400, phone=True)
    try:
        plan(driver, url)
        widths = driver.execute_script(
            "const e = document.documentElement; return [window.innerWidth, e.scrollWidth];"
        )
        assert widths == [390, 390]  # nothing wider than the phone's screen
        driver.save_screenshot(str(shots / "serve-phone.png"))
        ram = driver.find_element(By.ID, "ram")
        ram.clear()
        ram.send_keys("lots")
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 30).until(lambda d: "lots" in d.find_element(By.ID, "status").text)
        assert driver.find_element(By.ID, "status").get_attribute("class") == "error"
    finally:
        driver.quit()
