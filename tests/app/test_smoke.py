"""Every page opens on the demo run without an exception, and says what it is."""

from __future__ import annotations

import pytest

from tests.app.conftest import new_app, open_app

PAGES = {
    "runs": "Runs",
    "scenario": "Scenario",
    "results": "Results",
    "eligibility": "Eligibility",
    "compare": "Compare scenarios",
    "publish": "Publish",
}


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_opens_on_the_demo_run(demo_run, page):
    at = open_app(demo_run, page)
    assert not at.exception
    assert [t.value for t in at.title] == [PAGES[page]]
    # The current run is shown in the sidebar on every page.
    assert at.sidebar.selectbox(key="sidebar_run").value == demo_run


def test_the_first_page_is_runs_with_the_run_list(demo_run):
    at = new_app().run()
    assert not at.exception
    assert at.title[0].value == "Runs"
    # The newest run is current until the planner picks another.
    assert at.sidebar.selectbox(key="sidebar_run").value == demo_run
    assert at.session_state["run_id"] == demo_run
    # The data-health panel of the demo run: the two workers who ranked nothing are named.
    assert any("Khanh Rossi ('w020'), Jack Bandara ('w072')" in w.value for w in at.warning)
