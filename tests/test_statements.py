"""Every worker's statement: the planner's words, and the PDF, ZIP, JSON and XLSX files."""

from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np
import pytest

from allocator import engine, explain, statements
from allocator.snapshot import load_snapshot
from tests.helpers.named_runs import DATA


@pytest.fixture(scope="module")
def demo():
    r = engine.solve(load_snapshot(DATA / "valid" / "demo_40x16.json"))
    return r, statements.build_statements(r)


def test_one_statement_per_worker_with_line_rank_cost_and_every_higher_choice(demo):
    r, sts = demo
    p, a = r.problem, r.assignment
    assert [s.worker_id for s in sts] == p.worker_ids
    for st in sts:
        s = p.worker_index[st.worker_id]
        text = st.text()
        assert p.line_names[a[s]] in st.title
        if p.worker_ranked[s, a[s]]:
            assert f"rank {float(p.worker_rank[s, a[s]]):g}" in text
        else:
            assert "not ranked" in text and "a line they did not rank" in text
            # never a number for a line they did not rank
            assert f"rank {float(p.worker_rank[s, a[s]]):g}" not in st.lines[0]
        assert "Dissatisfaction of this pair" in text
        n_higher = len(st.explanation["higher_choices"])
        assert sum(line.startswith("- ") for line in st.lines) == n_higher


def test_price_words_name_who_moves_with_choices_and_the_total(demo):
    r, sts = demo
    p = r.problem
    found = False
    for st in sts:
        for h in st.explanation["higher_choices"]:
            if h["reason"] == "price" and h["moves"] and h["price"]:
                words = statements.price_words(p, st.worker_id, h)
                s = p.worker_index[st.worker_id]
                q = p.line_index[h["job_line_id"]]
                assert words.startswith(f"to give {p.worker_names[s]} {p.line_names[q]}, ")
                for m in h["moves"]:
                    t = p.worker_index[m["worker_id"]]
                    assert f"{p.worker_names[t]} would move from {statements.choice_words(p, t, p.line_index[m['from']])}" in words
                assert f"total dissatisfaction {h['price']:+.6g}" in words
                found = True
    assert found


def test_price_words_on_the_spec_example():
    r = engine.solve(load_snapshot(DATA / "valid" / "demo_40x16.json"))
    p = r.problem
    entry = {"job_line_id": p.line_ids[0], "reason": "price", "price": 3.25, "price_worker_side": 1.4,
             "price_preferencer_side": 1.85, "proven": True,
             "moves": [{"worker_id": p.worker_ids[1], "from": p.line_ids[0], "to": p.line_ids[2]}]}
    words = statements.price_words(p, p.worker_ids[0], entry)
    c1 = statements.choice_words(p, 1, 0)
    c2 = statements.choice_words(p, 1, 2)
    assert words == (
        f"to give {p.worker_names[0]} {p.line_names[0]}, {p.worker_names[1]} would move from {c1} "
        f"({p.line_names[0]}) to {c2} ({p.line_names[2]}); total dissatisfaction +3.25 "
        "(doctors' side +1.4, supervisors' side +1.85)."
    )


def test_pdf_has_a_page_per_worker(demo):
    r, sts = demo
    pdf = statements.statements_pdf(sts, r.run_id)
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == len(sts)


def test_zip_has_pdf_text_and_json_per_worker(demo):
    r, sts = demo
    z = zipfile.ZipFile(io.BytesIO(statements.statements_zip(sts[:5], r.run_id)))
    names = sorted(z.namelist())
    assert names == sorted(f"{s.worker_id}.{ext}" for s in sts[:5] for ext in ("pdf", "txt", "json"))
    first = sts[0]
    assert json.loads(z.read(f"{first.worker_id}.json")) == first.explanation
    assert z.read(f"{first.worker_id}.txt").decode() == first.text()
    assert z.read(f"{first.worker_id}.pdf").startswith(b"%PDF")


def test_json_and_xlsx_tables_have_a_row_per_higher_choice(demo):
    from openpyxl import load_workbook

    r, sts = demo
    n_rows = sum(max(1, len(s.explanation["higher_choices"])) for s in sts)
    d = json.loads(statements.statements_json(r, sts))
    assert d["columns"] == statements.TABLE_COLUMNS and len(d["rows"]) == n_rows
    priced = [row for row in d["rows"] if row["reason"] == "price"]
    assert priced and all(row["explanation"].startswith("to give ") for row in priced)
    wb = load_workbook(io.BytesIO(statements.statements_xlsx(r, sts)))
    ws = wb["Statements"]
    rows = list(ws.iter_rows(values_only=True))
    assert list(rows[0]) == statements.TABLE_COLUMNS and len(rows) == n_rows + 1
    col = statements.TABLE_COLUMNS.index("price")
    assert [row[col] for row in rows[1:]] == [row["price"] for row in d["rows"]]


def test_names_outside_latin1_still_make_a_pdf():
    snap = load_snapshot(DATA / "valid" / "small_network.json")
    data = snap.model_dump(mode="json")
    data["workers"][0]["name"] = "Nguyễn Thị Ánh – 王芳"
    from allocator.snapshot import RunSnapshot

    r = engine.solve(RunSnapshot.parse(data))
    sts = statements.build_statements(r)
    assert statements.statements_pdf(sts, r.run_id).startswith(b"%PDF")


def test_stable_statements_price_by_resolves_and_mark_what_is_not_proven():
    snap = load_snapshot(DATA / "valid" / "demo_40x16.json").with_settings(stability=True, max_seconds=10)
    r = engine.solve(snap)
    out = explain.explain_all(r, time_budget=0.0)  # no time at all: nothing can be priced
    priced = [h for x in out for h in x["higher_choices"] if h["reason"] == "price"]
    assert priced and all(h["price"] is None and h["proven"] is False for h in priced)
    assert all(x["method"] == "resolve" for x in out)
    sts = statements.build_statements(r, explanations=out)
    assert any("not priced: the time for these statements ran out" in st.text() for st in sts)
    one = next(x for x in out if any(h["reason"] == "price" for h in x["higher_choices"]))
    e = explain.explain_worker(r, one["worker_id"])
    prices = [h for h in e["higher_choices"] if h["reason"] == "price"]
    assert prices and all(h["proven"] is True and h["price"] >= 0 for h in prices)


def test_statements_file_refuses_an_unknown_format(demo):
    r, sts = demo
    with pytest.raises(ValueError, match="format"):
        statements.statements_file(r, "docx", sts)
    assert np.isfinite([h["price"] for s in sts for h in s.explanation["higher_choices"] if h["reason"] == "price"]).all()


def test_statements_speak_of_supervisors_never_of_preferencers(demo):
    # UI.md: "Supervisor ranking" on a page, "preferencer" only in the code. The dashboard's
    # explanation panel shows these lines word for word.
    r, sts = demo
    text = "\n".join(s.text() for s in sts)
    assert "preferencer" not in text.lower()
    assert "supervisors' side" in text and "Supervisors' side: " in text


def test_the_command_lines_explanation_speaks_of_supervisors(demo):
    # `allocator explain` prints Result.explain's text: the planner's word there too.
    r, sts = demo
    texts = [str(r.explain(w)) for w in r.problem.worker_ids]
    assert texts and not any("preferencer" in t.lower() for t in texts)
    assert any("from the line's supervisors" in t for t in texts)


def test_zip_gives_each_worker_files_of_their_own_when_ids_make_the_same_name(demo):
    # 'a/b' and 'a_b' both became a_b.pdf (two entries of one name: unpacking kept one), and
    # 'W4' / 'w4' are one file on Windows and macOS.
    _, sts = demo
    ids = ["a/b", "a_b", "W4", "w4", "a_b-2"]
    renamed = [statements.Statement(wid, s.title, s.lines, s.explanation) for wid, s in zip(ids, sts, strict=False)]
    z = zipfile.ZipFile(io.BytesIO(statements.statements_zip(renamed)))
    names = z.namelist()
    assert len({n.lower() for n in names}) == len(names) == 3 * len(ids)
    assert sorted({n.rsplit(".", 1)[0] for n in names}) == ["W4", "a_b", "a_b-2", "a_b-2-2", "w4-2"]
    # Each worker's text is in the ZIP once, whichever name it got.
    texts = sorted(z.read(n).decode() for n in names if n.endswith(".txt"))
    assert texts == sorted(s.text() for s in renamed)
