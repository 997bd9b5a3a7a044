"""Choices made on Results, Eligibility and Compare outlive a look at another page.

Walked in the browser: a worker and a line chosen under "Try a move by hand", the lines filtered
on Results, the worker and line looked at on Eligibility and the scenarios picked on Compare
were all back at their defaults after a visit to another page (Streamlit drops the state of a
widget on any run of a page that does not draw it).
"""

from __future__ import annotations

from tests.app.conftest import open_app, solve_now


def go(at, page: str) -> None:
    at.switch_page(f"../pages/{page}.py").run()
    assert not at.exception, at.exception


def test_choices_on_results_eligibility_and_compare_outlive_other_pages(demo_run):
    at = open_app(demo_run, "scenario")
    at.text_input(key="sc_name").input("Voice 30").run()
    solve_now(at)
    at.button(key="sc_save").click().run()
    at.text_input(key="sc_name").input("Voice 60").run()
    at.slider(key="sc_alpha").set_value(60).run()
    solve_now(at)

    go(at, "results")
    workers = at.selectbox(key="res_ov_worker").options
    lines = at.selectbox(key="res_ov_line").options
    at.selectbox(key="res_ov_worker").set_value(at.session_state["result"].result["allocations"][3]["worker_id"])
    at.selectbox(key="res_ov_line").set_value(at.session_state["result"].result["allocations"][7]["job_line_id"])
    one_line = at.multiselect(key="res_lines").options[2]
    at.multiselect(key="res_lines").select(one_line)
    at.checkbox(key="res_unranked").check()
    at.run()
    assert not at.exception and workers and lines
    chosen = (at.selectbox(key="res_ov_worker").value, at.selectbox(key="res_ov_line").value)

    go(at, "eligibility")
    at.selectbox(key="el_worker").set_value(5)
    at.selectbox(key="el_line").set_value(3)
    at.toggle(key="el_use_scenario").set_value(False)
    at.run()
    assert not at.exception

    go(at, "compare")
    picks = at.multiselect(key="cmp_pick").value
    assert len(picks) == 2
    at.multiselect(key="cmp_pick").set_value(picks[::-1]).run()
    assert not at.exception

    go(at, "runs")
    go(at, "results")
    assert (at.selectbox(key="res_ov_worker").value, at.selectbox(key="res_ov_line").value) == chosen
    assert at.multiselect(key="res_lines").value == [one_line] and at.checkbox(key="res_unranked").value
    go(at, "eligibility")
    assert (at.selectbox(key="el_worker").value, at.selectbox(key="el_line").value) == (5, 3)
    assert at.toggle(key="el_use_scenario").value is False
    go(at, "compare")
    assert at.multiselect(key="cmp_pick").value == picks[::-1]
    assert not at.warning or all("default value" not in w.value for w in at.warning)


def test_switching_the_run_shows_each_runs_own_choices_never_the_other_runs(import_run):
    # Two runs of the same intake have the same workers and lines: the worker looked at on
    # Eligibility in one run (a row number) stayed chosen, and shown, in the other run.
    first, second = import_run(), import_run()
    at = open_app(first, "eligibility")
    at.selectbox(key="el_worker").set_value(5)
    at.selectbox(key="el_line").set_value(3)
    at.text_input(key="el_search").input("paed")
    at.toggle(key="el_use_scenario").set_value(False)
    at.run()
    assert not at.exception

    at.sidebar.selectbox(key="sidebar_run").select(second).run()
    assert not at.exception and at.session_state["run_id"] == second
    assert (at.selectbox(key="el_worker").value, at.selectbox(key="el_line").value) == (0, 0)
    assert at.text_input(key="el_search").value == "" and at.toggle(key="el_use_scenario").value is True
    at.selectbox(key="el_worker").set_value(2).run()

    at.sidebar.selectbox(key="sidebar_run").select(first).run()
    assert not at.exception
    assert (at.selectbox(key="el_worker").value, at.selectbox(key="el_line").value) == (5, 3)
    assert at.text_input(key="el_search").value == "paed" and at.toggle(key="el_use_scenario").value is False
    at.sidebar.selectbox(key="sidebar_run").select(second).run()
    assert at.selectbox(key="el_worker").value == 2
    # Set from code before drawn, with no default= of their own: no warning about a default set twice.
    assert not at.warning or all("default value" not in w.value for w in at.warning)


def test_the_worker_kept_on_eligibility_is_the_same_worker_after_one_before_them_is_withdrawn(demo_run, db_store):
    # The worker looked at was kept as a row number: after a worker listed before them was
    # withdrawn (on the Runs page, say), the page came back showing the next worker instead.
    run = db_store.load_run(demo_run)
    at = open_app(demo_run, "eligibility")
    at.selectbox(key="el_worker").set_value(5)
    at.selectbox(key="el_line").set_value(3)
    at.run()
    looked_at = at.selectbox(key="el_worker").format_func(5)
    go(at, "runs")
    gone = next(w for w in sorted(run.workers, key=lambda w: w.id)[:5] if all(p.worker_id != w.id for p in run.pins))
    assert gone.name not in looked_at
    db_store.withdraw_worker(demo_run, gone.id, reason="left the programme", changed_by="test")
    import state
    state.clear_reads()
    go(at, "eligibility")
    assert at.selectbox(key="el_worker").format_func(at.selectbox(key="el_worker").value) == looked_at
    assert at.selectbox(key="el_line").value == 3


def test_the_worker_looked_at_on_eligibility_stays_the_same_worker_when_the_run_changes_meanwhile(demo_run, db_store):
    # On the page all along: a worker before them withdrawn (by another planner) moved the
    # rows up, and the page, rerun, showed the next worker under the same row number.
    run = db_store.load_run(demo_run)
    at = open_app(demo_run, "eligibility")
    at.selectbox(key="el_worker").set_value(5).run()
    looked_at = at.selectbox(key="el_worker").format_func(5)
    gone = next(w for w in sorted(run.workers, key=lambda w: w.id)[:5] if all(p.worker_id != w.id for p in run.pins))
    db_store.withdraw_worker(demo_run, gone.id, reason="left the programme", changed_by="test")
    import state
    state.clear_reads()
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="el_worker").format_func(at.selectbox(key="el_worker").value) == looked_at
