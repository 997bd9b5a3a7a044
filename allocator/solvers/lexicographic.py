"""Priority tiers and fewest moves on the min-cost flow path: a lexicographic objective, exactly.

business-rules.md orders the objective in levels: the number of moves from the previous
allocation (when fewest moves is on), then the cost of the tier-1 workers, tier 2, ..., the
workers without a priority last; the seed picks among allocations that tie on every level.
Without links and quotas every level is a linear cost over the same transportation polytope
(:mod:`.flow`), so the levels are solved one after another, each on the **optimal face** of
the ones before, each with one min-cost flow.

**Why restricting to the optimal face is exact.** Let ``x`` be an optimal flow for the level's
integer costs ``w`` and ``pi`` node potentials with every residual arc of non-negative reduced
cost ``rc(u, v) = w(u, v) + pi(u) - pi(v)`` (they exist because ``x`` is optimal: no negative
residual cycle). ``pi`` is an optimal solution of the dual LP, and by complementary slackness a
feasible flow ``y`` is optimal *if and only if* ``y = 0`` on every arc with ``rc > 0`` and
``y = capacity`` on every arc with ``rc < 0`` (for any one optimal dual, this describes the whole
optimal face). So the next level is the same kind of flow problem with

- the pairs of ``rc > 0`` removed (a pair's arc can only be at 0 or 1; the chosen pair has
  ``rc = 0``), and
- a line whose arc to the sink has ``rc > 0`` held at its lower bound of workers, one with
  ``rc < 0`` held at its upper bound (the line's bounds ``[lo, hi]`` become a single value).

Every allocation of the restricted problem is optimal for all levels so far and every such
allocation is in it; it is never empty (``x`` is in it) and integral (it is a flow polytope).
After the last level, whose costs carry the seeded tie-break (``base * tie_factor + tie``,
:mod:`.scaling`), the flow is the allocation the seed prefers among those that tie on every
level (the face kept after it, for the last level's ``base`` alone, is :class:`Face`: the
result's seed-dependent workers come from it). Two exact reductions keep each flow small:
workers left with a single pair are placed and taken out (their line's bounds shrink by
one), and the workers whose pairs all cost 0 on the level (the other tiers') with the same
set of pairs become one source whose supply is their number (any split of its flow is an
allocation of the same cost). On a 1,500 x 300 run with three tiers each flow then has about
600 sources instead of 1,500.

One flow for several levels with exact lexicographic integer weights (``K_i = 1 + sum_{l>i}
K_l * max sum u_l``) fits the int64 budget for two tiers with decimal costs, and was tried:
it was not faster (the cost-scaling flow runs one phase per factor of its largest cost, so a
combined flow costs about as much as the separate ones, and the later levels run on faces
much smaller than the whole run), so every level gets its own flow.

The potentials come from the same compressed residual graph the explanations use
(:func:`line_graph`, :func:`potentials`; :class:`allocator.explain.Certificate` builds its
certificate with them): nodes are the job lines and the sink, the arc ``q -> q'`` costs the
cheapest move of a worker now on ``q`` to ``q'``, a worker's own potential is its line's minus
the cost of its pair. Bellman-Ford on that ``(N + 1)``-node graph, in float64 holding exact
integers (each level's integers are kept below ``2^52 / (2N + 4)`` so that every distance and
reduced cost is exact), so "reduced cost 0" is an exact test.

**Integer costs of a level.** Moves are 0/1, exact. A tier's costs (its workers' pairs; the
other workers' pairs cost 0 on that level) are made integers in one of two ways:

1. **Exact grid.** Planners' data are decimal: whole ranks, ``alpha = 0.3``, weightings like
   ``-1.5``, means over a few preferencers. The differences ``cost(s, p) - min_p cost(s, p)``
   are then whole multiples of some ``1 / D`` (``D`` like 20 or 600), up to float64 noise. When
   such a ``D`` is found (every value within ``eta`` of the grid, ``eta`` far above the noise
   and far below a unit) the integers are ``round(rel * D)``: equal sums stay equal, so a
   true tie on one level is a tie for the next level too, and each level is exactly optimal.
2. **Scaled and rounded** otherwise (irrational powers, say): :func:`.scaling.integer_costs` on
   the tier's costs alone, so the rounding error is at most ``1e-7`` of *that tier's* objective
   (the spec's tolerance per level). The allocation is then exactly lexicographically optimal
   for costs within half a unit of rounding of the true ones; two allocations whose true
   level costs tie to the last digit but round differently are told apart by the rounding.

Both keep every level optimal to the relative tolerance 1e-7 that business-rules.md asks.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from allocator.problem import ProblemData
from allocator.solvers.base import SolveOptions, SolveOutcome, Status
from allocator.solvers.flow import HEADROOMS, CostRangeError, transport
from allocator.solvers.scaling import (
    MIN_TIE_RANGE,
    REQUIRED_REL_PRECISION,
    IntegerCosts,
    allowed_pairs,
    flow_budget,
    integer_costs,
    tie_break,
)

BACKEND = "flow-lexicographic"

#: Largest power-of-two tie-break range, as the plain flow's.
MAX_TIE_RANGE = 1 << 16
#: The grid's largest denominator (larger grids would not fit the integer budget anyway).
MAX_GRID = 10**9


# ---------------------------------------------------------------------------------------------
# The compressed residual graph and its potentials (shared with allocator.explain)
# ---------------------------------------------------------------------------------------------


def line_graph(
    assignment: np.ndarray,
    workers: np.ndarray,
    lines: np.ndarray,
    rel: np.ndarray,
    n: int,
    lo: np.ndarray,
    hi: np.ndarray,
) -> np.ndarray:
    """Arc costs of the residual graph on the job lines and the sink (node ``n``).

    Parameters
    ----------
    assignment
        (M,) line of each worker.
    workers, lines, rel
        The pairs a worker may move to and the cost of the move, ``w(t, q) - w(t, M(t))``
        (the worker's own pair left out).
    n
        Number of job lines.
    lo, hi
        Each line's bounds on its number of workers: a line below ``hi`` can take one more
        (arc to the sink), a line above ``lo`` can give one up (arc from the sink), both at 0.

    Returns
    -------
    (n + 1, n + 1) float64, ``inf`` where there is no arc, the diagonal ``inf``.
    """
    edges = np.full((n + 1, n + 1), np.inf)
    if workers.size:
        tails = np.asarray(assignment)[workers]
        # Moves that cost 0 are most of them on a tier's level (the other tiers' workers): a
        # plain assignment sets those (repeated cells get the same 0); the rest need the
        # unbuffered minimum.
        zero = rel == 0
        np.minimum.at(edges, (tails[~zero], lines[~zero]), rel[~zero])
        zeros = np.full((n + 1, n + 1), np.inf)
        zeros[tails[zero], lines[zero]] = 0.0
        np.minimum(edges, zeros, out=edges)
    fill = np.bincount(assignment, minlength=n)
    edges[np.flatnonzero(fill < hi), n] = 0.0
    edges[n, np.flatnonzero(fill > lo)] = 0.0
    np.fill_diagonal(edges, np.inf)
    return edges


def potentials(edges: np.ndarray) -> np.ndarray | None:
    """Bellman-Ford from a virtual root joined to every node at cost 0; None on a negative cycle.

    Each round is one vectorised pass over the ``(N + 1)^2`` arcs; the number of rounds is the
    most arcs on a shortest path, small in practice. With these ``d``, every arc has
    ``edges[u, v] + d[u] - d[v] >= 0``.
    """
    k = edges.shape[0]
    d = np.zeros(k)
    for _ in range(k + 1):
        relaxed = np.min(d[:, None] + edges, axis=0)
        new = np.minimum(d, relaxed)
        if np.array_equal(new, d):
            return d
        d = new
    return None


def exact_float_limit(n_lines: int) -> int:
    """Largest integer cost whose distances and reduced costs stay exact in float64."""
    return (1 << 52) // (2 * n_lines + 4)


# ---------------------------------------------------------------------------------------------
# Levels and their integer costs
# ---------------------------------------------------------------------------------------------


def level_names(problem: ProblemData) -> list[str]:
    """Names of the levels of :meth:`ProblemData.objective_levels`, best first."""
    names = ["moves"] if problem.fewest_moves else []
    for prio in problem.tier_priorities:
        if prio is not None:
            names.append(f"priority {prio}")
        else:
            names.append("cost" if problem.n_tiers == 1 else "no priority")
    return names


def _grid_candidates() -> np.ndarray:
    out = {
        (2**a) * (3**b) * (5**c) * (7**d)
        for a in range(31)
        for b in range(3)
        for c in range(14)
        for d in range(2)
    }
    return np.array(sorted(x for x in out if x <= MAX_GRID), dtype=np.float64)


_GRID = _grid_candidates()


def exact_grid(rel: np.ndarray, cmax: float, limit: float) -> tuple[int, float] | None:
    """The smallest ``D`` (of the form ``2^a 3^b 5^c 7^d``) with ``rel * D`` whole, or None.

    ``rel`` are non-negative cost differences, ``cmax`` the largest absolute cost they were
    computed from (their float64 noise is a few ulps of it), ``limit`` the largest ``D`` worth
    trying. Returns ``(D, eta)``: every ``rel * D`` is within ``eta`` of a whole number.
    """
    vals = np.unique(rel[rel > 0])
    if vals.size == 0:
        return 1, 0.0
    span = float(vals[-1])
    sample = vals[:: max(1, vals.size // 64)][:64]
    sample = np.append(sample, span)
    eps = np.finfo(np.float64).eps
    for d in _GRID:
        if d > limit:
            break
        eta = max(1e-9, 64.0 * eps * max(cmax, span) * d)
        if eta > 1e-4:
            break
        x = sample * d
        if np.abs(x - np.rint(x)).max() > eta:
            continue
        x = vals * d
        if np.abs(x - np.rint(x)).max() <= eta:
            return int(d), float(eta)
    return None


def _widest_tie_range(span_units: int, m: int, budget: int) -> int:
    r = MAX_TIE_RANGE
    while r > 1 and span_units * (m * (r - 1) + 1) + r > budget:
        r //= 2
    return r


def tier_costs(
    problem: ProblemData,
    tier: int,
    workers: np.ndarray,
    lines: np.ndarray,
    *,
    budget: int,
    with_tie: bool,
) -> IntegerCosts:
    """Integer costs of one tier's level over the given pairs (other workers' pairs cost 0).

    The exact grid when one fits the budget, else :func:`.scaling.integer_costs` on the
    tier's costs alone (see the module docstring). ``with_tie`` adds the seeded tie-break
    over every pair (the last level).
    """
    m = problem.n_workers
    mine = problem.tier == tier
    c = np.where(mine[workers], problem.cost[workers, lines], 0.0)
    shift = np.zeros(m)
    if c.size:
        # Pairs are row-major (by worker): each worker's cheapest pair by one reduceat.
        starts = np.flatnonzero(np.r_[True, workers[1:] != workers[:-1]])
        shift[workers[starts]] = np.minimum.reduceat(c, starts)
    rel = np.maximum(c - shift[workers], 0.0)
    tier_cost = problem.cost[mine]
    lower = float(shift[mine].sum())
    magnitude = float(np.abs(tier_cost).max(axis=1, initial=0.0).sum()) if tier_cost.size else 0.0
    reference = max(lower, 1e-6 * magnitude, 1e-12)
    cmax = float(np.abs(tier_cost).max(initial=0.0))
    span = float(rel.max(initial=0.0))
    m_tier = max(1, int(mine.sum()))

    grid = exact_grid(rel, cmax, budget / max(span, 1e-300)) if span > 0 else (1, 0.0)
    if grid is not None:
        d, eta = grid
        # Values off the grid by up to eta units would be rounded onto it: only accept the grid
        # when even that error stays far inside the tolerance of this level.
        if m_tier * eta / d <= 0.1 * REQUIRED_REL_PRECISION * reference:
            base = np.rint(rel * d).astype(np.int64)
            span_units = int(base.max(initial=0))
            if with_tie:
                r = _widest_tie_range(span_units, m, budget)
                ok = r >= min(MIN_TIE_RANGE, MAX_TIE_RANGE)
            else:
                r, ok = 1, span_units <= budget
            if ok:
                return IntegerCosts(
                    workers=workers,
                    lines=lines,
                    base=base,
                    tie=tie_break(problem, problem.settings.rng_seed, r, workers, lines),
                    shift=shift,
                    scale=float(d),
                    tie_range=r,
                    tie_factor=m * (r - 1) + 1,
                    reference=reference,
                    error_bound=m_tier * eta / d,
                    precision_ok=True,
                )
    masked = np.where(mine[:, None], problem.cost, 0.0)
    return integer_costs(
        dataclasses.replace(problem, cost=masked),
        budget=budget,
        max_tie_range=MAX_TIE_RANGE if with_tie else 1,
        pairs=(workers, lines),
    )


def moves_costs(problem: ProblemData, workers: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """(P,) int64: 1 for a pair that moves a worker of the previous allocation, else 0."""
    prev = problem.previous[workers]
    return ((prev >= 0) & (prev != lines)).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# The solve
# ---------------------------------------------------------------------------------------------


@dataclass
class Face:
    """The allocations that are optimal on every level (the last level without its tie-break).

    ``workers``/``lines`` are the pairs left after the last level's restriction, ``lo``/``hi``
    each line's bounds: every allocation over these pairs within these bounds ties with
    :attr:`assignment` on every level, and every allocation that does is one of them.
    """

    assignment: np.ndarray
    workers: np.ndarray
    lines: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def contains(self, assignment: np.ndarray) -> bool:
        """Whether ``assignment`` ties with :attr:`assignment` on every level (is optimal)."""
        a = np.asarray(assignment, dtype=np.int64)
        if a.shape != self.assignment.shape:
            return False
        m, n = a.size, self.lo.size
        own = np.zeros(m, dtype=bool)
        own[self.workers[self.lines == a[self.workers]]] = True
        fill = np.bincount(a, minlength=n)
        return bool(own.all() and (fill >= self.lo).all() and (fill <= self.hi).all())

    def seed_dependent(self) -> np.ndarray:
        """(M,) bool: some allocation tying on every level puts the worker on another line.

        Such an allocation differs from :attr:`assignment` by cycles of the face's residual
        graph (all of cost 0 by construction): worker ``t`` moves to a pair ``(t, q)`` of the
        face and the lines pass one worker each from ``q`` back to ``M(t)``.
        """
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import shortest_path

        a = self.assignment
        m, n = a.size, self.lo.size
        away = self.lines != a[self.workers]
        ws, ls = self.workers[away], self.lines[away]
        out = np.zeros(m, dtype=bool)
        if ws.size == 0:
            return out
        edges = line_graph(a, ws, ls, np.zeros(ws.size), n, self.lo, self.hi)
        src, dst = np.nonzero(np.isfinite(edges))
        graph = csr_matrix((np.ones(src.size), (src, dst)), shape=(n + 1, n + 1))
        sources = np.unique(ls)
        reach = np.isfinite(shortest_path(graph, directed=True, unweighted=True, indices=sources))
        row_of = np.full(n + 1, -1)
        row_of[sources] = np.arange(sources.size)
        hit = reach[row_of[ls], a[ws]]
        out[ws[hit]] = True
        return out


@dataclass
class LexicographicResult:
    status: Status  # OPTIMAL or INFEASIBLE
    assignment: np.ndarray | None
    face: Face | None
    log: list[str] = field(default_factory=list)


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a boolean matrix (sorted) and each row's index among them."""
    if rows.shape[0] == 0:
        return rows, np.zeros(0, dtype=np.int64)
    packed = np.ascontiguousarray(np.packbits(rows, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).reshape(-1)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return rows[first], np.asarray(inverse, dtype=np.int64).reshape(-1)


def _flow(m, n, ws, ls, unit, lo, hi):
    """One level's flow over the pairs ``ws, ls`` (row-major), made smaller in two exact ways.

    A worker with a single pair left is placed and taken out (their line's bounds shrink by
    one). Workers whose pairs all cost 0 on this level (the other tiers') and who have the same
    set of pairs are one source with their number as supply: any split of that source's flow
    over its lines is an allocation of the same cost, so the flow's optimum is the optimum; the
    split is handed out to the workers in index order.
    """
    a = np.full(m, -1, dtype=np.int64)
    if ws.size == 0:
        return (Status.OPTIMAL, a) if m == 0 else (Status.INFEASIBLE, None)
    starts = np.flatnonzero(np.r_[True, ws[1:] != ws[:-1]])
    owners = ws[starts]
    count = np.diff(np.r_[starts, ws.size])
    if owners.size != m:
        return Status.INFEASIBLE, None  # a worker without pairs
    fixed = np.repeat(count == 1, count)
    fixed_fill = np.bincount(ls[fixed], minlength=n)
    lo_k = np.maximum(lo - fixed_fill, 0)
    hi_k = hi - fixed_fill
    a[ws[fixed]] = ls[fixed]
    if (hi_k < 0).any() or (lo_k > hi_k).any():
        return Status.INFEASIBLE, None
    zero = (np.maximum.reduceat(unit, starts) == 0) & (count > 1)
    singles = np.flatnonzero((count > 1) & ~zero)
    pooled = np.flatnonzero(zero)
    # Sources: the workers with costs (one each), then one per distinct pair set of the others.
    rows = np.zeros((pooled.size, n), dtype=bool)
    in_pool = np.zeros(m, dtype=bool)
    in_pool[pooled] = True
    pool_pairs = in_pool[ws]
    pool_row = np.full(m, -1, dtype=np.int64)
    pool_row[pooled] = np.arange(pooled.size)
    rows[pool_row[ws[pool_pairs]], ls[pool_pairs]] = True
    classes, class_of = _distinct_rows(rows)
    n_src = singles.size + classes.shape[0]
    src_of = np.full(m, -1, dtype=np.int64)
    src_of[singles] = np.arange(singles.size)
    is_single = np.zeros(m, dtype=bool)
    is_single[singles] = True
    single_pairs = is_single[ws]
    cw, cl = np.nonzero(classes)
    tails = np.concatenate([src_of[ws[single_pairs]], singles.size + cw]).astype(np.int32)
    heads = np.concatenate([ls[single_pairs], cl]).astype(np.int32)
    units = np.concatenate([unit[single_pairs], np.zeros(cw.size, dtype=np.int64)])
    supply = np.concatenate([np.ones(singles.size, dtype=np.int64),
                             np.bincount(class_of, minlength=classes.shape[0]).astype(np.int64)])
    status, flows, _ = transport(n_src, n, tails, heads, units, lo_k, hi_k, supply)
    if status is Status.INFEASIBLE:
        return Status.INFEASIBLE, None
    k = int(single_pairs.sum())
    chosen = flows[:k] > 0
    a[ws[single_pairs][chosen]] = ls[single_pairs][chosen]
    # Hand each class's flow out to its workers, in index order, line by line.
    class_flow = flows[k:]
    for c in range(classes.shape[0]):
        members = pooled[class_of == c]
        mine = cw == c
        a[members] = np.repeat(cl[mine], class_flow[mine])
    if (a < 0).any():
        raise RuntimeError("min-cost flow returned a flow that is not an allocation")
    return Status.OPTIMAL, a


@dataclass
class _Level:
    """One level's integer costs over the current pairs: ``flow`` is what the flow minimises
    (the last level's carries the seeded tie-break), ``face`` what its optimal face is taken
    for (without the tie-break: the allocations that tie on every level)."""

    name: str
    flow: np.ndarray
    face: np.ndarray
    describe: str


def _level(problem: ProblemData, kind: str, tier: int | None, name: str, ws, ls, budget: int, *, last: bool) -> _Level:
    if kind == "moves":
        u = moves_costs(problem, ws, ls)
        face, describe = u, "0 or 1 a move"
    else:
        costs = tier_costs(problem, tier, ws, ls, budget=budget, with_tie=last)
        u = costs.combined() if last else costs.base
        face = costs.base * np.int64(costs.tie_factor) if last else costs.base
        describe = costs.describe()
    return _Level(name, u, face, describe)


def _restrict(a, ws, ls, w, lo, hi, n, label):
    """The pairs and line bounds of the optimal face of costs ``w`` (optimal at ``a``)."""
    m = a.size
    chosen = np.zeros(m, dtype=np.int64)
    mine = ls == a[ws]
    chosen[ws[mine]] = w[mine]
    rel = (w - chosen[ws]).astype(np.float64)
    away = ~mine
    pi = potentials(line_graph(a, ws[away], ls[away], rel[away], n, lo, hi))
    if pi is None:
        raise RuntimeError(f"levels {label!r}: the flow is not optimal for its own costs")
    rc = rel + pi[a[ws]] - pi[ls]
    if (rc < 0).any():
        raise RuntimeError(f"levels {label!r}: a negative reduced cost")
    keep = rc == 0
    rc_line = pi[:n] - pi[n]
    return ws[keep], ls[keep], np.where(rc_line < 0, hi, lo), np.where(rc_line > 0, lo, hi)


def solve_levels(problem: ProblemData) -> LexicographicResult:
    """The lexicographic optimum of a run without links, quotas and stability (module doc)."""
    m, n = problem.n_workers, problem.n_lines
    log: list[str] = []
    ws, ls = allowed_pairs(problem)
    keep = problem.capacity[ls] > 0  # lines without places take nobody: as the plain flow
    ws, ls = ws[keep], ls[keep]
    lo = problem.mandatory.astype(np.int64)
    hi = problem.capacity.astype(np.int64)
    if (lo > hi).any() or int(lo.sum()) > m or int(hi.sum()) < m or np.bincount(ws, minlength=m).min(initial=1) == 0:
        return LexicographicResult(Status.INFEASIBLE, None, None, ["infeasible: structure"])

    names = level_names(problem)
    kinds: list[tuple[str, int | None]] = ([("moves", None)] if problem.fewest_moves else [])
    kinds += [("tier", t) for t in range(problem.n_tiers)]
    a: np.ndarray | None = None
    for k, (kind, tier) in enumerate(kinds):
        n_free = int((np.bincount(ws, minlength=m) > 1).sum())
        for headroom in HEADROOMS:
            # Costs stay exact in float64 for the level's potentials (module docstring).
            budget = min(flow_budget(n_free + n + 1, headroom), exact_float_limit(n))
            level = _level(problem, kind, tier, names[k], ws, ls, budget, last=k == len(kinds) - 1)
            try:
                status, a_k = _flow(m, n, ws, ls, level.flow, lo, hi)
            except CostRangeError:
                continue
            break
        else:
            raise RuntimeError("min-cost flow rejected every cost scale")
        if status is Status.INFEASIBLE:
            if a is None:
                return LexicographicResult(Status.INFEASIBLE, None, None, [*log, "infeasible: no flow meets every supply"])
            raise RuntimeError(f"level {level.name!r}: the optimal face of the levels before it has no flow")
        a = a_k
        log.append(f"level {level.name} over {ws.size} pairs: {level.describe}")
        ws, ls, lo, hi = _restrict(a, ws, ls, level.face, lo, hi, n, level.name)
    assert a is not None
    return LexicographicResult(Status.OPTIMAL, a, Face(a, ws, ls, lo, hi), log)


def solve(problem: ProblemData, options: SolveOptions) -> SolveOutcome:
    """The lexicographic solve as a :class:`SolveOutcome` (the face rides in ``integer_costs``)."""
    start = time.perf_counter()
    options.callbacks.on_phase("flow")
    result = solve_levels(problem)
    elapsed = time.perf_counter() - start
    log = list(result.log)
    if result.status is Status.INFEASIBLE:
        return SolveOutcome(Status.INFEASIBLE, None, None, None, elapsed, BACKEND, log)
    a = result.assignment
    objective = problem.objective(a)
    options.callbacks.on_progress(objective, objective, elapsed)
    levels = problem.objective_levels(a)
    log.append("levels: " + ", ".join(f"{nm} {v:.10g}" for nm, v in zip(level_names(problem), levels, strict=True)))
    log.append(f"lexicographic min-cost flow optimal in {elapsed:.3f} s")
    return SolveOutcome(Status.OPTIMAL, a, objective, objective, elapsed, BACKEND, log, integer_costs=result.face)
