"""Large stable runs (allocator/solvers/cpsat/stable_lp.py and model._large_phase): the LP bound
never exceeds the stable optimum, the restricted searches return stable allocations with the
same optimum where the bound proves it, and a re-run returns the same allocation.

The large path normally starts above cuts.MAX_LP_PAIRS kept pairs; ``solve_stable(...,
large_pairs=0)`` sends small runs down it, so brute force (tests/helpers/bruteforce.py) and
HiGHS on the plain model (benchmarks/highs_stable.py) can check it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
from allocator.solvers import SolveOptions, Status
from allocator.solvers.cpsat.model import _aligned, kept_structure, solve_stable
from allocator.solvers.cpsat.pruning import prune
from allocator.solvers.cpsat.stable_lp import stable_lp_bound
from allocator.solvers.cpsat.variables import Variables
from allocator.solvers.flow import solve_flow
from allocator.solvers.scaling import allowed_pairs, cpsat_budget, integer_costs
from allocator.stability import blocking_pairs
from tests.helpers.bruteforce import assert_valid, enumerate_allocations
from tests.helpers.stable_runs import demo_stable, highs_stable
from tests.helpers.strategies import snapshots

SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _kept(problem: ProblemData):
    """What the large path builds before its LP: the pruning, the integer costs of the kept
    pairs, their variables and stability structure, and each kept pair's integer cost."""
    pr = prune(problem)
    pairs = allowed_pairs(problem)
    kept = pr.keep[pairs[0], pairs[1]]
    costs = integer_costs(problem, budget=cpsat_budget(problem.n_workers), max_tie_range=1,
                          pairs=(pairs[0][kept], pairs[1][kept]))
    v, st = kept_structure(problem, pr)
    base = _aligned(costs.workers, costs.lines, costs.base, v, problem)
    return pr, costs, v, st, base


def _lp(problem: ProblemData, rounds: int = 0, combs_from: int = 0):
    """The LP bound over the pruned pairs, with the integer costs and the pairs' costs."""
    _, costs, v, st, base = _kept(problem)
    if st is None:
        return None, costs, v
    lp = stable_lp_bound(v.workers.astype(np.int64), v.lines.astype(np.int64), problem, st, base, None,
                         deadline=float("inf"), rounds=rounds, combs_from=combs_from)
    return lp, costs, v


def _integer_cost(v: Variables, costs, problem: ProblemData, assignment: np.ndarray) -> int:
    base = np.zeros((problem.n_workers, problem.n_lines), dtype=np.int64)
    base[costs.workers, costs.lines] = costs.base
    return int(base[np.arange(problem.n_workers), assignment].sum())


@SETTINGS
@given(snapshots(stability=True, max_workers=6, max_lines=3))
@pytest.mark.parametrize("rounds", [1, 0])
def test_the_lp_bound_never_exceeds_the_stable_optimum(rounds, d):
    """In the integer costs, over every stable allocation brute force finds: the bound after
    one round of column generation (far from the LP optimum: only the Farley term makes it a
    bound) and after convergence (0: up to MAX_ROUNDS)."""
    problem = ProblemData.from_snapshot(RunSnapshot.parse(d))
    enum = enumerate_allocations(problem)
    stable = enum.allocations[enum.stable]
    assume(len(stable) > 0)
    lp, costs, v = _lp(problem, rounds)
    assume(lp is not None and lp.bound is not None)
    best = min(_integer_cost(v, costs, problem, a) for a in stable)
    assert lp.bound <= best


# Four variants of the same property on the same runs: 40 examples each (160 in all, against
# 80 for each of the two variants above) halves its 23 s.
@settings(SETTINGS, max_examples=40)
@given(snapshots(stability=True, max_workers=6, max_lines=3))
@pytest.mark.parametrize("rounds", [2, 0])
@pytest.mark.parametrize("every", [False, True])
def test_the_lp_bound_with_combs_never_exceeds_the_stable_optimum(every, rounds, d):
    """The same with comb rows from the first round on (so the second round's duals price
    combs, and up to MAX_ROUNDS): the bound from any round's duals, the combs' rows pricing
    every pair in the LP or not, stays below every stable allocation. Few tiny runs violate a
    comb, so ``every`` adds each line and prefix's comb whether violated or not: a comb that
    cut off a stable allocation would show."""
    import allocator.solvers.cpsat.stable_lp as stable_lp

    problem = ProblemData.from_snapshot(RunSnapshot.parse(d))
    enum = enumerate_allocations(problem)
    stable = enum.allocations[enum.stable]
    assume(len(stable) > 0)
    with pytest.MonkeyPatch.context() as mp:
        if every:
            mp.setattr(stable_lp, "COMB_VIOLATION", -np.inf)
        lp, costs, v = _lp(problem, rounds, combs_from=1)
    assume(lp is not None and lp.bound is not None)
    best = min(_integer_cost(v, costs, problem, a) for a in stable)
    assert lp.bound <= best


@SETTINGS
@given(snapshots(stability=True, max_workers=6, max_lines=3))
@pytest.mark.parametrize("combs", [False, True])
def test_the_large_path_returns_a_stable_allocation_and_a_true_bound(combs, d):
    """Down the large path: a valid stable allocation, never better than the brute-force
    optimum, the bound never above it, and ``optimal`` only at the optimum; with the LP's
    comb rows from its first round (``combs``) as without."""
    import allocator.solvers.cpsat.model as model

    problem = ProblemData.from_snapshot(RunSnapshot.parse(d))
    enum = enumerate_allocations(problem)
    stable = enum.allocations[enum.stable]
    with pytest.MonkeyPatch.context() as mp:
        if combs:
            mp.setattr(model, "LARGE_COMB_FROM", 1)
            mp.setattr(model, "LARGE_COMB_MIN_ITERATIONS", 0)
        out = solve_stable(problem, SolveOptions(time_limit=30), large_pairs=0)
    if len(stable) == 0:
        assert out.status in (Status.INFEASIBLE, Status.NO_SOLUTION), out.log
        return
    best = enum.best(stable=True)
    tol = 1e-6 * max(1.0, abs(best))
    assert out.status in (Status.OPTIMAL, Status.FEASIBLE), out.log
    assert_valid(problem, out.assignment)
    assert blocking_pairs(problem, out.assignment) == []
    assert out.objective >= best - tol
    assert out.best_bound <= best + tol
    if out.status is Status.OPTIMAL:
        assert out.objective == pytest.approx(best, rel=1e-7, abs=1e-9)


def test_on_a_medium_run_the_lp_bound_lies_between_the_flow_and_highs_optimum():
    """The converged LP is at least the flow over the kept pairs (its rows contain the flow's)
    and at most the stable optimum HiGHS proves on the plain model; the large path's answer is
    stable, no better than that optimum, and its reported bound no higher."""
    p = demo_stable(60, 20, 1)
    highs = highs_stable(60, 20, 1)
    assert highs["status"] == "optimal"
    lp, costs, v = _lp(p)
    assert lp is not None and lp.converged and lp.bound is not None, lp
    flow = solve_flow(p, costs)
    assert lp.bound >= flow.base_total - 1
    assert lp.bound > flow.base_total, "the stability rows should lift the bound above the flow's"
    optimum = highs["objective"]
    assert costs.unscaled(lp.bound - 0.5 * p.n_workers) <= optimum + 1e-7 * optimum
    out = solve_stable(p, SolveOptions(time_limit=30), large_pairs=0)
    assert out.status in (Status.OPTIMAL, Status.FEASIBLE)
    assert blocking_pairs(p, out.assignment) == []
    assert out.objective >= optimum - 1e-7 * optimum
    assert out.best_bound <= optimum + 1e-7 * optimum
    assert any(line.startswith("LP bound:") for line in out.log), out.log


def test_combs_lift_the_converged_lp_bound_and_repeat_themselves():
    """On a run whose converged LP violates combs: the bound with comb rows is at least the
    bound without (and here above it), still below HiGHS's proven stable optimum, and the same
    rows, bound and LP point on a second run."""
    p = demo_stable(60, 20, 1)
    plain, costs, v = _lp(p)
    with_combs = [_lp(p, combs_from=1)[0] for _ in range(2)]
    assert plain is not None and plain.converged and plain.bound is not None
    first, second = with_combs
    assert first.combs > 0, first.describe()
    assert first.bound >= plain.bound
    assert first.bound > plain.bound, "the combs should lift this run's bound"
    highs = highs_stable(60, 20, 1)
    assert highs["status"] == "optimal"
    assert costs.unscaled(first.bound - 0.5 * p.n_workers) <= highs["objective"] * (1 + 1e-7)
    assert (second.bound, second.combs, second.rounds) == (first.bound, first.combs, first.rounds)
    assert second.x.tobytes() == first.x.tobytes()


def test_the_large_path_returns_the_same_allocation_twice(monkeypatch):
    """Work limits far below what the restricted searches need stop them at the same point on
    every re-run (threads do not matter: the searches use one worker)."""
    import allocator.solvers.cpsat.model as model

    monkeypatch.setattr(model, "LARGE_WORK_PER_SECOND", (0.0005 / 60, 0.0005 / 60))
    p = demo_stable(150, 50, 0)
    outs = [solve_stable(p, SolveOptions(threads=t, time_limit=60), large_pairs=0) for t in (2, 1)]
    for out in outs:
        assert out.status is Status.FEASIBLE, out.log
        assert any(line.startswith("restricted searches ended") for line in out.log), out.log
        assert blocking_pairs(p, out.assignment) == []
        assert out.best_bound <= out.objective
    assert outs[0].assignment.tobytes() == outs[1].assignment.tobytes()
    assert outs[0].best_bound == outs[1].best_bound


def test_the_start_from_the_lp_support_is_stable_and_repeatable(monkeypatch):
    """When the proof search runs out of work, CP-SAT over the LP's support gives the
    neighbourhood search its start: a stable allocation, the same on a re-run, never worse
    than the answer without it (it is offered as a start, so the answer is at most its cost)."""
    import allocator.solvers.cpsat.model as model

    monkeypatch.setattr(model, "DETERMINISTIC_PER_SECOND", 0.3 / 60)
    p = demo_stable(150, 50, 0)
    outs = [solve_stable(p, SolveOptions(threads=t, time_limit=60)) for t in (2, 1)]
    for out in outs:
        assert out.status is Status.FEASIBLE, out.log
        line = next(x for x in out.log if x.startswith("start from the LP's support"))
        assert "cost" in line, out.log
        cost = float(line.rsplit("cost ", 1)[1])
        assert out.objective <= cost * (1 + 1e-5)  # the log prints 6 significant digits
        assert blocking_pairs(p, out.assignment) == []
        assert any(x.startswith("stopped by the work limit") for x in out.log), out.log
    assert outs[0].assignment.tobytes() == outs[1].assignment.tobytes()


def test_the_stable_lp_runs_after_another_highs_used_two_threads():
    """HiGHS refuses an object asking for another thread count than one run before in the
    process (a business-rules LP, a caller's highspy): the stable LP asks for none."""
    from tests.helpers.highs_threads import run_highs_with_threads

    run_highs_with_threads(2)
    lp, costs, v = _lp(demo_stable(60, 20, 1))
    assert lp is not None and lp.bound is not None, lp


def _lns_setup(problem: ProblemData):
    """What the large path hands its neighbourhood search: the run, the pruning, the costs, the
    kept pairs with their integer costs, and the LP (one round: its reduced costs rank the pool)."""
    from allocator.solvers.cpsat import model

    pr, costs, v, st, base = _kept(problem)
    workers, lines = v.workers.astype(np.int64), v.lines.astype(np.int64)
    lp = stable_lp_bound(workers, lines, problem, st, base, None, deadline=float("inf"), rounds=1)
    run = model._StableRun(problem, SolveOptions(time_limit=60))
    return model, run, pr, costs, workers, lines, base, lp


def test_the_neighbourhood_search_improves_a_stable_start_and_repeats_itself():
    """From the deferred-acceptance allocation (stable, far from the optimum) the neighbourhood
    search of the large path returns a stable allocation of every constraint of the run, no
    dearer than its start and here strictly cheaper, never below the stable optimum's bound, and
    the same allocation when run again (its neighbourhoods come from the seed and the work
    limits stop its rounds)."""
    from allocator.solvers.cpsat.heuristic import deferred_acceptance

    p = demo_stable(150, 50, 0)
    model, run, pr, costs, workers, lines, base, lp = _lns_setup(p)
    start = deferred_acceptance(p, run.seed)
    assert start is not None and blocking_pairs(p, start) == []
    start_value = int(base[start[workers] == lines].sum())
    pool = model._lns_pool(lp, workers, lines, base)
    results = []
    for _ in range(2):
        run.log.clear()
        best, value, by_clock = model._neighbourhood_search(run, pr, costs, workers, lines, pool, start.copy(),
                                                            start_value, None, 0.6, 6, lambda o, b: None)
        assert not by_clock, run.log
        assert blocking_pairs(p, best) == []
        assert_valid(p, best)
        assert value == int(base[best[workers] == lines].sum())
        assert value < start_value, run.log
        assert lp.bound is not None and value >= lp.bound
        results.append(best)
    assert results[0].tobytes() == results[1].tobytes()
    assert run.log[-1].startswith("neighbourhood search: 6 rounds"), run.log


def test_the_neighbourhood_pool_ranks_pairs_by_reduced_cost():
    """Each worker gets exactly its LARGE_LNS_PAIRS pairs of least reduced cost (or all its
    pairs when it has fewer), plus the pairs the LP uses."""
    p = demo_stable(60, 20, 1)
    model, run, pr, costs, workers, lines, base, lp = _lns_setup(p)
    pool = model._lns_pool(lp, workers, lines, base)
    for s in range(p.n_workers):
        mine = np.flatnonzero(workers == s)
        cheapest = mine[np.lexsort((lines[mine], lp.reduced[mine]))][: model.LARGE_LNS_PAIRS]
        expected = np.zeros(workers.size, dtype=bool)
        expected[cheapest] = True
        expected[mine] |= lp.x[mine] > 1e-6
        assert (pool[mine] == expected[mine]).all(), s


def test_without_the_lps_duals_the_pool_is_each_workers_cheapest_pairs():
    """An LP stopped before its first round's duals (a loaded machine) still gives the
    neighbourhood search a pool: each worker's LARGE_LNS_PAIRS cheapest kept pairs."""
    import dataclasses

    p = demo_stable(60, 20, 1)
    model, run, pr, costs, workers, lines, base, lp = _lns_setup(p)
    none = dataclasses.replace(lp, reduced=None, x=np.zeros_like(lp.x))
    pool = model._lns_pool(none, workers, lines, base)
    for s in range(p.n_workers):
        mine = np.flatnonzero(workers == s)
        expected = np.zeros(mine.size, dtype=bool)
        expected[np.lexsort((lines[mine], base[mine]))[: model.LARGE_LNS_PAIRS]] = True
        assert (pool[mine] == expected).all(), s
