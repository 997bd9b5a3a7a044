"""Comb inequalities for the stability model, separated on its LP relaxation with HiGHS.

The cumulative encoding (:mod:`.constraints`) says, for a candidate pair ``(i, p)``: if
``i`` is on a line it ranks strictly worse than ``p`` (``u_i = 1``), then ``p`` is full of
workers it ranks no worse than ``i``. In the LP relaxation that is ``c * u_i <= P(p, g_i)``
with ``c = cap(p)`` and ``P(p, g)`` the number of workers on ``p`` among the first ``g`` of
its order: weak when ``c > 1``, since it only sees one worker at a time. On the runs of
``benchmarks/`` the LP bound sat 2.2 % below the stable optimum.

The comb (after Baiou and Balinski's comb inequalities for stable admissions, adapted to
ties). Fix a line ``p``, a prefix length ``g`` of its order (the set ``S`` of its first
``g`` workers) and a set ``I`` of at most ``c`` candidate workers whose own prefixes
``g_i <= g``. Then

    sum_{t in S \\ I} x(t, p)  >=  sum_{i in I} u_i.

Proof. If no worker of ``I`` is strictly below ``p`` the right side is 0. Otherwise some
``i`` in ``I`` is, and stability puts ``c`` workers of the first ``g_i <= g`` on ``p``, so
``sum_{t in S} x(t, p) = c`` (never more: capacity). Each ``i`` in ``I`` is on ``p``
(``x(i, p) = 1``) or strictly below it (``u_i = 1``) or neither, never both, so
``sum_{i in I} (x(i, p) + u_i) <= |I| <= c = sum_{t in S} x(t, p)``; subtract
``sum_{i in I} x(i, p)`` from both sides. (With ``|I| = 1`` and a full line this is the
cumulative constraint; a larger ``I`` counts several workers at once.)

There are exponentially many combs, so :func:`comb_cuts` separates them: solve the LP,
for each line and prefix take the ``c`` candidates with the largest ``x(i, p) + u_i``
(which maximises the violation), add the violated combs, and repeat. On the 150 x 40
stable benchmark the rounds raise the LP bound from 2,424.9 to 2,434.6, 2,440.4, 2,442.6
and 2,442.9 (optimum 2,479.3; 33 combs), and CP-SAT, given them as ordinary linear
constraints, proves the optimum with a third of the work (0.56 against 1.73
deterministic units); on 200 x 50, 4.45 against 6.17. Each round re-solves the LP from
scratch (about 0.9 s at 300 x 80 on a loaded machine), and the later rounds add little,
hence :data:`MAX_ROUNDS`.

The rounds are a fixed number (not a time budget), so the cuts depend only on the inputs:
the search that uses them stays deterministic. HiGHS's simplex is deterministic too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from allocator.problem import ProblemData
from allocator.solvers.cpsat.constraints import StabilityStructure
from allocator.solvers.cpsat.variables import Variables

MAX_ROUNDS = 4
# Above this many kept pairs the LP rounds are skipped (decided by size, so deterministic):
# at 1,500 x 300 (274,396 kept pairs) building and solving the LP took longer than the
# 120 s time limit on this machine.
MAX_LP_PAIRS = 50_000
VIOLATION = 1e-4  # an LP value this far past a comb counts as a violation


@dataclass
class Comb:
    """``sum x[plus] - sum x[minus] >= 0`` over the model's pair numbers."""

    plus: np.ndarray
    minus: np.ndarray


@dataclass
class CombCuts:
    cuts: list[Comb] = field(default_factory=list)
    lp_bounds: list[float] = field(default_factory=list)  # the LP optimum before each round
    stopped_early: bool = False  # the deadline ended the rounds (then timing chose the cuts)
    skipped: bool = False  # too many pairs for the LP rounds

    def describe(self) -> str:
        if self.skipped:
            return f"combs: skipped (more than {MAX_LP_PAIRS:,} pairs)"
        if not self.lp_bounds:
            return "combs: none (no LP)"
        return (
            f"combs: {len(self.cuts)} in {len(self.lp_bounds)} LP rounds, LP bound "
            f"{self.lp_bounds[0]:.6g} -> {self.lp_bounds[-1]:.6g}"
            + (" (stopped by the deadline)" if self.stopped_early else "")
        )


class _Lp:
    """The LP relaxation of the stable model, in rows; combs are appended as rows."""

    def __init__(self, v: Variables, problem: ProblemData, st: StabilityStructure) -> None:
        self.n_x = v.x.__len__()
        self.rows: list[tuple[np.ndarray, np.ndarray, float, float]] = []
        self.n_vars = self.n_x
        cap = problem.capacity
        for s in range(problem.n_workers):
            ks = v.of_worker(s)
            self._row(ks, np.ones(ks.size), 1.0, 1.0)
        for p in range(problem.n_lines):
            ks = v.of_line(p)
            lo = 1.0 if problem.mandatory[p] else 0.0
            if ks.size > cap[p] or lo > 0:
                self._row(ks, np.ones(ks.size), lo, float(cap[p]))
        # u(s, w): the sum of s's pairs from position w of its order (a variable when more
        # than one pair, to keep the rows short).
        self.u: dict[tuple[int, int], int] = {}
        for s, w in sorted(set(zip(st.s.tolist(), st.w.tolist(), strict=True))):
            ks = st.worker_order[s][w:]
            self.u[(s, w)] = self._sum_var(ks)
        # cut(p, g): p is full with its first g workers, and then holds nobody after them
        # (chained as in the CP-SAT model: a cut implies the next one, and excludes the
        # workers between the two; O(pairs) rows in all).
        cut: dict[tuple[int, int], int] = {}
        for p in np.unique(st.p).tolist():
            ks = st.line_order[p]
            c = int(cap[p])
            prev, prev_g = None, 0
            for g in sorted({int(g) for g in st.g[st.p == p] if g >= c}):
                y = self._var()
                self._row(np.append(ks[:g], y), np.append(np.ones(g), -c), 0.0, np.inf)
                if prev is not None:
                    self._row(np.array([prev, y]), np.array([1.0, -1.0]), -np.inf, 0.0)
                    for k in ks[prev_g:g]:
                        self._row(np.array([prev, k]), np.ones(2), -np.inf, 1.0)
                cut[(p, g)] = y
                prev, prev_g = y, g
            if prev is not None:
                for k in ks[prev_g:]:
                    self._row(np.array([prev, k]), np.ones(2), -np.inf, 1.0)
        for s, p, w, g in zip(
            st.s.tolist(), st.p.tolist(), st.w.tolist(), st.g.tolist(), strict=True
        ):
            u = self.u[(s, w)]
            if g < cap[p]:
                self._row(np.array([u]), np.ones(1), 0.0, 0.0)
            else:
                self._row(np.array([u, cut[(p, g)]]), np.array([1.0, -1.0]), -np.inf, 0.0)
        self.cost = np.zeros(self.n_vars)
        self.cost[: self.n_x] = problem.cost[v.workers, v.lines]

    def _var(self) -> int:
        self.n_vars += 1
        return self.n_vars - 1

    def _sum_var(self, ks: np.ndarray) -> int:
        if ks.size == 1:
            return int(ks[0])
        u = self._var()
        self._row(np.append(ks, u), np.append(np.ones(ks.size), -1.0), 0.0, 0.0)
        return u

    def _row(self, cols: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> None:
        self.rows.append(
            (np.asarray(cols, dtype=np.int64), np.asarray(vals, dtype=np.float64), lo, hi)
        )

    def solve(self, time_limit: float):
        from scipy.optimize import linprog
        from scipy.sparse import csr_matrix

        cols = np.concatenate([r[0] for r in self.rows])
        vals = np.concatenate([r[1] for r in self.rows])
        rows = np.repeat(np.arange(len(self.rows)), [r[0].size for r in self.rows])
        lo = np.array([r[2] for r in self.rows])
        hi = np.array([r[3] for r in self.rows])
        a = csr_matrix((vals, (rows, cols)), shape=(len(self.rows), self.n_vars))
        eq = lo == hi
        up = ~eq & np.isfinite(hi)
        down = ~eq & np.isfinite(lo)
        from scipy.sparse import vstack

        res = linprog(
            self.cost,
            A_ub=vstack([a[up], -a[down]]).tocsr(),
            b_ub=np.concatenate([hi[up], -lo[down]]),
            A_eq=a[eq],
            b_eq=lo[eq],
            bounds=(0, 1),
            method="highs-ds",
            options={"time_limit": max(0.01, time_limit)},
        )
        return res if res.status == 0 else None


def violated_combs(p: int, cap: int, order: np.ndarray, rows: np.ndarray, gs: np.ndarray, kp: np.ndarray,
                   value: np.ndarray, z: np.ndarray, seen: set, tol: float):
    """The most violated comb of each prefix of line ``p`` at the LP point ``z``, not seen before.

    ``order`` is ``p``'s pair numbers best worker first; ``rows``, ``gs``, ``kp`` and ``value`` are,
    per candidate constraint on ``p``, its number, its prefix length, its worker's pair on ``p``
    (-1 when none is kept) and ``x(i, p) + u_i`` at ``z``. For each prefix length ``g`` (at least
    ``cap``) the ``cap`` candidates of largest value maximise the violation; a comb more than ``tol``
    past its bound and not in ``seen`` (which it joins) is yielded as ``(top, plus)``: the positions
    of ``I`` among ``rows`` and the pair numbers of ``S \\ I``.
    """
    prefix = np.concatenate([[0.0], np.cumsum(z[order])])
    for g in np.unique(gs[gs >= cap]).tolist():
        inside = np.flatnonzero(gs <= g)
        top = inside[np.argsort(-value[inside], kind="stable")[:cap]]
        if value[top].sum() <= prefix[g] + tol:
            continue
        key = (p, g, tuple(sorted(rows[top].tolist())))
        if key in seen:
            continue
        seen.add(key)
        yield top, np.setdiff1d(order[:g], kp[top][kp[top] >= 0])


def comb_cuts(
    v: Variables,
    problem: ProblemData,
    st: StabilityStructure | None,
    *,
    deadline: float,
    rounds: int = MAX_ROUNDS,
) -> CombCuts:
    """Separate violated combs on the LP relaxation, ``rounds`` times at most."""
    out = CombCuts()
    if st is None or len(v.x) > MAX_LP_PAIRS:
        out.skipped = st is not None
        return out
    lp = _Lp(v, problem, st)
    cap = problem.capacity
    # Per line: the candidate constraints on it, with their worker's pair on p (or -1).
    per_line: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for p in np.unique(st.p).tolist():
        rows = np.flatnonzero(st.p == p)
        s = st.s[rows]
        per_line[p] = (rows, st.g[rows], v.index[s, p])
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    for _ in range(rounds):
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            out.stopped_early = True
            break
        res = lp.solve(remaining)
        if res is None:
            out.stopped_early = True
            break
        out.lp_bounds.append(float(res.fun))
        x = res.x
        new = 0
        for p, (rows, gs, kp) in per_line.items():
            value = np.array([x[lp.u[(int(st.s[r]), int(st.w[r]))]] for r in rows])
            value += np.where(kp >= 0, x[np.maximum(kp, 0)], 0.0)
            for top, plus in violated_combs(p, int(cap[p]), st.line_order[p], rows, gs, kp, value, x, seen, VIOLATION):
                minus = np.concatenate(
                    [st.worker_order[int(st.s[r])][int(st.w[r]) :] for r in rows[top]]
                )
                out.cuts.append(Comb(plus, minus))
                lp._row(
                    np.concatenate([plus, minus]),
                    np.concatenate([np.ones(plus.size), -np.ones(minus.size)]),
                    0.0,
                    np.inf,
                )
                new += 1
        if new == 0:
            break
    return out
