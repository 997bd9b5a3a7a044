"""The stable-mode solve: flow, pruning, combs, then a deterministic CP-SAT search.

1. **Flow.** The min-cost flow optimum over *all* allocations. If it is infeasible, so is
   every stable allocation. If it has no blocking pair it is optimal in stable mode too (the
   stable allocations are a subset) and we return it as is.
2. **Pruning** (:mod:`.pruning`): pairs that are in no stable allocation get no variable
   (rules A, B and F, iterated to a fixpoint).
3. **Combs** (:mod:`.cuts`): valid inequalities separated on the LP relaxation with
   HiGHS, added to the model; the LP bound is a rigorous lower bound.
4. **The proof search**: minimise the rounded cost with the cumulative stability encoding
   (:mod:`.constraints`) and the combs, bounded below by the flow optimum over the kept
   pairs in the same integer costs, and warm-started (a complete hint, auxiliary sums
   included) with the cheaper of two stable heuristic allocations (:mod:`.heuristic`), or
   with the flow allocation when neither finds one. If the flow over the kept pairs is
   already stable it is the answer and CP-SAT is not needed.
5. **The improvement search**, only when the proof search ran out of work: CP-SAT over the
   LP solution's pairs (:func:`_lp_support_start`), then large neighbourhood search from the
   best allocation so far, for the rest of the work.

Large runs (more kept pairs than :data:`.cuts.MAX_LP_PAIRS`, e.g. 1,500 x 300) take another
path after step 3 (:func:`_large_phase`): a rigorous LP bound by column generation
(:mod:`.stable_lp`) instead of the combs, then one-worker CP-SAT searches over small sets of
pairs (the LP's support and the start's, then rounds of large neighbourhood search) in place of
the search over all pairs, which there did not improve on the heuristic start in its work.

Determinism. The proof search is CP-SAT with **one worker** (whatever ``options.threads``
says) and the improvement search runs its neighbourhoods **interleaved** (CP-SAT's
deterministic schedule); both stop at a **deterministic time limit**
(``max_deterministic_time``: CP-SAT's count of work done, not of seconds) of
:data:`DETERMINISTIC_PER_SECOND` units per second of the time left (:data:`PROOF_SHARE`
of it for the proof). Their work counts do not depend on timing, so the same inputs, settings, seed and time limit give the
same allocation whether the search ends proven or at the work limit, and a proven optimum
is the same for any time limit that lets it be proven. Measured on the 150-300 x 40-80
stable runs, one worker also proves fastest: CP-SAT's parallel portfolio took 3-6 times
longer to prove the same optimum on this 2-core machine (the LP-based worker does the
proof; the others compete with it for the cores), but it finds good allocations sooner,
hence the neighbourhood search when the proof does not finish. The wall clock stays a
hard limit on top: on a machine so loaded that it stops a search first, the result is
still the best stable allocation with its gap, but the log says a re-run may differ. An
earlier version ran a second phase that minimised a seeded tie-break among the optimal
allocations; it made threads irrelevant too, but cost more than the first phase, so the
deterministic search replaced it.

Business rules (business-rules.md, "Stability together with these rules"). Links and quotas
are constraints of the model (:func:`.constraints.links`, :func:`.constraints.quotas`); a
linked worker never blocks, so their pairs are no stability candidates (pruning and the
encoding see fewer candidates; :mod:`.pruning` says why its rules stay sound). The flow's
shortcuts (an optimum with no blocking pair is the answer) hold only when that optimum also
meets every link and quota and the objective has one level; heuristic and given start points
are used only when they meet the rules. With priority tiers or fewest moves the objective is
lexicographic: the levels (:mod:`.levels`) are minimised one after another, each proven level
fixed (``level == optimum``) before the next, each with one worker and its share of a
deterministic work budget (:func:`_levels_search`).

Every phase shares one deadline (``options.time_limit`` from the start of this call);
``options.stop`` stops the search (the best allocation so far is kept) and progress goes
to ``options.callbacks.on_progress`` in unscaled cost units.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

import numpy as np
from ortools.sat.python import cp_model

from allocator.problem import ProblemData
from allocator.solvers.base import SolveOptions, SolveOutcome, Status
from allocator.solvers.cpsat.constraints import (
    StabilityStructure,
    _sum,
    add_constraints,
    stability_structure,
)
from allocator.solvers.cpsat.cuts import MAX_LP_PAIRS, comb_cuts
from allocator.solvers.cpsat.heuristic import deferred_acceptance, flow_repair
from allocator.solvers.cpsat.levels import levels as level_list
from allocator.solvers.cpsat.levels import meets_rules
from allocator.solvers.cpsat.objective import minimise_cost, weighted
from allocator.solvers.cpsat.pruning import prune
from allocator.solvers.cpsat.stable_lp import StableLP, stable_lp_bound, support
from allocator.solvers.cpsat.variables import Variables, make_variables
from allocator.solvers.flow import CostRangeError, solve_flow, solve_flow_scaled
from allocator.solvers.scaling import allowed_pairs, cpsat_budget, integer_costs
from allocator.stability import blocking_pairs

BACKEND = "cpsat"
# CP-SAT's deterministic time per second of the time limit. Its unit is meant to be about a
# second of one core; measured here (2 cores shared by several jobs) one worker did
# 0.2-0.4 units per wall second at a load of 2-4, and down to 0.06 at a load of 11. A fifth
# keeps the work limit, not the clock, the one that stops the search unless the machine
# is heavily loaded, without leaving most of the time limit unused.
DETERMINISTIC_PER_SECOND = 0.2
# The first share of the work goes to the proof (one worker: the LP-based search, the one
# that proves); if that does not prove the optimum, the rest goes to improving the
# allocation by large neighbourhood search. Measured on the 300 x 80 stable run: the proof
# worker alone did not improve on the heuristic start (10,325) in 6 units, the
# neighbourhood search reached 9,938 in 3.4. The 150-250 x 40-60 runs need 0.6-5 units to
# prove, hence the larger share for the proof.
PROOF_SHARE = 0.7
# Models with more pair variables than this (1,500 x 300: 274,000 after pruning) count their
# work slower per wall second (one worker: 0.21 units/s there against 0.35 on 300 x 80, at a
# load of 2-3), and the neighbourhood search far slower still (0.02 units/s: it stopped at the
# clock with 0.85 of its 6.7 units). Either way the clock, not the work limit, ended the search,
# so a re-run could differ. On such models the work is counted at LARGE_DETERMINISTIC_PER_SECOND
# and all of it goes to the one-worker search, so the work limit stops it well inside the time
# limit and a re-run returns the same allocation.
LARGE_MODEL_PAIRS = 100_000
LARGE_DETERMINISTIC_PER_SECOND = 0.1
LNS_WORKERS = 2
# A priority level not proven in its share of the work gets all the work left, when at least
# this much is left (:func:`_levels_search`).
MIN_RETRY_WORK = 0.05
# Share of the neighbourhood search's work for the search over the LP's support before it
# (:func:`_lp_support_start`): on 250-300 x 60-80 that search needed about 1 unit.
RESTRICTED_SHARE = 0.3
LNS_PARAMS = {"interleave_search": True, "use_lns_only": True}
MIN_PHASE_SECONDS = 0.05
# Measured on the 300 x 80 stable benchmark (30 s): CP-SAT's presolve spends seconds
# probing and leaves a weaker LP (bound 9,176 against 9,465 without it); the model is
# already lean, so we skip presolve and give the LP every constraint.
STABLE_PARAMS = {"cp_model_presolve": False, "linearization_level": 2}
# Large runs (more kept pairs than cuts.MAX_LP_PAIRS), :func:`_large_phase`: rounds of column
# generation for the LP bound and their simplex iterations per second of the time limit (counts:
# deterministic), the clock share they may take at most (from the start of the solve, for a
# loaded machine), and the work of the two searches after it (the LP-support search, then the
# neighbourhood search with the rest), per second of the time limit.
# Measured on stable-1500x300 (load 2-3): the rounds took 6,210, 8,495, 13,214 and 13,622
# iterations (about 1,000 a second); 3 rounds bounded 254,597, 4 rounds 255,110 (the converged
# LP: 255,824, in 97 s; 2 rounds give less than the flow); the first search proved its
# restricted optimum in 1.6-3.5 units (3.5 without an objective bound).
# Comb rows (:mod:`.stable_lp`) join from round LARGE_COMB_FROM when the iteration budget is at
# least LARGE_COMB_MIN_ITERATIONS (below it the rounds stop before the combs pay: with combs
# from round 2, rounds 3-5 bounded 248,914, 256,021 and 257,176 in 27,735, 43,492 and 61,265
# iterations; combs from round 1 or 3 bounded less after the same rounds). The rounds stay 4:
# a fifth (257,176) took the 120 s solve to 110-117 s. See RESULTS.md, "1,500 x 300: comb rows
# in the column-generation LP".
LARGE_LP_ROUNDS = 4
LARGE_LP_ITERATIONS_PER_SECOND = 500
LARGE_COMB_FROM = 2
LARGE_COMB_MIN_ITERATIONS = 45_000
LARGE_LP_SHARE = 0.75
LARGE_WORK_PER_SECOND = (0.0125, 0.1175)
# After the first restricted search, the rest of the work goes to a large neighbourhood search
# (:func:`_neighbourhood_search`): each round frees the workers of LARGE_LNS_LINES of the lines
# (grown from a seeded line through the pairs below), lets them take their LARGE_LNS_PAIRS
# pairs of least LP reduced cost (and the LP's support) to those lines, keeps everyone else
# where they are, and runs CP-SAT (one worker, LARGE_LNS_ROUND_WORK units at most) with every
# stability constraint. At most LARGE_LNS_ROUNDS_PER_SECOND rounds per second of the time
# limit (each round also costs a model build, which the work count does not see). Measured on
# stable-1500x300 at 120 s, from the first search's 270,249 (benchmarks/RESULTS.md): one search
# over each worker's 3 cheapest pairs reached 270,238 in 9.5 units; 11 of these rounds reach
# 265,693-266,739 in 12 units (four seeds). Fewer lines with more rounds, smaller rounds, or 8
# pairs per worker did worse in the same work. The first search gets only 0.0125 unit per
# second: it has its restricted optimum's cost within 0.001 % after 1.5 units and spends 2 more
# proving it; those 2 units in the rounds gave 265,400-265,699 (two seeds) instead of
# 265,798-265,880 from the same start.
LARGE_LNS_LINES = 2 / 3
LARGE_LNS_PAIRS = 5
LARGE_LNS_ROUND_WORK = 1.2
LARGE_LNS_ROUNDS_PER_SECOND = 0.1

_STATUS = {
    cp_model.OPTIMAL: Status.OPTIMAL,
    cp_model.FEASIBLE: Status.FEASIBLE,
    cp_model.INFEASIBLE: Status.INFEASIBLE,
    cp_model.UNKNOWN: Status.NO_SOLUTION,
}


class _Progress(cp_model.CpSolverSolutionCallback):
    """Reports each incumbent and honours the stop event."""

    def __init__(self, report: Callable[[float | None, float | None], None], stop: threading.Event):
        super().__init__()
        self._report = report
        self._stop = stop

    def on_solution_callback(self) -> None:
        if self._stop.is_set():
            self.stop_search()
        self._report(self.objective_value, self.best_objective_bound)


def _set_parameter(prm, name: str, value: object) -> None:
    if isinstance(value, (list, tuple)):  # repeated fields cannot be assigned
        getattr(prm, name).extend(value)
    else:
        setattr(prm, name, value)


def run_cpsat(
    model: cp_model.CpModel,
    options: SolveOptions,
    time_limit: float,
    seed: int,
    report: Callable[[float | None, float | None], None] | None = None,
    *,
    workers: int | None = None,
    deterministic_time: float | None = None,
    **params: object,
) -> tuple[int, cp_model.CpSolver]:
    """Solve with the project's parameters (``params`` override CP-SAT parameters by name);
    a watcher thread turns ``options.stop`` into a stop.

    ``workers`` (default ``options.threads``) is CP-SAT's ``num_workers``;
    ``deterministic_time`` sets ``max_deterministic_time`` on top of the wall-clock limit.
    """
    solver = cp_model.CpSolver()
    prm = solver.parameters
    prm.num_workers = max(1, int(options.threads if workers is None else workers))
    prm.max_time_in_seconds = max(0.0, float(time_limit))
    if deterministic_time is not None:
        prm.max_deterministic_time = max(0.0, float(deterministic_time))
    prm.log_search_progress = False
    prm.log_to_stdout = False
    prm.random_seed = int(seed) % (2**31 - 1)
    for name, value in params.items():
        _set_parameter(prm, name, value)
    # The caller's CP-SAT parameters (SolveOptions.cpsat_parameters) lie over all of the above.
    for name, value in options.cpsat_parameters.items():
        _set_parameter(prm, name, value)
    report = report or (lambda obj, bound: None)
    solver.best_bound_callback = lambda bound: report(None, bound)

    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            if options.stop.is_set():
                solver.stop_search()
                return

    watcher = threading.Thread(target=watch, name="cpsat-stop-watcher", daemon=True)
    watcher.start()
    try:
        status = solver.solve(model, _Progress(report, options.stop))
    finally:
        done.set()
        watcher.join()
    if status == cp_model.MODEL_INVALID:
        raise RuntimeError(f"CP-SAT rejected the model: {model.validate()}")
    return status, solver


def _solution(solver: cp_model.CpSolver) -> np.ndarray:
    return np.asarray(list(solver.response_proto.solution), dtype=np.int64)


class _Finished(Exception):
    """Raised by a phase that has the answer (proven, infeasible, or out of time)."""

    def __init__(self, outcome: SolveOutcome):
        super().__init__()
        self.outcome = outcome


class _StableRun:
    """What the phases of one stable solve share: the deadline, the log and the best so far.

    The time limit and the stop event are checked between the steps before CP-SAT too:
    past them, the best stable allocation found so far is the answer (or none).
    """

    def __init__(self, problem: ProblemData, options: SolveOptions, started: float | None = None):
        self.problem = problem
        self.options = options
        self.start = time.perf_counter() if started is None else started
        self.deadline = self.start + float(options.time_limit)
        self.cb = options.callbacks
        self.log: list[str] = []
        self.seed = problem.settings.rng_seed
        self.best_bound: float | None = None
        self.start_point: np.ndarray | None = None

    def outcome(self, status: Status, assignment=None, bound=None) -> SolveOutcome:
        objective = self.problem.objective(assignment) if assignment is not None else None
        if status is Status.OPTIMAL:
            bound = objective
        elif bound is not None and objective is not None:
            bound = min(bound, objective)
        return SolveOutcome(status, assignment, objective, bound, time.perf_counter() - self.start, BACKEND, self.log)

    def optimal(self, assignment: np.ndarray) -> SolveOutcome:
        result = self.outcome(Status.OPTIMAL, assignment)
        self.cb.on_progress(result.objective, result.objective, result.solve_seconds)
        return result

    def out_of_time(self) -> bool:
        return self.options.stop.is_set() or time.perf_counter() >= self.deadline

    def stop_if_out_of_time(self) -> None:
        """Finish with the best stable allocation so far when the time or the planner says so."""
        if not self.out_of_time():
            return
        self.log.append("stopped or out of time before the search")
        if self.start_point is None:
            raise _Finished(self.outcome(Status.NO_SOLUTION, None, self.best_bound))
        raise _Finished(_with_gap(self.outcome(Status.FEASIBLE, self.start_point, self.best_bound), self.log))

    def infeasible(self, why: str) -> _Finished:
        self.log.append(why)
        return _Finished(self.outcome(Status.INFEASIBLE))

    def offer_start(self, found: np.ndarray) -> None:
        """Keep ``found`` as the start point when it is cheaper than the one so far (and it
        meets every link and quota)."""
        if not meets_rules(self.problem, found):
            self.log.append("  (it breaks a link or a quota: not used)")
            return
        if self.start_point is None or self.problem.objective(found) < self.problem.objective(self.start_point):
            self.start_point = found


def solve_stable(
    problem: ProblemData,
    options: SolveOptions,
    *,
    prune_pairs: bool = True,
    flow_shortcut: bool = True,
    combs: bool = True,
    started: float | None = None,
    large_pairs: int = MAX_LP_PAIRS,
) -> SolveOutcome:
    """Minimum-cost weakly stable allocation (allocation-model.md, constraint 5).

    ``prune_pairs``, ``flow_shortcut`` and ``combs`` exist for tests, which switch them off
    to check the encoding on its own. ``started`` (``time.perf_counter()``, default now) is
    when the time limit started counting: the caller's first import of this module counts
    against it, without changing ``options.time_limit``, which sets the work budget.
    Above ``large_pairs`` kept pairs the search is :func:`_large_phase` (tests lower it to
    check that path on small runs).
    """
    run = _StableRun(problem, options, started)
    try:
        pairs, flow = _flow_phase(run, flow_shortcut)
        pr = _pruning_phase(run, prune_pairs)
        kept_pairs = _kept_pairs_flow_phase(run, pairs, pr, flow_shortcut)
        costs = integer_costs(problem, budget=cpsat_budget(problem.n_workers), max_tie_range=1, pairs=kept_pairs)
        run.log.append(costs.describe())
        _heuristics_phase(run, pr)
        lower_bound, hint = _bound_and_hint_phase(run, costs, flow.assignment)
        if int(pr.keep.sum()) > large_pairs and not problem.lexicographic:
            large = _large_phase(run, pr, costs, lower_bound)
            if large is not None:
                return large
        model, v, stats = _model_phase(run, pr, combs)
        if problem.lexicographic:
            return _levels_search(run, model, v, stats, costs, hint)
        minimise_cost(model, v, _aligned(costs.workers, costs.lines, costs.base, v, problem), lower_bound)
        _hint(model, v, hint, stats)
        search = _search_phase(run, model, costs, len(v.x))
        _improvement_phase(run, search, model, v, stats, costs, pr, stability_structure(v, problem, pr.candidates))
        return _answer(run, search, v, costs, lower_bound)
    except _Finished as finished:
        return finished.outcome


def _flow_phase(run: _StableRun, flow_shortcut: bool):
    """1. Flow over all allocations: infeasible, already stable (the answer), or a bound."""
    problem = run.problem
    run.cb.on_phase("flow")
    pairs = allowed_pairs(problem)
    flow, flow_costs = solve_flow_scaled(problem, pairs=pairs)
    if flow.status is Status.INFEASIBLE:
        raise run.infeasible(f"infeasible without stability already ({flow.reason})")
    run.best_bound = problem.objective(flow.assignment) - flow_costs.error_bound
    blocking = blocking_pairs(problem, flow.assignment)
    if not blocking and flow_shortcut and _plain_answer(problem, flow.assignment):
        run.log.append("the min-cost flow optimum has no blocking pair: it is the stable optimum")
        run.log.extend(flow.log)
        raise _Finished(run.optimal(flow.assignment))
    run.log.append(f"the min-cost flow optimum has {len(blocking)} blocking pairs")
    run.stop_if_out_of_time()
    return pairs, flow


def _pruning_phase(run: _StableRun, prune_pairs: bool):
    """2. Pruning: the pairs that can be in a stable allocation."""
    run.cb.on_phase("pruning")
    pr = prune(run.problem, enabled=prune_pairs, deadline=run.deadline)
    run.log.append(pr.describe())
    if pr.infeasible:
        raise run.infeasible("pruning proved that no stable allocation exists")
    run.stop_if_out_of_time()
    return pr


def _plain_answer(problem: ProblemData, assignment: np.ndarray) -> bool:
    """A flow optimum without blocking pairs is the stable optimum only when it also meets
    every link and quota (the flow does not see them) and the objective has one level (the
    flow minimises the total cost, not tier by tier)."""
    return not problem.lexicographic and meets_rules(problem, assignment)


def _kept_pairs_flow_phase(run: _StableRun, pairs, pr, flow_shortcut: bool):
    """3. The flow again, over the kept pairs only.

    Every stable allocation lies among them, so this optimum bounds the stable one, and if it
    has no blocking pair it *is* the stable optimum (with the same seeded tie-break as the flow).
    """
    problem = run.problem
    kept = pr.keep[pairs[0], pairs[1]]
    kept_pairs = (pairs[0][kept], pairs[1][kept])
    if flow_shortcut:
        kflow, kflow_costs = solve_flow_scaled(problem, pairs=kept_pairs)
        if kflow.status is Status.INFEASIBLE:
            raise run.infeasible("no allocation uses only pairs that a stable allocation can contain")
        run.best_bound = max(run.best_bound, problem.objective(kflow.assignment) - kflow_costs.error_bound)
        if not blocking_pairs(problem, kflow.assignment) and _plain_answer(problem, kflow.assignment):
            run.log.append("the min-cost flow over the kept pairs has no blocking pair: it is the stable optimum")
            run.log.extend(kflow.log)
            raise _Finished(run.optimal(kflow.assignment))
    return kept_pairs


def _heuristics_phase(run: _StableRun, pr) -> None:
    """Stable allocations from the heuristics and the caller: the cheapest is the start point."""
    problem = run.problem
    heuristics = [
        ("deferred acceptance", lambda: deferred_acceptance(problem, run.seed)),
        ("flow repair", lambda: flow_repair(problem, pr.keep, deadline=run.deadline)),
    ]
    if problem.links:
        # Linked workers never block, so holding each link to one site changes no one's
        # blocking pairs but theirs: the flow repair then keeps every link.
        heuristics.append(("flow repair with each link on one site",
                           lambda: flow_repair(problem, _links_on_one_site(problem, pr.keep), deadline=run.deadline)))
    for name, heuristic in heuristics:
        run.stop_if_out_of_time()
        found = heuristic()
        if found is None:
            continue
        run.log.append(f"{name} found a stable allocation of cost {problem.objective(found):.6g}")
        run.offer_start(found)
    given = _given_start(problem, run.options, pr.keep)
    if given is not None:
        run.log.append(f"the starting allocation given is stable, of cost {problem.objective(given):.6g}")
        run.offer_start(given)


def _links_on_one_site(problem: ProblemData, keep: np.ndarray) -> np.ndarray:
    """``keep`` with each link's workers held to one site: the site every worker of the link
    can reach (through ``keep``) where their cheapest pairs cost least in total. A heuristic."""
    keep = keep.copy()
    for link in problem.links:
        best, chosen = np.inf, -1
        for k in np.unique(problem.site).tolist():
            on = problem.site == k
            total = 0.0
            for t in link.workers.tolist():
                mine = keep[t] & on
                total += float(problem.cost[t, mine].min()) if mine.any() else np.inf
            if total < best:
                best, chosen = total, k
        if chosen >= 0:
            keep[np.ix_(link.workers, problem.site != chosen)] = False
    return keep


def _bound_and_hint_phase(run: _StableRun, costs, flow_assignment: np.ndarray):
    """The kept-pairs flow bound in CP-SAT's integers, and the hint for the search.

    The hint is the start point, else the kept-pairs flow allocation, else the first flow's.
    """
    lower_bound, hint = None, flow_assignment
    if run.start_point is not None:
        hint = run.start_point
    try:
        bounded = solve_flow(run.problem, costs)
        if bounded.status is Status.INFEASIBLE:
            raise run.infeasible("no allocation uses only pairs that a stable allocation can contain")
        lower_bound = bounded.base_total
        if run.start_point is None:
            hint = bounded.assignment
    except CostRangeError:
        run.log.append("no flow bound: cost range too large for the flow")
    run.stop_if_out_of_time()
    return lower_bound, hint


def _model_phase(run: _StableRun, pr, combs: bool):
    """4. The model: variables over the kept pairs, the stability encoding and the combs."""
    problem = run.problem
    run.cb.on_phase("stability search")
    model = cp_model.CpModel()
    v = make_variables(model, pr.keep)
    stats = add_constraints(model, v, problem, candidates=pr.candidates)
    if stats is not None:
        run.log.append(stats.describe())
    if combs:
        found = comb_cuts(v, problem, stability_structure(v, problem, pr.candidates), deadline=run.deadline)
        run.log.append(found.describe())
        for comb in found.cuts:
            model.add(_sum(v.x[k] for k in comb.plus.tolist()) >= _sum(v.x[k] for k in comb.minus.tolist()))
        if found.lp_bounds:
            # HiGHS's optimum is exact up to its tolerances: a hair below it is a safe bound.
            lp = max(found.lp_bounds)
            lp -= 1e-6 * max(1.0, abs(lp))
            run.best_bound = lp if run.best_bound is None else max(run.best_bound, lp)
        if found.stopped_early:
            run.log.append("the deadline ended the comb rounds: a re-run may find other combs")
        run.stop_if_out_of_time()
    return model, v, stats


def kept_structure(problem: ProblemData, pr) -> tuple[Variables, StabilityStructure | None]:
    """Variables over every kept pair (row-major) and their stability structure (``None``: no
    stability constraint is needed), as the LP of the large path sees them."""
    s, p = np.nonzero(pr.keep)
    index = np.full(pr.keep.shape, -1, dtype=np.int64)
    index[s, p] = np.arange(s.size)
    everything = Variables(s.astype(np.int32), p.astype(np.int32), [], np.zeros(0, dtype=np.int64), index)
    return everything, stability_structure(everything, problem, pr.candidates)


def _large_phase(run: _StableRun, pr, costs, lower_bound: int | None) -> SolveOutcome | None:
    """The search on a large run: an LP bound, then CP-SAT over the pairs the LP uses.

    On 1,500 x 300 the one-worker search over all 274,000 kept pairs did not improve on the
    heuristic start in its work, and the bound stayed the flow's (gap 11.9 %). Here instead
    (:mod:`.stable_lp`): a rigorous LP bound by :data:`LARGE_LP_ROUNDS` rounds of column
    generation, then CP-SAT (one worker, a deterministic work limit) over *restricted* sets of
    pairs: first the LP solution's support and the start's pairs (:func:`_support_search`), then
    rounds of large neighbourhood search (:func:`_neighbourhood_search`), each search hinted
    with the best allocation so far. Every stability constraint is kept in the restricted
    models (a pair left out is a 0 in its sums), so each of their solutions is a stable
    allocation of the whole run; their own CP-SAT bounds are not bounds of the whole run, and
    only the flow and LP bounds are reported. The answer is proven
    optimal only when its cost reaches that bound.

    Returns ``None`` (the caller builds the whole model) when no stability constraint is needed,
    or when neither a start nor the restricted searches gave a stable allocation.
    """
    problem = run.problem
    run.cb.on_phase("stability search")
    everything, st = kept_structure(problem, pr)
    if st is None:
        return None
    base = _aligned(costs.workers, costs.lines, costs.base, everything, problem)
    workers, lines = everything.workers.astype(np.int64), everything.lines.astype(np.int64)
    limit = float(run.options.time_limit)
    iterations = int(LARGE_LP_ITERATIONS_PER_SECOND * limit)
    lp = stable_lp_bound(workers, lines, problem, st, base, run.start_point,
                         deadline=min(run.deadline, run.start + LARGE_LP_SHARE * limit), rounds=LARGE_LP_ROUNDS,
                         iterations=iterations,
                         combs_from=LARGE_COMB_FROM if iterations >= LARGE_COMB_MIN_ITERATIONS else 0)
    run.log.append(lp.describe())
    by_clock = bool(lp.stopped) and "deadline" in lp.stopped
    if lp.bound is not None:
        lower_bound = lp.bound if lower_bound is None else max(lower_bound, lp.bound)
    run.stop_if_out_of_time()

    def rigorous() -> float | None:
        out = None if lower_bound is None else costs.unscaled(lower_bound - 0.5 * problem.n_workers)
        if run.best_bound is not None:
            out = run.best_bound if out is None else max(out, run.best_bound)
        return out

    best = run.start_point
    best_value = None if best is None else int(base[best[workers] == lines].sum())

    def report(obj: float | None, bound: float | None) -> None:  # the restricted bound is no bound
        if obj is not None:
            run.cb.on_progress(costs.unscaled(obj), rigorous(), time.perf_counter() - run.start)

    def proven() -> bool:
        return best_value is not None and lower_bound is not None and best_value <= lower_bound

    if not proven():
        best, best_value, left, clock = _support_search(run, pr, costs, lp, workers, lines, base, best, best_value,
                                                        report)
        by_clock = by_clock or clock
        if best is not None and not proven() and not clock:
            pool = _lns_pool(lp, workers, lines, base)
            rounds = max(1, int(LARGE_LNS_ROUNDS_PER_SECOND * limit))
            work = LARGE_WORK_PER_SECOND[1] * _margin(limit) + left
            best, best_value, clock = _neighbourhood_search(run, pr, costs, workers, lines, pool, best, best_value,
                                                            lower_bound, work, rounds, report)
            by_clock = by_clock or clock
    if best is None:
        # No start and nothing in the restricted sets (which need not hold a stable allocation):
        # the whole model decides, with the LP's bound kept.
        run.log.append("restricted searches found no stable allocation: searching all kept pairs")
        if lp.bound is not None:
            run.best_bound = max(run.best_bound if run.best_bound is not None else -np.inf, rigorous())
        return None
    _check_stable(problem, best)
    if lower_bound is not None and best_value is not None and best_value <= lower_bound:
        return run.optimal(best)
    if run.options.stop.is_set():
        run.log.append("stopped by the planner: another run may stop elsewhere")
    elif by_clock:
        run.log.append("stopped by the wall clock before the work limit (a loaded machine): "
                       "a re-run may return another allocation")
    else:
        run.log.append("restricted searches ended (each searched to its end or to its work limit): "
                       "a re-run with the same time limit returns the same allocation")
    return _with_gap(run.outcome(Status.FEASIBLE, best, rigorous()), run.log)


def _support_search(run: _StableRun, pr, costs, lp: StableLP, workers: np.ndarray, lines: np.ndarray,
                    base: np.ndarray, best: np.ndarray | None, best_value: int | None, report):
    """CP-SAT over the LP's support and the start's pairs (one worker, the first share of the
    large path's work): ``(best, best_value, work left over, stopped by the clock)``."""
    wall = _margin(run.deadline - time.perf_counter())
    work = LARGE_WORK_PER_SECOND[0] * _margin(float(run.options.time_limit))
    if wall <= MIN_PHASE_SECONDS or run.options.stop.is_set():
        return best, best_value, 0.0, not run.options.stop.is_set()
    chosen = support(lp, workers, lines, base, best, cheapest=0)
    # No lower bound on the restricted objective: the run's bound lies below the restricted
    # optimum, and given as a bound it cost this search its proof on stable-1500x300 (5.9
    # units unproven, against 3.5 units to prove the same cost without it).
    code, solver, v = _restricted_search(run, pr, costs, workers[chosen], lines[chosen], best, None, work, wall, report)
    found_value = (f", cost {costs.unscaled(solver.objective_value):.6g}"
                   if code in (cp_model.OPTIMAL, cp_model.FEASIBLE) else "")
    run.log.append(f"restricted search ({int(chosen.sum()):,} pairs: the LP's support and the start's): "
                   f"{solver.status_name(code)}{found_value} in {solver.wall_time:.2f} s "
                   f"({solver.deterministic_time:.2f} of {work:.2f} units, one worker)")
    clock = code not in (cp_model.OPTIMAL, cp_model.INFEASIBLE) and solver.deterministic_time < work * 0.999
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        value = int(round(solver.objective_value))
        if best_value is None or value < best_value:
            best, best_value = v.assignment(_solution(solver)), value
    return best, best_value, max(0.0, work - solver.deterministic_time), clock


def _lns_pool(lp: StableLP, workers: np.ndarray, lines: np.ndarray, base: np.ndarray) -> np.ndarray:
    """(P,) bool: the pairs a freed worker may take in :func:`_neighbourhood_search`: each
    worker's :data:`LARGE_LNS_PAIRS` pairs of least LP reduced cost (of least cost when the LP
    gave no duals) and the LP's support. Ties broken by line: the same pool on every run."""
    key = base if lp.reduced is None else lp.reduced
    order = np.lexsort((lines, key, workers))
    rank = np.empty(workers.size, dtype=np.int64)
    rank[order] = np.arange(workers.size) - np.searchsorted(workers[order], workers[order], side="left")
    return (rank < LARGE_LNS_PAIRS) | (lp.x > 1e-6)


def _neighbourhood(rng: np.random.Generator, current: np.ndarray, pool_workers: np.ndarray,
                   pool_lines: np.ndarray, n_lines: int, size: int) -> np.ndarray:
    """(n_lines,) bool: ``size`` lines grown breadth first from a random line, each line's
    neighbours being the lines its current workers could take (the pool's pairs), in a random
    order; random lines when the pool's links run out. Only ``rng`` chooses: deterministic."""
    chosen = np.zeros(n_lines, dtype=bool)
    first = int(rng.integers(n_lines))
    chosen[first] = True
    queue, count = [first], 1
    while count < size:
        if not queue:  # the pool links no more lines: start again from a line not yet chosen
            nxt = int(rng.choice(np.flatnonzero(~chosen)))
            chosen[nxt] = True
            queue.append(nxt)
            count += 1
            continue
        q = queue.pop(0)
        reach = np.unique(pool_lines[np.isin(pool_workers, np.flatnonzero(current == q))])
        for p in rng.permutation(reach[~chosen[reach]]).tolist():
            if count >= size:
                break
            chosen[p] = True
            queue.append(p)
            count += 1
    return chosen


def _neighbourhood_search(run: _StableRun, pr, costs, workers: np.ndarray, lines: np.ndarray, pool: np.ndarray,
                          best: np.ndarray, best_value: int, lower_bound: int | None, work: float, rounds: int,
                          report) -> tuple[np.ndarray, int, bool]:
    """Large neighbourhood search from the stable allocation ``best`` (integer cost ``best_value``).

    Each of at most ``rounds`` rounds frees the workers now on a seeded neighbourhood of lines
    (:func:`_neighbourhood`, :data:`LARGE_LNS_LINES` of them), lets them take the ``pool``'s
    pairs to those lines, holds every other worker to their line, and runs CP-SAT (one worker,
    at most :data:`LARGE_LNS_ROUND_WORK` of the ``work`` left) hinted with ``best``; an answer
    cheaper than ``best`` replaces it. Every stability constraint of the run is in each round's
    model (a pair left out is a 0 in its sums), so every answer is a stable allocation of the
    whole run, and ``best`` never gets worse. The neighbourhoods depend only on the seed and
    ``best``, and each round stops at its end or its work limit, so a re-run returns the same
    allocation unless the wall clock stopped a round first (the third value: ``True``).
    """
    problem = run.problem
    rng = np.random.default_rng(run.seed)
    pool_workers, pool_lines = workers[pool], lines[pool]
    size = max(1, min(problem.n_lines, int(round(LARGE_LNS_LINES * problem.n_lines))))
    used, done, improved, by_clock = 0.0, 0, 0, False
    began = best_value
    while done < rounds and work - used > 1e-3:
        if lower_bound is not None and best_value <= lower_bound:
            break
        wall = _margin(run.deadline - time.perf_counter())
        if wall <= MIN_PHASE_SECONDS or run.options.stop.is_set():
            by_clock = not run.options.stop.is_set()
            break
        around = _neighbourhood(rng, best, pool_workers, pool_lines, problem.n_lines, size)
        chosen = (best[workers] == lines) | (pool & around[best[workers]] & around[lines])
        budget = min(LARGE_LNS_ROUND_WORK, work - used)
        code, solver, v = _restricted_search(run, pr, costs, workers[chosen], lines[chosen], best, None, budget, wall,
                                             report)
        used += solver.deterministic_time
        done += 1
        if code not in (cp_model.OPTIMAL, cp_model.INFEASIBLE) and solver.deterministic_time < budget * 0.999:
            by_clock = True
        if code in (cp_model.OPTIMAL, cp_model.FEASIBLE) and int(round(solver.objective_value)) < best_value:
            best, best_value = v.assignment(_solution(solver)), int(round(solver.objective_value))
            improved += 1
        if by_clock:
            break
    run.log.append(f"neighbourhood search: {done} rounds of {size} lines' workers ({improved} improved), cost "
                   f"{costs.unscaled(began):.6g} -> {costs.unscaled(best_value):.6g} ({used:.2f} of {work:.2f} "
                   "units, one worker)")
    return best, best_value, by_clock


def _restricted_search(run: _StableRun, pr, costs, ws: np.ndarray, ls: np.ndarray, hint: np.ndarray | None,
                       lower_bound: int | None, work: float, wall: float, report):
    """CP-SAT (one worker, ``work`` units) over the pairs ``(ws, ls)`` only, with every stability
    constraint of the run: a pair left out is a 0 in its sums, so each solution is a stable
    allocation of the whole run (its bound is the restricted model's only)."""
    keep = np.zeros_like(pr.keep)
    keep[ws, ls] = True
    model = cp_model.CpModel()
    v = make_variables(model, keep)
    stats = add_constraints(model, v, run.problem, candidates=pr.candidates)
    minimise_cost(model, v, _aligned(costs.workers, costs.lines, costs.base, v, run.problem), lower_bound)
    if hint is not None:
        _hint(model, v, hint, stats)
    code, solver = run_cpsat(model, run.options, wall, run.seed, report, workers=1,
                             deterministic_time=work, **STABLE_PARAMS)
    return code, solver, v


class _Search:
    """Where the CP-SAT searches stand: status, best solution, CP-SAT's bound, the work left."""

    def __init__(self, run: _StableRun, costs, n_pairs: int = 0) -> None:
        remaining = _margin(run.deadline - time.perf_counter())
        # The work budget comes from the time limit, never from the clock: the time the steps
        # before the search took varies from run to run, and a budget read off the clock would
        # stop two runs of the same inputs at different points.
        self.large = n_pairs > LARGE_MODEL_PAIRS
        rate = LARGE_DETERMINISTIC_PER_SECOND if self.large else DETERMINISTIC_PER_SECOND
        self.work = rate * _margin(float(run.options.time_limit))
        self.remaining = remaining
        self.mapped: Status = Status.NO_SOLUTION
        self.solution: np.ndarray | None = None
        self.solver: cp_model.CpSolver | None = None
        self.bound_cp = float("nan")
        self.by_clock = False

        def report(obj: float | None, bound: float | None) -> None:
            run.cb.on_progress(
                None if obj is None else costs.unscaled(obj),
                None if bound is None else costs.unscaled(bound),
                time.perf_counter() - run.start,
            )

        self.report = report


def _search_phase(run: _StableRun, model: cp_model.CpModel, costs, n_pairs: int) -> _Search:
    """The proof search: one worker, up to PROOF_SHARE of the work (all of it on a large model)."""
    search = _Search(run, costs, n_pairs)
    share = 1.0 if search.large else PROOF_SHARE
    work = share * search.work
    status, solver = run_cpsat(
        model, run.options, share * search.remaining, run.seed, search.report,
        workers=1, deterministic_time=work, **STABLE_PARAMS,
    )
    mapped = _STATUS[status]
    run.log.append(f"search: {solver.status_name(status)} in {solver.wall_time:.2f} s "
                   f"({solver.deterministic_time:.2f} of {work:.2f} deterministic units, one worker)")
    search.by_clock = (mapped not in (Status.OPTIMAL, Status.INFEASIBLE)
                       and solver.deterministic_time < work * 0.999)
    if mapped is Status.INFEASIBLE:
        raise _Finished(run.outcome(mapped))
    search.mapped = mapped
    search.solver = solver
    search.solution = _solution(solver) if mapped in (Status.OPTIMAL, Status.FEASIBLE) else None
    search.bound_cp = solver.best_objective_bound
    return search


def _lp_support_start(run: _StableRun, pr, costs, st, v: Variables, hint: np.ndarray | None, work: float,
                      wall: float) -> tuple[np.ndarray, float] | None:
    """A stable allocation from CP-SAT over the LP's support, the hint's pairs and each worker's
    cheapest kept pairs (:mod:`.stable_lp`, LP solved to its optimum: deterministic), and the
    work it used; ``None`` when there is none."""
    problem = run.problem
    base = _aligned(costs.workers, costs.lines, costs.base, v, problem)
    workers, lines = v.workers.astype(np.int64), v.lines.astype(np.int64)
    lp = stable_lp_bound(workers, lines, problem, st, base, hint, deadline=run.deadline)
    if lp.stopped or lp.bound is None:
        run.log.append(f"start from the LP's support: none ({lp.describe()})")
        return None
    chosen = support(lp, workers, lines, base, hint)
    code, solver, v2 = _restricted_search(run, pr, costs, workers[chosen], lines[chosen], hint, None, work,
                                          _margin(wall), None)
    run.log.append(f"start from the LP's support ({int(chosen.sum()):,} pairs): {solver.status_name(code)} in "
                   f"{solver.wall_time:.2f} s ({solver.deterministic_time:.2f} of {work:.2f} units)"
                   + (f", cost {costs.unscaled(solver.objective_value):.6g}"
                      if code in (cp_model.OPTIMAL, cp_model.FEASIBLE) else ""))
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    allocation = v2.assignment(_solution(solver))
    if blocking_pairs(problem, allocation) or not meets_rules(problem, allocation):
        return None
    return allocation, solver.deterministic_time


def _improvement_phase(run: _StableRun, search: _Search, model: cp_model.CpModel, v: Variables, stats, costs,
                       pr=None, st=None) -> None:
    """5. Not proven: spend the rest of the work on improving the allocation.

    First (with ``pr`` and ``st``) CP-SAT over the LP's support (:func:`_lp_support_start`, a
    share of the work), then large neighbourhood search, interleaved so that it stays
    deterministic, from the best allocation so far. The better start goes to the neighbourhood
    search only: given to the proof search it cost 200 x 50 its proof (benchmarks/RESULTS.md).
    """
    improve_seconds = _margin(run.deadline - time.perf_counter())
    if search.mapped is Status.OPTIMAL or run.options.stop.is_set() or improve_seconds <= MIN_PHASE_SECONDS:
        return
    if search.large:
        run.log.append(f"improvement (neighbourhood search): skipped on a model of more than {LARGE_MODEL_PAIRS:,} "
                       "pairs (its work count grows too slowly for the work limit to stop it before the clock)")
        return
    best_so_far = v.assignment(search.solution) if search.solution is not None else run.start_point
    lns_work = (1.0 - PROOF_SHARE) * search.work
    if pr is not None and st is not None:
        found = _lp_support_start(run, pr, costs, st, v, best_so_far, RESTRICTED_SHARE * lns_work, improve_seconds)
        if found is not None:
            allocation, used = found
            lns_work = max(0.0, lns_work - used)
            if best_so_far is None or run.problem.objective(allocation) < run.problem.objective(best_so_far):
                best_so_far = allocation
                run.offer_start(allocation)
        improve_seconds = _margin(run.deadline - time.perf_counter())
    if best_so_far is not None:
        model.clear_hints()
        _hint(model, v, best_so_far, stats)
    status2, solver2 = run_cpsat(
        model, run.options, improve_seconds, run.seed, search.report, workers=LNS_WORKERS,
        deterministic_time=lns_work, **STABLE_PARAMS, **LNS_PARAMS,
    )
    run.log.append(f"improvement (neighbourhood search): {solver2.status_name(status2)} in "
                   f"{solver2.wall_time:.2f} s ({solver2.deterministic_time:.2f} of {lns_work:.2f} units)")
    if status2 == cp_model.INFEASIBLE and search.solution is None:
        raise _Finished(run.outcome(Status.INFEASIBLE))
    if status2 in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        if search.solution is None or solver2.objective_value <= search.solver.objective_value:
            search.solution = _solution(solver2)
            if status2 == cp_model.OPTIMAL:
                search.mapped = Status.OPTIMAL
            elif search.mapped is Status.NO_SOLUTION:
                search.mapped = Status.FEASIBLE
    if np.isfinite(solver2.best_objective_bound):
        bound_cp = search.bound_cp
        search.bound_cp = (max(bound_cp, solver2.best_objective_bound) if np.isfinite(bound_cp)
                           else solver2.best_objective_bound)
    if status2 not in (cp_model.OPTIMAL, cp_model.INFEASIBLE) and solver2.deterministic_time < lns_work * 0.999:
        search.by_clock = True


def _answer(run: _StableRun, search: _Search, v: Variables, costs, lower_bound) -> SolveOutcome:
    """The allocation, its status and a rigorous bound, with why the search stopped."""
    problem, log = run.problem, run.log
    mapped = search.mapped
    if mapped is not Status.OPTIMAL:
        if run.options.stop.is_set():
            log.append("stopped by the planner: another run may stop elsewhere")
        elif search.by_clock:
            log.append("stopped by the wall clock before the work limit (a loaded machine): "
                       "a re-run may return another allocation")
        else:
            log.append("stopped by the work limit: a re-run with the same time limit returns "
                       "the same allocation")
    # A valid lower bound even without a solution: CP-SAT's, else the flow's (same integers;
    # half a unit of rounding per worker keeps it rigorous for the unscaled costs).
    bound_int = search.bound_cp if np.isfinite(search.bound_cp) else None
    if lower_bound is not None:
        bound_int = lower_bound if bound_int is None else max(bound_int, lower_bound)
    rigorous_bound = None if bound_int is None else costs.unscaled(bound_int - 0.5 * problem.n_workers)
    if run.best_bound is not None:
        rigorous_bound = run.best_bound if rigorous_bound is None else max(rigorous_bound, run.best_bound)
    start_point = run.start_point
    if mapped is Status.NO_SOLUTION:
        if start_point is None:
            return run.outcome(Status.NO_SOLUTION, None, rigorous_bound)
        log.append("CP-SAT found no allocation in time: returning the best heuristic one")
        return _with_gap(run.outcome(Status.FEASIBLE, start_point, rigorous_bound), log)
    assignment = v.assignment(search.solution)
    if mapped is Status.FEASIBLE:
        if start_point is not None and problem.objective(start_point) < problem.objective(assignment):
            assignment = start_point
        _check_stable(problem, assignment)
        return _with_gap(run.outcome(Status.FEASIBLE, assignment, rigorous_bound), log)
    _check_stable(problem, assignment)
    return run.optimal(assignment)


def _margin(seconds: float) -> float:
    """CP-SAT counts its limit from its own start, after loading the model: keep a margin."""
    return max(0.0, seconds - min(0.5, 0.02 * seconds))


def _with_gap(result: SolveOutcome, log: list[str]) -> SolveOutcome:
    """Say in the log how far from proven the allocation is."""
    if result.objective is not None and result.best_bound is not None:
        gap = (result.objective - result.best_bound) / max(abs(result.objective), 1e-12)
        log.append(f"not proven optimal: objective {result.objective:.6g}, bound "
                   f"{result.best_bound:.6g}, gap {100 * gap:.2f} %")
    return result


def _aligned(ws: np.ndarray, ls: np.ndarray, values: np.ndarray, v: Variables, problem: ProblemData) -> np.ndarray:
    """Values given per allowed pair, re-aligned with the model's pairs."""
    full = np.zeros((problem.n_workers, problem.n_lines), dtype=values.dtype)
    full[ws, ls] = values
    return full[v.workers, v.lines]


def _given_start(problem: ProblemData, options: SolveOptions, keep: np.ndarray) -> np.ndarray | None:
    """``options.initial_allocation`` as a start point, when it is a whole stable allocation.

    A caller's starting allocation (e.g. the dashboard's last answer) is used only when it names
    a line for every worker, keeps every pin, place and must-be-filled line, uses only kept
    pairs (so every constraint of the model holds) and has no blocking pair; anything less is
    ignored, since CP-SAT's own heuristics already give a complete stable start.
    """
    given = options.initial_allocation
    if not given:
        return None
    lines = [problem.line_index.get(given.get(w, ""), -1) for w in problem.worker_ids]
    a = np.asarray(lines, dtype=np.int64)
    if (a < 0).any() or not keep[np.arange(problem.n_workers), a].all():
        return None
    pinned = problem.pin >= 0
    if (a[pinned] != problem.pin[pinned]).any():
        return None
    fill = np.bincount(a, minlength=len(problem.line_ids))
    if (fill > problem.capacity).any() or (problem.mandatory & (fill == 0)).any():
        return None
    if blocking_pairs(problem, a) or not meets_rules(problem, a):
        return None
    return a


def _hint(model: cp_model.CpModel, v: Variables, assignment: np.ndarray, stats=None) -> None:
    """Hint every variable: the x from the allocation, the sums and cuts from the x."""
    chosen = assignment[v.workers] == v.lines
    for k, on in enumerate(chosen.tolist()):
        model.add_hint(v.x[k], on)
    if stats is not None:
        for var, value in stats.hint(chosen.astype(np.int64)):
            model.add_hint(var, value)


def _check_stable(problem: ProblemData, assignment: np.ndarray) -> None:
    """The model and the checker must agree; a blocking pair here is a bug, not bad input."""
    pairs = blocking_pairs(problem, assignment)
    if pairs:
        raise RuntimeError(f"internal error: the stable model returned blocking pairs {pairs[:5]}")
    if not meets_rules(problem, assignment):
        raise RuntimeError("internal error: the stable model returned an allocation that breaks a link or a quota")


def _levels_search(run: _StableRun, model: cp_model.CpModel, v: Variables, stats, costs, hint) -> SolveOutcome:
    """Priority tiers and/or fewest moves in stable mode: the levels one after another.

    Level ``i`` minimises its own sum under every constraint (stability, links, quotas) and
    ``level_j == optimum_j`` for the levels before it; so the allocation of the last level is
    lexicographically optimal among the stable allocations that meet the rules (each step keeps
    exactly the allocations optimal for the levels so far). Determinism: one worker, and a
    deterministic work budget for the whole search, :data:`DETERMINISTIC_PER_SECOND` units per
    second of the time limit (the limit itself, not the clock), shared over the levels left
    (a level's unused work passes on: CP-SAT's count of it is deterministic). A level that is
    not proven ends the search: its best allocation is the answer, marked not proven, with the
    level's gap in the log.
    """
    problem = run.problem
    base = _aligned(costs.workers, costs.lines, costs.base, v, problem)
    todo = level_list(problem, v.workers, v.lines, base)
    total_work = DETERMINISTIC_PER_SECOND * _margin(float(run.options.time_limit))
    used = 0.0
    best: np.ndarray | None = None
    current_hint = hint if hint is not None and _meets_hard(problem, hint, v) else run.start_point
    status = Status.OPTIMAL
    search = _Search(run, costs)
    proven = 0
    for i, level in enumerate(todo):
        wall = _margin(run.deadline - time.perf_counter())
        work = max(0.0, (total_work - used) / (len(todo) - i))
        expr = weighted(v, level.coefficients)
        model.minimize(expr)
        model.clear_hints()
        if current_hint is not None:
            _hint(model, v, current_hint, stats)
        code, solver = run_cpsat(model, run.options, wall, run.seed, search.report if i == len(todo) - 1 else None,
                                 workers=1, deterministic_time=work, **STABLE_PARAMS)
        used += solver.deterministic_time
        run.log.append(f"{level.name}: {solver.status_name(code)} in {solver.wall_time:.2f} s "
                       f"({solver.deterministic_time:.2f} of {work:.2f} deterministic units, one worker)")
        left = total_work - used
        level_bound = solver.best_objective_bound
        if code in (cp_model.FEASIBLE, cp_model.UNKNOWN) and i < len(todo) - 1 and left >= MIN_RETRY_WORK:
            # Not proven in its share: a level that is not proven ends the search, so the later
            # levels' shares would go unused. The level gets all the work left instead, from its
            # best allocation (150 x 40 with 3 tiers, 10 s: tier 1 stopped at 0.65 of 1.96 units
            # and the solve ended after 2.5 s). Still counted work only: deterministic.
            model.clear_hints()
            again = v.assignment(_solution(solver)) if code == cp_model.FEASIBLE else current_hint
            if again is not None:
                _hint(model, v, again, stats)
            wall = _margin(run.deadline - time.perf_counter())
            code2, solver2 = run_cpsat(model, run.options, wall, run.seed, None, workers=1,
                                       deterministic_time=left, **STABLE_PARAMS)
            used += solver2.deterministic_time
            run.log.append(f"{level.name}, again with all the work left: {solver2.status_name(code2)} in "
                           f"{solver2.wall_time:.2f} s ({solver2.deterministic_time:.2f} of {left:.2f} units)")
            if code2 == cp_model.OPTIMAL or (code2 == cp_model.INFEASIBLE and code == cp_model.UNKNOWN) or (
                    code2 == cp_model.FEASIBLE and (
                    code != cp_model.FEASIBLE or solver2.objective_value <= solver.objective_value)):
                code, solver = code2, solver2
            level_bound = max(level_bound, solver2.best_objective_bound)  # both bound the same level
        if code == cp_model.INFEASIBLE:
            if i == 0:
                raise _Finished(run.outcome(Status.INFEASIBLE))
            raise RuntimeError(f"internal error: level {level.name!r} infeasible after the levels before it were solved")
        if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            status = Status.FEASIBLE
            if best is None and run.start_point is not None:
                run.log.append("CP-SAT found no allocation in time: returning the best heuristic one")
                best = run.start_point
            break
        best = v.assignment(_solution(solver))
        value = int(round(solver.objective_value))
        if code != cp_model.OPTIMAL:
            status = Status.FEASIBLE
            bound = level_bound
            run.log.append(f"not proven optimal at {level.name}: {value} against a bound of {bound:.0f} "
                           f"(gap {100 * (value - bound) / max(abs(value), 1):.2f} %, in the level's integer units)")
            break
        model.add(expr == value)
        proven += 1
        current_hint = best
    if best is None:
        return run.outcome(Status.NO_SOLUTION, None, run.best_bound)
    _check_stable(problem, best)
    if status is Status.OPTIMAL:
        return run.optimal(best)
    run.log.append("stopped by the work or time limit: same inputs, seed and time limit give the same "
                   "allocation unless the wall clock stopped it first (a loaded machine)")
    # The gap is the stopped level's (in the log): a bound on the total cost says nothing
    # about a lexicographic optimum.
    return dataclasses.replace(run.outcome(Status.FEASIBLE, best, None), levels_proven=proven)


def _meets_hard(problem: ProblemData, assignment: np.ndarray, v: Variables) -> bool:
    """The allocation uses only the model's pairs, keeps places and fills, links and quotas."""
    a = np.asarray(assignment, dtype=np.int64)
    if (a < 0).any() or (v.index[np.arange(problem.n_workers), a] < 0).any():
        return False
    fill = np.bincount(a, minlength=problem.n_lines)
    if (fill > problem.capacity).any() or (problem.mandatory & (fill == 0)).any():
        return False
    return meets_rules(problem, a)
