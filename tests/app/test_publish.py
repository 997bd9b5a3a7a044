"""Publishing: the run lists show it at once, the history says who published what (and which version),
a change to the run's data shows at once and a stale scenario is solved again and published."""

from __future__ import annotations

import time

import psycopg
import publishing
import pytest

from allocator.store import input_fingerprint
from allocator.store.base import Scenario
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
    assert row["Total cost"] and row["Result"] == "proven best"
    # The settings in the Scenario page's words, not "voice 30% · hurt 1" (one row each).
    settings = table(at, "Setting", "Value").set_index("Setting")["Value"]
    assert settings["Supervisor voice"] == "30%" and settings["Stable"] == "no"
    assert settings["How much low choices hurt"] == "1" and settings["Result"] == "The best possible, proven."
    assert_fits(at, "pub_history_settings")
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


# --------------------------------------------------------------------------- stale scenarios (issue 7)


def change_run_data(url: str, run_id: str, sql: str) -> None:
    """Change the run's data behind the dashboard's back (as another planner or the CLI would)."""
    with psycopg.connect(url, autocommit=True) as conn:
        (ar,) = conn.execute("select allocation_run_id from allocator_py_runs where id = %s", (run_id,)).fetchone()
        conn.execute(sql, {"ar": ar})


MORE_PLACES = ("update job_lines set max_n_workers = max_n_workers + 1 where allocation_run_id = %(ar)s "
               "and id = (select min(id) from job_lines where allocation_run_id = %(ar)s)")


def wait_for_resolve(at, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while "pub_resolve" in at.session_state:
        assert time.monotonic() < deadline, "the new solve did not finish in time"
        time.sleep(0.2)
        at.run()
        assert not at.exception, at.exception


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_a_data_change_shows_at_once_and_solving_again_publishes_a_new_version(demo_run, app_db, db_store):
    at = open_app(demo_run, "scenario")
    solve_save_and_open_publish(at, "Before the change")
    assert at.button(key="pub_open")  # publishable as it stands
    assert not any("data has changed" in w for w in texts(at.warning))
    (old,) = [s for s in db_store.list_scenarios(demo_run) if s.name == "Before the change"]

    change_run_data(app_db, demo_run, MORE_PLACES)
    at.run()  # the next page run, well within the 30 s the reads are cached for

    assert any("data has changed since 'Before the change'" in w for w in texts(at.warning)), texts(at.warning)
    assert not [b for b in at.button if b.key == "pub_open"]  # no dialog that is bound to be refused
    again = at.button(key="pub_resolve_btn")
    assert not again.disabled
    at.text_area(key="pub_reason").input("One more place on the first line").run()
    at.button(key="pub_resolve_btn").click().run()
    wait_for_resolve(at)

    assert any("saved it as version 2" in s for s in texts(at.success)), (texts(at.success), texts(at.error))
    versions = db_store.scenario_versions(demo_run, "Before the change")
    assert [v.version for v in versions] == [2, 1] and versions[1].id == old.id
    assert versions[0].input_fingerprint == input_fingerprint(db_store.load_run(demo_run))
    assert versions[1].result == old.result  # the old version is kept as it was
    (entry,) = db_store.publication_log(demo_run)
    assert (entry.scenario_id, entry.reason) == (versions[0].id, "One more place on the first line")
    history = table(at, "Who", "Reason")
    assert (history.iloc[0]["Scenario"], history.iloc[0]["Version"]) == ("Before the change", 2)
    assert history.iloc[0]["What"] == "published"
    # Published now, and the same allocation: nothing more to publish, and no dialog.
    assert not [b for b in at.button if b.key in ("pub_open", "pub_resolve_btn")]
    assert any("already published" in i for i in texts(at.info))


def test_an_impossible_new_solve_publishes_nothing_and_says_why(demo_run, app_db, db_store):
    at = open_app(demo_run, "scenario")
    solve_save_and_open_publish(at, "Will not fit")
    change_run_data(app_db, demo_run, "update job_lines set max_n_workers = 0 where allocation_run_id = %(ar)s")
    at.run()
    at.button(key="pub_resolve_btn").click().run()
    wait_for_resolve(at)

    errors = texts(at.error)
    assert any("impossible" in e and "nothing was saved or published" in e for e in errors), errors
    assert [v.version for v in db_store.scenario_versions(demo_run, "Will not fit")] == [1]
    assert db_store.publication_log(demo_run) == []
    assert at.button(key="pub_reopen_btn")  # the way to see the diagnosis next to the edits


def test_a_scenario_without_an_allocation_offers_the_scenario_page_not_the_dialog(demo_run, db_store):
    fp = input_fingerprint(db_store.load_run(demo_run))
    db_store.save_scenario(demo_run, "Impossible one", {}, {}, {"status": "infeasible", "allocations": []}, fp)
    at = open_app(demo_run, "publish")
    pick_scenario(at, "Impossible one")
    assert not [b for b in at.button if b.key in ("pub_open", "pub_resolve_btn")]
    assert any("impossible as set up" in w for w in texts(at.warning))
    at.button(key="pub_open_scenario").click().run()
    assert not at.exception
    assert at.session_state["draft"].name == "Impossible one"


def test_replacing_asks_for_the_tick_and_the_reason_before_the_dialog(demo_run):
    at = open_app(demo_run, "scenario")
    solve_save_and_open_publish(at, "First")
    publish(at, "Approved")
    at.switch_page("../pages/scenario.py").run()
    at.slider(key="sc_alpha").set_value(100).run()
    solve_save_and_open_publish(at, "Second")
    pick_scenario(at, "Second")

    assert not [b for b in at.button if b.key == "pub_open"]
    assert any("tick 'Replace the published allocation'" in i for i in texts(at.info))
    at.checkbox(key="pub_supersede").check().run()
    assert not [b for b in at.button if b.key == "pub_open"]
    assert any("Give a reason" in i for i in texts(at.info))
    at.text_area(key="pub_reason").input("Supervisors' rankings first").run()
    at.button(key="pub_open").click().run()
    at.button(key="pub_confirm").click().run()
    assert any(s.startswith("Done: replaced") for s in texts(at.success)), texts(at.error)


def pick_scenario(at, name: str) -> None:
    box = at.selectbox(key="pub_scenario")
    (i,) = [i for i, o in enumerate(box.options) if o.startswith(name + " ·")]
    box.select_index(i).run()
    assert not at.exception, at.exception


# --------------------------------------------------------------------------- the refusals, as plain functions


def _scenario(status="optimal", fingerprint="now", allocations=(("w1", "j1"),), version=1, result=True) -> Scenario:
    from datetime import UTC, datetime

    res = {"status": status, "allocations": [{"worker_id": w, "job_line_id": j} for w, j in allocations]}
    return Scenario(id="s", run_id="r", name="Plan", settings={}, overrides={}, result=res if result else None,
                    input_fingerprint=fingerprint, created_by=None, created_at=datetime.now(UTC), version=version)


@pytest.mark.parametrize(
    ("scenario", "published", "supersede", "reason", "kinds"),
    [
        (_scenario(), False, False, "", []),
        (_scenario(fingerprint="before"), False, False, "", ["stale"]),
        (_scenario(result=False), False, False, "", ["no_result"]),
        (_scenario(status="infeasible", allocations=()), False, False, "", ["impossible"]),
        (_scenario(status="no_solution", allocations=()), True, True, "x", ["impossible"]),
        (_scenario(allocations=()), False, False, "", ["no_allocations"]),
        (_scenario(), True, False, "", ["needs_replace"]),
        (_scenario(), True, True, "  ", ["needs_reason"]),
        (_scenario(), True, True, "why", []),
        (_scenario(allocations=(("w1", "j9"),)), True, True, "why", ["same_as_published"]),
        (_scenario(fingerprint="before"), True, False, "", ["stale", "needs_replace"]),
        (_scenario(fingerprint="before", allocations=(("w1", "j9"),)), True, True, "why", ["stale"]),
    ],
)
def test_publish_blockers(scenario, published, supersede, reason, kinds):
    blockers = publishing.publish_blockers(
        scenario, current_fingerprint="now", run_published=published,
        published_allocations=[{"worker_id": "w1", "job_line_id": "j9"}] if published else None,
        supersede=supersede, reason=reason)
    assert [b.kind for b in blockers] == kinds
    assert publishing.resolve_ready(blockers) == (kinds == ["stale"])
    assert all("Plan" in b.message or b.kind.startswith("needs") for b in blockers)


def test_a_later_version_is_named_with_its_number():
    assert publishing.scenario_title(_scenario(version=3)) == "Plan (version 3)"
    (b,) = publishing.publish_blockers(_scenario(version=3, fingerprint="old"), current_fingerprint="now",
                                       run_published=False, published_allocations=None, supersede=False, reason="")
    assert "'Plan (version 3)'" in b.message


def test_a_long_new_solve_shows_its_progress_and_stop_publishes_nothing(demo_run, app_db, db_store, monkeypatch):
    import threading

    import state

    at = open_app(demo_run, "scenario")
    solve_save_and_open_publish(at, "Long one")
    # Hold the shared solver thread's next solve until it is stopped, as a long solve would run.
    runner = state.job_runner()
    real = runner._solve
    started = threading.Event()

    def long_solve(snapshot, options):
        started.set()
        while not options.stop.wait(0.05):
            pass
        return real(snapshot, options)

    monkeypatch.setattr(runner, "_solve", long_solve)
    change_run_data(app_db, demo_run, MORE_PLACES)
    at.run()
    at.button(key="pub_resolve_btn").click().run()
    assert not at.exception, at.exception
    assert started.wait(10)
    at.run()

    labels = [s.label for s in at.status]
    assert any(lbl.startswith("Solving 'Long one' again with the current data") for lbl in labels), labels
    assert not [b for b in at.button if b.key in ("pub_open", "pub_resolve_btn")]  # no second start
    at.button(key="pub_resolve_stop").click().run()
    wait_for_resolve(at)

    assert any("nothing was saved or published" in e for e in texts(at.error)), texts(at.error)
    assert [v.version for v in db_store.scenario_versions(demo_run, "Long one")] == [1]
    assert db_store.publication_log(demo_run) == []
    assert at.button(key="pub_resolve_btn")  # it may be started again


def test_results_say_at_once_that_the_solve_is_of_older_data(demo_run, app_db):
    at = open_app(demo_run, "scenario")
    solve_now(at)
    at.switch_page("../pages/results.py").run()
    assert not any("data has changed" in w for w in texts(at.warning))
    change_run_data(app_db, demo_run, MORE_PLACES)
    at.run()
    assert any("data has changed since this scenario was solved" in w for w in texts(at.warning)), texts(at.warning)


def test_publish_lists_what_the_scenario_changes_lifted_run_pins_included(demo_run, db_store):
    from allocator.engine import solve
    from allocator.scenario import apply

    run = db_store.load_run(demo_run)
    pin = run.pins[0]
    line = run.job_lines[0]
    over = {"lifted_pins": [pin.model_dump()],
            "lines": [{"job_line_id": line.id, "max_n_workers": line.max_n_workers + 1}]}
    settings = {"preferencer_weight": 0.5}
    result = solve(apply(run, settings, over)).to_dict()
    db_store.save_scenario(demo_run, "Lifted", settings, over, result, input_fingerprint(run))
    at = open_app(demo_run, "publish")
    at.selectbox(key="pub_scenario").run()
    assert not at.exception, at.exception
    (changes,) = [df.value for df in at.dataframe if "Change" in df.value.columns]
    rows = changes.set_index("Change")["This scenario"].to_dict()
    names = {w.id: w.name for w in run.workers} | {j.id: j.name for j in run.job_lines}
    assert rows[f"The run's pin of {names[pin.worker_id]} to {names[pin.job_line_id]}"] == "lifted"
    assert rows[f"Places on {line.name}"] == str(line.max_n_workers + 1)
    assert rows["Supervisor voice"] == "50%"
    assert len(rows) == 3
    assert any(c.value.startswith("3 changes from the run's own settings") for c in at.caption)


def test_publish_does_not_list_the_runs_own_couples_and_quotas_as_changes(demo_run, db_store):
    """A scenario's couples table holds the run's couples too; only the one added is a change."""
    from allocator.engine import solve
    from allocator.scenario import apply

    run = db_store.load_run(demo_run)
    linked = {w for k in run.linked_workers for w in k.worker_ids}
    a, b = [w.id for w in run.workers if w.id not in linked][:2]
    over = {"linked_workers": [*({"id": k.id, "worker_ids": list(k.worker_ids)} for k in run.linked_workers),
                               {"id": "new-pair", "worker_ids": [a, b]}],
            "quotas": [q.model_dump() for q in run.quotas]}
    result = solve(apply(run, {}, over)).to_dict()
    db_store.save_scenario(demo_run, "One more couple", {}, over, result, input_fingerprint(run))
    at = open_app(demo_run, "publish")
    at.selectbox(key="pub_scenario").run()
    assert not at.exception, at.exception
    (changes,) = [df.value for df in at.dataframe if "Change" in df.value.columns]
    names = {w.id: w.name for w in run.workers}
    assert changes.set_index("Change")["This scenario"].to_dict() == {
        "Link new-pair": f"{names[a]}, {names[b]}", "Linked workers": f"{len(run.linked_workers) + 1} links"}
    assert any(c.value.startswith("2 changes from the run's own settings") for c in at.caption)


def test_a_publication_s_settings_and_an_unproven_result_read_in_planners_words():
    import publishing

    settings = {"preferencer_weight": 0.5, "preference_power": 2.0, "stability": True, "max_seconds": 5.0,
                "rng_seed": 1234, "allow_worker_preference_ties": True, "fewest_moves": False}
    words = publishing.settings_words(settings)
    assert words == [("Supervisor voice", "50%"), ("How much low choices hurt", "2"), ("Stable", "yes"),
                     ("Fewest moves from the previous allocation", "no"), ("Time limit (seconds)", "5"),
                     ("Tie-break seed", "1234"), ("Allow tied worker ranks", "yes")]
    shown = " ".join(f"{k} {v}" for k, v in words)
    for code in ("preferencer", "max_seconds", "stability", "rng", "power"):
        assert code not in shown
    unproven = {"status": "feasible", "objective": 164_384.44, "best_bound": 162_700.0, "metrics": {}}
    assert publishing.result_words(unproven) == (
        "Not proven the best possible: at most 1.0 % above the best possible.")
    assert publishing.result_words({"status": "optimal", "objective": 1.0, "best_bound": 1.0}) == (
        "The best possible, proven.")
    no_bound = {"status": "feasible", "objective": 5.0, "best_bound": None}
    assert publishing.result_words(no_bound) == (
        "Not proven the best possible: how far from the best possible is not known.")


def test_the_reason_typed_on_publish_outlives_a_look_at_other_pages_and_goes_once_published(demo_run):
    # Walked in the browser: a reason typed on Publish was gone after a look at Compare.
    at = open_app(demo_run, "scenario")
    solve_save_and_open_publish(at, "Keep my reason")
    at.text_area(key="pub_reason").input("Approved by the DMS on 3 March").run()
    for page in ("compare", "results", "eligibility", "runs"):
        at.switch_page(f"../pages/{page}.py").run()
        assert not at.exception, at.exception
    at.switch_page("../pages/publish.py").run()
    assert not at.exception, at.exception
    assert at.text_area(key="pub_reason").value == "Approved by the DMS on 3 March"
    at.button(key="pub_open").click().run()
    at.button(key="pub_confirm").click().run()
    assert any(s.value.startswith("Done: published") for s in at.success), [e.value for e in at.error]
    # Published: the box starts empty again, and stays empty after another page.
    at.switch_page("../pages/results.py").run()
    at.switch_page("../pages/publish.py").run()
    assert not at.exception, at.exception
    assert at.text_area(key="pub_reason").value == ""
