"""The real service (uvicorn on a free loopback port) over a migrated SQLite database holding a
slice of the demo data, and Debian's Chromium driven by Playwright.

Playwright never downloads a browser here: it launches /usr/bin/chromium, and the tests are
skipped, saying why, when that binary is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from api.analytics.clinical_routes import today
from api.app import create_app
from api.settings import Settings
from cli.demo_loader import load_bundles
from store.database import create_engine
from store.schema import upgrade
from tests.browser.demo_slice import ANCHOR, BROWSER_QUOTA, DemoSlice, demo_slice
from tests.live_server import serve_in_thread

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


def _skip_without_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium): browser tests skipped")


@dataclass
class DemoServer:
    base_url: str
    data: DemoSlice


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    _skip_without_browser()
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'reptrend.db'}"
    upgrade(url)
    data = demo_slice(BROWSER_QUOTA)
    engine = create_engine(url)
    try:
        load_bundles(engine, "default", data.bundles)
    finally:
        engine.dispose()
    app = create_app(Settings(database_url=url))
    app.dependency_overrides[today] = lambda: ANCHOR  # nothing reads the wall clock
    with serve_in_thread(app) as base_url:
        yield DemoServer(base_url, data)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    _skip_without_browser()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Problems:
    """Whatever went wrong in the page: console errors, failed or refused requests."""

    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        page.on("requestfailed", lambda r: self.requests.append(f"failed {r.url} {r.failure}"))
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.console.append(f"{message.type}: {message.text}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.requests.append(f"{response.status} {response.url}")


@dataclass
class Tab:
    page: Page
    problems: Problems
    base_url: str

    def open(self, path: str) -> None:
        """Load a dashboard page and wait until its script has drawn it (or failed)."""
        self.page.goto(self.base_url + path)
        self.page.wait_for_selector("main[data-ready]", timeout=30_000)


@pytest.fixture
def tab(browser: Browser, demo_server: DemoServer) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    problems = Problems()
    problems.watch(page)
    try:
        yield Tab(page, problems, demo_server.base_url)
    finally:
        context.close()


def save_screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """A screenshot in test-artifacts/ (git-ignored; CI keeps it as an artifact)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path
