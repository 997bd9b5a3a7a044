"""Exports: CSV and XLSX with formula-like values neutralised; JSON of snapshot and result."""

from __future__ import annotations

import csv
import io
import json

import exports
import openpyxl
import pandas as pd
import pytest

from allocator.engine import solve
from allocator.problem import ProblemData
from tests.named_runs import L, W, prefs, snap

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
    assert set(df["Choice"]) <= {"1st choice", "2nd choice", "unranked line"}
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
