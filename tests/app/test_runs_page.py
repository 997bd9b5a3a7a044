"""The Runs page leads: where each run came from, its data health by name, the next step, and
changes to its data with who and why (AppTest on the session's embedded PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import runs_view

from allocator.store.base import RunChange, RunSummary
from tests.app.conftest import new_app, open_app


def named_intake() -> dict:
    """Four named workers; Ana ranks first a line that excludes her; Cleo ranks one line."""
    return {
        "format": "allocator-run/1",
        "run": {"id": "named", "name": "Named intake"},
        "workers": [
            {"id": "a", "name": "Ana Li"},
            {"id": "b", "name": "Ben Okafor"},
            {"id": "c", "name": "Cleo Diaz", "qualification_ids": ["rural"]},
            {"id": "d", "name": "Dev Shah", "qualification_ids": ["rural"]},
        ],
        "job_lines": [
            {"id": "j1", "name": "Cardiology", "max_n_workers": 4},
            {"id": "j2", "name": "Renal", "max_n_workers": 4},
            {"id": "j3", "name": "Rural GP", "max_n_workers": 1, "must_have_workers": True},
        ],
        "worker_preferences": [
            {"worker_id": "a", "job_line_id": "j2", "rank": 1}, {"worker_id": "a", "job_line_id": "j1", "rank": 2},
            {"worker_id": "a", "job_line_id": "j3", "rank": 3},
            {"worker_id": "b", "job_line_id": "j1", "rank": 1}, {"worker_id": "b", "job_line_id": "j2", "rank": 2},
            {"worker_id": "b", "job_line_id": "j3", "rank": 3},
            {"worker_id": "c", "job_line_id": "j3", "rank": 1},
            {"worker_id": "d", "job_line_id": "j3", "rank": 1}, {"worker_id": "d", "job_line_id": "j1", "rank": 2},
            {"worker_id": "d", "job_line_id": "j2", "rank": 3},
        ],
        "eligibility": [
            {"job_line_id": "j2", "excluded_worker_ids": ["a"]},
            {"job_line_id": "j3", "included_qualification_ids": ["rural"]},
        ],
    }


def table_with(at, column: str):
    """The page's table with this column (read-only tables carry no key in AppTest), or None."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    return found[0] if found else None


def log_of(at) -> list[dict]:
    return table_with(at, "Why").to_dict("records")


def test_the_next_step_is_a_link_to_the_scenario_page(import_run):
    at = open_app(import_run(named_intake()))
    links = [(e.proto.label, e.proto.page) for e in at.get("page_link")]
    assert ("Next: set up a scenario for this run", "scenario") in links


def test_the_health_report_names_the_workers(import_run):
    at = open_app(import_run(named_intake()))
    warnings = " ".join(w.value for w in at.warning)
    assert "Ana Li ('a'): 2 of 3 ranked, incl. their first choice" in warnings  # Renal excludes her; she lacks 'rural'
    assert "Cleo Diaz ('c'): 1" in warnings  # a short rank list
    assert "Rural GP ('j3'): 2 for 1 place" in warnings  # few candidates
    blocked = table_with(at, "Ranked lines they may not take")
    assert blocked.iloc[0].to_dict() == {"Worker": "Ana Li", "Worker id": "a", "Lines ranked": 3,
                                         "Ranked lines they may not take": 2, "First choice among them": True}


def test_withdrawing_a_worker_with_a_reason_shows_it_in_the_log(import_run, db_store, monkeypatch):
    monkeypatch.setenv("ALLOCATOR_PLANNER_NAME", "Dr Reyes")
    run_id = import_run(named_intake())
    fp = db_store.current_fingerprint(run_id)
    saved = db_store.save_scenario(run_id, "Before", {}, {}, None, fp, "tester")
    at = open_app(run_id)
    assert table_with(at, "Why") is None
    assert any("No changes since the run was imported" in c.value for c in at.caption)

    # Without a reason: refused with a message, nothing changed.
    at.selectbox(key="runs_withdraw_worker").select("b").run()
    at.button(key="runs_withdraw").click().run()
    assert any("Say why the worker is withdrawn" in e.value for e in at.error)
    assert db_store.run_changes(run_id) == []

    at.text_input(key="runs_withdraw_reason").input("Resigned in January").run()
    at.button(key="runs_withdraw").click().run()
    assert not at.exception, at.exception
    (entry,) = log_of(at)
    assert entry["Who"] == "Dr Reyes" and entry["Why"] == "Resigned in January"
    assert entry["What"] == "Withdrew worker 'b' (Ben Okafor) from the run."
    assert [w.id for w in db_store.load_run(run_id).workers] == ["a", "c", "d"]
    assert "b" not in at.selectbox(key="runs_withdraw_worker").options
    # The form is emptied, and sent to the browser as emptied (set_value): a form whose state is
    # only forgotten keeps showing the withdrawn worker and the reason there.
    picker, why = at.selectbox(key="runs_withdraw_worker"), at.text_input(key="runs_withdraw_reason")
    assert picker.value is None and why.value == ""
    assert picker.proto.set_value and why.proto.set_value
    # The scenario saved before the change is out of date at once.
    assert db_store.get_scenario(saved).input_fingerprint != db_store.current_fingerprint(run_id)


def test_a_late_worker_and_a_line_change_are_made_and_logged(import_run, db_store):
    run_id = import_run(named_intake())
    at = open_app(run_id)
    at.text_input(key="runs_add_id").input("e").run()
    at.text_input(key="runs_add_name").input("Eve Late").run()
    at.multiselect(key="runs_add_tags").select("rural").run()
    at.multiselect(key="runs_add_ranks").select("j3").select("j1").run()
    at.text_input(key="runs_add_reason").input("Starts in March").run()
    at.button(key="runs_add").click().run()
    assert not at.exception, at.exception
    snap = db_store.load_run(run_id)
    assert next(w for w in snap.workers if w.id == "e").qualification_ids == ["rural"]
    assert sorted((p.job_line_id, p.rank) for p in snap.worker_preferences if p.worker_id == "e") == [("j1", 2.0), ("j3", 1.0)]

    at.selectbox(key="runs_line").select("j3").run()
    at.number_input(key="runs_line_places_j3").set_value(2).run()
    at.text_input(key="runs_line_reason").input("Second rural post funded").run()
    at.button(key="runs_line_save").click().run()
    assert not at.exception, at.exception
    assert next(j for j in db_store.load_run(run_id).job_lines if j.id == "j3").max_n_workers == 2
    newest, older = log_of(at)
    assert newest["What"] == "Changed job line 'j3' (Rural GP): places 1 → 2." and newest["Why"] == "Second rural post funded"
    assert older["What"].startswith("Added late worker 'e' (Eve Late)")


def test_a_refused_change_says_why_and_changes_nothing(import_run, db_store):
    run_id = import_run(named_intake())
    at = open_app(run_id)
    at.text_input(key="runs_add_id").input("a").run()  # Ana's id: already in the run
    at.text_input(key="runs_add_reason").input("Typo").run()
    at.button(key="runs_add").click().run()
    assert any("Nothing was changed" in e.value and "Worker 'a' is already in run" in e.value for e in at.error)
    assert db_store.run_changes(run_id) == []


def test_an_upload_records_its_file_name_and_time(import_run):
    import_run()  # any other run, so the new one must be told apart
    at = new_app().run()
    at.file_uploader(key="runs_upload").upload("march-intake.json", json.dumps(named_intake()).encode(), "application/json").run()
    at.text_input(key="runs_import_name").input("Twin").run()
    at.button(key="runs_import").click().run()
    assert not at.exception, at.exception
    table = at.dataframe(key="runs_table").value
    row = table[table["Current"]].iloc[0]
    assert (row["Run"], row["From file"], row["Workers"]) == ("Twin", "march-intake.json", 4)
    assert any("from march-intake.json" in c.value for c in at.caption)
    assert any("from march-intake.json" in c.value for c in at.sidebar.caption)


# --------------------------------------------------------------------------- the functions behind it


def summary(i: int, **kw) -> RunSummary:
    base = dict(id=f"{i:08d}-0000-0000-0000-000000000000", name="Twin", status="pending", n_workers=3, n_job_lines=2,
                last_solved_at=None, published=False, created_at=datetime(2026, 11, 30, 9, i, tzinfo=UTC))
    return RunSummary(**(base | kw))


def test_two_runs_with_one_name_differ_in_the_table():
    frame = runs_view.runs_frame([summary(1, source_file="a.xlsx"), summary(2, n_workers=4)], current_id=None)
    assert list(frame["Run"]) == ["Twin", "Twin"]
    assert list(frame["From file"]) == ["a.xlsx", "—"]
    assert frame["Imported"].iloc[0] != frame["Imported"].iloc[1]
    assert frame["Run id"].nunique() == 2
    # The id sits next to the name, in view: the far right of a wide table scrolls out of sight.
    assert list(frame.columns[:2]) == ["Run", "Run id"]
    # A solve that was never saved is not claimed; a saved one is dated.
    assert list(frame["Last scenario saved"]) == ["none saved yet", "none saved yet"]
    saved = runs_view.runs_frame([summary(3, last_scenario_saved_at=datetime(2026, 11, 30, 10, 5, tzinfo=UTC))], None)
    assert saved["Last scenario saved"].iloc[0] != "none saved yet"


def test_the_change_log_is_newest_first():
    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    changes = [
        RunChange(1, "r", "withdraw_worker", "w1", None, {"name": "Ana"}, "Left", "pat", at),
        RunChange(2, "r", "set_job_line", None, "j1", {"before": {"max_n_workers": 1, "must_have_workers": False},
                  "after": {"max_n_workers": 1, "must_have_workers": True}}, "Quota", "sam", at),
    ]
    frame = runs_view.change_log_frame(changes)
    assert list(frame["Why"]) == ["Quota", "Left"]
    assert list(frame["What"]) == ["Changed job line 'j1': must be filled no → yes.", "Withdrew worker 'w1' (Ana) from the run."]


def test_a_half_filled_change_form_survives_a_visit_to_another_page(import_run, db_store):
    run_id = import_run(named_intake())
    at = open_app(run_id)
    at.selectbox(key="runs_withdraw_worker").select("c").run()
    at.text_input(key="runs_withdraw_reason").input("Moving interstate").run()
    at.multiselect(key="runs_add_ranks").select("j2").run()
    at.switch_page("../pages/scenario.py").run()
    at.switch_page("../pages/runs.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="runs_withdraw_worker").value == "c"
    assert at.text_input(key="runs_withdraw_reason").value == "Moving interstate"
    assert at.multiselect(key="runs_add_ranks").value == ["j2"]
    # Withdrawing empties the forms: the next change starts afresh.
    at.button(key="runs_withdraw").click().run()
    assert [w.id for w in db_store.load_run(run_id).workers] == ["a", "b", "d"]
    assert at.selectbox(key="runs_withdraw_worker").value is None
    assert at.text_input(key="runs_withdraw_reason").value == ""
    assert at.multiselect(key="runs_add_ranks").value == []


def test_a_failed_headless_solve_is_said_on_the_runs_page(import_run, db_store):
    run_id = import_run(named_intake())
    assert db_store.claim_next("queue-worker", 60, run_id=run_id) is not None
    db_store.fail_run(run_id, "queue-worker", "Line 'j3' must be filled, but no eligible worker can take it.")
    at = open_app(run_id)
    assert any("headless solve of this run failed" in w.value and "'j3' must be filled" in w.value for w in at.warning)


def test_the_lines_table_names_each_lines_site(import_run):
    """The demo's lines name their hospitals: the health table says where each line is."""
    from allocator.demo import demo_snapshot
    from allocator.health import check as health_report
    from allocator.problem import ProblemData
    from allocator.snapshot import RunSnapshot

    snap = RunSnapshot.parse(demo_snapshot())
    report = health_report(snap, ProblemData.from_snapshot(snap))
    df = runs_view.line_pools_frame(report, snap)
    assert list(df.columns) == ["Check", "Job line", "Site", "Places", "May take it", "Must be filled"]
    site = {j.name: j.site for j in snap.job_lines}
    assert len(df) == len(snap.job_lines) and all(site[n] == s for n, s in zip(df["Job line"], df["Site"], strict=True))
    order = ["cannot be filled", "short of candidates", "few candidates", "ok"]
    assert [order.index(c) for c in df["Check"]] == sorted(order.index(c) for c in df["Check"])
    # A run whose lines name no site has no Site column.
    bare = RunSnapshot.parse({**snap.model_dump(mode="json", exclude_none=True),
                              "job_lines": [{k: v for k, v in j.model_dump(mode="json", exclude_none=True).items()
                                             if k != "site"} for j in snap.job_lines],
                              "quotas": []})
    assert "Site" not in runs_view.line_pools_frame(health_report(bare, ProblemData.from_snapshot(bare)), bare)
    # The page shows the table with its sites.
    at = open_app(import_run(demo_snapshot()), None)
    (shown,) = [d.value for d in at.dataframe if "May take it" in d.value.columns]
    assert "Site" in shown.columns


def test_places_of_minus_1_typed_on_a_line_are_refused_naming_the_line_never_saved_as_another_number(
        import_run, db_store):
    # The box had min_value=0: after 2 then -1 it kept 2 (shown as -1, red), and Save wrote 2.
    run_id = import_run(named_intake())
    at = open_app(run_id)
    at.selectbox(key="runs_line").select("j3").run()
    at.number_input(key="runs_line_places_j3").set_value(2).run()
    at.number_input(key="runs_line_places_j3").set_value(-1).run()
    at.text_input(key="runs_line_reason").input("Typo").run()
    at.button(key="runs_line_save").click().run()
    assert not at.exception, at.exception
    assert any("Places of" in e.value and "Rural GP" in e.value and "(you typed -1)" in e.value
               and "Nothing was changed" in e.value for e in at.error), [e.value for e in at.error]
    assert next(j for j in db_store.load_run(run_id).job_lines if j.id == "j3").max_n_workers == 1
    assert db_store.run_changes(run_id) == []  # nothing logged


def test_places_problem_in_words():
    assert runs_view.places_problem(3, "Line 1") is None
    assert runs_view.places_problem(0, "Line 1") is None
    assert runs_view.places_problem(-1, "Line 1") == (
        "Places of Line 1: must be a whole number, 0 or more (you typed -1). Nothing was changed.")
    assert runs_view.places_problem(5_000_000, "Line 1") == (
        "Places of Line 1: must be at most 1,000,000 (you typed 5000000). Nothing was changed.")


def test_places_of_2_5_or_blank_typed_on_a_line_are_refused_never_saved_as_another_number(import_run, db_store):
    # Walked in the browser: the box was a whole-number box, so 2.5 became 2 as it was typed
    # and Save wrote 2 places (screenshot w9_places_2.5.png); an emptied box went back to 0.
    from streamlit.proto.NumberInput_pb2 import NumberInput

    run_id = import_run(named_intake())
    at = open_app(run_id)
    at.selectbox(key="runs_line").select("j3").run()
    box = at.number_input(key="runs_line_places_j3")
    assert box.proto.data_type == NumberInput.FLOAT  # the browser rounds a whole-number box
    at.text_input(key="runs_line_reason").input("Typo").run()
    for typed, said in ((2.5, "(you typed 2.5)"), (None, "fill it in")):
        at.number_input(key="runs_line_places_j3").set_value(typed).run()
        assert at.number_input(key="runs_line_places_j3").value == typed
        at.button(key="runs_line_save").click().run()
        assert not at.exception, at.exception
        assert any("Places of" in e.value and "Rural GP" in e.value and said in e.value
                   and "Nothing was changed" in e.value for e in at.error), [e.value for e in at.error]
    assert next(j for j in db_store.load_run(run_id).job_lines if j.id == "j3").max_n_workers == 1
    assert db_store.run_changes(run_id) == []
    # A whole number still saves, as a whole number.
    at.number_input(key="runs_line_places_j3").set_value(2.0).run()
    at.button(key="runs_line_save").click().run()
    assert not at.exception, at.exception
    assert next(j for j in db_store.load_run(run_id).job_lines if j.id == "j3").max_n_workers == 2


def test_places_problem_names_a_blank_and_a_fraction():
    assert runs_view.places_problem(None, "Line 1") == (
        "Places of Line 1: fill it in (a whole number, 0 or more). Nothing was changed.")
    assert runs_view.places_problem(2.5, "Line 1") == (
        "Places of Line 1: must be a whole number, 0 or more (you typed 2.5). Nothing was changed.")
    assert runs_view.places_problem(-3.0, "Line 1") == (
        "Places of Line 1: must be a whole number, 0 or more (you typed -3). Nothing was changed.")
