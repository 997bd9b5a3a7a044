"""Stable mode (CP-SAT) on small named runs, plus pruning, stop, time limit and determinism.

Expected allocations are worked out by hand in each fixture's docstring and checked against
brute force (tests/bruteforce.py), which uses only the project's blocking-pair checker.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from allocator.demo import DemoProfile, demo_snapshot
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
from allocator.solvers import Callbacks, SolveOptions, Status, solve_problem
from allocator.solvers.cpsat.model import solve_stable
from allocator.solvers.cpsat.pruning import prune
from allocator.stability import blocking_pairs
from tests.helpers.bruteforce import assert_valid, enumerate_allocations
from tests.test_solvers_flow import lines_of, run


def solve(problem: ProblemData, **kw):
    return solve_problem(problem, SolveOptions(**kw))


def brute_best_stable(problem: ProblemData) -> float | None:
    return enumerate_allocations(problem).best(stable=True)


def demo_stable(m: int, n: int, seed: int) -> ProblemData:
    """A demo run built to have a stable allocation, with short rank lists."""
    profile = DemoProfile(stability=True, rank_list=(3, 8), preferencer_list=(3, 12))
    return ProblemData.from_snapshot(RunSnapshot.parse(demo_snapshot(m, n, seed, profile=profile)))


# -- named runs ------------------------------------------------------------------------------


def free_place_run(**settings) -> ProblemData:
    """w1 ranks a=1, b=2; one place each; alpha = 1 and a weighting of +10 on (w1, a).

    With one worker, base = ((1 + 1) / 2)^1 = 1: cost(w1, a) = 11, cost(w1, b) = 1.
    The flow takes b (cost 1), but then w1 strictly prefers a, which has a free place: a
    blocking pair. The only stable allocation is w1 on a, cost 11.
    """
    return run(
        ["w1"],
        [("a", 1), ("b", 1)],
        [("w1", "a", 1), ("w1", "b", 2)],
        weightings=[("w1", "a", 10.0)],
        preferencer_weight=1.0,
        **settings,
    )


def test_free_place_forces_the_worker_up():
    p = free_place_run(stability=False)
    assert solve(p).objective == pytest.approx(1.0)
    p = free_place_run(stability=True)
    out = solve(p)
    assert out.status is Status.OPTIMAL
    assert lines_of(p, out.assignment) == {"w1": "a"}
    assert out.objective == pytest.approx(11.0) == brute_best_stable(p)


def full_line_run(**settings) -> ProblemData:
    """w1 and w2 rank a=1, b=2; one place each; alpha = 1; sup-a (on a) ranks w2=1, w1=2;
    weighting +10 on (w1, a). b has no supervisor: base = ((2 + 1) / 2) = 1.5 for both.

    cost(w2, a) = 1, cost(w1, b) = 1.5, cost(w1, a) = 12, cost(w2, b) = 1.5.
    Flow: w2 on a, w1 on b (2.5). (w1, a) does not block: a is full with w2, whom sup-a
    ranks better than w1. So the flow optimum is already stable.
    """
    return run(
        ["w1", "w2"],
        [("a", 1, False, ["sup-a"]), ("b", 1)],
        [("w1", "a", 1), ("w1", "b", 2), ("w2", "a", 1), ("w2", "b", 2)],
        supervisors=[("sup-a", "w2", 1), ("sup-a", "w1", 2)],
        weightings=[("w1", "a", 10.0)],
        preferencer_weight=1.0,
        stability=True,
        **settings,
    )


@pytest.mark.parametrize("shortcut", [True, False])
def test_full_line_held_by_a_better_worker_does_not_block(shortcut):
    p = full_line_run()
    out = solve_stable(p, SolveOptions(), flow_shortcut=shortcut)
    assert out.status is Status.OPTIMAL
    assert lines_of(p, out.assignment) == {"w1": "b", "w2": "a"}
    assert out.objective == pytest.approx(2.5) == brute_best_stable(p)


def test_pin_can_make_stability_impossible():
    """t is pinned to a (one place); s ranks a=1, b=2 and sup-a ranks s=1, t=2.

    s can only be on b, strictly prefers a, and a holds t whom sup-a ranks worse than s: (s, a)
    blocks in every allocation, so stable mode is infeasible (without it: s on b is fine).
    """
    p = run(
        ["s", "t"],
        [("a", 1, False, ["sup-a"]), ("b", 1)],
        [("s", "a", 1), ("s", "b", 2)],
        supervisors=[("sup-a", "s", 1), ("sup-a", "t", 2)],
        pins=[("t", "a")],
        stability=True,
    )
    assert brute_best_stable(p) is None
    assert enumerate_allocations(p).best(stable=False) is not None
    out = solve(p)
    assert out.status is Status.INFEASIBLE and out.assignment is None


def test_mandatory_fill_against_stability():
    """w1, w2 rank a=1, n=2; a has 2 places, n (mandatory) 1.

    Someone must take n; then a has a free place that they strictly prefer: always blocking.
    """
    prefs = [(w, j, r) for w in ("w1", "w2") for j, r in (("a", 1), ("n", 2))]
    p = run(["w1", "w2"], [("a", 2), ("n", 1, True)], prefs, stability=True)
    assert brute_best_stable(p) is None
    assert solve(p).status is Status.INFEASIBLE


# -- pruning -----------------------------------------------------------------------------------


def test_line_rule_removes_lines_below_a_sure_place():
    """Rule B. sup-a ranks s1 alone (s2, s3 share the unranked rank), a has one place, so a
    would always take s1 over anyone else on it. s1 ranks b=1, a=2, c=3: in a stable
    allocation s1 is never below a, so (s1, c) goes; (s1, a) and (s1, b) stay."""
    p = run(
        ["s1", "s2", "s3"],
        [("a", 1, False, ["sup-a"]), ("b", 1), ("c", 1)],
        [("s1", "b", 1), ("s1", "a", 2), ("s1", "c", 3)],
        supervisors=[("sup-a", "s1", 1)],
    )
    keep = prune(p).keep
    s1, a, b, c = p.worker_index["s1"], p.line_index["a"], p.line_index["b"], p.line_index["c"]
    assert not keep[s1, c]
    assert keep[s1, a] and keep[s1, b]
    for alloc in enumerate_allocations(p).allocations[enumerate_allocations(p).stable]:
        assert keep[np.arange(3), alloc].all()


def test_worker_rule_removes_workers_a_line_cannot_hold():
    """Rule A. s1, s2, s3 all rank a=1 (their unique best), b=2, c=3; a has one place and
    sup-a ranks s1=1, s2=2, s3=3. In a stable allocation, if s2 were on a then s1 (who
    claims a and is ranked better) would be on a too: two on a one-place line. So (s2, a)
    and (s3, a) go, and (s1, a) stays."""
    prefs = [(w, j, r) for w in ("s1", "s2", "s3") for j, r in (("a", 1), ("b", 2), ("c", 3))]
    p = run(
        ["s1", "s2", "s3"],
        [("a", 1, False, ["sup-a"]), ("b", 1), ("c", 1)],
        prefs,
        supervisors=[("sup-a", "s1", 1), ("sup-a", "s2", 2), ("sup-a", "s3", 3)],
    )
    pr = prune(p)
    a = p.line_index["a"]
    assert pr.keep[p.worker_index["s1"], a]
    assert not pr.keep[p.worker_index["s2"], a] and not pr.keep[p.worker_index["s3"], a]
    assert pr.removed_by_worker_rule >= 2


# -- larger runs: optimality, determinism, stop, time limit ------------------------------------


@pytest.mark.parametrize(("m", "n", "seed"), [(30, 10, 0), (40, 14, 3)])
def test_medium_stable_runs_are_proven_and_deterministic(m, n, seed):
    p = demo_stable(m, n, seed)
    outs = [solve(p, threads=t, time_limit=60) for t in (1, 2, 4)]
    assert all(o.status is Status.OPTIMAL for o in outs), [o.log for o in outs]
    assert not any("not proven" in line for o in outs for line in o.log)
    # The CP-SAT path, proven (not a flow shortcut).
    assert all(any(line.startswith("search: OPTIMAL") for line in o.log) for o in outs)
    first = outs[0]
    assert_valid(p, first.assignment)
    assert blocking_pairs(p, first.assignment) == []
    assert first.objective == pytest.approx(p.objective(first.assignment))
    for o in outs[1:]:
        assert o.assignment.tobytes() == first.assignment.tobytes()
    # Never better than the unconstrained optimum, and another seed finds the same cost.
    flow = solve(ProblemData.from_snapshot(p.snapshot.with_settings(stability=False)))
    assert first.objective >= flow.objective - 1e-9
    other = solve(ProblemData.from_snapshot(p.snapshot.with_settings(rng_seed=98765)), time_limit=60)
    assert other.status is Status.OPTIMAL
    assert other.objective == pytest.approx(first.objective, rel=1e-7)


def test_progress_phases_and_unscaled_values():
    p = demo_stable(40, 14, 3)
    phases, progress = [], []

    class Record(Callbacks):
        def on_phase(self, phase):
            phases.append(phase)

        def on_progress(self, objective, bound, elapsed):
            progress.append((objective, bound, elapsed))

    out = solve_problem(p, SolveOptions(callbacks=Record(), time_limit=60))
    assert phases[:3] == ["flow", "pruning", "stability search"]
    assert progress[-1][0] == pytest.approx(out.objective)
    incumbents = [o for o, _, _ in progress if o is not None]
    assert incumbents and min(incumbents) == pytest.approx(out.objective, rel=1e-7)
    assert all(b <= out.objective * (1 + 1e-7) for _, b, _ in progress if b is not None)


def test_stop_event_ends_the_search_and_keeps_a_stable_allocation():
    p = demo_stable(80, 25, 0)
    stop = threading.Event()
    stop.set()  # stop as soon as the search starts
    out = solve_problem(p, SolveOptions(time_limit=60, stop=stop))
    assert out.status in (Status.FEASIBLE, Status.OPTIMAL, Status.NO_SOLUTION)
    assert out.solve_seconds < 30
    if out.assignment is not None:
        assert_valid(p, out.assignment)
        assert blocking_pairs(p, out.assignment) == []
        assert out.best_bound <= out.objective


def test_tiny_time_limit_is_a_status_not_an_error():
    p = demo_stable(80, 25, 1)
    out = solve(p, time_limit=0.01)
    assert out.status in (Status.FEASIBLE, Status.NO_SOLUTION, Status.OPTIMAL)
    if out.status is Status.FEASIBLE:
        assert blocking_pairs(p, out.assignment) == []
        assert out.best_bound is None or out.best_bound <= out.objective


def test_stop_during_the_search_keeps_the_incumbent():
    """The stop event is set from the progress callback at the first incumbent: the search
    ends and the incumbent comes back as ``feasible`` with a bound and the gap in the log."""
    p = demo_stable(150, 50, 0)
    stop = threading.Event()

    class StopAtFirst(Callbacks):
        def on_progress(self, objective, bound, elapsed):
            if objective is not None:
                stop.set()

    out = solve_problem(p, SolveOptions(time_limit=60, stop=stop, callbacks=StopAtFirst()))
    assert stop.is_set()
    assert out.status is Status.FEASIBLE, out.log
    assert_valid(p, out.assignment)
    assert blocking_pairs(p, out.assignment) == []
    assert out.best_bound <= out.objective
    assert any(line.startswith("not proven optimal") for line in out.log)


def test_a_stable_starting_allocation_is_used_and_a_bad_one_ignored():
    p = demo_stable(30, 10, 0)
    first = solve(p, time_limit=60)
    assert first.status is Status.OPTIMAL and any(line.startswith("search: ") for line in first.log)
    start = {p.worker_ids[s]: p.line_ids[int(j)] for s, j in enumerate(first.assignment)}
    again = solve(p, time_limit=60, initial_allocation=start)
    assert any(line.startswith("the starting allocation given is stable") for line in again.log)
    assert again.status is Status.OPTIMAL
    assert again.objective == pytest.approx(first.objective, rel=1e-9)
    # A start that breaks a rule (here: a place too many on one line) is not used.
    crowded = dict(start)
    full = next(k for k in range(len(p.line_ids)) if (first.assignment == k).sum() == p.capacity[k])
    mover = next(s for s in range(p.n_workers) if first.assignment[s] != full and p.pin[s] < 0)
    crowded[p.worker_ids[mover]] = p.line_ids[full]
    third = solve(p, time_limit=60, initial_allocation=crowded)
    assert not any(line.startswith("the starting allocation given") for line in third.log)
    assert third.status is Status.OPTIMAL and third.objective == pytest.approx(first.objective, rel=1e-9)
