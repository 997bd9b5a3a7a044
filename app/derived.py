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


@st.cache_data(max_entries=32, show_spinner=False)
def blocking_table(rkey: str, problem_fp: str, _result, _problem) -> pd.DataFrame:
    """The blocking pairs of a result: worker, the line they have, the line they would rather have."""
    from allocator.stability import blocking_pairs

    p = _problem
    a = np.array([p.line_index[x["job_line_id"]] for x in
                  sorted(_result["allocations"], key=lambda x: p.worker_index[x["worker_id"]])])
    rows = [
        {
            "Worker": p.worker_names[s],
            "Has": p.line_names[a[s]],
            "Rank given to it": p.worker_rank[s, a[s]],
            "Would rather have": p.line_names[q],
            "Rank given to that": p.worker_rank[s, q],
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
    """Workers × lines: the reason code of each verdict, FORBIDDEN or PINNED (read-only)."""
    from allocator.eligibility import Reason

    p = _problem
    codes = np.array([Reason(v).name for v in range(1, 7)], dtype=object)[p.reason.astype(int) - 1]
    codes = codes.astype(object)
    codes[p.forbidden] = "FORBIDDEN"
    pinned = np.flatnonzero(p.pin >= 0)
    codes[pinned, p.pin[pinned]] = "PINNED"
    codes.setflags(write=False)
    return codes


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
    )
