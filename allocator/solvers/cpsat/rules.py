"""CP-SAT for the business rules a min-cost flow cannot hold: links and quotas (business-rules.md).

The model is the seed's (one line per worker, places, must-be-filled, pins) plus links
(:func:`.constraints.links`: one site per link) and quotas (:func:`.constraints.quotas`).
The objective is lexicographic (:mod:`.levels`): the moves from the previous allocation when
fewest moves is on, then each tier's rounded cost, tier 1 first; a run without tiers has one
level. CP-SAT alone on the whole model is exact but slow (1,500 x 300: 355,000 Booleans, not
even the first level proven in two minutes), so the solve starts from what the flow knows and
gives CP-SAT only what it must decide.

Notation. ``F_k`` is the set of allocations that keep constraints 1-4, every link and quota,
and reach the optimum ``v_j`` of every level ``j < k`` (``F_1``: all that keep the rules). The
lexicographic optimum is the set of minimisers of level ``K`` over ``F_K``. ``keep`` is a set
of pairs that contains every pair of every allocation of interest (initially the allowed
pairs on lines with places, less the pairs of linked workers on sites that not every worker of
their link can reach - no allocation meeting the link uses those).

Step 1, the bound (per level). Drop the links and quotas: level ``k``'s cost over the
allocations that keep constraints 1-4 with pairs in ``keep`` is a min-cost flow
(:mod:`allocator.solvers.flow`, in the same integers as CP-SAT's, without the tie-break). Its
optimum ``LB_k`` is a lower bound on level ``k`` over ``F_k`` since ``F_k`` only has
allocations of that relaxation (by the invariant on ``keep``).

Step 1b, the levels before. In ``F_k`` every solved level ``j`` equals ``v_j``; the flow for
``level_k + mu * sum_j level_j``, less ``mu * sum_j v_j``, is a lower bound for any ``mu``
(:func:`_multiplier` takes it as large as the certificate's exact range allows), and stays
near the solved levels' optimal faces where pairs alone cannot say it (lines that must be full).

Step 2, reduced costs. The flow's optimality certificate (:class:`allocator.explain.Certificate`:
node potentials ``pi`` of the line graph) gives every pair the reduced cost
``rc(s, p) = c(s, p) - c(s, a(s)) + pi(a(s)) - pi(p)``, where ``a`` is the flow's allocation.
With the worker potential ``pi(a(s)) - c(s, a(s))`` every residual arc of the flow network has a
reduced cost ``>= 0`` (the certificate's triangle inequalities), and the arcs ``a`` uses have 0.
For any allocation ``x`` of the relaxation, ``x - a`` is a circulation in the residual network,
so ``cost(x) - LB_k`` is the sum over the arcs of ``rc * (x - a)``, every term ``>= 0`` (an arc
that ``x`` uses more than ``a`` is a forward residual arc, ``rc >= 0``; one it uses less is a
backward one, ``-rc >= 0``). Hence ``cost(x) - LB_k >= sum_t rc(t, x(t)) >= rc(s, p)`` for
every pair ``(s, p)`` that ``x`` uses. Steps 2b and 2c (:func:`link_excess`,
:func:`quota_excess`) add what the links and one broken quota force on that sum: each pair gets
an *excess*, a lower bound on ``cost(x) - LB_k`` over the allocations that use it and meet the
rules, and ``LB_k`` rises by what every allocation must pay.

Step 3, the start (a hint and an upper bound), heuristics whose quality only changes the
speed. :func:`repair` turns the flow optimum of all levels at once (coarse lexicographic
weights) into an allocation that meets the links and quotas (links on one site each, quotas
priced by penalties), solving the flow again under the repairs. At each later level a fresh
repair over the kept pairs (links on the current allocation's sites) replaces the current
allocation when it reaches every solved level's optimum and does better on this level; then a
*polish* minimises the level over a few pairs per worker (:func:`few_pairs`) with CP-SAT,
the solved levels fixed. The current allocation is always in ``F_k``; its level-``k`` value is
``UB_k``.

Step 4, reduced-cost fixing. Every allocation of ``F_k`` with level ``k`` at most ``UB_k`` has
an excess ``<= UB_k - LB_k`` on each of its pairs (step 2), and the optimal ones have level
``k`` at most ``UB_k``; so the pairs whose excess is above ``UB_k - LB_k`` are removed from
``keep`` exactly (``rc`` read as the excess here and below). Once the level is solved (``v_k``), every allocation of ``F_{k+1}`` has level ``k``
equal to ``v_k``: the pairs with ``rc > v_k - LB_k`` are removed too, and the invariant holds
for the next level. When ``UB_k == LB_k`` the start is optimal for the level and CP-SAT is
not called for it (its pairs with ``rc > 0`` leave ``keep``: the next level's flow works on
this level's optimal face, as far as pairs describe it).

Step 5, CP-SAT on what is left: the model over ``keep`` with ``level_j == v_j`` for the
levels before, minimising level ``k``, bounded below by ``LB_k`` (the best of steps 1, 6 and 7)
and hinted with the start.

Step 6, before step 5 when later levels' workers exist (they cost nothing on level ``k``, so
no fixing can thin their pairs, and they make the model large): a sandwich of two small
models. The *relaxation* keeps only a set ``S`` of workers that holds the workers of the
levels up to ``k`` (:func:`_relaxed_workers` adds the pinned workers and the whole links of
those workers, which tightens it): their kept pairs, places, the quotas' maxima counting
them, the links among them, the solved levels. The solved levels and level ``k`` only weigh
pairs of workers of ``S``, so every allocation of ``F_k`` restricted to ``S`` is one of the
relaxation's solutions with the same level values; its optimum (or CP-SAT's bound on it) is a
lower bound. When it is proven optimal, the repair of step 3 completes its allocation of ``S``
(held fixed) for the other workers (:func:`_extend`); a completion that meets every rule and
reaches every solved level's optimum is in ``F_k`` with level ``k`` equal to the relaxation's
optimum, so it is optimal for the level (checked, not assumed: the repair is a heuristic). The
*narrow* model is the whole model over the kept pairs of the workers of the levels up to
``k`` and a few pairs of the others (and the current allocation's): each of its solutions is
in ``F_k``, an upper bound. When the bounds meet, the level is proven without the large
model; otherwise they tighten step 5.
A deterministic cap (:data:`MAX_PAIRS_PER_SECOND` of the time limit) skips step 5 when too
many pairs are left to build and search: the best allocation stands, not proven, with its gap.

Step 7, after steps 1-4 when they did not prove the level (before step 6, whose models it
shrinks): the LP bound (:mod:`.lp_bound`). The flow drops the links and quotas and sees the
solved levels only through the multiplier of step 1b, which on the last tier of 1,500 x 300
left a bound of -5 x 10^8 against a level near 1.2 x 10^6. The LP relaxation of ``F_k`` over
the kept pairs keeps all of them as constraints (links with one site variable per link and
site, quotas, places, fills, each solved level ``== v_j``); its optimum, made rigorous from
HiGHS's duals in exact integer arithmetic and rounded up, is a lower bound on level ``k`` over
``F_k`` (the invariant on ``keep``). HiGHS starts from the polish's pairs and the current
allocation's and prices the others in by rounds (column generation: the bound holds for any
duals, so this only changes the speed). The LP's reduced costs fix pairs (and link sites)
exactly, as step 4 does with the flow's: ``S level_k(x) >= B + R_p`` for every ``x`` of
``F_k`` using pair ``p``, so a pair with ``B + R_p > S UB_k`` is in no allocation of interest;
the proof is in :mod:`.lp_bound`. When HiGHS's solution is whole and passes the engine's
checks (constraints 1-4, links, quotas, the solved levels, in integers) it is an allocation of
``F_k`` and the start when better; often it reaches the bound, which proves the level. It is
skipped, with a log line, when the kept pairs are more than :data:`LP_PAIRS_PER_SECOND` of the
time limit (deterministic); the clock stops HiGHS as a hard limit on top. With a start, step 7
runs first at each level (before the fresh start, the polish and step 1's flow, which are
computed only when the LP leaves the level open).

Step 7b, the probe at the LP bound (:func:`_probe`): an allocation of ``F_k`` whose level is the
LP bound ``L`` uses only pairs with ``B + R_p <= S L`` (step 7's fixing with ``UB_k = L``), and
these are few for the workers the level weighs (the other workers' pairs all cost 0 on it).
CP-SAT minimises the level over them and a few pairs of the other workers (the polish's and the
current allocation's), bounded below by ``L``: each of its solutions is in ``F_k`` (an upper
bound), and one reaching ``L`` proves the level with no flow, polish or relaxation. It often
does (the LP is tight), in a fraction of the polish's time; when it finds nothing (the other
workers held too tightly, or the optimum above ``L``), nothing is concluded and the steps
before go on as without it.

Step 3 over a few pairs first, on large runs (more than :data:`REPAIR_FEW_ABOVE` kept pairs).
:func:`repair`'s flows (a link penalty, then a flow per round of quota prices) run first over
twelve pairs a worker, the cheapest in the first flow's reduced
costs, with its allocation's (and the anchor's): four to eight times fewer arcs. Only when that
finds no start does the repair run again over every kept pair. The start's quality changes the
speed only.

Determinism. The flows and the repair are deterministic; CP-SAT runs with **one worker** and a
**deterministic work limit** of :data:`DETERMINISTIC_PER_SECOND` units per second of the time
limit (of the limit itself, not of the clock), shared over the levels left, a level's unused
work passing on; so the same inputs, seed and time limit give the same allocation, proven or
stopped by the work limit. The wall clock stays a hard limit on top (a heavily loaded machine
may stop a search first; the log says so). The seed enters through the flows' seeded
tie-break and CP-SAT's ``random_seed``. A level stopped before it is proven ends the solve:
its best allocation is the answer (status feasible), its gap in the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from ortools.sat.python import cp_model

from allocator.problem import ProblemData
from allocator.solvers.base import SolveOptions, SolveOutcome, Status
from allocator.solvers.cpsat import constraints as cons
from allocator.solvers.cpsat.levels import Level, levels, meets_rules
from allocator.solvers.cpsat.lp_bound import LPBound, lp_allocation, lp_bound
from allocator.solvers.cpsat.model import run_cpsat
from allocator.solvers.cpsat.objective import weighted
from allocator.solvers.cpsat.variables import make_variables
from allocator.solvers.scaling import IntegerCosts, allowed_pairs, cpsat_budget, integer_costs

BACKEND = "cpsat-rules"
#: CP-SAT work (deterministic time units) per second of the time limit; as in the stable model.
DETERMINISTIC_PER_SECOND = 0.2
#: Rounds of quota penalties in the repair before it gives up (a heuristic: no start then).
QUOTA_ROUNDS = 12
#: CP-SAT parameters of every level's search. Measured on 1,500 x 300 (40 links, 3 quotas, 3
#: tiers): with the LP's second linearisation level the narrow tier-2 model (7,520 pairs) was
#: proven in 0.6 units; with the default it was not in 7.
CPSAT_PARAMS: dict = {"linearization_level": 2}
#: Pairs per second of the time limit that the full model of a level may have (building the
#: CP-SAT model in Python costs about 20-50 us a pair on this machine, the search more).
MAX_PAIRS_PER_SECOND = 4_000
#: Pairs per worker of the later levels in the narrow models of step 6, tried in turn (measured on
#: 1,500 x 300: a second, wider model of 12 pairs a worker found nothing in its share of the work).
NARROW_PAIRS = (4,)
#: Most deterministic work for the polish of the start at each level.
POLISH_WORK = 0.5
#: Pairs per second of the time limit that step 7's LP may have. Measured on 1,500 x 300 (40
#: links, 3 quotas, 3 tiers, a load of about 2): 242,583 columns in 0.23 s (tier 1) and 122,614
#: in 0.35 s (the last tier) with column generation, against 1.2 s for HiGHS on all 122,614;
#: so at least about 350,000 pairs a second, and one LP takes at most a seventh of the limit.
LP_PAIRS_PER_SECOND = 50_000
#: Step 7 before the fresh start and the polish of each level (see the loop).
EARLY_LP = True
#: Pairs per worker (the cheapest in the flow's reduced costs) of the repair's first attempt
#: (0: every kept pair at once).
REPAIR_PAIRS = 12
#: Kept pairs above which the repair tries the few pairs first. Below, its flows are cheap and
#: the start over every pair is better (on 600 x 150 runs the few pairs' start had more moves or
#: a worse tier 1 in half the seeds, which cost proofs under short time limits).
REPAIR_FEW_ABOVE = 150_000
#: Most deterministic work for the probe at the LP bound (0: no probe).
PROBE_WORK = 0.5
#: Most pairs of the probe's model (a larger one is not tried: on 1,500 x 300 it has 2,000-6,500).
PROBE_PAIRS = 20_000
#: Most pairs of step 6's relaxation for it to run right after a probe that found nothing (a
#: larger one waits for the polish's better allocation, whose fixing shrinks it; measured on
#: 1,500 x 300: 1,100-2,700 pairs after the polish, 99,000 before it on one tier).
EARLY_RELAX_PAIRS = 10_000



@dataclass
class LevelFlow:
    """Step 1 and 2 for one level: the bound, the flow's allocation and the reduced costs."""

    bound: int | None  # None: the flow rejected the cost range (no bound, nothing fixed)
    assignment: np.ndarray | None  # (M,)
    reduced: np.ndarray | None  # (P,) reduced cost of each pair (inf: not kept); None: no certificate


@dataclass
class RulesStats:
    """What the solve did, for the log and for tests."""

    kept: list[int] = field(default_factory=list)  # pairs kept when each level's CP-SAT model was built
    cpsat_levels: list[str] = field(default_factory=list)


def _pair_costs(costs: IntegerCosts, keep: np.ndarray, coefficients: np.ndarray) -> IntegerCosts:
    """The flow's integer costs for ``coefficients`` over the kept pairs, no tie-break."""
    return replace(costs, workers=costs.workers[keep], lines=costs.lines[keep],
                   base=np.asarray(coefficients, dtype=np.int64)[keep],
                   tie=np.zeros(int(keep.sum()), dtype=np.int64), tie_factor=1)


def level_flow(problem: ProblemData, costs: IntegerCosts, keep: np.ndarray, coefficients: np.ndarray,
               *, certificate: bool = True) -> LevelFlow | None:
    """The flow bound of one level over the kept pairs, with reduced costs (``None``: infeasible).

    The reduced costs come from :class:`allocator.explain.Certificate` (its potentials); when
    it declines (numbers too large for exact float64 distances) there are none, and nothing is
    fixed: exact, only slower. When the flow rejects the cost range, the bound is ``None`` too.
    """
    from allocator.explain import Certificate
    from allocator.solvers.flow import CostRangeError, solve_flow

    level_costs = _pair_costs(costs, keep, coefficients)
    try:
        flow = solve_flow(problem, level_costs)
    except CostRangeError:
        return LevelFlow(None, None, None)
    if flow.status is Status.INFEASIBLE:
        return None
    cert = Certificate.from_integer_costs(problem, flow.assignment, level_costs, 0.0) if certificate else None
    reduced = None
    if cert is not None:
        a, pi = flow.assignment, cert.potentials
        n = problem.n_lines
        ws, ls = costs.workers, costs.lines
        rc = cert.rel[ws, ls] + pi[a[ws]] - pi[ls]
        rc[ls == a[ws]] = 0.0  # the certificate marks staying put as inf (not a move)
        reduced = np.where(keep, rc, np.inf)
        assert n == pi.size - 1
    return LevelFlow(int(flow.base_total), flow.assignment, reduced)


def link_excess(problem: ProblemData, costs: IntegerCosts, keep: np.ndarray, reduced: np.ndarray) -> tuple[np.ndarray, float]:
    """Step 2b: what the links add to the reduced-cost bound; ``(excess per pair, delta)``.

    Every allocation ``x`` of the relaxation has ``cost(x) - LB >= sum_t rc(t, x(t))`` (step 2:
    the terms of the other arcs are ``>= 0``, and ``rc`` is 0 on the flow's own pairs). If ``x``
    meets link ``l``, its workers sit on one site ``K``, so their terms sum to at least
    ``c_l(K) = sum_{t in l} min_{q on K} rc(t, q)``, hence to at least
    ``delta_l = min_K c_l(K)``. Links have disjoint workers, so
    ``cost(x) - LB >= delta = sum_l delta_l``: ``LB + delta`` is a lower bound too. And if ``x``
    uses the pair ``(s, p)``: for ``s`` in no link, ``cost(x) - LB >= rc(s, p) + delta``; for
    ``s`` in link ``l``, ``cost(x) - LB >= rc(s, p) + sum_{t in l, t != s} min_{q on site(p)}
    rc(t, q) + delta - delta_l``. That is the pair's *excess*; a pair whose excess is above the
    gap is in no allocation of interest (step 4 with the excess instead of ``rc``). Minima over
    the kept pairs stay valid lower bounds when ``keep`` shrinks later.
    """
    excess = reduced.copy()
    if not problem.links:
        return excess, 0.0
    ws, ls = costs.workers, costs.lines
    m, n = problem.n_workers, problem.n_lines
    pair_starts = _starts(costs, m)
    dense = np.full((m, n), np.inf)
    dense[ws[keep], ls[keep]] = reduced[keep]
    order = np.argsort(problem.site, kind="stable")
    site_sorted = problem.site[order]
    starts = np.flatnonzero(np.r_[True, site_sorted[1:] != site_sorted[:-1]])
    sites = site_sorted[starts]
    column = np.full(int(problem.site.max()) + 1, -1)
    column[sites] = np.arange(sites.size)
    per_link: list[tuple[np.ndarray, np.ndarray, float]] = []
    delta = 0.0
    for link in problem.links:
        mins = np.minimum.reduceat(dense[link.workers][:, order], starts, axis=1)  # (|l|, sites)
        total = mins.sum(axis=0)
        d = float(total.min())
        if not np.isfinite(d):
            d = 0.0  # no site can hold the link within the kept pairs: CP-SAT will say so
        per_link.append((mins, total, d))
        delta += d
    excess += delta
    for link, (mins, total, d) in zip(problem.links, per_link, strict=True):
        for i, s in enumerate(link.workers.tolist()):
            mine = np.arange(costs.workers.size)[_rows(pair_starts, s)]
            col = column[problem.site[ls[mine]]]
            with np.errstate(invalid="ignore"):
                others = total[col] - mins[i, col]
            # A site where another worker of the link has no kept pair cannot hold the link.
            others = np.where(np.isfinite(total[col]), others, np.inf)
            excess[mine] = reduced[mine] + others + (delta - d)
    return excess, delta


def quota_excess(problem: ProblemData, costs: IntegerCosts, keep: np.ndarray, reduced: np.ndarray,
                 assignment: np.ndarray) -> tuple[np.ndarray, float]:
    """Step 2c: what one broken quota adds to the bound; ``(extra per pair, kappa)``.

    If the flow's allocation ``a`` has ``e`` workers too many on a quota's lines (counted ones),
    every allocation meeting the quota moves at least ``e`` of them off those lines (whoever
    stays still counts); each such *leaver* ``t`` adds at least ``l_t = min_{q off the lines}
    rc(t, q)`` to ``sum_t rc(t, x(t))``. Short of a minimum by ``e``: at least ``e`` counted
    workers off the lines in ``a`` move onto them, each at least ``min_{q on the lines} rc``.
    So the workers' terms sum to at least ``kappa`` = the sum of the ``e`` smallest ``l_t``. A
    linked worker's term is already in the links' ``delta`` (step 2b): theirs count as 0 here,
    so the two add up. Quotas may share workers: only the largest ``kappa`` is added. For a pair
    ``(s, p)`` of an unlinked candidate ``s`` the others must still supply ``e - 1`` movers: its
    extra is the sum of the ``e - 1`` smallest (a lower bound on the others' share either way).
    """
    ws, ls = costs.workers, costs.lines
    m, n = problem.n_workers, problem.n_lines
    extra = np.zeros(ws.size)
    best_kappa = 0.0
    if not problem.quotas:
        return extra, 0.0
    from allocator.stability import linked_mask

    linked = linked_mask(problem)
    dense = np.full((m, n), np.inf)
    dense[ws[keep], ls[keep]] = reduced[keep]
    for q in problem.quotas:
        on = np.zeros(n, dtype=bool)
        on[q.lines] = True
        inside = on[assignment] & q.counts
        count = int(inside.sum())
        if q.max_workers is not None and count > q.max_workers:
            e, cand, target = count - q.max_workers, inside, ~on
        elif count < q.min_workers:
            e, cand, target = q.min_workers - count, q.counts & ~on[assignment], on
        else:
            continue
        values = np.where(target[None, :], dense, np.inf).min(axis=1)
        values = np.where(linked, 0.0, values)[cand]
        values = np.sort(values)
        if values.size < e:
            continue  # not enough movers within the kept pairs: CP-SAT will find it infeasible
        kappa = float(values[:e].sum())
        kappa_minus = float(values[: e - 1].sum())
        if not np.isfinite(kappa):
            continue
        mine = np.where(cand[ws] & ~linked[ws], kappa_minus, kappa)
        extra = np.maximum(extra, mine)
        best_kappa = max(best_kappa, kappa)
    return extra, best_kappa


def level_value(level: Level, costs: IntegerCosts, assignment: np.ndarray, index: np.ndarray) -> int:
    """Level value of an allocation (``index[s, p]`` = pair number)."""
    ks = index[np.arange(assignment.size), assignment]
    return int(level.coefficients[ks].sum())


def _starts(costs: IntegerCosts, m: int) -> np.ndarray:
    """Where each worker's pairs start: pairs are row-major (by worker), so each is one slice."""
    return np.searchsorted(costs.workers, np.arange(m + 1))


def _rows(starts: np.ndarray, s: int) -> slice:
    """Worker ``s``'s pair numbers (``starts`` from :func:`_starts`)."""
    return slice(int(starts[s]), int(starts[s + 1]))


def _members(starts: np.ndarray, workers: np.ndarray) -> np.ndarray:
    """(P,) bool: the pairs of ``workers`` (one slice each; no scan of every pair per worker)."""
    out = np.zeros(int(starts[-1]), dtype=bool)
    for s in np.asarray(workers).tolist():
        out[_rows(starts, s)] = True
    return out


def _cheapest_on_site(starts: np.ndarray, keep: np.ndarray, site: np.ndarray, rc: np.ndarray,
                      workers: np.ndarray, k: int) -> float:
    """Sum over ``workers`` of each one's cheapest kept pair on site ``k`` in ``rc`` (inf: none)."""
    total = 0.0
    for t in np.asarray(workers).tolist():
        r = _rows(starts, t)
        mine = keep[r] & (site[r] == k)
        total += float(rc[r][mine].min()) if mine.any() else np.inf
    return total


def link_reach(problem: ProblemData, costs: IntegerCosts, keep: np.ndarray) -> np.ndarray:
    """``keep`` less the pairs of linked workers on sites that not all of the link can reach."""
    keep = keep.copy()
    site = problem.site[costs.lines]
    starts = _starts(costs, problem.n_workers)
    for link in problem.links:
        common = None
        for s in link.workers.tolist():
            r = _rows(starts, s)
            reach = set(site[r][keep[r]].tolist())
            common = reach if common is None else common & reach
        members = _members(starts, link.workers)
        keep &= ~members | np.isin(site, sorted(common or ()))
    return keep


def repair(problem: ProblemData, costs: IntegerCosts, keep: np.ndarray, weights: np.ndarray,
           flow: LevelFlow, anchor: np.ndarray | None = None) -> np.ndarray | None:
    """A start that meets the links and quotas, near ``flow`` (the flow optimum of ``weights``):
    :func:`_repair` over a few pairs per worker near the flow's optimum first (its flows are
    then several times smaller), over every kept pair when that finds none."""
    if REPAIR_PAIRS and int(keep.sum()) > REPAIR_FEW_ABOVE and flow.reduced is not None \
            and flow.assignment is not None:
        near = few_pairs(problem, costs, keep, flow.reduced, per_worker=REPAIR_PAIRS)
        near |= keep & (costs.lines == flow.assignment[costs.workers])
        if anchor is not None:
            near |= keep & (costs.lines == anchor[costs.workers])
        if int(near.sum()) < int(keep.sum()):
            found = _repair(problem, costs, near, weights, flow, anchor)
            if found is not None:
                return found
    return _repair(problem, costs, keep, weights, flow, anchor)


def _repair(problem: ProblemData, costs: IntegerCosts, keep: np.ndarray, weights: np.ndarray,
            flow: LevelFlow, anchor: np.ndarray | None = None) -> np.ndarray | None:
    """A start that meets the links and quotas, near ``flow`` (the flow optimum of ``weights``).

    A heuristic (only the exactness of the steps around it matters): put each link on the
    site where its workers' cheapest kept pairs cost least in reduced costs (a link already on
    one site stays there); solve again with the link workers held to their sites; then, while a
    quota is broken, price it: its counted workers' pairs on the quota's lines get cheaper (a
    minimum) or dearer (a maximum) by a penalty, first the reduced cost of the ``e``-th
    cheapest move that mends it (``e`` workers short or over), then doubled each round.
    """
    a = flow.assignment
    ws, ls = costs.workers, costs.lines
    site = problem.site[ls]
    starts = _starts(costs, problem.n_workers)
    keep = keep.copy()
    off_site = np.zeros(ws.size, dtype=bool)
    rc = flow.reduced if flow.reduced is not None else np.where(keep, weights, np.inf).astype(np.float64)
    for link in problem.links:
        members = _members(starts, link.workers)
        here = np.unique(problem.site[a[link.workers]])
        if anchor is not None:
            chosen = int(problem.site[anchor[link.workers[0]]])  # an allocation that meets the rules
        elif here.size == 1:
            chosen = int(here[0])
        else:
            best, chosen = np.inf, -1
            for k in np.unique(site[members & keep]).tolist():
                total = _cheapest_on_site(starts, keep, site, rc, link.workers, k)
                if total < best:
                    best, chosen = total, k
            if chosen < 0:
                return None
        # Off the chosen site costs dearly rather than not at all: with places scarce, a hard
        # restriction often leaves no allocation.
        off_site |= members & (site != chosen)
    link_penalty = np.where(off_site, np.int64(max(1, int(weights.max(initial=0)))) * 4, 0).astype(np.int64)
    weights = weights + link_penalty
    penalties = np.zeros(ws.size, dtype=np.int64)
    lam = {q.id: 0 for q in problem.quotas}
    current = level_flow(problem, costs, keep, weights) if problem.links else flow
    for _ in range(QUOTA_ROUNDS):
        if current is None or current.assignment is None:
            return None
        a = current.assignment
        if meets_rules(problem, a):
            return a
        rc = current.reduced if current.reduced is not None else rc
        for link in problem.links:
            here = np.unique(problem.site[a[link.workers]])
            if here.size > 1:
                # Still split despite the penalty: hold the link to the site one of its
                # workers is on now (the anchor's, when there is one), the one where moving
                # the others costs least.
                members = _members(starts, link.workers)
                if anchor is not None:
                    target = int(problem.site[anchor[link.workers[0]]])
                else:
                    totals = [_cheapest_on_site(starts, keep, site, rc, link.workers, k) for k in here.tolist()]
                    target = int(here[int(np.argmin(totals))])
                keep = keep & (~members | (site == target))
        penalties[:] = 0
        for q in problem.quotas:
            on = np.zeros(problem.n_lines, dtype=bool)
            on[q.lines] = True
            counted = q.counts[ws]
            inside = on[a] & q.counts
            count = int(inside.sum())
            short = q.min_workers - count
            over = count - q.max_workers if q.max_workers is not None else 0
            if short > 0 or over > 0:
                if lam[q.id]:
                    lam[q.id] *= 2
                else:
                    # The cheapest moves across the quota's border, in reduced costs.
                    movers = ~inside[ws] if short > 0 else inside[ws]
                    cross = keep & counted & movers & (on[ls] if short > 0 else ~on[ls])
                    per = np.full(problem.n_workers, np.inf)
                    np.minimum.at(per, ws[cross], rc[cross])
                    per = np.sort(per[np.isfinite(per)])
                    e = max(short, over)
                    # Four times the price of the e-th cheapest mending move: at 1x a quota
                    # took about four flows to mend on 1,500 x 300 (each doubling the price),
                    # at 4x two; a start that overshoots a little costs the exact steps nothing.
                    lam[q.id] = 4 * (int(per[min(e, per.size) - 1]) + 1) if per.size else 1
            if lam[q.id] and q.min_workers > 0:
                # Cheaper on the quota's lines = dearer everywhere else (costs stay >= 0).
                penalties += np.where(counted & ~on[ls], lam[q.id], 0)
            if lam[q.id] and q.max_workers is not None:
                penalties += np.where(counted & on[ls], lam[q.id], 0)
        current = level_flow(problem, costs, keep, weights + penalties, certificate=False)
    return None


def few_pairs(problem: ProblemData, costs: IntegerCosts, keep: np.ndarray, reduced: np.ndarray,
              per_worker: int = 4) -> np.ndarray:
    """(P,) bool: a few kept pairs per worker, for the narrow models of step 6 (a heuristic).

    Each worker's ``per_worker`` cheapest kept pairs in ``reduced``; for a linked worker also the
    cheapest on each site; for a worker a quota counts also the cheapest on and off its lines.
    """
    ws, ls = costs.workers, costs.lines
    m, n = problem.n_workers, problem.n_lines
    dense = np.full((m, n), np.inf)
    dense[ws[keep], ls[keep]] = reduced[keep]
    pick = np.zeros((m, n), dtype=bool)
    order = np.argsort(dense, axis=1, kind="stable")[:, :per_worker]
    rows = np.arange(m)[:, None]
    pick[rows, order] = np.isfinite(dense[rows, order])

    def cheapest(workers: np.ndarray, lines_mask: np.ndarray) -> None:
        sub = np.where(lines_mask[None, :], dense[workers], np.inf)
        best = sub.argmin(axis=1)
        ok = np.isfinite(sub[np.arange(workers.size), best])
        pick[workers[ok], best[ok]] = True

    for link in problem.links:
        for k in np.unique(problem.site).tolist():
            cheapest(link.workers, problem.site == k)
    for q in problem.quotas:
        on = np.zeros(n, dtype=bool)
        on[q.lines] = True
        counted = np.flatnonzero(q.counts)
        cheapest(counted, on)
        cheapest(counted, ~on)
    return pick[ws, ls] & keep


def _lex_weights(todo: list[Level], n_lines: int) -> np.ndarray:
    """One cost per pair that puts the earlier levels first (for the repair only: a heuristic).

    Each level scaled to ``[0, 2^b]`` and weighted ``2^b`` times the next, with ``b`` such that
    the total stays small enough for the certificate's exact float64 distances (its reduced
    costs guide the repair): below ``2^52 / (2 (N + 2)^2)``.
    """
    room = int(np.floor(np.log2(2.0**52 / (2.0 * (n_lines + 2) ** 2)))) - 2
    bits = max(4, room // max(1, len(todo)))
    total = np.zeros(todo[0].coefficients.size, dtype=np.int64)
    for level in todo:
        span = float(level.coefficients.max(initial=0))
        scaled = np.rint(level.coefficients * (float(1 << bits) / span)).astype(np.int64) if span > 0 else level.coefficients
        total = total * np.int64(1 << bits) + scaled
    return total


def _start(problem: ProblemData, costs: IntegerCosts, keep: np.ndarray, todo: list[Level],
           anchor: np.ndarray | None = None, narrow: bool = True):
    """Step 3: the repaired flow optimum of ``todo`` (lexicographic weights) over the kept pairs,
    and the few pairs per worker of step 6. Returns ``(start or None, few or None, infeasible)``."""
    weights = _lex_weights(todo, problem.n_lines)
    first = level_flow(problem, costs, keep, weights)
    if first is None:
        return None, None, True
    if first.assignment is None:
        return None, None, False
    start = repair(problem, costs, keep, weights, first, anchor)
    rc = first.reduced if first.reduced is not None else weights.astype(float)
    few = [few_pairs(problem, costs, keep, rc, per_worker=w) for w in NARROW_PAIRS] if narrow else None
    return start, few, False


def _extend(problem: ProblemData, costs: IntegerCosts, keep: np.ndarray, todo: list[Level],
            partial: np.ndarray, active: np.ndarray) -> np.ndarray | None:
    """The repair of step 3 with the ``active`` workers held to ``partial`` (``None``: none found).

    A heuristic: its answer is checked by the caller (rules met by construction of the repair,
    solved levels compared).
    """
    ws, ls = costs.workers, costs.lines
    held = keep & (~active[ws] | (ls == partial[ws]))
    held = link_reach(problem, costs, held)
    start, _few, _infeasible = _start(problem, costs, held, todo, narrow=False)
    return start


def _build(problem: ProblemData, costs: IntegerCosts, keep: np.ndarray, todo: list[Level], values: list[int],
           active: np.ndarray | None = None):
    """The CP-SAT model over the kept pairs, with the solved levels fixed at their optimum.

    With ``active`` (an (M,) bool mask) it is the *relaxation* of step 6: only the active
    workers, their places, the maximum of each quota (counting them only), the links among
    them, their pins; no must-be-filled lines, no quota minimum.
    """
    m, n = problem.n_workers, problem.n_lines
    mask = np.zeros((m, n), dtype=bool)
    mask[costs.workers[keep], costs.lines[keep]] = True
    if active is not None:
        mask[~active] = False
    model = cp_model.CpModel()
    v = make_variables(model, mask)
    if active is None:
        cons.one_line_per_worker(model, v, problem)
        cons.capacity(model, v, problem)
        cons.mandatory_fill(model, v, problem)
        cons.pins(model, v, problem)
        cons.links(model, v, problem)
        cons.quotas(model, v, problem)
    else:
        for s in np.flatnonzero(active).tolist():
            model.add_exactly_one([v.x[k] for k in v.of_worker(s).tolist()])
        cons.capacity(model, v, problem)
        cons.links(model, v, problem, members=active)
        for q in problem.quotas:
            if q.max_workers is None:
                continue
            on = np.zeros(n, dtype=bool)
            on[q.lines] = True
            ks = np.flatnonzero(on[v.lines] & q.counts[v.workers])
            if ks.size > q.max_workers:
                model.add(cp_model.LinearExpr.sum([v.x[k] for k in ks.tolist()]) <= q.max_workers)
    # Pair numbers of the model within the allowed pairs (both row-major).
    full = np.full((m, n), -1, dtype=np.int64)
    full[costs.workers, costs.lines] = np.arange(costs.workers.size)
    ks = full[v.workers, v.lines]
    for level, value in zip(todo, values, strict=False):
        model.add(weighted(v, level.coefficients[ks]) == value)
    return model, v, ks


@dataclass
class LevelSolve:
    """One CP-SAT solve of a level: status code, value, bound, allocation (or None), work."""

    code: int
    value: int | None
    bound: float
    assignment: np.ndarray | None
    work: float
    pairs: int


def _solve_level(problem: ProblemData, costs: IntegerCosts, keep: np.ndarray, todo: list[Level], values: list[int],
                 k: int, lower: int | None, hint: np.ndarray | None, options: SolveOptions, work: float,
                 deadline: float, active: np.ndarray | None = None) -> LevelSolve:
    """Minimise level ``k`` with CP-SAT over the kept pairs (one worker, ``work`` units)."""
    model, v, ks = _build(problem, costs, keep, todo, values[:k], active)
    expr = weighted(v, todo[k].coefficients[ks])
    if lower is not None:
        model.add(expr >= lower)
    model.minimize(expr)
    if hint is not None:
        chosen = hint[v.workers] == v.lines
        for x, on in zip(v.x, chosen.tolist(), strict=True):
            model.add_hint(x, on)
    code, solver = run_cpsat(model, options, max(0.0, deadline - time.perf_counter()), problem.settings.rng_seed,
                             workers=1, deterministic_time=work, **CPSAT_PARAMS)
    found = code in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    assignment = v.assignment(np.asarray(list(solver.response_proto.solution), dtype=np.int64)) if found else None
    value = int(round(solver.objective_value)) if found else None
    return LevelSolve(code, value, solver.best_objective_bound, assignment, solver.deterministic_time, len(v.x))


def _multiplier(todo: list[Level], k: int, n_lines: int) -> int:
    """Step 1b's multiplier for the solved levels: as large as the certificate's exact range allows.

    For ``x`` in ``F_k`` every solved level ``j`` equals ``v_j``, so ``level_k(x) = level_k(x) +
    mu * sum_j (level_j(x) - v_j)``: the flow for ``level_k + mu * sum_j level_j`` over the
    relaxation, less ``mu * sum_j v_j``, is a lower bound on level ``k`` over ``F_k`` for any
    ``mu``, and its reduced costs fix pairs exactly as in step 4 (the same decomposition). A
    large ``mu`` keeps the relaxation near the solved levels' optimal faces (lexicographic in
    the limit), which the pairs alone do not describe (full lines, for instance).
    """
    if k == 0:
        return 0
    limit = 2.0**52 / (2.0 * (n_lines + 2) ** 2) / 4.0
    own = float(np.abs(todo[k].coefficients).max(initial=0))
    solved = float(np.abs(sum(todo[j].coefficients for j in range(k))).max(initial=0))
    if solved <= 0 or own >= limit:
        return 0
    return int(min(2**20, (limit - own) // solved))


def _active(todo: list[Level], k: int, m: int) -> np.ndarray:
    """(M,) bool: the workers of the levels up to ``k``."""
    out = np.zeros(m, dtype=bool)
    for level in todo[: k + 1]:
        out |= level.workers
    return out


def _relaxed_workers(problem: ProblemData, active: np.ndarray) -> np.ndarray:
    """(M,) bool: the workers of step 6's relaxation: ``active``, the pinned workers and every
    worker of a link with an active worker (any set of workers that holds ``active`` gives a
    relaxation; these make it tighter at the cost of a few pairs)."""
    out = active | (problem.pin >= 0)
    for link in problem.links:
        if active[link.workers].any():
            out[link.workers] = True
    return out


def solve_rules(problem: ProblemData, options: SolveOptions, *, fixing: bool = True,
                stats: RulesStats | None = None,
                on_fix: Callable[[np.ndarray], None] | None = None) -> SolveOutcome:
    """Solve a run with links, quotas, tiers or fewest moves (stability off) exactly.

    ``fixing=False`` switches steps 1-4 and 6 off (CP-SAT on every allowed pair, level by
    level): tests compare the two. ``on_fix`` (for tests) receives, at each fixing, the (M, N)
    mask of the pairs it removed.
    """
    started = time.perf_counter()
    deadline = started + float(options.time_limit)
    stats = stats if stats is not None else RulesStats()
    log: list[str] = []
    options.callbacks.on_phase("business rules")
    m = problem.n_workers
    pairs = allowed_pairs(problem)
    costs = integer_costs(problem, budget=cpsat_budget(max(1, m)), max_tie_range=1, pairs=pairs)
    log.append(costs.describe())
    todo = levels(problem, costs.workers, costs.lines, costs.base)
    index = np.full((m, problem.n_lines), -1, dtype=np.int64)
    index[costs.workers, costs.lines] = np.arange(costs.workers.size)
    keep = problem.capacity[costs.lines] > 0
    keep = link_reach(problem, costs, keep)

    def fix(allowed_now: np.ndarray) -> None:
        nonlocal keep
        if on_fix is not None:
            gone = keep & ~allowed_now
            if gone.any():
                dense = np.zeros((m, problem.n_lines), dtype=bool)
                dense[costs.workers[gone], costs.lines[gone]] = True
                on_fix(dense)
        keep = keep & allowed_now

    start: np.ndarray | None = None
    wider: list[np.ndarray] = []
    if fixing:
        start, wider, infeasible = _start(problem, costs, keep, todo)
        wider = wider or []
        if infeasible:
            log.append("no allocation keeps the places, fills and pins")
            return SolveOutcome(Status.INFEASIBLE, None, None, None, time.perf_counter() - started, BACKEND, log)
        log.append("start (flow repair): " + ("an allocation meeting every link and quota" if start is not None
                                               else "none found"))
        if start is not None:
            log.append("start levels: " + ", ".join(str(level_value(lv, costs, start, index)) for lv in todo))
    few = wider[0] if wider else None

    total_work = DETERMINISTIC_PER_SECOND * float(options.time_limit)
    used = 0.0
    values: list[int] = []
    best: np.ndarray | None = start
    gap_bound: float | None = None  # a bound on the objective when a single level stops early
    status = Status.OPTIMAL
    for k, level in enumerate(todo):
        if options.stop.is_set() or time.perf_counter() >= deadline:
            status = Status.FEASIBLE if best is not None and values else Status.NO_SOLUTION
            log.append(f"{level.name}: stopped before it was solved")
            break
        lp: LPBound | None = None
        lp_tried_on: int | None = None  # the kept pairs when the LP was last tried
        relaxed_early = False  # step 6's relaxation already run at this level (after the probe)
        early_lower: int | None = None  # its lower bound
        if fixing and best is not None and EARLY_LP:
            # Step 7 first: the LP over the current allocation's pairs and a few per worker,
            # priced out to every kept pair. Its solution is often a whole allocation of F_k
            # that reaches its bound: the level is then proven without the fresh start, the
            # polish and the models of steps 5 and 6 (they only matter when it is not).
            upper = level_value(level, costs, best, index)
            lp_tried_on = int(keep.sum())
            lp, proven = _lp_step(problem, costs, keep, todo, values, k, upper, options, deadline, log,
                                  _columns(costs, index, best, few, m))
            if lp is not None:
                best, upper = _whole_lp_start(problem, costs, todo, values, k, lp, best, upper, index, log)
                if not proven and upper > lp.bound and PROBE_WORK > 0:
                    probe = _probe(problem, costs, keep, todo, values, k, lp, best, few, index, options,
                                   min(PROBE_WORK, (total_work - used) / (2 * (len(todo) - k))), deadline)
                    used += probe.work
                    log.append(f"{level.name}: probe at the LP bound over {probe.pairs:,} pairs: "
                               + (f"{_status_name(probe.code)}, {probe.value}" if probe.pairs <= PROBE_PAIRS
                                  else f"not tried (more than {PROBE_PAIRS:,})"))
                    if probe.assignment is not None and probe.value < upper:
                        best, upper = probe.assignment, probe.value
                    active = _active(todo, k, m)
                    if upper > lp.bound and few is not None and not active.all():
                        fix(~lp.removable(keep, upper, costs.workers))
                    if upper > lp.bound and few is not None and not active.all() and time.perf_counter() < deadline \
                            and \
                            int((keep & _relaxed_workers(problem, active)[costs.workers]).sum()) <= EARLY_RELAX_PAIRS:
                        # Step 6's relaxation and completion next, when the relaxation is small
                        # (before the fresh start and the polish): its lower bound often meets
                        # the completion's allocation.
                        relax = _relax_and_complete(problem, costs, keep, todo, values, k, lp.bound, best, upper,
                                                    active, index, options,
                                                    max(0.0, (total_work - used) / (3 * (len(todo) - k))),
                                                    deadline, stats, log)
                        used += relax.work
                        relaxed_early = relax.optimal  # else step 6 tries again on fewer pairs
                        best, upper, early_lower = relax.best, relax.upper, relax.lower
                        if relax.lower is not None and relax.lower >= upper:
                            fix(~lp.removable(keep, upper, costs.workers))
                            values.append(upper)
                            log.append(_lp_line(level.name, lp, upper, keep))
                            log.append(f"{level.name}: {upper} (an allocation reaches the relaxation's bound: "
                                       "proven)")
                            continue
                if proven or upper <= lp.bound:
                    fix(~lp.removable(keep, upper, costs.workers))
                    values.append(upper)
                    log.append(_lp_line(level.name, lp, upper, keep))
                    log.append(f"{level.name}: {upper} (an allocation reaches the LP bound: proven)")
                    continue
        mu = _multiplier(todo, k, problem.n_lines) if fixing else 0
        coefficients = level.coefficients
        if mu:
            coefficients = coefficients + np.int64(mu) * sum(todo[j].coefficients for j in range(k))
        flow = level_flow(problem, costs, keep, coefficients) if fixing else None
        if fixing and flow is None:
            log.append(f"{level.name}: no allocation keeps the places, fills and pins")
            return SolveOutcome(Status.INFEASIBLE, None, None, None, time.perf_counter() - started, BACKEND, log)
        if flow is not None and flow.bound is None:
            flow = None  # the flow rejected the cost range: no bound and no fixing for this level
        if flow is not None and mu:
            # Step 1b: the solved levels enter with a multiplier (an equality in F_k, so any
            # multiplier gives a valid bound once its constant is taken off).
            flow = LevelFlow(flow.bound - mu * sum(values), flow.assignment, flow.reduced)
        if fixing and k > 0 and best is not None:
            # A fresh start for the levels left, from the flow over what is kept now (after
            # the fixing of the levels before, close to their optimal faces): used when it
            # meets the rules, reaches every solved level's optimum and beats the current one.
            fresh = _start(problem, costs, keep, todo, anchor=best)[0]
            if fresh is not None and all(level_value(todo[j], costs, fresh, index) == values[j] for j in range(k)) \
                    and level_value(level, costs, fresh, index) < level_value(level, costs, best, index):
                log.append(f"{level.name}: a better start from the flow over the kept pairs")
                best = fresh
        if fixing and few is not None and (lp is None or k > 0):
            # Polish (on the first level only without the LP: there the LP's bound and step 6's
            # relaxation and completion proved tier 1 of six 1,500 x 300 runs without it, and
            # it took 1.5 s; on later levels it is what lets two of those six be proven at all,
            # its better allocation fixing enough pairs for step 6): the level over a few pairs per worker (and the current allocation's, or
            # the flow's when the repair found none), the levels before fixed: a better upper
            # bound for the fixing, cheaply - or a first allocation.
            mine = np.zeros(costs.workers.size, dtype=bool)
            base_allocation = best if best is not None else flow.assignment if flow is not None else None
            if base_allocation is not None:
                mine[index[np.arange(m), base_allocation]] = True
            polish = _solve_level(problem, costs, keep & (few | mine), todo, values, k, None, best, options,
                                  min(POLISH_WORK, (total_work - used) / (2 * (len(todo) - k))), deadline)
            used += polish.work
            if polish.assignment is not None and best is None:
                log.append(f"{level.name}: a first allocation over {polish.pairs:,} pairs, {polish.value}")
                best = polish.assignment
            elif polish.assignment is not None and polish.value < level_value(level, costs, best, index):
                log.append(f"{level.name}: polished the start over {polish.pairs:,} pairs to {polish.value}")
                best = polish.assignment
        upper = level_value(level, costs, best, index) if best is not None else None
        excess, delta = (link_excess(problem, costs, keep, flow.reduced)
                         if flow is not None and flow.reduced is not None else (None, 0.0))
        kappa = 0.0
        if excess is not None:
            extra, kappa = quota_excess(problem, costs, keep, flow.reduced, flow.assignment)
            excess = excess + extra
            delta += kappa
        if excess is not None and upper is not None:
            fix(excess <= upper - flow.bound)
        lower = flow.bound + int(np.ceil(delta)) if flow is not None else None
        if early_lower is not None:
            lower = early_lower if lower is None else max(lower, early_lower)
        if flow is not None:
            log.append(f"{level.name}: flow bound {flow.bound} (+{delta - kappa:.0f} for the links, +{kappa:.0f} "
                       f"for a quota), start {upper}, "
                       f"{int(keep.sum()):,} pairs kept")
        if lower is not None and upper is not None and upper == lower:
            values.append(upper)
            log.append(f"{level.name}: {upper} (the start reaches the flow bound: proven, no CP-SAT)")
            continue
        work = max(0.0, (total_work - used) / (len(todo) - k))
        active = _active(todo, k, m)
        solved: LevelSolve | None = None
        if fixing and solved is None and upper is not None and (lower is None or lower < upper):
            # Step 7: the LP bound with the links, quotas and solved levels as constraints
            # (lp_bound), where the flow's is weak; its reduced costs fix pairs exactly. The
            # LP computed before the polish is reused (its bound and duals do not depend on
            # the allocation; only the fixing does, and it is redone with the better one).
            proven = lp is not None and lp.bound >= upper
            if lp is None and (lp_tried_on is None or int(keep.sum()) < lp_tried_on):
                # Not tried yet, or tried before the fixing since removed pairs (the pair cap may
                # now let it run): the same LP over the same pairs is not solved twice.
                lp, proven = _lp_step(problem, costs, keep, todo, values, k, upper, options, deadline, log,
                                      _columns(costs, index, best, few, m))
                if lp is not None:
                    best, upper = _whole_lp_start(problem, costs, todo, values, k, lp, best, upper, index, log)
            if lp is not None:
                lower = lp.bound if lower is None else max(lower, lp.bound)
                fix(~lp.removable(keep, upper, costs.workers))
                log.append(_lp_line(level.name, lp, upper, keep))
                if proven or upper <= lower:
                    solved = LevelSolve(cp_model.OPTIMAL, upper, float(upper), best, 0.0, 0)
        if solved is None and fixing and few is not None and best is not None and not active.all():
            # Step 6: the level's value is sandwiched between two small models. The relaxation
            # without the workers of later levels bounds it from below; the narrow model (those
            # workers on a few pairs each) finds allocations of F_k. Equal: proven.
            if not relaxed_early:
                relax = _relax_and_complete(problem, costs, keep, todo, values, k, lower, best, upper, active,
                                            index, options, work / 3, deadline, stats, log)
                used += relax.work
                lower, best, upper = relax.lower, relax.best, relax.upper
                if relax.completed:
                    if excess is not None:
                        fix(excess <= upper - flow.bound)
                    if lp is not None:
                        fix(~lp.removable(keep, upper, costs.workers))
            for near in wider:
                # Narrow models, the later levels' workers on a few pairs, then on more.
                if lower is None or upper is None or upper <= lower:
                    break
                mine = np.zeros(costs.workers.size, dtype=bool)
                mine[index[np.arange(m), best]] = True
                narrow = keep & (active[costs.workers] | near | mine)
                upper_solve = _solve_level(problem, costs, narrow, todo, values, k, lower, best, options,
                                           work / 3, deadline)
                used += upper_solve.work
                stats.kept.append(upper_solve.pairs)
                stats.cpsat_levels.append(f"{level.name} (narrow)")
                log.append(f"{level.name}: narrow model ({upper_solve.pairs:,} pairs): "
                           f"{_status_name(upper_solve.code)}, {upper_solve.value}")
                if upper_solve.assignment is not None and upper_solve.value < upper:
                    best, upper = upper_solve.assignment, upper_solve.value
                    if excess is not None:
                        fix(excess <= upper - flow.bound)
                    if lp is not None:
                        fix(~lp.removable(keep, upper, costs.workers))
            if lower is not None and upper is not None and upper == lower:
                solved = LevelSolve(cp_model.OPTIMAL, upper, float(upper), best, 0.0, 0)
        if solved is None and int(keep.sum()) > MAX_PAIRS_PER_SECOND * float(options.time_limit) \
                and best is not None:
            # Decided by the time limit, not the clock (so deterministic): too many pairs left to
            # build and search the model in the time given. The best allocation so far stands.
            status = Status.FEASIBLE
            log.append(f"not proven optimal at {level.name}: {int(keep.sum()):,} pairs left, too many for a "
                       f"{float(options.time_limit):g} s limit; the level is {upper} against a bound of {lower}")
            if len(todo) == 1 and lower is not None:
                gap_bound = min(costs.unscaled(lower - 0.5 * m), problem.objective(best))
            break
        if solved is None:
            work = max(0.0, (total_work - used) / (len(todo) - k))
            solved = _solve_level(problem, costs, keep, todo, values, k, lower, best, options, work, deadline)
            used += solved.work
            stats.kept.append(solved.pairs)
            stats.cpsat_levels.append(level.name)
        if solved.pairs:
            log.append(f"{level.name}: {_status_name(solved.code)} over {solved.pairs:,} pairs "
                       f"({solved.work:.2f} deterministic units, one worker)")
        else:
            log.append(f"{level.name}: {solved.value} (an allocation reaches the relaxation's bound: proven)")
        if solved.code == cp_model.INFEASIBLE:
            if k == 0:
                return SolveOutcome(Status.INFEASIBLE, None, None, None, time.perf_counter() - started, BACKEND, log)
            raise RuntimeError(f"internal error: level {level.name!r} infeasible after the levels before it")
        if solved.assignment is None:
            status = Status.FEASIBLE if best is not None and (values or meets_rules(problem, best)) else Status.NO_SOLUTION
            if status is Status.FEASIBLE:
                log.append(f"not proven optimal at {level.name}: no better allocation in time than the start")
                bound = max(solved.bound if np.isfinite(solved.bound) else -np.inf,
                            lower if lower is not None else -np.inf)
                if upper is not None and np.isfinite(bound):
                    log.append(f"not proven optimal at {level.name}: {upper} against a bound of {bound:.0f} "
                               f"(gap {100 * (upper - bound) / max(abs(upper), 1):.3g} % in the level's integer units)")
                    if len(todo) == 1:
                        gap_bound = min(costs.unscaled(bound - 0.5 * m), problem.objective(best))
            break
        if best is None or upper is None or solved.value <= upper:
            best = solved.assignment
        if solved.code != cp_model.OPTIMAL:
            status = Status.FEASIBLE
            value = level_value(level, costs, best, index)
            bound = max(solved.bound, lower if lower is not None else -np.inf)
            log.append(f"not proven optimal at {level.name}: {value} against a bound of {bound:.0f} "
                       f"(gap {100 * (value - bound) / max(abs(value), 1):.3g} % in the level's integer units)")
            if len(todo) == 1 and np.isfinite(bound):
                # Half a unit of rounding per worker keeps it rigorous for the unscaled costs.
                gap_bound = min(costs.unscaled(bound - 0.5 * m), problem.objective(best))
            break
        values.append(solved.value)
        if excess is not None:
            fix(excess <= solved.value - flow.bound)
        if lp is not None:
            fix(~lp.removable(keep, solved.value, costs.workers))
    elapsed = time.perf_counter() - started
    if status is Status.NO_SOLUTION or best is None:
        return SolveOutcome(Status.NO_SOLUTION, None, None, None, elapsed, BACKEND, log)
    if status is Status.FEASIBLE:
        log.append("stopped by the work or time limit: the same inputs, seed and time limit give the same "
                   "allocation unless the wall clock stopped it first (a loaded machine)")
    objective = problem.objective(best)
    bound = objective if status is Status.OPTIMAL else gap_bound
    if status is Status.FEASIBLE and bound is not None:
        log.append(f"not proven optimal: objective {objective:.6g}, bound {bound:.6g}, "
                   f"gap {100 * (objective - bound) / max(abs(objective), 1e-12):.3g} %")
    return SolveOutcome(status, best, objective, bound, elapsed, BACKEND, log, levels_proven=len(values))


def _lp_step(problem: ProblemData, costs: IntegerCosts, keep: np.ndarray, todo: list[Level], values: list[int],
             k: int, upper: int, options: SolveOptions, deadline: float,
             log: list[str], columns: np.ndarray | None = None) -> tuple[LPBound | None, bool]:
    """Step 7's LP bound of level ``k`` (:func:`.lp_bound.lp_bound`), or ``None`` with the reason
    in the log. Skipped, deterministically, when the kept pairs are more than
    :data:`LP_PAIRS_PER_SECOND` of the time limit; the clock stays a hard limit on top."""
    name = todo[k].name
    kept = int(keep.sum())
    if kept > LP_PAIRS_PER_SECOND * float(options.time_limit):
        log.append(f"{name}: no LP bound: {kept:,} pairs, too many for a {float(options.time_limit):g} s limit")
        return None, False
    left = deadline - time.perf_counter()
    if left <= 0:
        log.append(f"{name}: no LP bound: no time left")
        return None, False
    solved = [(todo[j].coefficients, values[j]) for j in range(k)]
    lp = lp_bound(problem, costs.workers, costs.lines, keep, solved, todo[k].coefficients, time_limit=left,
                  columns=columns)
    if lp is None:
        log.append(f"{name}: no LP bound (no optimum within the kept pairs and the time left)")
        return None, False
    return lp, lp.bound >= upper


def _whole_lp_start(problem: ProblemData, costs: IntegerCosts, todo: list[Level], values: list[int], k: int,
                    lp: LPBound, best: np.ndarray, upper: int, index: np.ndarray,
                    log: list[str]) -> tuple[np.ndarray, int]:
    """``(best, upper)``, replaced by HiGHS's solution when it is whole, in ``F_k`` (checked in
    integers: constraints 1-4, links, quotas, the solved levels) and better on level ``k``."""
    whole = lp_allocation(lp, costs.workers, costs.lines, problem.n_workers)
    level = todo[k]
    if whole is not None and level_value(level, costs, whole, index) < upper \
            and _in_level_set(problem, costs, todo, values, k, whole, index):
        upper = level_value(level, costs, whole, index)
        log.append(f"{level.name}: the LP's solution is an allocation: {upper}")
        return whole, upper
    return best, upper


@dataclass
class _Relaxed:
    """Step 6's relaxation and completion: the work it took and the bounds and allocation after."""

    work: float
    lower: int | None
    best: np.ndarray | None
    upper: int | None
    completed: bool  # the completion gave a better allocation
    optimal: bool  # the relaxation was solved to optimality


def _relax_and_complete(problem: ProblemData, costs: IntegerCosts, keep: np.ndarray, todo: list[Level],
                        values: list[int], k: int, lower: int | None, best: np.ndarray, upper: int | None,
                        active: np.ndarray, index: np.ndarray, options: SolveOptions, work: float,
                        deadline: float, stats: RulesStats, log: list[str]) -> _Relaxed:
    """Step 6's lower half: the relaxation without the later levels' workers (a lower bound),
    and its allocation completed for the other workers by the repair (an upper bound)."""
    level = todo[k]
    relaxed_set = _relaxed_workers(problem, active)
    relaxed = _solve_level(problem, costs, keep, todo, values, k, lower, best, options, work, deadline,
                           active=relaxed_set)
    stats.kept.append(relaxed.pairs)
    stats.cpsat_levels.append(f"{level.name} (relaxed)")
    if relaxed.code == cp_model.OPTIMAL:
        lower = relaxed.value if lower is None else max(lower, relaxed.value)
    elif relaxed.code == cp_model.FEASIBLE and np.isfinite(relaxed.bound):
        lower = int(np.ceil(relaxed.bound - 1e-6)) if lower is None else max(lower, int(np.ceil(relaxed.bound - 1e-6)))
    log.append(f"{level.name}: relaxation without the later levels' workers ({relaxed.pairs:,} pairs): "
               f"{_status_name(relaxed.code)}, {relaxed.value}; lower bound now {lower}")
    completed = False
    if relaxed.code == cp_model.OPTIMAL and upper is not None and relaxed.value < upper \
            and time.perf_counter() < deadline:  # the clock as the hard limit on top, as for CP-SAT
        # The relaxation's allocation of the active workers, completed by the repair over the
        # others: when it meets every rule it is in F_k (the solved levels checked), with the
        # relaxation's level-k value.
        whole = _extend(problem, costs, keep, todo, relaxed.assignment, relaxed_set)
        if whole is not None and all(level_value(todo[j], costs, whole, index) == values[j] for j in range(k)) \
                and level_value(level, costs, whole, index) < upper:
            best, upper, completed = whole, level_value(level, costs, whole, index), True
            log.append(f"{level.name}: the relaxation's allocation completed for the other workers: {upper}")
    return _Relaxed(relaxed.work, lower, best, upper, completed, relaxed.code == cp_model.OPTIMAL)


def _probe(problem: ProblemData, costs: IntegerCosts, keep: np.ndarray, todo: list[Level], values: list[int],
           k: int, lp: LPBound, best: np.ndarray, few: np.ndarray | None, index: np.ndarray,
           options: SolveOptions, work: float, deadline: float) -> LevelSolve:
    """Level ``k`` over the kept pairs an allocation reaching the LP bound may use (the pairs
    whose reduced cost is below one unit of the level): reaching the bound proves the level.
    Not tried (UNKNOWN, no work) above :data:`PROBE_PAIRS` pairs."""
    m = problem.n_workers
    if time.perf_counter() >= deadline:
        return LevelSolve(cp_model.UNKNOWN, None, -np.inf, None, 0.0, 0)
    near = keep & ~lp.removable(keep, lp.bound, costs.workers)
    active = _active(todo, k, m)
    others = _columns(costs, index, best, few, m) | (lp.x > 1e-6)
    near &= active[costs.workers] | others
    if int(near.sum()) > PROBE_PAIRS:
        return LevelSolve(cp_model.UNKNOWN, None, -np.inf, None, 0.0, int(near.sum()))
    # No hint: the current allocation mostly lies outside these pairs, and CP-SAT's repair of
    # it cost more than the search (measured on ten 1,500 x 300 runs: 29 s against 35 s in all).
    return _solve_level(problem, costs, near, todo, values, k, lp.bound, None, options, work, deadline)


def _lp_line(name: str, lp: LPBound, upper: int, keep: np.ndarray) -> str:
    return (f"{name}: LP bound {lp.bound:,} (links, quotas and the levels before as constraints; "
            f"{lp.columns:,} columns, {lp.solved_columns:,} of them given to HiGHS in {lp.rounds} rounds of "
            f"pricing, {lp.seconds:.2f} s), start {upper}, {int(keep.sum()):,} pairs kept")


def _columns(costs: IntegerCosts, index: np.ndarray, best: np.ndarray, few: np.ndarray | None, m: int) -> np.ndarray:
    """(P,) bool: the LP's first columns, the allocation's pairs and a few per worker."""
    out = np.zeros(costs.workers.size, dtype=bool)
    out[index[np.arange(m), best]] = True
    if few is not None:
        out |= few
    return out


def _in_level_set(problem: ProblemData, costs: IntegerCosts, todo: list[Level], values: list[int], k: int,
                  assignment: np.ndarray, index: np.ndarray) -> bool:
    """``assignment`` is in ``F_k``: constraints 1-4, every link and quota, the solved levels."""
    from allocator.engine import verify  # the engine imports the solvers: load lazily

    return (not verify(problem, assignment, stability=False) and meets_rules(problem, assignment)
            and all(level_value(todo[j], costs, assignment, index) == values[j] for j in range(k)))


def _status_name(code: int) -> str:
    return {
        cp_model.OPTIMAL: "OPTIMAL", cp_model.FEASIBLE: "FEASIBLE", cp_model.INFEASIBLE: "INFEASIBLE",
        cp_model.UNKNOWN: "UNKNOWN", cp_model.MODEL_INVALID: "MODEL_INVALID"}.get(code, str(code))
