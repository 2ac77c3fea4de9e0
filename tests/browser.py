"""A real headless Chromium (Debian's chromium and chromium-driver, driven by selenium) signed in to a
test Airflow, for checking what the pages render."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = ("chromedriver", "chromium-driver")


def _which(names: tuple[str, ...]) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


class Browser:
    def __init__(self, url: str, screenshots: Path) -> None:
        from selenium import webdriver

        binary, driver = _which(CHROMIUM), _which(DRIVER)
        if not binary or not driver:
            pytest.fail(
                "no chromium or chromedriver: scripts/setup.sh installs Debian's chromium and chromium-driver"
            )
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--hide-scrollbars",
        ):
            options.add_argument(argument)
        self.driver = webdriver.Chrome(
            options=options, service=webdriver.ChromeService(executable_path=driver)
        )
        self.driver.set_page_load_timeout(60)
        self.url = url
        self.screenshots = screenshots

    def sign_in(self, token: str) -> None:
        """The session cookie Airflow's login sets (its JWT), on the API server's origin."""
        self.driver.get(f"{self.url}/api/v2/monitor/health")
        self.driver.add_cookie({"name": "_token", "value": token, "path": "/"})

    def open(self, path: str) -> None:
        self.driver.switch_to.default_content()
        self.driver.get(f"{self.url}/{path.lstrip('/')}")

    def until(self, what: str, found: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if result := found():
                    return result
            except Exception as exc:  # the page is still loading or re-rendering
                last = exc
            time.sleep(0.3)
        text = self.text()
        raise AssertionError(
            f"{what}: not seen in {timeout} s (last error: {last}); page text:\n{text[:3000]}"
        )

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        try:
            return self.driver.find_element(By.TAG_NAME, "body").text
        except Exception:
            return ""

    def frame(self, title: str, expect: str, timeout: float = 60) -> str:
        """Enter the UI's frame of a plugin view (its title is the view's name) once it shows ``expect``;
        returns the frame's text."""
        from selenium.webdriver.common.by import By

        def shown() -> str | None:
            self.driver.switch_to.default_content()
            frames = self.driver.find_elements(By.CSS_SELECTOR, f'iframe[title="{title}"]')
            if not frames:
                return None
            self.driver.switch_to.frame(frames[0])
            text = self.text()
            return text if expect in text else None

        return self.until(f"frame {title!r} showing {expect!r}", shown, timeout)

    def shot(self, name: str) -> Path:
        """A screenshot of the whole window (the Airflow UI around the frame)."""
        self.driver.switch_to.default_content()
        path = self.screenshots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def quit(self) -> None:
        self.driver.quit()
