"""The scenario draft in AppTest: nothing typed is lost, changed or saved without being shown.

Table edits are made as the browser makes them: the data editor's edit state (edited_rows,
added_rows, deleted_rows) assigned before a run.
"""

from __future__ import annotations

from allocator.demo import demo_snapshot
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
from tests.app.conftest import open_app, solve_now

LIFT = "Lift in this scenario"


def edits(edited=None, added=None, deleted=None) -> dict:
    return {"edited_rows": edited or {}, "added_rows": added or [], "deleted_rows": deleted or []}


def editor_table(at, key: str):
    """The table a data editor was seeded with (its edits folded in once the page was left)."""
    # An editor's key gets a generation each time it is seeded with a new table (sc_lines_2).
    (df,) = [x for x in at.dataframe if x.key == key or (x.key or "").startswith(key + "_")]
    return df.value


def errors(at) -> str:
    return " ".join(e.value for e in at.error)


def sidebar_text(at) -> str:
    return " ".join(m.value for m in at.sidebar.markdown)


def follow(at, label: str) -> None:
    """Follow the in-page link ``label`` (AppTest cannot click one: switch to its page)."""
    (link,) = [x for x in at.page_link if x.value == label]
    at.switch_page(f"../pages/{link.proto.page}.py").run()
    assert not at.exception, at.exception


def leave_and_come_back(at) -> None:
    for page in ("results", "eligibility", "runs"):
        at.switch_page(f"../pages/{page}.py").run()
        assert not at.exception, at.exception
    at.switch_page("../pages/scenario.py").run()
    assert not at.exception, at.exception


def a_pin(places_row: int = 0) -> tuple[str, str]:
    """A worker who may take the demo's first line, to pin there (computed, not assumed)."""
    problem = ProblemData.from_snapshot(RunSnapshot.parse(demo_snapshot()))
    pinned = {p.worker_id for p in problem.snapshot.pins}
    j = places_row
    for s in range(problem.n_workers):
        if problem.allowed[s, j] and problem.worker_ids[s] not in pinned:
            return problem.worker_ids[s], problem.line_ids[j]
    raise AssertionError("no worker may take the first line")


def test_table_edits_outlive_other_pages_and_are_saved_exactly(demo_run, db_store):
    at = open_app(demo_run, "scenario")
    j01_places = int(editor_table(at, "sc_lines").iloc[0]["Places"])
    worker, line = a_pin()
    at.session_state["sc_lines"] = edits({0: {"Places": j01_places - 1}})
    at.session_state["sc_pins"] = edits(added=[{"Worker": worker, "Job line": line}])
    at.run()
    assert not at.exception and not at.error
    assert "Unsaved changes" in sidebar_text(at)

    leave_and_come_back(at)
    assert "sc_lines" not in at.session_state  # the editor is drawn afresh ...
    assert float(editor_table(at, "sc_lines").iloc[0]["Places"]) == j01_places - 1  # ... with the edit in it
    assert editor_table(at, "sc_pins").to_dict("records") == [{"Worker": worker, "Job line": line, "Reason": None}]
    assert "Unsaved changes" in sidebar_text(at)

    # A solve, then the in-page links there and back: still there.
    solve_now(at)
    follow(at, "See the results")
    at.switch_page("../pages/scenario.py").run()
    assert float(editor_table(at, "sc_lines").iloc[0]["Places"]) == j01_places - 1

    at.text_input(key="sc_name").input("One place fewer").run()
    at.button(key="sc_save").click().run()
    assert not at.exception
    assert "Unsaved changes" not in sidebar_text(at)
    want = {"lines": [{"job_line_id": "j01", "max_n_workers": j01_places - 1}],
            "pins": [{"worker_id": worker, "job_line_id": line}]}
    (saved,) = [sc for sc in db_store.list_scenarios(demo_run) if sc.name == "One place fewer"]
    assert saved.overrides == want
    assert saved.result and saved.result["status"] in ("optimal", "feasible")

    # Start again (nothing unsaved: no question): every edit is gone.
    at.button(key="sc_reset").click().run()
    assert float(editor_table(at, "sc_lines").iloc[0]["Places"]) == j01_places
    assert editor_table(at, "sc_pins").empty
    assert at.session_state["draft"].overrides == {}

    # Reopen the saved one: exactly its edits.
    at.sidebar.selectbox(key="sidebar_scenario").select(saved.id).run()
    assert not at.exception
    assert float(editor_table(at, "sc_lines").iloc[0]["Places"]) == j01_places - 1
    assert editor_table(at, "sc_pins").to_dict("records") == [{"Worker": worker, "Job line": line, "Reason": None}]
    assert at.session_state["draft"].overrides == want
    assert "Unsaved changes" not in sidebar_text(at)


def test_start_again_asks_first_then_clears_every_edit_and_nothing_leaks_into_the_next_save(demo_run, db_store):
    at = open_app(demo_run, "scenario")
    at.session_state["sc_lines"] = edits({2: {"Must be filled": True}})
    at.run()
    at.toggle(key="sc_stability").set_value(True).run()
    leave_and_come_back(at)

    at.button(key="sc_reset").click().run()
    assert any("Start again from the run?" in w.value for w in at.warning)
    at.button(key="sc_reset_cancel").click().run()
    assert at.toggle(key="sc_stability").value is True  # kept: the planner changed their mind
    assert bool(editor_table(at, "sc_lines").iloc[2]["Must be filled"]) is True

    at.button(key="sc_reset").click().run()
    at.button(key="sc_reset_confirm").click().run()
    assert not at.exception
    assert at.toggle(key="sc_stability").value is False
    run_flag = bool(editor_table(at, "sc_lines").iloc[2]["Must be filled"])
    assert run_flag is False
    assert "Unsaved changes" not in sidebar_text(at)

    at.text_input(key="sc_name").input("Clean").run()
    at.button(key="sc_save").click().run()
    (saved,) = [sc for sc in db_store.list_scenarios(demo_run) if sc.name == "Clean"]
    assert saved.overrides == {} and saved.settings["stability"] is False


def test_places_of_2_7_or_minus_5_are_refused_with_a_message_never_stored(demo_run):
    at = open_app(demo_run, "scenario")
    at.session_state["sc_lines"] = edits({0: {"Places": 2.7}, 1: {"Places": -5}})
    at.run()
    assert not at.exception
    text = errors(at)
    assert "row 1" in text and "places must be a whole number, 0 or more (you typed 2.7)" in text
    assert "row 2" in text and "(you typed -5)" in text
    assert at.button(key="sc_solve").disabled and at.button(key="sc_save").disabled
    leave_and_come_back(at)  # still as typed, still refused
    assert float(editor_table(at, "sc_lines").iloc[0]["Places"]) == 2.7
    assert "(you typed 2.7)" in errors(at) and at.button(key="sc_solve").disabled


def test_an_out_of_range_setting_disables_solve_and_is_kept_as_typed(demo_run):
    at = open_app(demo_run, "scenario")
    at.number_input(key="sc_time").set_value(-3).run()
    at.number_input(key="sc_power").set_value(50).run()
    at.text_input(key="sc_seed").input("-1").run()
    assert not at.exception
    text = errors(at)
    assert "Time limit (seconds): must be more than 0 seconds (you typed -3)" in text
    assert "How much low choices hurt: must be more than 0 and at most 8 (you typed 50)" in text
    assert "Tie-break seed: must be at least 0 (you typed -1)" in text
    assert at.button(key="sc_solve").disabled and at.button(key="sc_save").disabled
    leave_and_come_back(at)
    assert at.number_input(key="sc_time").value == -3 and at.button(key="sc_solve").disabled
    at.number_input(key="sc_time").set_value(20).run()
    at.number_input(key="sc_power").set_value(2).run()
    at.text_input(key="sc_seed").input("7").run()
    assert not at.error and not at.button(key="sc_solve").disabled
    assert at.session_state["draft"].settings["max_seconds"] == 20


def test_an_empty_scenario_name_says_why_solve_and_save_are_greyed_out(demo_run):
    at = open_app(demo_run, "scenario")
    at.text_input(key="sc_name").input("   ").run()
    assert not at.exception
    assert at.button(key="sc_solve").disabled and at.button(key="sc_save").disabled
    assert "Scenario name: give this scenario a name" in errors(at)  # not greyed out without a word
    at.text_input(key="sc_name").input("Named").run()
    assert not at.error and not at.button(key="sc_solve").disabled


def test_an_impossible_scenario_shows_why_and_no_success_then_lifting_the_run_pin_solves(demo_run):
    at = open_app(demo_run, "scenario")
    (pin,) = editor_table(at, "sc_lifted_pins").to_dict("records")
    at.toggle(key="sc_stability").set_value(True).run()
    res = solve_now(at)
    assert res["result"]["status"] == "infeasible"
    labels = [s.label for s in at.status]
    assert any("is impossible as set up" in label for label in labels), labels
    assert not any("solved in" in label for label in labels)
    assert not any(t.value.startswith("Solved") for t in at.toast)
    assert [x.value for x in at.page_link if x.value == "See the results"] == []
    why = errors(at)
    assert "No allocation is stable" in why
    assert f"({pin['Worker id']}) pinned to" in why and f"({pin['Job line id']})" in why  # the very pin
    assert "impossible as set up" in sidebar_text(at)

    # Lift that pin in this scenario; a short time limit (2 s) is enough to find a stable allocation.
    at.session_state["sc_lifted_pins"] = edits({0: {LIFT: True}})
    at.run()
    at.number_input(key="sc_time").set_value(2).run()
    assert not at.error
    # Off to the impossible result and back by its own link: the lift and the time limit stay.
    at.switch_page("../pages/results.py").run()
    # The workers the diagnosis involves are named as everywhere else, not listed as bare ids.
    (who,) = [c.value for c in at.caption if c.value.startswith("Workers: ")]
    first = res["result"]["diagnosis"][0]["worker_ids"][0]
    name = next(w["name"] for w in demo_snapshot()["workers"] if w["id"] == first)
    assert who.startswith(f"Workers: {name} ({first})"), who
    follow(at, "Change the scenario")
    assert list(editor_table(at, "sc_lifted_pins")[LIFT]) == [True]
    assert at.number_input(key="sc_time").value == 2
    res = solve_now(at)
    assert res["result"]["status"] in ("optimal", "feasible") and len(res["result"]["allocations"]) == 140
    assert res["overrides"]["lifted_pins"] == [{"worker_id": pin["Worker id"], "job_line_id": pin["Job line id"]}]
    assert res["settings"]["stability"] is True
    assert any("solved in" in s.label for s in at.status)
    follow(at, "See the results")
    assert not any("No allocation can meet" in e.value for e in at.error)


def test_a_draft_is_kept_when_another_run_is_looked_at(demo_run, import_run):
    other = import_run()
    at = open_app(demo_run, "scenario")
    at.session_state["sc_lines"] = edits({0: {"Places": 1}})
    at.run()
    at.sidebar.selectbox(key="sidebar_run").select(other).run()
    assert at.session_state["draft"].run_id == other and at.session_state["draft"].overrides == {}
    (kept,) = at.session_state["_drafts_by_run"].values()
    assert type(kept).__name__ == "ScenarioDraft" and kept.run_id == demo_run and kept.deltas["lines"]
    assert "Unsaved changes" not in sidebar_text(at)
    at.sidebar.selectbox(key="sidebar_run").select(demo_run).run()
    assert not at.exception
    assert float(editor_table(at, "sc_lines").iloc[0]["Places"]) == 1
    assert "Unsaved changes" in sidebar_text(at)


def test_an_impossible_scenario_saved_then_fixed_is_saved_again_under_its_own_name(demo_run, db_store):
    """Saved while impossible, fixed (run pin lifted) and solved: Save keeps the name, as a new version."""
    at = open_app(demo_run, "scenario")
    at.text_input(key="sc_name").input("Stable try").run()
    at.toggle(key="sc_stability").set_value(True).run()
    assert solve_now(at)["result"]["status"] == "infeasible"
    at.button(key="sc_save").click().run()
    assert any("Saved scenario 'Stable try'" in t.value for t in at.toast)
    at.session_state["sc_lifted_pins"] = edits({0: {LIFT: True}})
    at.run()
    at.number_input(key="sc_time").set_value(2).run()
    res = solve_now(at)
    assert res["result"]["allocations"]
    at.button(key="sc_save").click().run()
    assert "already saved" not in errors(at), errors(at)
    assert any("Saved scenario 'Stable try' with its result" in t.value for t in at.toast)
    versions = db_store.scenario_versions(demo_run, "Stable try")
    assert sorted(v.version for v in versions) == [1, 2]
    latest = max(versions, key=lambda v: v.version)
    assert latest.result["allocations"] and latest.overrides["lifted_pins"]


def test_number_cells_are_text_cells_and_1e12_typed_there_is_named(demo_run):
    # Walked in the browser: Streamlit's number cell keeps only what it takes for a digit, so
    # "1e12" typed as a line's places arrived as 112 and was solved with, without a word. The
    # tables' number cells are text cells, and the check names what was typed.
    import json

    at = open_app(demo_run, "scenario")
    number_cells = {"sc_lines": ["Places"], "sc_weights": ["Value"], "sc_quotas": ["At least", "At most"],
                    "sc_tiers": ["Priority tier"]}
    for key, cols in number_cells.items():
        (grid,) = [x for x in at.dataframe if x.key == key]
        config = json.loads(grid.proto.columns)
        for col in cols:
            assert config[col]["type_config"]["type"] == "text", (key, col, config[col])
    at.session_state["sc_lines"] = edits({0: {"Places": "1e12"}, 1: {"Places": "three"}})
    at.run()
    assert not at.exception
    text = errors(at)
    assert "places must be a whole number up to 1,000,000 (you typed 1e12)" in text
    assert "(you typed three)" in text
    assert at.button(key="sc_solve").disabled and at.button(key="sc_save").disabled
    leave_and_come_back(at)  # kept as typed, still refused
    assert editor_table(at, "sc_lines").iloc[0]["Places"] == "1e12"
    assert "(you typed 1e12)" in errors(at) and at.button(key="sc_solve").disabled


def test_a_time_limit_of_1e12_seconds_is_said_back_and_solve_stays_possible(demo_run):
    at = open_app(demo_run, "scenario")
    at.number_input(key="sc_time").set_value(1e12).run()
    assert not at.exception
    (note,) = [w.value for w in at.warning if w.value.startswith("Time limit:")]
    assert "about 31,688 years" in note
    assert not at.button(key="sc_solve").disabled  # a word, not a refusal: the spec has no upper limit
    at.number_input(key="sc_time").set_value(120.0).run()
    assert not [w for w in at.warning if w.value.startswith("Time limit:")]
