"""The snapshot workbook (allocator/workbook/): round trips, template, and every error path."""

from __future__ import annotations

import functools
import io
import re
import zipfile
from datetime import datetime

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.demo import demo_snapshot
from allocator.snapshot import RunSettings, RunSnapshot
from allocator.workbook import (
    WorkbookError,
    snapshot_to_xlsx,
    write_template,
    xlsx_to_snapshot_dict,
)

SHEETS = [
    "README", "run", "workers", "job_lines", "worker_preferences", "preferencer_preferences",
    "eligibility", "weightings", "pins", "forbids", "linked_workers", "quotas", "previous_allocations",
]  # fmt: skip


def to_bytes(snapshot) -> bytes:
    buf = io.BytesIO()
    snapshot_to_xlsx(snapshot, buf)
    return buf.getvalue()


def read(data: bytes, **kw) -> dict:
    return xlsx_to_snapshot_dict(io.BytesIO(data), **kw)


def same_snapshot(a: dict, b: dict) -> bool:
    return RunSnapshot.parse(a).canonical() == RunSnapshot.parse(b).canonical()


@pytest.fixture(scope="module")
def small() -> dict:
    """A 20-worker demo run: every sheet has rows, pins and forbids included."""
    snap = demo_snapshot(20, seed=3)
    assert all(snap[k] for k in ("eligibility", "weightings", "pins", "forbids"))
    return snap


_WRITTEN: dict[int, tuple[dict, bytes]] = {}  # the module's fixtures, written once


def edited(snapshot: dict, edit) -> bytes:
    """The snapshot's workbook after `edit(workbook)`, as a planner would change it."""
    key = id(snapshot)
    if key not in _WRITTEN or _WRITTEN[key][0] is not snapshot:
        _WRITTEN[key] = (snapshot, to_bytes(snapshot))
    wb = openpyxl.load_workbook(io.BytesIO(_WRITTEN[key][1]))
    edit(wb)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def errors(data: bytes, **kw) -> list[str]:
    with pytest.raises(WorkbookError) as info:
        read(data, **kw)
    assert info.value.messages and all(isinstance(m, str) for m in info.value.messages)
    return info.value.messages


# -- round trips -------------------------------------------------------------------------------


def test_demo_round_trips_exactly():
    snap = demo_snapshot()
    back = read(to_bytes(snap))
    assert back == snap
    assert same_snapshot(back, snap)


@pytest.mark.parametrize(
    "snap",
    [
        demo_snapshot(300, 80, 2),
        demo_snapshot(60, seed=8),
    ],
)
def test_generated_runs_round_trip_after_validation(snap):
    assert same_snapshot(read(to_bytes(snap)), snap)


def test_a_validated_model_can_be_written(small):
    model = RunSnapshot.parse(small)
    assert same_snapshot(read(to_bytes(model)), small)


def test_round_trip_through_a_file(tmp_path, small):
    path = tmp_path / "run.xlsx"
    snapshot_to_xlsx(small, path)
    assert same_snapshot(xlsx_to_snapshot_dict(path), small)
    assert same_snapshot(xlsx_to_snapshot_dict(str(path)), small)


def test_values_are_kept_as_typed_nothing_neutralised():
    """Formula-like text, odd ids, huge seeds and fractional values survive unchanged."""
    snap = {
        "format": "allocator-run/1",
        "run": {"id": "=run", "name": "+61 2 9845 5555"},
        "settings": {"rng_seed": 2**62 + 1, "preferencer_weight": 0.1, "stability": True},
        "workers": [
            {"id": "007", "name": "=HYPERLINK(\"http://x\")", "qualification_ids": ["@tag", "-x"]},
            {"id": "1001", "name": "Zoë O'Brien-Ngata", "qualification_ids": []},
            {"id": "w 3", "name": "", "qualification_ids": ["ALS certified"]},
        ],
        "job_lines": [
            {"id": "j1", "name": "-Line 1", "max_n_workers": 3, "must_have_workers": True,
             "preferencer_ids": ["Dr K. Patel (ED Director)"]},
            {"id": "j2", "name": "Line 2", "max_n_workers": 0, "must_have_workers": False,
             "preferencer_ids": []},
        ],
        "worker_preferences": [
            {"worker_id": "007", "job_line_id": "j1", "rank": 1.5},
            {"worker_id": "007", "job_line_id": "j2", "rank": 1.5},
        ],
        "preferencer_preferences": [
            {"preferencer_id": "Dr K. Patel (ED Director)", "worker_id": "1001", "rank": 1},
            {"preferencer_id": "Dr Z. Nobody (elsewhere)", "worker_id": "007", "rank": 2.25},
        ],
        "eligibility": [
            {"job_line_id": "j1", "included_worker_ids": ["1001"], "excluded_worker_ids": ["w 3"],
             "included_qualification_ids": ["@tag"], "excluded_qualification_ids": []},
        ],
        "weightings": [
            {"worker_id": "007", "job_line_id": None, "value": -0.1},
            {"worker_id": "1001", "job_line_id": "j1", "value": 1e-9},
        ],
        "pins": [{"worker_id": "1001", "job_line_id": "j1"}],
        "forbids": [{"worker_id": "w 3", "job_line_id": "j1"}],
    }  # fmt: skip
    back = read(to_bytes(snap))
    assert back["settings"]["rng_seed"] == 2**62 + 1
    assert back["workers"][0]["name"] == '=HYPERLINK("http://x")'
    assert back["run"] == snap["run"]
    assert same_snapshot(back, snap)


def test_settings_left_out_read_back_as_defaults(small):
    snap = {k: v for k, v in small.items() if k != "settings"}
    back = read(to_bytes(snap))
    assert back["settings"] == {}
    assert RunSnapshot.parse(back).settings == RunSettings()


# -- template ----------------------------------------------------------------------------------


def test_template_has_every_sheet_headers_and_a_protected_readme(tmp_path):
    path = tmp_path / "template.xlsx"
    write_template(path)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == SHEETS
    assert wb["README"].protection.sheet
    readme = " ".join(str(c) for row in wb["README"].iter_rows(values_only=True) for c in row if c)
    for name in SHEETS[1:]:
        assert name in readme
    headers = {name: [c.value for c in wb[name][1]] for name in SHEETS[1:]}
    assert headers["workers"] == ["id", "name", "qualification_ids", "priority"]
    assert headers["job_lines"] == [
        "id", "name", "max_n_workers", "must_have_workers", "preferencer_ids", "site",
    ]  # fmt: skip
    assert headers["linked_workers"] == ["id", "worker_ids"]
    assert headers["quotas"] == ["id", "sites", "job_line_ids", "qualification_id", "min_workers", "max_workers"]
    assert headers["previous_allocations"] == ["worker_id", "job_line_id"]
    assert headers["weightings"] == ["worker_id", "job_line_id", "value"]
    assert headers["run"][:2] == ["key", "value"]
    run = {r[0]: r[1] for r in wb["run"].iter_rows(min_row=2, values_only=True)}
    assert run["preferencer_weight"] == 0.3 and run["format"] == "allocator-run/1"


def test_empty_template_reads_as_an_empty_run_and_says_what_is_missing(tmp_path):
    path = tmp_path / "template.xlsx"
    write_template(path)
    empty = xlsx_to_snapshot_dict(path, validate=False)
    assert empty["workers"] == [] and empty["job_lines"] == []
    assert RunSettings.model_validate(empty["settings"]) == RunSettings()
    messages = errors(path.read_bytes())
    assert any(m.startswith("Sheet 'workers'") for m in messages)
    assert any(m.startswith("Sheet 'job_lines'") for m in messages)


def test_a_filled_in_template_reads_as_a_valid_run(tmp_path):
    path = tmp_path / "template.xlsx"
    write_template(path)
    wb = openpyxl.load_workbook(path)
    for row in wb["run"].iter_rows(min_row=2):
        if row[0].value == "id":
            row[1].value = "2027-intake"
    wb["workers"].append(["w1", "A. Nguyen", "rural-ready, nights"])
    wb["workers"].append([2, "B. Smith"])  # an id typed as a number
    wb["job_lines"].append(["j1", "Line 1: ED / Gen Med / Surgery", 2, "yes", "Dr K. Patel"])
    wb["worker_preferences"].append(["w1", "j1", 1])
    wb["preferencer_preferences"].append(["Dr K. Patel", "2", 1])
    wb["weightings"].append(["2", None, -2])
    wb.save(path)
    snap = xlsx_to_snapshot_dict(path)
    assert snap["run"] == {"id": "2027-intake"}
    assert snap["workers"][0]["qualification_ids"] == ["rural-ready", "nights"]
    assert snap["workers"][1]["id"] == "2"
    assert snap["job_lines"][0]["must_have_workers"] is True
    assert snap["weightings"] == [{"worker_id": "2", "job_line_id": None, "value": -2}]
    RunSnapshot.parse(snap)


# -- malformed workbooks -----------------------------------------------------------------------


def _set(sheet: str, row: int, column: int, value):
    def edit(wb):
        # cell(..., value=None) would leave the old value in place
        wb[sheet].cell(row=row, column=column).value = value

    return edit


def _delete_column(sheet: str, column: int):
    return lambda wb: wb[sheet].delete_cols(column)


def _add_sheet(name: str):
    return lambda wb: wb.create_sheet(name).append(["x"])


def _remove_sheet(name: str):
    return lambda wb: wb.remove(wb[name])


def _exclude_pinned_worker(wb):
    worker, line = wb["pins"]["A2"].value, wb["pins"]["B2"].value
    ws = wb["eligibility"]
    ws.delete_rows(2, ws.max_row)
    ws.append([line, None, worker])


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # An empty id: the exact wording the planners' guide promises.
        (_set("workers", 7, 1, None), "Sheet 'workers', row 7: the id is empty"),
        # The same worker id twice names both rows.
        (_set("workers", 5, 1, "w01"), "Sheet 'workers', row 5: the id 'w01' is already on row 2"),
        # A capacity that is not a whole number.
        (_set("job_lines", 3, 3, 2.5), "Sheet 'job_lines', row 3: max_n_workers must be a whole number"),
        # A negative capacity.
        (_set("job_lines", 3, 3, -1), "Sheet 'job_lines', row 3: max_n_workers must be a whole number"),
        # A capacity in words.
        (_set("job_lines", 4, 3, "two"), "Sheet 'job_lines', row 4: max_n_workers must be a whole number (0 or more), not 'two'"),
        # A yes/no column with something else in it.
        (_set("job_lines", 2, 4, "maybe"), "Sheet 'job_lines', row 2: must_have_workers must be TRUE or FALSE, not 'maybe'"),
        # A rank in words.
        (_set("worker_preferences", 2, 3, "first"), "Sheet 'worker_preferences', row 2: the rank must be a number, not 'first'"),
        # A rank below 1.
        (_set("worker_preferences", 3, 3, 0), "Sheet 'worker_preferences', row 3: the rank must be 1 or more"),
        # An empty rank.
        (_set("preferencer_preferences", 2, 3, None), "Sheet 'preferencer_preferences', row 2: the rank is empty"),
        # A weighting value that is not a number.
        (_set("weightings", 2, 3, "lots"), "Sheet 'weightings', row 2: the value must be a number"),
        # A date typed where an id belongs.
        (_set("pins", 2, 1, datetime(2027, 1, 1)), "Sheet 'pins', row 2: the worker id is a date or time"),
        # A worker id that is not on the workers sheet (found by snapshot validation).
        (_set("worker_preferences", 4, 1, "nobody"), "Sheet 'worker_preferences', row 4: worker 'nobody' is not a worker of this run"),
        # A job line id that is not on the job_lines sheet.
        (_set("forbids", 2, 2, "j99"), "Sheet 'forbids', row 2: job line 'j99' is not a job line of this run"),
        # A setting out of range.
        (_set("run", 5, 2, 2), "Sheet 'run', row 5: preferencer_weight"),
        # A key the run sheet does not know.
        (_set("run", 12, 1, "colour"), "Sheet 'run', row 12: 'colour' is not a run key"),
        # A setting value of the wrong kind.
        (_set("run", 9, 2, "sometimes"), "Sheet 'run', row 9: allow_worker_preference_ties must be TRUE or FALSE"),
        # A required column deleted.
        (_delete_column("job_lines", 3), "Sheet 'job_lines': there is no 'max_n_workers' column in row 1."),
        # A misspelt column.
        (_set("workers", 1, 3, "qualifications"), "Sheet 'workers': the column 'qualifications' is not one of id, name, qualification_ids"),
        # A value in a column without a name.
        (_set("pins", 2, 5, "note"), "Sheet 'pins', row 2: column E has a value but no column name in row 1."),
        # The column names row left blank.
        (lambda wb: wb["forbids"].insert_rows(1), "Sheet 'forbids': row 1 must hold the column names, but it is blank."),
        # A sheet the snapshot does not have.
        (_add_sheet("Sheet1"), "Sheet 'Sheet1' is not one of the snapshot's sheets"),
        # A misspelt list sheet.
        (lambda wb: setattr(wb["pins"], "title", "pin"), "Sheet 'pin' is not one of the snapshot's sheets"),
        # No workers sheet at all.
        (_remove_sheet("workers"), "The workbook has no 'workers' sheet."),
        # Two rows of rules for one job line.
        (lambda wb: wb["eligibility"].append([wb["eligibility"]["A2"].value]), "a job line has one row of rules"),
        # A pin onto a line the worker may not do (found by snapshot validation).
        (_exclude_pinned_worker, "Sheet 'pins', row 2: worker"),
    ],
)  # fmt: skip
def test_malformed_workbook_names_the_sheet_and_row(small, edit, expected):
    messages = errors(edited(small, edit))
    assert any(m.startswith(expected) or expected in m for m in messages), messages


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_set("workers", 1, 8, "notes"), "Sheet 'workers': the column 'notes' is not one of id, name, qualification_ids, priority; rename it, or start its name with # to keep it as a note."),
        (_set("job_lines", 1, 2, "id"), "Sheet 'job_lines': the column 'id' appears twice in row 1."),
        (_delete_column("workers", 1), "Sheet 'workers': there is no 'id' column in row 1."),
    ],
)  # fmt: skip
def test_a_sheet_of_workers_or_lines_with_unusable_column_names_is_said_once(small, edit, expected):
    # Its rows cannot be read, so the run does not "have no workers" and the references to
    # them are not dangling: before, one misnamed column came with a message per reference.
    messages = errors(edited(small, edit))
    assert messages[0] == expected
    assert not any("is not a worker of this run" in m or "is not a job line of this run" in m or "the run has no" in m
                   for m in messages), messages


def test_ties_when_ties_are_not_allowed_are_reported_on_the_preferences_sheet(small):
    def edit(wb):
        for row in wb["run"].iter_rows(min_row=2):
            if row[0].value == "allow_worker_preference_ties":
                row[1].value = False

    messages = errors(edited(small, edit))
    assert any(m.startswith("Sheet 'worker_preferences': worker") for m in messages), messages


def test_every_problem_is_reported_not_just_the_first(small):
    def edit(wb):
        wb["workers"]["A3"] = None
        wb["workers"]["A4"] = None
        wb["job_lines"]["C2"] = "x"

    messages = errors(edited(small, edit))
    assert len(messages) == 3
    assert [m.split(":")[0] for m in messages] == [
        "Sheet 'workers', row 3", "Sheet 'workers', row 4", "Sheet 'job_lines', row 2",
    ]  # fmt: skip


def test_note_columns_and_sheets_blank_rows_and_padding_are_ignored(small):
    def edit(wb):
        ws = wb["workers"]
        note = ws.max_column + 1  # the first column the template does not use
        ws.cell(row=1, column=note, value="# comment")
        ws.cell(row=2, column=note, value="returning from leave")
        ws.insert_rows(5, amount=2)  # blank rows in the middle
        ws["A3"] = "  " + ws["A3"].value + " "  # spaces around an id
        wb.create_sheet("#scratch").append(["anything"])

    assert same_snapshot(read(edited(small, edit)), small)


def test_sheet_names_and_headers_tolerate_case_and_spaces(small):
    def edit(wb):
        ws = wb["job_lines"]
        ws.title = "Job Lines"
        ws["C1"] = "Max N Workers"

    assert same_snapshot(read(edited(small, edit)), small)


def test_optional_sheets_and_columns_may_be_left_out(small):
    def edit(wb):
        for name in ("README", "run", "eligibility", "weightings", "pins", "forbids"):
            wb.remove(wb[name])
        wb["workers"].delete_cols(3)  # no qualification_ids

    snap = read(edited(small, edit))
    assert snap["pins"] == [] and "settings" not in snap
    assert all("qualification_ids" not in w for w in snap["workers"])
    RunSnapshot.parse(snap)


def test_an_empty_list_sheet_without_headers_is_an_empty_list(small):
    def edit(wb):
        wb.remove(wb["forbids"])
        wb.create_sheet("forbids")

    assert read(edited(small, edit))["forbids"] == []


def test_not_a_workbook_is_a_clear_error(tmp_path):
    assert errors(b"id,name\nw1,A\n")[0].startswith("The file is not an Excel workbook")
    assert errors(b"")[0].startswith("The file is not an Excel workbook")
    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    with pytest.raises(WorkbookError, match="not an Excel workbook"):
        xlsx_to_snapshot_dict(broken)
    with pytest.raises(WorkbookError, match="File not found"):
        xlsx_to_snapshot_dict(tmp_path / "missing.xlsx")


def test_a_password_protected_workbook_is_said_so():
    # Excel saves an encrypted workbook (and an .xls) as an OLE2 file: "File is not a zip file" said nothing.
    messages = errors(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    assert messages == [
        "The workbook is password-protected (encrypted), or an old Excel 97-2003 (.xls) file renamed .xlsx, "
        "so it cannot be read. In Excel, remove the password (File > Info > Protect Workbook) or save it as "
        "an Excel Workbook (.xlsx), then import it again."
    ]


def _with_formula(
    data: bytes, sheet_index: int, ref: str, formula: str, saved: str | None
) -> bytes:
    """Rewrite one cell of a saved workbook as a formula, with or without a saved result,
    the way Excel stores it (openpyxl itself never writes saved results)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            blob = src.read(item.filename)
            if item.filename == f"xl/worksheets/sheet{sheet_index}.xml":
                xml = blob.decode()
                cell = re.search(rf'<c r="{ref}"[^>]*>.*?</c>', xml).group(0)
                value = f"<v>{saved}</v>" if saved is not None else ""
                xml = xml.replace(cell, f'<c r="{ref}"><f>{formula}</f>{value}</c>')
                blob = xml.encode()
            dst.writestr(item, blob)
    return out.getvalue()


def test_formulas_are_read_through_their_saved_result(small):
    data = to_bytes(small)
    sheet = SHEETS.index("worker_preferences") + 1
    original = small["worker_preferences"][0]["rank"]
    with_result = _with_formula(data, sheet, "C2", "0+1", str(original))
    assert read(with_result)["worker_preferences"][0]["rank"] == original
    without = _with_formula(data, sheet, "C2", "0+1", None)
    messages = errors(without)
    assert messages == [
        "Sheet 'worker_preferences', row 2: column C holds a formula without a saved result; "
        "open and save the workbook in Excel, or type the value."
    ]


def test_writing_an_id_with_a_comma_into_a_list_cell_is_refused(small):
    snap = dict(small)
    snap["workers"] = [dict(w) for w in small["workers"]]
    snap["workers"][0]["qualification_ids"] = ["ALS, advanced"]
    with pytest.raises(WorkbookError, match="contains a comma"):
        to_bytes(snap)


_cell_values = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(-5, 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from(["w01", "j01", "TRUE", "1.5", ",", " , ", "=1+1", "#"]),
)


@functools.cache
def _tiny_workbook() -> bytes:
    return to_bytes(demo_snapshot(8, seed=1))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(SHEETS[1:]), st.integers(1, 8), st.integers(1, 6), _cell_values),
        min_size=1,
        max_size=6,
    )
)
def test_any_cell_garbage_gives_a_snapshot_or_a_workbook_error(changes):
    """Never a traceback: whatever a planner types, reading returns or raises WorkbookError."""
    wb = openpyxl.load_workbook(io.BytesIO(_tiny_workbook()))
    for sheet, row, col, value in changes:
        if isinstance(value, str):  # control characters cannot be stored in a workbook
            value = "".join(ch for ch in value if ch.isprintable())
        wb[sheet].cell(row=row, column=col).value = value
    buf = io.BytesIO()
    wb.save(buf)
    data = buf.getvalue()
    try:
        result = read(data)
    except WorkbookError as exc:
        assert exc.messages
        assert all(m.startswith(("Sheet '", "The workbook", "Workbook")) for m in exc.messages), (
            exc.messages
        )
    else:
        RunSnapshot.parse(result)


@pytest.mark.timeout(60)
def test_a_cell_at_the_sheets_far_corner_is_read_at_once_and_named(small):
    # One note at XFD1048576 made the sheet state a million rows of 16,384 cells; reading it
    # padded to that size did not end (an 18 KB upload held `import` for good).
    messages = errors(edited(small, _set("pins", 1_048_576, 16_384, "note")))
    assert "Sheet 'pins', row 1048576: column XFD has a value but no column name in row 1." in messages
