"""The planner's main flow in AppTest: solve, change the supervisor voice, compare, publish."""

from __future__ import annotations

import psycopg

from tests.app.conftest import open_app, solve_now


def table(at, *columns: str):
    """The one dataframe on the page that has all these columns (read-only tables carry no key)."""
    found = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    assert len(found) == 1, f"{len(found)} tables with columns {columns}"
    return found[0]


def pick(at, key: str, label_start: str) -> None:
    """Choose the option of selectbox ``key`` whose label starts with ``label_start``."""
    box = at.selectbox(key=key)
    (i,) = [i for i, o in enumerate(box.options) if o.startswith(label_start)]
    box.select_index(i).run()


def metric(at, label: str):
    found = [m for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}: {[m.label for m in at.metric]}"
    return found[0]


def test_change_alpha_solve_and_see_the_metrics_change(demo_run):
    at = open_app(demo_run, "scenario")
    assert at.slider(key="sc_alpha").value == 30  # the run's own 0.3
    first = solve_now(at)
    assert first["result"]["status"] == "optimal"
    assert first["settings"]["preferencer_weight"] == 0.3

    at.switch_page("../pages/results.py").run()
    assert not at.exception
    before = {label: metric(at, label).value for label in ("Got first choice", "Mean rank", "Worst rank")}
    assert not metric(at, "Mean rank").delta  # nothing to compare with yet

    at.switch_page("../pages/scenario.py").run()
    at.slider(key="sc_alpha").set_value(100).run()
    second = solve_now(at)
    assert second["settings"]["preferencer_weight"] == 1.0
    assert second["result"]["objective"] != first["result"]["objective"]

    at.switch_page("../pages/results.py").run()
    assert not at.exception
    after = {label: metric(at, label).value for label in ("Got first choice", "Mean rank", "Worst rank")}
    assert after != before
    # Supervisors alone decide: workers' mean rank cannot improve on the worker-friendlier mix.
    assert float(after["Mean rank"]) > float(before["Mean rank"])
    d = metric(at, "Mean rank").delta
    assert d and d.startswith("+")  # shown against the previous solve
    assert at.selectbox(key="res_baseline").value.startswith("Previous solve")
    # The allocation table has one row per worker, and the search narrows it.
    assert len(table(at, "Worker id", "Job line", "Choice")) == 140
    at.text_input(key="res_search").input("w001").run()
    assert list(table(at, "Worker id", "Job line", "Choice")["Worker id"]) == ["w001"]


def test_save_two_scenarios_and_compare(demo_run):
    at = open_app(demo_run, "scenario")
    at.text_input(key="sc_name").input("Workers first").run()
    at.slider(key="sc_alpha").set_value(0).run()
    solve_now(at)
    at.button(key="sc_save").click().run()
    assert not at.exception
    assert any("Saved scenario 'Workers first'" in t.value for t in at.toast)

    at.text_input(key="sc_name").input("Supervisors first").run()
    at.slider(key="sc_alpha").set_value(90).run()
    solve_now(at)
    at.button(key="sc_save").click().run()
    assert any("Saved scenario 'Supervisors first'" in t.value for t in at.toast)

    # Saving under a name already used is refused with what to do.
    at.button(key="sc_save").click().run()
    assert not any("already saved" in e.value for e in at.error)  # same result: nothing to do
    at.slider(key="sc_alpha").set_value(50).run()
    at.button(key="sc_save").click().run()
    assert any("already saved for this run" in e.value for e in at.error)

    at.switch_page("../pages/compare.py").run()
    assert not at.exception
    assert at.multiselect(key="cmp_pick").value == ["Workers first", "Supervisors first"]
    diff = table(at, "Change")
    assert list(diff["Change"]) == ["Supervisor voice"]
    assert list(diff.iloc[0][["Workers first", "Supervisors first"]]) == ["0%", "90%"]
    kpis = table(at, "Supervisors first: change")
    assert {"Workers first", "Supervisors first", "Supervisors first: change"} <= set(kpis.columns)
    moved = int(metric(at, "Workers who moved").value)
    assert moved > 0
    assert len(table(at, "Rank change")) == moved


def test_publish_then_refused_as_stale_after_a_preference_changes(demo_run, app_db):
    at = open_app(demo_run, "scenario")
    at.text_input(key="sc_name").input("To publish").run()
    solve_now(at)
    at.button(key="sc_save").click().run()
    at.text_input(key="sc_name").input("Second opinion").run()
    at.slider(key="sc_alpha").set_value(60).run()
    solve_now(at)
    at.button(key="sc_save").click().run()

    at.switch_page("../pages/publish.py").run()
    assert not at.exception
    assert len(at.selectbox(key="pub_scenario").options) == 2
    pick(at, "pub_scenario", "To publish")
    at.text_area(key="pub_reason").input("Approved by the DMS").run()
    at.button(key="pub_open").click().run()
    assert not at.exception
    at.button(key="pub_confirm").click().run()
    assert not at.exception
    assert any(s.value.startswith("Done: published 'To publish' (140 allocations)") for s in at.success)
    history = table(at, "What", "Reason")
    assert list(history["What"]) == ["published"] and list(history["Reason"]) == ["Approved by the DMS"]
    assert list(history["Scenario"]) == ["To publish"] and list(history["Version"]) == [1]

    # Publishing the same allocation again would be refused: no dialog, and the page says why.
    assert not [b for b in at.button if b.key == "pub_open"]
    assert any("already published" in i.value for i in at.info)

    # A worker's preference changes in the database after the scenarios were solved.
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute(
            "update preference_worker_job_lines p set rank = rank + 10 from worker_mappings w "
            "where w.id = p.worker_id and w.external_id = 'w001' and p.allocation_run_id = "
            "(select allocation_run_id from allocator_py_runs where id = %s)",
            (demo_run,),
        )
    pick(at, "pub_scenario", "Second opinion")
    at.checkbox(key="pub_supersede").check().run()
    at.text_area(key="pub_reason").input("Second opinion preferred").run()
    assert not at.exception
    # Publishing it as it is would be refused: instead of the dialog, the way to solve it again.
    assert not [b for b in at.button if b.key == "pub_open"]
    assert any("data has changed since 'Second opinion'" in w.value for w in at.warning)
    assert not at.button(key="pub_resolve_btn").disabled
    history = table(at, "What", "Reason")
    assert len(history) == 1  # nothing was written
