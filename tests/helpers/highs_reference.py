"""A HiGHS reference for runs with business rules (test helper and benchmark yardstick).

The model of spec/allocation-model.md with spec/business-rules.md as a MILP for HiGHS through
``scipy.optimize.milp`` (scipy is a dependency already; ``highspy`` would add one and gives
nothing this needs):

- one binary ``x(s, p)`` per allowed pair (eligible, not forbidden, pins kept), each worker on
  exactly one line, capacities and must-be-filled lines (constraints 1-4);
- **links** (constraint 6): a binary ``y(link, site)`` per site that every worker of the link
  can reach, exactly one of them, and each worker's pairs on a site summing to its ``y``;
  pairs on other sites are fixed to 0;
- **quotas** (constraint 7): ``min <= sum x(s, p) <= max`` over the quota's lines and the
  workers it counts;
- the **lexicographic objective**, solved level by level: the moves from the previous
  allocation first (when ``fewest_moves`` is on and one is given), then the cost of each
  priority tier, priority 1 first and the workers without a priority last. Each level's
  optimum is fixed as a constraint (``level <= optimum + 1e-7 * max(1, |optimum|)``; moves
  are whole, so exactly) before the next level is solved.

Links, quotas, tiers and the previous allocation are read from the snapshot itself (not from
the engine's :class:`~allocator.problem.ProblemData` fields), so that a slip in the engine's
reading of them cannot hide here; the pairs and costs come from ``ProblemData``, which the
flow and HiGHS benchmarks check already.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from allocator.problem import ProblemData

#: The relative tolerance each level is optimal to (business-rules.md).
REL_TOL = 1e-7


@dataclass
class Reference:
    """HiGHS's answer: a status, the optimum of each level (best first) and an allocation."""

    status: str  # "optimal", "infeasible", "time limit" or "error: ..."
    levels: list[float] = field(default_factory=list)
    level_names: list[str] = field(default_factory=list)
    assignment: np.ndarray | None = None
    seconds: float = 0.0
    n_variables: int = 0
    n_constraints: int = 0
    #: For a level cut off by the time limit: its best value found (None if none) and HiGHS's bound.
    cut_incumbent: float | None = None
    cut_bound: float | None = None


def level_names_and_weights(
    problem: ProblemData, s_idx: np.ndarray, p_idx: np.ndarray
) -> tuple[list[str], list[np.ndarray]]:
    """The lexicographic levels as objective vectors over the pairs ``(s_idx, p_idx)``."""
    snap = problem.snapshot
    wi = problem.worker_index
    m = problem.n_workers
    names: list[str] = []
    weights: list[np.ndarray] = []
    previous = np.full(m, -1, dtype=np.int64)
    for a in snap.previous_allocations:
        previous[wi[a.worker_id]] = problem.line_index[a.job_line_id]
    if snap.settings.fewest_moves and (previous >= 0).any():
        prev = previous[s_idx]
        names.append("moves")
        weights.append(((prev >= 0) & (prev != p_idx)).astype(np.float64))
    priority: list[int | None] = [None] * m
    for w in snap.workers:
        priority[wi[w.id]] = w.priority
    numbers = sorted({p for p in priority if p is not None})
    tiers: list[int | None] = [*numbers, *([None] if None in priority or not numbers else [])]
    cost = problem.cost[s_idx, p_idx]
    for t in tiers:
        mine = np.array([priority[s] == t for s in range(m)], dtype=bool)
        names.append(
            "cost" if len(tiers) == 1 else (f"tier {t}" if t is not None else "no priority")
        )
        weights.append(np.where(mine[s_idx], cost, 0.0))
    return names, weights


def solve_reference(problem: ProblemData, *, time_limit: float = 120.0) -> Reference:
    """Solve the run's full model with HiGHS, level by level (see the module docstring).

    Parameters
    ----------
    problem
        The run (stability is ignored: this model has no stability constraints).
    time_limit
        Seconds for all levels together; a level cut off by it gives status "time limit".

    Returns
    -------
    Reference
        ``levels`` holds each level's proven optimum; ``assignment`` the last level's
        allocation (line index per worker).
    """
    started = time.perf_counter()
    snap = problem.snapshot
    m, n = problem.n_workers, problem.n_lines
    allowed = problem.allowed
    s_idx, p_idx = np.nonzero(allowed)
    k = s_idx.size
    pair = np.full((m, n), -1, dtype=np.int64)
    pair[s_idx, p_idx] = np.arange(k)
    lines = sorted(snap.job_lines, key=lambda j: j.id)
    assert [j.id for j in lines] == problem.line_ids
    # Site codes: named sites first, then one code per line without a site (a site of its own).
    named = {
        name: c for c, name in enumerate(sorted({j.site for j in lines if j.site is not None}))
    }
    site_of_line = np.array(
        [named[j.site] if j.site is not None else len(named) + p for p, j in enumerate(lines)],
        dtype=np.int64,
    )

    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    lo: list[float] = []
    hi: list[float] = []
    n_rows = 0

    def add_row(columns: np.ndarray, values: np.ndarray, low: float, high: float) -> None:
        nonlocal n_rows
        rows.append(np.full(columns.size, n_rows, dtype=np.int64))
        cols.append(np.asarray(columns, dtype=np.int64))
        vals.append(np.asarray(values, dtype=np.float64))
        lo.append(low)
        hi.append(high)
        n_rows += 1

    ones = np.ones(k)
    for s in range(m):  # constraint 1 (and pins: a pinned worker has one allowed pair)
        mine = pair[s][pair[s] >= 0]
        add_row(mine, ones[: mine.size], 1.0, 1.0)
    for p in range(n):  # constraints 2 and 3
        mine = pair[:, p][pair[:, p] >= 0]
        add_row(
            mine,
            ones[: mine.size],
            1.0 if problem.mandatory[p] else 0.0,
            float(problem.capacity[p]),
        )

    upper = np.ones(k)
    links: list[tuple[list[int], list[int], list[int]]] = []  # (members, sites, y columns)
    n_y = 0
    for link in sorted(snap.linked_workers, key=lambda x: x.id):
        members = sorted({problem.worker_index[w] for w in link.worker_ids})
        common: set[int] | None = None
        for s in members:
            reach = set(site_of_line[allowed[s]].tolist())
            common = reach if common is None else common & reach
        sites = sorted(common or ())
        links.append((members, sites, list(range(k + n_y, k + n_y + len(sites)))))
        n_y += len(sites)
        for s in members:  # pairs on a site not every worker of the link can reach
            upper[pair[s][(pair[s] >= 0) & ~np.isin(site_of_line, sites)]] = 0.0
    total = k + n_y
    for members, sites, ys in links:
        add_row(
            np.array(ys, dtype=np.int64), np.ones(len(ys)), 1.0, 1.0
        )  # no site: 1 <= 0, infeasible
        for s in members:
            for y, site in zip(ys, sites, strict=True):
                mine = pair[s][(pair[s] >= 0) & (site_of_line == site)]
                add_row(np.append(mine, y), np.append(np.ones(mine.size), -1.0), 0.0, 0.0)

    tags = {w.id: set(w.qualification_ids) for w in snap.workers}
    for q in sorted(snap.quotas, key=lambda x: x.id):
        if q.sites is not None:
            on_line = np.isin(site_of_line, [named[x] for x in q.sites if x in named])
        else:
            on_line = np.isin(np.array(problem.line_ids, dtype=object), list(q.job_line_ids or ()))
        counts = np.array(
            [
                q.qualification_id is None or q.qualification_id in tags[w]
                for w in problem.worker_ids
            ],
            dtype=bool,
        )
        mine = np.flatnonzero(on_line[p_idx] & counts[s_idx] & (upper > 0))
        high = np.inf if q.max_workers is None else float(q.max_workers)
        add_row(mine, np.ones(mine.size), float(q.min_workers), high)

    names, weights = level_names_and_weights(problem, s_idx, p_idx)
    out = Reference("optimal", level_names=names, n_variables=total)
    integrality = np.ones(total)
    bounds = Bounds(np.zeros(total), np.append(upper, np.ones(n_y)))
    for name, w in zip(names, weights, strict=True):
        left = time_limit - (time.perf_counter() - started)
        if left <= 0:
            out.status = "time limit"
            break
        a = coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_rows, total),
        ).tocsr()
        c = np.append(w, np.zeros(n_y))
        res = milp(
            c,
            constraints=LinearConstraint(a, np.array(lo), np.array(hi)),
            integrality=integrality,
            bounds=bounds,
            options={"time_limit": left, "disp": False, "mip_rel_gap": 1e-10},
        )
        if res.status == 2:
            out.status = "infeasible"
            break
        if res.status != 0 or res.x is None:
            out.status = "time limit" if res.status == 1 else f"error: {res.message}"
            if res.x is not None:
                out.cut_incumbent = float(w[res.x[:k] > 0.5].sum())
            bound = getattr(res, "mip_dual_bound", None)
            out.cut_bound = None if bound is None or not np.isfinite(bound) else float(bound)
            break
        chosen = res.x[:k] > 0.5
        value = float(w[chosen].sum())
        out.levels.append(value)
        assignment = np.full(m, -1, dtype=np.int64)
        assignment[s_idx[chosen]] = p_idx[chosen]
        out.assignment = assignment
        slack = 0.5 if name == "moves" else REL_TOL * max(1.0, abs(value))
        cols_w = np.flatnonzero(w)
        add_row(cols_w, w[cols_w], -np.inf, value + slack)
    out.n_constraints = n_rows
    out.seconds = time.perf_counter() - started
    return out
