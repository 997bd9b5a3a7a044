"""The workbook and the business rules (business-rules.md): a site column on job_lines, a
priority column on workers, and the linked_workers, quotas and previous_allocations sheets,
each read and written, with bad cells named by sheet and row."""

from __future__ import annotations

import copy
import io

import openpyxl
import pytest

from allocator.demo import demo_snapshot
from allocator.snapshot import RunSnapshot
from allocator.workbook import (
    WorkbookError,
    snapshot_to_xlsx,
    write_template,
    xlsx_to_snapshot_dict,
)


def rules_run() -> dict:
    snap = demo_snapshot(20, seed=3)
    for line, site in zip(snap["job_lines"], ["Orange Base Hospital", "Orange Base Hospital", "Dubbo Base Hospital"], strict=False):
        line["site"] = site
    workers = [w["id"] for w in snap["workers"]]
    snap["workers"][0]["priority"] = 1
    snap["workers"][1]["priority"] = 2
    snap["linked_workers"] = [
        {"id": "couple-7", "worker_ids": workers[2:4]},
        {"id": "trio", "worker_ids": workers[4:7]},
    ]
    lines = [j["id"] for j in snap["job_lines"]]
    snap["quotas"] = [
        {"id": "rural-min", "sites": ["Dubbo Base Hospital"], "min_workers": 1},
        {"id": "cap", "job_line_ids": lines[:2], "qualification_id": "tag-not-held", "max_workers": 3},
        {"id": "both-bounds", "sites": ["Orange Base Hospital", "Dubbo Base Hospital"], "min_workers": 1, "max_workers": 20},
    ]
    snap["previous_allocations"] = [
        {"worker_id": workers[0], "job_line_id": lines[0]},
        {"worker_id": workers[5], "job_line_id": lines[2]},
    ]
    snap["settings"] = {**snap.get("settings", {}), "fewest_moves": True}
    # Pins of one link must share a site; the demo's pins are not about links.
    linked = {w for link in snap["linked_workers"] for w in link["worker_ids"]}
    snap["pins"] = [p for p in snap["pins"] if p["worker_id"] not in linked]
    RunSnapshot.parse(copy.deepcopy(snap))
    return snap


def to_bytes(snapshot) -> bytes:
    buf = io.BytesIO()
    snapshot_to_xlsx(snapshot, buf)
    return buf.getvalue()


def read(data: bytes) -> dict:
    return xlsx_to_snapshot_dict(io.BytesIO(data))


def edited(snapshot: dict, edit) -> bytes:
    wb = openpyxl.load_workbook(io.BytesIO(to_bytes(snapshot)))
    edit(wb)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def errors(data: bytes) -> list[str]:
    with pytest.raises(WorkbookError) as info:
        read(data)
    return info.value.messages


def test_every_rule_round_trips():
    snap = rules_run()
    back = read(to_bytes(snap))
    assert back == snap  # the keys left out stay out; nothing is added
    assert RunSnapshot.parse(back) == RunSnapshot.parse(snap)


def test_a_validated_model_with_every_rule_round_trips():
    model = RunSnapshot.parse(rules_run())
    assert RunSnapshot.parse(read(to_bytes(model))).canonical() == model.canonical()


def test_a_run_without_rules_reads_back_without_their_keys():
    snap = demo_snapshot(20, seed=4)
    for key in ("linked_workers", "quotas", "previous_allocations"):
        snap.pop(key, None)
    for line in snap["job_lines"]:
        line.pop("site", None)
    for worker in snap["workers"]:
        worker.pop("priority", None)
    back = read(to_bytes(snap))
    assert not {"linked_workers", "quotas", "previous_allocations"} & back.keys()
    assert all("site" not in j for j in back["job_lines"]) and all("priority" not in w for w in back["workers"])
    assert RunSnapshot.parse(back).to_json() == RunSnapshot.parse(snap).to_json()


def test_the_template_explains_each_rule_in_planners_words(tmp_path):
    path = tmp_path / "template.xlsx"
    write_template(path)
    wb = openpyxl.load_workbook(path)
    readme = " ".join(str(c) for row in wb["README"].iter_rows(values_only=True) for c in row if c)
    for words in ("must be placed at the same site", "Minimums and maximums of workers",
                  "as few of these workers as possible are moved", "1 is placed first",
                  "Blank: the line is a site of its own"):
        assert words in readme
    run = {r[0]: r[1] for r in wb["run"].iter_rows(min_row=2, values_only=True)}
    assert run["fewest_moves"] is False


def test_a_filled_in_template_with_rules_reads_as_a_valid_run(tmp_path):
    path = tmp_path / "template.xlsx"
    write_template(path)
    wb = openpyxl.load_workbook(path)
    wb["workers"].append(["w1", "A. Nguyen", None, 1])
    wb["workers"].append(["w2", "B. Smith", "ed-ready", None])
    wb["job_lines"].append(["j1", "Line 1", 2, None, None, "Orange Base Hospital"])
    wb["job_lines"].append(["j2", "Line 2", 2, None, None, "  "])  # blank: a site of its own
    wb["linked_workers"].append(["couple-7", "w1, w2"])
    wb["quotas"].append(["rural", "Orange Base Hospital", None, None, 1, None])
    wb["quotas"].append(["ed", None, "j1,j2", "ed-ready", None, 1])
    wb["previous_allocations"].append(["w1", "j2"])
    wb.save(path)

    snap = xlsx_to_snapshot_dict(path)

    assert snap["workers"][0]["priority"] == 1 and "priority" not in snap["workers"][1]
    assert snap["job_lines"][0]["site"] == "Orange Base Hospital" and "site" not in snap["job_lines"][1]
    assert snap["linked_workers"] == [{"id": "couple-7", "worker_ids": ["w1", "w2"]}]
    assert snap["quotas"] == [
        {"id": "rural", "sites": ["Orange Base Hospital"], "min_workers": 1},
        {"id": "ed", "job_line_ids": ["j1", "j2"], "qualification_id": "ed-ready", "max_workers": 1},
    ]
    assert snap["previous_allocations"] == [{"worker_id": "w1", "job_line_id": "j2"}]
    model = RunSnapshot.parse(snap)
    assert model.quotas[0].min_workers == 1 and model.quotas[1].min_workers == 0


def _set(sheet: str, row: int, column: int, value):
    def edit(wb):
        wb[sheet].cell(row=row, column=column).value = value

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_set("workers", 2, 4, "first"), "Sheet 'workers', row 2: priority must be a whole number (1 or more; 1 is placed first), not 'first'"),
        (_set("workers", 2, 4, 0), "Sheet 'workers', row 2: priority must be a whole number (1 or more; 1 is placed first), not 0"),
        (_set("workers", 3, 4, 1.5), "Sheet 'workers', row 3: priority must be a whole number (1 or more; 1 is placed first), not 1.5"),
        (_set("linked_workers", 2, 2, "w04, w99"), "Sheet 'linked_workers', row 2 (id 'couple-7'): worker 'w99' is not a worker of this run"),
        (_set("linked_workers", 3, 2, "w03, w05"), "Sheet 'linked_workers', row 3 (id 'trio'): worker 'w03' is already in link 'couple-7'"),
        (_set("linked_workers", 2, 2, "w03"), "Sheet 'linked_workers', row 2 (id 'couple-7'): a link has 2 to 4 workers, this one has 1"),
        (_set("linked_workers", 3, 1, "couple-7"), "Sheet 'linked_workers', row 3: the id 'couple-7' is already on row 2"),
        (_set("quotas", 2, 3, "j1"), "Sheet 'quotas', row 2 (id 'rural-min'): names both sites and job lines"),
        (_set("quotas", 3, 3, None), "Sheet 'quotas', row 3 (id 'cap'): names neither sites nor job lines"),
        (_set("quotas", 2, 2, "Bathurst"), "Sheet 'quotas', row 2 (id 'rural-min'): site 'Bathurst' is not the site of any job line"),
        (_set("quotas", 4, 5, 30), "Sheet 'quotas', row 4 (id 'both-bounds'): the minimum (30) is above the maximum (20)"),
        (_set("quotas", 3, 6, -1), "Sheet 'quotas', row 3: max_workers must be a whole number (0 or more), not -1"),
        (_set("previous_allocations", 3, 1, "w01"), "Sheet 'previous_allocations', row 3: the worker 'w01' is already on row 2; a worker has one previous job line."),
        (_set("previous_allocations", 2, 2, "j99"), "Sheet 'previous_allocations', row 2: job line 'j99' is not a job line of this run"),
        (_set("run", 11, 2, "often"), "Sheet 'run', row 11: fewest_moves must be TRUE or FALSE, not 'often'"),
    ],
)  # fmt: skip
def test_bad_rule_cells_are_named_by_sheet_and_row(edit, expected):
    snap = rules_run()
    assert [w["id"] for w in snap["workers"][:7]] == ["w01", "w02", "w03", "w04", "w05", "w06", "w07"]
    messages = errors(edited(snap, edit))
    assert any(expected in m for m in messages), messages
