"""The min-cost flow backend and the integer cost scaling, on small named runs.

Every expected value is computed independently (by hand in the fixture's docstring, by
brute force, or by SciPy's assignment/MILP solvers), never copied from a solver run.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, linear_sum_assignment, milp
from scipy.sparse import coo_matrix

from allocator.demo import NO_RULES, demo_snapshot
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
from allocator.solvers import Callbacks, SolveOptions, Status, solve_problem
from allocator.solvers import flow as flow_module
from allocator.solvers.scaling import (
    INT64_MAX,
    allowed_pairs,
    cpsat_budget,
    flow_budget,
    integer_costs,
    tie_break,
)
from benchmarks.naive import naive_cpsat
from tests.helpers.bruteforce import assert_valid, enumerate_allocations


def run(
    workers,
    lines,
    prefs=(),
    *,
    supervisors=(),
    eligibility=(),
    weightings=(),
    pins=(),
    forbids=(),
    **settings,
) -> ProblemData:
    """A tiny snapshot. ``workers``: ids or (id, tags); ``lines``: (id, cap[, mandatory[, sups]]);
    ``prefs``: (worker, line, rank); ``supervisors``: (supervisor, worker, rank)."""
    ws = [{"id": w} if isinstance(w, str) else {"id": w[0], "qualification_ids": list(w[1])} for w in workers]
    ls = []
    for spec in lines:
        j, cap, *rest = spec
        ls.append(
            {
                "id": j,
                "max_n_workers": cap,
                "must_have_workers": bool(rest[0]) if rest else False,
                "preferencer_ids": list(rest[1]) if len(rest) > 1 else [],
            }
        )
    d = {
        "format": "allocator-run/1",
        "settings": {"preferencer_weight": 0.0, **settings},
        "workers": ws,
        "job_lines": ls,
        "worker_preferences": [{"worker_id": w, "job_line_id": j, "rank": r} for w, j, r in prefs],
        "preferencer_preferences": [{"preferencer_id": q, "worker_id": w, "rank": r} for q, w, r in supervisors],
        "eligibility": list(eligibility),
        "weightings": [{"worker_id": w, "job_line_id": j, "value": v} for w, j, v in weightings],
        "pins": [{"worker_id": w, "job_line_id": j} for w, j in pins],
        "forbids": [{"worker_id": w, "job_line_id": j} for w, j in forbids],
    }
    return ProblemData.from_snapshot(RunSnapshot.parse(d))


def solve(problem: ProblemData, **kw):
    return solve_problem(problem, SolveOptions(**kw))


def lines_of(problem: ProblemData, assignment) -> dict[str, str]:
    return {problem.worker_ids[s]: problem.line_ids[p] for s, p in enumerate(assignment)}


# -- named runs ------------------------------------------------------------------------------


def test_both_want_the_same_single_place():
    """w1 and w2 both rank a=1, b=2; a and b have one place each; alpha = 0.

    Either allocation costs 1 + 2 = 3 (the two optima differ only in who gets a).
    """
    p = run(["w1", "w2"], [("a", 1), ("b", 1)], [("w1", "a", 1), ("w1", "b", 2), ("w2", "a", 1), ("w2", "b", 2)])
    out = solve(p)
    assert out.status is Status.OPTIMAL
    assert out.objective == pytest.approx(3.0)
    assert sorted(lines_of(p, out.assignment).values()) == ["a", "b"]


def test_seeds_pick_among_the_optima_never_a_worse_one():
    """Same run as above: over many seeds both optimal allocations must appear (the seed
    chooses), every one costs 3, and each seed always gives the same answer."""
    seen = set()
    for seed in range(40):
        p = run(
            ["w1", "w2"],
            [("a", 1), ("b", 1)],
            [("w1", "a", 1), ("w1", "b", 2), ("w2", "a", 1), ("w2", "b", 2)],
            rng_seed=seed,
        )
        first = solve(p)
        assert first.objective == pytest.approx(3.0)
        assert solve(p).assignment.tobytes() == first.assignment.tobytes()
        seen.add(tuple(first.assignment.tolist()))
    assert seen == {(0, 1), (1, 0)}


def test_mandatory_line_pulls_one_worker_off_their_first_choice():
    """Three workers rank a=1, n=2; a has 3 places, n (mandatory) 1. alpha = 0.

    Optimum: two on a, one on n: 1 + 1 + 2 = 4 (without the mandatory fill it would be 3).
    """
    prefs = [(w, j, r) for w in ("w1", "w2", "w3") for j, r in (("a", 1), ("n", 2))]
    p = run(["w1", "w2", "w3"], [("a", 3), ("n", 1, True)], prefs)
    out = solve(p)
    assert out.status is Status.OPTIMAL
    assert out.objective == pytest.approx(4.0)
    assert sorted(lines_of(p, out.assignment).values()) == ["a", "a", "n"]


def test_pin_is_kept_even_when_it_costs():
    """w1 ranks a=1, b=2 but is pinned to b; w2 ranks b=1, a=2; one place each.

    Forced: w1 on b, so w2 on a: cost 2 + 2 = 4 (unpinned optimum would be 1 + 1 = 2).
    """
    prefs = [("w1", "a", 1), ("w1", "b", 2), ("w2", "b", 1), ("w2", "a", 2)]
    p = run(["w1", "w2"], [("a", 1), ("b", 1)], prefs, pins=[("w1", "b")])
    out = solve(p)
    assert lines_of(p, out.assignment) == {"w1": "b", "w2": "a"}
    assert out.objective == pytest.approx(4.0)


def test_forbidden_pair_is_avoided():
    """w1 ranks a=1, b=2, but (w1, a) is forbidden: w1 goes to b (cost 2)."""
    p = run(["w1"], [("a", 1), ("b", 1)], [("w1", "a", 1), ("w1", "b", 2)], forbids=[("w1", "a")])
    out = solve(p)
    assert lines_of(p, out.assignment) == {"w1": "b"}
    assert out.objective == pytest.approx(2.0)


def test_negative_weightings_and_preferencer_side():
    """alpha = 0.5; w1 has a specific weighting of -3 on b, so b becomes cheaper than a.

    N = 2 lines, M = 1 worker, no preferencers: base = ((1 + 1) / 2)^1 = 1.
    cost(w1, a) = 0.5 * 1 + 0.5 * 1 = 1; cost(w1, b) = 0.5 * 2 + 0.5 * (1 - 3) = 0.
    """
    p = run(["w1"], [("a", 1), ("b", 1)], [("w1", "a", 1), ("w1", "b", 2)], weightings=[("w1", "b", -3.0)], preferencer_weight=0.5)
    out = solve(p)
    assert lines_of(p, out.assignment) == {"w1": "b"}
    assert out.objective == pytest.approx(0.0, abs=1e-12)


# Infeasible runs: each is a status, never an exception, and brute force agrees.
INFEASIBLE = {
    # Three workers, two places in all.
    "too few places": dict(workers=["w1", "w2", "w3"], lines=[("a", 2)]),
    # Both workers can only take a (b needs the tag 'rural' they lack), and a has one place
    # although the run has three places in all: Hall's condition fails for {w1, w2}.
    "hall violation": dict(
        workers=["w1", "w2"],
        lines=[("a", 1), ("b", 2)],
        eligibility=[{"job_line_id": "b", "included_qualification_ids": ["rural"]}],
    ),
    # The mandatory line needs a tag nobody has.
    "mandatory unreachable": dict(
        workers=["w1"],
        lines=[("a", 1), ("n", 1, True)],
        eligibility=[{"job_line_id": "n", "included_qualification_ids": ["nights"]}],
    ),
    # Two mandatory lines, one worker.
    "more mandatory lines than workers": dict(workers=["w1"], lines=[("a", 1, True), ("b", 1, True)]),
    # A mandatory line without places.
    "mandatory line without places": dict(workers=["w1"], lines=[("a", 1), ("n", 0, True)]),
    # Two workers pinned to a one-place line.
    "pins overfill a line": dict(workers=["w1", "w2"], lines=[("a", 1), ("b", 1)], pins=[("w1", "a"), ("w2", "a")]),
    # A worker excluded everywhere.
    "worker without a line": dict(
        workers=["w1", "w2"],
        lines=[("a", 2)],
        eligibility=[{"job_line_id": "a", "excluded_worker_ids": ["w2"]}],
    ),
    # Two mandatory lines reachable only by the same single worker.
    "mandatory lines share their only worker": dict(
        workers=[("w1", ["nights"]), "w2"],
        lines=[("m1", 1, True), ("m2", 1, True), ("a", 2)],
        eligibility=[
            {"job_line_id": "m1", "included_qualification_ids": ["nights"]},
            {"job_line_id": "m2", "included_qualification_ids": ["nights"]},
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(INFEASIBLE))
def test_infeasible_runs_are_a_status(name):
    spec = dict(INFEASIBLE[name])
    p = run(spec.pop("workers"), spec.pop("lines"), **spec)
    assert enumerate_allocations(p, check_stability=False).best(stable=False) is None
    out = solve(p)
    assert out.status is Status.INFEASIBLE
    assert out.assignment is None and out.objective is None


# -- against independent solvers ------------------------------------------------------------


def _milp_optimum(p: ProblemData) -> float:
    """The transportation problem with lower bounds as a MILP for HiGHS (independent model)."""
    s, j = np.nonzero(p.allowed)
    k = s.size
    rows = np.concatenate([s, p.n_workers + j])
    A = coo_matrix((np.ones(2 * k), (rows, np.concatenate([np.arange(k)] * 2))), shape=(p.n_workers + p.n_lines, k))
    lo = np.concatenate([np.ones(p.n_workers), p.mandatory.astype(float)])
    hi = np.concatenate([np.ones(p.n_workers), p.capacity.astype(float)])
    res = milp(p.cost[s, j], constraints=LinearConstraint(A.tocsr(), lo, hi), integrality=np.ones(k), bounds=Bounds(0, 1))
    assert res.success, res.message
    return float(res.fun)


def test_300x40_demo_run_matches_highs():
    """A realistic 300 x 40 demo run (mandatory lines, pins, forbids, ties, preferencers)."""
    p = ProblemData.from_snapshot(RunSnapshot.parse(demo_snapshot(300, 40, seed=11, profile=NO_RULES)))
    out = solve(p)
    assert out.status is Status.OPTIMAL
    assert_valid(p, out.assignment)
    assert out.objective == pytest.approx(_milp_optimum(p), rel=1e-7)


def test_300x40_without_mandatory_matches_linear_sum_assignment():
    """Without mandatory lines the run is an assignment problem once every line is copied
    once per place; linear_sum_assignment then gives the optimum."""
    d = demo_snapshot(300, 40, seed=12, profile=NO_RULES)
    for j in d["job_lines"]:
        j["must_have_workers"] = False
    p = ProblemData.from_snapshot(RunSnapshot.parse(d))
    cols = np.repeat(np.arange(p.n_lines), p.capacity)
    big = 1e9
    cost = np.where(p.allowed[:, cols], p.cost[:, cols], big)
    r, c = linear_sum_assignment(cost)
    expected = cost[r, c].sum()
    assert expected < big
    out = solve(p)
    assert out.status is Status.OPTIMAL
    assert out.objective == pytest.approx(expected, rel=1e-7)


def test_naive_cpsat_agrees_on_a_small_run():
    p = ProblemData.from_snapshot(RunSnapshot.parse(demo_snapshot(25, 8, seed=3, profile=NO_RULES)))
    out = solve(p)
    naive = naive_cpsat(p, SolveOptions(time_limit=30))
    assert naive.status is Status.OPTIMAL
    assert naive.objective == pytest.approx(out.objective, rel=1e-6)


# -- integer costs ---------------------------------------------------------------------------


@pytest.mark.parametrize("power", [1.0, 3.0, 8.0])
def test_scaling_keeps_precision_and_fits_the_budget(power):
    """Powers of ranks grow fast (8 is the largest allowed): the scale must still give the
    required precision, and the largest integer must fit the flow's budget."""
    d = demo_snapshot(400, 30, seed=5, profile=NO_RULES)
    d["settings"]["preference_power"] = power
    p = ProblemData.from_snapshot(RunSnapshot.parse(d))
    n_nodes = p.n_workers + p.n_lines + 1
    costs = integer_costs(p, budget=flow_budget(n_nodes))
    assert costs.precision_ok, costs.describe()
    assert int(costs.combined().max()) <= flow_budget(n_nodes)
    assert costs.combined().max() * (n_nodes + 1) * 2 < INT64_MAX
    # Rounding error per pair is at most half a unit.
    rel = p.cost[costs.workers, costs.lines] - costs.shift[costs.workers]
    assert np.abs(rel * costs.scale - costs.base).max() <= 0.5 + 1e-6
    out = solve(p)
    assert out.status is Status.OPTIMAL
    assert out.objective == pytest.approx(_milp_optimum(p), rel=1e-7)


def test_tie_break_is_below_the_cost_resolution():
    p = ProblemData.from_snapshot(RunSnapshot.parse(demo_snapshot(60, 12, seed=2, profile=NO_RULES)))
    costs = integer_costs(p, budget=flow_budget(80))
    assert costs.tie_range > 1
    # Worst case over any allocation: every worker takes its largest tie value.
    worst = np.zeros(p.n_workers, dtype=np.int64)
    np.maximum.at(worst, costs.workers, costs.tie)
    assert int(worst.sum()) < costs.tie_factor
    # CP-SAT's budget keeps the objective's total range small.
    c2 = integer_costs(p, budget=cpsat_budget(p.n_workers), max_tie_range=1)
    assert c2.tie_factor == 1 and int(c2.base.max()) * p.n_workers <= 2**50


def test_tie_values_depend_only_on_seed_and_ids():
    """Adding a worker to the run does not change the tie values of the others."""
    small = run(["w1", "w2"], [("a", 2), ("b", 2)])
    large = run(["w1", "w2", "w0"], [("a", 2), ("b", 2)])
    ws, ls = allowed_pairs(small)
    t_small = tie_break(small, 7, 1 << 20, ws, ls)
    # In the larger run w0 sorts first, so w1, w2 are indices 1, 2.
    t_large = tie_break(large, 7, 1 << 20, ws + 1, ls)
    assert t_small.tolist() == t_large.tolist()
    assert tie_break(small, 8, 1 << 20, ws, ls).tolist() != t_small.tolist()


def test_cost_range_error_is_retried_with_more_headroom(monkeypatch):
    """If SimpleMinCostFlow rejects the costs (BAD_COST_RANGE), the next headroom is used."""
    p = ProblemData.from_snapshot(RunSnapshot.parse(demo_snapshot(40, 10, seed=4, profile=NO_RULES)))
    expected = solve(p).objective
    real = flow_module.solve_flow
    budgets = []

    def reject_first(problem, costs):
        budgets.append(int(costs.combined().max()))
        if len(budgets) == 1:
            raise flow_module.CostRangeError("simulated")
        return real(problem, costs)

    monkeypatch.setattr(flow_module, "solve_flow", reject_first)
    out = solve(p)
    assert len(budgets) == 2 and budgets[1] < budgets[0]
    assert any("headroom" in line for line in out.log)
    assert out.objective == pytest.approx(expected, rel=1e-7)


def test_bad_cost_range_from_or_tools_is_detected():
    """Costs beyond OR-Tools' limit make it say BAD_COST_RANGE, which we turn into a retry."""
    p = run(["w1", "w2"], [("a", 1), ("b", 1)], [("w1", "a", 1), ("w1", "b", 2), ("w2", "a", 1), ("w2", "b", 2)])
    costs = integer_costs(p, budget=INT64_MAX // 2)
    huge = costs.__class__(**{**costs.__dict__, "base": costs.base * 0 + INT64_MAX // 8, "tie_factor": 1})
    with pytest.raises(flow_module.CostRangeError):
        flow_module.solve_flow(p, huge)


# -- options -----------------------------------------------------------------------------------


def test_progress_is_reported_unscaled():
    events = []

    class Record(Callbacks):
        def on_phase(self, phase):
            events.append(("phase", phase))

        def on_progress(self, objective, bound, elapsed):
            events.append(("progress", objective, bound))

    p = run(["w1"], [("a", 1), ("b", 1)], [("w1", "a", 1), ("w1", "b", 2)])
    out = solve_problem(p, SolveOptions(callbacks=Record(), stop=threading.Event()))
    assert ("phase", "flow") in events
    assert ("progress", out.objective, out.objective) in events
    assert out.objective == pytest.approx(1.0)
