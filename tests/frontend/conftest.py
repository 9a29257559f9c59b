"""A real `spikeserve serve` and headless Chromium (Debian's, driven by Playwright)."""

import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from app.redis_server import free_port
from tests.app.conftest import SPIKESERVE, wait_ready

ROOT = pathlib.Path(__file__).parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
EXAMPLES = ROOT / "examples"
# the uPlot instance of a result plot, by the name its container carries (data-plot)
PLOT = "(name) => { const s = window.spikeserveViewer; return s.plots[s.containers.findIndex(c => c.dataset.plot === name)]; }"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip


# Module scope: the only module that uses them gives the browser back when it ends, so that no
# Playwright event loop is left running under other tests of the same pytest worker.
@pytest.fixture(scope="module")
def viewer_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("viewer")) as url:
        yield url


@contextlib.contextmanager
def serving(data_dir: pathlib.Path, **settings: str) -> Iterator[str]:
    """`spikeserve serve` with the built viewer, ``settings`` (SPIKESERVE_ variables) added."""
    if not (ROOT / "frontend" / "dist" / "index.html").exists():
        pytest.fail("the viewer is not built: run scripts/setup.sh (npm ci && npm run build in frontend/)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPIKESERVE_")}
    env |= {"SPIKESERVE_MAX_STEPS": "2000000", **settings}
    port = free_port()
    log = open(data_dir / "serve.log", "wb")  # noqa: SIM115  closed below, after the process
    process = subprocess.Popen(
        [str(SPIKESERVE), "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, [process])
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: scripts/setup.sh installs it with apt-get")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, viewer_url: str) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(viewer_url)
    page.wait_for_function("document.querySelector('#examples').options.length > 1")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def set_request(page, text: str) -> None:
    """Puts ``text`` in the request editor, as typing or pasting it would."""
    page.evaluate("(text) => window.spikeserveViewer.editor.setText(text)", text)


def request_text(page) -> str:
    return page.evaluate("window.spikeserveViewer.editor.getText()")


def submit_and_wait(page, timeout_ms: int = 180_000, until: str = "document.querySelector('[data-plot]') !== null") -> str:
    """Submits the editor's request and waits for its result to be drawn (not the previous job's),
    and for ``until`` (a JavaScript condition on the page, ``s`` the viewer's state) to hold. The
    default wait is long: the browser tests now start first, beside the suite's other long files,
    and a clean clone's run once waited over 60 s for a job that takes seconds quiet (the job
    succeeded and its result was fetched; a first job's kernel compiles under that load is the
    likely cause, not confirmed)."""
    previous = page.evaluate("window.spikeserveViewer.job")
    page.click("#submit")
    page.wait_for_function(
        "([previous]) => { const s = window.spikeserveViewer; return s.job !== previous && s.result !== null"
        f" && !document.querySelector('#result-panel').hidden && ({until}); }}",
        arg=[previous],
        timeout=timeout_ms,
        polling=100,
    )
    return page.evaluate("window.spikeserveViewer.job")


def api_result(viewer_url: str, job_id: str) -> dict:
    return httpx.get(f"{viewer_url}/api/v1/jobs/{job_id}/result", timeout=30).json()


def open_example(page, name: str) -> dict:
    """Runs an example in the page, waiting until every plot of its result is drawn (the first
    only was waited for once, and a test read the voltage plot before it existed); returns its
    result as the API's JSON."""
    page.select_option("#examples", name)
    job_id = submit_and_wait(page, until="s.renderedAt !== null")
    return api_result(page.url.split("#")[0].rstrip("/"), job_id)
