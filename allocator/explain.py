"""Why not a higher choice, at what exact price, who would move, and whose outcome was a draw.

Everything here follows ../shared/spec/explanations.md. Two ways to price a pair ``(s, p)``:

**Pinned re-solve** (:func:`explain_worker`, the spec taken literally): solve the run again
with ``s`` pinned to ``p`` (same settings, same seed) and compare. The price is
``OPT(pinned) - OPT`` and *who would move* is the difference between the allocation the
engine returns for the pinned run and the current one. With stability on this is the only
way; each re-solve gets a time limit, and a price is marked ``"proven": false`` unless both
the current and the pinned solve are proven optimal.

**Optimality certificate** (:class:`Certificate`, without stability): no re-solve at all.
The allocation is a min-cost flow (:mod:`allocator.solvers.flow`): worker -> line -> sink,
mandatory lines with a lower bound of one. Granting ``(s, p)`` means pushing one unit around
a cycle of the residual network that enters ``p`` through ``s`` and leaves ``M(s)``; every
other difference between two allocations is a union of cycles of non-negative cost (the flow
is optimal), so

    price(s, p) = c(s, p) - c(s, M(s)) + d(p, M(s))

where ``d`` is the shortest residual path from line ``p`` back to line ``M(s)``. That path
only ever goes line -> (a worker on it) -> another line, or through the sink (a free place
taken, a place given up above the mandatory minimum), so it is computed on a small graph
whose nodes are the job lines and the sink: the arc ``q -> q'`` costs the cheapest move of a
worker now on ``q`` to ``q'``. One all-pairs shortest path on that ``(N + 1)``-node graph
(Floyd-Warshall; one shortest-path tree per line) prices every pair of every worker, and the
path's arcs are the moves. The arithmetic is done in the flow's integer costs *without* the
seeded tie-break (``base`` of :mod:`allocator.solvers.scaling`): the allocation is exactly
optimal for them, so the residual network has no negative cycle and the distances are exact
integers (held in float64 only while they stay below 2^52; otherwise the certificate declines
and callers fall back to re-solves). The price reported is the change in the unscaled
objective between the two allocations, exact to the objective's tolerance (the rounding of
the integer costs is at most ``1e-7`` of the objective; see :mod:`allocator.solvers.scaling`).

Where the two differ: when several repairs cost the same, the certificate's path is one of
them and the pinned re-solve's seeded tie-break may pick another. The tie-break does not make
every optimum unique either (its 256 values collide: on the 1,500 x 300 benchmark run there are
exchanges that change neither the cost nor the tie-break sum), so the engine's pinned
allocation sometimes also carries such an unrelated zero-cost exchange; measured there, the
certificate's moves equal the engine's for about half the pairs, and every difference checked
was one such exchange (same combined cost). The *price* is the same
(to tolerance); the *moves* may differ. So the one-worker answer (:func:`explain_worker`,
``allocator explain``) uses the pinned re-solve for prices and moves, exactly as the spec
defines them, and the all-workers statements (:func:`explain_all`) use the certificate for
both (fast: one all-pairs pass for the whole run), saying so in their ``"method"`` key.

**Runs with business rules** (business-rules.md): the certificate above proves optimality for
the one-level objective over the seed's constraints, so it is refused (``Certificate.build``
returns ``None``) for a run with priority tiers, fewest moves, links or quotas. A tiered or
fewest-moves run's optimum is lexicographic: its entries keep ``price`` (the change of the
total objective, which may be negative or 0 there: granting can cost the priority 1 doctors
and give more back to others) and add ``price_levels`` (``[{"level": "moves" | "priority 1" |
... | "no priority", "price": ...}]``, the change of each level between the pinned optimum and
the run's optimum, best level first) and ``deciding_level`` (the first level that changes,
``None`` for a tie on every level). The one-worker answer re-solves with the pin (the engine's
lexicographic flow, :mod:`allocator.solvers.lexicographic`); the certificate path
(:func:`explain_all`, ``method="certificate"``) uses :class:`LexCertificate`, the same
argument with vectors of levels for costs (about 5 s at 1,500 x 300). The scalar price for
every worker at once (:func:`price_all_pairs`) refuses such runs. Their seed-dependent workers
come from the lexicographic optimal face (exact). With links or quotas: pinned re-solves
(CP-SAT), and seed-dependent workers are not known (``None``).

**Seed-dependent workers** (:func:`seed_dependent_worker_ids`): a worker whose line differs in
some optimal allocation, i.e. whose current pair costs nothing to forbid. With node
potentials ``pi`` for the line graph (Bellman-Ford from a virtual root), every residual arc
has a reduced cost ``>= 0`` and a cycle's cost is the sum of its reduced costs, so a cycle of
cost at most the tolerance uses only arcs of reduced cost at most the tolerance. A bounded
Dijkstra on those arcs alone finds every such cycle: exact to the tolerance, and cheap. (This
is the "zero-reduced-cost cycle" test with the tolerance applied to the whole cycle, not to
each arc, so that rounding in many arcs cannot add up.) Zero means zero in the objective
without the seeded tie-break, to :data:`ZERO_REL_TOL` of the objective.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from allocator.diagnosis import entry, line_label, worker_label
from allocator.eligibility import ELIGIBLE_REASONS, Reason
from allocator.metrics import round_sig
from allocator.problem import ProblemData
from allocator.solvers.base import SolveOptions, Status
from allocator.solvers.lexicographic import line_graph, potentials

if TYPE_CHECKING:
    from allocator.result import Result
    from allocator.snapshot import RunSnapshot

FORMAT = "allocator-explain/1"

#: Two objectives closer than this share of the objective are equal (the engine's tolerance).
ZERO_REL_TOL = 1e-7
#: Distances are exact integers in float64 only below this.
_EXACT_FLOAT = float(2**52)
#: Seconds each pinned re-solve gets at most when stability is on (the run's own limit if lower).
STABLE_PAIR_SECONDS = 30.0

REASONS = ("ineligible", "forbidden", "pinned", "price", "impossible")


class ExplainError(ValueError):
    """A request that cannot be explained (unknown worker, no allocation); planner's words."""


# ---------------------------------------------------------------------------------------------
# The certificate
# ---------------------------------------------------------------------------------------------


@dataclass
class Repair:
    """The cheapest way to grant one pair, from the certificate."""

    worker: int
    line: int
    possible: bool
    price: float | None = None  # change of the unscaled objective
    worker_side: float | None = None  # sum of (1 - alpha) * delta Dw
    preferencer_side: float | None = None  # sum of alpha * delta Dp
    moves: list[tuple[int, int, int]] = field(default_factory=list)  # (worker, from, to), others only


@dataclass
class Certificate:
    """The flow's optimality certificate for one allocation of a run without stability.

    Build with :meth:`build`; ``None`` means the allocation is not provably optimal (for a
    stored allocation that was overridden, say) or the numbers are too large for exact
    float64 distances.
    """

    problem: ProblemData
    assignment: np.ndarray  # (M,) line index per worker
    rel: np.ndarray  # (M, N) base(t, q) - base(t, M(t)), inf where q is not allowed for t
    edges: np.ndarray  # (N + 1, N + 1) line graph arc costs (node N is the sink), inf = no arc
    potentials: np.ndarray  # (N + 1,) shortest distances from a virtual root: reduced costs >= 0
    scale: float  # integer units per unit of the objective
    tol: float  # the objective's tolerance, in objective units
    _dist: np.ndarray | None = field(default=None, repr=False)
    _by_line: list[np.ndarray] | None = field(default=None, repr=False)
    _pred: np.ndarray | None = field(default=None, repr=False)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def build(cls, problem: ProblemData, assignment: np.ndarray, costs=None) -> Certificate | None:
        """The certificate of ``assignment``, or ``None`` when it is not a proven optimum.

        ``costs`` are the flow's integer costs when the caller has them (the engine does:
        :attr:`SolveOutcome.integer_costs`); otherwise they are recomputed.
        """
        if problem.settings.stability or problem.has_business_rules:
            # The certificate proves optimality for the one-level objective over the plain
            # constraints; a tiered or fewest-moves objective, links or quotas need re-solves.
            return None
        from allocator.solvers.flow import HEADROOMS, flow_costs
        from allocator.solvers.scaling import allowed_pairs

        a = np.asarray(assignment, dtype=np.int64)
        m = problem.n_workers
        rows = np.arange(m)
        if a.shape != (m,) or m == 0 or not problem.allowed[rows, a].all():
            return None
        pairs = allowed_pairs(problem)
        objective = problem.objective(a)
        tol = ZERO_REL_TOL * max(1.0, abs(objective))
        if costs is not None and costs.workers.size == pairs[0].size:
            cert = cls.from_integer_costs(problem, a, costs, tol)
            if cert is not None:
                return cert
        # The flow solved with the first cost scale that fitted; the allocation is optimal for
        # that scale's integers. Try them in the same order.
        for headroom in HEADROOMS:
            costs = flow_costs(problem, headroom, pairs=pairs)
            cert = cls.from_integer_costs(problem, a, costs, tol)
            if cert is not None:
                return cert
        return None

    @classmethod
    def from_integer_costs(cls, problem: ProblemData, a: np.ndarray, costs, tol: float) -> Certificate | None:
        """The certificate of ``a`` for the flow's integer costs ``costs``, or ``None``.

        Parameters
        ----------
        problem
            The run.
        a
            (M,) line index of every worker: an allocation the flow found for ``costs``.
        costs
            :class:`allocator.solvers.scaling.IntegerCosts` over the allowed pairs or a subset of
            them (pairs left out are not moves); the tie-break is not read, only ``base``.
        tol
            Tolerance of the objective (for :meth:`seed_dependent`); 0 for an exact reading.

        Returns
        -------
        Certificate or None
            ``None`` when the numbers are too large for exact float64 distances, or when ``a``
            is not optimal for these integers (a negative cycle), or uses a pair not in ``costs``.
        """
        m, n = problem.n_workers, problem.n_lines
        rows = np.arange(m)
        base = np.full((m, n), np.inf)
        base[costs.workers, costs.lines] = costs.base.astype(np.float64)
        base[:, problem.capacity <= 0] = np.inf  # the flow leaves these arcs out
        if not np.isfinite(base[rows, a]).all():
            return None
        rel = base - base[rows, a][:, None]
        rel[rows, a] = np.inf  # staying put is not a move
        # The same compressed residual graph the lexicographic flow restricts its levels with.
        ws, ls = np.nonzero(np.isfinite(rel))
        edges = line_graph(a, ws, ls, rel[ws, ls], n, problem.mandatory.astype(np.int64), problem.capacity)
        finite = edges[np.isfinite(edges)]
        # Potentials reach (N + 1) arcs' worth, reduced costs twice that, a path N + 1 of those.
        if finite.size and float(np.abs(finite).max()) * 2.0 * (n + 2) ** 2 >= _EXACT_FLOAT:
            return None
        pot = potentials(edges)
        if pot is None:
            return None  # a negative cycle: not optimal for these integers
        return cls(problem, a, rel, edges, pot, float(costs.scale), tol)

    _from_costs = from_integer_costs  # the old private name, for callers not yet moved

    # -- seed dependence ----------------------------------------------------------------------
    def seed_dependent(self) -> np.ndarray:
        """(M,) bool: the worker's line differs in some optimal allocation (see the module doc)."""
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import dijkstra

        p, a, pi = self.problem, self.assignment, self.potentials
        m, n = p.n_workers, p.n_lines
        # A cycle that costs nothing in the objective rounds to at most one unit per worker on
        # it; the tolerance covers that whenever the scale has the required precision, and the
        # floor makes sure it always does.
        limit = max(self.tol * self.scale, 2.0 * m)
        rc = self.edges + pi[:, None] - pi[None, :]
        src, dst = np.nonzero(np.isfinite(rc) & (rc <= limit))
        graph = csr_matrix((np.maximum(rc[src, dst], 0.0), (src, dst)), shape=(n + 1, n + 1))
        # Leaving M(t) for q, as a reduced cost: >= 0 by the potentials' triangle inequality.
        rcw = self.rel + pi[a][:, None] - pi[None, :n]
        near = np.isfinite(rcw) & (rcw <= limit)
        out = np.zeros(m, dtype=bool)
        cand_w, cand_q = np.nonzero(near)
        if cand_w.size == 0:
            return out
        sources = np.unique(cand_q)
        dist = dijkstra(graph, directed=True, indices=sources, limit=limit + 0.5)
        row_of = np.full(n, -1)
        row_of[sources] = np.arange(sources.size)
        total = rcw[cand_w, cand_q] + dist[row_of[cand_q], a[cand_w]]
        hit = total <= limit
        out[cand_w[hit]] = True
        return out

    # -- all-pairs pricing -------------------------------------------------------------------
    def _all_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        if self._dist is None:
            from scipy.sparse.csgraph import csgraph_from_dense, floyd_warshall

            pi = self.potentials
            # Reduced costs are >= 0 and exact integers: the same shortest paths, no negative arcs.
            rc = self.edges + pi[:, None] - pi[None, :]
            graph = csgraph_from_dense(rc, null_value=np.inf)
            dist, pred = floyd_warshall(graph, directed=True, return_predecessors=True)
            self._dist = dist - pi[:, None] + pi[None, :]
            self._pred = pred
        return self._dist, self._pred  # type: ignore[return-value]

    def _members(self) -> list[np.ndarray]:
        if self._by_line is None:
            order = np.argsort(self.assignment, kind="stable")
            cuts = np.searchsorted(self.assignment[order], np.arange(self.problem.n_lines + 1))
            self._by_line = [order[cuts[q]:cuts[q + 1]] for q in range(self.problem.n_lines)]
        return self._by_line

    def base_price(self, s: int, p: int) -> float:
        """``price(s, p)`` in integer units (``inf`` when the pair cannot be granted)."""
        dist, _ = self._all_pairs()
        a = self.assignment
        if p == a[s]:
            return 0.0
        return float(self.rel[s, p] + dist[p, a[s]])

    def repair(self, s: int, p: int) -> Repair:
        """Grant ``(s, p)`` by the cheapest residual cycle: price, sides and the moves."""
        prob, a = self.problem, self.assignment
        if p == a[s]:
            return Repair(s, p, True, 0.0, 0.0, 0.0, [])
        dist, pred = self._all_pairs()
        home = int(a[s])
        if not np.isfinite(self.rel[s, p]) or not np.isfinite(dist[p, home]):
            return Repair(s, p, False)
        n = prob.n_lines
        path = [home]
        v = home
        while v != p:
            v = int(pred[p, v])
            if v < 0:  # cannot happen when dist is finite
                return Repair(s, p, False)
            path.append(v)
        path.reverse()  # p ... home
        moves: list[tuple[int, int, int]] = []
        for u, v in zip(path[:-1], path[1:], strict=True):
            if u == n or v == n:
                continue  # through the sink: a free place taken or given up, nobody moves
            on_u = self._members()[u]
            on_u = on_u[on_u != s]
            step = self.rel[on_u, v]
            best = on_u[step == step.min()]
            moves.append((int(best[0]), u, v))
        return self._priced(s, p, moves)

    def _priced(self, s: int, p: int, moves: list[tuple[int, int, int]]) -> Repair:
        prob = self.problem
        alpha = prob.settings.preferencer_weight
        changes = [(s, int(self.assignment[s]), p), *moves]
        dw = sum(prob.dw[t, to] - prob.dw[t, fr] for t, fr, to in changes)
        dp = sum(prob.dp[t, to] - prob.dp[t, fr] for t, fr, to in changes)
        price = sum(prob.cost[t, to] - prob.cost[t, fr] for t, fr, to in changes)
        return Repair(s, p, True, _clean(price, self.tol), (1.0 - alpha) * dw, alpha * dp, moves)


def _clean(x: float, tol: float) -> float:
    """Prices within the objective's tolerance of zero are zero (no ``-1e-13`` in a statement)."""
    return 0.0 if abs(x) <= tol else float(x)


@dataclass
class LexCertificate:
    """The certificate of a tiered or fewest-moves run: prices as vectors of levels.

    The run's allocation is lexicographically optimal, so no residual cycle is
    lexicographically negative when each arc costs the vector of its levels' integer costs
    (moves, tier 1, ..., as :mod:`allocator.solvers.lexicographic` solves them). Vectors under
    the lexicographic order form an ordered group, where the certificate's argument holds word
    for word: granting ``(s, p)`` is the lexicographically cheapest residual cycle through it,
    ``rel(s, p) + d(p, M(s))`` with ``d`` the lexicographic shortest path on the line graph
    (Floyd-Warshall comparing vectors). The entry is then priced from the allocation that
    cycle gives (:func:`_priced_by_allocations`: total, sides, ``price_levels``). Build with
    :meth:`build`; ``None`` when it does not apply or the allocation is not a lexicographic
    optimum for these integers (then re-solves price).
    """

    problem: ProblemData
    assignment: np.ndarray
    rel: dict[tuple[int, int], np.ndarray]  # (worker, line) -> level vector of the move
    edges: np.ndarray  # (N + 1, N + 1, L), inf where no arc
    mover: np.ndarray  # (N + 1, N + 1) worker whose move is the arc, -1 for the sink's arcs
    dist: np.ndarray  # (N + 1, N + 1, L) lexicographic shortest paths
    pred: np.ndarray  # (N + 1, N + 1) predecessor on them
    levels: list[float]  # the allocation's own levels

    @classmethod
    def build(cls, problem: ProblemData, assignment: np.ndarray) -> LexCertificate | None:
        if problem.settings.stability or problem.has_links_or_quotas or not problem.lexicographic:
            return None
        from allocator.solvers.lexicographic import (
            _level,
            exact_float_limit,
            level_names,
            solve_levels,
        )
        from allocator.solvers.scaling import allowed_pairs

        a = np.asarray(assignment, dtype=np.int64)
        m, n = problem.n_workers, problem.n_lines
        if a.shape != (m,) or m == 0:
            return None
        face = solve_levels(problem).face
        if face is None or not face.contains(a):
            return None
        ws, ls = allowed_pairs(problem)
        keep = problem.capacity[ls] > 0
        ws, ls = ws[keep], ls[keep]
        kinds = ([("moves", None)] if problem.fewest_moves else []) + [("tier", t) for t in range(problem.n_tiers)]
        budget = exact_float_limit(n)  # sums of n + 1 arcs stay exact in float64, level by level
        u = np.stack([
            _level(problem, kind, tier, name, ws, ls, budget, last=False).face.astype(np.float64)
            for (kind, tier), name in zip(kinds, level_names(problem), strict=True)
        ], axis=1)
        own = ls == a[ws]
        chosen = np.zeros((m, u.shape[1]))
        chosen[ws[own]] = u[own]
        rel = u - chosen[ws]
        away = ~own
        wa, la, ra = ws[away], ls[away], rel[away]
        n_levels = u.shape[1]
        edges = np.full((n + 1, n + 1, n_levels), np.inf)
        mover = np.full((n + 1, n + 1), -1, dtype=np.int64)
        if wa.size:
            cell = a[wa] * (n + 1) + la
            order = np.lexsort((*[ra[:, k] for k in range(n_levels - 1, -1, -1)], cell))
            first = order[np.r_[True, cell[order][1:] != cell[order][:-1]]]
            tails, heads = a[wa[first]], la[first]
            edges[tails, heads] = ra[first]
            mover[tails, heads] = wa[first]
        fill = np.bincount(a, minlength=n)
        edges[np.flatnonzero(fill < problem.capacity), n] = 0.0
        edges[n, np.flatnonzero(fill > problem.mandatory.astype(np.int64))] = 0.0
        idx = np.arange(n + 1)
        edges[idx, idx] = 0.0
        dist, pred = _lex_floyd_warshall(edges)
        if dist is None:
            return None  # a lexicographically negative cycle: not optimal for these integers
        rel_of = {(int(t), int(q)): ra[i] for i, (t, q) in enumerate(zip(wa.tolist(), la.tolist(), strict=True))}
        return cls(problem, a, rel_of, edges, mover, dist, pred, problem.objective_levels(a))

    def entry(self, s: int, p: int) -> dict[str, Any]:
        """The ``price`` (or ``impossible``) entry of granting ``(s, p)``."""
        prob, a = self.problem, self.assignment
        home = int(a[s])
        n = prob.n_lines
        r = self.rel.get((s, p))
        if r is None or not np.isfinite(self.dist[p, home, 0]):
            return _impossible_entry(prob, s, p)
        path = [home]
        v = home
        while v != p:
            v = int(self.pred[p, v])
            path.append(v)
        path.reverse()  # p ... home
        b = a.copy()
        b[s] = p
        for x, y in zip(path[:-1], path[1:], strict=True):
            if x != n and y != n:
                b[int(self.mover[x, y])] = y
        return _priced_by_allocations(prob, a, b, s, p, prob.objective(a), True, self.levels)


def _lex_less(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Elementwise over the last axis: vector ``x`` lexicographically below ``y`` (inf-safe)."""
    with np.errstate(invalid="ignore"):  # inf - inf: both unreachable, neither is below
        diff = x - y
    nz = (diff != 0) & ~np.isnan(diff)
    first = np.argmax(nz, axis=-1)
    val = np.take_along_axis(diff, first[..., None], axis=-1)[..., 0]
    return nz.any(axis=-1) & (val < 0)


def _lex_floyd_warshall(edges: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """All-pairs lexicographic shortest paths; ``None`` on a lexicographically negative cycle."""
    k_nodes = edges.shape[0]
    dist = edges.copy()
    pred = np.where(np.isfinite(edges[..., 0]), np.arange(k_nodes)[:, None], -1)
    for k in range(k_nodes):
        cand = dist[:, k, None, :] + dist[None, k, :, :]
        better = _lex_less(cand, dist)
        if better.any():
            dist = np.where(better[..., None], cand, dist)
            pred = np.where(better, pred[k][None, :], pred)
    diag = dist[np.arange(k_nodes), np.arange(k_nodes)]
    if _lex_less(diag, np.zeros_like(diag)).any():
        return None, pred
    return dist, pred


def _certificate(problem: ProblemData, a: np.ndarray) -> Certificate | LexCertificate | None:
    """The run's certificate: one level, or lexicographic for a tiered or fewest-moves run."""
    if problem.lexicographic:
        return LexCertificate.build(problem, a)
    return Certificate.build(problem, a)


def seed_dependent_worker_ids(
    problem: ProblemData, assignment: np.ndarray | None, *, costs=None
) -> list[str] | None:
    """The workers whose outcome was decided by ``rng_seed`` (sorted ids).

    ``None`` when it is not known: with stability on (deciding it would need a solve per
    worker), when there is no allocation, or when the allocation is not a proven optimum.
    Used by :func:`allocator.engine.solve_problem_data` for the result's
    ``seed_dependent_worker_ids``; ``costs``: the flow's integer costs, when known.
    """
    if assignment is None:
        return None
    if problem.has_business_rules:
        return _lexicographic_seed_dependent(problem, np.asarray(assignment, dtype=np.int64), costs)
    cert = Certificate.build(problem, assignment, costs)
    if cert is None:
        return None
    return sorted(problem.worker_ids[int(t)] for t in np.flatnonzero(cert.seed_dependent()))


def _lexicographic_seed_dependent(problem: ProblemData, a: np.ndarray, face=None) -> list[str] | None:
    """Seed-dependent workers of a tiered or fewest-moves run: from its optimal face.

    A worker is seed-dependent when some allocation that ties with ``a`` on every level puts
    them elsewhere (:meth:`allocator.solvers.lexicographic.Face.seed_dependent`). ``face`` is
    the solver's, when it solved ``a``; otherwise the run is solved again for it, and ``None``
    is returned when ``a`` is not one of its lexicographic optima. Runs with links or quotas:
    ``None`` (not known without a CP-SAT solve per worker).
    """
    if problem.settings.stability or problem.has_links_or_quotas or not problem.lexicographic:
        return None
    from allocator.solvers.lexicographic import Face, solve_levels

    if not (isinstance(face, Face) and np.array_equal(face.assignment, a)):
        solved = solve_levels(problem)
        if solved.face is None or not solved.face.contains(a):
            return None
        face = dataclasses.replace(solved.face, assignment=a)
    return sorted(problem.worker_ids[int(t)] for t in np.flatnonzero(face.seed_dependent()))


# ---------------------------------------------------------------------------------------------
# Reasons
# ---------------------------------------------------------------------------------------------


def higher_choices(problem: ProblemData, s: int, line: int) -> list[int]:
    """Lines ``s`` ranked strictly better than ``line``, in rank order (then id)."""
    got = problem.worker_rank[s, line]
    cand = np.flatnonzero(problem.worker_ranked[s] & (problem.worker_rank[s] < got))
    return sorted((int(j) for j in cand), key=lambda j: (problem.worker_rank[s, j], problem.line_ids[j]))


def _ineligible_entry(problem: ProblemData, s: int, j: int) -> dict[str, Any]:
    v = problem.verdict(s, j)
    if v.reason == Reason.EXCLUDED_WORKER:
        msg = "the line's rules exclude them by name"
    elif v.reason == Reason.EXCLUDED_TAG:
        msg = f"the line excludes the tag '{v.tag}', which they have"
    else:  # MISSING_INCLUDED_TAG: the only other ineligible verdict
        tags = v.required_tags
        msg = f"needs the tag '{tags[0]}'" if len(tags) == 1 else "needs one of the tags " + ", ".join(f"'{t}'" for t in tags)
    return {
        "reason": "ineligible",
        "price": None,
        "eligibility": v.code,
        "step": v.reason.step,
        "tag": v.tag,
        "tags": list(v.required_tags),
        "message": msg,
    }


def _rule_reason(problem: ProblemData, s: int, j: int) -> dict[str, Any] | None:
    """ineligible / forbidden / pinned, in that order; None when the pair may be priced."""
    if not ELIGIBLE_REASONS[problem.reason[s, j]]:  # not problem.eligible: that builds the whole matrix
        return _ineligible_entry(problem, s, j)
    if problem.forbidden[s, j]:
        return {"reason": "forbidden", "price": None, "forbidden_by": None, "forbidden_reason": None,
                "message": "the planner forbade this pair"}
    if problem.pin[s] >= 0:
        k = int(problem.pin[s])
        return {"reason": "pinned", "price": None, "pinned_to": problem.line_ids[k],
                "message": f"they are pinned to {line_label(problem, k)}"}
    return None


def _moves_json(problem: ProblemData, moves: Iterable[tuple[int, int, int]]) -> list[dict[str, Any]]:
    out = [
        {
            "worker_id": problem.worker_ids[t],
            "from": problem.line_ids[fr],
            "to": problem.line_ids[to],
            "rank_before": round_sig(problem.worker_rank[t, fr]),
            "rank_after": round_sig(problem.worker_rank[t, to]),
        }
        for t, fr, to in moves
    ]
    out.sort(key=lambda d: d["worker_id"])
    return out


def _price_entry(problem: ProblemData, rep: Repair, proven: bool = True) -> dict[str, Any]:
    if not rep.possible:
        return _impossible_entry(problem, rep.worker, rep.line)
    return {
        "reason": "price",
        "price": round_sig(rep.price),
        "price_worker_side": round_sig(rep.worker_side),
        "price_preferencer_side": round_sig(rep.preferencer_side),
        "moves": _moves_json(problem, rep.moves),
        "proven": bool(proven),
    }


def pinned_problem(problem: ProblemData, s: int, p: int) -> ProblemData:
    """``problem`` with worker ``s`` pinned to line ``p`` (any pin they had replaced)."""
    pin = problem.pin.copy()
    pin[s] = p
    return dataclasses.replace(problem, pin=pin)


def _impossible_entry(problem: ProblemData, s: int, p: int, diagnosis=None) -> dict[str, Any]:
    if diagnosis is None:
        from allocator.diagnosis import diagnose

        diagnosis = diagnose(pinned_problem(problem, s, p))
    diag = [entry(d) for d in diagnosis]
    if diag:
        msg = "it cannot be granted: " + " ".join(d["message"] for d in diag)
    else:
        msg = "it cannot be granted: no allocation keeps every rule with them there"
    return {"reason": "impossible", "price": None, "diagnosis": diag, "message": msg}


# ---------------------------------------------------------------------------------------------
# One worker: pinned re-solves
# ---------------------------------------------------------------------------------------------


def _index(problem: ProblemData, worker_id: str) -> int:
    if worker_id not in problem.worker_index:
        raise ExplainError(f"There is no worker (doctor) with id {worker_id!r} in run {problem.snapshot.run.id!r}.")
    return problem.worker_index[worker_id]


def _assignment_of(result: Result) -> tuple[ProblemData, np.ndarray]:
    if result.problem is None or result.assignment is None or not result.has_allocation:
        raise ExplainError(f"Run {result.run_id!r} has no allocation to explain ({result.status}).")
    return result.problem, np.asarray(result.assignment, dtype=np.int64)


def _resolve(problem: ProblemData, options: SolveOptions | None) -> Result:
    from allocator.engine import solve_problem_data

    limit = float(problem.settings.max_seconds)
    if problem.settings.stability:
        limit = min(limit, STABLE_PAIR_SECONDS)
    if options is not None:
        limit = min(limit, options.time_limit)
        opts = dataclasses.replace(options, time_limit=limit)
    else:
        opts = SolveOptions(time_limit=limit)
    return solve_problem_data(problem, opts, with_seed_dependence=False)


def optimum(result: Result, options: SolveOptions | None = None) -> tuple[float | None, bool]:
    """``(OPT, proven)`` for the run of ``result``: its own objective when it is a proven optimum.

    An allocation that is not (a stored one that was overridden, a stable solve cut by the
    time limit) is compared with a fresh solve of the same run. For a run with business rules
    ``OPT`` is the objective of its optimum (the tiered one: see :func:`_optimum`).
    """
    opt, proven, _ = _optimum(result, options)
    return opt, proven


def _optimum(result: Result, options: SolveOptions | None = None) -> tuple[float | None, bool, list[float] | None]:
    """:func:`optimum` and, for a tiered or fewest-moves run, the optimum's levels.

    A result the engine proved optimal is the optimum (for a tiered run: the lexicographic
    one, whose total cost need not be the least); anything else is compared with a fresh solve.
    """
    problem, a = _assignment_of(result)
    obj = problem.objective(a)
    if problem.has_business_rules and not problem.settings.stability:
        if result.status == Status.OPTIMAL:
            return obj, True, _levels(problem, a)
        fresh = _resolve(problem, options)
        if not fresh.has_allocation:
            return None, False, None
        b = np.asarray(fresh.assignment, dtype=np.int64)
        return problem.objective(b), fresh.status == Status.OPTIMAL, _levels(problem, b)
    opt, proven = _plain_optimum(problem, a, result, options)
    return opt, proven, None


def _levels(problem: ProblemData, a: np.ndarray) -> list[float] | None:
    return problem.objective_levels(a) if problem.lexicographic else None


def _plain_optimum(problem: ProblemData, a: np.ndarray, result: Result, options: SolveOptions | None) -> tuple[float | None, bool]:
    obj = problem.objective(a)
    if not problem.settings.stability:
        if Certificate.build(problem, a) is not None:
            return obj, True
        fresh = _resolve(problem, options)
        return (problem.objective(fresh.assignment), True) if fresh.has_allocation else (None, False)
    if result.status == Status.OPTIMAL:
        return obj, True
    return obj, False


def explain_worker(
    result: Result,
    worker_id: str,
    *,
    options: SolveOptions | None = None,
    method: str = "resolve",
) -> dict[str, Any]:
    """Why ``worker_id`` did not get each higher choice: ``allocator-explain/1`` as a dict.

    Parameters
    ----------
    result
        A result with an allocation and its problem attached (from :func:`allocator.engine.solve`,
        or :func:`allocation_result` for a stored allocation).
    worker_id
        The worker to explain; :class:`ExplainError` when the run has no such worker.
    options
        Solver knobs for the pinned re-solves (threads, stop event, a time limit cap).
    method
        ``"resolve"`` (default): one pinned re-solve per priced higher choice, so the price
        and the moves are exactly those of the allocation the engine returns for the pinned
        run (same seed). ``"certificate"``: from the flow's optimality certificate, no
        re-solve (without stability only; falls back to re-solves when the certificate is not
        available); the moves are one cheapest repair, which may differ from the engine's
        seeded choice when several repairs cost the same.
    """
    problem, a = _assignment_of(result)
    s = _index(problem, worker_id)
    cert = _certificate(problem, a) if method == "certificate" else None
    opt, opt_proven, opt_levels = (None, False, None)
    if cert is None:
        opt, opt_proven, opt_levels = _optimum(result, options)
    return _explain(problem, a, s, cert=cert, opt=opt, opt_proven=opt_proven, options=options,
                    opt_levels=opt_levels)


def explain_choice(
    result: Result, worker_id: str, job_line_id: str, *, options: SolveOptions | None = None
) -> dict[str, Any]:
    """One higher choice of one worker by a pinned re-solve (the engine's own moves).

    For a page that shows the certificate's prices at once (:func:`explain_worker` with
    ``method="certificate"``, or :func:`explain_all`) and the exact moves of the allocation
    the engine returns for the pinned run when a planner opens one choice. Returns the entry
    as in ``higher_choices``; :class:`ExplainError` when the line is not a higher choice.
    """
    problem, a = _assignment_of(result)
    s = _index(problem, worker_id)
    p = problem.line_index.get(job_line_id)
    if p is None or p not in higher_choices(problem, s, int(a[s])):
        raise ExplainError(f"Job line {job_line_id!r} is not a line {worker_id!r} ranked above their own.")
    head = {"job_line_id": problem.line_ids[p], "worker_rank": round_sig(problem.worker_rank[s, p])}
    rule = _rule_reason(problem, s, p)
    if rule is not None:
        return head | rule
    opt, opt_proven, opt_levels = _optimum(result, options)
    return head | _resolved_entry(problem, a, s, p, opt, opt_proven, options, opt_levels)


def _explain(
    problem: ProblemData,
    a: np.ndarray,
    s: int,
    *,
    cert: Certificate | LexCertificate | None,
    opt: float | None,
    opt_proven: bool,
    options: SolveOptions | None,
    deadline: float | None = None,
    objective: float | None = None,
    opt_levels: list[float] | None = None,
) -> dict[str, Any]:
    j = int(a[s])
    entries = []
    for p in higher_choices(problem, s, j):
        head = {"job_line_id": problem.line_ids[p], "worker_rank": round_sig(problem.worker_rank[s, p])}
        rule = _rule_reason(problem, s, p)
        if rule is not None:
            entries.append(head | rule)
        elif isinstance(cert, LexCertificate):
            entries.append(head | cert.entry(s, p))
        elif cert is not None:
            entries.append(head | _price_entry(problem, cert.repair(s, p)))
        elif deadline is not None and time.monotonic() > deadline:
            entries.append(head | _unpriced("not priced: the time for these statements ran out"))
        else:
            entries.append(head | _resolved_entry(problem, a, s, p, opt, opt_proven, options, opt_levels))
    return {
        "format": FORMAT,
        "run_id": problem.snapshot.run.id,
        "worker_id": problem.worker_ids[s],
        "job_line_id": problem.line_ids[j],
        "worker_rank": round_sig(problem.worker_rank[s, j]),
        "objective": round_sig(problem.objective(a) if objective is None else objective),
        "method": "certificate" if cert is not None else "resolve",
        "higher_choices": entries,
    }


def _unpriced(message: str) -> dict[str, Any]:
    return {"reason": "price", "price": None, "price_worker_side": None, "price_preferencer_side": None,
            "moves": [], "proven": False, "message": message}


def _resolved_entry(
    problem: ProblemData,
    a: np.ndarray,
    s: int,
    p: int,
    opt: float | None,
    opt_proven: bool,
    options: SolveOptions | None,
    opt_levels: list[float] | None = None,
) -> dict[str, Any]:
    moved = pinned_problem(problem, s, p)
    if not problem.settings.stability and not problem.has_links_or_quotas:
        # The engine's non-stable solve is this flow on these costs (same seed, so the same
        # allocation; the tests check it against the engine); skipping the result's metrics
        # and checks makes each re-solve about 40 % cheaper. Tiers and fewest moves: the
        # engine's lexicographic flow, likewise.
        from allocator.diagnosis import diagnose

        if problem.lexicographic:
            from allocator.solvers.lexicographic import solve_levels

            b = solve_levels(moved).assignment
        else:
            from allocator.solvers.flow import solve_flow_scaled

            b = solve_flow_scaled(moved)[0].assignment
        if b is None:
            return _impossible_entry(problem, s, p, diagnose(moved))
        return _priced_by_allocations(problem, a, b, s, p, opt, opt_proven, opt_levels)
    pinned = _resolve(moved, options)
    if pinned.status == Status.INFEASIBLE:
        return _impossible_entry(problem, s, p, pinned.diagnosis)
    if not pinned.has_allocation:
        return _unpriced("not decided within the time limit: no allocation with them there was found in time")
    b = np.asarray(pinned.assignment, dtype=np.int64)
    return _priced_by_allocations(problem, a, b, s, p, opt, opt_proven and pinned.status == Status.OPTIMAL, opt_levels)


def _price_levels(problem: ProblemData, b: np.ndarray, opt_levels: list[float] | None) -> dict[str, Any]:
    """``price_levels`` (each level's change, best level first) and ``deciding_level``.

    A tiered or fewest-moves run compares allocations level by level, so its price is this
    vector: the first level that changes decides (a lower level may even improve). Empty for
    a run with one level.
    """
    if not problem.lexicographic or opt_levels is None:
        return {}
    from allocator.solvers.lexicographic import level_names

    out, deciding = [], None
    for name, before, after in zip(level_names(problem), opt_levels, problem.objective_levels(b), strict=True):
        delta = _clean(after - before, ZERO_REL_TOL * max(1.0, abs(before)))
        out.append({"level": name, "price": round_sig(delta)})
        if deciding is None and delta != 0.0:
            deciding = name
    return {"price_levels": out, "deciding_level": deciding}


def _priced_by_allocations(
    problem: ProblemData,
    a: np.ndarray,
    b: np.ndarray,
    s: int,
    p: int,
    opt: float | None,
    proven: bool,
    opt_levels: list[float] | None = None,
) -> dict[str, Any]:
    """Price of allocation ``b`` (with ``s`` on ``p``) against ``OPT``, and the moves from ``a``."""
    alpha = problem.settings.preferencer_weight
    rows = np.arange(problem.n_workers)
    changed = np.flatnonzero(a != b)
    base_obj = opt if opt is not None else problem.objective(a)
    tol = ZERO_REL_TOL * max(1.0, abs(base_obj))
    price = problem.objective(b) - base_obj
    # The sides of the price: against the current allocation when it is the optimum.
    dw = float((problem.dw[rows, b] - problem.dw[rows, a]).sum())
    dp = float((problem.dp[rows, b] - problem.dp[rows, a]).sum())
    moves = [(int(t), int(a[t]), int(b[t])) for t in changed if t != s]
    return {
        "reason": "price",
        "price": round_sig(_clean(price, tol)),
        "price_worker_side": round_sig((1.0 - alpha) * dw),
        "price_preferencer_side": round_sig(alpha * dp),
        "moves": _moves_json(problem, moves),
        "proven": bool(proven),
    } | _price_levels(problem, b, opt_levels)


# ---------------------------------------------------------------------------------------------
# Every worker at once
# ---------------------------------------------------------------------------------------------


def explain_all(
    result: Result,
    *,
    options: SolveOptions | None = None,
    time_budget: float | None = None,
) -> list[dict[str, Any]]:
    """``allocator-explain/1`` for every worker (sorted by id), as fast as the run allows.

    Without stability: from the optimality certificate (``"method": "certificate"``), one
    all-pairs shortest-path pass for the whole run, no re-solve. The moves are one cheapest
    repair per pair (see the module docstring). With stability, or when the allocation is not
    a proven optimum: pinned re-solves, until ``time_budget`` seconds (default: the run's
    ``max_seconds``) are spent; prices not computed by then are ``null`` with
    ``"proven": false``.
    """
    problem, a = _assignment_of(result)
    cert = _certificate(problem, a)
    opt, opt_proven, opt_levels = (None, False, None)
    deadline = None
    if cert is None:
        opt, opt_proven, opt_levels = _optimum(result, options)
        budget = float(problem.settings.max_seconds) if time_budget is None else float(time_budget)
        deadline = time.monotonic() + budget
    objective = problem.objective(a)
    return [
        _explain(problem, a, s, cert=cert, opt=opt, opt_proven=opt_proven, options=options,
                 deadline=deadline, objective=objective, opt_levels=opt_levels)
        for s in range(problem.n_workers)
    ]


def price_all_pairs(result: Result) -> dict[str, Any]:
    """Every higher choice of every worker priced, without the moves: the fast path's core.

    Returns ``{"workers": [...], "lines": [...], "prices": [...]}`` in the objective's
    units (``inf`` for a pair that cannot be granted), plus ``"seconds"``. Only the pairs that
    have reason ``price`` or ``impossible`` are listed. Raises :class:`ExplainError` when
    there is no certificate (stability on, or not a proven optimum).
    """
    t0 = time.perf_counter()
    problem, a = _assignment_of(result)
    cert = Certificate.build(problem, a)
    if cert is None:
        raise ExplainError(
            "Prices for every worker at once need a run without stability, priority tiers, fewest moves, "
            "linked workers or quotas, solved to optimality."
        )
    dist, _ = cert._all_pairs()
    m = problem.n_workers
    rows = np.arange(m)
    got = problem.worker_rank[rows, a]
    higher = problem.worker_ranked & (problem.worker_rank < got[:, None])
    ok = higher & problem.eligible & ~problem.forbidden & (problem.pin < 0)[:, None]
    ws, ls = np.nonzero(ok)
    base = cert.rel[ws, ls] + dist[ls, a[ws]]
    prices = np.where(np.isfinite(base), base / cert.scale, np.inf)
    return {"workers": ws, "lines": ls, "prices": prices, "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------
# Override preview
# ---------------------------------------------------------------------------------------------


def _problem_and_assignment(snapshot: RunSnapshot | ProblemData | None, result: Result) -> tuple[ProblemData, np.ndarray]:
    if result.problem is not None and result.assignment is not None and (snapshot is None or snapshot is result.problem):
        return result.problem, np.asarray(result.assignment, dtype=np.int64)
    if isinstance(snapshot, ProblemData):
        problem = snapshot
    elif snapshot is not None:
        problem = ProblemData.from_snapshot(snapshot)
    elif result.problem is not None:
        problem = result.problem
    else:
        raise ExplainError("Give the run's snapshot: this result was read from JSON.")
    by_worker = {x.worker_id: x.job_line_id for x in result.allocations}
    missing = [w for w in problem.worker_ids if w not in by_worker]
    unknown = sorted({j for j in by_worker.values() if j not in problem.line_index})
    if missing or unknown or not result.allocations:
        raise ExplainError(
            "The result does not belong to this run: "
            + (f"no line for {', '.join(missing[:5])}" if missing else f"unknown job lines {', '.join(unknown[:5])}")
        )
    return problem, np.array([problem.line_index[by_worker[w]] for w in problem.worker_ids], dtype=np.int64)


def _breaks(problem: ProblemData, a: np.ndarray, b: np.ndarray, moved: Sequence[int]) -> list[dict[str, Any]]:
    """What allocation ``b`` (the move alone) breaks that ``a`` kept, in the planner's words."""
    from allocator.stability import blocking_mask

    out: list[dict[str, Any]] = []
    for t in moved:
        j = int(b[t])
        if not problem.eligible[t, j]:
            out.append({"kind": "ineligible", "worker_id": problem.worker_ids[t], "job_line_id": problem.line_ids[j],
                        "message": f"{worker_label(problem, t)} is not eligible for {line_label(problem, j)}: "
                                   + _ineligible_entry(problem, t, j)["message"]})
        elif problem.forbidden[t, j]:
            out.append({"kind": "forbidden", "worker_id": problem.worker_ids[t], "job_line_id": problem.line_ids[j],
                        "message": f"the pair {worker_label(problem, t)} on {line_label(problem, j)} is forbidden"})
        if problem.pin[t] >= 0 and problem.pin[t] != j:
            out.append({"kind": "pin", "worker_id": problem.worker_ids[t], "job_line_id": problem.line_ids[j],
                        "message": f"{worker_label(problem, t)} is pinned to {line_label(problem, int(problem.pin[t]))}; "
                                   "the move replaces that pin"})
    n = problem.n_lines
    fill_a, fill_b = np.bincount(a, minlength=n), np.bincount(b, minlength=n)
    for j in np.flatnonzero((fill_b > problem.capacity) & (fill_b > fill_a)):
        out.append({"kind": "capacity", "job_line_id": problem.line_ids[j],
                    "message": f"{line_label(problem, j)} would have {fill_b[j]} workers for {problem.capacity[j]} "
                               f"{'place' if problem.capacity[j] == 1 else 'places'}"})
    for j in np.flatnonzero(problem.mandatory & (fill_b == 0) & (fill_a > 0)):
        out.append({"kind": "mandatory", "job_line_id": problem.line_ids[j],
                    "message": f"{line_label(problem, j)} must be filled and would be empty"})
    out += _rule_breaks(problem, a, b)
    if not problem.settings.stability:
        return out  # blocking pairs break a rule only when stability is on
    new_block = blocking_mask(problem, b) & ~blocking_mask(problem, a)
    for t, j in zip(*np.nonzero(new_block), strict=True):
        out.append({"kind": "blocking_pair", "worker_id": problem.worker_ids[t], "job_line_id": problem.line_ids[j],
                    "message": f"{worker_label(problem, t)} and {line_label(problem, j)} would block: the doctor "
                               "ranks that line higher than theirs, and it has a free place or its preferencers "
                               "rank them above someone on it"})
    return out


def _rule_breaks(problem: ProblemData, a: np.ndarray, b: np.ndarray) -> list[dict[str, Any]]:
    """The links split and the quotas missed by ``b`` that ``a`` kept (business-rules.md)."""
    from allocator.diagnosis import site_label

    out: list[dict[str, Any]] = []
    for link in problem.links:
        if len(set(problem.site[b[link.workers]].tolist())) < 2 or len(set(problem.site[a[link.workers]].tolist())) > 1:
            continue
        where = ", ".join(
            f"{worker_label(problem, int(t))} at {site_label(problem, int(problem.site[b[t]]))}" for t in link.workers
        )
        out.append({"kind": "link", "link_id": link.id, "worker_ids": [problem.worker_ids[int(t)] for t in link.workers],
                    "message": f"link '{link.id}' would be split over sites: {where}"})
    for q in problem.quotas:
        count_a, count_b = q.count(a), q.count(b)
        counted = f"worker{'' if count_b == 1 else 's'}" + (
            f" with the qualification '{q.qualification_id}'" if q.qualification_id else "")
        if count_b < q.min_workers <= count_a:
            out.append({"kind": "quota", "quota_id": q.id,
                        "message": f"quota '{q.id}' would count {count_b} {counted}, below its minimum of {q.min_workers}"})
        if q.max_workers is not None and count_b > q.max_workers >= count_a:
            out.append({"kind": "quota", "quota_id": q.id,
                        "message": f"quota '{q.id}' would count {count_b} {counted}, above its maximum of {q.max_workers}"})
    return out


def _preview(
    problem: ProblemData, a: np.ndarray, pins: dict[int, int], options: SolveOptions | None, status: Status
) -> dict[str, Any]:
    b = a.copy()
    for t, j in pins.items():
        b[t] = j
    moved = sorted(pins)
    pin = problem.pin.copy()
    for t, j in pins.items():
        pin[t] = j
    pinned = dataclasses.replace(problem, pin=pin)
    opt, opt_proven, opt_levels = _optimum(_result_for(problem, a, status), options)
    breaks = _breaks(problem, a, b, moved)
    alone_obj = problem.objective(b)
    resolved = _resolve(pinned, options)
    out: dict[str, Any] = {
        "moves_asked": [{"worker_id": problem.worker_ids[t], "from": problem.line_ids[int(a[t])],
                         "to": problem.line_ids[j]} for t, j in sorted(pins.items())],
        "breaks": breaks,
        "objective": round_sig(problem.objective(a)),
        "objective_move_alone": round_sig(alone_obj),
        "status": str(resolved.status),
    }
    if resolved.has_allocation:
        c = np.asarray(resolved.assignment, dtype=np.int64)
        base = opt if opt is not None else problem.objective(a)
        tol = ZERO_REL_TOL * max(1.0, abs(base))
        rows = np.arange(problem.n_workers)
        alpha = problem.settings.preferencer_weight
        others = [(int(t), int(a[t]), int(c[t])) for t in np.flatnonzero(a != c) if int(t) not in pins]
        out["repair"] = {
            "objective": round_sig(problem.objective(c)),
            "price": round_sig(_clean(problem.objective(c) - base, tol)),
            "price_worker_side": round_sig((1 - alpha) * float((problem.dw[rows, c] - problem.dw[rows, a]).sum())),
            "price_preferencer_side": round_sig(alpha * float((problem.dp[rows, c] - problem.dp[rows, a]).sum())),
            "moves": _moves_json(problem, others),
            "proven": bool(opt_proven and resolved.status == Status.OPTIMAL),
            "allocation": {problem.worker_ids[t]: problem.line_ids[int(c[t])] for t in range(problem.n_workers)},
        } | _price_levels(problem, c, opt_levels)
    else:
        out["repair"] = None
        out["diagnosis"] = [entry(d) for d in resolved.diagnosis]
    return out


def _result_for(problem: ProblemData, a: np.ndarray, status: Status) -> Result:
    from allocator.result import Result

    return Result.build(problem, status, a, best_bound=None, solve_seconds=0.0)


def preview_move(
    snapshot: RunSnapshot | ProblemData | None,
    result: Result,
    worker_id: str,
    job_line_id: str,
    *,
    options: SolveOptions | None = None,
) -> dict[str, Any]:
    """What moving one worker to one line does (engine part of the Results page's override).

    Returns ``breaks`` (what the move alone breaks: capacity, mandatory fills, eligibility,
    forbids, pins, links split and quotas missed (kinds ``link`` and ``quota``) and, with
    stability on, new blocking pairs), ``objective_move_alone``, and ``repair``: the best
    allocation with the worker pinned there (a pinned re-solve, same seed), its ``price``
    against the run's optimum with the two sides, the other workers who move and the whole
    allocation (for applying it); ``None`` with a ``diagnosis`` when no allocation exists.
    """
    problem, a = _problem_and_assignment(snapshot, result)
    s = _index(problem, worker_id)
    if job_line_id not in problem.line_index:
        raise ExplainError(f"There is no job line with id {job_line_id!r} in run {problem.snapshot.run.id!r}.")
    return _preview(problem, a, {s: problem.line_index[job_line_id]}, options, result.status)


def preview_swap(
    snapshot: RunSnapshot | ProblemData | None,
    result: Result,
    worker_a: str,
    worker_b: str,
    *,
    options: SolveOptions | None = None,
) -> dict[str, Any]:
    """:func:`preview_move` for two workers exchanging their lines (both pinned for the repair)."""
    problem, a = _problem_and_assignment(snapshot, result)
    s, t = _index(problem, worker_a), _index(problem, worker_b)
    if s == t:
        raise ExplainError("Choose two different workers (doctors) to swap.")
    return _preview(problem, a, {s: int(a[t]), t: int(a[s])}, options, result.status)


# ---------------------------------------------------------------------------------------------
# A stored allocation as a result
# ---------------------------------------------------------------------------------------------


def allocation_result(snapshot: RunSnapshot, by_worker: dict[str, str]) -> Result:
    """A :class:`Result` for a stored allocation (``{worker_id: job_line_id}``) of ``snapshot``.

    Raises :class:`ExplainError` when it does not fit the run (a worker without a line, an
    unknown line, or a rule it breaks).
    """
    from allocator.engine import verify
    from allocator.result import Result

    problem = ProblemData.from_snapshot(snapshot)
    missing = [w for w in problem.worker_ids if w not in by_worker]
    unknown = sorted({j for j in by_worker.values() if j not in problem.line_index})
    if missing or unknown:
        what = (f"no job line for {', '.join(missing[:5])}" if missing else f"unknown job lines {', '.join(unknown[:5])}")
        raise ExplainError(f"The stored allocation does not match run {snapshot.run.id!r}: {what}. Solve the run again.")
    a = np.array([problem.line_index[by_worker[w]] for w in problem.worker_ids], dtype=np.int64)
    errors = verify(problem, a)
    if errors:
        raise ExplainError(f"The stored allocation no longer keeps the run's rules ({errors[0]}). Solve the run again.")
    if problem.lexicographic and not problem.has_links_or_quotas and not problem.settings.stability:
        # A tiered or fewest-moves optimum: proven when it lies on the optimal face of every level.
        from allocator.solvers.lexicographic import solve_levels

        face = solve_levels(problem).face
        proven = face is not None and face.contains(a)
    else:
        # Links or quotas: not proven here (the explanations re-solve to compare).
        proven = Certificate.build(problem, a) is not None
    status = Status.OPTIMAL if proven else Status.FEASIBLE
    return Result.build(problem, status, a, best_bound=None, solve_seconds=0.0)


__all__ = [
    "FORMAT",
    "Certificate",
    "ExplainError",
    "LexCertificate",
    "Repair",
    "allocation_result",
    "explain_all",
    "explain_choice",
    "explain_worker",
    "higher_choices",
    "optimum",
    "pinned_problem",
    "preview_move",
    "preview_swap",
    "price_all_pairs",
    "seed_dependent_worker_ids",
]
