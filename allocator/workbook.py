"""The run snapshot as an Excel workbook, for planners who prepare runs in a spreadsheet.

One sheet per snapshot list (spec/run-snapshot.md), plus a ``run`` sheet of key/value rows
(the run's id and name and each setting) and a protected ``README`` sheet that explains the
others in planners' words. `write_template` writes an empty workbook to fill in.

Reading never raises anything but `WorkbookError`, whose messages name the sheet and the
row as Excel numbers them ("Sheet 'workers', row 7: the id is empty"). Values are taken as
typed: nothing is neutralised or rewritten on import (a name that starts with ``=`` stays
that text), and cell types are only converted where the snapshot needs another type (a
worker id typed as the number 1001 becomes the text ``"1001"``).

This module is for snapshots only; result exports (CSV/XLSX of allocations) live elsewhere.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from allocator.snapshot import FORMAT, RunSnapshot, Settings, SnapshotError, input_problems

__all__ = ["WorkbookError", "snapshot_to_xlsx", "xlsx_to_snapshot_dict", "write_template"]

PathOrBuffer = str | Path | IO[bytes]

# Excel's own limits: rows per sheet (one is the header) and characters per cell.
_MAX_ROWS = 1_048_576 - 1
_MAX_CELL = 32_767
# Past this many problems a planner needs the first ones fixed, not a longer list.
_MAX_MESSAGES = 100
# Integers beyond this lose digits as Excel numbers, so they are written as text.
_EXACT_INT = 2**53


class WorkbookError(ValueError):
    """A workbook that cannot be read (or written); ``messages`` lists every problem.

    Each message names the sheet and, where it applies, the row as Excel shows it.
    """

    def __init__(self, messages: list[str]):
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


# -- layout ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    name: str
    kind: str  # id | optional_id | text | ids | whole | bool | number | rank
    required: bool
    width: int
    help: str


@dataclass(frozen=True)
class _Sheet:
    name: str
    columns: tuple[_Column, ...]
    help: str
    unique: str | None = None  # a column whose values must differ from row to row


_SHEETS: tuple[_Sheet, ...] = (
    _Sheet(
        "workers",
        (
            _Column("id", "id", True, 14, "A unique id for the worker, e.g. w001."),
            _Column("name", "text", False, 28, "The worker's name as planners know it."),
            _Column(
                "qualification_ids",
                "ids",
                False,
                48,
                "The worker's qualification tags, separated by commas, "
                "e.g. rural-ready, paediatrics.",
            ),
        ),
        "One row per worker (junior doctor) taking part in this run.",
        unique="id",
    ),
    _Sheet(
        "job_lines",
        (
            _Column("id", "id", True, 14, "A unique id for the job line, e.g. j12."),
            _Column("name", "text", False, 52, "The line's name, e.g. Line 12: ED / Gen Med."),
            _Column("max_n_workers", "whole", True, 14, "How many workers the line takes at most."),
            _Column(
                "must_have_workers",
                "bool",
                False,
                18,
                "TRUE if the line must get at least one worker (nights, ED). Blank means FALSE.",
            ),
            _Column(
                "preferencer_ids",
                "ids",
                False,
                60,
                "The supervisors whose rankings of workers count for this line, "
                "separated by commas.",
            ),
        ),
        "One row per job line (a year-long rotation) in this run.",
        unique="id",
    ),
    _Sheet(
        "worker_preferences",
        (
            _Column("worker_id", "id", True, 14, "The worker who ranks."),
            _Column("job_line_id", "id", True, 14, "The job line they rank."),
            _Column(
                "rank",
                "rank",
                True,
                10,
                "1 is their first choice. Equal numbers are a tie; 1,1,3 and 1,1,2 and "
                "1.5,1.5,3 all mean the same.",
            ),
        ),
        "One row per job line a worker ranked. Lines a worker did not rank share the "
        "places after their last choice.",
    ),
    _Sheet(
        "preferencer_preferences",
        (
            _Column("preferencer_id", "id", True, 40, "The supervisor who ranks."),
            _Column("worker_id", "id", True, 14, "The worker they rank."),
            _Column("rank", "rank", True, 10, "1 is their first choice; ties as for workers."),
        ),
        "One row per worker a supervisor (a preferencer) ranked. A supervisor's rankings "
        "count on the job lines that name them in preferencer_ids; rankings by a supervisor "
        "no line names are allowed and have no effect.",
    ),
    _Sheet(
        "eligibility",
        (
            _Column("job_line_id", "id", True, 14, "The job line these rules are for."),
            _Column(
                "included_worker_ids",
                "ids",
                False,
                30,
                "Workers always allowed on the line, whatever their tags.",
            ),
            _Column("excluded_worker_ids", "ids", False, 30, "Workers never allowed on the line."),
            _Column(
                "included_qualification_ids",
                "ids",
                False,
                30,
                "If filled in, only workers with at least one of these tags are allowed.",
            ),
            _Column(
                "excluded_qualification_ids",
                "ids",
                False,
                30,
                "Workers with any of these tags are not allowed.",
            ),
        ),
        "At most one row per job line; a line without a row admits everyone. The rules "
        "apply in this order, first match wins: included worker (allowed), excluded worker "
        "(not allowed), excluded tag (not allowed), included tag (allowed), and then: not "
        "allowed if the line lists included tags, allowed otherwise. Lists are separated "
        "by commas.",
        unique="job_line_id",
    ),
    _Sheet(
        "weightings",
        (
            _Column("worker_id", "id", True, 14, "The worker."),
            _Column(
                "job_line_id",
                "optional_id",
                False,
                14,
                "The job line; leave blank for a weighting on every line.",
            ),
            _Column(
                "value",
                "number",
                True,
                10,
                "Positive discourages the placement, negative favours it (e.g. -2 for a "
                "family reason to stay near a site).",
            ),
        ),
        "Adjustments on the organisation's side of the score. Rows for the same worker "
        "and line add up.",
    ),
    _Sheet(
        "pins",
        (
            _Column("worker_id", "id", True, 14, "The worker."),
            _Column("job_line_id", "id", True, 14, "The job line they must get."),
        ),
        "Planner decisions made in advance: the worker gets this line. At most one per "
        "worker, and the worker must be allowed on the line.",
        unique="worker_id",
    ),
    _Sheet(
        "forbids",
        (
            _Column("worker_id", "id", True, 14, "The worker."),
            _Column("job_line_id", "id", True, 14, "The job line they must not get."),
        ),
        "Planner decisions made in advance: the worker does not get this line.",
    ),
)
_BY_NAME = {s.name: s for s in _SHEETS}

_SETTING_HELP = {
    "preferencer_weight": "Share of the score given to supervisors' rankings and "
    "weightings, from 0 to 1 (default 0.3).",
    "preference_power": "Above 1, low choices hurt more (default 1).",
    "max_seconds": "Time limit of a solve in seconds (default 60).",
    "rng_seed": "Picks among equally good allocations (default 1234).",
    "allow_worker_preference_ties": "FALSE makes equal worker ranks an error (default TRUE).",
    "stability": "TRUE: no worker is left wanting a line that would also rather have them "
    "(default FALSE).",
}
_SETTING_KIND = {
    "preferencer_weight": "number",
    "preference_power": "number",
    "max_seconds": "number",
    "rng_seed": "whole",
    "allow_worker_preference_ties": "bool",
    "stability": "bool",
}
_RUN_KEYS = {
    "format": f"The snapshot format; leave as {FORMAT}.",
    "id": "The run's id, e.g. 2027-intake.",
    "name": "The run's name, e.g. 2027 PGY1 intake.",
    **_SETTING_HELP,
}
_SHEET_ORDER = ("README", "run", *(s.name for s in _SHEETS))

_README_INTRO = (
    "How to fill in this workbook",
    "",
    "This workbook holds one allocation run: who takes part, what they asked for, and the "
    "rules. Each sheet is one list. The first row of a sheet holds the column names; "
    "keep them as they are. Blank rows are skipped.",
    "Ids are short codes (w001, j12) that must be unique on their sheet; the other "
    "sheets refer to workers and job lines by these ids. Where a cell holds several ids, "
    "separate them with commas (so an id itself cannot contain a comma). Spaces around "
    "ids are ignored.",
    "A column whose name starts with # is a note column and is not read, as is this README sheet.",
    "",
)


# -- writing ---------------------------------------------------------------------------------


def snapshot_to_xlsx(snapshot: dict[str, Any] | RunSnapshot, path_or_buffer: PathOrBuffer) -> None:
    """Write a snapshot as a workbook with one sheet per list.

    Parameters
    ----------
    snapshot
        An ``allocator-run/1`` snapshot as a dict (validated or not) or a `RunSnapshot`.
        Lists left out are written as empty sheets; settings left out as blank values
        (which read back as the defaults).
    path_or_buffer
        A file path or a binary file object.

    Raises
    ------
    WorkbookError
        If the snapshot cannot be represented in a workbook: an id that appears in a
        comma-separated cell contains a comma, a sheet has more rows than Excel allows, or
        a cell is longer than Excel allows.
    """
    data = snapshot.model_dump(mode="json") if isinstance(snapshot, RunSnapshot) else snapshot
    # Every cell is prepared before the workbook exists: a refused snapshot then leaves no
    # half-written streaming sheets behind.
    problems: list[str] = []
    run = data.get("run") or {}
    settings = data.get("settings") or {}
    run_rows = [
        ["format", data.get("format", FORMAT)],
        ["id", run.get("id")],
        ["name", run.get("name")],
    ]
    run_rows += [[key, settings.get(key)] for key in _SETTING_HELP]
    run_rows += [[key, value] for key, value in settings.items() if key not in _SETTING_HELP]
    tables = [
        (
            "run",
            [("key", 30), ("value", 30), ("# meaning", 90)],
            [
                [key, _prepare(value, "run", None, key, problems), _RUN_KEYS.get(key, "")]
                for key, value in run_rows
            ],
        )
    ]
    for sheet in _SHEETS:
        entries = data.get(sheet.name) or []
        if len(entries) > _MAX_ROWS:
            problems.append(
                f"Sheet '{sheet.name}': {len(entries):,} rows do not fit in one Excel sheet "
                f"(at most {_MAX_ROWS:,}); use the JSON snapshot for a run this size."
            )
            continue
        rows = []
        for i, entry in enumerate(entries):
            values = []
            for col in sheet.columns:
                value = entry.get(col.name) if isinstance(entry, dict) else None
                if col.kind == "ids":
                    value = _join_ids(value, sheet.name, i, col.name, problems)
                values.append(_prepare(value, sheet.name, i, col.name, problems))
            rows.append(values)
        tables.append((sheet.name, [(c.name, c.width) for c in sheet.columns], rows))
    if problems:
        raise WorkbookError(_capped(problems))

    wb = Workbook(write_only=True)
    _write_readme(wb)
    for name, columns, rows in tables:
        ws = _new_sheet(wb, name, columns)
        for values in rows:
            ws.append([_text_cell(ws, v.text) if isinstance(v, _Text) else v for v in values])
    wb.save(path_or_buffer)


def write_template(path: PathOrBuffer) -> None:
    """Write an empty snapshot workbook to fill in: headers, README and default settings.

    Parameters
    ----------
    path
        A file path or a binary file object.
    """
    settings = Settings().model_dump()
    snapshot_to_xlsx(
        {
            "format": FORMAT,
            "run": {"id": None, "name": None},
            "settings": settings,
            "workers": [],
            "job_lines": [],
        },  # fmt: skip
        path,
    )


def _write_readme(wb: Workbook) -> None:
    ws = wb.create_sheet("README")
    ws.column_dimensions["A"].width = 28
    ws.column_dimensions["B"].width = 110
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")

    def line(a: str = "", b: str = "", *, strong: bool = False) -> None:
        ca, cb = WriteOnlyCell(ws, value=a), WriteOnlyCell(ws, value=b)
        ca.alignment = cb.alignment = wrap
        if strong:
            ca.font = bold
        ws.append([ca, cb])

    title, *intro = _README_INTRO
    line(title, strong=True)
    for text in intro:
        line("", text)
    line("run", "Key/value rows: the run's id and name, and the solve settings. A blank value "
         "means the default.", strong=True)  # fmt: skip
    for key, text in _RUN_KEYS.items():
        line(f"  {key}", text)
    for sheet in _SHEETS:
        line("")
        line(sheet.name, sheet.help, strong=True)
        for col in sheet.columns:
            need = "required" if col.required else "optional"
            line(f"  {col.name}", f"({need}) {col.help}")
    # Read-only so the instructions survive; no password, a planner may still unprotect it.
    ws.protection.sheet = True


def _new_sheet(wb: Workbook, name: str, columns: list[tuple[str, int]]):
    ws = wb.create_sheet(name)
    for k, (_, width) in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(k)].width = width
    ws.freeze_panes = "A2"
    header = []
    for title, _ in columns:
        cell = WriteOnlyCell(ws, value=title)
        cell.font = Font(bold=True)
        header.append(cell)
    ws.append(header)
    return ws


def _join_ids(value: Any, sheet: str, i: int, column: str, problems: list[str]) -> Any:
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list | tuple):
        return value
    for item in value:
        if isinstance(item, str) and "," in item:
            problems.append(
                f"Sheet '{sheet}', row {i + 2}, column '{column}': the id {item!r} contains a "
                "comma, which a workbook cell of ids cannot hold; rename it."
            )
    return ", ".join(str(x) for x in value)


@dataclass(frozen=True)
class _Text:
    """Text that openpyxl would take for a formula (it starts with =)."""

    text: str


def _text_cell(ws, text: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws, value=text)
    cell.data_type = "s"  # keep it the text it is, not a formula
    return cell


def _prepare(value: Any, sheet: str, i: int | None, column: str, problems: list[str]) -> Any:
    """A value ready for openpyxl that reads back as the same value."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        # Excel numbers are doubles: keep big integers exact as text.
        return str(value) if abs(value) > _EXACT_INT else value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if not isinstance(value, str):
        value = str(value)
    if len(value) > _MAX_CELL:
        where = f"row {i + 2}, " if i is not None else ""
        problems.append(
            f"Sheet '{sheet}', {where}column '{column}': {len(value):,} characters do not fit "
            f"in one Excel cell (at most {_MAX_CELL:,})."
        )
        return None
    return _Text(value) if value.startswith("=") else value


# -- reading ---------------------------------------------------------------------------------


class _Formula:
    """Marks a cell that holds a formula; its saved result is looked up in a second pass."""


def xlsx_to_snapshot_dict(path_or_buffer: PathOrBuffer, *, validate: bool = True) -> dict[str, Any]:
    """Read a snapshot workbook into an ``allocator-run/1`` snapshot dict.

    Parameters
    ----------
    path_or_buffer
        A file path or a binary file object of an ``.xlsx`` workbook.
    validate
        Also check the result with `allocator.snapshot.RunSnapshot.parse` (references,
        pins, ties, settings ranges) and report its findings by sheet and row.

    Returns
    -------
    dict
        The snapshot, with every list present (empty when its sheet is missing or empty).

    Raises
    ------
    WorkbookError
        For anything wrong with the file or its contents; each message names the sheet
        and, where it applies, the Excel row.
    """
    sheets = _read_cells(path_or_buffer)
    problems: list[str] = []
    rows_of: dict[str, list[int]] = {}
    found = {_normal(name): name for name in sheets}
    for name in sheets:
        key = _normal(name)
        if key != "readme" and not key.startswith("#") and key != "run" and key not in _BY_NAME:
            problems.append(
                f"Sheet '{name}' is not one of the snapshot's sheets "
                f"({', '.join(_SHEET_ORDER)}); rename or delete it, or start its name with #."
            )
    for required in ("workers", "job_lines"):
        if required not in found:
            problems.append(f"The workbook has no '{required}' sheet.")

    snapshot: dict[str, Any] = {"format": FORMAT}
    run_rows: dict[str, int] = {}
    if "run" in found:
        run, settings, fmt, run_rows = _read_run(found["run"], sheets[found["run"]], problems)
        if fmt is not None:
            snapshot["format"] = fmt
        if run:
            snapshot["run"] = run
        snapshot["settings"] = settings
    dropped: dict[str, list[str | None]] = {"workers": [], "job_lines": []}
    for sheet in _SHEETS:
        if sheet.name in found:
            actual = found[sheet.name]
            entries, rows = _read_list(sheet, actual, sheets[actual], problems, dropped.get(sheet.name))
        else:
            entries, rows = [], []
        snapshot[sheet.name] = entries
        rows_of[sheet.name] = rows
    if problems:
        ids_known = None not in dropped["workers"] + dropped["job_lines"]
        if validate and ids_known and "workers" in found and "job_lines" in found:
            # The second stage still runs on the rows that were read, so that one attempt
            # shows everything to fix; the ids of rows left out count as given.
            later = input_problems(
                snapshot,
                also_worker_ids=[i for i in dropped["workers"] if i],
                also_line_ids=[i for i in dropped["job_lines"] if i],
            )
            problems += [
                _locate(m, rows_of, run_rows, found) for m in later if not _REPEATED_ID.match(m)
            ]
        raise WorkbookError(_capped(problems))
    if validate:
        try:
            RunSnapshot.parse(snapshot)
        except SnapshotError as exc:
            raise WorkbookError(
                _capped([_locate(m, rows_of, run_rows, found) for m in exc.messages])
            ) from None
    return snapshot


def _read_cells(path_or_buffer: PathOrBuffer) -> dict[str, list[tuple[int, list[Any]]]]:
    """Every sheet's non-blank rows as (Excel row number, values); formulas resolved."""
    if isinstance(path_or_buffer, str | Path):
        # The same refusals as a JSON snapshot: not a regular file, or over the size limit.
        from allocator.inputfile import read_input_file

        try:
            path_or_buffer = io.BytesIO(read_input_file(path_or_buffer))
        except SnapshotError as exc:
            raise WorkbookError(list(exc.messages)) from None
    formulas: dict[str, set[tuple[int, int]]] = {}
    sheets = _load(path_or_buffer, data_only=False, formulas=formulas)
    if any(formulas.values()):
        # Formula cells hold their text in one view and Excel's saved result in the other.
        if hasattr(path_or_buffer, "seek"):
            path_or_buffer.seek(0)
        results = _load(path_or_buffer, data_only=True, formulas=None)
        problems = []
        for name, cells in formulas.items():
            saved = dict(results.get(name, []))
            mine = dict(sheets[name])
            for r, c in sorted(cells):
                row = saved.get(r, [])
                value = row[c] if c < len(row) else None
                if value is None:
                    problems.append(
                        f"Sheet '{name}', row {r}: column {get_column_letter(c + 1)} holds a "
                        "formula without a saved result; open and save the workbook in Excel, "
                        "or type the value."
                    )
                else:
                    mine[r][c] = value
        if problems:
            raise WorkbookError(_capped(problems))
    return sheets


def _load(
    source: PathOrBuffer, *, data_only: bool, formulas: dict[str, set[tuple[int, int]]] | None
) -> dict[str, list[tuple[int, list[Any]]]]:
    try:
        wb = load_workbook(source, read_only=True, data_only=data_only)
    except Exception as exc:  # zip, XML and format errors all mean "not a workbook"
        reason = str(exc) or type(exc).__name__
        raise WorkbookError(
            [f"The file is not an Excel workbook (.xlsx) that can be read: {reason}"]
        ) from None
    try:
        out: dict[str, list[tuple[int, list[Any]]]] = {}
        for ws in wb.worksheets:
            rows: list[tuple[int, list[Any]]] = []
            marks: set[tuple[int, int]] = set()
            for r, row in enumerate(ws.iter_rows(), start=1):
                values = []
                for c, cell in enumerate(row):
                    value = getattr(cell, "value", None)
                    if formulas is not None and getattr(cell, "data_type", None) == "f":
                        marks.add((r, c))
                        value = _Formula()
                    values.append(value)
                if any(_filled(v) for v in values):
                    rows.append((r, values))
            out[ws.title] = rows
            if formulas is not None:
                formulas[ws.title] = marks
        return out
    except WorkbookError:
        raise
    except Exception as exc:
        raise WorkbookError(
            [f"The workbook could not be read: {exc or type(exc).__name__}"]
        ) from None
    finally:
        wb.close()


def _normal(name: str) -> str:
    """Sheet and column names as planners may type them: any case, spaces for underscores."""
    return re.sub(r"\s+", "_", name.strip().lower())


def _filled(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and value.strip() == "")


def _header(
    sheet_name: str, rows: list[tuple[int, list[Any]]], problems: list[str]
) -> tuple[dict[str, int], list[tuple[int, list[Any]]]] | None:
    """Column name -> position, from the sheet's first row; None if it cannot be used."""
    if not rows:
        return {}, []
    first, header = rows[0]
    if first != 1:
        problems.append(f"Sheet '{sheet_name}': row 1 must hold the column names, but it is blank.")
        return None
    columns: dict[str, int] = {}
    ok = True
    for c, value in enumerate(header):
        if not _filled(value):
            continue
        name = _normal(str(value))
        if name.startswith("#"):
            columns[name] = -1 - c  # a note column: kept only to spot duplicates
            continue
        if name in columns:
            problems.append(f"Sheet '{sheet_name}': the column '{name}' appears twice in row 1.")
            ok = False
        columns[name] = c
    data = rows[1:]
    named = {c for c in columns.values()} | {-1 - c for c in columns.values() if c < 0}
    for r, values in data:
        for c, value in enumerate(values):
            if _filled(value) and c not in named:
                problems.append(
                    f"Sheet '{sheet_name}', row {r}: column {get_column_letter(c + 1)} has a "
                    "value but no column name in row 1."
                )
                ok = False
                break
    if not ok:
        return None
    return {k: v for k, v in columns.items() if v >= 0}, data


_DUPLICATE_ADVICE = {
    "id": ("id", "ids must be unique."),
    "job_line_id": ("job line", "a job line has one row of rules; merge the two rows."),
    "worker_id": ("worker", "a worker can be pinned to one job line only."),
}


def _read_list(
    sheet: _Sheet,
    actual: str,
    rows: list[tuple[int, list[Any]]],
    problems: list[str],
    dropped: list[str | None] | None = None,
) -> tuple[list[dict[str, Any]], list[int]]:
    """The sheet's entries and their Excel rows; rows with a bad cell are left out, and
    their ids (when readable) added to ``dropped``."""
    if not rows:  # an empty sheet, not even column names: an empty list
        return [], []
    parsed = _header(actual, rows, problems)
    if parsed is None:
        return [], []
    columns, data = parsed
    known = {c.name for c in sheet.columns}
    unknown = [k for k in columns if k not in known]
    for k in unknown:
        problems.append(
            f"Sheet '{actual}': the column '{k}' is not one of "
            f"{', '.join(c.name for c in sheet.columns)}; rename it, or start its name with # "
            "to keep it as a note."
        )
    missing = [c.name for c in sheet.columns if c.required and c.name not in columns]
    for k in missing:
        problems.append(f"Sheet '{actual}': there is no '{k}' column in row 1.")
    if unknown or missing:
        return [], []

    entries: list[dict[str, Any]] = []
    row_numbers: list[int] = []
    seen: dict[str, int] = {}
    for r, values in data:
        entry: dict[str, Any] = {}
        before = len(problems)
        for col in sheet.columns:
            if col.name not in columns:
                continue
            c = columns[col.name]
            raw = values[c] if c < len(values) else None
            where = f"Sheet '{actual}', row {r}"
            entry[col.name] = _PARSERS[col.kind](raw, where, col.name, problems)
        if len(problems) > before:
            if dropped is not None:
                # None: a row without a readable id, which a reference may have meant.
                dropped.append(entry["id"] if isinstance(entry.get("id"), str) else None)
            continue
        if sheet.unique is not None:
            key = entry[sheet.unique]
            if key in seen:
                what, advice = _DUPLICATE_ADVICE[sheet.unique]
                problems.append(
                    f"Sheet '{actual}', row {r}: the {what} {key!r} is already on row "
                    f"{seen[key]}; {advice}"
                )
            else:
                seen[key] = r
        entries.append(entry)
        row_numbers.append(r)
    return entries, row_numbers


def _read_run(
    actual: str, rows: list[tuple[int, list[Any]]], problems: list[str]
) -> tuple[dict[str, Any], dict[str, Any], Any, dict[str, int]]:
    run: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    fmt: Any = None
    where_of: dict[str, int] = {}
    parsed = _header(actual, rows, problems) if rows else ({"key": 0, "value": 1}, [])
    if parsed is None:
        return run, settings, fmt, where_of
    columns, data = parsed
    for k in ("key", "value"):
        if k not in columns:
            problems.append(f"Sheet '{actual}': there is no '{k}' column in row 1.")
    extra = [k for k in columns if k not in ("key", "value")]
    for k in extra:
        problems.append(
            f"Sheet '{actual}': the column '{k}' is not key or value; start its name with # "
            "to keep it as a note."
        )
    if extra or "key" not in columns or "value" not in columns:
        return run, settings, fmt, where_of
    for r, values in data:
        kc, vc = columns["key"], columns["value"]
        raw_key = values[kc] if kc < len(values) else None
        value = values[vc] if vc < len(values) else None
        where = f"Sheet '{actual}', row {r}"
        if not _filled(raw_key):
            problems.append(f"{where}: the key is empty (use one of {', '.join(_RUN_KEYS)}).")
            continue
        key = str(raw_key).strip()
        if key not in _RUN_KEYS:
            problems.append(
                f"{where}: {key!r} is not a run key; use one of {', '.join(_RUN_KEYS)}."
            )
            continue
        if key in where_of:
            problems.append(f"{where}: the key {key!r} is already on row {where_of[key]}.")
            continue
        where_of[key] = r
        if not _filled(value):
            continue  # blank: the default (or no id/name)
        if key == "format":
            fmt = value.strip() if isinstance(value, str) else value
        elif key in ("id", "name"):
            parse = _parse_id if key == "id" else _parse_text
            got = parse(value, where, key, problems)
            if got is not None:
                run[key] = got
        else:
            got = _PARSERS[_SETTING_KIND[key]](value, where, key, problems)
            if got is not None:
                settings[key] = got
    return run, settings, fmt, where_of


# -- cell parsers: (raw value, "Sheet 'x', row n", column, problems) -> value ------------------

_WORDS = {
    "id": "id",
    "worker_id": "worker id",
    "job_line_id": "job line id",
    "preferencer_id": "supervisor id",
    "rank": "rank",
    "value": "value",
    "max_n_workers": "max_n_workers",
}


def _kind_of(value: Any) -> str | None:
    """A planner's word for a cell type the snapshot cannot use, or None."""
    if isinstance(value, datetime | date | time):
        return "a date or time"
    if isinstance(value, timedelta):
        return "a duration"
    if isinstance(value, _Formula):
        return "a formula"
    if not isinstance(value, str | int | float | bool):
        return "an unsupported value"
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _parse_id(value: Any, where: str, column: str, problems: list[str]) -> str | None:
    word = _WORDS.get(column, column)
    if not _filled(value):
        problems.append(f"{where}: the {word} is empty")
        return None
    bad = _kind_of(value) or ("TRUE/FALSE" if isinstance(value, bool) else None)
    if bad:
        problems.append(f"{where}: the {word} is {bad}; type the id as text")
        return None
    text = _as_text(value).strip()
    if not text:
        problems.append(f"{where}: the {word} is empty")
        return None
    return text


def _parse_optional_id(value: Any, where: str, column: str, problems: list[str]) -> str | None:
    return _parse_id(value, where, column, problems) if _filled(value) else None


def _parse_text(value: Any, where: str, column: str, problems: list[str]) -> str:
    if value is None:
        return ""
    bad = _kind_of(value)
    if bad:
        problems.append(f"{where}: the {column} is {bad}; type it as text")
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return _as_text(value)


def _parse_ids(value: Any, where: str, column: str, problems: list[str]) -> list[str]:
    if not _filled(value):
        return []
    bad = _kind_of(value) or ("TRUE/FALSE" if isinstance(value, bool) else None)
    if bad:
        problems.append(f"{where}: {column} is {bad}; list ids separated by commas")
        return []
    return [part.strip() for part in _as_text(value).split(",") if part.strip()]


def _parse_whole(value: Any, where: str, column: str, problems: list[str]) -> int | None:
    word = _WORDS.get(column, column)
    if not _filled(value):
        problems.append(f"{where}: {word} is empty; it must be a whole number (0 or more)")
        return None
    number = _number(value)
    if number is None or not float(number).is_integer() or number < 0:
        problems.append(f"{where}: {word} must be a whole number (0 or more), not {_show(value)}")
        return None
    return int(number)


def _parse_number(value: Any, where: str, column: str, problems: list[str]) -> float | None:
    word = _WORDS.get(column, column)
    if not _filled(value):
        problems.append(f"{where}: the {word} is empty")
        return None
    number = _number(value)
    if number is None:
        problems.append(f"{where}: the {word} must be a number, not {_show(value)}")
        return None
    return number


def _parse_rank(value: Any, where: str, column: str, problems: list[str]) -> float | None:
    number = _parse_number(value, where, column, problems)
    if number is not None and number < 1:
        problems.append(
            f"{where}: the rank must be 1 or more (1 is the first choice), not {number:g}"
        )
        return None
    return number


_TRUE = {"true", "yes", "y", "1", "x"}
_FALSE = {"false", "no", "n", "0"}


def _parse_bool(value: Any, where: str, column: str, problems: list[str]) -> bool | None:
    if not _filled(value):
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    problems.append(f"{where}: {column} must be TRUE or FALSE, not {_show(value)}")
    return None


def _number(value: Any) -> int | float | None:
    """A finite number from a numeric cell or numeric text; None otherwise."""
    if isinstance(value, bool) or _kind_of(value):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _show(value: Any) -> str:
    kind = _kind_of(value)
    if kind:
        return kind
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return repr(value) if isinstance(value, str) else _as_text(value)


_PARSERS: dict[str, Callable[[Any, str, str, list[str]], Any]] = {
    "id": _parse_id,
    "optional_id": _parse_optional_id,
    "text": _parse_text,
    "ids": _parse_ids,
    "whole": _parse_whole,
    "bool": _parse_bool,
    "number": _parse_number,
    "rank": _parse_rank,
}


# -- messages --------------------------------------------------------------------------------

# Repeated ids: the sheets' own check already names both rows.
_REPEATED_ID = re.compile(r"^(workers|job_lines): the id .* is used by more than one", re.S)
_ENTRY = re.compile(r"^(?P<section>[a-z_]+)\[(?P<index>\d+)\](?P<rest>.*)$", re.S)
_SECTION = re.compile(r"^(?P<section>[a-z_]+)(?P<rest>[:.].*)$", re.S)


def _locate(
    message: str,
    rows_of: dict[str, list[int]],
    run_rows: dict[str, int],
    found: dict[str, str],
) -> str:
    """Turn a snapshot message ("pins[3]: ...") into one naming the sheet and row."""
    m = _ENTRY.match(message)
    if m and m["section"] in rows_of:
        section, i = m["section"], int(m["index"])
        rows = rows_of[section]
        sheet = found.get(section, section)
        if i < len(rows):
            return f"Sheet '{sheet}', row {rows[i]}{m['rest']}"
        return f"Sheet '{sheet}'{m['rest']}"
    m = _SECTION.match(message)
    if m:
        section, rest = m["section"], m["rest"]
        if section in rows_of:
            return f"Sheet '{found.get(section, section)}'{rest}"
        if section in ("settings", "run", "format"):
            sheet = found.get("run", "run")
            key = rest.lstrip(":. ").split(":", 1)[0].strip()
            key = {"run": "id"}.get(key, key) if section == "run" else key
            row = run_rows.get("format" if section == "format" else key)
            where = f"Sheet '{sheet}', row {row}" if row else f"Sheet '{sheet}'"
            return f"{where}: {section}{rest}" if section != "settings" else f"{where}{rest}"
    return f"Workbook: {message}"


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= _MAX_MESSAGES:
        return problems
    more = len(problems) - _MAX_MESSAGES
    return [*problems[:_MAX_MESSAGES], f"... and {more} more problems."]
