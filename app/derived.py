"""What the Results and Eligibility pages derive from a result or a scenario, made once.

A page reruns on every click; what it shows only changes when the result or the scenario does.
Tables are ``st.cache_data`` and figures ``st.cache_resource`` (shared read-only: Streamlit
copies a figure before sending it), each keyed by the content of what it is made from: a
result's key (:func:`result_key`) and a snapshot's fingerprint (:func:`state.fingerprint_of`).
Arguments whose names start with ``_`` are not hashed: the keys stand for them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import charts
import exports
import numpy as np
import pandas as pd
import streamlit as st

_KEYS: OrderedDict[int, tuple[Any, str]] = OrderedDict()
_KEYS_LOCK = threading.Lock()
_KEEP = 64


def result_key(result: Mapping[str, Any]) -> str:
    """A short key of a result's content, worked out once per result object.

    The object is kept with its key (up to 64 of them), so its id cannot be reused meanwhile.
    """
    k = id(result)
    with _KEYS_LOCK:
        hit = _KEYS.get(k)
        if hit is not None and hit[0] is result:
            _KEYS.move_to_end(k)
            return hit[1]
    key = hashlib.sha256(json.dumps(result, sort_keys=True, default=str).encode()).hexdigest()[:32]
    with _KEYS_LOCK:
        _KEYS[k] = (result, key)
        while len(_KEYS) > _KEEP:
            _KEYS.popitem(last=False)
    return key


# --------------------------------------------------------------------------- Scenario


@st.cache_resource(max_entries=16, show_spinner=False)
def _finished_progress_figure(key: str, _history: Sequence[Any]):
    return charts.progress_figure(_history)


def finished_progress_figure(job_id: str, history: Sequence[Any]):
    """The objective-and-bound chart of a finished solve (its history no longer changes)."""
    last = history[-1] if history else None
    return _finished_progress_figure(f"{job_id}|{len(history)}|{last!r}", history)


# --------------------------------------------------------------------------- Runs


def last_solved_at(stored: datetime | None, run_id: str, session: Any) -> datetime | None:
    """When ``run_id`` was last solved: the later of the database's record and this session's solve.

    The database knows saved scenarios and the service's solves (``RunSummary.last_solved_at``);
    a solve in this session that is not saved yet is only in ``session`` (``st.session_state``:
    its ``last_job``), so without it the run list says "never" right after a solve.
    """
    mine = None
    last = session["last_job"] if "last_job" in session else None
    if last and last.get("run_id") == run_id:
        finished = getattr(last.get("progress"), "finished_at", None)
        if finished:
            mine = datetime.fromtimestamp(float(finished), tz=UTC)
    known = [t for t in (stored, mine) if t is not None]
    return max(known) if known else None


def last_solved_text(stored: datetime | None, run_id: str, session: Any) -> str:
    """:func:`last_solved_at` as the run list shows it ("30 Nov 2026, 15:48"), or "never"."""
    t = last_solved_at(stored, run_id, session)
    return t.astimezone().strftime("%d %b %Y, %H:%M") if t is not None else "never"



@st.cache_resource(max_entries=16, show_spinner=False)
def health_report(snap_fp: str, _snapshot, _problem):
    """The run's data-health report (read-only, shared)."""
    from allocator import health

    return health.check(_snapshot, _problem)


@st.cache_resource(max_entries=16, show_spinner=False)
def depth_figure(snap_fp: str, _report):
    return charts.depth_figure(_report.depth_histogram())


# --------------------------------------------------------------------------- Results


@st.cache_data(max_entries=32, show_spinner=False)
def allocation_table(rkey: str, snap_fp: str, problem_fp: str | None, _result, _snapshot, _problem) -> pd.DataFrame:
    """:func:`exports.allocation_frame` of a result (one row per worker)."""
    return exports.allocation_frame(_result, _snapshot, _problem)


def rank_text(rank: float, ranked: bool) -> str:
    """A rank as a table cell shows it: "3", "1.5", or "not ranked" (never the shared rank)."""
    from allocator.metrics import NOT_RANKED

    return f"{float(rank):g}" if ranked else NOT_RANKED


@st.cache_data(max_entries=32, show_spinner=False)
def fill_table(rkey: str, snap_fp: str, _result, _snapshot) -> pd.DataFrame:
    """Every line's fill against its places, in the coverage chart's order (most in need first)."""
    order = {r["job_line_id"]: k for k, r in enumerate(charts.fill_shown(
        (_result.get("metrics") or {}).get("line_fill") or [], max_lines=10**9))}
    df = exports.fill_frame(_result, _snapshot)
    return df.sort_values("Job line id", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)


@st.cache_data(max_entries=32, show_spinner=False)
def blocking_table(rkey: str, problem_fp: str, _result, _problem) -> pd.DataFrame:
    """The blocking pairs of a result: worker, the line they have, the line they would rather have."""
    from allocator.stability import blocking_pairs

    p = _problem
    a = np.array([p.line_index[x["job_line_id"]] for x in
                  sorted(_result["allocations"], key=lambda x: p.worker_index[x["worker_id"]])])
    # The numbers the workers wrote: a tie of two lines at 2 reads 2, not its fractional 2.5.
    wrote = {(x.worker_id, x.job_line_id): float(x.rank) for x in p.snapshot.worker_preferences}

    def given(s: int, j: int) -> str:
        rank = wrote.get((p.worker_ids[s], p.line_ids[j]), p.worker_rank[s, j])
        return rank_text(rank, p.worker_ranked[s, j])

    rows = [
        {
            "Worker": p.worker_names[s],
            "Has": p.line_names[a[s]],
            "Rank given to it": given(s, a[s]),
            "Would rather have": p.line_names[q],
            "Rank given to that": given(s, q),
        }
        for s, q in blocking_pairs(p, a)
    ]
    return pd.DataFrame(rows, columns=["Worker", "Has", "Rank given to it", "Would rather have", "Rank given to that"])


@st.cache_resource(max_entries=32, show_spinner=False)
def rank_figure(rkey: str, _buckets: Sequence[Mapping[str, Any]]):
    return charts.rank_distribution_figure(_buckets)


@st.cache_resource(max_entries=32, show_spinner=False)
def fill_figure(rkey: str, snap_fp: str, _line_fill: Sequence[Mapping[str, Any]], _line_names: Mapping[str, str]):
    return charts.fill_figure(_line_fill, _line_names)


# --------------------------------------------------------------------------- Eligibility


@st.cache_resource(max_entries=16, show_spinner=False)
def verdict_codes(problem_fp: str, _problem) -> np.ndarray:
    """Workers × lines: the reason code of each verdict, FORBIDDEN, PINNED or PINNED_ELSEWHERE (read-only)."""
    return pair_codes(_problem)


def pair_codes(p) -> np.ndarray:
    """Workers × lines: what decides each pair, as a key of ``charts.REASON_WORDS``.

    A forbid or a pin decides before the line's rules: a forbidden pair is FORBIDDEN, a pinned
    one PINNED, and every other line of a pinned worker PINNED_ELSEWHERE (they may not take it,
    whatever the line's rules say).
    """
    from allocator.eligibility import Reason

    codes = np.array([Reason(v).name for v in range(1, 7)], dtype=object)[p.reason.astype(int) - 1]
    codes = codes.astype(object)
    pinned = np.flatnonzero(p.pin >= 0)
    codes[pinned, :] = "PINNED_ELSEWHERE"
    codes[p.forbidden] = "FORBIDDEN"  # the more specific word, on a pinned worker's other lines too
    codes[pinned, p.pin[pinned]] = "PINNED"
    codes.setflags(write=False)
    return codes


#: The eligibility steps, numbered as the Eligibility page lists them.
STEP_WORDS = {
    "INCLUDED_WORKER": "1. Named on the line's included workers",
    "EXCLUDED_WORKER": "2. Named on the line's excluded workers",
    "EXCLUDED_TAG": "3. Has a tag the line excludes",
    "INCLUDED_TAG": "4. Has a tag the line requires",
    "MISSING_INCLUDED_TAG": "5. Lacks every tag the line requires",
    "DEFAULT": "5. The line is open to all",
}


def run_pairs(snapshot) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """The run's own pins and forbids as ``(worker id, job line id)`` sets."""
    return ({(x.worker_id, x.job_line_id) for x in snapshot.pins},
            {(x.worker_id, x.job_line_id) for x in snapshot.forbids})


def pair_verdict(p, i: int, j: int, code: str, run_pins: set, run_forbids: set) -> tuple[bool, str, str]:
    """Whether worker ``i`` may take line ``j``, the rule that decides, and why, in words.

    ``code`` is the pair's :func:`pair_codes` entry; ``run_pins`` and ``run_forbids`` (from
    :func:`run_pairs` of the run's own snapshot) tell a run's pin or forbid from one the scenario
    added. The tick and the words always agree: a forbid or a pin decides before the line's
    rules, so a forbidden pair never reads "everyone may take it".
    """
    wid, lid = p.worker_ids[i], p.line_ids[j]
    if code == "FORBIDDEN":
        by = "the run" if (wid, lid) in run_forbids else "this scenario"
        return False, f"Forbidden by {by}", f"Forbidden for this worker by {by}, whatever the line's rules say."
    if code in ("PINNED", "PINNED_ELSEWHERE"):
        k = int(p.pin[i])
        by = "the run" if (wid, p.line_ids[k]) in run_pins else "this scenario"
        if code == "PINNED":
            return True, f"Pinned by {by}", f"Pinned to this line by {by}."
        return (False, f"Pinned by {by}",
                f"Pinned to {p.line_names[k]} by {by}, so no other line.")
    v = p.verdict(i, j)
    step = STEP_WORDS[v.reason.name]
    why = v.explain().split(": ", 1)[1]
    return bool(v.eligible), step, f"{step.split('.', 1)[0]}. {why[:1].upper()}{why[1:]}"


def worker_lines_table(p, i: int, codes: np.ndarray, run_snapshot) -> pd.DataFrame:
    """One worker's row of the Eligibility page: each line, may they take it, their rank, why.

    Columns: Job line, May take it, Rank given (the number the worker wrote, as in the run's
    data, never the fractional share of a tie; blank for a line they did not rank), Decided by,
    Why, Reason code. The lines they ranked first, in their order, whether they may take them
    or not: a ranked line they may not take is what the planner comes to check ("why can she
    not have her first choice?"), not a row to find below every line open to her. Then the
    lines they did not rank, the ones they may take first.
    """
    pins, forbids = run_pairs(run_snapshot)
    wid = p.worker_ids[i]
    wrote = {x.job_line_id: float(x.rank) for x in run_snapshot.worker_preferences if x.worker_id == wid}
    rows = []
    for j in range(p.n_lines):
        may, decided, why = pair_verdict(p, i, j, codes[i, j], pins, forbids)
        rows.append({
            "Job line": p.line_names[j],
            "May take it": may,
            "Rank given": wrote.get(p.line_ids[j], float(p.worker_rank[i, j])) if p.worker_ranked[i, j] else None,
            "Decided by": decided,
            "Why": why,
            "Reason code": codes[i, j],
        })
    df = pd.DataFrame(rows, columns=["Job line", "May take it", "Rank given", "Decided by", "Why", "Reason code"])
    sites = list(getattr(p, "line_sites", None) or [])
    if any(x is not None for x in sites):  # the site beside each line (a line without one: its own)
        from editor import site_label

        df.insert(1, "Site", [site_label(x) for x in sites])
    unranked = df["Rank given"].isna()
    order = (df.assign(_unranked=unranked)
             .sort_values(["_unranked", "Rank given", "May take it"], ascending=[True, True, False], kind="stable"))
    return order.drop(columns="_unranked")


LINE_TABLE_COLS = ["Worker", "Worker id", "Because", "Rank they gave it"]


def line_workers_tables(p, j: int, codes: np.ndarray, run_snapshot) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One line's two tables on the Eligibility page: who may take it, and who ranked it but may not.

    Both show the number each worker wrote for the line (a tie of two lines at 2 is 2, not
    2.5). The workers who ranked it come first, best rank first: they are the ones a planner
    asks about; before, the table went by worker id and listed nobody who ranked the line but
    may not take it, the very pairs a planner has to explain.
    """
    from compare_view import given_ranks

    pins, forbids = run_pairs(run_snapshot)
    given = given_ranks(run_snapshot)
    line_id = p.line_ids[j]
    may, may_not = [], []
    for i in range(p.n_workers):
        rank = given.get((p.worker_ids[i], line_id))
        ok, step, why = pair_verdict(p, i, j, codes[i, j], pins, forbids)
        if ok:
            may.append({"Worker": p.worker_names[i], "Worker id": p.worker_ids[i], "Because": step,
                        "Rank they gave it": rank})
        elif rank is not None:  # the full reason: it names the tag or the pin
            may_not.append({"Worker": p.worker_names[i], "Worker id": p.worker_ids[i], "Because": why,
                            "Rank they gave it": rank})

    def ordered(rows: list[dict[str, Any]]) -> pd.DataFrame:
        df = pd.DataFrame(rows, columns=LINE_TABLE_COLS)
        df = df.assign(_unranked=df["Rank they gave it"].isna())
        return (df.sort_values(["_unranked", "Rank they gave it", "Worker id"], kind="stable")
                .drop(columns="_unranked").reset_index(drop=True))

    return ordered(may), ordered(may_not)


@st.cache_resource(max_entries=16, show_spinner=False)
def heatmap(problem_fp: str, rows: tuple[int, ...], show: tuple[str, ...], _problem, _codes: np.ndarray):
    """The eligibility heatmap of these workers (rows), with only ``show`` coloured."""
    p = _problem
    idx = list(rows)
    return charts.eligibility_heatmap(
        _codes[idx].tolist(),
        [f"{p.worker_names[i]} ({p.worker_ids[i]})" for i in idx],
        p.line_ids,
        show=list(show),
        line_names=[f"{name} ({lid})" if name != lid else lid for name, lid in zip(p.line_names, p.line_ids, strict=True)],
    )
