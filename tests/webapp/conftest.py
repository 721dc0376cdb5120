"""A running platform (private RabbitMQ with TLS, gateway, API serving the built web app, projector) and
Debian's Chromium driven by Playwright, with axe-core loaded into every page and the console watched."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.ports import free_port
from tests.control.conftest import RunningPlatform
from tests.simulators.sim_helpers import SimProcess

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
# IOTCLOUD_WEBAPP_DOCS=1 writes the screenshots and Lighthouse scores into docs/; otherwise a temporary folder.
WRITE_DOCS = os.environ.get("IOTCLOUD_WEBAPP_DOCS") == "1"


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    assert (REPO / "webapp" / "dist" / "index.html").is_file(), "the web app is not built: run `make webapp`"
    assert AXE.is_file(), "tests/webapp's npm packages are missing: run `make tests/webapp/node_modules/.installed`"
    running = RunningPlatform(tmp_path_factory.mktemp("platform"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def base_url(platform) -> str:
    return f"http://127.0.0.1:{platform.ports['api']}"


class Browser:
    """One Chromium with a persistent profile (so Lighthouse, attached to its debugging port, shares the
    logged-in session) and the console errors of every page it opened."""

    def __init__(self, context, debugging_port: int):
        self.context, self.debugging_port = context, debugging_port
        self.errors: list[str] = []
        context.on("page", self._watch)

    def _watch(self, page) -> None:
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"{page.url}: {msg.text}"))
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))

    def page(self, base_url: str):
        """A new tab on a signed-out app: the profile (and so localStorage) is shared by every test."""
        page = self.context.new_page()
        page.goto(base_url + "/app/login")
        page.evaluate("localStorage.clear()")
        page.goto("about:blank")
        return page

    @contextlib.contextmanager
    def expected_http_errors(self):
        """Chromium logs every 4xx/5xx answer as a console error; a step that provokes one on purpose
        (a wrong code, a call to an offline device) drops those lines, and only those."""
        before = len(self.errors)
        yield
        self.errors[before:] = [e for e in self.errors[before:] if "Failed to load resource" not in e]


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright
    port = free_port()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=[*CHROMIUM_ARGS, f"--remote-debugging-port={port}"], accept_downloads=True,
            viewport={"width": 1280, "height": 900})
        yield Browser(context, port)
        context.close()


@pytest.fixture
def page(browser, base_url):
    """A signed-out tab, closed after the test whatever its outcome (an open tab keeps long-polling)."""
    tab = browser.page(base_url)
    yield tab
    tab.close()


def axe_violations(page) -> list[dict]:
    """Serious and critical axe-core violations of the page as it is now. axe is evaluated through
    devtools, which the page's CSP does not govern (and only here: Lighthouse's pages never load it)."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text() + "\n;0")
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
    }""")
    return [v for v in result if v["impact"] in ("serious", "critical")]


@pytest.fixture
def simulator():
    started = []

    def start(credentials: Path) -> SimProcess:
        sim = SimProcess([sys.executable, "-m", "simulators.mqtt_device", "--credentials", str(credentials)])
        started.append(sim)
        return sim
    yield start
    for sim in started:
        sim.stop()


def docs_dir(tmp_path_factory, name: str) -> Path:
    path = REPO / "docs" / name if WRITE_DOCS else tmp_path_factory.getbasetemp() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_in(page, base_url: str, user, password: str = "correct horse") -> None:
    page.goto(base_url + "/app/login")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your devices")).to_be_visible()
