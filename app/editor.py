"""The scenario editor's tables and settings: from a draft to widgets and back, checked.

Plain functions of pandas frames and plain values (no Streamlit), so the conversions and the
checks are tested directly. Problems come back as messages naming the table and the row (from
1) or the setting, with the value the planner typed, as planners see them.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import pandas as pd

from allocator.scenario import PriorityOverride
from allocator.snapshot import MAX_MAGNITUDE, MAX_PLACES, Quota, RunSettings, RunSnapshot

LINE_COLS = ["Job line id", "Job line", "Site", "Places", "Must be filled"]
PAIR_COLS = ["Worker", "Job line"]
PIN_COLS = ["Worker", "Job line", "Reason"]
WEIGHT_COLS = ["Worker", "Job line", "Value"]
LIFT_COLS = ["Worker id", "Worker", "Job line id", "Job line", "Lift in this scenario"]
LIFT = "Lift in this scenario"

LINK_COLS = ["Link id", "Worker 1", "Worker 2", "Worker 3", "Worker 4"]
QUOTA_COLS = ["Quota id", "Sites", "Job lines", "Only workers with tag", "At least", "At most"]
TIER_COLS = ["Worker id", "Worker", "Priority tier"]
TIER = "Priority tier"

#: The Scenario page's button that takes out of a draft every row naming a worker or a job line
#: the run no longer has (see ``cleanup.remove_gone``); the messages that point to it name it.
GONE_BUTTON = "Remove what names workers or lines no longer in the run"

#: The draft's tables, in the order the page shows them.
TABLES = ("lines", "pins", "forbids", "weights", "lifted_pins", "lifted_forbids",
          "links", "quotas", "tiers", "previous")


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
            "Site": site_label(j.site),
            "Places": number_text(places if places is not None else j.max_n_workers),
            "Must be filled": bool(must if must is not None else j.must_have_workers),
        })
    cols = LINE_COLS if any(j.site for j in snapshot.job_lines) else [c for c in LINE_COLS if c != "Site"]
    return pd.DataFrame(rows, columns=cols).astype({"Places": object})


def pairs_frame(rows: list[dict[str, Any]] | None) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Worker": r.get("worker_id"), "Job line": r.get("job_line_id")} for r in rows or []],
        columns=PAIR_COLS,
    ).astype(object)


def pins_frame(rows: list[dict[str, Any]] | None) -> pd.DataFrame:
    """The scenario's pins, each with the reason it was set (blank when none was given)."""
    df = pd.DataFrame(
        [{"Worker": r.get("worker_id"), "Job line": r.get("job_line_id"), "Reason": r.get("reason")}
         for r in rows or []],
        columns=PIN_COLS,
    ).astype(object)
    return df.where(df.notna(), None)  # a pin without a reason: blank, never NaN


def weights_frame(rows: list[dict[str, Any]] | None) -> pd.DataFrame:
    df = pd.DataFrame(
        [{"Worker": r.get("worker_id"), "Job line": r.get("job_line_id"), "Value": number_text(r.get("value"))}
         for r in rows or []],
        columns=WEIGHT_COLS,
    )
    return df.astype(object)


def number_text(v: Any) -> str | None:
    """A number as the tables' number cells show it (``4``, ``1.5``; ``None`` when blank).

    The Scenario page's number cells are text cells: Streamlit's number cell drops what it does
    not take as a digit, so ``1e12`` arrived as 112 and was solved with, without a word. A text
    cell hands over what was typed, and the checks here read it as a number or name it.
    """
    if _blank(v):
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, bool) or not isinstance(v, float):  # a whole number as it is; else as given
        return str(v)
    # repr, not a rounded format: the text is read back as the number, which must not change.
    return str(int(v)) if v.is_integer() and abs(v) < 1e16 else repr(v)


#: The tables' number cells (text cells on the page: see :func:`number_text`), by table.
NUMBER_CELLS = {"lines": ("Places",), "weights": ("Value",), "quotas": ("At least", "At most"),
                "tiers": ("Priority tier",)}


def with_text_cells(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its number cells as text, as the page's text cells need them.

    A table whose rows were added and then folded into the draft may hold numbers there (or a
    column pandas made numeric): Streamlit refuses a text cell over a numeric column.
    """
    cols = [c for c in NUMBER_CELLS.get(table, ()) if c in df.columns]
    if not cols:
        return df
    out = df.copy()
    for c in cols:
        out[c] = pd.Series([number_text(v) for v in out[c]], index=out.index, dtype=object)
    return out


def _blank(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and not v.strip()


def _field_max(model: Any, name: str) -> int:
    """The largest value a model's field takes (its ``le``), so the page's check and the model agree."""
    return next(int(m.le) for m in model.model_fields[name].metadata if getattr(m, "le", None) is not None)


# The largest numbers the tables take (the run-snapshot spec's limits). Checked here, in the
# tables' words: past them the snapshot's own check would speak of max_n_workers or
# job_lines[0] instead of the row the planner typed in.
MAX_QUOTA = _field_max(Quota, "max_workers")
MAX_TIER = _field_max(PriorityOverride, "priority")


def _shown(v: Any) -> str:
    """A typed value as the planner typed it (2.7, -5, not 2.7000000000000002 or -5.0).

    Text a number cell cannot read only for its commas or spaces (``1,000``) says how numbers
    are written: "must be a whole number (you typed 1,000)" read as nonsense. No number is
    offered in its place: ``1,5`` may mean 1.5 or 15.
    """
    if isinstance(v, str) and any(c in v.strip() for c in ", "):
        try:
            float(v.replace(",", "").replace(" ", ""))
        except ValueError:
            pass
        else:
            return f"{v.strip()}; write numbers without commas or spaces, e.g. 1000 or 2.5"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    if isinstance(v, float):
        return repr(v) if len(repr(v)) <= 12 else f"{v:g}"
    return str(v)


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
            errs.append(f"Places and must be filled, row {i + 1} ({j.name or jid}): places must be a whole number, "
                        f"0 or more (you typed {_shown(places)})")
            continue
        if not math.isfinite(p) or p < 0 or not p.is_integer():
            errs.append(f"Places and must be filled, row {i + 1} ({j.name or jid}): places must be a whole number, "
                        f"0 or more (you typed {_shown(places)})")
            continue
        if p > MAX_PLACES:
            errs.append(f"Places and must be filled, row {i + 1} ({j.name or jid}): places must be a whole number up to "
                        f"{MAX_PLACES:,} (you typed {_shown(places)})")
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
        pair = {"worker_id": w, "job_line_id": j}
        why = _text(row.get("Reason"))
        if why is not None:
            pair["reason"] = why
        out.append(pair)
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
            errs.append(f"Organisation priority, row {i + 1}: the value must be a number (you typed {_shown(v)})")
            continue
        if not math.isfinite(value):
            errs.append(f"Organisation priority, row {i + 1}: the value must be a number (you typed {_shown(v)})")
            continue
        if abs(value) > MAX_MAGNITUDE:
            errs.append(f"Organisation priority, row {i + 1}: the value must be between {-MAX_MAGNITUDE:,.0f} and "
                        f"{MAX_MAGNITUDE:,.0f} (you typed {_shown(v)})")
            continue
        out.append({"worker_id": w, "job_line_id": j, "value": value})
    return out, errs


def overrides_from_frames(
    snapshot: RunSnapshot,
    lines: pd.DataFrame,
    pins: pd.DataFrame,
    forbids: pd.DataFrame,
    weights: pd.DataFrame,
    lifted_pins: pd.DataFrame | None = None,
    lifted_forbids: pd.DataFrame | None = None,
    links: pd.DataFrame | None = None,
    quotas: pd.DataFrame | None = None,
    tiers: pd.DataFrame | None = None,
    previous: pd.DataFrame | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The scenario's overrides dict (only non-empty sections) and every problem found.

    The business-rule tables (links, quotas, priority tiers, previous allocation) are seeded
    with the run's own: a table left as the run has it adds nothing to the overrides.
    """
    lo, e1 = lines_overrides(snapshot, lines)
    po, e2 = pairs_overrides(pins, "Pins")
    fo, e3 = pairs_overrides(forbids, "Forbids")
    wo, e4 = weights_overrides(weights)
    lp = lifted_overrides(lifted_pins)
    lf = lifted_overrides(lifted_forbids)
    ov = {k: v for k, v in (("lines", lo), ("pins", po), ("forbids", fo), ("weightings", wo),
                            ("lifted_pins", lp), ("lifted_forbids", lf)) if v}
    errs = e1 + e2 + e3 + e4
    if links is not None:
        lk, e = links_overrides(snapshot, links)
        errs += e
        if lk is not None:
            ov["linked_workers"] = lk
    if quotas is not None:
        qo, e = quotas_overrides(snapshot, quotas)
        errs += e
        if qo is not None:
            ov["quotas"] = qo
    if tiers is not None:
        to, e = tiers_overrides(snapshot, tiers)
        errs += e
        if to:
            ov["priorities"] = to
    if previous is not None:
        pv, e = pairs_overrides(previous, "Previous allocation")
        errs += e
        run_prev = {(p.worker_id, p.job_line_id) for p in snapshot.previous_allocations}
        if not e and ({(r["worker_id"], r["job_line_id"]) for r in pv} != run_prev
                      or len(pv) != len(snapshot.previous_allocations)):
            ov["previous_allocations"] = pv
    return ov, errs


# --------------------------------------------------------------------------- business rules (business-rules.md)


def _ids(v: Any) -> list[str]:
    """A multi-choice cell as a list of ids (a list, or text with commas as typed)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return []
    if isinstance(v, str):
        return [x.strip() for x in v.split(",") if x.strip()]
    try:
        return [str(x).strip() for x in v if not _blank(x)]
    except TypeError:
        return [str(v)]


def next_name(stem: str, taken: Any) -> str:
    """``stem-N`` for the first N not among ``taken`` (a new row's suggested name)."""
    used = {str(x) for x in taken if not _blank(x)}
    n = 1
    while f"{stem}-{n}" in used:
        n += 1
    return f"{stem}-{n}"


def links_frame(snapshot: RunSnapshot, overrides: dict[str, Any]) -> pd.DataFrame:
    """The scenario's linked workers (the run's own until the scenario replaces them): a row a link."""
    given = overrides.get("linked_workers")
    links = given if given is not None else [k.model_dump() for k in snapshot.linked_workers]
    rows = []
    for link in links:
        ws = list(link.get("worker_ids") or [])
        row = {"Link id": link.get("id")}
        for n in range(4):
            row[f"Worker {n + 1}"] = ws[n] if n < len(ws) else None
        rows.append(row)
    return pd.DataFrame(rows, columns=LINK_COLS).astype(object)


def links_overrides(snapshot: RunSnapshot, df: pd.DataFrame) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """The links table as ``linked_workers`` (``None`` when it is the run's own) and its problems."""
    out, errs = [], []
    for i, row in enumerate(df.to_dict("records")):
        lid = _text(row.get("Link id"))
        ws = [w for w in (_text(row.get(f"Worker {n + 1}")) for n in range(4)) if w is not None]
        if lid is None and not ws:
            continue
        where = f"Linked workers, row {i + 1}"
        if lid is None:
            errs.append(f"{where}: give the link a name (for example couple-{i + 1})")
            continue
        if len(ws) < 2:
            errs.append(f"{where} ({lid}): choose at least 2 workers (2 to 4 work on one site together)")
            continue
        out.append({"id": lid, "worker_ids": ws})
    run_links = sorted((k.id, sorted(k.worker_ids)) for k in snapshot.linked_workers)
    if sorted((k["id"], sorted(k["worker_ids"])) for k in out) == run_links and not errs:
        return None, errs
    return out, errs


def link_changes(snapshot: RunSnapshot, df: pd.DataFrame) -> list[str]:
    """What the couples table changes from the run's own links, one entry each (none: as the run has them).

    Shown under the table, so an edit the planner did not mean is seen where it was made: in the
    browser, Enter pressed just after clicking the table's empty last row (a new row) moves the
    cursor to the first row, and the name typed next renames the first couple (Streamlit's grid
    does this, with no code of ours involved; see the Scenario page's test).
    """
    names = {w.id: w.name or w.id for w in snapshot.workers}

    def who(ids: list[str]) -> str:
        return ", ".join(names.get(w, w) for w in ids) if ids else "no workers"

    rows = []
    for row in df.to_dict("records"):
        lid = _text(row.get("Link id"))
        ws = sorted(w for w in (_text(row.get(f"Worker {n + 1}")) for n in range(4)) if w is not None)
        if lid is not None or ws:
            rows.append((lid, ws))
    run = {k.id: sorted(k.worker_ids) for k in snapshot.linked_workers}
    by_id = {lid: ws for lid, ws in rows if lid is not None}
    out, kept = [], set()
    for rid, rws in sorted(run.items()):
        if rid in by_id:
            kept.add(rid)
            if by_id[rid] != rws:
                out.append(f"{rid}: now {who(by_id[rid])} (the run has {who(rws)})")
            continue
        renamed = next((lid for lid, ws in rows if ws == rws and lid not in run and lid not in kept), None)
        if renamed is not None:
            kept.add(renamed)
            out.append(f"{rid} renamed '{renamed}' (same workers)")
        else:
            out.append(f"{rid} removed")
    for lid, ws in rows:
        if lid is None or (lid not in run and lid not in kept):
            out.append(f"'{lid or '(no name)'}' added: {who(ws)}")
    return out


def quotas_frame(snapshot: RunSnapshot, overrides: dict[str, Any]) -> pd.DataFrame:
    """The scenario's quotas (the run's own until the scenario replaces them): a row a quota."""
    given = overrides.get("quotas")
    quotas = given if given is not None else [q.model_dump() for q in snapshot.quotas]
    rows = [{
        "Quota id": q.get("id"),
        "Sites": list(q.get("sites") or []),
        "Job lines": list(q.get("job_line_ids") or []),
        "Only workers with tag": q.get("qualification_id"),
        "At least": number_text(q.get("min_workers") or 0),
        "At most": number_text(q.get("max_workers")),
    } for q in quotas]
    return pd.DataFrame(rows, columns=QUOTA_COLS).astype(object)


def _whole(v: Any) -> int | None | str:
    """A typed count: an int, ``None`` when blank, or ``"bad"``."""
    if _blank(v):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "bad"
    if not math.isfinite(x) or x < 0 or not x.is_integer():
        return "bad"
    return int(x)


def quotas_overrides(snapshot: RunSnapshot, df: pd.DataFrame) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """The quotas table as ``quotas`` (``None`` when it is the run's own) and its problems."""
    out, errs = [], []
    for i, row in enumerate(df.to_dict("records")):
        qid = _text(row.get("Quota id"))
        sites, lines = _ids(row.get("Sites")), _ids(row.get("Job lines"))
        tag = _text(row.get("Only workers with tag"))
        low, high = row.get("At least"), row.get("At most")
        if qid is None and not sites and not lines and tag is None and _blank(low) and _blank(high):
            continue
        where = f"Quotas, row {i + 1}" + (f" ({qid})" if qid else "")
        bad = False
        if qid is None:
            errs.append(f"{where}: give the quota a name (for example rural-minimum)")
            bad = True
        if bool(sites) == bool(lines):
            errs.append(f"{where}: choose either sites or job lines (one of the two, not "
                        f"{'both' if sites else 'neither'})")
            bad = True
        lo, hi = _whole(low), _whole(high)
        if lo == "bad":
            errs.append(f"{where}: at least must be a whole number, 0 or more (you typed {_shown(low)})")
            bad = True
        if hi == "bad":
            errs.append(f"{where}: at most must be a whole number, 0 or more, or blank for no maximum "
                        f"(you typed {_shown(high)})")
            bad = True
        for word, n, typed in (("at least", lo, low), ("at most", hi, high)):
            if isinstance(n, int) and n > MAX_QUOTA:
                errs.append(f"{where}: {word} must be a whole number up to {MAX_QUOTA:,} (you typed {_shown(typed)})")
                bad = True
        if not bad and lo is None and hi is None:
            errs.append(f"{where}: give at least or at most (or both)")
            bad = True
        if bad:
            continue
        q: dict[str, Any] = {"id": qid}
        if sites:
            q["sites"] = sites
        else:
            q["job_line_ids"] = lines
        if tag is not None:
            q["qualification_id"] = tag
        q["min_workers"] = lo or 0
        if hi is not None:
            q["max_workers"] = hi
        out.append(q)
    if errs:
        return out, errs

    def norm(q: dict[str, Any]) -> tuple:
        return (q["id"], sorted(q.get("sites") or []), sorted(q.get("job_line_ids") or []),
                q.get("qualification_id"), q.get("min_workers") or 0, q.get("max_workers"))

    if sorted(map(norm, out)) == sorted(norm(q.model_dump()) for q in snapshot.quotas):
        return None, errs
    return out, errs


def tiers_frame(snapshot: RunSnapshot, overrides: dict[str, Any]) -> pd.DataFrame:
    """Every worker with their priority tier in this scenario (blank: no priority, placed last)."""
    given = {p["worker_id"]: p.get("priority") for p in overrides.get("priorities") or []}
    rows = []
    for w in sorted(snapshot.workers, key=lambda w: w.id):
        tier = given[w.id] if w.id in given else w.priority
        rows.append({"Worker id": w.id, "Worker": w.name or w.id,
                     TIER: number_text(tier)})
    return pd.DataFrame(rows, columns=TIER_COLS).astype(object)


def tiers_overrides(snapshot: RunSnapshot, df: pd.DataFrame) -> tuple[list[dict[str, Any]], list[str]]:
    """The workers whose tier differs from the run's, as ``priorities``, and any problems."""
    run_tier = {w.id: w.priority for w in snapshot.workers}
    names = {w.id: w.name or w.id for w in snapshot.workers}
    out, errs = [], []
    for i, row in enumerate(df.to_dict("records")):
        wid = row.get("Worker id")
        if wid not in run_tier:
            continue
        v = row.get(TIER)
        t = _whole(v)
        if t == "bad" or t == 0:
            errs.append(f"Priority tiers, row {i + 1} ({names[wid]}): the tier must be a whole number, 1 or more "
                        f"(1 is placed first), or blank for none (you typed {_shown(v)})")
            continue
        if isinstance(t, int) and t > MAX_TIER:
            errs.append(f"Priority tiers, row {i + 1} ({names[wid]}): the tier must be a whole number up to {MAX_TIER:,} "
                        f"(you typed {_shown(v)})")
            continue
        if t != run_tier[wid]:
            out.append({"worker_id": wid, "priority": t})
    return out, errs


def tier_value_problem(value: Any) -> str | None:
    """Why the tier typed beside "Set tier" cannot be set, or ``None``.

    The box has no lower bound of its own: a bounded box keeps its old value when 0 is typed,
    and "Set tier" then gave the chosen workers tier 1, a number the planner did not type.
    """
    t = _whole(value)
    if t == "bad" or t is None or t == 0:
        return f"Tier: must be a whole number, 1 or more (1 is placed first) (you typed {_shown(value)})"
    if t > MAX_TIER:
        return f"Tier: must be a whole number up to {MAX_TIER:,} (you typed {_shown(value)})"
    return None


def tier_counts(df: pd.DataFrame, snapshot: RunSnapshot) -> tuple[str, list[str]]:
    """The tiers table summed up over the run's workers, and the rows of workers it no longer has.

    A draft started before a worker was withdrawn still lists them: they are not counted (the
    solve ignores their tier), so the counts add up to the run's workers.
    """
    ids = {w.id for w in snapshot.workers}
    here = df[df["Worker id"].isin(ids)]
    gone = [str(w) for w in df.loc[~df["Worker id"].isin(ids), "Worker id"]]
    tiers = [_whole(v) for v in here[TIER]]
    counts = Counter(t for t in tiers if isinstance(t, int))
    shown = ", ".join(f"tier {t}: {n}" for t, n in sorted(counts.items())) or "no tiers"
    return f"Now: {shown}; without a tier: {sum(1 for t in tiers if t is None)}.", gone


def gone_from_tiers(worker_ids: list[str]) -> str:
    """Says which rows of the tiers table name workers the run no longer has, and what to do."""
    n = len(worker_ids)
    return (f"{', '.join(worker_ids[:10])}{' …' if n > 10 else ''}: no longer in the run "
            f"(withdrawn after this draft was started), so {'their tier is' if n == 1 else 'their tiers are'} not "
            f"counted or used. Press *{GONE_BUTTON}* to drop them from the table.")


def set_tier(df: pd.DataFrame, worker_ids: list[str], tier: int | None) -> pd.DataFrame:
    """The tiers table with ``worker_ids`` put in ``tier`` (``None``: no priority): the bulk edit."""
    out = df.copy()
    out.loc[out["Worker id"].isin(list(worker_ids)), TIER] = number_text(tier)
    return out


def previous_frame(snapshot: RunSnapshot, overrides: dict[str, Any]) -> pd.DataFrame:
    """The previous allocation fewest moves keeps to (the run's own until the scenario replaces it)."""
    given = overrides.get("previous_allocations")
    rows = given if given is not None else [p.model_dump() for p in snapshot.previous_allocations]
    return pairs_frame(rows)


def rules_summary(scenario: RunSnapshot) -> str | None:
    """One line naming the business rules a scenario solves with (``None`` when it has none).

    Shown beside Solve: the tables that set them sit further down the page, in tabs.
    """
    parts = []
    if scenario.linked_workers:
        n = len(scenario.linked_workers)
        parts.append(f"{n} linked group{'s' if n != 1 else ''} of workers")
    if scenario.quotas:
        n = len(scenario.quotas)
        parts.append(f"{n} quota{'s' if n != 1 else ''}")
    tiers = sorted({w.priority for w in scenario.workers if w.priority is not None})
    if tiers:
        # Each tier with its own count, then the rest: "tiers 1 for 43 workers" read as one tier
        # of 43 and left the planner to work out who comes last.
        counts = [sum(1 for w in scenario.workers if w.priority == t) for t in tiers]
        rest = sum(1 for w in scenario.workers if w.priority is None)
        shown = [f"tier {t}: {n} worker{'s' if n != 1 else ''}" for t, n in zip(tiers, counts, strict=True)]
        if rest:
            shown.append(f"no tier, placed last: {rest}")
        parts.append(f"priority tiers ({', '.join(shown)})")
    if scenario.settings.fewest_moves:
        n = len(scenario.previous_allocations)
        parts.append(f"fewest moves from a previous allocation of {n} worker{'s' if n != 1 else ''}")
    if not parts:
        return None
    return "Also in this scenario: " + "; ".join(parts) + " (see Couples, quotas, priority tiers and fewest moves below)."


def published_rows(snapshot: RunSnapshot, allocations: list[Any]) -> tuple[list[dict[str, str]], list[str]]:
    """The published allocation as previous-allocation rows, and what had to be left out.

    A re-solve after a withdrawal is the point of fewest moves: a worker (or a line) of the
    publication that the run no longer has cannot be kept in place, so that row is left out,
    and said so, instead of blocking the solve.
    """
    workers = {w.id for w in snapshot.workers}
    lines = {j.id for j in snapshot.job_lines}
    rows, gone_w, gone_j = [], [], []
    for a in allocations:
        w, j = str(a.worker_id), str(a.job_line_id)
        if w not in workers:
            gone_w.append(w)
        elif j not in lines:
            gone_j.append(j)
        else:
            rows.append({"worker_id": w, "job_line_id": j})
    notes = []
    if gone_w:
        n = len(gone_w)
        notes.append(f"{n} worker{'s' if n != 1 else ''} of the publication {'are' if n != 1 else 'is'} no longer "
                     "in the run and left out: "
                     + ", ".join(sorted(gone_w)[:10]) + (" …" if len(gone_w) > 10 else ""))
    if gone_j:
        n, lines_gone = len(gone_j), sorted(set(gone_j))
        notes.append(f"{n} worker{'s were' if n != 1 else ' was'} published to "
                     f"{'job lines' if len(lines_gone) != 1 else 'a job line'} the run no longer has and "
                     f"{'are' if n != 1 else 'is'} left out: " + ", ".join(lines_gone[:10]))
    return rows, notes


def run_sites(snapshot: RunSnapshot) -> list[str]:
    """The sites the run's job lines name, sorted."""
    return sorted({j.site for j in snapshot.job_lines if j.site is not None})


OWN_SITE = "its own site"


def site_label(site: str | None) -> str:
    """A line's site as the pages show it: a line without one is a site of its own."""
    return site if site is not None else OWN_SITE


# --------------------------------------------------------------------------- the run's own pins and forbids


def lifted_frame(snapshot: RunSnapshot, kind: str, lifted: list[dict[str, Any]] | None) -> pd.DataFrame:
    """The run's own pins (``kind="pins"``) or forbids, each with its "lift in this scenario" box."""
    wname = {w.id: w.name or w.id for w in snapshot.workers}
    lname = {j.id: j.name or j.id for j in snapshot.job_lines}
    off = {(r.get("worker_id"), r.get("job_line_id")) for r in lifted or []}
    pairs = snapshot.pins if kind == "pins" else snapshot.forbids
    rows = [{
        "Worker id": p.worker_id,
        "Worker": wname.get(p.worker_id, p.worker_id),
        "Job line id": p.job_line_id,
        "Job line": lname.get(p.job_line_id, p.job_line_id),
        LIFT: (p.worker_id, p.job_line_id) in off,
    } for p in pairs]
    # A saved scenario may lift a pin or forbid the run no longer has (its data changed):
    # shown ticked, so the check names it and the planner unticks it, never dropped unseen.
    have = {(p.worker_id, p.job_line_id) for p in pairs}
    rows += [{
        "Worker id": w, "Worker": wname.get(w, w), "Job line id": j, "Job line": lname.get(j, j), LIFT: True,
    } for w, j in sorted(off - have)]
    return pd.DataFrame(rows, columns=LIFT_COLS).astype({LIFT: bool})


def lifted_overrides(df: pd.DataFrame | None) -> list[dict[str, Any]]:
    """The run's pins or forbids ticked to be lifted, as ``lifted_pins`` / ``lifted_forbids``."""
    if df is None:
        return []
    return [{"worker_id": str(r["Worker id"]), "job_line_id": str(r["Job line id"])}
            for r in df.to_dict("records") if not _blank(r.get(LIFT)) and bool(r.get(LIFT))]


def rules_frame(snapshot: RunSnapshot) -> pd.DataFrame:
    """The run's eligibility rules, one row per line that has any (read-only on the page)."""
    lname = {j.id: j.name or j.id for j in snapshot.job_lines}

    def names(ids: list[str]) -> str:
        return ", ".join(ids)

    rows = [{
        "Job line": lname.get(e.job_line_id, e.job_line_id),
        "Only these workers": names(e.included_worker_ids),
        "Never these workers": names(e.excluded_worker_ids),
        "Needs one of the tags": names(e.included_qualification_ids),
        "Not with the tags": names(e.excluded_qualification_ids),
    } for e in sorted(snapshot.eligibility, key=lambda e: e.job_line_id)]
    return pd.DataFrame(rows, columns=["Job line", "Only these workers", "Never these workers",
                                       "Needs one of the tags", "Not with the tags"])


# --------------------------------------------------------------------------- the draft's tables


def frames_from_overrides(snapshot: RunSnapshot, overrides: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Every table of the editor as a scenario's overrides have them."""
    return {
        "lines": lines_frame(snapshot, overrides),
        "pins": pins_frame(overrides.get("pins")),
        "forbids": pairs_frame(overrides.get("forbids")),
        "weights": weights_frame(overrides.get("weightings")),
        "lifted_pins": lifted_frame(snapshot, "pins", overrides.get("lifted_pins")),
        "lifted_forbids": lifted_frame(snapshot, "forbids", overrides.get("lifted_forbids")),
        "links": links_frame(snapshot, overrides),
        "quotas": quotas_frame(snapshot, overrides),
        "tiers": tiers_frame(snapshot, overrides),
        "previous": previous_frame(snapshot, overrides),
    }


EMPTY_DELTA: dict[str, Any] = {"edited_rows": {}, "added_rows": [], "deleted_rows": []}


def delta_is_empty(delta: dict[str, Any] | None) -> bool:
    return not delta or not (delta.get("edited_rows") or delta.get("added_rows") or delta.get("deleted_rows"))


def apply_delta(base: pd.DataFrame, delta: dict[str, Any] | None) -> pd.DataFrame:
    """``base`` with a data editor's edits on it, as ``st.data_editor`` returns it.

    ``delta`` is the editor's widget state: ``edited_rows`` (row position -> column -> value),
    ``deleted_rows`` (positions) and ``added_rows`` (column -> value), applied in the editor's
    order: cell edits, then deletions, then additions. ``base`` is not changed.
    """
    df = base.copy()
    if delta_is_empty(delta):
        return df.reset_index(drop=True)
    for pos, changes in (delta.get("edited_rows") or {}).items():
        i = int(pos)
        if not 0 <= i < len(df):
            continue
        for col, value in (changes or {}).items():
            if col in df.columns:
                df = _set(df, i, col, value)
    deleted = [int(i) for i in delta.get("deleted_rows") or [] if 0 <= int(i) < len(df)]
    if deleted:
        df = df.drop(df.index[deleted])
    df = df.reset_index(drop=True)
    for row in delta.get("added_rows") or []:
        new = {c: row.get(c) for c in df.columns}
        df = pd.concat([df, pd.DataFrame([new], columns=df.columns).astype(object)], ignore_index=True)
        df = df.astype(base.dtypes.to_dict(), errors="ignore")
    return df.reset_index(drop=True)


def _set(df: pd.DataFrame, i: int, col: str, value: Any) -> pd.DataFrame:
    try:
        df.iat[i, df.columns.get_loc(col)] = value
    except (TypeError, ValueError):  # a value the column's type cannot hold: widen the column
        df[col] = df[col].astype(object)
        df.iat[i, df.columns.get_loc(col)] = value
    return df


def plain_value(v: Any) -> Any:
    """A cell as a plain JSON value: numbers as floats, blanks as None."""
    if _blank(v):
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return float(v)
    if hasattr(v, "item"):  # numpy scalars
        return plain_value(v.item())
    return str(v)


def frame_records(df: pd.DataFrame) -> list[list[Any]]:
    """A table's cells as plain values, for telling whether a draft changed (2 and 2.0 alike)."""
    return [[plain_value(v) for v in row] for row in df.itertuples(index=False, name=None)]


# --------------------------------------------------------------------------- settings

#: The settings' widgets on the Scenario page, by draft key.
INPUT_KEYS = ("alpha", "power", "stability", "time", "seed", "ties", "moves")


def setting_default(name: str) -> Any:
    """A run setting's default, as the settings model declares it."""
    return RunSettings.model_fields[name].default


def setting_bounds(name: str) -> tuple[float | None, float | None]:
    """A run setting's lower and upper bound (inclusive or not), as the settings model declares them."""
    low = high = None
    for m in RunSettings.model_fields[name].metadata:
        low = getattr(m, "ge", getattr(m, "gt", low))
        high = getattr(m, "le", getattr(m, "lt", high))
    return low, high


# The supervisor-voice slider, in per cent of the settings model's range for the weight.
ALPHA_RANGE = tuple(int(round(100 * b)) for b in setting_bounds("preferencer_weight"))


def inputs_from_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The values the Scenario page's setting widgets start from (a missing setting: its default)."""
    d = RunSettings().model_dump()
    s = {**d, **{k: v for k, v in (settings or {}).items() if v is not None}}
    return {
        "alpha": int(round(100 * float(s["preferencer_weight"]))),
        "power": float(s["preference_power"]),
        "stability": bool(s["stability"]),
        "time": float(s["max_seconds"]),
        "seed": str(s["rng_seed"]),
        "ties": bool(s["allow_worker_preference_ties"]),
        "moves": bool(s.get("fewest_moves", False)),
    }


_INPUT_OF = {
    "preferencer_weight": "alpha",
    "preference_power": "power",
    "max_seconds": "time",
    "rng_seed": "seed",
    "stability": "stability",
    "allow_worker_preference_ties": "ties",
}


def settings_from_inputs(inputs: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The scenario's settings from what was typed, or ``None`` and a message per bad value.

    Nothing is rounded or clamped: a value outside the spec's range (the
    :class:`~allocator.snapshot.RunSettings` model's) is refused, naming the setting and the value.
    """
    from allocator.scenario import SETTING_LABELS, _plain

    errs: list[str] = []
    raw: dict[str, Any] = {}

    def number(key: str, label: str) -> float | None:
        v = inputs.get(key)
        if _blank(v) or isinstance(v, bool):
            errs.append(f"{label}: fill it in")
            return None
        try:
            return float(v)
        except (TypeError, ValueError):
            errs.append(f"{label}: must be a number (you typed {_shown(v)})")
            return None

    alpha = number("alpha", SETTING_LABELS["preferencer_weight"])
    if alpha is not None:
        raw["preferencer_weight"] = round(alpha / 100.0, 4)
    power = number("power", SETTING_LABELS["preference_power"])
    if power is not None:
        raw["preference_power"] = power
    seconds = number("time", SETTING_LABELS["max_seconds"])
    if seconds is not None:
        raw["max_seconds"] = seconds
    seed_text = _text(inputs.get("seed"))
    if seed_text is None:
        errs.append(f"{SETTING_LABELS['rng_seed']}: fill it in (a whole number, 0 or more)")
    else:
        try:
            raw["rng_seed"] = int(seed_text)
        except ValueError:
            errs.append(f"{SETTING_LABELS['rng_seed']}: must be a whole number, 0 or more (you typed {seed_text})")
    raw["stability"] = bool(inputs.get("stability", setting_default("stability")))
    raw["allow_worker_preference_ties"] = bool(inputs.get("ties", setting_default("allow_worker_preference_ties")))
    # Only when on: a scenario without it keeps the settings it was saved with (no new key).
    if inputs.get("moves"):
        raw["fewest_moves"] = True

    from pydantic import ValidationError

    try:
        checked = RunSettings.model_validate(raw).model_dump()
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            key = str(err["loc"][0]) if err["loc"] else ""
            typed = inputs.get(_INPUT_OF.get(key, ""), raw.get(key))
            if key == "preferencer_weight":  # typed in percent
                words = "must be between 0 and 100 %"
            elif key == "max_seconds":
                words = "must be more than 0 seconds"
            elif key == "preference_power":
                words = "must be more than 0 and at most 8"
            else:
                words = _plain(err)
            errs.append(f"{SETTING_LABELS.get(key, key)}: {words} (you typed {_shown(typed)})")
        return None, errs
    if errs:
        return None, errs
    return {k: checked[k] for k in raw}, []


#: A time limit above this is said back to the planner (a day: "1e12" typed is about 31,700 years).
LONG_TIME_LIMIT = 24 * 3600


def time_limit_note(inputs: dict[str, Any]) -> str | None:
    """A word when the time limit typed is implausibly long, or ``None``; it does not stop a solve.

    The box takes "1e12" as a number: a solve that could run for years holds the dashboard's one
    solver thread, so every other planner's solve waits behind it.
    """
    v = inputs.get("time")
    try:
        seconds = float(v)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(seconds) or seconds <= LONG_TIME_LIMIT:
        return None
    days = seconds / 86400
    n_days = round(days)
    span = (f"about {days / 365.25:,.0f} years" if days >= 730
            else f"about {n_days:,} {'day' if n_days == 1 else 'days'}")
    shown = f"{seconds:,.0f}" if seconds.is_integer() and seconds < 1e16 else _shown(v)
    return (f"Time limit: {shown} seconds is {span}. Is that what you meant? The solve stops as soon as the "
            "best allocation is proven, and Stop ends it at any time, but other planners' solves wait behind it.")


# --------------------------------------------------------------------------- checks before solving


def name_problem(name: object) -> str | None:
    """Why the scenario's name stops a solve or a save, or ``None``: Solve and Save are greyed
    out without a name, and the planner must be told why."""
    if isinstance(name, str) and name.strip():
        return None
    return "Scenario name: give this scenario a name (for example 'Supervisor voice 50 %') to solve or save it"


def tie_summary(snapshot: RunSnapshot, limit: int = 5) -> str | None:
    """One message for every worker who gave two lines the same rank (when ties are not allowed)."""
    ranks: dict[str, Counter] = {}
    for p in snapshot.worker_preferences:
        ranks.setdefault(p.worker_id, Counter())[p.rank] += 1
    tied = sorted(w for w, c in ranks.items() if any(n > 1 for n in c.values()))
    if not tied:
        return None
    names = {w.id: w.name for w in snapshot.workers}
    shown = [f"{names.get(w) or w} ({w})" if names.get(w) else w for w in tied[:limit]]
    more = f" and {len(tied) - limit} more" if len(tied) > limit else ""
    who = ("1 worker (doctor) gave" if len(tied) == 1
           else f"{len(tied)} workers (doctors) gave")
    return (f"Allow tied worker ranks is off, but {who} the same rank to two or more job lines: "
            f"{', '.join(shown)}{more}. Turn Allow tied worker ranks back on, or correct their ranks "
            "in the run's data.")


def capacity_problems(scenario: RunSnapshot) -> list[str]:
    """Lines that cannot work as set: more pins than places, must be filled with no places."""
    lname = {j.id: j.name or j.id for j in scenario.job_lines}
    wname = {w.id: w.name or w.id for w in scenario.workers}
    pinned: dict[str, list[str]] = {}
    for p in scenario.pins:
        pinned.setdefault(p.job_line_id, []).append(p.worker_id)
    out = []
    for j in sorted(scenario.job_lines, key=lambda j: j.id):
        label = f"'{lname[j.id]}' ({j.id})" if lname[j.id] != j.id else f"'{j.id}'"
        if j.must_have_workers and j.max_n_workers == 0:
            out.append(f"Job line {label} must be filled but has 0 places: give it places, or untick "
                       "must be filled.")
        who = pinned.get(j.id, [])
        if len(who) > j.max_n_workers:
            names = ", ".join(f"{wname[w]} ({w})" if wname[w] != w else w for w in sorted(who)[:8])
            more = f" and {len(who) - 8} more" if len(who) > 8 else ""
            out.append(f"Job line {label} has {j.max_n_workers} place{'s' if j.max_n_workers != 1 else ''} but "
                       f"{len(who)} workers are pinned to it ({names}{more}): remove "
                       f"{len(who) - j.max_n_workers} of these pins, or give the line more places.")
    return out


_GONE = re.compile(r"^(Linked workers|Previous allocation|Pins|Forbids|Organisation priority|Priority tiers), "
                   r"row \d+.*: (?:worker )?'[^']+' is not a (?:worker|job line) of this run$", re.S)
_GONE_NEXT = {
    "Linked workers": "take them out of the link (a link needs 2 workers: with one left, delete the row)",
    "Previous allocation": "press Use the published allocation again (it leaves out who has left), "
                           "or delete the row",
}


def gone_hint(message: str) -> str:
    """A row naming a worker the run no longer has, with what to do about it.

    A draft made before a worker was withdrawn (on the Runs page) still names them: the most
    likely cause, and the way out, said where the planner reads the problem.
    """
    m = _GONE.match(message)
    if not m:
        return message
    todo = _GONE_NEXT.get(m.group(1), "delete the row")
    return f"{message} (withdrawn, or never in it): press *{GONE_BUTTON}* above, or {todo}."


#: The scenario's editable tables: the key its problems are shown under, and the tab's title.
TABLE_TABS = {
    "lines": "Places and must be filled",
    "pins": "Pins",
    "forbids": "Forbids",
    "weights": "Organisation priority",
    "links": "Linked workers (couples)",
    "quotas": "Quotas",
    "tiers": "Priority tiers",
    "previous": "Fewest moves",
}
# The words a table's problems start with (each names its row: "Quotas, row 2 ...").
_TABLE_OF = {
    "Places and must be filled": "lines",
    "Pins": "pins",
    "Forbids": "forbids",
    "Organisation priority": "weights",
    "Linked workers": "links",
    "Quotas": "quotas",
    "Priority tiers": "tiers",
    "Previous allocation": "previous",
}
_TABLE_PROBLEM = re.compile(r"^(" + "|".join(map(re.escape, _TABLE_OF)) + r"), row \d+")
# capacity_problems(): a line's places against its must-be-filled mark and its pins.
_PLACES_PROBLEM = re.compile(r"^Job line .+ (?:must be filled but has 0 places|has [\d,]+ places? but [\d,]+ workers "
                             r"are pinned)", re.S)


def split_problems(problems: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """The problems of no table (name, settings, places against pins), and each table's own.

    A table's problems are shown under its grid, not above the tables: a box appearing above
    a grid the planner is typing into moved the grid down under their next click (adding a
    couple's row showed "choose at least 2 workers" at the top of the page).
    """
    general: list[str] = []
    by_table: dict[str, list[str]] = {}
    for m in problems:
        hit = _TABLE_PROBLEM.match(m)
        if hit:
            by_table.setdefault(_TABLE_OF[hit.group(1)], []).append(m)
        elif _PLACES_PROBLEM.match(m):
            by_table.setdefault("lines", []).append(m)
        else:
            general.append(m)
    return general, by_table


def problems_pointer(by_table: dict[str, list[str]]) -> str | None:
    """One line beside Solve saying which tables hold problems (shown in full under each)."""
    if not by_table:
        return None
    n = sum(len(v) for v in by_table.values())
    where = ", ".join(TABLE_TABS[k] for k in TABLE_TABS if k in by_table)
    return (f"Cannot be solved yet: {n} problem{'s' if n != 1 else ''} to fix, shown under "
            f"{'the table' if len(by_table) == 1 else 'the tables'} below ({where}).")


_QUOTED = re.compile(r"(?<![A-Za-z])(link |quota |site )?'([^'\n]{1,200})'")
_REASON_CODE = re.compile(r"\(([A-Z][A-Z_]{2,}): ")


def named_ids(message: str, snapshot: RunSnapshot) -> str:
    """A check's message with each worker and job line named as the tables show them.

    The engine's checks speak in ids ("worker 'w004' is already in link 'couple-1'", "'w005'
    to site 'Orange'") and now and then a reason's code ("(MISSING_INCLUDED_TAG: lacks ...)");
    the planner reads "worker 'Dragana Huynh' (w004)", as in the engine's diagnosis of an
    impossible run, and the reason in words alone. Links, quotas and sites keep their names.
    """
    workers = {w.id: w.name for w in snapshot.workers if w.name and w.name != w.id}
    lines = {j.id: j.name for j in snapshot.job_lines if j.name and j.name != j.id}

    def name(m: re.Match) -> str:
        kind, ident = m.group(1), m.group(2)
        if kind:  # a link's, a quota's or a site's name, not an id
            return m.group(0)
        shown = workers.get(ident) or lines.get(ident)
        return f"'{shown}' ({ident})" if shown else m.group(0)

    return _REASON_CODE.sub("(", _QUOTED.sub(name, message))


def check_scenario(
    snapshot: RunSnapshot,
    inputs: dict[str, Any],
    frames: dict[str, pd.DataFrame],
    apply=None,
) -> tuple[dict[str, Any] | None, dict[str, Any], list[str], RunSnapshot | None]:
    """Everything to check before a solve or a save: ``(settings, overrides, problems, scenario)``.

    ``settings`` is ``None`` when a setting is bad; ``scenario`` (the run with the scenario
    applied) is ``None`` whenever there is a problem. ``apply`` is
    :func:`allocator.scenario.apply` or a cached equivalent with the same signature.
    """
    if apply is None:
        from allocator.scenario import apply
    settings, problems = settings_from_inputs(inputs)
    overrides, table_problems = overrides_from_frames(
        snapshot, frames["lines"], frames["pins"], frames["forbids"], frames["weights"],
        frames.get("lifted_pins"), frames.get("lifted_forbids"),
        frames.get("links"), frames.get("quotas"), frames.get("tiers"), frames.get("previous"),
    )
    problems = problems + table_problems
    if problems or settings is None:
        return settings, overrides, problems, None
    from allocator.snapshot import SnapshotError

    ties_note = None if settings["allow_worker_preference_ties"] else tie_summary(snapshot)
    # Ties are told once, with a count, not once per worker: check the rest with ties allowed.
    check_settings = {**settings, "allow_worker_preference_ties": True} if ties_note else settings
    try:
        scenario = apply(snapshot, check_settings, overrides)
    except SnapshotError as exc:
        return (settings, overrides,
                ([ties_note] if ties_note else []) + [gone_hint(named_ids(m, snapshot)) for m in exc.messages], None)
    problems = ([ties_note] if ties_note else []) + capacity_problems(scenario)
    if problems:
        return settings, overrides, problems, None
    return settings, overrides, [], scenario

