"""Reading a workbook back into a snapshot dict; every problem named by sheet and row."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from allocator.snapshot import FORMAT, RunSnapshot, SnapshotError, input_problems
from allocator.workbook.layout import (
    _BY_NAME,
    _RUN_KEYS,
    _SETTING_KIND,
    _SHEET_ORDER,
    _SHEETS,
    PathOrBuffer,
    WorkbookError,
    _capped,
    _Sheet,
    group_site_names,
)


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
        if entries or not sheet.optional_list:
            snapshot[sheet.name] = entries
        rows_of[sheet.name] = rows
    # A quota's sites were split at every comma; a site whose name has one is put together
    # again from the sites of the job lines.
    known_sites = {j["site"] for j in snapshot.get("job_lines", []) if isinstance(j.get("site"), str)}
    for q in snapshot.get("quotas", []):
        if isinstance(q.get("sites"), list):
            q["sites"] = group_site_names(q["sites"], known_sites)
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
        if _head(source) == _OLE_MAGIC:
            # What Excel saves with a password (or as an old .xls): the zip error says nothing of that.
            raise WorkbookError(
                ["The workbook is password-protected (encrypted), or an old Excel 97-2003 (.xls) file "
                 "renamed .xlsx, so it cannot be read. In Excel, remove the password (File > Info > "
                 "Protect Workbook) or save it as an Excel Workbook (.xlsx), then import it again."]
            ) from None
        reason = str(exc) or type(exc).__name__
        raise WorkbookError(
            [f"The file is not an Excel workbook (.xlsx) that can be read: {reason}"]
        ) from None
    try:
        out: dict[str, list[tuple[int, list[Any]]]] = {}
        for ws in wb.worksheets:
            rows: list[tuple[int, list[Any]]] = []
            marks: set[tuple[int, int]] = set()
            # The sheet's stated size is not trusted: one cell formatted at XFD1048576 (or a
            # whole column formatted) states a million rows of 16,384 cells, and reading it
            # padded to that size took for ever. Without it each row is only the cells it has.
            ws.reset_dimensions()
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


#: The first bytes of an OLE2 compound file: an encrypted workbook, or an .xls.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _head(source: PathOrBuffer) -> bytes:
    """The first eight bytes of ``source`` (a path or a seekable buffer), or b"" if unreadable."""
    try:
        if isinstance(source, str | Path):
            with open(source, "rb") as f:
                return f.read(8)
        at = source.tell()
        source.seek(0)
        head = source.read(8)
        source.seek(at)
        return head
    except (OSError, AttributeError, ValueError):
        return b""


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


def _unread(dropped: list[str | None] | None) -> tuple[list[dict[str, Any]], list[int]]:
    """No entries from a sheet whose column names cannot be used.

    On the workers or job_lines sheet its ids are then unknown (``None`` in ``dropped``), so
    nothing else is reported as naming a missing worker or line, nor the run as having none:
    one misnamed column would otherwise bury its own message under one per reference.
    """
    if dropped is not None:
        dropped.append(None)
    return [], []


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
        return _unread(dropped)
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
        return _unread(dropped)

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
            value = _PARSERS[col.kind](raw, where, col.name, problems)
            if value is not None or not col.omit_blank:
                entry[col.name] = value
        if len(problems) > before:
            if dropped is not None:
                # None: a row without a readable id, which a reference may have meant.
                dropped.append(entry["id"] if isinstance(entry.get("id"), str) else None)
            continue
        if sheet.unique is not None:
            key = entry[sheet.unique]
            if key in seen:
                what, advice = _DUPLICATE_ADVICE[sheet.unique]
                advice = sheet.unique_advice or advice
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


def _parse_optional_text(value: Any, where: str, column: str, problems: list[str]) -> str | None:
    return _parse_text(value, where, column, problems) if _filled(value) else None


def _parse_site(value: Any, where: str, column: str, problems: list[str]) -> str | None:
    # Trimmed, as the quotas' lists of sites are: a space Excel does not show must not make
    # 'Orange ' a hospital other than 'Orange'.
    text = _parse_optional_text(value, where, column, problems)
    return text.strip() if text is not None else None


def _parse_optional_ids(value: Any, where: str, column: str, problems: list[str]) -> list[str] | None:
    return _parse_ids(value, where, column, problems) if _filled(value) else None


def _parse_optional_whole(value: Any, where: str, column: str, problems: list[str]) -> int | None:
    return _parse_whole(value, where, column, problems) if _filled(value) else None


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


# Whole-number columns whose smallest value is not 0, and what that value means.
_LEAST = {"priority": (1, "; 1 is placed first")}


def _parse_whole(value: Any, where: str, column: str, problems: list[str]) -> int | None:
    word = _WORDS.get(column, column)
    least, meaning = _LEAST.get(column, (0, ""))
    if not _filled(value):
        problems.append(f"{where}: {word} is empty; it must be a whole number ({least} or more{meaning})")
        return None
    number = _number(value)
    if number is None or not float(number).is_integer() or number < least:
        problems.append(f"{where}: {word} must be a whole number ({least} or more{meaning}), not {_show(value)}")
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
    "optional_text": _parse_optional_text,
    "site": _parse_site,
    "ids": _parse_ids,
    "optional_ids": _parse_optional_ids,
    "whole": _parse_whole,
    "optional_whole": _parse_optional_whole,
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
