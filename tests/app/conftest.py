"""Fixtures for the dashboard tests: the app on the session's embedded PostgreSQL.

The dashboard reads ``ALLOCATOR_DATABASE_URL`` when it first builds its settings (a
``st.cache_resource`` shared by every AppTest in this process), so the variable is set once
for the session, before any app runs. Each test imports a demo run of its own, so tests that
save or publish never see one another's rows.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from allocator.demo import demo_snapshot
from allocator.store.postgres import PostgresStore

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app" / "streamlit_app.py"
# The dashboard's modules import each other by name, as `streamlit run` puts app/ on sys.path;
# the figure and export functions are tested directly through the same names.
if str(APP.parent) not in sys.path:
    sys.path.insert(0, str(APP.parent))
TIMEOUT = 30  # the first run opens the store and builds the demo's problem

_ENV = ("ALLOCATOR_DATABASE_URL", "SUPABASE_URL", "SUPABASE_KEY")


@pytest.fixture(scope="session")
def app_db(new_database) -> Iterator[str]:
    """A database of the dashboard tests' own, as the dashboard's ALLOCATOR_DATABASE_URL.

    Not the shared ``pg_url``: other tests add organisations there, and a dashboard import that
    names none is refused once a database has several.
    """
    pg_url = new_database(migrated=True, prefix="app")
    old = {k: os.environ.get(k) for k in _ENV}
    os.environ["ALLOCATOR_DATABASE_URL"] = pg_url
    os.environ.pop("SUPABASE_URL", None)
    os.environ.pop("SUPABASE_KEY", None)
    try:
        yield pg_url
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def store_env(app_db) -> Iterator[os._Environ]:
    """``os.environ`` for one test that changes the store's settings: they are read again from
    it (the settings are a cached resource), and put back, and read again, after the test."""
    saved = {k: os.environ.get(k) for k in _ENV}
    st.cache_resource.clear()
    try:
        yield os.environ
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        st.cache_resource.clear()


@pytest.fixture(scope="session")
def db_store(app_db: str) -> Iterator[PostgresStore]:
    s = PostgresStore(app_db, max_size=2)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def import_run(db_store: PostgresStore) -> Callable[..., str]:
    """``import_run(snapshot=None, name=None)``: a new run (the demo by default); its id."""

    def make(snapshot: dict | None = None, name: str | None = None) -> str:
        snap = snapshot if snapshot is not None else demo_snapshot()
        return db_store.import_snapshot(snap, name=name or f"Dashboard test {uuid.uuid4().hex[:6]}")

    return make


@pytest.fixture
def demo_run(import_run: Callable[..., str]) -> str:
    return import_run()


def new_app() -> AppTest:
    # Database reads are cached for 30 s across sessions; a test that imported a run a moment
    # ago must see it, as a planner would after pressing Refresh.
    st.cache_data.clear()
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT)


def open_app(run_id: str, page: str | None = None) -> AppTest:
    """The app with ``run_id`` chosen in the sidebar, on ``page`` (e.g. "scenario")."""
    at = new_app().run()
    assert not at.exception, at.exception
    at.sidebar.selectbox(key="sidebar_run").select(run_id).run()
    assert at.session_state["run_id"] == run_id
    if page:
        at.switch_page(f"../pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def solve_now(at: AppTest, timeout: float = 60.0) -> dict:
    """Press Solve on the Scenario page and rerun until the result arrives; return it."""
    import time

    before = at.session_state["result"] if "result" in at.session_state else None
    at.button(key="sc_solve").click().run()
    assert not at.exception, at.exception
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "job" not in at.session_state:
            if "job_error" in at.session_state:
                raise AssertionError(f"the solve failed: {at.session_state['job_error']}")
            if "result" in at.session_state and at.session_state["result"] is not before:
                return at.session_state["result"]
        time.sleep(0.1)
        at.run()
        assert not at.exception, at.exception
    raise AssertionError("the solve did not finish in time")
