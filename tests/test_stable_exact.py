"""Stable mode, exact and reproducible: each pruning rule against brute force, the optimum
against HiGHS on medium runs, and the same allocation when the time limit stops the search.

Brute force (tests/bruteforce.py) enumerates every allocation of a tiny run and marks the
weakly stable ones with the project's blocking-pair checker; HiGHS solves the plain
stability model (benchmarks/highs_stable.py: one constraint per pair that can block, no
pruning, no code shared with the solver) where brute force cannot go.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
from allocator.solvers import SolveOptions, Status, solve_problem
from allocator.solvers.cpsat.model import solve_stable
from allocator.solvers.cpsat.pruning import feasible_allocation, flow_rule_deletions, prune
from allocator.stability import blocking_pairs
from tests.helpers.bruteforce import assert_valid, enumerate_allocations
from tests.helpers.stable_runs import demo_stable, highs_stable
from tests.helpers.strategies import snapshots
from tests.test_solvers_flow import run

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _problem(d: dict) -> ProblemData:
    return ProblemData.from_snapshot(RunSnapshot.parse(d))


def _stable_allocations(problem: ProblemData) -> np.ndarray:
    enum = enumerate_allocations(problem)
    return enum.allocations[enum.stable]


# -- each pruning rule on its own, and all of them together, against brute force ------------


@SETTINGS
@given(snapshots(stability=True))
@pytest.mark.parametrize("rules", ["A", "B", "F", "ABF"])
def test_pruning_rule_never_removes_a_pair_of_a_stable_allocation(rules, d):
    """Whatever each rule removes (iterated to its fixpoint) is in no stable allocation, and
    when pruning says no stable allocation exists, brute force agrees."""
    problem = _problem(d)
    pr = prune(problem, rules=rules)
    stable = _stable_allocations(problem)
    rows = np.arange(problem.n_workers)
    for a in stable:
        assert pr.keep[rows, a].all(), (
            f"rules {rules} removed a pair of the stable allocation {a.tolist()}"
        )
    if pr.infeasible:
        assert len(stable) == 0


@SETTINGS
@given(snapshots(stability=True))
def test_pruning_from_a_smaller_start_keeps_what_it_was_given(d):
    """Started from the pairs of the stable allocations only (the tightest sound start),
    the rules remove none of them: each rule only uses that the allocations of interest
    lie in ``keep``."""
    problem = _problem(d)
    stable = _stable_allocations(problem)
    assume(len(stable) > 0)
    start = np.zeros_like(problem.allowed)
    rows = np.arange(problem.n_workers)
    for a in stable:
        start[rows, a] = True
    pr = prune(problem, keep=start)
    assert not pr.infeasible
    assert (pr.keep == start).all()


@SETTINGS
@given(snapshots())
def test_flow_rule_removes_exactly_the_pairs_of_no_allocation(d):
    """Rule F is exact: a pair survives it exactly when some valid allocation (stable or
    not) uses it; it finds an allocation exactly when brute force does."""
    problem = _problem(d)
    keep = problem.allowed & (problem.capacity >= 1)[None, :]
    enum = enumerate_allocations(problem, check_stability=False)
    out = flow_rule_deletions(problem, keep)
    if len(enum.allocations) == 0:
        assert out is None and feasible_allocation(problem, keep) is None
        return
    assert out is not None
    used = np.zeros_like(keep)
    rows = np.arange(problem.n_workers)
    for a in enum.allocations:
        used[rows, a] = True
    assert ((keep & ~out) == used).all()


def test_flow_rule_on_a_named_run():
    """s2 can only take a (one place), so no allocation puts s1 on a: rule F removes (s1, a)
    and nothing else; rules A and B cannot see it (nobody ranks anybody here)."""
    p = run(
        [("s1", ["rural"]), "s2"],
        [("a", 1), ("b", 1)],
        [("s1", "a", 1), ("s1", "b", 2)],
        eligibility=[{"job_line_id": "b", "included_qualification_ids": ["rural"]}],
        stability=True,
    )
    s1, s2, a, b = p.worker_index["s1"], p.worker_index["s2"], p.line_index["a"], p.line_index["b"]
    assert p.allowed[s1, a] and p.allowed[s1, b] and p.allowed[s2, a] and not p.allowed[s2, b]
    assert prune(p, rules="AB").keep[s1, a]
    pr = prune(p, rules="F")
    assert not pr.keep[s1, a] and pr.keep[s1, b] and pr.keep[s2, a]
    assert pr.removed_by_flow_rule == 1


# -- medium runs: the optimum equals HiGHS's proven optimum of the plain model ---------------


@pytest.mark.parametrize(("m", "n", "seed"), [(40, 14, 3), (60, 20, 1)])
def test_medium_stable_optimum_equals_highs(m, n, seed):
    p = demo_stable(m, n, seed)
    highs = highs_stable(m, n, seed)
    assert highs["status"] == "optimal"
    out = solve_problem(p, SolveOptions(time_limit=60))
    assert out.status is Status.OPTIMAL, out.log
    assert_valid(p, out.assignment)
    assert blocking_pairs(p, out.assignment) == []
    assert out.objective == pytest.approx(highs["objective"], rel=1e-7)


# -- the time limit stops the search: the same allocation every time -------------------------


def test_time_limited_search_returns_the_same_allocation_twice(monkeypatch):
    """A work limit far below what the proof needs (a few hundredths of CP-SAT's deterministic
    units for a run that needs over one) stops the search at the same point every time; the
    wall-clock limit (60 s) is far away, so it is the work limit that stops it."""
    import allocator.solvers.cpsat.model as model

    monkeypatch.setattr(model, "DETERMINISTIC_PER_SECOND", 0.03 / 60)
    p = demo_stable(150, 50, 0)
    outs = [solve_stable(p, SolveOptions(threads=t, time_limit=60)) for t in (2, 1)]
    for out in outs:
        assert out.status is Status.FEASIBLE, out.log
        assert any(line.startswith("stopped by the work limit") for line in out.log), out.log
        assert_valid(p, out.assignment)
        assert blocking_pairs(p, out.assignment) == []
        assert out.best_bound <= out.objective
    assert outs[0].assignment.tobytes() == outs[1].assignment.tobytes()


def test_the_work_budget_comes_from_the_time_limit_not_the_clock(monkeypatch):
    """Steps before the search that take longer (a loaded machine, a first import) leave the
    work budget as it was: it is read off the time limit, so the same inputs stop at the same
    point. Read off the clock, the slower run got less work and could stop elsewhere."""
    import time

    import allocator.solvers.cpsat.model as model
    from allocator.solvers.base import Callbacks

    monkeypatch.setattr(model, "DETERMINISTIC_PER_SECOND", 0.03 / 60)
    budgets: list[list[float]] = []
    real = model.run_cpsat

    def recording(*args, **kwargs):
        budgets[-1].append(kwargs.get("deterministic_time"))
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "run_cpsat", recording)

    class Slow(Callbacks):
        def on_phase(self, phase: str) -> None:
            if phase == "pruning":
                time.sleep(1.5)

    p = demo_stable(150, 50, 0)
    outs = []
    for callbacks in (Callbacks(), Slow()):
        budgets.append([])
        outs.append(solve_stable(p, SolveOptions(time_limit=60, callbacks=callbacks)))
    assert budgets[0] and budgets[0] == budgets[1], budgets
    for out in outs:
        assert any(line.startswith("stopped by the work limit") for line in out.log), out.log
    assert outs[0].assignment.tobytes() == outs[1].assignment.tobytes()


def test_a_large_model_gives_all_its_work_to_the_one_worker_search(monkeypatch):
    """Above LARGE_MODEL_PAIRS (1,500 x 300) the neighbourhood search, whose work count grows
    too slowly to stop it before the clock, is skipped: the one-worker search gets the whole
    budget (at the large models' rate) and re-runs stop at the same point."""
    import allocator.solvers.cpsat.model as model

    monkeypatch.setattr(model, "LARGE_MODEL_PAIRS", 0)  # this run's model counts as large
    monkeypatch.setattr(model, "LARGE_DETERMINISTIC_PER_SECOND", 0.03 / 60)
    p = demo_stable(150, 50, 0)
    outs = [solve_stable(p, SolveOptions(time_limit=60)) for _ in range(2)]
    for out in outs:
        assert out.status is Status.FEASIBLE, out.log
        assert any("neighbourhood search): skipped" in line for line in out.log), out.log
        assert any(line.startswith("stopped by the work limit") for line in out.log), out.log
        assert blocking_pairs(p, out.assignment) == []
    assert outs[0].assignment.tobytes() == outs[1].assignment.tobytes()


def test_proven_optimum_does_not_depend_on_threads_or_time_limit():
    p = demo_stable(80, 25, 0)
    outs = [
        solve_problem(p, SolveOptions(threads=t, time_limit=tl)) for t, tl in ((1, 40), (4, 90))
    ]
    assert all(o.status is Status.OPTIMAL for o in outs), [o.log for o in outs]
    assert outs[0].assignment.tobytes() == outs[1].assignment.tobytes()


# -- comb inequalities: never violated by a stable allocation -------------------------------


def _combs_hold(problem: ProblemData, cuts, v, assignment: np.ndarray) -> bool:
    x = np.zeros(len(v.x))
    x[v.index[np.arange(problem.n_workers), assignment]] = 1
    return all(x[c.plus].sum() >= x[c.minus].sum() for c in cuts)


def _combs(problem: ProblemData):
    from ortools.sat.python import cp_model

    from allocator.solvers.cpsat.constraints import stability_structure
    from allocator.solvers.cpsat.cuts import comb_cuts
    from allocator.solvers.cpsat.variables import make_variables

    pr = prune(problem)
    v = make_variables(cp_model.CpModel(), pr.keep)
    st = stability_structure(v, problem, pr.candidates)
    return comb_cuts(v, problem, st, deadline=float("inf")), v, pr


@SETTINGS
@given(snapshots(stability=True, max_workers=6, max_lines=3))
def test_combs_hold_for_every_stable_allocation(d):
    problem = _problem(d)
    stable = _stable_allocations(problem)
    assume(len(stable) > 0)
    found, v, pr = _combs(problem)
    for a in stable:
        assert _combs_hold(problem, found.cuts, v, a), a.tolist()
    if found.lp_bounds:  # the LP bound is a lower bound on the stable optimum
        best = enumerate_allocations(problem).best(stable=True)
        assert max(found.lp_bounds) <= best + 1e-6 * max(1.0, abs(best))


def test_combs_on_a_medium_run_tighten_the_bound_and_keep_the_optimum():
    p = demo_stable(60, 20, 1)
    found, v, _ = _combs(p)
    assert found.cuts, "expected violated combs on this run"
    assert found.lp_bounds[-1] > found.lp_bounds[0]
    out = solve_stable(p, SolveOptions(time_limit=60), combs=False)
    assert out.status is Status.OPTIMAL
    assert _combs_hold(p, found.cuts, v, out.assignment)
    assert found.lp_bounds[-1] <= out.objective + 1e-6 * out.objective


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(snapshots(stability=True, max_workers=6, max_lines=3))
def test_every_comb_of_the_family_holds_for_every_stable_allocation(d):
    """The inequality family itself (cuts.py's docstring), not only the combs the LP picks:
    every line, prefix and set I of at most cap(p) candidates with g_i <= g, checked on every
    stable allocation of a tiny run."""
    import itertools

    from ortools.sat.python import cp_model

    from allocator.solvers.cpsat.constraints import stability_structure
    from allocator.solvers.cpsat.variables import make_variables

    problem = _problem(d)
    stable = _stable_allocations(problem)
    assume(len(stable) > 0)
    pr = prune(problem, enabled=False)  # unpruned: more constraints, more combs to check
    v = make_variables(cp_model.CpModel(), pr.keep)
    st = stability_structure(v, problem, pr.candidates)
    assume(st is not None)
    checked = 0
    for a in stable:
        x = np.zeros(len(v.x))
        x[v.index[np.arange(problem.n_workers), a]] = 1
        for p in np.unique(st.p).tolist():
            rows = np.flatnonzero(st.p == p)
            c = int(problem.capacity[p])
            ks = st.line_order[p]
            for g in np.unique(st.g[rows]).tolist():
                inside = rows[st.g[rows] <= g]
                for size in range(1, c + 1):
                    for chosen in itertools.combinations(inside.tolist(), size):
                        mine = {int(v.index[st.s[r], p]) for r in chosen} - {-1}
                        left = sum(x[k] for k in ks[:g] if int(k) not in mine)
                        right = sum(x[st.worker_order[st.s[r]][st.w[r] :]].sum() for r in chosen)
                        assert left >= right, (a.tolist(), p, g, chosen)
                        checked += 1
