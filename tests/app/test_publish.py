"""Publishing: the run lists show it at once, and the history says who published what."""

from __future__ import annotations

from tests.app.conftest import open_app, solve_now
from tests.app.test_fit import assert_fits
from tests.app.test_flow import table


def solve_save_and_open_publish(at, name: str) -> None:
    at.text_input(key="sc_name").input(name).run()
    solve_now(at)
    at.button(key="sc_save").click().run()
    at.switch_page("../pages/publish.py").run()
    assert not at.exception


def publish(at, reason: str) -> None:
    at.text_area(key="pub_reason").input(reason).run()
    at.button(key="pub_open").click().run()
    at.button(key="pub_confirm").click().run()
    assert not at.exception
    assert any(s.value.startswith("Done: published") for s in at.success), [e.value for e in at.error]


def test_the_sidebar_shows_the_run_published_at_once(demo_run):
    at = open_app(demo_run, "scenario")
    solve_save_and_open_publish(at, "Publish me")
    box = at.sidebar.selectbox(key="sidebar_run")
    assert box.value == demo_run and not box.options[box.index].endswith("· published")
    publish(at, "Approved")

    box = at.sidebar.selectbox(key="sidebar_run")
    assert box.value == demo_run
    label = box.options[box.index]
    assert label.startswith("Dashboard test") and label.endswith("· published")
    # The browser keeps the label it was last sent for the chosen run: it must be sent again.
    assert box.proto.set_value and box.proto.raw_value == label
    assert any(c.value.endswith("· published") for c in at.sidebar.caption)
    # The next page shows it too, without a Refresh.
    at.switch_page("../pages/runs.py").run()
    runs = table(at, "Run", "Published")
    assert runs.loc[runs["Current"], "Published"].tolist() == [True]


def test_the_history_names_the_planner_and_counts_the_allocations(demo_run, db_store, monkeypatch):
    monkeypatch.setenv("ALLOCATOR_PLANNER_NAME", "Dr Jane Planner")
    at = open_app(demo_run, "scenario")
    solve_save_and_open_publish(at, "Named planner")
    publish(at, "Signed off")
    history = table(at, "Who", "Reason")
    row = history.iloc[0]
    assert row["Who"] == "Dr Jane Planner"  # a person, not the database role
    assert row["Workers"] == 140 and row["Reason"] == "Signed off"
    assert row["Total cost"] and row["Settings"].startswith("voice 30%")
    (saved,) = [s for s in db_store.list_scenarios(demo_run) if s.name == "Named planner"]
    assert saved.created_by == "Dr Jane Planner"
    # Who went where: the publication's own allocation, one row per worker.
    placed = table(at, "Worker", "Worker id", "Job line", "Rank given")
    assert len(placed) == 140 and placed["Job line"].str.startswith("Line ").all()
    assert_fits(at, "pub_history")  # no clipped column


def test_without_a_given_name_the_operating_system_user_is_the_planner(demo_run, monkeypatch):
    import getpass

    import state

    monkeypatch.delenv("ALLOCATOR_PLANNER_NAME", raising=False)
    assert state.planner_name() == getpass.getuser()
    assert state.recorded_by() == getpass.getuser()
    monkeypatch.setenv("ALLOCATOR_PLANNER_NAME", "  ")
    assert state.planner_name() == getpass.getuser()  # blank is no name
    monkeypatch.setenv("ALLOCATOR_PLANNER_NAME", " R. Osei ")
    assert state.recorded_by() == "R. Osei"
