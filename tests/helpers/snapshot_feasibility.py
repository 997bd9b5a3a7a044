"""Independent feasibility checks for generated snapshots (test helper, not a test module).

Written from spec/allocation-model.md alone, without the engine, so that a generator bug
and an engine bug cannot hide each other:

- `allowed_matrix`: the five-step eligibility rule, minus forbids, pins as the only option;
- `flow_allocation`: max-flow with lower bounds (every worker placed exactly once, every
  mandatory line at least once); returns an allocation or ``None`` when none exists;
- `lsa_allocation`: the same question through `scipy.optimize.linear_sum_assignment` over
  capacity slots, as a second opinion on small runs;
- `allocation_problems`: what is wrong with an allocation, in words;
- `stable_allocation` and `blocking_pairs`: deferred acceptance on the spec's costs, and the
  spec's weak-stability check.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import maximum_flow


def index(snap: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """Worker and job line id -> dense index."""
    w = {x["id"]: i for i, x in enumerate(snap["workers"])}
    j = {x["id"]: i for i, x in enumerate(snap["job_lines"])}
    return w, j


def eligibility_matrix(snap: dict[str, Any]) -> np.ndarray:
    """Eligibility (M x N bool) by the five steps, first match wins."""
    wi, ji = index(snap)
    m, n = len(wi), len(ji)
    tags = sorted({t for w in snap["workers"] for t in w.get("qualification_ids", [])})
    ti = {t: k for k, t in enumerate(tags)}
    has = np.zeros((m, len(tags) + 1), dtype=bool)  # a spare column for unknown tags
    for s, w in enumerate(snap["workers"]):
        for t in w.get("qualification_ids", []):
            has[s, ti[t]] = True
    elig = np.ones((m, n), dtype=bool)
    for e in snap.get("eligibility", []):
        p = ji[e["job_line_id"]]
        it = [ti.get(t, len(tags)) for t in e.get("included_qualification_ids", [])]
        et = [ti.get(t, len(tags)) for t in e.get("excluded_qualification_ids", [])]
        col = has[:, it].any(axis=1) if it else np.ones(m, dtype=bool)  # steps 4-5
        col &= ~has[:, et].any(axis=1)  # step 3
        col[[wi[x] for x in e.get("excluded_worker_ids", [])]] = False  # step 2
        col[[wi[x] for x in e.get("included_worker_ids", [])]] = True  # step 1
        elig[:, p] = col
    return elig


def allowed_matrix(snap: dict[str, Any]) -> np.ndarray:
    """Eligible pairs without forbids; a pinned worker may only go to the pinned line."""
    wi, ji = index(snap)
    allowed = eligibility_matrix(snap)
    for f in snap.get("forbids", []):
        allowed[wi[f["worker_id"]], ji[f["job_line_id"]]] = False
    for pin in snap.get("pins", []):
        s, p = wi[pin["worker_id"]], ji[pin["job_line_id"]]
        ok = allowed[s, p]
        allowed[s, :] = False
        allowed[s, p] = ok
    return allowed


def _lines(snap: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    caps = np.array([j["max_n_workers"] for j in snap["job_lines"]], dtype=np.int64)
    must = np.array([bool(j.get("must_have_workers", False)) for j in snap["job_lines"]])
    return caps, must


def flow_allocation(snap: dict[str, Any], allowed: np.ndarray | None = None) -> np.ndarray | None:
    """An allocation (line index per worker) satisfying constraints 1-4, or None.

    Circulation with lower bounds: source -> worker has lower bound 1 (placed exactly once),
    line -> sink has lower bound 1 on mandatory lines. The standard reduction moves each
    lower bound onto a super source / super sink; a feasible circulation exists iff the
    max flow from the super source saturates every one of its edges.
    """
    if allowed is None:
        allowed = allowed_matrix(snap)
    caps, must = _lines(snap)
    m, n = allowed.shape
    low = must.astype(np.int64)
    if np.any(caps < low):
        return None
    src, sink, ss, tt = 0, m + n + 1, m + n + 2, m + n + 3
    w_nodes = 1 + np.arange(m)
    l_nodes = 1 + m + np.arange(n)
    ws, ps = np.nonzero(allowed)
    rows = [np.full(m, ss), [src], w_nodes[ws], l_nodes, [ss], l_nodes[must], [sink]]
    cols = [
        w_nodes,
        [tt],
        l_nodes[ps],
        np.full(n, sink),
        [sink],
        np.full(int(must.sum()), tt),
        [src],
    ]
    vals = [
        np.ones(m),
        [m],
        np.ones(ws.size),
        caps - low,
        [low.sum()],
        np.ones(int(must.sum())),
        [m],
    ]
    rows, cols, vals = (np.concatenate([np.asarray(x) for x in a]) for a in (rows, cols, vals))
    keep = vals > 0
    graph = coo_matrix(
        (vals[keep].astype(np.int32), (rows[keep], cols[keep])), shape=(m + n + 4, m + n + 4)
    ).tocsr()
    res = maximum_flow(graph, ss, tt)
    if res.flow_value != m + int(low.sum()):
        return None
    flow = res.flow.tocoo()
    sel = (flow.data > 0) & (flow.row >= 1) & (flow.row <= m) & (flow.col > m) & (flow.col <= m + n)
    out = np.full(m, -1, dtype=np.int64)
    out[flow.row[sel] - 1] = flow.col[sel] - 1 - m
    return out


def lsa_allocation(snap: dict[str, Any], allowed: np.ndarray | None = None) -> np.ndarray | None:
    """The same question as `flow_allocation`, by assignment over capacity slots.

    A mandatory line's first slot earns -1 and a forbidden pair costs more than all
    rewards together, so the optimum uses only allowed pairs and fills every mandatory
    slot whenever some allocation does.
    """
    if allowed is None:
        allowed = allowed_matrix(snap)
    caps, must = _lines(snap)
    m, n = allowed.shape
    slot_line = np.repeat(np.arange(n), caps)
    if slot_line.size < m:
        return None
    first = np.r_[True, slot_line[1:] != slot_line[:-1]]
    reward = np.where(first & must[slot_line], -1.0, 0.0)
    big = float(n + 1)
    cost = np.where(allowed[:, slot_line], reward[None, :], big)
    rows, cols = linear_sum_assignment(cost)
    out = np.full(m, -1, dtype=np.int64)
    out[rows] = slot_line[cols]
    return out if not allocation_problems(snap, out, allowed) else None


def allocation_problems(
    snap: dict[str, Any], line_of: np.ndarray, allowed: np.ndarray | None = None
) -> list[str]:
    """Everything wrong with an allocation under constraints 1-4, in words (empty if none)."""
    if allowed is None:
        allowed = allowed_matrix(snap)
    caps, must = _lines(snap)
    wid = [w["id"] for w in snap["workers"]]
    lid = [j["id"] for j in snap["job_lines"]]
    out = []
    for s in np.flatnonzero(line_of < 0):
        out.append(f"worker {wid[s]} is not placed")
    for s in np.flatnonzero(line_of >= 0):
        if not allowed[s, line_of[s]]:
            out.append(f"worker {wid[s]} is on {lid[line_of[s]]}, which is not allowed")
    fill = np.bincount(line_of[line_of >= 0], minlength=len(lid))
    for p in np.flatnonzero(fill > caps):
        out.append(f"{lid[p]} holds {fill[p]} workers, capacity {caps[p]}")
    for p in np.flatnonzero(must & (fill == 0)):
        out.append(f"mandatory {lid[p]} is empty")
    return out


# -- stability -----------------------------------------------------------------------------


def _fractional(values: list[float]) -> list[float]:
    """Fractional ranks of numbers given in any notation (ties share their positions)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    a = 0
    while a < len(order):
        b = a
        while b + 1 < len(order) and values[order[b + 1]] == values[order[a]]:
            b += 1
        for i in order[a : b + 1]:
            out[i] = (a + 1 + b + 1) / 2
        a = b + 1
    return out


def cost_parts(snap: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Worker dissatisfaction Dw (M x N) and line-side Dp (N x M) as the spec defines them."""
    wi, ji = index(snap)
    m, n = len(wi), len(ji)
    settings = {"preference_power": 1.0, **snap.get("settings", {})}
    k = float(settings["preference_power"])
    lists: dict[int, list[tuple[int, float]]] = {}
    for r in snap.get("worker_preferences", []):
        lists.setdefault(wi[r["worker_id"]], []).append((ji[r["job_line_id"]], float(r["rank"])))
    rw = np.zeros((m, n))
    for s in range(m):
        items = lists.get(s, [])
        rw[s, :] = (len(items) + 1 + n) / 2
        for (p, _), fr in zip(items, _fractional([v for _, v in items]), strict=True):
            rw[s, p] = fr
    plists: dict[str, list[tuple[int, float]]] = {}
    for r in snap.get("preferencer_preferences", []):
        plists.setdefault(r["preferencer_id"], []).append((wi[r["worker_id"]], float(r["rank"])))
    rq: dict[str, np.ndarray] = {}
    for q, items in plists.items():
        row = np.full(m, (len(items) + 1 + m) / 2)
        for (s, _), fr in zip(items, _fractional([v for _, v in items]), strict=True):
            row[s] = fr
        rq[q] = row
    dp = np.zeros((n, m))
    for p, line in enumerate(snap["job_lines"]):
        qs = line.get("preferencer_ids", [])
        if qs:
            neutral = np.full(m, (m + 1) / 2)
            dp[p] = np.mean([rq.get(q, neutral) ** k for q in qs], axis=0)
        else:
            dp[p] = ((m + 1) / 2) ** k
    for wt in snap.get("weightings", []):
        s = wi[wt["worker_id"]]
        if wt.get("job_line_id") is None:
            dp[:, s] += wt["value"]
        else:
            dp[ji[wt["job_line_id"]], s] += wt["value"]
    return rw**k, dp


def stable_allocation(snap: dict[str, Any]) -> np.ndarray:
    """Worker-proposing deferred acceptance over allowed pairs (ties broken by index).

    Stable for the tie-broken strict orders, hence weakly stable for the real ones. A
    worker left unplaced gets -1.
    """
    allowed = allowed_matrix(snap)
    dw, dp = cost_parts(snap)
    caps, _ = _lines(snap)
    m, n = allowed.shape
    prefs = [[int(p) for p in np.lexsort((np.arange(n), dw[s])) if allowed[s, p]] for s in range(m)]
    nxt = [0] * m
    held: list[list[int]] = [[] for _ in range(n)]
    free = list(range(m - 1, -1, -1))
    line_of = np.full(m, -1, dtype=np.int64)
    while free:
        s = free.pop()
        if nxt[s] >= len(prefs[s]):
            continue
        p = prefs[s][nxt[s]]
        nxt[s] += 1
        held[p].append(s)
        line_of[s] = p
        if len(held[p]) > caps[p]:
            worst = max(held[p], key=lambda t: (dp[p, t], t))
            held[p].remove(worst)
            line_of[worst] = -1
            free.append(worst)
    return line_of


def blocking_pairs(snap: dict[str, Any], line_of: np.ndarray) -> list[tuple[str, str]]:
    """Constraint 5's blocking pairs of an allocation, as (worker id, job line id)."""
    eligible = eligibility_matrix(snap)
    dw, dp = cost_parts(snap)
    caps, _ = _lines(snap)
    wi, _ = index(snap)
    pinned = {wi[p["worker_id"]] for p in snap.get("pins", [])}
    wid = [w["id"] for w in snap["workers"]]
    lid = [j["id"] for j in snap["job_lines"]]
    members = [np.flatnonzero(line_of == p) for p in range(len(lid))]
    out = []
    for s, cur in enumerate(line_of.tolist()):
        if s in pinned:
            continue
        for p in np.flatnonzero(eligible[s]).tolist():
            if p == cur or not dw[s, p] < dw[s, cur]:
                continue
            if members[p].size < caps[p] or np.any(dp[p, s] < dp[p, members[p]]):
                out.append((wid[s], lid[p]))
    return out
