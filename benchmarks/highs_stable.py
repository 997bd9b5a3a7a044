"""The plain stability model for HiGHS (``scipy.optimize.milp``): the benchmarks' yardstick.

No preprocessing, no flow bound, no hint: one binary per allowed pair, constraints 1-4 of
allocation-model.md, and one stability constraint per pair that can block (eligible, not
forbidden, unpinned worker, a place), in the classic form of the stable-matching MILPs
(Kwanashie and Manlove; model HRT-1 of Delorme et al., EJOR 2019):

    cap(p) * sum_{q: s ranks q no worse than p} x(s, q) + sum_{t != s: p ranks t no worse than s} x(t, p) >= cap(p)

(if ``s`` is on a line it ranks strictly worse than ``p``, ``p`` holds ``cap(p)`` workers it
ranks no worse than ``s``). Kept out of the package: ``benchmarks/run.py`` measures it, and the tests use it as an
independent oracle on medium runs, where brute force cannot go.
"""

from __future__ import annotations

import numpy as np

from allocator.problem import ProblemData
from allocator.stability import strictly_less


def plain_stable_milp(problem: ProblemData, time_cap: float, threads: int = 2) -> dict:
    """Solve the plain model with HiGHS; status, objective (recomputed) and HiGHS's bound."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    m, n = problem.n_workers, problem.n_lines
    allowed = problem.allowed
    s_idx, p_idx = np.nonzero(allowed)
    k = s_idx.size
    index = np.full((m, n), -1, dtype=np.int64)
    index[s_idx, p_idx] = np.arange(k)
    rows, cols, vals = [s_idx, m + p_idx], [np.arange(k), np.arange(k)], [np.ones(k), np.ones(k)]
    lo = [np.ones(m), problem.mandatory.astype(float)]
    hi = [np.ones(m), problem.capacity.astype(float)]
    r = m + n
    # Pairs that can block (allocation-model.md, constraint 5), from the data alone so that
    # the tests can use this model as an oracle independent of the solver's code.
    cand = problem.eligible & ~problem.forbidden
    cand[problem.pin >= 0, :] = False
    cand[:, problem.capacity < 1] = False
    dw, dp, cap = problem.dw, problem.dp, problem.capacity
    for s, p in zip(*np.nonzero(cand), strict=True):
        qs = np.flatnonzero(allowed[s] & ~strictly_less(dw[s, p], dw[s]))
        ts = np.flatnonzero(allowed[:, p] & ~strictly_less(dp[s, p], dp[:, p]))
        ts = ts[ts != s]
        c = float(cap[p])
        rows.append(np.full(qs.size + ts.size, r))
        cols.append(np.concatenate([index[s, qs], index[ts, p]]))
        vals.append(np.concatenate([np.full(qs.size, c), np.ones(ts.size)]))
        lo.append([c])
        hi.append([np.inf])
        r += 1
    a = coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, k)
    ).tocsr()
    res = milp(
        problem.cost[s_idx, p_idx],
        constraints=LinearConstraint(a, np.concatenate(lo), np.concatenate(hi)),
        integrality=np.ones(k),
        bounds=Bounds(0, 1),
        options={"time_limit": time_cap, "disp": False},
    )
    status = {
        0: "optimal",
        1: "feasible" if res.x is not None else "no_solution",
        2: "infeasible",
    }.get(res.status, f"status {res.status}")
    objective = None
    if res.x is not None:
        chosen = res.x > 0.5
        objective = float(problem.cost[s_idx[chosen], p_idx[chosen]].sum())
    return {
        "status": status,
        "objective": objective,
        "bound": getattr(res, "mip_dual_bound", None),
        "stability_rows": r - m - n,
    }
