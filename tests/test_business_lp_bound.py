"""solve_rules' step 7: the LP bound of a level (allocator/solvers/cpsat/lp_bound.py).

What must hold: the bound is a lower bound on the level's optimum (HiGHS's MILP, level by
level, in tests/helpers/highs_reference.py, is the judge), it is no weaker than the flow bound
it joins, its reduced-cost certificate holds exactly for allocations of ``F_k``, the fixing it
allows never removes a pair of an allocation that is optimal on every level, and the engine
with it still reaches HiGHS's optimum on every level.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from allocator.engine import rule_breaches, verify
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
from allocator.solvers.base import SolveOptions, Status
from allocator.solvers.cpsat import rules
from allocator.solvers.cpsat.levels import levels
from allocator.solvers.cpsat.lp_bound import lp_bound
from allocator.solvers.scaling import allowed_pairs, cpsat_budget, integer_costs
from benchmarks.instances import generate_instance
from tests.helpers.highs_reference import REL_TOL, solve_reference

RUNS = [(120, 40, 1, 6), (120, 40, 2, 6), (120, 40, 3, 6), (60, 20, 1, 4)]


def _problem(m: int, n: int, seed: int, links: int) -> ProblemData:
    return ProblemData.from_snapshot(
        RunSnapshot.parse(generate_instance(m, n, seed, links=links, quotas=3, tiers=3))
    )


def _setup(p: ProblemData):
    m, n = p.n_workers, p.n_lines
    costs = integer_costs(p, budget=cpsat_budget(m), max_tie_range=1, pairs=allowed_pairs(p))
    todo = levels(p, costs.workers, costs.lines, costs.base)
    index = np.full((m, n), -1, dtype=np.int64)
    index[costs.workers, costs.lines] = np.arange(costs.workers.size)
    keep = rules.link_reach(p, costs, p.capacity[costs.lines] > 0)
    return costs, todo, index, keep


def _flow_bound(p, costs, keep, todo, values, k) -> int:
    """The bound solve_rules had before the LP: the flow with the solved levels' multiplier,
    plus what the links and a broken quota add (steps 1, 1b, 2b, 2c)."""
    mu = rules._multiplier(todo, k, p.n_lines)
    coefficients = todo[k].coefficients
    if mu:
        coefficients = coefficients + np.int64(mu) * sum(todo[j].coefficients for j in range(k))
    flow = rules.level_flow(p, costs, keep, coefficients)
    bound = flow.bound - mu * sum(values[:k])
    _excess, delta = rules.link_excess(p, costs, keep, flow.reduced)
    _extra, kappa = rules.quota_excess(p, costs, keep, flow.reduced, flow.assignment)
    return bound + int(np.ceil(delta + kappa))


@pytest.fixture(scope="module", params=RUNS, ids=lambda r: f"{r[0]}x{r[1]}-seed{r[2]}")
def case(request):
    p = _problem(*request.param)
    ref = solve_reference(p, time_limit=120)
    assert ref.status == "optimal", ref.status
    costs, todo, index, keep = _setup(p)
    # The reference allocation is optimal on every level: its integer level values are the
    # optima v_k of the engine's levels (exact grid), and it lies in every F_k.
    values = [rules.level_value(lv, costs, ref.assignment, index) for lv in todo]
    for got, want in zip(p.objective_levels(ref.assignment), ref.levels, strict=True):
        assert math.isclose(got, want, rel_tol=REL_TOL, abs_tol=1e-6)
    return p, ref, costs, todo, index, keep, values


def test_the_lp_bound_lies_between_the_flow_bound_and_the_highs_optimum(case):
    p, ref, costs, todo, index, keep, values = case
    tighter = 0
    for k, level in enumerate(todo):
        solved = [(todo[j].coefficients, values[j]) for j in range(k)]
        lp = lp_bound(p, costs.workers, costs.lines, keep, solved, level.coefficients)
        assert lp is not None, level.name
        flow = _flow_bound(p, costs, keep, todo, values, k)
        assert flow <= lp.bound <= values[k], (level.name, flow, lp.bound, values[k])
        # Rounding the duals loses less than one unit against HiGHS's own optimum.
        assert lp.bound >= math.ceil(lp.lp_value - 1.0), (lp.bound, lp.lp_value)
        tighter += lp.bound > flow
    # With the solved levels as a multiplier the flow knows little of the last level.
    assert tighter >= 1


def _certificate_holds(p: ProblemData, lp, used: np.ndarray, assignment: np.ndarray, value: int) -> bool:
    """S value >= B + sum_{R > 0} R x + sum_{R < 0} |R| (1 - x) for the allocation ``x`` (pairs
    ``used``, lines ``assignment``): the inequality the bound and the fixing rest on, in integers."""
    r, x, inside = lp.reduced.tolist(), used.tolist(), lp.in_lp.tolist()
    terms = sum(ri for ri, xi, c in zip(r, x, inside, strict=True) if c and ri > 0 and xi)
    terms += sum(-ri for ri, xi, c in zip(r, x, inside, strict=True) if c and ri < 0 and not xi)
    site_of = p.site[assignment]
    for li, site, rs in lp.sites:
        on = int(site_of[lp.links[li][0]]) == site
        terms += rs if rs > 0 and on else -rs if rs < 0 and not on else 0
    return value * lp.scale >= lp.scaled + terms


def _reference_pairs(p, ref, costs, index) -> np.ndarray:
    """(P,) bool: the pairs of HiGHS's reference allocation."""
    used = np.zeros(costs.workers.size, dtype=bool)
    used[index[np.arange(p.n_workers), ref.assignment]] = True
    return used


def test_the_certificate_holds_exactly_for_the_reference_allocation(case):
    p, ref, costs, todo, index, keep, values = case
    used = _reference_pairs(p, ref, costs, index)
    for k, level in enumerate(todo):
        solved = [(todo[j].coefficients, values[j]) for j in range(k)]
        lp = lp_bound(p, costs.workers, costs.lines, keep, solved, level.coefficients)
        assert _certificate_holds(p, lp, used, ref.assignment, values[k]), level.name


def test_column_generation_from_a_few_pairs_gives_the_same_bound(case):
    """HiGHS on a few pairs per worker and the reference's, the others priced in by rounds:
    the same bound as HiGHS on all kept pairs, and a certificate that holds."""
    p, ref, costs, todo, index, keep, values = case
    m = p.n_workers
    used = _reference_pairs(p, ref, costs, index)
    first = np.zeros(costs.workers.size, dtype=bool)
    first[np.searchsorted(costs.workers, np.arange(m))] = True  # each worker's first pair
    for k, level in enumerate(todo):
        solved = [(todo[j].coefficients, values[j]) for j in range(k)]
        whole = lp_bound(p, costs.workers, costs.lines, keep, solved, level.coefficients)
        part = lp_bound(p, costs.workers, costs.lines, keep, solved, level.coefficients, columns=used | first)
        assert part.rounds >= 1 and part.solved_columns <= part.columns
        assert part.bound == whole.bound, (level.name, part.bound, whole.bound)
        assert _certificate_holds(p, part, used, ref.assignment, values[k]), level.name
        # Columns that hold no allocation: HiGHS takes all of them.
        none = lp_bound(p, costs.workers, costs.lines, keep, solved, level.coefficients, columns=first & ~used)
        assert none is not None and none.bound == whole.bound


def test_fixing_with_the_lp_keeps_every_pair_of_the_reference_allocation(case):
    p, ref, costs, todo, index, keep, values = case
    m = p.n_workers
    used = index[np.arange(m), ref.assignment]
    removed_any = 0
    for k, level in enumerate(todo):
        solved = [(todo[j].coefficients, values[j]) for j in range(k)]
        lp = lp_bound(p, costs.workers, costs.lines, keep, solved, level.coefficients)
        gone = lp.removable(keep, values[k], costs.workers)
        assert not gone[used].any(), level.name
        assert not (gone & ~keep).any()
        removed_any += int(gone.sum())
        keep = keep & ~gone  # as solve_rules does once the level is solved
    assert removed_any > 0


#: Runs for the whole solve: the ones above (the LP proves the last level) and runs where
#: CP-SAT still has to search after the LP's fixing (one level, or two tiers).
ENGINE_RUNS = [*((m, n, s, links, 3) for m, n, s, links in RUNS), (120, 40, 1, 12, 1), (150, 40, 3, 15, 2)]


@pytest.mark.parametrize("run", ENGINE_RUNS, ids=lambda r: f"{r[0]}x{r[1]}-seed{r[2]}-tiers{r[4]}")
def test_the_engine_with_the_lp_still_equals_highs_level_by_level(run):
    m, n, seed, links, tiers = run
    p = ProblemData.from_snapshot(
        RunSnapshot.parse(generate_instance(m, n, seed, links=links, quotas=3, tiers=tiers))
    )
    out = rules.solve_rules(p, SolveOptions(time_limit=120))
    assert out.status is Status.OPTIMAL, out.log
    assert any(": LP bound " in line for line in out.log), out.log
    assert verify(p, out.assignment) == [] and rule_breaches(p, out.assignment) == []
    ref = solve_reference(p, time_limit=120)
    assert ref.status == "optimal", ref.status
    for g, w in zip(p.objective_levels(out.assignment), ref.levels, strict=True):
        assert math.isclose(g, w, rel_tol=REL_TOL, abs_tol=1e-6), (out.log, ref.levels)


def test_with_and_without_fixing_agree_when_cpsat_searches_after_the_lp():
    p = ProblemData.from_snapshot(RunSnapshot.parse(generate_instance(150, 40, 3, links=15, quotas=3, tiers=2)))
    fixed = rules.solve_rules(p, SolveOptions(time_limit=120))
    plain = rules.solve_rules(p, SolveOptions(time_limit=120), fixing=False)
    assert fixed.status is Status.OPTIMAL and plain.status is Status.OPTIMAL, (fixed.log, plain.log)
    assert any(": LP bound " in line for line in fixed.log), fixed.log
    for g, w in zip(p.objective_levels(fixed.assignment), p.objective_levels(plain.assignment), strict=True):
        assert math.isclose(g, w, rel_tol=REL_TOL, abs_tol=1e-6)


def test_the_lp_is_skipped_by_the_pair_count_and_the_time_limit(monkeypatch):
    p = _problem(120, 40, 1, 6)
    monkeypatch.setattr(rules, "LP_PAIRS_PER_SECOND", 1)
    out = rules.solve_rules(p, SolveOptions(time_limit=120))
    skipped = [line for line in out.log if "no LP bound" in line]
    assert skipped and "too many for a 120 s limit" in skipped[0], out.log
    assert not any(": LP bound " in line for line in out.log)
    assert out.status is Status.OPTIMAL, out.log


def test_the_lp_bound_is_deterministic():
    p = _problem(60, 20, 1, 4)
    costs, todo, index, keep = _setup(p)
    first = lp_bound(p, costs.workers, costs.lines, keep, [], todo[0].coefficients)
    again = lp_bound(p, costs.workers, costs.lines, keep, [], todo[0].coefficients)
    assert (first.scaled, first.scale, first.bound) == (again.scaled, again.scale, again.bound)
    assert np.array_equal(first.reduced, again.reduced)


def test_a_single_level_stopped_early_reports_the_lp_bound_as_its_gap():
    # 600 x 120 with 40 links and one level: with a 2 s limit the search stops before it
    # proves the start optimal (its work limit); the LP's bound is the gap's.
    p = ProblemData.from_snapshot(RunSnapshot.parse(generate_instance(600, 120, 3, links=40, quotas=3)))
    out = rules.solve_rules(p, SolveOptions(time_limit=2.0))
    assert any(line.startswith("cost: LP bound ") for line in out.log), out.log
    ref = solve_reference(p, time_limit=120)
    assert ref.status == "optimal", ref.status
    if out.status is Status.OPTIMAL:  # a fast machine may prove it: then it is HiGHS's optimum
        assert math.isclose(out.objective, ref.levels[0], rel_tol=REL_TOL, abs_tol=1e-6)
        return
    assert out.status is Status.FEASIBLE, out.log
    assert out.best_bound is not None, out.log
    assert out.best_bound <= ref.levels[0] + 1e-6 <= out.objective + 2e-6
    assert (out.objective - out.best_bound) / out.objective < 0.01, out.log
    assert any("against a bound of" in line for line in out.log), out.log


def test_the_bound_stays_rigorous_when_the_duals_are_off(case, monkeypatch):
    """The bound holds for any duals (module docstring): HiGHS's duals with noise and wrong
    signs on some rows still give a bound below the optimum and a certificate that holds."""
    import allocator.solvers.cpsat.lp_bound as lp_module

    p, ref, costs, todo, index, keep, values = case
    real = lp_module._solution
    rng = np.random.default_rng(7)

    def noisy(*args, **kwargs):
        res = real(*args, **kwargs)
        for name in ("y_eq", "y_ub"):
            y = np.asarray(getattr(res, name), dtype=np.float64)
            if y.size:
                setattr(res, name, y + rng.normal(0.0, 1e-3 * (1.0 + np.abs(y)))
                        + np.where(rng.random(y.size) < 0.05, 1.0, 0.0))
        return res

    monkeypatch.setattr(lp_module, "_solution", noisy)
    used = _reference_pairs(p, ref, costs, index)
    for k, level in enumerate(todo):
        solved = [(todo[j].coefficients, values[j]) for j in range(k)]
        lp = lp_bound(p, costs.workers, costs.lines, keep, solved, level.coefficients)
        assert lp is not None and lp.bound <= values[k], (level.name, lp.bound, values[k])
        assert _certificate_holds(p, lp, used, ref.assignment, values[k]), level.name
        assert not lp.removable(keep, values[k], costs.workers)[used].any()


def test_a_whole_lp_solution_is_an_optimal_allocation_of_the_level(case):
    """When HiGHS's solution is whole it is taken as an allocation only after the engine's
    checks; then, as the optimum of a relaxation, it reaches the level's optimum."""
    from allocator.solvers.cpsat.lp_bound import lp_allocation

    p, ref, costs, todo, index, keep, values = case
    wholes = 0
    for k, level in enumerate(todo):
        solved = [(todo[j].coefficients, values[j]) for j in range(k)]
        lp = lp_bound(p, costs.workers, costs.lines, keep, solved, level.coefficients)
        whole = lp_allocation(lp, costs.workers, costs.lines, p.n_workers)
        if whole is None:
            continue
        if rules._in_level_set(p, costs, todo, values, k, whole, index):
            assert rules.level_value(level, costs, whole, index) == values[k] == lp.bound, level.name
            wholes += 1
    assert wholes >= 1  # on these runs HiGHS's vertex is whole on most levels


def test_the_lp_prints_nothing():
    """HiGHS's banner and log stay off standard output (the command line writes JSON there): in a
    fresh process, where HiGHS would print its banner on first use."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "from allocator.problem import ProblemData\n"
        "from allocator.snapshot import RunSnapshot\n"
        "from allocator.solvers.base import SolveOptions\n"
        "from allocator.solvers.cpsat.rules import solve_rules\n"
        "from benchmarks.instances import generate_instance\n"
        "p = ProblemData.from_snapshot(RunSnapshot.parse(generate_instance(60, 20, 3, links=4, quotas=2, tiers=2)))\n"
        "out = solve_rules(p, SolveOptions(time_limit=60))\n"
        "assert any('LP bound' in line for line in out.log), out.log\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "", done.stdout


def test_the_lp_runs_after_another_highs_used_two_threads(case):
    """HiGHS refuses to run an object asking for another thread count than one run before in
    the process; the LP bound asks for none, so it still gives its bound."""
    from tests.helpers.highs_threads import run_highs_with_threads

    run_highs_with_threads(2)
    p, ref, costs, todo, index, keep, values = case
    lp = lp_bound(p, costs.workers, costs.lines, keep, [], todo[0].coefficients)
    assert lp is not None and lp.bound <= values[0]


def test_each_lp_round_gets_its_own_seconds_on_top_of_the_run_time_so_far():
    """HiGHS's time limit is on the object's total run time over every run(): a round given
    ``s`` seconds must set the limit to the run time so far plus ``s`` (with ``s`` alone, a later
    round stopped at once once the earlier rounds had used ``s``)."""
    from scipy.sparse import coo_matrix

    from allocator.solvers.cpsat.lp_bound import _HighsModel

    model = _HighsModel(np.array([1.0]), np.array([1.0]))
    model.add_columns(np.arange(2), np.array([1.0, 2.0]), coo_matrix(np.ones((1, 2))).tocsc())
    status, x, fun, duals = model.run(None)
    assert status == "optimal" and fun == 1.0 and list(x) == [1.0, 0.0]
    before = model.h.getRunTime()
    assert before > 0.0
    model.run(5.0)
    limit = model.h.getOptionValue("time_limit")[1]  # (status, value)
    assert before + 5.0 <= limit <= model.h.getRunTime() + 5.0
