"""Exports: CSV and XLSX with formula-like values neutralised; JSON of snapshot and result."""

from __future__ import annotations

import csv
import io
import json

import exports
import openpyxl
import pandas as pd
import pytest

from allocator.demo import demo_snapshot
from allocator.engine import solve
from allocator.problem import ProblemData
from allocator.scenario import apply
from allocator.snapshot import RunSnapshot
from tests.helpers.named_runs import L, W, prefs, snap

NASTY = ["=HYPERLINK(\"http://x\",\"y\")", "+1+2", "-3", "@SUM(A1)", "\tTab", "\rCR"]


@pytest.fixture
def run():
    workers = W("w1", "w2", "w3")
    workers[0]["name"] = "=cmd|' /C calc'!A0"  # a worker name written by an attacker
    workers[1]["name"] = "Zoë O'Neil"
    lines = L(("j1", 2), ("j2", 1))
    lines[0]["name"] = "@Line one"
    return snap(workers, lines, worker_preferences=prefs(w1={"j1": 1, "j2": 2}, w2={"j2": 1, "j1": 2}, w3={"j1": 1}))


@pytest.mark.parametrize("value", NASTY)
def test_neutralise_formula_starts(value):
    out = exports.neutralise(value)
    assert out == "'" + value


@pytest.mark.parametrize("value", ["plain", "", "Line 1 = ED", 3, -3.5, None, True])
def test_neutralise_leaves_the_rest_alone(value):
    assert exports.neutralise(value) == value


def test_allocation_csv_is_neutralised_and_complete(run):
    result = solve(run).to_dict()
    df = exports.allocation_frame(result, run, ProblemData.from_snapshot(run))
    assert list(df["Worker id"]) == ["w1", "w2", "w3"]
    assert set(df["Choice"]) <= {"1st choice", "2nd choice", "not ranked"}
    rows = list(csv.DictReader(io.StringIO(exports.to_csv(df).decode("utf-8-sig"))))
    assert len(rows) == 3
    by = {r["Worker id"]: r for r in rows}
    assert by["w1"]["Worker"] == "'=cmd|' /C calc'!A0"
    assert by["w2"]["Worker"] == "Zoë O'Neil"
    assert all(not v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())
    assert {r["Job line"] for r in rows if r["Job line id"] == "j1"} == {"'@Line one"}


def test_negative_numbers_stay_numbers_but_negative_text_is_guarded():
    df = pd.DataFrame({"n": [-1.5], "t": ["-1.5"]})
    text = exports.to_csv(df).decode("utf-8-sig").splitlines()
    assert text[1] == "-1.5,'-1.5"


def test_workbook_cells_are_text_not_formulas(run):
    result = solve(run).to_dict()
    data = exports.workbook(result, run, ProblemData.from_snapshot(run))
    wb = openpyxl.load_workbook(io.BytesIO(data))
    assert wb.sheetnames == ["Allocation", "Fill per line", "Summary"]
    cells = [c for ws in wb for row in ws.iter_rows() for c in row]
    assert all(c.data_type != "f" for c in cells)  # no formula anywhere
    values = [c.value for c in cells if isinstance(c.value, str)]
    assert "'=cmd|' /C calc'!A0" in values and "'@Line one" in values
    assert not [v for v in values if v.startswith(("=", "+", "-", "@"))]
    fill = wb["Fill per line"]
    header = [c.value for c in fill[1]]
    assert header == ["Job line id", "Job line", "Workers placed", "Places", "Vacancies", "Must be filled"]


def test_bundle_holds_the_snapshot_and_the_result(run):
    result = solve(run).to_dict()
    data = json.loads(exports.json_bytes(exports.bundle(run, result)))
    assert data["snapshot"] == run.canonical()
    assert data["result"]["allocations"] == result["allocations"]


def test_worker_statement_names_their_line_and_choice(run):
    result = solve(run).to_dict()
    text = exports.worker_statement("w2", result, run, ProblemData.from_snapshot(run))
    line = next(a["job_line_id"] for a in result["allocations"] if a["worker_id"] == "w2")
    assert "Zoë O'Neil (w2)" in text and f"({line})" in text and "choice" in text
    assert exports.worker_statement("w9", result, run).startswith("Worker w9 is not")


# --------------------------------------------------------------------------- honest ranks


@pytest.fixture
def unranked_run():
    """w3 ranked only j1, which has one place and w1 pinned on it: w3 must go to j2, unranked."""
    workers = W("w1", "w2", "w3")
    lines = L(("j1", 1), ("j2", 2), ("j3", 1))
    return snap(workers, lines, worker_preferences=prefs(w1={"j1": 1, "j2": 2}, w2={"j2": 1, "j1": 2}, w3={"j1": 1}),
                pins=[{"worker_id": "w1", "job_line_id": "j1"}])


def test_a_worker_on_a_line_they_did_not_rank_has_no_rank_in_the_exports(unranked_run):
    result = solve(unranked_run).to_dict()
    given = {(p.worker_id, p.job_line_id) for p in unranked_run.worker_preferences}
    off = [a["worker_id"] for a in result["allocations"] if (a["worker_id"], a["job_line_id"]) not in given]
    assert off  # the run is built so that someone is on a line they did not rank
    df = exports.allocation_frame(result, unranked_run)
    for wid in off:
        row = df[df["Worker id"] == wid].iloc[0]
        assert row["Choice"] == "not ranked" and pd.isna(row["Rank given"])
    biggest = max(p.rank for p in unranked_run.worker_preferences)
    assert df["Rank given"].dropna().max() <= biggest
    rows = list(csv.DictReader(io.StringIO(exports.to_csv(df).decode("utf-8-sig"))))
    assert {r["Worker id"]: (r["Choice"], r["Rank given"]) for r in rows}[off[0]] == ("not ranked", "")
    text = exports.worker_statement(off[0], result, unranked_run)
    assert "not ranked" in text and "your not ranked" not in text


def test_xlsx_summary_names_run_and_scenario_and_keeps_numbers_as_numbers(unranked_run):
    import headline

    result = solve(unranked_run).to_dict()
    data = exports.workbook(result, unranked_run, ProblemData.from_snapshot(unranked_run),
                            run_name="Intake 2027", scenario_name="More supervisor voice")
    ws = openpyxl.load_workbook(io.BytesIO(data))["Summary"]
    cells = {r[0].value: r[1] for r in ws.iter_rows(min_row=2)}
    assert cells["Run"].value == f"Intake 2027 ({unranked_run.run.id})"
    assert cells["Scenario"].value == "More supervisor voice"
    m = result["metrics"]
    given = {(p.worker_id, p.job_line_id) for p in unranked_run.worker_preferences}
    ranked = [a["worker_rank"] for a in result["allocations"] if (a["worker_id"], a["job_line_id"]) in given]
    expect = {
        "Total cost": round(result["objective"], 2),
        "Got first choice": round(m["first_choice_share"], 2),
        "Mean rank": round(sum(ranked) / len(ranked), 2),
        "Worst rank": max(ranked),
        "Not ranked": len(result["allocations"]) - len(ranked),
        "Vacancies": m["vacancies"],
        "Unevenness (Gini)": round(m["worker_dissatisfaction_gini"], 2),
        "Supervisor voice": result["settings"]["preferencer_weight"],
        "Time limit (seconds)": result["settings"]["max_seconds"],
    }
    for what, value in expect.items():
        cell = cells[what]
        assert cell.data_type == "n" and isinstance(cell.value, int | float), (what, cell.value)
        assert cell.value == pytest.approx(value), what
    assert cells["Got first choice"].number_format == "0%"
    assert cells["Unevenness (Gini)"].number_format == "#,##0.00"
    # The page and the sheet show the same rounding: the page's text is the cell's value.
    assert headline.value_text("worker_dissatisfaction_gini", m["worker_dissatisfaction_gini"]) == \
        f"{cells['Unevenness (Gini)'].value:.2f}"
    assert cells["Stable"].value in ("yes", "no")


def test_summary_of_a_result_saved_before_the_honest_rank_keys(unranked_run):
    result = solve(unranked_run).to_dict()
    old = {**result, "metrics": {k: v for k, v in result["metrics"].items()
                                 if k not in ("mean_rank_ranked", "worst_rank_ranked", "unranked_count")}}
    rows = {w: v for w, v, _ in exports.summary_rows(old, unranked_run)}
    new = {w: v for w, v, _ in exports.summary_rows(result, unranked_run)}
    assert rows["Worst rank"] == new["Worst rank"] and rows["Not ranked"] == new["Not ranked"] >= 1


def test_rank_given_is_the_number_the_worker_wrote_not_the_tie_share():
    """The demo has tied ranks: a worker who wrote 2 for two lines reads 2 on the one they got, never 2.5."""
    run = RunSnapshot.parse(demo_snapshot())
    result = solve(apply(run, {})).to_dict()
    wrote = {(p.worker_id, p.job_line_id): float(p.rank) for p in run.worker_preferences}
    df = exports.allocation_frame(result, run)
    differs = 0
    for x, (_, row) in zip(result["allocations"], df.iterrows(), strict=True):
        key = (x["worker_id"], x["job_line_id"])
        if key in wrote:
            assert row["Rank given"] == wrote[key], (key, row["Rank given"], wrote[key])
            differs += wrote[key] != x["worker_rank"]
        else:
            assert pd.isna(row["Rank given"])
    assert differs > 0  # some worker's fractional rank is not what they wrote: the case this guards
