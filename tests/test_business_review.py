"""Edge cases of the business rules (business-rules.md) found in review: sites named like
a line that is a site of its own, and the like."""

from __future__ import annotations

import numpy as np

from allocator.engine import rule_breaches, verify
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot


def _site_named_like_a_line() -> ProblemData:
    # Line 'X' has no site (a site of its own); line 'j2' is at a site that happens to be
    # called 'X' too. They are two different sites.
    return ProblemData.from_snapshot(RunSnapshot.parse({
        "format": "allocator-run/1",
        "workers": [{"id": "w1"}, {"id": "w2"}],
        "job_lines": [{"id": "X", "max_n_workers": 2}, {"id": "j2", "max_n_workers": 2, "site": "X"}],
        "linked_workers": [{"id": "couple", "worker_ids": ["w1", "w2"]}],
    }))


def test_a_link_split_between_a_line_of_its_own_and_a_site_of_the_same_name_is_a_breach():
    p = _site_named_like_a_line()
    split = np.array([p.line_index["X"], p.line_index["j2"]])
    breaches = rule_breaches(p, split)
    assert len(breaches) == 1
    assert "couple" in breaches[0]
    # Both sites in the planner's words: the line of its own, and the named site.
    assert "job line 'X' (a site of its own)" in breaches[0]
    assert "site 'X'" in breaches[0]
    assert any("couple" in e for e in verify(p, split))
    together = np.array([p.line_index["j2"], p.line_index["j2"]])
    assert rule_breaches(p, together) == []


def test_a_site_typed_with_a_stray_space_in_the_workbook_is_the_same_site(tmp_path):
    # Excel hides a trailing space: 'Orange ' and 'Orange' are one hospital to a planner, and
    # the quota's list of sites is read with its spaces trimmed.
    import openpyxl

    from allocator.workbook import write_template, xlsx_to_snapshot_dict

    path = tmp_path / "template.xlsx"
    write_template(path)
    wb = openpyxl.load_workbook(path)
    wb["workers"].append(["w1", "A", None, None])
    wb["workers"].append(["w2", "B", None, None])
    wb["job_lines"].append(["j1", "Line 1", 1, None, None, "Orange "])
    wb["job_lines"].append(["j2", "Line 2", 1, None, None, " Orange"])
    wb["linked_workers"].append(["couple", "w1, w2"])
    wb["quotas"].append(["rural", "Orange", None, None, 2, None])
    wb.save(path)

    snap = xlsx_to_snapshot_dict(path)

    assert [j["site"] for j in snap["job_lines"]] == ["Orange", "Orange"]
    p = ProblemData.from_snapshot(RunSnapshot.parse(snap))
    assert p.site[0] == p.site[1]
    assert p.quotas[0].lines.tolist() == [0, 1]


def test_a_quota_on_a_site_whose_name_has_a_comma_round_trips_through_the_workbook():
    import copy
    import io

    from allocator.workbook import snapshot_to_xlsx, xlsx_to_snapshot_dict

    comma = "St Vincent's Hospital, Sydney"
    snap = {
        "format": "allocator-run/1",
        "workers": [{"id": "w1"}, {"id": "w2"}, {"id": "w3"}],
        "job_lines": [
            {"id": "j1", "max_n_workers": 2, "site": comma},
            {"id": "j2", "max_n_workers": 2, "site": "Orange"},
            {"id": "j3", "max_n_workers": 2},
        ],
        "quotas": [
            {"id": "both", "sites": [comma, "Orange"], "min_workers": 1},
            {"id": "one", "sites": [comma], "max_workers": 2},
        ],
    }
    RunSnapshot.parse(copy.deepcopy(snap))
    buf = io.BytesIO()
    snapshot_to_xlsx(snap, buf)
    back = xlsx_to_snapshot_dict(io.BytesIO(buf.getvalue()))
    assert [q["sites"] for q in back["quotas"]] == [[comma, "Orange"], [comma]]
    assert RunSnapshot.parse(back).fingerprint() == RunSnapshot.parse(snap).fingerprint()


def test_sites_a_cell_cannot_tell_apart_are_refused_by_the_writer_naming_the_row():
    import io

    import pytest

    from allocator.workbook import WorkbookError, snapshot_to_xlsx

    # 'A, B' is one site, and 'A' and 'B' two others: the cell "A, B" would read as the one.
    snap = {
        "format": "allocator-run/1",
        "workers": [{"id": "w1"}],
        "job_lines": [{"id": "j1", "max_n_workers": 1, "site": "A, B"},
                      {"id": "j2", "max_n_workers": 1, "site": "A"},
                      {"id": "j3", "max_n_workers": 1, "site": "B"}],
        "quotas": [{"id": "two", "sites": ["A", "B"], "max_workers": 1}],
    }
    RunSnapshot.parse(snap)
    with pytest.raises(WorkbookError) as info:
        snapshot_to_xlsx(snap, io.BytesIO())
    assert any("Sheet 'quotas', row 2, column 'sites'" in m and "rename the site" in m for m in info.value.messages)


def _couple_and_quota_run() -> RunSnapshot:
    return RunSnapshot.parse({
        "format": "allocator-run/1",
        "workers": [{"id": "w1"}, {"id": "w2"}, {"id": "w3"}],
        "job_lines": [
            {"id": "j1", "max_n_workers": 2, "site": "Orange"},
            {"id": "j2", "max_n_workers": 2, "site": "Orange"},
            {"id": "j3", "max_n_workers": 3, "site": "Dubbo"},
        ],
        "worker_preferences": [
            {"worker_id": w, "job_line_id": j, "rank": r}
            for w in ("w1", "w2", "w3") for j, r in (("j1", 1), ("j2", 2), ("j3", 3))
        ],
        "linked_workers": [{"id": "couple-7", "worker_ids": ["w1", "w2"]}],
        "quotas": [{"id": "rural-min", "sites": ["Dubbo"], "min_workers": 1}],
    })


def test_the_move_preview_says_when_the_move_alone_splits_a_link_or_misses_a_quota():
    from allocator.engine import solve
    from allocator.explain import preview_move

    snap = _couple_and_quota_run()
    res = solve(snap)
    got = {x.worker_id: x.job_line_id for x in res.allocations}
    # The couple is at Orange, w3 alone makes up the rural minimum at Dubbo.
    assert got == {"w1": "j1", "w2": "j1", "w3": "j3"}

    pv = preview_move(snap, res, "w1", "j3")  # w1 to Dubbo, w2 stays at Orange
    kinds = {x["kind"] for x in pv["breaks"]}
    assert "link" in kinds, pv["breaks"]
    link = next(x for x in pv["breaks"] if x["kind"] == "link")
    assert "couple-7" in link["message"] and "'Orange'" in link["message"] and "'Dubbo'" in link["message"]

    pv = preview_move(snap, res, "w3", "j2")  # nobody left at Dubbo
    quota = [x for x in pv["breaks"] if x["kind"] == "quota"]
    assert len(quota) == 1 and "rural-min" in quota[0]["message"] and "minimum of 1" in quota[0]["message"]
    assert pv["repair"] is not None  # the repair keeps the rules (w1 and w2 cannot both stay)
