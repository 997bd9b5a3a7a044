"""A 1,500 × 300 run in a real headless Chromium: uploaded on the Runs page, then every page.

``test_every_page_of_a_1500_by_300_run_opens_without_an_error``: a dashboard of its own (so
the other end-to-end tests keep the demo run as their only run) imports a generated
1,500-worker, 300-line snapshot through the Runs page's upload, as a planner would; every page
then opens on it with its heading, no Streamlit exception box and no traceback in the server
log. A screenshot of each page goes to ``test-output/screenshots/big-*.png``.

Its dashboard, just started, is first visited to see that its first page says the database is
starting (``smoke-0-starting.png``), then goes once the database answers: one dashboard and
one embedded PostgreSQL start for both checks.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.dashboard_harness import (
    FIRST_LOAD,
    OUTPUT,
    charts_rendered,
    exceptions,
    full_page_screenshot,
    go_to,
    keyed,
    main_heading,
    open_dashboard,
    selectbox_value,
    sidebar_text,
    start_dashboard,
    wait_idle,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PAGES = ["Runs", "Scenario", "Results", "Eligibility", "Compare", "Publish"]
NAME = "E2E 1500 x 300"


def test_every_page_of_a_1500_by_300_run_opens_without_an_error(browser, tmp_path) -> None:
    from benchmarks.instances import generate_instance

    snapshot = tmp_path / "big-1500x300.json"
    snapshot.write_text(json.dumps(generate_instance(1500, 300, 11)))
    log = OUTPUT / "e2e-big-streamlit.log"
    dash = start_dashboard(log)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    try:
        dash.wait_healthy(timeout=60)
        page = context.new_page()
        js_errors: list[str] = []
        page.on("pageerror", lambda exc: js_errors.append(str(exc)))
        # The first visit: within moments, while PostgreSQL starts, the page says so.
        page.goto(dash.url)
        starting = page.locator('[data-testid="stMain"]').get_by_text("Starting the database…")
        starting.wait_for(timeout=15_000)
        full_page_screenshot(page, "smoke-0-starting")
        main_heading(page, "Runs").wait_for(timeout=FIRST_LOAD)
        wait_idle(page, timeout=FIRST_LOAD)
        expect(starting).to_have_count(0)  # gone once the database answers
        assert not exceptions(page), exceptions(page)
        open_dashboard(page, dash.url)

        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(snapshot))
        keyed(page, "runs_import").get_by_role("button").wait_for()
        box = page.get_by_label("Name for the new run (optional)", exact=True)
        box.fill(NAME)
        box.press("Enter")
        wait_idle(page)
        keyed(page, "runs_import").get_by_role("button").click()
        page.locator('[data-testid="stSidebarUserContent"]').get_by_text("1500 workers · 300 job lines").wait_for(
            timeout=FIRST_LOAD)
        wait_idle(page, timeout=FIRST_LOAD)
        assert NAME in selectbox_value(page, "sidebar_run")

        for i, title in enumerate(PAGES, start=1):
            go_to(page, title)
            main_heading(page, title).wait_for(timeout=FIRST_LOAD)
            wait_idle(page, timeout=FIRST_LOAD)
            charts_rendered(page, timeout=60_000)
            boxes = exceptions(page)
            full_page_screenshot(page, f"big-{i}-{title.lower()}")
            assert not boxes, f"{title} on a 1,500 × 300 run shows an exception:\n" + "\n---\n".join(boxes)
            assert "1500 workers · 300 job lines" in sidebar_text(page), f"{title}: not on the big run"
        assert not js_errors, js_errors
    finally:
        context.close()
        dash.stop()
    server_log = log.read_text(errors="replace")
    assert not re.search(r"Traceback|Serialization of dataframe to Arrow table was unsuccessful", server_log), (
        server_log[-3000:])
    assert not dash.leftovers(), "processes of the big-run dashboard left running"
