"""A stale publish in a real browser: the run's data changes behind the dashboard's back, the
Publish page says so on its next run (not 30 s later), offers no confirmation that is bound to
be refused, and "Solve again with the current data and publish" publishes a new version.

Screenshots: ``test-output/screenshots/flow-stale-*.png``.
"""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest
from playwright.sync_api import expect

from tests.e2e.dashboard_harness import (
    EXCEPTION,
    click_solve,
    full_page_screenshot,
    grid_rows,
    keyed,
    open_dashboard,
    open_page,
    select_option,
    set_text,
    table_after,
    wait_idle,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def dashboard_database(dashboard) -> str:
    """The URI of the dashboard's own embedded database (attached to, never started or stopped)."""
    from allocator.db.embedded import DATABASE, start_server

    server = start_server(dashboard.data_dir, cleanup_mode=None)
    try:
        return server.get_uri(DATABASE)
    finally:
        # Let go of it at once (the server keeps running for the dashboard): a handle kept by
        # this process would make the dashboard's exit leave PostgreSQL running (the last
        # handle stops it), for the session's teardown to stop by force some 10 s later.
        server.cleanup()


def test_a_stale_publish_offers_to_solve_again_and_publishes_a_new_version(page, dashboard) -> None:
    from allocator.demo import demo_snapshot
    from allocator.store.postgres import PostgresStore

    open_dashboard(page, dashboard.url)  # the dashboard starts its database on the first page
    url = dashboard_database(dashboard)
    run_name = f"E2E stale {uuid.uuid4().hex[:6]}"
    with PostgresStore(url, max_size=1) as store:
        run_id = store.import_snapshot(demo_snapshot(), name=run_name)
    name, reason = "E2E before the change", "One more place on the first line"

    keyed(page, "runs_refresh").get_by_role("button").click()  # as a planner would, to see the new run
    wait_idle(page)
    open_page(page, "Eligibility")  # (the sidebar drawn with the Refresh still had the old list)
    select_option(page, "sidebar_run", run_name)
    open_page(page, "Scenario")
    set_text(page, "Scenario name", name)
    click_solve(page, name)
    wait_idle(page)
    keyed(page, "sc_save").get_by_role("button").click()
    page.locator('[data-testid="stToast"]').filter(has_text="Saved").first.wait_for(timeout=15_000)
    wait_idle(page)

    open_page(page, "Publish")
    expect(keyed(page, "pub_open")).to_have_count(1)
    full_page_screenshot(page, "flow-stale-1-publishable")

    # Another planner (or the command line) changes the run's data.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "update job_lines set max_n_workers = max_n_workers + 1 where id = "
            "(select min(j.id) from job_lines j join allocator_py_runs r on r.allocation_run_id = j.allocation_run_id "
            " where r.id = %s)", (run_id,))

    open_page(page, "Results")
    open_page(page, "Publish")  # the next page, seconds later: the banner is there at once
    main = page.locator('[data-testid="stMain"]')
    expect(main).to_contain_text(f"The run's data has changed since '{name}'")
    expect(keyed(page, "pub_open")).to_have_count(0)
    again = keyed(page, "pub_resolve_btn").get_by_role("button")
    expect(again).to_be_enabled()
    box = page.get_by_label("Reason", exact=True)
    box.fill(reason)
    box.press("Control+Enter")
    wait_idle(page)
    full_page_screenshot(page, "flow-stale-2-offers-solve-again")

    again.click()
    done = page.locator('[data-testid="stAlertContentSuccess"]', has_text="version 2")
    done.wait_for(timeout=60_000)
    wait_idle(page)
    assert name in done.inner_text()
    rows = [r for r in grid_rows(table_after(page, "Publication history")) if r.get("Reason") == reason]
    assert len(rows) == 1 and (rows[0].get("Scenario"), rows[0].get("Version")) == (name, "2"), rows
    assert page.locator(EXCEPTION).count() == 0
    expect(keyed(page, "sidebar_run").get_by_role("combobox")).to_have_value(
        re.compile(re.escape(run_name) + r".*· published"), timeout=5_000)
    full_page_screenshot(page, "flow-stale-3-published")
