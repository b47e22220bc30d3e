"""Fixtures of the real-browser tests: the demo shop on a real server, Debian's Chromium
driven by Playwright, and a folder that keeps a screenshot of every page visited.

The shop is the demo shop tests' trained template (``python -m demo_shop --setup-only``:
300 products, 3,000 events, the home experiment configured), copied for each test and
served by waitress on a free loopback port in this process, so that a test can read
recsdk's tables and make recsdk fail. The browser is ``/usr/bin/chromium`` (no browser
download); the tests are skipped, saying why, only when it or Playwright is missing.

Screenshots go to ``$RECSDK_SCREENSHOTS`` when set, else to ``screenshots/`` in pytest's
temporary folder; the folder is printed at the end of the run.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from demo_shop import close_shop, create_app
from tests.api.helpers import live_server
from tests.demo_shop.conftest import settings_text, template  # noqa: F401 - a fixture

CHROMIUM = Path("/usr/bin/chromium")
#: What the run measured, printed in the terminal summary.
REPORT_KEY = pytest.StashKey[list[str]]()

try:
    from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
except ImportError:  # pragma: no cover - the skip below says so
    sync_playwright = None  # type: ignore[assignment]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None
    if sync_playwright is None:
        reason = "playwright is not installed (pip install playwright; the test extra has it)"
    elif not CHROMIUM.exists():
        reason = f"Debian's Chromium is not at {CHROMIUM} (apt-get install chromium)"
    if reason:
        here = Path(__file__).parent
        for item in items:
            if Path(str(item.fspath)).is_relative_to(here):
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_configure(config: pytest.Config) -> None:
    config.stash[REPORT_KEY] = []


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for line in config.stash.get(REPORT_KEY, []):
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def report_line(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """Print a line at the end of the run (a measured figure, the screenshots)."""
    lines = pytestconfig.stash[REPORT_KEY]

    def add(line: str) -> None:
        if line not in lines:
            lines.append(line)
    return add


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory,
                report_line: Callable[[str], None]) -> Path:
    given = os.environ.get("RECSDK_SCREENSHOTS")
    folder = Path(given) if given else tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    report_line(f"browser tests: screenshots of every page visited in {folder}")
    return folder


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Shop:
    """The demo shop served over HTTP, and its app (for recsdk's tables)."""

    app: Flask
    url: str


@pytest.fixture
def shop(template: tuple[Path, Path, str], tmp_path: Path) -> Iterator[Shop]:  # noqa: F811
    """A copy of the trained template shop, served by waitress on a free port."""
    db, artifacts, _ = template
    path = tmp_path / "shop.db"
    shutil.copyfile(db, path)
    settings = tomllib.loads(settings_text(f"sqlite:///{path}", artifacts))
    app = create_app({"RECSDK_CONFIG": settings, "RECSDK_MIGRATE": False,
                      "RECSDK_CLOSE_AT_EXIT": False, "SECRET_KEY": "browser-tests"},
                     environ={})
    try:
        with live_server(app) as address:
            yield Shop(app, f"http://{address}")
    finally:
        close_shop(app)


@dataclass
class Tab:
    """A browser page that screenshots every page it lands on and keeps what the
    console said (errors, uncaught exceptions)."""

    page: Page
    folder: Path
    prefix: str
    shots: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def snap(self, name: str) -> Path:
        """Screenshot the page now (after its load), as ``<test>-<n>-<name>.png``."""
        self.page.wait_for_load_state("load")
        path = self.folder / f"{self.prefix}-{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path

    def goto(self, url: str, name: str) -> None:
        self.page.goto(url)
        self.snap(name)

    def navigate(self, action: Callable[[], Any], name: str) -> None:
        """Do ``action`` (a click, a form sent), wait for the next page, screenshot it."""
        with self.page.expect_navigation():
            action()
        self.snap(name)


@pytest.fixture
def open_tab(browser: Browser, screenshots: Path, request: pytest.FixtureRequest
             ) -> Iterator[Callable[..., Tab]]:
    """New browser contexts (own cookies and storage) with one page each."""
    contexts = []
    prefix = re.sub(r"[^\w-]+", "_", request.node.name)[:60]

    def make(**options: Any) -> Tab:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
        contexts.append(context)
        tab = Tab(context.new_page(), screenshots, f"{prefix}-{len(contexts)}")

        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                tab.errors.append(f"console: {message.text} ({message.location})")

        tab.page.on("console", console)
        tab.page.on("pageerror", lambda error: tab.errors.append(f"uncaught: {error}"))
        return tab

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def other_site() -> Iterator[Callable[[str], str]]:
    """A page of another site (another origin on this machine: Chromium keeps public
    pages from loading anything on loopback) serving the HTML given; its URL."""
    pages: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    runner = threading.Thread(target=server.serve_forever, name="other-site", daemon=True)
    runner.start()

    def serve(html: str) -> str:
        path = f"/page{len(pages)}.html"
        pages[path] = html.encode()
        return f"http://localhost:{server.server_address[1]}{path}"

    try:
        yield serve
    finally:
        server.shutdown()
        server.server_close()
        runner.join(timeout=10)


def wait_until(check: Callable[[], Any], timeout_s: float = 10.0, every_s: float = 0.02
               ) -> Any:
    """Poll ``check`` until it returns something truthy; that value (or a failure)."""
    deadline = time.perf_counter() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.perf_counter() > deadline:
            pytest.fail(f"still not true after {timeout_s} s: {check.__doc__ or check}")
        time.sleep(every_s)
