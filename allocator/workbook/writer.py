"""Writing a snapshot (or an empty template) as a workbook, in the layout of :mod:`.layout`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter

from allocator.snapshot import FORMAT, RunSettings, RunSnapshot
from allocator.workbook.layout import (
    _EXACT_INT,
    _MAX_CELL,
    _MAX_ROWS,
    _README_INTRO,
    _RUN_KEYS,
    _SETTING_HELP,
    _SHEETS,
    PathOrBuffer,
    WorkbookError,
    _capped,
    group_site_names,
)


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
    known_sites = {
        j["site"] for j in data.get("job_lines") or [] if isinstance(j, dict) and isinstance(j.get("site"), str)
    }
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
                if sheet.name == "quotas" and col.name == "sites":
                    value = _join_sites(value, known_sites, i, problems)
                elif col.kind in ("ids", "optional_ids"):
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
    settings = RunSettings().model_dump()
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


def _join_sites(value: Any, known_sites: set[str], i: int, problems: list[str]) -> Any:
    """A quota's sites in one cell: a site's own comma is fine as long as the reader can
    put the name together again from the job lines' sites."""
    if not isinstance(value, list | tuple) or not all(isinstance(x, str) for x in value):
        return _join_ids(value, "quotas", i, "sites", problems)
    text = ", ".join(value)
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if group_site_names(parts, known_sites) != list(value):
        problems.append(
            f"Sheet 'quotas', row {i + 2}, column 'sites': the sites {list(value)!r} cannot be told apart "
            "in one cell of comma-separated sites (a site's name has a comma); rename the site."
        )
    return text


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
