"""The scenario editor's tables: from a draft's overrides to data-editor frames and back.

Plain functions of pandas frames (no Streamlit), so the conversions are tested directly.
Problems come back as messages naming the table and the row (from 1), as planners see them.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from allocator.snapshot import RunSnapshot

LINE_COLS = ["Job line id", "Job line", "Places", "Must be filled"]
PAIR_COLS = ["Worker", "Job line"]
WEIGHT_COLS = ["Worker", "Job line", "Value"]


def lines_frame(snapshot: RunSnapshot, overrides: dict[str, Any]) -> pd.DataFrame:
    """Every job line with its places and must-be-filled flag as this scenario has them."""
    ov = {o["job_line_id"]: o for o in overrides.get("lines") or []}
    rows = []
    for j in sorted(snapshot.job_lines, key=lambda j: j.id):
        o = ov.get(j.id, {})
        places = o.get("max_n_workers")
        must = o.get("must_have_workers")
        rows.append({
            "Job line id": j.id,
            "Job line": j.name or j.id,
            "Places": int(places if places is not None else j.max_n_workers),
            "Must be filled": bool(must if must is not None else j.must_have_workers),
        })
    return pd.DataFrame(rows, columns=LINE_COLS)


def pairs_frame(rows: list[dict[str, Any]] | None) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Worker": r.get("worker_id"), "Job line": r.get("job_line_id")} for r in rows or []],
        columns=PAIR_COLS,
    ).astype(object)


def weights_frame(rows: list[dict[str, Any]] | None) -> pd.DataFrame:
    df = pd.DataFrame(
        [{"Worker": r.get("worker_id"), "Job line": r.get("job_line_id"), "Value": r.get("value")} for r in rows or []],
        columns=WEIGHT_COLS,
    )
    return df.astype({"Worker": object, "Job line": object, "Value": float})


def _blank(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and not v.strip()


def _text(v: Any) -> str | None:
    return None if _blank(v) else str(v).strip()


def lines_overrides(snapshot: RunSnapshot, df: pd.DataFrame) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows whose places or must-be-filled differ from the run's own, and any problems."""
    by_id = {j.id: j for j in snapshot.job_lines}
    out, errs = [], []
    for i, row in enumerate(df.to_dict("records")):
        jid = row.get("Job line id")
        j = by_id.get(jid)
        if j is None:
            continue
        places = row.get("Places")
        if _blank(places):
            errs.append(f"Places and must be filled, row {i + 1} ({j.name or jid}): places must be filled in (0 or more)")
            continue
        try:
            p = float(places)
        except (TypeError, ValueError):
            errs.append(f"Places and must be filled, row {i + 1} ({j.name or jid}): places must be a whole number")
            continue
        if p < 0 or not p.is_integer():
            errs.append(f"Places and must be filled, row {i + 1} ({j.name or jid}): places must be a whole number, 0 or more")
            continue
        must = bool(row.get("Must be filled")) if not _blank(row.get("Must be filled")) else j.must_have_workers
        o: dict[str, Any] = {"job_line_id": jid}
        if int(p) != j.max_n_workers:
            o["max_n_workers"] = int(p)
        if must != j.must_have_workers:
            o["must_have_workers"] = must
        if len(o) > 1:
            out.append(o)
    return out, errs


def pairs_overrides(df: pd.DataFrame, table: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Pins or forbids from the editor; wholly blank rows are ignored."""
    out, errs = [], []
    for i, row in enumerate(df.to_dict("records")):
        w, j = _text(row.get("Worker")), _text(row.get("Job line"))
        if w is None and j is None:
            continue
        if w is None or j is None:
            errs.append(f"{table}, row {i + 1}: choose both a worker and a job line, or delete the row")
            continue
        out.append({"worker_id": w, "job_line_id": j})
    return out, errs


def weights_overrides(df: pd.DataFrame) -> tuple[list[dict[str, Any]], list[str]]:
    """Organisation priorities from the editor; a blank job line means every line."""
    out, errs = [], []
    for i, row in enumerate(df.to_dict("records")):
        w, j, v = _text(row.get("Worker")), _text(row.get("Job line")), row.get("Value")
        if w is None and j is None and _blank(v):
            continue
        if w is None:
            errs.append(f"Organisation priority, row {i + 1}: choose a worker, or delete the row")
            continue
        if _blank(v):
            errs.append(f"Organisation priority, row {i + 1}: give a value (positive discourages the pair, negative favours it)")
            continue
        try:
            value = float(v)
        except (TypeError, ValueError):
            errs.append(f"Organisation priority, row {i + 1}: the value must be a number")
            continue
        if not math.isfinite(value):
            errs.append(f"Organisation priority, row {i + 1}: the value must be a number")
            continue
        out.append({"worker_id": w, "job_line_id": j, "value": value})
    return out, errs


def overrides_from_frames(
    snapshot: RunSnapshot,
    lines: pd.DataFrame,
    pins: pd.DataFrame,
    forbids: pd.DataFrame,
    weights: pd.DataFrame,
) -> tuple[dict[str, Any], list[str]]:
    """The scenario's overrides dict (only non-empty sections) and every problem found."""
    lo, e1 = lines_overrides(snapshot, lines)
    po, e2 = pairs_overrides(pins, "Pins")
    fo, e3 = pairs_overrides(forbids, "Forbids")
    wo, e4 = weights_overrides(weights)
    ov = {k: v for k, v in (("lines", lo), ("pins", po), ("forbids", fo), ("weightings", wo)) if v}
    return ov, e1 + e2 + e3 + e4
