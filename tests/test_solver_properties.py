"""Property tests of the solvers on random small runs (the shared strategy), against brute force.

For every drawn run: the solver's status agrees with brute force (infeasible exactly when no
allocation exists), every allocation is valid, its objective equals the recomputed one and
no allocation is better; in stable mode there is no blocking pair and the optimum is the
best stable allocation. Determinism: the same seed gives the same allocation whatever the
thread count, another seed the same objective, shuffled input lists the same allocation.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ortools.sat.python import cp_model

from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
from allocator.solvers import SolveOptions, Status, solve_problem
from allocator.solvers.cpsat.constraints import add_constraints
from allocator.solvers.cpsat.heuristic import deferred_acceptance, flow_repair
from allocator.solvers.cpsat.model import solve_stable
from allocator.solvers.cpsat.order import count_better, count_not_worse
from allocator.solvers.cpsat.pruning import prune
from allocator.solvers.cpsat.variables import make_variables
from allocator.stability import blocking_pairs, strictly_less
from tests.helpers.bruteforce import assert_valid, enumerate_allocations
from tests.helpers.strategies import snapshots

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _problem(d: dict) -> ProblemData:
    return ProblemData.from_snapshot(RunSnapshot.parse(d))


def _opts(threads: int = 2) -> SolveOptions:
    return SolveOptions(threads=threads, time_limit=30)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-7 * max(1.0, abs(a), abs(b))


def _check_against_brute_force(problem: ProblemData, out, stable: bool) -> None:
    enum = enumerate_allocations(problem, check_stability=stable)
    best = enum.best(stable=stable)
    if best is None:
        assert out.status is Status.INFEASIBLE
        assert out.assignment is None
        return
    assert out.status is Status.OPTIMAL, out.log
    assert_valid(problem, out.assignment)
    assert out.objective == pytest.approx(problem.objective(out.assignment), rel=1e-12, abs=1e-12)
    assert _close(out.objective, best), (out.objective, best)
    if stable:
        assert blocking_pairs(problem, out.assignment) == []


@SETTINGS
@given(snapshots(stability=False))
def test_flow_is_optimal_and_valid(d):
    problem = _problem(d)
    _check_against_brute_force(problem, solve_problem(problem, _opts()), stable=False)


@SETTINGS
@given(snapshots(stability=True))
def test_stable_mode_is_the_best_stable_allocation(d):
    problem = _problem(d)
    _check_against_brute_force(problem, solve_problem(problem, _opts()), stable=True)


@SETTINGS
@given(snapshots(stability=True))
def test_encoding_without_pruning_agrees(d):
    """The cumulative encoding alone (no pruning) finds the same optimum as brute force."""
    problem = _problem(d)
    out = solve_stable(problem, _opts(), prune_pairs=False, flow_shortcut=False)
    _check_against_brute_force(problem, out, stable=True)


@SETTINGS
@given(snapshots(stability=True))
def test_stable_mode_without_flow_shortcut(d):
    """The full path (pruning, combs, CP-SAT) even when the flow optimum is stable."""
    problem = _problem(d)
    _check_against_brute_force(problem, solve_stable(problem, _opts(), flow_shortcut=False), stable=True)


@SETTINGS
@given(snapshots(stability=True), st.booleans())
def test_model_accepts_exactly_the_stable_allocations(d, pruned):
    """Fix x to each valid allocation (assumptions): the model is satisfiable iff it is stable.

    This checks the encoding (and, with pruning, that no stable allocation lost a pair)
    allocation by allocation, independently of the objective.
    """
    problem = _problem(d)
    enum = enumerate_allocations(problem)
    assume(len(enum.allocations) > 0)
    pr = prune(problem, enabled=pruned)
    model = cp_model.CpModel()
    v = make_variables(model, pr.keep)
    add_constraints(model, v, problem, candidates=pr.candidates)
    for a, stable in zip(enum.allocations[:40], enum.stable[:40], strict=True):
        ks = v.index[np.arange(problem.n_workers), a]
        if (ks < 0).any():
            assert not stable, "pruning removed a pair of a stable allocation"
            continue
        model.clear_assumptions()
        model.add_assumptions([v.x[k] for k in ks])
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        status = solver.solve(model)
        assert status in (cp_model.OPTIMAL, cp_model.INFEASIBLE)
        assert (status == cp_model.OPTIMAL) == stable, (a.tolist(), blocking_pairs(problem, a))


@SETTINGS
@given(snapshots(stability=True))
def test_pruning_keeps_every_stable_allocation(d):
    problem = _problem(d)
    enum = enumerate_allocations(problem)
    pr = prune(problem)
    stable = enum.allocations[enum.stable]
    rows = np.arange(problem.n_workers)
    for a in stable:
        assert pr.keep[rows, a].all(), f"pruning removed a pair of the stable allocation {a.tolist()}"


@SETTINGS
@given(snapshots(stability=True))
def test_heuristic_starts_are_stable_when_given(d):
    problem = _problem(d)
    for a in (deferred_acceptance(problem, problem.settings.rng_seed), flow_repair(problem, prune(problem).keep)):
        if a is not None:
            assert_valid(problem, a)
            assert blocking_pairs(problem, a) == []


@SETTINGS
@given(snapshots(), st.integers(0, 2**31))
def test_same_seed_same_allocation_any_threads_other_seed_same_objective(d, other_seed):
    problem = _problem(d)
    one = solve_problem(problem, _opts(threads=1))
    assume(one.status is Status.OPTIMAL)
    for threads in (2, 4):
        again = solve_problem(problem, _opts(threads=threads))
        assert again.status is Status.OPTIMAL
        assert again.assignment.tobytes() == one.assignment.tobytes()
    d2 = {**d, "settings": {**d["settings"], "rng_seed": other_seed}}
    other = solve_problem(_problem(d2), _opts())
    assert other.status is Status.OPTIMAL
    assert _close(other.objective, one.objective)


@SETTINGS
@given(snapshots(), st.randoms(use_true_random=False))
def test_shuffled_input_lists_give_the_same_allocation(d, rnd: random.Random):
    problem = _problem(d)
    out = solve_problem(problem, _opts())
    shuffled = {k: (rnd.sample(v, len(v)) if isinstance(v, list) else v) for k, v in d.items()}
    shuffled["job_lines"] = [{**j, "preferencer_ids": rnd.sample(j["preferencer_ids"], len(j["preferencer_ids"]))} for j in shuffled["job_lines"]]
    out2 = solve_problem(_problem(shuffled), _opts())
    assert out2.status is out.status
    if out.assignment is not None:
        # Indices follow sorted ids, so the same allocation has the same index vector.
        assert out2.assignment.tobytes() == out.assignment.tobytes()


values = st.lists(
    st.sampled_from([-2.0, -1.0, 0.0, 1e-12, 1.0, 1.0 + 1e-10, 1.0 + 1e-8, 1.5, 2.0, 1e6, 1e6 * (1 + 1e-10), 1e6 + 1]),
    max_size=12,
)


@given(values, values)
def test_sorted_counts_match_strictly_less(vals, queries):
    b = np.sort(np.array(vals, dtype=float))
    a = np.array(queries, dtype=float)
    expect_not_worse = [int((~strictly_less(q, b)).sum()) for q in a]
    expect_better = [int(strictly_less(b, q).sum()) for q in a]
    assert count_not_worse(b, a).tolist() == expect_not_worse
    assert count_better(b, a).tolist() == expect_better
