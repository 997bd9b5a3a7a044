"""Downloads: the allocation as CSV and XLSX, the scenario's snapshot and result as JSON.

Spreadsheet programs run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and a tab or
carriage return) as a formula, so a worker named ``=HYPERLINK(...)`` in an upload could run
code on a planner's machine. Every text cell of a CSV or XLSX export is passed through
:func:`neutralise`, which puts an apostrophe in front of such a value (the usual guard; the
cell then shows the text as written). Numbers are left as numbers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A text value that a spreadsheet would run as a formula, made inert; others unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def neutralise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with every text cell and column name neutralised."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralise)
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


def to_csv(df: pd.DataFrame) -> bytes:
    """CSV (UTF-8 with a byte-order mark, so Excel reads names with accents right)."""
    return neutralise_frame(df).to_csv(index=False).encode("utf-8-sig")


def to_xlsx(sheets: Mapping[str, pd.DataFrame]) -> bytes:
    """A workbook with one sheet per frame, every text cell neutralised."""
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        for name, df in sheets.items():
            safe = neutralise_frame(df)
            safe.to_excel(writer, sheet_name=name[:31], index=False)
            ws = writer.sheets[name[:31]]
            for k, col in enumerate(safe.columns, start=1):
                width = max([len(str(col))] + [len(str(v)) for v in safe[col].head(200)]) + 2
                ws.column_dimensions[ws.cell(row=1, column=k).column_letter].width = min(width, 60)
    return buf.getvalue()


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def bundle(snapshot: Any, result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The scenario's input and its result in one JSON document (for a bug report or audit)."""
    snap = snapshot.canonical() if hasattr(snapshot, "canonical") else dict(snapshot)
    return {"snapshot": snap, "result": dict(result) if result else None}


def _ordinal(k: int) -> str:
    if 10 <= k % 100 <= 20:
        return f"{k}th"
    return f"{k}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def allocation_frame(result: Mapping[str, Any], snapshot: Any, problem: Any | None = None) -> pd.DataFrame:
    """The allocation as a table in planners' words, one row per worker.

    Columns: Worker id, Worker, Job line id, Job line, Choice (1st choice / unranked line),
    Rank given (the worker's fractional rank for the line), Pinned, Must be filled, Cost.
    ``problem`` (the scenario's ProblemData) adds the choice numbers; without it the choice
    column is left blank.
    """
    workers = {w.id: w for w in snapshot.workers}
    lines = {j.id: j for j in snapshot.job_lines}
    pins = {(p.worker_id, p.job_line_id) for p in snapshot.pins}
    allocs = list(result.get("allocations") or [])
    choice: dict[str, str] = {}
    if problem is not None and allocs:
        from allocator.metrics import choice_numbers

        a = np.array([problem.line_index[x["job_line_id"]] for x in sorted(allocs, key=lambda x: problem.worker_index[x["worker_id"]])])
        nums = choice_numbers(problem, a)
        for wid, k in zip(problem.worker_ids, nums.tolist(), strict=True):
            choice[wid] = "unranked line" if k == 0 else f"{_ordinal(int(k))} choice"
    rows = []
    for x in allocs:
        w, j = workers.get(x["worker_id"]), lines.get(x["job_line_id"])
        rows.append({
            "Worker id": x["worker_id"],
            "Worker": (w.name if w and w.name else x["worker_id"]),
            "Job line id": x["job_line_id"],
            "Job line": (j.name if j and j.name else x["job_line_id"]),
            "Choice": choice.get(x["worker_id"], ""),
            "Rank given": x.get("worker_rank"),
            "Pinned": (x["worker_id"], x["job_line_id"]) in pins,
            "Must be filled": bool(j.must_have_workers) if j else False,
            "Cost": x.get("cost"),
        })
    cols = ["Worker id", "Worker", "Job line id", "Job line", "Choice", "Rank given", "Pinned", "Must be filled", "Cost"]
    return pd.DataFrame(rows, columns=cols)


def fill_frame(result: Mapping[str, Any], snapshot: Any) -> pd.DataFrame:
    """Per-line fill against places, in planners' words."""
    names = {j.id: (j.name or j.id) for j in snapshot.job_lines}
    rows = [
        {
            "Job line id": r["job_line_id"],
            "Job line": names.get(r["job_line_id"], r["job_line_id"]),
            "Workers placed": r["filled"],
            "Places": r["capacity"],
            "Vacancies": r["vacancies"],
            "Must be filled": r["mandatory"],
        }
        for r in (result.get("metrics") or {}).get("line_fill") or []
    ]
    return pd.DataFrame(rows, columns=["Job line id", "Job line", "Workers placed", "Places", "Vacancies", "Must be filled"])


def summary_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """The headline numbers and settings of a result as a two-column table."""
    from allocator.compare import KPIS, format_kpi, kpi_value
    from allocator.scenario import SETTING_LABELS

    rows = [("Status", str(result.get("status", ""))), ("Total cost", result.get("objective"))]
    rows += [(k.label, format_kpi(k.key, kpi_value(result, k.key))) for k in KPIS]
    for key, label in SETTING_LABELS.items():
        if key in (result.get("settings") or {}):
            rows.append((label, result["settings"][key]))
    return pd.DataFrame(rows, columns=["What", "Value"]).astype({"Value": str})


def workbook(result: Mapping[str, Any], snapshot: Any, problem: Any | None = None) -> bytes:
    """The XLSX export: the allocation, the fill per line and the summary, one sheet each."""
    return to_xlsx({
        "Allocation": allocation_frame(result, snapshot, problem),
        "Fill per line": fill_frame(result, snapshot),
        "Summary": summary_frame(result),
    })


def worker_statement(worker_id: str, result: Mapping[str, Any], snapshot: Any, problem: Any | None = None) -> str:
    """A one-page plain-text statement for one worker: their line, their ranks, and why."""
    df = allocation_frame(result, snapshot, problem)
    row = df[df["Worker id"] == worker_id]
    if row.empty:
        return f"Worker {worker_id} is not in this allocation.\n"
    r = row.iloc[0]
    ranked = sorted(
        (p for p in snapshot.worker_preferences if p.worker_id == worker_id), key=lambda p: p.rank
    )
    names = {j.id: (j.name or j.id) for j in snapshot.job_lines}
    lines = [
        f"Allocation statement for {r['Worker']} ({worker_id})",
        "",
        f"Job line: {r['Job line']} ({r['Job line id']})",
        f"This was your {r['Choice'] or 'choice'}" + (" (pinned by the planners)" if r["Pinned"] else "") + ".",
        "",
        "Your ranking as received:",
    ]
    lines += [f"  {p.rank:g}. {names.get(p.job_line_id, p.job_line_id)}" for p in ranked] or ["  (you ranked no job line)"]
    s = result.get("settings") or {}
    lines += [
        "",
        "How the allocation was made: every worker and every line were placed at once to make the "
        "total disappointment as small as possible, counting workers' rankings and, with a share of "
        f"{float(s.get('preferencer_weight', 0)):.0%}, supervisors' rankings.",
    ]
    return "\n".join(lines) + "\n"
