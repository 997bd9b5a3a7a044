"""Behaviour of single pages: import, validation of changes, infeasible runs, eligibility, stop."""

from __future__ import annotations

import io
import json
import time

import openpyxl

from allocator.demo import NO_RULES, demo_snapshot
from allocator.workbook import snapshot_to_xlsx
from tests.app.conftest import new_app, open_app, solve_now
from tests.app.test_flow import metric, table
from tests.helpers.named_runs import L, W, prefs, snap

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def small_run(**extra):
    return snap(
        W("w1", "w2", "w3"),
        L(("j1", 2), ("j2", 1)),
        worker_preferences=prefs(w1={"j1": 1, "j2": 2}, w2={"j2": 1}, w3={"j1": 1}),
        **extra,
    )


def workbook_bytes(snapshot) -> bytes:
    buf = io.BytesIO()
    snapshot_to_xlsx(snapshot, buf)
    return buf.getvalue()


# --------------------------------------------------------------------------- Runs: import


def test_a_bad_snapshot_upload_is_refused_naming_each_entry(demo_run):
    at = open_app(demo_run)
    n_runs = len(at.sidebar.selectbox(key="sidebar_run").options)
    bad = {
        "format": "allocator-run/1",
        "workers": [{"id": "w1"}],
        "job_lines": [{"id": "j1", "max_n_workers": 1}],
        "worker_preferences": [{"worker_id": "w9", "job_line_id": "j1", "rank": 0}],
    }
    at.file_uploader(key="runs_upload").upload("intake.json", json.dumps(bad).encode(), "application/json").run()
    at.button(key="runs_import").click().run()
    assert not at.exception
    (err,) = [e.value for e in at.error if "cannot be imported" in e.value]
    assert err.startswith("**intake.json cannot be imported.")
    assert "worker_preferences[0] (worker 'w9', job line 'j1'): rank" in err
    # Nothing was stored; the current run is unchanged.
    at.button(key="runs_refresh").click().run()
    assert len(at.sidebar.selectbox(key="sidebar_run").options) == n_runs
    assert at.session_state["run_id"] == demo_run


def test_a_workbook_with_a_bad_cell_is_refused_naming_sheet_and_row(demo_run):
    wb = openpyxl.load_workbook(io.BytesIO(workbook_bytes(small_run())))
    wb["job_lines"]["C3"] = "lots"  # j2's places
    buf = io.BytesIO()
    wb.save(buf)
    at = open_app(demo_run)
    at.file_uploader(key="runs_upload").upload("intake.xlsx", buf.getvalue(), XLSX).run()
    at.button(key="runs_import").click().run()
    assert not at.exception
    (err,) = [e.value for e in at.error if "cannot be imported" in e.value]
    assert "job_lines" in err and "row 3" in err and "lots" in err


def test_a_good_workbook_becomes_the_current_run(demo_run):
    at = open_app(demo_run)
    at.file_uploader(key="runs_upload").upload("small.xlsx", workbook_bytes(small_run()), XLSX).run()
    at.text_input(key="runs_import_name").input("Small intake").run()
    at.button(key="runs_import").click().run()
    assert not at.exception
    assert at.session_state["run_id"] != demo_run
    assert any("Imported small.xlsx as a new run with 3 workers" in t.value for t in at.toast)
    assert at.header[0].value == "Small intake"
    assert any("from small.xlsx" in c.value for c in at.caption)
    assert metric(at, "Workers").value == "3"


# --------------------------------------------------------------------------- Scenario: validation


def test_a_pin_on_an_ineligible_pair_is_named_and_blocks_solving(demo_run):
    at = open_app(demo_run, "scenario")
    # w001 lacks the tag 'rural-ready' that line j02 requires.
    at.session_state["sc_pins"] = {
        "edited_rows": {}, "added_rows": [{"Worker": "w001", "Job line": "j02"}], "deleted_rows": []}
    at.run()
    assert not at.exception
    (err,) = [e.value for e in at.error]
    assert "Fix these in this table before solving" in err  # under the Pins grid
    # Named as the tables show them (the engine's check gives the ids).
    assert ("Pins, row 1: worker 'Tariq Pham' (w001) cannot be pinned to job line "
            "'Line 2: Rural Gen Med / ED / Surgery (Orange)' (j02)") in err and "rural-ready" in err
    assert at.button(key="sc_solve").disabled
    assert at.button(key="sc_save").disabled


def test_changing_places_is_a_scenario_not_a_change_to_the_run(demo_run, db_store):
    at = open_app(demo_run, "scenario")
    # Close line j01 (row 0) in this scenario only.
    at.session_state["sc_lines"] = {"edited_rows": {0: {"Places": 0}}, "added_rows": [], "deleted_rows": []}
    at.run()
    assert not at.exception and not at.error
    res = solve_now(at)
    assert res["overrides"] == {"lines": [{"job_line_id": "j01", "max_n_workers": 0}]}
    fill = {r["job_line_id"]: r for r in res["result"]["metrics"]["line_fill"]}
    assert fill["j01"]["filled"] == 0 and fill["j01"]["capacity"] == 0
    assert not any(a["job_line_id"] == "j01" for a in res["result"]["allocations"])
    j01 = next(j for j in db_store.load_run(demo_run).job_lines if j.id == "j01")
    assert j01.max_n_workers == 4  # the run's own data is untouched


# --------------------------------------------------------------------------- Results: infeasible


def test_an_impossible_scenario_shows_the_diagnosis_in_words(demo_run):
    at = open_app(demo_run, "scenario")
    at.toggle(key="sc_stability").set_value(True).run()
    res = solve_now(at)
    assert res["result"]["status"] == "infeasible"
    at.switch_page("../pages/results.py").run()
    assert not at.exception
    assert any("No allocation can meet every rule" in e.value for e in at.error)
    text = " ".join(m.value for m in at.markdown)
    assert "No allocation is stable" in text and "pinned to" in text
    assert not [m for m in at.metric if m.label == "Mean rank"]  # no numbers for a non-allocation


# --------------------------------------------------------------------------- Eligibility


def test_eligibility_for_one_worker_and_one_line(demo_run):
    at = open_app(demo_run, "eligibility")
    at.selectbox(key="el_worker").select(0).run()  # w001, who lacks 'rural-ready'
    rows = table(at, "May take it", "Decided by")
    assert len(rows) == 60
    j02 = rows[rows["Job line"].str.startswith("Line 2:")].iloc[0]
    assert not j02["May take it"] and j02["Reason code"] == "MISSING_INCLUDED_TAG"
    assert "rural-ready" in j02["Why"]
    at.selectbox(key="el_line").select(1).run()  # j02
    pool = table(at, "Worker id", "Because")
    assert int(metric(at, "Workers who may take it").value) == len(pool) > 0
    assert "w001" not in set(pool["Worker id"])
    # A line some worker ranked but may not take: they are listed under it with their rank
    # (Aiko Thompson, w006, ranked j54 first; the run forbids it her).
    at.selectbox(key="el_line").select(53).run()  # j54
    assert not at.exception
    pool, refused = [d.value for d in at.dataframe if {"Worker id", "Because", "Rank they gave it"} <= set(d.value.columns)]
    row = refused[refused["Worker id"] == "w006"].iloc[0]
    assert row["Rank they gave it"] == 1 and "Forbidden" in row["Because"]
    assert "w006" not in set(pool["Worker id"])
    ranked = pool["Rank they gave it"].notna().tolist()
    assert ranked == sorted(ranked, reverse=True)  # who ranked the line comes first
    # Pick one reason: the heatmap keeps drawing, with that reason alone in its legend.
    at.multiselect(key="el_reasons").set_value(["MISSING_INCLUDED_TAG"]).run()
    assert not at.exception


# --------------------------------------------------------------------------- solving: stop


def _slow_stable_run(import_run) -> str:
    """A stable run not proven within a minute: there is time to stop it or queue behind it.
    Without the demo's business rules (these tests are about stopping and queueing, not links or
    tiers) and without pins (a stable allocation exists; CP-SAT improves on it for a long while)."""
    d = demo_snapshot(workers=300, lines=80, seed=7, profile=NO_RULES)
    d["pins"] = []
    d["settings"].update(stability=True, max_seconds=60)
    return import_run(d, name="Slow stable intake")


def test_stop_keeps_the_best_allocation_so_far(import_run):
    run_id = _slow_stable_run(import_run)
    at = open_app(run_id, "scenario")
    assert at.toggle(key="sc_stability").value is True
    at.button(key="sc_solve").click().run()
    assert not at.exception
    assert "job" in at.session_state
    job_id = at.session_state["job"]["id"]
    # Wait for the first allocation, then press Stop.
    import state  # the dashboard's module: the same job runner the page uses

    runner = state.job_runner()
    deadline = time.monotonic() + 45
    while runner.progress(job_id).objective is None and time.monotonic() < deadline:
        time.sleep(0.1)
    at.run()
    assert at.button(key="sc_stop")
    at.button(key="sc_stop").click().run()
    deadline = time.monotonic() + 20
    while "job" in at.session_state and time.monotonic() < deadline:
        time.sleep(0.2)
        at.run()
    assert "job" not in at.session_state
    res = at.session_state["result"]["result"]
    assert res["status"] == "feasible" and len(res["allocations"]) == 300
    assert any("Solve stopped" in t.value for t in at.toast)
    at.switch_page("../pages/results.py").run()
    assert any(i.value.startswith("Not proven: at most") for i in at.info)


def test_results_during_the_first_solve_say_it_is_solving_not_nothing_solved(import_run):
    # It said both "Solving 'X'… This page shows it when it is done." and "Nothing solved yet
    # for this run. Set up a scenario and press Solve".
    run_id = _slow_stable_run(import_run)
    at = open_app(run_id, "scenario")
    at.button(key="sc_solve").click().run()
    import state

    runner = state.job_runner()
    job_id = at.session_state["job"]["id"]
    try:
        at.switch_page("../pages/results.py").run()
        assert not at.exception, at.exception
        infos = [i.value for i in at.info]
        assert any(v.startswith("Solving '") or "waiting for the solver" in v for v in infos), infos
        assert not any("Nothing solved yet" in v for v in infos), infos
        assert not [x for x in at.page_link if x.proto.label == "Go to Scenario"]
    finally:
        runner.stop(job_id)
        runner.wait(job_id, timeout=30)


def test_results_without_a_solve_point_to_the_scenario_page(demo_run):
    at = new_app()
    at.session_state["run_id"] = demo_run
    at.run()
    at.switch_page("../pages/results.py").run()
    assert not at.exception
    assert any("Nothing solved yet" in i.value for i in at.info)


# --------------------------------------------------------------------------- sidebar: saved scenarios


def test_opening_a_saved_scenario_restores_its_settings_and_result(demo_run):
    at = open_app(demo_run, "scenario")
    at.text_input(key="sc_name").input("Workers only").run()
    at.slider(key="sc_alpha").set_value(0).run()
    saved = solve_now(at)
    at.button(key="sc_save").click().run()
    saved_id = at.session_state["result"]["saved_id"]
    at.text_input(key="sc_name").input("Supervisors only").run()
    at.slider(key="sc_alpha").set_value(100).run()
    solve_now(at)
    assert at.session_state["result"]["name"] == "Supervisors only"

    box = at.sidebar.selectbox(key="sidebar_scenario")
    assert any(o.startswith("Workers only · best possible") for o in box.options)
    box.select(saved_id).run()
    assert not at.exception
    # "Supervisors only" is not saved: opening another scenario asks first.
    assert any("unsaved changes to 'Supervisors only' will be lost" in w.value for w in at.sidebar.warning)
    assert at.slider(key="sc_alpha").value == 100
    at.sidebar.button(key="sidebar_open_confirm").click().run()
    assert at.slider(key="sc_alpha").value == 0
    assert at.text_input(key="sc_name").value == "Workers only"
    res = at.session_state["result"]
    assert res["name"] == "Workers only" and res["saved_id"]
    assert res["result"]["allocations"] == saved["result"]["allocations"]
    assert "Workers only" in " ".join(m.value for m in at.sidebar.markdown)
    at.switch_page("../pages/results.py").run()
    # The solve before it is the baseline of the changes shown.
    assert at.selectbox(key="res_baseline").value == "Previous solve: Supervisors only"


# --------------------------------------------------------------------------- two planners at once


def test_a_second_planners_solve_queues_and_their_page_stays_responsive(import_run, demo_run):
    slow = _slow_stable_run(import_run)
    first = open_app(slow, "scenario")
    first.button(key="sc_solve").click().run()
    second = open_app(demo_run, "scenario")
    t0 = time.monotonic()
    second.button(key="sc_solve").click().run()
    assert time.monotonic() - t0 < 15  # the page answered while the other solve runs
    assert not second.exception
    import state

    runner = state.job_runner()
    p1 = runner.progress(first.session_state["job"]["id"])
    p2 = runner.progress(second.session_state["job"]["id"])
    if p1.status == "running":  # the slow solve is still going: the second waits its turn
        assert p2.status == "queued" and p2.queue_position == 1
        labels = [s.label for s in second.status]
        assert any(label.startswith("Waiting for the solver: 1 solve ahead") for label in labels), labels
    runner.stop(first.session_state["job"]["id"])
    res = solve_now_wait(second)
    assert res["result"]["status"] == "optimal"


def solve_now_wait(at, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while "job" in at.session_state and time.monotonic() < deadline:
        time.sleep(0.2)
        at.run()
    assert "job" not in at.session_state, "the queued solve did not finish"
    return at.session_state["result"]


# --------------------------------------------------------------------------- results: downloads


def test_results_offer_every_download(demo_run, monkeypatch):
    from streamlit.runtime.media_file_manager import MediaFileManager

    made = {}  # file name -> the function that makes it when its button is clicked
    add = MediaFileManager.add_deferred

    def remember(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        made[file_name] = data_callable
        return add(self, data_callable, mimetype, coordinates, file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", remember)
    at = open_app(demo_run, "scenario")
    at.text_input(key="sc_name").input("Downloads").run()
    solve_now(at)
    at.switch_page("../pages/results.py").run()
    keys = {b.key for b in at.get("download_button")}
    # Every file, the workbook too, is one click away (made when its button is clicked).
    assert {"res_dl_csv", "res_dl_xlsx", "res_dl_bundle", "res_dl_result", "res_dl_statements_pdf",
            "res_dl_statements_zip", "res_dl_statements_json", "res_dl_statements_xlsx"} <= keys
    assert not at.exception
    assert {"Downloads-allocation.csv", "Downloads.xlsx", "Downloads-snapshot-and-result.json",
            "Downloads-result.json"} <= set(made)
    csv = made["Downloads-allocation.csv"]().decode("utf-8-sig").splitlines()
    assert csv[0].startswith("Worker id,Worker,Job line id,Job line") and len(csv) == 141
    wb = openpyxl.load_workbook(io.BytesIO(made["Downloads.xlsx"]()))
    assert wb.worksheets[0].max_row == 141
    bundle = json.loads(made["Downloads-snapshot-and-result.json"]())
    assert len(bundle["snapshot"]["workers"]) == 140 and len(bundle["result"]["allocations"]) == 140
    assert json.loads(made["Downloads-result.json"]())["status"] == "optimal"


def test_runs_with_the_same_name_can_each_be_chosen(import_run):
    older = import_run(small_run().model_dump(mode="json"), name="Twin intake")
    newer = import_run(small_run().model_dump(mode="json"), name="Twin intake")
    at = open_app(older)  # picks the older twin, not merely the first label that matches
    assert at.session_state["run_id"] == older
    labels = [o for o in at.sidebar.selectbox(key="sidebar_run").options if o.startswith("Twin intake")]
    assert len(labels) == 2 and len(set(labels)) == 2
    at.sidebar.selectbox(key="sidebar_run").select(newer).run()
    assert at.session_state["run_id"] == newer
