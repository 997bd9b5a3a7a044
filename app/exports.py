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

import pandas as pd

from allocator.kpis import ordinal, setting_text
from allocator.metrics import NOT_RANKED

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


def to_xlsx(sheets: Mapping[str, pd.DataFrame], number_formats: Mapping[str, Mapping[tuple[int, int], str]] | None = None) -> bytes:
    """A workbook with one sheet per frame, every text cell neutralised.

    ``number_formats[sheet][(row, column)]`` (both from 0, over the frame's data, header not
    counted) gives a number cell its spreadsheet format, e.g. ``"0%"``.
    """
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        for name, df in sheets.items():
            safe = neutralise_frame(df)
            safe.to_excel(writer, sheet_name=name[:31], index=False)
            ws = writer.sheets[name[:31]]
            for k, col in enumerate(safe.columns, start=1):
                width = max([len(str(col))] + [len(str(v)) for v in safe[col].head(200)]) + 2
                ws.column_dimensions[ws.cell(row=1, column=k).column_letter].width = min(width, 60)
            for (r, c), fmt in ((number_formats or {}).get(name) or {}).items():
                ws.cell(row=r + 2, column=c + 1).number_format = fmt
    return buf.getvalue()


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def bundle(snapshot: Any, result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The scenario's input and its result in one JSON document (for a bug report or audit)."""
    snap = snapshot.canonical() if hasattr(snapshot, "canonical") else dict(snapshot)
    return {"snapshot": snap, "result": dict(result) if result else None}


def choice_words(result: Mapping[str, Any], snapshot: Any) -> dict[str, str]:
    """Each worker's choice in words: "1st choice", "2nd choice", … or "not ranked".

    From the run's own preference rows, so a result read back from JSON needs nothing else: the
    choice is 1 + the number of lines the worker ranked strictly better (a tie group counts from
    its first position, as in the metrics). A line the worker did not rank is "not ranked".
    """
    given: dict[str, dict[str, float]] = {}
    for p in snapshot.worker_preferences:
        given.setdefault(p.worker_id, {})[p.job_line_id] = float(p.rank)
    out = {}
    for x in result.get("allocations") or []:
        mine = given.get(x["worker_id"], {})
        r = mine.get(x["job_line_id"])
        out[x["worker_id"]] = NOT_RANKED if r is None else f"{ordinal(1 + sum(v < r for v in mine.values()))} choice"
    return out


def allocation_frame(result: Mapping[str, Any], snapshot: Any, problem: Any | None = None) -> pd.DataFrame:
    """The allocation as a table in planners' words, one row per worker.

    Columns: Worker id, Worker, Job line id, Job line, Choice (1st choice, … or "not ranked"),
    Rank given (the number the worker wrote for the line, as in the run's data: a tie of two
    lines at 2 reads 2, not the fractional 2.5 the engine works with; blank for a line they did
    not rank, which has no rank they gave), Pinned, Must be filled, Cost. ``problem`` (the
    scenario's ProblemData) gives the scenario's pins; without it, the run's.
    """
    wrote = {(p.worker_id, p.job_line_id): float(p.rank) for p in snapshot.worker_preferences}
    workers = {w.id: w for w in snapshot.workers}
    lines = {j.id: j for j in snapshot.job_lines}
    if problem is not None:
        pins = {(problem.worker_ids[s], problem.line_ids[int(j)]) for s, j in enumerate(problem.pin.tolist()) if j >= 0}
    else:
        pins = {(p.worker_id, p.job_line_id) for p in snapshot.pins}
    allocs = list(result.get("allocations") or [])
    choice = choice_words(result, snapshot)
    rows = []
    for x in allocs:
        w, j = workers.get(x["worker_id"]), lines.get(x["job_line_id"])
        ranked = choice.get(x["worker_id"]) != NOT_RANKED
        rows.append({
            "Worker id": x["worker_id"],
            "Worker": (w.name if w and w.name else x["worker_id"]),
            "Job line id": x["job_line_id"],
            "Job line": (j.name if j and j.name else x["job_line_id"]),
            "Choice": choice.get(x["worker_id"], ""),
            "Rank given": wrote.get((x["worker_id"], x["job_line_id"]), x.get("worker_rank")) if ranked else None,
            "Pinned": (x["worker_id"], x["job_line_id"]) in pins,
            "Must be filled": bool(j.must_have_workers) if j else False,
            "Cost": x.get("cost"),
        })
    cols = ["Worker id", "Worker", "Job line id", "Job line", "Choice", "Rank given", "Pinned", "Must be filled", "Cost"]
    df = pd.DataFrame(rows, columns=cols)
    df["Rank given"] = df["Rank given"].astype("float64")  # blank (NaN) for "not ranked", never a number
    return df


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


STATUS_WORDS = {
    "optimal": "Best possible (proven)",
    "feasible": "Good, not proven best",
    "infeasible": "Impossible as set up",
    "no_solution": "No allocation in time",
}


def summary_rows(
    result: Mapping[str, Any], snapshot: Any | None = None, *, run_name: str | None = None,
    scenario_name: str | None = None,
) -> list[tuple[str, Any, str | None]]:
    """The summary sheet as ``(what, value, number format)`` rows.

    Names the run and the scenario; numbers stay numbers, rounded exactly as the Results page
    shows them (:func:`allocator.kpis.shown_value`), with the spreadsheet format that shows them the
    same way. ``snapshot`` fills in the honest rank figures of a result saved before they existed.
    """
    import headline

    from allocator import kpis
    from allocator.scenario import SETTING_LABELS

    if snapshot is not None:
        result = headline.with_rank_metrics(result, snapshot) or result
        run_id = snapshot.run.id
        run_name = run_name or snapshot.run.name or run_id
        run_text = run_name if run_name == run_id else f"{run_name} ({run_id})"
    else:
        run_text = run_name or str(result.get("run_id", ""))
    status = str(result.get("status", ""))
    rows: list[tuple[str, Any, str | None]] = [
        ("Run", run_text, None),
        ("Scenario", scenario_name or "(not named)", None),
        ("Status", STATUS_WORDS.get(status, status), None),
        (kpis.label("objective"), kpis.shown_value("objective", result.get("objective")), kpis.number_format("objective")),
    ]
    metrics = result.get("metrics") or {}
    for key in kpis.RESULT_KPIS:
        v = metrics.get(key)
        rows.append((kpis.label(key), kpis.shown_value(key, v), kpis.number_format(key)))
    settings = result.get("settings") or {}
    for key, label in SETTING_LABELS.items():
        if key in settings:
            rows.append((label, *kpis.setting_value(key, settings[key])))
    return rows


def summary_frame(
    result: Mapping[str, Any], snapshot: Any | None = None, *, run_name: str | None = None,
    scenario_name: str | None = None,
) -> pd.DataFrame:
    """:func:`summary_rows` as a two-column table (a blank value where a number does not exist)."""
    rows = summary_rows(result, snapshot, run_name=run_name, scenario_name=scenario_name)
    return pd.DataFrame([(w, v) for w, v, _ in rows], columns=["What", "Value"], dtype=object)


def workbook(
    result: Mapping[str, Any], snapshot: Any, problem: Any | None = None, *, run_name: str | None = None,
    scenario_name: str | None = None,
) -> bytes:
    """The XLSX export: the allocation, the fill per line and the summary, one sheet each."""
    rows = summary_rows(result, snapshot, run_name=run_name, scenario_name=scenario_name)
    return to_xlsx(
        {
            "Allocation": allocation_frame(result, snapshot, problem),
            "Fill per line": fill_frame(result, snapshot),
            "Summary": pd.DataFrame([(w, v) for w, v, _ in rows], columns=["What", "Value"], dtype=object),
        },
        {"Summary": {(i, 1): fmt for i, (_, v, fmt) in enumerate(rows) if fmt and v is not None}},
    )


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
        (f"This was your {r['Choice']}" if r["Choice"] != NOT_RANKED
         else "You did not rank this line, so it has no rank from you (not ranked)")
        + (" (pinned by the planners)" if r["Pinned"] else "") + ".",
        "",
        "Your ranking as received:",
    ]
    lines += [f"  {p.rank:g}. {names.get(p.job_line_id, p.job_line_id)}" for p in ranked] or ["  (you ranked no job line)"]
    s = result.get("settings") or {}
    lines += [
        "",
        "How the allocation was made: every worker and every line were placed at once to make the "
        "total disappointment as small as possible, counting workers' rankings and, with a share of "
        f"{setting_text('preferencer_weight', float(s.get('preferencer_weight', 0)))}, supervisors' rankings.",
    ]
    return "\n".join(lines) + "\n"
