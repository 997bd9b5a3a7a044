"""A rigorous LP bound for large stable runs, and the LP's support as a small search space.

Where it is used. Above :data:`.cuts.MAX_LP_PAIRS` kept pairs (1,500 x 300: 274,396) the comb
rounds are skipped and, before this module, the reported bound was the flow's, and the
one-worker search over the whole model did not improve on the heuristic start in its work.
Measured on ``stable-1500x300`` (load about 1-2): the flow bound is 250,329; the LP relaxation
of the pruned cumulative model (this module's LP) is 255,824, solved by HiGHS's dual simplex
over all 296,023 columns in 57 s (its interior point method: over 150 s); the flow repair's
start costs 284,138. The LP's optimum uses only 2,445 pairs. CP-SAT over those pairs and the
start's (2,734 pairs, every stability constraint kept) proved that restricted optimum,
270,362.6, in 2.6 deterministic units (10.6 s), and with each worker's three cheapest kept
pairs added (4,834 pairs) reached 267,212 in 22.7 units. So most of the 11.9 % gap was the
start's, and some the bound's: :func:`stable_lp_bound` solves the LP by column generation (a
few thousand of the pairs as columns, priced in exact integers) and :func:`support` gives the
pairs of the restricted search (:func:`.model._large_phase`).

The LP. Columns, each with bounds ``0 <= z <= U_z`` (all integers): ``x`` per kept pair
(``U = 1``); per stability constraint's worker suffix ``u(s, w)`` (``U = 1``), the sum of
``s``'s pairs from position ``w`` of its order, chained from the worst line up; per line ``p``
and needed prefix length ``g`` the prefix sum ``P(p, g)`` (``U = cap(p)``), chained, and the
cut ``y(p, g)`` (``U = 1``: ``p`` is full with its first ``g`` workers). Rows, as in
:mod:`.constraints` (the CP-SAT model) and :mod:`.cuts`:

* ``sum_p x(s, p) = 1`` per worker; ``sum_s x(s, p) <= cap(p)``; ``>= 1`` on mandatory lines;
* ``u(s, w) - u(s, w') - sum x(s, ks[w:w']) = 0`` (``w'`` the next suffix down; none: 0);
* ``P(p, g) - P(p, g') - sum x(ks[g':g], p) = 0`` (``g'`` the previous prefix; none: 0);
* ``cap(p) y(p, g) - P(p, g) <= 0``, ``y(p, g') - y(p, g) <= 0``, and
  ``y(p, g') + x(t, p) <= 1`` for each worker ``t`` after position ``g'`` up to ``g`` (and
  ``y(p, g_last) + x(t, p) <= 1`` after the last);
* per stability constraint ``(s, p)``: ``u(s, w) - y(p, g) <= 0``, or ``u(s, w) <= 0`` when
  ``g < cap(p)``.

Every stable allocation over the kept pairs (so every stable allocation: pruning is sound)
gives an integer point of these rows with the auxiliaries set to their meanings (the proofs
are those of :mod:`.constraints`), so the LP optimum bounds the stable optimum from below in
the same integer costs as CP-SAT's objective (:mod:`allocator.solvers.scaling`). Links and
quotas are left out: a relaxation, still a bound.

Why the bound is rigorous: the argument of :mod:`.lp_bound` (Neumaier and Shcherbina 2004, in
exact integers), with column bounds ``U_z`` that need not be 1. HiGHS's row duals are scaled
by ``S = 2^s`` and rounded to integers ``Y`` (sign forced by each row's sense), the reduced
costs ``R = S c - A^T Y`` are exact int64, and for every point of the relaxation
``S c^T z = Y^T A z + R^T z >= Y^T b + sum_{R_z < 0} R_z U_z``, so ``B / S`` with
``B = Y^T b + sum_{R_z < 0} R_z U_z`` is a lower bound whatever ``Y`` is (rounding only costs
tightness). The cost is an integer, so the bound is ``ceil(B / S)``. One more term makes an
early round useful: each worker's pairs sum to 1 in every point of the relaxation, so their
terms ``sum_k R_k x_k`` are at least the worker's least ``R_k`` (Farley's bound for column
generation), which replaces ``sum_{R_k < 0} R_k`` over the pairs.

Column generation. ``B`` holds for any duals, so HiGHS need not see every ``x``: it solves
the LP over the auxiliaries and a few pairs (the start allocation's, which make it feasible,
and each worker's :data:`START_CHEAPEST` cheapest), ``R`` is priced over every kept pair, and
pairs priced below 0 join for another round (at most :data:`MAX_ROUNDS`). The last round's
``B`` counts every column, so the bound is rigorous whether or not the rounds converged.

Combs. From round ``combs_from`` on (:func:`stable_lp_bound`), the combs of :mod:`.cuts` that the
round's LP point violates join the ``<=`` rows (:class:`_CombSeparator`, the same separation:
per line and prefix the ``cap`` candidates of largest ``x(i, p) + u_i``), in this LP's columns
``sum_{i in I} u(s_i, w_i) - sum_{t in S \\ I} x(t, p) <= 0``: valid for every stable allocation
(the proof in :mod:`.cuts`), integer, and over *every* kept pair, in the LP or not. So the
bound stays rigorous with no new argument: ``safe_bound`` takes them as rows of ``A``, their
duals enter every column's ``R`` (the pairs outside the LP too, and so Farley's term), and
``B`` is a lower bound whatever the duals. A round right after new combs usually bounds less
(their duals make pairs outside the LP cheap, which Farley's term charges); the rounds after
catch up. Measured on ``stable-1500x300`` (load 1-2): with combs from round 2 the rounds bound
235,551, 248,914, 256,021, 257,176 (without: 235,551, 254,597, 255,110, and 255,824 converged),
in about the same iterations per round.

Determinism. Every round is HiGHS's dual simplex (serial; its result depends only on the LP),
solved from scratch (a warm start after unfixing columns ran ten times slower here), and the
rounds stop at a number of rounds and a budget of simplex iterations (counts: a round the
budget cuts gives no duals, and the rounds before it stand, on any machine). The wall clock is
a hard limit on top; if it ends a round the log says so and a re-run may differ.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from allocator.problem import ProblemData
from allocator.solvers.cpsat.constraints import StabilityStructure
from allocator.solvers.cpsat.cuts import violated_combs
from allocator.solvers.cpsat.lp_bound import IntegerRows, highs_shrink, new_highs, safe_bound

#: Most rounds of column generation.
MAX_ROUNDS = 25
#: Each worker's cheapest kept pairs in the first round's columns.
START_CHEAPEST = 3
#: Pairs per worker added in a round of column generation (the most negative reduced costs).
PER_WORKER = 2
#: Simplex iterations per round past which the round gives no bound (a deterministic cap).
MAX_ITERATIONS = 200_000


@dataclass
class StableLP:
    """The outcome: a rigorous bound in the integer costs, and the LP's pairs."""

    bound: int | None  # ceil(B / S): a lower bound on the stable optimum's integer cost
    lp_value: float  # HiGHS's optimum of the last round (floating point; for the log)
    x: np.ndarray  # (P,) the last round's primal values of the kept pairs (0 outside the LP)
    rounds: int
    columns: int  # pair columns HiGHS saw in the last round
    pairs: int
    seconds: float
    stopped: str = ""  # why the rounds ended early ("": the round limit or convergence)
    converged: bool = False  # no pair left with a negative reduced cost (nor a comb added): the LP optimum
    # (P,) the last round's reduced costs of the kept pairs, in the integer costs (priced over
    # every pair, in the LP or not; floating point, for ranking pairs only); None before a round.
    reduced: np.ndarray | None = None
    combs: int = 0  # comb rows added to the LP


    def describe(self) -> str:
        rounds = (f"{self.rounds} rounds of column generation "
                  f"({'converged' if self.converged else 'not converged'}), {self.columns:,} of "
                  f"{self.pairs:,} pairs as columns"
                  + (f", {self.combs:,} combs" if self.combs else "")
                  + f", {self.seconds:.1f} s"
                  + (f"; {self.stopped}" if self.stopped else ""))
        if self.bound is None:
            return f"LP bound: none, {rounds}"
        return f"LP bound: {self.bound} in integer costs (rigorous, from the duals), {rounds}"


def _build(workers: np.ndarray, lines: np.ndarray, problem: ProblemData, st: StabilityStructure):
    """The LP's integer rows over all columns: (A_eq, b_eq, A_ub, b_ub, upper bounds, the column of
    each worker suffix ``u(s, w)``)."""
    n_x = workers.size
    upper: list[int] = [1] * n_x
    rows = IntegerRows()
    cap = np.asarray(problem.capacity, dtype=np.int64)
    starts = np.searchsorted(workers, np.arange(problem.n_workers + 1))
    for s in range(problem.n_workers):
        ks = np.arange(starts[s], starts[s + 1])
        rows.add("eq", ks, np.ones(ks.size), 1)
    by_line = np.argsort(lines, kind="stable")
    line_starts = np.searchsorted(lines[by_line], np.arange(problem.n_lines + 1))
    for p in range(problem.n_lines):
        ks = by_line[line_starts[p]:line_starts[p + 1]]
        if ks.size > cap[p]:
            rows.add("ub", ks, np.ones(ks.size), int(cap[p]))
        if problem.mandatory[p]:
            rows.add("ub", ks, -np.ones(ks.size), -1)

    def new(u_max: int) -> int:
        upper.append(u_max)
        return len(upper) - 1

    # Worker suffixes, chained from the worst line up.
    u: dict[tuple[int, int], int] = {}
    for s in np.unique(st.s).tolist():
        ks = st.worker_order[s]
        prev, prev_w = None, ks.size
        for w in sorted(set(st.w[st.s == s].tolist()), reverse=True):
            col = new(1)
            part = ks[w:prev_w]
            cols = np.concatenate([[col], part] + ([[prev]] if prev is not None else []))
            vals = np.concatenate([[1], -np.ones(part.size)] + ([[-1]] if prev is not None else []))
            rows.add("eq", cols, vals, 0)
            u[(s, w)] = col
            prev, prev_w = col, w
    # Line prefixes and cuts, chained.
    cut: dict[tuple[int, int], int] = {}
    for p in np.unique(st.p).tolist():
        ks = st.line_order[p]
        c = int(cap[p])
        prev_p, prev_y, prev_g = None, None, 0
        for g in sorted({int(g) for g in st.g[st.p == p] if g >= c}):
            pc = new(c)
            part = ks[prev_g:g]
            cols = np.concatenate([[pc], part] + ([[prev_p]] if prev_p is not None else []))
            vals = np.concatenate([[1], -np.ones(part.size)] + ([[-1]] if prev_p is not None else []))
            rows.add("eq", cols, vals, 0)
            y = new(1)
            rows.add("ub", [y, pc], [c, -1], 0)
            if prev_y is not None:
                rows.add("ub", [prev_y, y], [1, -1], 0)
                for k in part.tolist():
                    rows.add("ub", [prev_y, k], [1, 1], 1)
            cut[(p, g)] = y
            prev_p, prev_y, prev_g = pc, y, g
        if prev_y is not None:
            for k in ks[prev_g:].tolist():
                rows.add("ub", [prev_y, k], [1, 1], 1)
    for s, p, w, g in zip(st.s.tolist(), st.p.tolist(), st.w.tolist(), st.g.tolist(), strict=True):
        if g < cap[p]:
            rows.add("ub", [u[(s, w)]], [1], 0)
        else:
            rows.add("ub", [u[(s, w)], cut[(p, g)]], [1, -1], 0)
    n = len(upper)
    return (rows.matrix("eq", n), rows.b["eq"], rows.matrix("ub", n), rows.b["ub"],
            np.asarray(upper, dtype=np.int64), u)


def stable_lp_bound(workers: np.ndarray, lines: np.ndarray, problem: ProblemData, st: StabilityStructure,
                    cost: np.ndarray, start: np.ndarray | None, deadline: float,
                    rounds: int = 0, iterations: int = 0, combs_from: int = 0) -> StableLP:
    """The rigorous LP bound over the kept pairs ``(workers, lines)`` (row-major) with integer
    costs ``cost``; ``start`` (a stable allocation over them: line per worker) seeds the columns.

    At most ``rounds`` rounds (0: :data:`MAX_ROUNDS`) and ``iterations`` simplex iterations in
    all (0: :data:`MAX_ITERATIONS` per round); both are counts, so where they stop the rounds
    does not depend on the machine's speed. ``deadline`` (``time.perf_counter()``) is a hard
    limit on top, for a loaded machine. From round ``combs_from`` on (0: never), the combs the
    round's solution violates join the rows for the next round (see the module docstring)."""
    import highspy  # only large runs get here

    began = time.perf_counter()
    n_x = workers.size
    a_eq, b_eq, a_ub, b_ub, upper, u_col = _build(workers, lines, problem, st)
    n = upper.size
    c = np.zeros(n, dtype=np.int64)
    c[:n_x] = cost
    # HiGHS sees the costs divided by a power of two (exact), the largest near 2^20.
    shrink = highs_shrink(c)
    c_h = c.astype(np.float64) / shrink
    active = np.zeros(n, dtype=bool)
    active[n_x:] = True
    if start is not None:
        active[:n_x] |= start[workers] == lines
    order = np.lexsort((lines, cost, workers))  # each worker's pairs, cheapest first
    first = np.searchsorted(workers[order], workers[order], side="left")
    active[order[np.arange(n_x) - first < START_CHEAPEST]] = True
    lp, h = _highs(a_eq, b_eq, a_ub, b_ub, c_h, np.where(active, upper, 0).astype(np.float64))
    out = StableLP(None, float("nan"), np.zeros(n_x), 0, 0, n_x, 0.0)
    combs = _CombSeparator(workers, lines, problem, st, u_col) if combs_from else None
    a_all, b_all = a_ub, list(b_ub)  # the <= rows with the combs added so far
    used = last = 0
    while out.rounds < (rounds or MAX_ROUNDS):
        left = deadline - time.perf_counter()
        if left <= 0:
            out.stopped = "the deadline ended the column generation"
            break
        # HiGHS's time limit is on the object's total run time over every run(), not this call.
        h.setOptionValue("time_limit", h.getRunTime() + float(left))
        if iterations:
            # A round needs at least as many iterations as the one before (measured: 6,210,
            # 8,495, 13,214, 13,622 on 1,500 x 300); one the budget would cut is not started.
            if iterations - used <= last:
                out.stopped = "the iteration budget ended the column generation"
                break
            h.setOptionValue("simplex_iteration_limit", int(min(MAX_ITERATIONS, iterations - used)))
        if out.rounds > 0:
            h.clearSolver()  # cold: a warm start after unfixing columns ran ten times slower
        h.run()
        out.rounds += 1
        status = h.getModelStatus()
        last = int(h.getInfo().simplex_iteration_count)
        used += last
        if status == highspy.HighsModelStatus.kInfeasible and not active.all():
            # The columns given hold no allocation: all of them.
            on = np.flatnonzero(~active)
            active[:] = True
            h.changeColsBounds(on.size, on.astype(np.int32), np.zeros(on.size), upper[on].astype(np.float64))
            continue
        if status == highspy.HighsModelStatus.kIterationLimit:
            out.stopped = "the iteration budget ended the column generation"
            break
        if status == highspy.HighsModelStatus.kTimeLimit:
            out.stopped = "the deadline ended the column generation"
            break
        if status != highspy.HighsModelStatus.kOptimal:
            out.stopped = f"HiGHS stopped: {h.modelStatusToString(status)}"
            break
        sol = h.getSolution()
        row_dual = np.asarray(sol.row_dual, dtype=np.float64) * shrink
        n_eq = a_eq.shape[0]
        # The combs' duals price every column, in the LP or not: their rows are part of A.
        safe = safe_bound(row_dual[:n_eq], row_dual[n_eq:], a_eq, b_eq, a_all, b_all, c, upper, workers)
        if safe is None:
            out.stopped = "the duals could not be scaled"
            break
        scale, b_total, r = safe
        bound = -((-b_total) // scale)
        if out.bound is None or bound > out.bound:
            out.bound = int(bound)
        out.lp_value = float(h.getInfo().objective_function_value) * shrink
        out.columns = int(active[:n_x].sum())
        out.x = np.asarray(sol.col_value, dtype=np.float64)[:n_x].copy()
        out.reduced = r[:n_x].astype(np.float64) / scale
        late = np.flatnonzero(~active[:n_x] & (r[:n_x] < -np.int64(max(1, scale >> 20))))
        cut = None
        if combs is not None and out.rounds >= combs_from and out.rounds < (rounds or MAX_ROUNDS):
            cut = combs.separate(np.asarray(sol.col_value, dtype=np.float64), n)
            if cut is not None:
                out.combs += cut.shape[0]
                a_all = _vstack(a_all, cut)
                b_all += [0] * cut.shape[0]
                f = cut.astype(np.float64)
                h.addRows(f.shape[0], np.full(f.shape[0], -highspy.kHighsInf), np.zeros(f.shape[0]), f.nnz,
                          f.indptr.astype(np.int32), f.indices.astype(np.int32), f.data)
        if late.size == 0:
            out.converged = cut is None
            if cut is None:
                break
            continue
        # Partial pricing: each worker's PER_WORKER most negative pairs only (adding every
        # negative one made the next round twenty times slower).
        pick = np.lexsort((late, r[late], workers[late]))
        late = late[pick]
        rank = np.arange(late.size) - np.searchsorted(workers[late], workers[late], side="left")
        late = np.sort(late[rank < PER_WORKER])
        active[late] = True
        h.changeColsBounds(late.size, late.astype(np.int32), np.zeros(late.size), upper[late].astype(np.float64))
    out.seconds = time.perf_counter() - began
    return out


def _highs(a_eq: csr_matrix, b_eq: list[int], a_ub: csr_matrix, b_ub: list[int], cost: np.ndarray,
           col_upper: np.ndarray):
    """HiGHS with the LP loaded: dual simplex, serial, quiet, capped in iterations."""
    import highspy

    a = _vstack(a_eq, a_ub).astype(np.float64).tocsc()
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = a.shape[1], a.shape[0]
    lp.col_cost_ = cost
    lp.col_lower_ = np.zeros(a.shape[1])
    lp.col_upper_ = col_upper
    lp.row_lower_ = np.concatenate([np.asarray(b_eq, dtype=np.float64), np.full(len(b_ub), -highspy.kHighsInf)])
    lp.row_upper_ = np.concatenate([np.asarray(b_eq, dtype=np.float64), np.asarray(b_ub, dtype=np.float64)])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a.indices.astype(np.int32)
    lp.a_matrix_.value_ = a.data
    h = new_highs()
    h.setOptionValue("solver", "simplex")
    h.setOptionValue("simplex_strategy", 1)  # dual simplex, serial
    # No "threads" option (as lp_bound.HIGHS_OPTIONS): HiGHS refuses to run an object whose
    # count differs from one run before in the process; the serial dual simplex uses one anyway.
    h.setOptionValue("simplex_iteration_limit", MAX_ITERATIONS)
    h.passModel(lp)
    return lp, h


def _vstack(a: csr_matrix, b: csr_matrix) -> csr_matrix:
    from scipy.sparse import vstack

    return vstack([a, b]).tocsr()


def support(lp: StableLP, workers: np.ndarray, lines: np.ndarray, cost: np.ndarray,
            start: np.ndarray | None, cheapest: int = START_CHEAPEST) -> np.ndarray:
    """(P,) bool: the kept pairs of the restricted search: the LP's support, the start's pairs
    and each worker's ``cheapest`` cheapest kept pairs."""
    n_x = workers.size
    chosen = lp.x > 1e-6
    if start is not None:
        chosen |= start[workers] == lines
    order = np.lexsort((lines, cost, workers))
    first = np.searchsorted(workers[order], workers[order], side="left")
    chosen[order[np.arange(n_x) - first < cheapest]] = True
    return chosen


#: An LP value this far past a comb counts as a violation (in the LP's 0-1 units).
COMB_VIOLATION = 1e-4


class _CombSeparator:
    """The combs of :mod:`.cuts` in this LP's columns: per line ``p`` and prefix length ``g``,
    ``sum_{i in I} u_i - sum_{t in S \\ I} x(t, p) <= 0`` with ``u_i`` the column ``u(s_i, w_i)`` of
    the stability constraint ``(s_i, p)``, ``S`` the first ``g`` pairs of ``p``'s order and
    ``x(t, p)`` for ``t`` in ``I`` left out (the proof is :mod:`.cuts`'s, for every stable
    allocation; integer coefficients, so :func:`.lp_bound.safe_bound` prices them exactly).
    Each (line, prefix, set) is added once."""

    def __init__(self, workers: np.ndarray, lines: np.ndarray, problem: ProblemData, st: StabilityStructure,
                 u_col: dict[tuple[int, int], int]) -> None:
        self.st = st
        self.cap = np.asarray(problem.capacity, dtype=np.int64)
        key = workers * problem.n_lines + lines  # row-major, so sorted
        self.per_line: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for p in np.unique(st.p).tolist():
            rows = np.flatnonzero(st.p == p)
            k = st.s[rows].astype(np.int64) * problem.n_lines + p
            pos = np.minimum(np.searchsorted(key, k), max(0, key.size - 1))
            kp = np.where(key[pos] == k, pos, -1)  # the candidate's own pair on p (or none kept)
            u = np.array([u_col[(s, w)] for s, w in zip(st.s[rows].tolist(), st.w[rows].tolist(), strict=True)],
                         dtype=np.int64)
            self.per_line.append((p, rows, st.g[rows], kp, u))
        self.seen: set[tuple[int, int, tuple[int, ...]]] = set()

    def separate(self, z: np.ndarray, n_cols: int) -> csr_matrix | None:
        """The violated combs at the LP point ``z`` (every column) not added before, as integer
        ``<= 0`` rows; ``None`` when there are none. For each line and prefix the ``cap``
        candidates of largest ``x(i, p) + u_i`` (the most violated comb of that prefix)."""
        rows_out = IntegerRows()
        for p, rows, gs, kp, u in self.per_line:
            value = z[u] + np.where(kp >= 0, z[np.maximum(kp, 0)], 0.0)
            for top, plus in violated_combs(p, int(self.cap[p]), self.st.line_order[p], rows, gs, kp, value, z,
                                            self.seen, COMB_VIOLATION):
                rows_out.add("ub", np.concatenate([u[top], plus]),
                             np.concatenate([np.ones(top.size), -np.ones(plus.size)]), 0)
        if not rows_out.b["ub"]:
            return None
        return rows_out.matrix("ub", n_cols)
