"""One click to take out of a scenario draft what names workers or job lines the run no longer has.

A draft started before a worker was withdrawn (Runs page) or a job line left the run still
names them in its tables. :func:`remove_gone` returns the draft's tables without them and
says, in planners' words, each thing it took out; every other cell stays as the planner left it.
Plain functions of the draft's tables (no Streamlit), tested directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from editor import GONE_BUTTON, TIER, _blank, _ids, _text, _whole

from allocator.snapshot import RunSnapshot

#: The button's label, also named in the messages that point to it.
BUTTON = GONE_BUTTON


def _label(name: Any, ident: str) -> str:
    name = _text(name)
    return f"{name} ({ident})" if name and name != ident else ident


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _rebuild(df: pd.DataFrame, records: list[dict[str, Any]]) -> pd.DataFrame:
    """``records`` as a table with ``df``'s columns and column types (a fresh index)."""
    out = pd.DataFrame(records, columns=df.columns).astype(df.dtypes.to_dict(), errors="ignore")
    for col, dtype in df.dtypes.items():
        if pd.api.types.is_object_dtype(dtype):  # a blank cell stays blank (None), never NaN shown as "nan"
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out.reset_index(drop=True)


def remove_gone(snapshot: RunSnapshot, frames: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The draft's tables without what names a worker or a job line the run no longer has.

    See :func:`_clean` for the rules; returns ``(tables, removed)``.
    """
    tables, removed, _, _ = _clean(snapshot, frames)
    return tables, removed


def found_title(snapshot: RunSnapshot, frames: dict[str, pd.DataFrame],
                escape: Callable[[str], str] = str) -> str | None:
    """Before the button: who and what the draft names that the run no longer has (``None``: nothing).

    ``escape`` makes a worker's or line's name safe for the markdown the page shows it in.
    """
    _, removed, gone_w, gone_j = _clean(snapshot, frames)
    if not removed:
        return None
    names = []
    if gone_w:
        names.append(f"{'workers' if len(gone_w) > 1 else 'the worker'} {_join(_first(list(map(escape, gone_w))))}")
    if gone_j:
        names.append(f"{'job lines' if len(gone_j) > 1 else 'the job line'} "
                     f"{_join(_first(list(map(escape, gone_j))))}")
    n = len(removed)
    return (f"This draft still names {' and '.join(names)}, no longer in the run (withdrawn or changed after "
            f"the draft was started), in {n} entr{'ies' if n != 1 else 'y'}. Press *{BUTTON}* to take "
            "them out in one go: you will see each one it took out, and nothing else in the draft changes.")


def _first(labels: list[str], limit: int = 8) -> list[str]:
    return labels if len(labels) <= limit else [*labels[:limit], f"{len(labels) - limit} more"]


def _clean(
    snapshot: RunSnapshot, frames: dict[str, pd.DataFrame]
) -> tuple[dict[str, pd.DataFrame], list[str], list[str], list[str]]:
    """The draft's tables without what names a worker or a job line the run no longer has.

    Parameters
    ----------
    snapshot
        The run as it is now.
    frames
        The draft's tables with every edit on them (:func:`state.draft_frames`), by the names of
        :data:`editor.TABLES`.

    Returns
    -------
    (tables, removed, gone_workers, gone_lines)
        ``tables`` has the same keys; a table with nothing to take out is the very object
        given. ``removed`` says each thing taken out, one sentence each (empty: all is current).
        ``gone_workers`` and ``gone_lines``: the workers and job lines taken out, as labels.

    Notes
    -----
    A worker no longer in the run leaves their link (a link left with one worker is removed)
    and their priority tier, pin, forbid, organisation priority, lifted run pin or forbid and
    previous place rows go. A job line no longer in the run leaves the quotas' job lines (a
    quota left counting nothing is removed) and the rows that name it go. A blank cell is not a
    name: a half-filled row stays for the page's check to name.
    """
    workers = {w.id: w.name for w in snapshot.workers}
    lines = {j.id: j.name for j in snapshot.job_lines}
    # The run no longer knows a withdrawn worker's name: the draft's own tables still do.
    old_w: dict[str, Any] = {}
    old_j: dict[str, Any] = {}
    for t in ("tiers", "lifted_pins", "lifted_forbids"):
        df = frames.get(t)
        if df is not None and len(df):
            old_w.update(zip(df["Worker id"].astype(str), df["Worker"], strict=True))
    for t in ("lifted_pins", "lifted_forbids"):
        df = frames.get(t)
        if df is not None and len(df):
            old_j.update(zip(df["Job line id"].astype(str), df["Job line"], strict=True))
    df = frames.get("lines")
    if df is not None and len(df):
        old_j.update(zip(df["Job line id"].astype(str), df["Job line"], strict=True))

    def wlab(w: str) -> str:
        return _label(workers.get(w, old_w.get(w)), w)

    def jlab(j: str) -> str:
        return _label(lines.get(j, old_j.get(j)), j)

    seen_w: set[str] = set()
    seen_j: set[str] = set()

    def w_gone(v: Any) -> bool:
        gone = not _blank(v) and str(v).strip() not in workers
        if gone:
            seen_w.add(str(v).strip())
        return gone

    def j_gone(v: Any) -> bool:
        gone = not _blank(v) and str(v).strip() not in lines
        if gone:
            seen_j.add(str(v).strip())
        return gone

    def pair_gone(w: Any, j: Any) -> str | None:
        """Why a (worker, job line) row must go, as the end of a sentence; None if it stays."""
        if w_gone(w) and j_gone(j):
            return "neither is in the run now"
        if w_gone(w):
            return "the worker is no longer in the run"
        if j_gone(j):
            return "the job line is no longer in the run"
        return None

    out = dict(frames)
    removed: list[str] = []

    def keep_rows(table: str, said) -> None:
        """Drop the rows ``said(row)`` has a sentence for; say each."""
        df = frames.get(table)
        if df is None or not len(df):
            return
        kept, notes = [], []
        for row in df.to_dict("records"):
            note = said(row)
            if note is None:
                kept.append(row)
            else:
                notes.append(note)
        if notes:
            out[table] = _rebuild(df, kept)
            removed.extend(notes)

    # ------------------------------------------------------------------ links (couples)
    df = frames.get("links")
    if df is not None and len(df):
        kept, changed = [], False
        for row in df.to_dict("records"):
            cells = [_text(row.get(f"Worker {n + 1}")) for n in range(4)]
            names = [w for w in cells if w is not None]
            gone = [w for w in names if w_gone(w)]
            if not gone:
                kept.append(row)
                continue
            changed = True
            left = [w for w in names if w in workers]
            lid = _text(row.get("Link id"))
            what = "couple" if len(names) == 2 else "linked group"
            head = f"{what} '{lid}'" if lid else f"a {what} without a name"
            who = _join([wlab(w) for w in gone])
            if len(left) >= 2:
                kept.append({**row, **{f"Worker {n + 1}": (left[n] if n < len(left) else None) for n in range(4)}})
                removed.append(f"{who} taken out of the {head}, which keeps {_join([wlab(w) for w in left])}.")
            elif left:
                removed.append(f"{who} taken out of the {head}: it had only {wlab(left[0])} left, so the "
                               f"{what} was removed (a link needs 2 workers).")
            else:
                removed.append(f"The {head} was removed: none of its workers ({who}) is in the run now.")
        if changed:
            out["links"] = _rebuild(df, kept)

    # ------------------------------------------------------------------ quotas' job lines
    df = frames.get("quotas")
    if df is not None and len(df):
        kept, changed = [], False
        for row in df.to_dict("records"):
            chosen = _ids(row.get("Job lines"))
            gone = [j for j in chosen if j_gone(j)]
            if not gone:
                kept.append(row)
                continue
            changed = True
            left = [j for j in chosen if j in lines]
            qid = _text(row.get("Quota id"))
            head = f"quota '{qid}'" if qid else "a quota without a name"
            which = _join([jlab(j) for j in gone])
            plural = "job lines" if len(gone) > 1 else "job line"
            if left:
                kept.append({**row, "Job lines": left})
                removed.append(f"{plural.capitalize()} {which} taken out of the {head}, which still counts "
                               f"{_join([jlab(j) for j in left])}.")
            elif _ids(row.get("Sites")):
                kept.append({**row, "Job lines": []})
                removed.append(f"{plural.capitalize()} {which} taken out of the {head}, which still counts its sites.")
            else:
                removed.append(f"{plural.capitalize()} {which} taken out of the {head}: it counted no other job "
                               "line, so the quota was removed.")
        if changed:
            out["quotas"] = _rebuild(df, kept)

    # ------------------------------------------------------------------ rows naming one worker or line
    def tier_row(row: dict[str, Any]) -> str | None:
        w = row.get("Worker id")
        if not w_gone(w):
            return None
        t = _whole(row.get(TIER))
        # A text cell: what was typed may be no number at all ("first"), said as typed.
        tier = "no tier" if t is None else f"tier {t}" if isinstance(t, int) else f"tier '{_text(row.get(TIER))}'"
        return f"Priority tiers: the row of {wlab(str(w))} ({tier}); they are no longer in the run."

    def pair_row(what: str, wcol: str = "Worker", jcol: str = "Job line"):
        def said(row: dict[str, Any]) -> str | None:
            w, j = row.get(wcol), row.get(jcol)
            why = pair_gone(w, j)
            if why is None:
                return None
            return f"{what}: {wlab(str(w).strip())} on {jlab(str(j).strip())} ({why})."
        return said

    def weight_row(row: dict[str, Any]) -> str | None:
        w, j = row.get("Worker"), row.get("Job line")
        if _blank(j):
            if not w_gone(w):
                return None
            return (f"Organisation priority: {wlab(str(w).strip())} on every job line (value {_value(row)}); "
                    "the worker is no longer in the run.")
        why = pair_gone(w, j)
        if why is None:
            return None
        return (f"Organisation priority: {wlab(str(w).strip())} on {jlab(str(j).strip())} (value {_value(row)}); "
                f"{why}.")

    def line_row(row: dict[str, Any]) -> str | None:
        j = row.get("Job line id")
        if not j_gone(j):
            return None
        return f"Places and must be filled: the row of job line {jlab(str(j))}; it is no longer in the run."

    keep_rows("tiers", tier_row)
    keep_rows("pins", pair_row("Pin"))
    keep_rows("forbids", pair_row("Forbid"))
    keep_rows("weights", weight_row)
    keep_rows("previous", pair_row("Previous allocation"))
    keep_rows("lifted_pins", pair_row("Pin of the run", "Worker id", "Job line id"))
    keep_rows("lifted_forbids", pair_row("Forbid of the run", "Worker id", "Job line id"))
    keep_rows("lines", line_row)
    return out, removed, [wlab(w) for w in sorted(seen_w)], [jlab(j) for j in sorted(seen_j)]


def _value(row: dict[str, Any]) -> str:
    v = row.get("Value")
    if _blank(v):
        return "blank"
    try:
        return f"{float(v):g}"
    except (TypeError, ValueError):
        return str(v)


def removed_title(removed: list[str]) -> str:
    """The line above the list of what :func:`remove_gone` took out."""
    n = len(removed)
    return (f"Removed {n} entr{'ies' if n != 1 else 'y'} naming workers or job lines no longer in the run "
            "(withdrawn or changed after this draft was started). Nothing else in the draft changed:")
