"""Explanations on the dashboard (issue 10): why a worker has their line, at what price, whose
outcome the seed decided, every statement as files, and a move tried by hand kept as a pin
with its reason (Scenario, Compare, Publish).

Each number shown is compared with the engine's own functions computed here, not hard-coded.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile

import numpy as np
import openpyxl
import pandas as pd
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from allocator import explain, statements
from allocator.demo import NO_RULES, demo_snapshot
from allocator.scenario import apply
from allocator.solvers.base import Status
from allocator.store.postgres import PostgresStore
from tests.app.conftest import open_app, solve_now


@pytest.fixture
def downloads(monkeypatch):
    """File name -> the function that makes it when its download button is clicked."""
    made = {}
    add = MediaFileManager.add_deferred

    def remember(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        made[file_name] = data_callable
        return add(self, data_callable, mimetype, coordinates, file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", remember)
    return made


def solved_results(run_id: str, name: str = "Explained"):
    """The app on Results after solving the run's own settings; with the engine's Result."""
    at = open_app(run_id, "scenario")
    at.text_input(key="sc_name").input(name).run()
    entry = solve_now(at)
    at.switch_page("../pages/results.py").run()
    assert not at.exception, at.exception
    return at, entry


def engine_result(db_store: PostgresStore, entry: dict):
    """The same result as an engine object, built from the run, independently of the page."""
    snap = apply(db_store.load_run(entry["run_id"]), entry["settings"], entry["overrides"])
    return explain.allocation_result(snap, {a["worker_id"]: a["job_line_id"] for a in entry["result"]["allocations"]})


def priced_worker(res) -> tuple[str, dict]:
    """A worker with a priced higher choice where someone else would move (the demo has many).

    Worker by worker, stopping at the first: ``explain_all`` would re-solve every higher choice
    of all 140 workers (the demo's couples leave no certificate), some 20 s, for one worker.
    """
    for wid in sorted(res.problem.worker_ids):
        x = explain.explain_worker(res, wid)
        for e in x["higher_choices"]:
            if e["reason"] == "price" and e["moves"] and e["price"] > 0:
                return wid, x
    raise AssertionError("no worker with a priced higher choice where someone moves")


def panel_text(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_a_row_opens_the_workers_explanation_with_price_and_who_moves(demo_run, db_store):
    at, entry = solved_results(demo_run)
    res = engine_result(db_store, entry)
    wid, x = priced_worker(res)
    shown = at.dataframe(key="res_table").value
    row = int(np.flatnonzero(shown["Worker id"].to_numpy() == wid)[0])
    at.session_state["res_table"] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="res_explain_pick").value == wid
    text = panel_text(at)
    p = res.problem
    s = p.worker_index[wid]
    assert f"Why {p.worker_names[s]} has" in text
    for e in x["higher_choices"]:
        words = statements.price_words(p, wid, e)
        assert words.replace("(", "\\(") in text or words in text.replace("\\", "")
    first = next(e for e in x["higher_choices"] if e["reason"] == "price" and e["moves"])
    mover = p.worker_names[p.worker_index[first["moves"][0]["worker_id"]]]
    assert f"{mover} would move from" in text.replace("\\", "")
    assert f"total dissatisfaction {first['price']:+.6g}" in text.replace("\\", "")
    assert "full" not in text.lower().split("a full line is never")[0]

    # A worker on a line they did not rank: "not ranked", never a number for it.
    off = shown.loc[shown["Choice"] == "not ranked", "Worker id"].tolist()
    assert off, "the demo has workers on lines they did not rank"
    at.selectbox(key="res_explain_pick").select(off[0]).run()
    head = next(m.value for m in at.markdown if m.value.startswith("Job line")).replace("\\", "")
    assert "a line they did not rank (not ranked)" in head.splitlines()[0]
    assert "rank " not in head.splitlines()[0].replace("did not rank (not ranked)", "")


def test_eligibility_opens_the_same_explanation(demo_run, db_store):
    at, entry = solved_results(demo_run, "From eligibility")
    res = engine_result(db_store, entry)
    wid, x = priced_worker(res)
    at.switch_page("../pages/eligibility.py").run()
    s = res.problem.worker_index[wid]
    at.selectbox(key="el_worker").select(s).run()
    at.button(key="el_explain").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="res_explain_pick").value == wid
    text = panel_text(at).replace("\\", "")
    for e in x["higher_choices"]:
        assert statements.price_words(res.problem, wid, e) in text


def test_seed_dependent_workers_are_marked(import_run):
    # The seed-dependent workers are worked out for runs the flow solves: the demo without its
    # couples and quota (tiers alone stay on the flow path).
    at, entry = solved_results(import_run(demo_snapshot(profile=NO_RULES)), "Draws")
    ids = entry["result"]["seed_dependent_worker_ids"]
    assert ids is not None
    shown = at.dataframe(key="res_table").value
    marked = set(shown.loc[shown["Decided by seed"], "Worker id"])
    assert marked == set(ids)
    (m,) = [m for m in at.metric if m.label == "Decided by the tie-break seed"]
    assert m.value == str(len(ids))
    assert any("decided by the tie-break seed" in c.value for c in at.caption)


def test_a_run_with_couples_says_why_the_seed_dependent_workers_are_not_worked_out(demo_run):
    at, entry = solved_results(demo_run, "Couples")
    assert entry["result"]["metrics"]["links"] and entry["result"]["seed_dependent_worker_ids"] is None
    assert any("not worked out for a run with linked workers" in c.value for c in at.caption)
    # Not known, so not shown: a column of empty boxes would say "not decided by the seed" of everyone.
    table = at.dataframe(key="res_table")
    assert "Decided by seed" not in table.value.columns and "Decided by seed" not in table.proto.column_order
    assert not [m for m in at.metric if m.label == "Decided by the tie-break seed"]


def test_every_statement_downloads_as_pdf_zip_json_and_xlsx(import_run, downloads):
    # A 30-worker demo keeps its couples and quota, so every statement is still priced by
    # pinned re-solves (no certificate), in about a second rather than the full demo's 20.
    at, entry = solved_results(import_run(demo_snapshot(30)), "Statements")
    assert entry["result"]["metrics"]["links"]
    keys = {b.key for b in at.get("download_button")}
    assert {f"res_dl_statements_{f}" for f in ("pdf", "zip", "json", "xlsx")} <= keys
    n = len(entry["result"]["allocations"])
    pdf = downloads["Statements-statements.pdf"]()
    assert pdf.startswith(b"%PDF")
    with zipfile.ZipFile(io.BytesIO(downloads["Statements-statements.zip"]())) as z:
        pdfs = [f for f in z.namelist() if f.endswith(".pdf")]
    assert len(pdfs) == n
    table = json.loads(downloads["Statements-statements.json"]())
    assert {r["worker_id"] for r in table["rows"]} == {a["worker_id"] for a in entry["result"]["allocations"]}
    wb = openpyxl.load_workbook(io.BytesIO(downloads["Statements-statements.xlsx"]()))
    assert wb.worksheets[0].max_row == len(table["rows"]) + 1


def test_a_move_tried_by_hand_shows_its_price_and_is_kept_as_a_pin_with_its_reason(demo_run, db_store):
    from allocator.engine import solve

    at, entry = solved_results(demo_run, "By hand")
    at.switch_page("../pages/scenario.py").run()
    at.button(key="sc_save").click().run()
    at.switch_page("../pages/results.py").run()
    res = engine_result(db_store, entry)
    wid, x = priced_worker(res)
    lid = next(e["job_line_id"] for e in x["higher_choices"] if e["reason"] == "price" and e["moves"])

    at.selectbox(key="res_ov_worker").select(wid)
    at.selectbox(key="res_ov_line").select(lid).run()
    at.button(key="res_ov_preview").click().run()
    assert not at.exception, at.exception
    expected = explain.preview_move(None, res, wid, lid)
    rep = expected["repair"]
    # What the move alone breaks, each in the engine's words (or that it breaks nothing).
    warned = " ".join(w.value for w in at.warning).replace("\\", "")
    for b in expected["breaks"]:
        assert b["message"] in warned
    if not expected["breaks"]:
        assert any("breaks no rule" in x.value for x in at.success)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Price of the move"] == f"{rep['price']:+.6g}"
    assert shown["Other workers who move"] == str(len(rep["moves"])) and rep["moves"]
    movers = next(d.value for d in at.dataframe if "Their choice after" in d.value.columns)
    p = res.problem
    assert sorted(movers["Worker"]) == sorted(f"{p.worker_names[p.worker_index[m['worker_id']]]} ({m['worker_id']})"
                                              for m in rep["moves"])
    # The preview's price is a full re-solve with the pin, against the optimum.
    run = db_store.load_run(demo_run)
    pinned = solve(apply(run, entry["settings"], {"pins": [{"worker_id": wid, "job_line_id": lid}]}))
    assert rep["price"] == pytest.approx(pinned.objective - entry["result"]["objective"], rel=1e-6, abs=1e-6)

    # Keeping it needs a reason.
    at.button(key="res_ov_apply").click().run()
    assert any("Give a reason" in e.value for e in at.error)
    assert not [q for q in at.session_state["draft"].overrides.get("pins", []) if q["worker_id"] == wid]
    why = "Agreed with the rotation supervisor"
    at.text_input(key="res_ov_reason").input(why).run()
    at.button(key="res_ov_apply").click().run()
    assert not at.exception, at.exception
    assert {"worker_id": wid, "job_line_id": lid, "reason": why} in at.session_state["draft"].overrides["pins"]

    # The Scenario page's pins table shows it with its reason; solved and saved, it is compared and published.
    at.switch_page("../pages/scenario.py").run()
    pins = next(t.value for t in at.data_editor if "Reason" in t.value.columns)
    assert pins[pins["Worker"] == wid][["Job line", "Reason"]].values.tolist() == [[lid, why]]
    at.text_input(key="sc_name").input("By hand, pinned").run()
    solve_now(at)
    at.button(key="sc_save").click().run()
    assert not at.exception, at.exception

    wn, ln = dict(zip(p.worker_ids, p.worker_names, strict=True)), dict(zip(p.line_ids, p.line_names, strict=True))
    at.switch_page("../pages/compare.py").run()
    at.multiselect(key="cmp_pick").set_value(["By hand", "By hand, pinned"]).run()
    assert not at.exception, at.exception
    diff = next(d.value for d in at.dataframe if "Change" in d.value.columns).set_index("Change")
    assert diff.loc[f"Pin {wn[wid]} to {ln[lid]}"].tolist() == ["–", f"pinned ({why})"]

    at.switch_page("../pages/publish.py").run()
    saved = {s.name: s.id for s in db_store.list_scenarios(demo_run)}
    at.selectbox(key="pub_scenario").select(saved["By hand, pinned"]).run()
    listed = f"{wn[wid]} ({wid}) pinned to {ln[lid]} ({lid}): {why}"
    assert any(listed in m.value.replace("\\", "") for m in at.markdown)
    at.text_area(key="pub_reason").input("Signed off").run()
    at.button(key="pub_open").click().run()
    at.button(key="pub_confirm").click().run()
    assert not at.exception, at.exception
    (logged,) = db_store.publication_log(demo_run)
    assert logged.reason.startswith("Signed off\n") and listed in logged.reason


def test_the_pins_and_their_reasons_are_written_with_the_publication():
    import publishing

    ov = {"pins": [{"worker_id": "w1", "job_line_id": "j2", "reason": "agreed"},
                   {"worker_id": "w2", "job_line_id": "j1"}]}
    pins = publishing.pins_with_reasons(ov, {"w1": "Dr Lee"}, {"j2": "Line 2"})
    assert pins == ["Dr Lee (w1) pinned to Line 2 (j2): agreed", "w2 (w2) pinned to j1 (j1): no reason given"]
    assert publishing.recorded_reason("  Signed off ", pins) == "Signed off\nPins in this scenario: " + "; ".join(pins)
    assert publishing.recorded_reason("", pins) == "Pins in this scenario: " + "; ".join(pins)
    assert publishing.recorded_reason(" ", []) is None and publishing.recorded_reason("ok", []) == "ok"


def test_a_swap_preview_and_adding_its_pins(demo_run, db_store):
    import explain_view

    _, entry = solved_results(demo_run, "Swap")
    res = engine_result(db_store, entry)
    a, b = next((x["worker_id"], y["worker_id"]) for x in entry["result"]["allocations"]
                for y in entry["result"]["allocations"] if x["job_line_id"] != y["job_line_id"])
    pv = explain_view.preview(res, "swap", a, b)
    assert pv == explain.preview_swap(None, res, a, b)
    pins = explain_view.pins_of(pv)
    line = {x["worker_id"]: x["job_line_id"] for x in entry["result"]["allocations"]}
    assert pins == sorted([{"worker_id": a, "job_line_id": line[b]}, {"worker_id": b, "job_line_id": line[a]}],
                          key=lambda q: res.problem.worker_index[q["worker_id"]])

    before = pd.DataFrame([{"Worker": a, "Job line": line[a], "Reason": None},
                           {"Worker": "someone", "Job line": "j", "Reason": "kept"}])
    with pytest.raises(ValueError, match="Give a reason"):
        explain_view.add_pins(before, pins, "  ")
    after = explain_view.add_pins(before, pins, " swap agreed ")
    # One pin per worker: a's old pin is replaced by the new one; the other pin stays.
    assert sorted(map(tuple, after.values.tolist())) == sorted(
        [("someone", "j", "kept")] + [(q["worker_id"], q["job_line_id"], "swap agreed") for q in pins])


def test_a_stable_runs_prices_are_worked_out_when_asked(import_run, db_store):
    from tests.helpers.named_runs import L, W, prefs, snap

    three = snap(W("w1", "w2", "w3"), L(("j1", 1), ("j2", 2)),
                 worker_preferences=prefs(w1={"j1": 1, "j2": 2}, w2={"j1": 1, "j2": 2}, w3={"j1": 1, "j2": 2}))
    run_id = import_run(three.model_dump(mode="json"))
    at = open_app(run_id, "scenario")
    at.toggle(key="sc_stability").set_value(True).run()
    at.text_input(key="sc_name").input("Stable").run()
    entry = solve_now(at)
    assert entry["settings"]["stability"] and entry["result"]["seed_dependent_worker_ids"] is None
    at.switch_page("../pages/results.py").run()
    wid = next(a["worker_id"] for a in entry["result"]["allocations"] if a["job_line_id"] == "j2")
    at.selectbox(key="res_explain_pick").select(wid).run()
    assert not at.exception, at.exception
    assert any("not worked out for a stable allocation" in c.value for c in at.caption)
    at.button(key="res_explain_stable_btn").click().run()
    assert not at.exception, at.exception
    # The solve proved its stable allocation optimal (a stored allocation alone cannot say so).
    res = dataclasses.replace(engine_result(db_store, entry), status=Status(entry["result"]["status"]))
    x = explain.explain_worker(res, wid)
    (e,) = x["higher_choices"]
    assert e["reason"] == "price"
    assert statements.price_words(res.problem, wid, e) in panel_text(at).replace("\\", "")


def test_the_seed_caption_says_what_is_known():
    import explain_view

    assert explain_view.seed_caption({"seed_dependent_worker_ids": []}).startswith("No worker's line")
    assert explain_view.seed_caption({"seed_dependent_worker_ids": ["w1", "w2"]}).startswith(
        "2 workers' lines were decided by the tie-break seed")
    assert "stable" in explain_view.seed_caption({"seed_dependent_worker_ids": None, "settings": {"stability": True}})
    assert "not proven" in explain_view.seed_caption({"seed_dependent_worker_ids": None, "settings": {}})
    assert "Solve it again" in explain_view.seed_caption({"settings": {}})


def test_a_moves_preview_speaks_of_supervisors_not_preferencers():
    import explain_view

    rep = {"price": 4.0, "price_worker_side": -1.4, "price_preferencer_side": 5.4, "moves": [{"worker_id": "w2"}]}
    words = explain_view.preview_words(None, {"repair": rep})
    assert words == ("Best allocation with this move: total dissatisfaction +4 (doctors' side -1.4, "
                     "supervisors' side +5.4); 1 other worker moves.")
