"""Fixtures for the end-to-end tests: one dashboard server per session, one headless Chromium.

The server is ``streamlit run app/streamlit_app.py`` on a free port with a fresh embedded
database (the demo run is loaded on first use); it is stopped, with its PostgreSQL, at the
end of the session, and the session fails its teardown if a process of it is left behind.
Its log is kept in ``test-output/e2e-streamlit.log``; screenshots go to
``test-output/screenshots/``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from tests.e2e.dashboard_harness import (
    CHROMIUM,
    OUTPUT,
    SCREENSHOTS,
    Dashboard,
    full_page_screenshot,
    launch_browser,
    start_dashboard,
)

VIEWPORT = {"width": 1400, "height": 900}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason=f"{CHROMIUM} is missing: install Debian's chromium package (scripts/test.sh does as root)"
    )
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def dashboard() -> Iterator[Dashboard]:
    # Screenshots of an earlier session must not be taken for this one's.
    for old in ("smoke-*.png", "flow-*.png", "FAILED-*.png"):
        for f in SCREENSHOTS.glob(old):
            f.unlink()
    dash = start_dashboard(OUTPUT / "e2e-streamlit.log")
    try:
        dash.wait_healthy(timeout=60)
        yield dash
    finally:
        dash.stop()
        for note in dash.notes:
            warnings.warn(f"dashboard shutdown: {note}", stacklevel=1)
        left = dash.leftovers()
        if left:
            pytest.fail(f"processes of the dashboard left running after stop: {left}")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_browser(p)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def page(request: pytest.FixtureRequest, browser, dashboard: Dashboard) -> Iterator[object]:
    """A fresh browser context (so a fresh Streamlit session) on the dashboard.

    Uncaught JavaScript errors are collected in ``page.js_errors`` for the test to check.
    When the test fails, the page as it was is saved as ``screenshots/FAILED-<test>.png``.
    """
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    pg = context.new_page()
    pg.js_errors = []
    pg.on("pageerror", lambda exc: pg.js_errors.append(str(exc)))
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            try:
                full_page_screenshot(pg, f"FAILED-{request.node.name}")
            except Exception as exc:  # noqa: BLE001 - a missing screenshot must not hide the failure
                print(f"could not save the failure screenshot: {exc}")
        context.close()
