"""A rigorous LP lower bound for one level of :func:`.rules.solve_rules`, with exact fixing.

The model. For level ``k`` over the kept pairs ``keep`` (:mod:`.rules`: every allocation of
interest uses kept pairs only), the LP relaxation of ``F_k``: a variable ``0 <= x_p <= 1``
per kept pair (a linked worker's pairs on sites not every worker of the link can reach are
left out: they are 0 in every allocation meeting the link), a variable ``0 <= y_{l,K} <= 1``
per link ``l`` and site ``K`` all of its workers can reach, and the rows

* each worker on one line: ``sum_p x(s, p) = 1`` (a pinned worker has one allowed pair);
* places and fills: ``sum_s x(s, p) <= cap(p)``, ``>= 1`` on lines that must be filled;
* links: ``sum_K y_{l,K} = 1`` and, for each worker ``s`` of ``l`` and site ``K``,
  ``sum_{p on K} x(s, p) - y_{l,K} = 0``;
* quotas: ``min <= sum of the counted pairs on its lines <= max``;
* the solved levels: ``level_j(x) = v_j`` for ``j < k`` (in ``F_k`` every allocation reaches
  them; the coefficients are the levels' integers, so the rows are exact);

minimising ``level_k(x)``. Every allocation of ``F_k`` is an integer point of it, so its
optimum is a lower bound on level ``k`` over ``F_k``. HiGHS (dual simplex through
``highspy``, one thread, fixed options: deterministic) solves it in floating
point; the bound is then made rigorous as below, so nothing rests on HiGHS's tolerances.

Why it is rigorous (Neumaier and Shcherbina, "Safe bounds in linear and mixed-integer
programming", 2004, with exact integer arithmetic in place of interval arithmetic). Write the
rows as ``A x (=, <=, >=) b`` with ``A``, ``b`` and the objective ``c`` integers, and the
bounds ``0 <= z <= 1`` for every column ``z`` (pairs and sites). Take HiGHS's row duals,
multiply by ``S = 2^s`` and round to integers ``Y``; then force the sign each row's sense
needs (``Y_i <= 0`` on a ``<=`` row, ``>= 0`` on a ``>=`` row, free on ``=``). For any ``x``
of the relaxation ``Y^T A x >= Y^T b`` row by row. With the scaled reduced costs
``R = S c - A^T Y`` (integers, computed exactly in int64: ``s`` is chosen so that no
partial sum can reach ``2^62``),

    S level_k(x) = Y^T A x + R^T x >= Y^T b + sum_{R_j < 0} R_j + sum_{R_j > 0} R_j x_j
                                           + sum_{R_j < 0} |R_j| (1 - x_j),

since ``R_j x_j = R_j - |R_j| (1 - x_j)`` when ``R_j < 0``. Every term of the last two sums is
``>= 0`` on ``[0, 1]``, so ``B = Y^T b + sum_{R_j < 0} R_j`` (a Python integer, exact) gives
``level_k(x) >= B / S`` for every ``x`` of the relaxation, whatever ``Y`` is: rounding the duals
only loses a little tightness, never soundness. Level ``k``'s values are integers, so the bound
is ``ceil(B / S)``, computed in integers.

Exact fixing (step 4 with the LP's reduced costs). Let ``U`` be the level of an allocation of
``F_k`` (the start's, or the level's optimum once solved); the allocations of interest have
level ``k <= U``, so ``S U - B >= `` each single term above for them:

* a pair with ``R_p > S U - B`` is in none of them (its term ``R_p x_p`` would exceed it):
  removed from ``keep``;
* a pair with ``R_p < -(S U - B)`` is in all of them (``x_p = 0`` makes its term ``|R_p|``):
  the worker's other pairs are removed;
* a site variable likewise: ``R > S U - B`` removes the link's pairs on that site, ``R < -(S U
  - B)`` its pairs on every other site.

These keep the invariant of ``keep`` (every allocation of interest uses kept pairs only).

Column generation. Since ``B`` is a bound for *any* ``Y``, HiGHS need not see every column: it
solves the LP over a few of them (the caller's: the polish's pairs and the current
allocation's, which hold an allocation of ``F_k``, so that LP is feasible), ``R`` and ``B`` are
computed over *all* kept pairs from its duals, and the columns priced below ``-2^-20`` are
added for another round, until none is (or :data:`MAX_ROUNDS`); each round adds them to the
same HiGHS model and its simplex starts from the last round's basis. On 1,500 x 300 HiGHS then sees
about 5,000 of 120,000 columns, four times faster. HiGHS sees the objective divided by a power
of two (its largest coefficient near ``2^20``; costs of ``10^9`` made its simplex fail) and its
duals are multiplied back: exact, and irrelevant to soundness anyway.

HiGHS's primal solution is returned as a hint (:func:`lp_allocation`): when it is whole it
describes an allocation, which the caller checks in integers before using it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse import vstack as sparse_vstack

from allocator.problem import ProblemData

#: HiGHS's options: the serial dual simplex (strategy 1), presolve on, its default tolerances,
#: silent: deterministic. No "threads" option: HiGHS refuses to run when another solver object in
#: the process set a different count, and the serial dual simplex uses one thread anyway.
HIGHS_OPTIONS: dict = {"output_flag": False, "solver": "simplex", "simplex_strategy": 1, "presolve": "on"}
#: The scaled integers stay below this (int64 holds 2^63 - 1; a margin of 2 for the sums).
_INT_LIMIT = 2.0**61
#: Most rounds of column generation (each adds the pairs the last duals price below 0).
MAX_ROUNDS = 30
#: Most bits of the duals kept (more gives nothing: HiGHS's duals are accurate to ~1e-9).
_MAX_BITS = 40


@dataclass
class LPBound:
    """A rigorous LP bound of one level (see the module docstring) and its reduced costs.

    ``bound`` is ``ceil(B / S)``, a lower bound on the level over ``F_k``. ``reduced`` holds the
    scaled reduced cost ``R_p`` of every pair (0 for pairs not in the LP: not kept or left out),
    ``sites`` the link site variables as ``(link number, site, R)``.
    """

    bound: int
    scaled: int  # B, a Python int
    scale: int  # S = 2^s
    reduced: np.ndarray  # (P,) int64
    in_lp: np.ndarray  # (P,) bool: the pairs that are columns of the LP
    sites: list[tuple[int, int, int]]  # (link number in problem.links, site, R)
    pair_site: np.ndarray  # (P,) the site of each pair's line
    links: list[np.ndarray]  # each link's workers
    lp_value: float  # HiGHS's own optimum (floating point; for the log only)
    seconds: float
    columns: int  # the LP's columns (pairs and sites)
    solved_columns: int  # those HiGHS saw in the last round (column generation)
    rounds: int
    x: np.ndarray  # (P,) HiGHS's primal values of the pairs (floating point: a hint only)

    def removable(self, keep: np.ndarray, upper: int, workers: np.ndarray) -> np.ndarray:
        """(P,) bool: kept pairs in no allocation of ``F_k`` with level at most ``upper``.

        ``workers`` are the pairs' workers (row-major, as :mod:`.rules` numbers them).
        """
        room = upper * self.scale - self.scaled  # Python int: S U - B
        out = np.zeros(keep.size, dtype=bool)
        if room < 0 or room >= 2**62:
            return out  # room < 0: no allocation reaches upper (the caller's bound says so)
        r = np.int64(room)
        out |= self.in_lp & (self.reduced > r)
        forced = self.in_lp & (self.reduced < -r)
        if forced.any():
            # The worker of a forced pair is on it in every allocation of interest.
            line_of = np.full(int(workers.max(initial=-1)) + 1, -1, dtype=np.int64)
            fk = np.flatnonzero(forced)
            line_of[workers[fk]] = fk
            has = line_of[workers] >= 0
            out |= has & (line_of[workers] != np.arange(keep.size))
        fixed_sites = [(li, k, rs) for li, k, rs in self.sites if rs > r or rs < -r]
        if fixed_sites:
            # Row-major pairs: each worker's pairs are one slice, so a link's site fixing
            # touches only its members' pairs (not every pair once per link and site).
            starts = np.searchsorted(workers, np.arange(int(workers.max(initial=-1)) + 2))
            for li, k, rs in fixed_sites:
                for s in self.links[li].tolist():
                    rows = slice(int(starts[s]), int(starts[s + 1]))
                    on_site = self.pair_site[rows] == k
                    out[rows] |= on_site if rs > r else ~on_site
        return out & keep


def lp_bound(problem: ProblemData, workers: np.ndarray, lines: np.ndarray, keep: np.ndarray,
             solved: list[tuple[np.ndarray, int]], objective: np.ndarray,
             time_limit: float | None = None, columns: np.ndarray | None = None) -> LPBound | None:
    """The rigorous LP bound of a level over the kept pairs (``None``: no bound).

    Parameters
    ----------
    problem
        The run.
    workers, lines
        (P,) the pairs, row-major (each worker's pairs together).
    keep
        (P,) bool: the kept pairs.
    solved
        The solved levels before this one: ``(integer coefficients per pair, optimum)``.
    objective
        (P,) int64: this level's integer coefficients.
    time_limit
        Seconds for HiGHS (the clock as a hard limit; ``None``: none).
    columns
        (P,) bool: the pairs HiGHS starts from (column generation; ``None``: all kept pairs).
        They should hold an allocation of ``F_k`` (else all pairs are taken). The bound does
        not depend on them being right: any duals give a rigorous bound over all kept pairs.

    Returns
    -------
    LPBound or None
        ``None`` when the LP is infeasible within the kept pairs (then so is ``F_k``: the
        caller's CP-SAT says so), or HiGHS stops without an optimal basis.
    """
    started = time.perf_counter()
    m, n = problem.n_workers, problem.n_lines
    site = problem.site[lines]
    col_of = keep.copy()
    starts = np.searchsorted(workers, np.arange(m + 1))
    link_sites: list[list[int]] = []
    for link in problem.links:
        common: set[int] | None = None
        for s in link.workers.tolist():
            r = slice(int(starts[s]), int(starts[s + 1]))
            reach = set(site[r][col_of[r]].tolist())
            common = reach if common is None else common & reach
        ks = sorted(common or ())
        if not ks:
            return None  # no site every worker of the link can reach: F_k is empty
        for s in link.workers.tolist():
            r = slice(int(starts[s]), int(starts[s + 1]))
            col_of[r] &= np.isin(site[r], ks)
        link_sites.append(ks)
    cols = np.flatnonzero(col_of)
    nx = cols.size
    ny = sum(len(ks) for ks in link_sites)
    total = nx + ny
    cw, cl = workers[cols], lines[cols]
    if np.setdiff1d(np.arange(m), cw).size:
        return None  # a worker without a kept pair
    xcol = np.arange(nx)

    rows = IntegerRows()
    ones = np.ones(nx, dtype=np.int64)
    rows.add_rows("eq", cw.astype(np.int64), xcol, ones, [1] * m)  # each worker on one line
    per_line = np.bincount(cl, minlength=n)
    cap = np.asarray(problem.capacity, dtype=np.int64)
    binding = per_line > cap
    row_of = np.cumsum(binding) - 1
    sel = binding[cl]
    rows.add_rows("ub", row_of[cl[sel]], xcol[sel], ones[sel], cap[binding].tolist())  # places
    mand = np.asarray(problem.mandatory, dtype=bool)
    row_of = np.cumsum(mand) - 1
    sel = mand[cl]
    rows.add_rows("ub", row_of[cl[sel]], xcol[sel], -ones[sel], [-1] * int(mand.sum()))  # fills
    y0 = nx
    sites_out: list[tuple[np.ndarray, int, int]] = []  # (link index, site, column)
    for li, (link, ks) in enumerate(zip(problem.links, link_sites, strict=True)):
        ycols = np.arange(y0, y0 + len(ks))
        rows.add("eq", ycols, np.ones(len(ks)), 1)  # the link on one site
        for s in link.workers.tolist():
            mine = cw == s
            site_idx = np.searchsorted(ks, site[cols[mine]])
            link_rows = np.concatenate([site_idx, np.arange(len(ks))])
            link_cols = np.concatenate([xcol[mine], ycols])
            values = np.concatenate([np.ones(int(mine.sum()), dtype=np.int64), -np.ones(len(ks), dtype=np.int64)])
            rows.add_rows("eq", link_rows, link_cols, values, [0] * len(ks))
        sites_out.extend((li, k, int(c)) for k, c in zip(ks, ycols.tolist(), strict=True))
        y0 += len(ks)
    for q in problem.quotas:
        mine = np.flatnonzero(q.covers(cl, cw))
        if q.min_workers > 0:
            rows.add("ub", mine, -np.ones(mine.size), -int(q.min_workers))
        if q.max_workers is not None and q.max_workers < mine.size:
            rows.add("ub", mine, np.ones(mine.size), int(q.max_workers))
    for coefficients, value in solved:
        co = np.asarray(coefficients, dtype=np.int64)[cols]
        nz = np.flatnonzero(co)
        rows.add("eq", nz, co[nz], int(value))

    a_eq, a_ub = rows.matrix("eq", total), rows.matrix("ub", total)
    eq_b, ub_b = rows.b["eq"], rows.b["ub"]
    n_eq, n_ub = len(eq_b), len(ub_b)
    c = np.zeros(total, dtype=np.int64)
    c[:nx] = np.asarray(objective, dtype=np.int64)[cols]
    deadline = None if time_limit is None else started + max(0.0, float(time_limit))
    if columns is None:
        active = np.ones(total, dtype=bool)
    else:
        active = np.ones(total, dtype=bool)
        active[:nx] = np.asarray(columns, dtype=bool)[cols]
    # One HiGHS model, rows "=" then "<=": column generation adds columns to it, and each
    # round's simplex starts from the last round's basis (warm), not from scratch.
    rows_csc = (sparse_vstack([a_eq, a_ub]) if n_ub else a_eq).astype(np.float64).tocsc()
    row_lower = np.concatenate([np.asarray(eq_b, dtype=np.float64), np.full(n_ub, -np.inf)])
    row_upper = np.concatenate([np.asarray(eq_b, dtype=np.float64), np.asarray(ub_b, dtype=np.float64)])
    shrink = highs_shrink(c)
    c_highs = c.astype(np.float64) / shrink
    lp_model = _HighsModel(row_lower, row_upper)
    in_model = np.zeros(total, dtype=bool)
    rounds = 0
    while True:
        rounds += 1
        new = np.flatnonzero(active & ~in_model)
        lp_model.add_columns(new, c_highs[new], rows_csc[:, new])
        in_model[new] = True
        res = _solution(lp_model.run(None if deadline is None else deadline - time.perf_counter()), n_eq)
        if res.status == "infeasible" and not active.all():
            active[:] = True  # the columns given hold no allocation: all of them
            continue
        if res.status != "optimal":
            return None
        # HiGHS's objective was c / shrink: its duals times shrink are those of c.
        safe = safe_bound(np.asarray(res.y_eq, dtype=np.float64) * shrink,
                          np.asarray(res.y_ub, dtype=np.float64) * shrink, a_eq, eq_b, a_ub, ub_b, c,
                          np.ones(total, dtype=np.int64))
        if safe is None:
            return None
        scale, b_total, r = safe
        # Column generation: a column left out with a negative reduced cost may lower the
        # LP's optimum; add them and solve again. The bound is rigorous for any duals, so the
        # rounds only make it tighter (and stop after MAX_ROUNDS).
        late = ~active & (r < -np.int64(max(1, scale >> 20)))
        if not late.any() or rounds >= MAX_ROUNDS:
            break
        active |= late
        if 2 * int(active.sum()) > total:
            active[:] = True  # most columns priced in: one LP over all of them is cheaper
    bound = -((-b_total) // scale)  # ceil(B / S) in integers
    reduced = np.zeros(keep.size, dtype=np.int64)
    reduced[cols] = r[:nx]
    in_lp = np.zeros(keep.size, dtype=bool)
    in_lp[cols] = True
    sites = [(li, k, int(r[column])) for li, k, column in sites_out]
    x = np.zeros(keep.size)
    primal = np.zeros(total)
    primal[lp_model.columns] = res.x
    x[cols] = primal[:nx]
    return LPBound(int(bound), int(b_total), scale, reduced, in_lp, sites, site,
                   [link.workers for link in problem.links], res.fun,
                   time.perf_counter() - started, total, int(active.sum()), rounds, x)


def lp_allocation(lp: LPBound, workers: np.ndarray, lines: np.ndarray, m: int) -> np.ndarray | None:
    """The allocation HiGHS's solution describes when it is whole (every worker's pairs within
    1e-6 of 0 or 1, one of them 1), else ``None``. Floating point: the caller checks it."""
    whole = (np.abs(lp.x) < 1e-6) | (np.abs(lp.x - 1.0) < 1e-6)
    if not whole.all():
        return None
    on = lp.x > 0.5
    if np.bincount(workers[on], minlength=m).max(initial=0) != 1 or on.sum() != m:
        return None
    out = np.full(m, -1, dtype=np.int64)
    out[workers[on]] = lines[on]
    return out


class IntegerRows:
    """Integer rows as (row, column, value) triplets, ``=`` rows ("eq") and ``<=`` rows ("ub")
    kept apart, added a block or a row at a time; :meth:`matrix` builds each kind's matrix."""

    def __init__(self) -> None:
        self.r: dict[str, list[np.ndarray]] = {"eq": [], "ub": []}
        self.c: dict[str, list[np.ndarray]] = {"eq": [], "ub": []}
        self.v: dict[str, list[np.ndarray]] = {"eq": [], "ub": []}
        self.b: dict[str, list[int]] = {"eq": [], "ub": []}

    def add_rows(self, kind: str, rows, cols, vals, rhs: list[int]) -> None:
        """A block of ``len(rhs)`` rows; ``rows`` numbers each entry's row within the block."""
        self.r[kind].append(np.asarray(rows, dtype=np.int64) + len(self.b[kind]))
        self.c[kind].append(np.asarray(cols, dtype=np.int64))
        self.v[kind].append(np.asarray(vals, dtype=np.int64))
        self.b[kind].extend(int(x) for x in rhs)

    def add(self, kind: str, cols, vals, rhs: int) -> None:
        """One row."""
        cols = np.asarray(cols, dtype=np.int64)
        self.add_rows(kind, np.zeros(cols.size, dtype=np.int64), cols, vals, [rhs])

    def matrix(self, kind: str, n_cols: int) -> csr_matrix:
        if not self.b[kind]:
            return csr_matrix((0, n_cols), dtype=np.int64)
        return coo_matrix(
            (np.concatenate(self.v[kind]), (np.concatenate(self.r[kind]), np.concatenate(self.c[kind]))),
            shape=(len(self.b[kind]), n_cols),
        ).tocsr()


def highs_shrink(c: np.ndarray) -> float:
    """The power of two HiGHS's objective is divided by (exact): its largest coefficient near
    2^20. Costs of 10^9 and more (one level on the fine grid) made its simplex fail; the duals
    are scaled back by the same power, and any duals give a rigorous bound anyway."""
    return 2.0 ** max(0, int(np.ceil(np.log2(max(1.0, float(np.abs(c).max(initial=0)))))) - 20)


def new_highs():
    """A silent HiGHS solver object (highspy). The bare class: highspy.Highs() also switches its
    callbacks on, which prints HiGHS's banner on standard output before any option can silence
    it (a command line writing its JSON there must not get it)."""
    import highspy

    try:
        from highspy._core import _Highs as Highs
    except ImportError:  # a highspy without it: the public class (a banner, then silent)
        Highs = highspy.Highs
    h = Highs()
    h.setOptionValue("output_flag", False)
    return h


class _HighsModel:
    """One HiGHS LP (highspy, dual simplex, one thread, fixed options: deterministic) whose
    columns come in batches; each :meth:`run` starts from the previous basis."""

    def __init__(self, row_lower: np.ndarray, row_upper: np.ndarray) -> None:
        import highspy  # a tenth of a second to import: only when a level needs the LP

        self.h = new_highs()
        for name, value in HIGHS_OPTIONS.items():
            self.h.setOptionValue(name, value)
        self.h.addRows(row_lower.size, row_lower, row_upper, 0, np.zeros(0, dtype=np.int32),
                       np.zeros(0, dtype=np.int32), np.zeros(0))
        self.columns = np.zeros(0, dtype=np.int64)  # the model's columns, as the caller numbers them
        self._status = highspy.HighsModelStatus

    def add_columns(self, numbers: np.ndarray, cost: np.ndarray, block) -> None:
        """Add columns (``numbers``, the caller's; ``block``, their CSC rows), each in [0, 1]."""
        if numbers.size == 0:
            return
        block = block.tocsc()
        self.h.addCols(int(numbers.size), cost, np.zeros(numbers.size), np.ones(numbers.size), int(block.nnz),
                       block.indptr[:-1].astype(np.int32), block.indices.astype(np.int32), block.data)
        self.columns = np.concatenate([self.columns, numbers])

    def run(self, seconds: float | None):
        """Solve; ``(status, x, fun, row duals)`` with status "optimal", "infeasible" or "other"."""
        # HiGHS's time limit is on the object's total run time over every run() (not this call):
        # each round's limit is what has run so far plus the seconds it may have.
        limit = float("inf") if seconds is None else self.h.getRunTime() + max(0.0, float(seconds))
        self.h.setOptionValue("time_limit", limit)
        self.h.run()
        status = self.h.getModelStatus()
        if status == self._status.kOptimal:
            sol = self.h.getSolution()
            return ("optimal", np.asarray(sol.col_value, dtype=np.float64),
                    float(self.h.getInfo().objective_function_value), np.asarray(sol.row_dual, dtype=np.float64))
        if status in (self._status.kInfeasible, self._status.kUnboundedOrInfeasible):
            return "infeasible", None, None, None
        return "other", None, None, None


@dataclass
class _LPResult:
    """What the bound needs of HiGHS's answer: the row duals split into "=" and "<=" rows."""

    status: str
    x: np.ndarray | None
    fun: float | None
    y_eq: np.ndarray
    y_ub: np.ndarray


def _solution(run: tuple, n_eq: int) -> _LPResult:
    status, x, fun, duals = run
    if duals is None:
        return _LPResult(status, x, fun, np.zeros(0), np.zeros(0))
    return _LPResult(status, x, fun, duals[:n_eq], duals[n_eq:])


def safe_bound(y_eq: np.ndarray, y_ub: np.ndarray, a_eq: csr_matrix, b_eq: list[int], a_ub: csr_matrix,
               b_ub: list[int], c: np.ndarray, upper: np.ndarray,
               workers: np.ndarray | None = None) -> tuple[int, int, np.ndarray] | None:
    """``(S, B, R)`` from row duals (any values), in exact integers: ``c z >= B / S`` for every
    ``z`` with ``A_eq z = b_eq``, ``A_ub z <= b_ub`` and ``0 <= z <= upper`` (the module
    docstring's argument, where a column with ``R_j < 0`` contributes at least ``R_j upper_j``).
    ``None`` when the duals are not finite or too large to scale. Also the stable LP's bound
    (:mod:`.stable_lp`: columns up to a line's places, and ``workers`` for Farley's bound)."""
    y_ub = np.minimum(y_ub, 0.0)
    if not (np.isfinite(y_eq).all() and np.isfinite(y_ub).all()):
        return None
    reach = (np.abs(c).astype(np.float64) + abs(a_eq).T.astype(np.float64) @ (np.abs(y_eq) + 1.0)
             + abs(a_ub).T.astype(np.float64) @ (np.abs(y_ub) + 1.0)) * np.maximum(upper, 1)
    top = float(reach.max(initial=1.0))
    bits = min(_MAX_BITS, int(np.floor(np.log2(_INT_LIMIT / top))) - 1)
    if bits < 0:
        return None
    scale = 1 << bits
    ye = np.rint(y_eq * scale).astype(np.int64)
    yu = np.minimum(np.rint(y_ub * scale), 0.0).astype(np.int64)
    r = np.asarray(c * np.int64(scale) - a_eq.T @ ye - a_ub.T @ yu, dtype=np.int64)
    b_total = sum(int(b) * int(y) for b, y in zip(b_eq, ye.tolist(), strict=True) if y)
    b_total += sum(int(b) * int(y) for b, y in zip(b_ub, yu.tolist(), strict=True) if y)
    neg = r < 0
    if workers is not None:
        # Each worker's pairs (the first columns) sum to 1 in every point of the relaxation, so
        # their terms sum to at least the worker's least reduced cost (Farley's bound); this is
        # what makes an early round of column generation give a bound at all.
        n_x = workers.size
        least = np.full(int(workers.max(initial=-1)) + 1, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(least, workers, r[:n_x])
        b_total += sum(least.tolist())
        neg[:n_x] = False
    b_total += sum((r[neg] * upper[neg]).tolist())
    return scale, b_total, r


