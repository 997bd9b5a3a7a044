"""Priority tiers and fewest moves on the min-cost flow path (allocator/solvers/lexicographic.py).

The oracle is brute force over every allocation of tiny runs, filtered level by level
(business-rules.md: moves first when on, then tier 1, tier 2, ..., the workers without a
priority last); the exact CP-SAT model of :mod:`allocator.solvers.cpsat.rules` is the second
reference, on tiny runs and on medium ones.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator import engine
from allocator.explain import (
    Certificate,
    ExplainError,
    allocation_result,
    explain_all,
    explain_worker,
    price_all_pairs,
    seed_dependent_worker_ids,
)
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
from allocator.solvers import SolveOptions, Status, solve_problem
from allocator.solvers import flow as plain_flow
from allocator.solvers import lexicographic as lx
from allocator.solvers.cpsat.rules import solve_rules
from benchmarks.instances import generate_instance
from tests.helpers.bruteforce import enumerate_allocations
from tests.helpers.named_runs import L, W, prefs
from tests.helpers.named_runs import problem as named_problem
from tests.helpers.strategies import snapshots

REL = 1e-7


# -- helpers ---------------------------------------------------------------------------------


@st.composite
def tiered_snapshots(draw, max_workers: int = 6, max_lines: int = 4, grid_only: bool = False) -> dict:
    """A random snapshot dict (the shared strategy) with priorities, a previous allocation and
    the fewest-moves switch drawn on top. ``grid_only``: preference powers whose costs are
    decimal (the exact-grid path), so that true ties are ties."""
    d = draw(snapshots(max_workers=max_workers, max_lines=max_lines, stability=False))
    if grid_only:
        d["settings"]["preference_power"] = draw(st.sampled_from((1.0, 2.0, 3.0)))
    line_ids = [j["id"] for j in d["job_lines"]]
    for w in d["workers"]:
        prio = draw(st.sampled_from((None, None, 1, 2, 3)), label="priority")
        if prio is not None:
            w["priority"] = prio
    prev = [
        {"worker_id": w["id"], "job_line_id": draw(st.sampled_from(line_ids))}
        for w in d["workers"]
        if draw(st.booleans(), label="had a line")
    ]
    if prev:
        d["previous_allocations"] = prev
    d["settings"]["fewest_moves"] = draw(st.booleans(), label="fewest moves")
    return d


def problem_of(d: dict) -> ProblemData:
    return ProblemData.from_snapshot(RunSnapshot.parse(d))


def lex_optima(problem: ProblemData) -> tuple[np.ndarray, np.ndarray] | None:
    """Every allocation that is optimal on each level in turn (to the spec's 1e-7), with levels."""
    e = enumerate_allocations(problem, check_stability=False)
    if len(e.allocations) == 0:
        return None
    levels = np.array([problem.objective_levels(a) for a in e.allocations], dtype=float)
    keep = np.ones(len(levels), dtype=bool)
    for k in range(levels.shape[1]):
        best = levels[keep, k].min()
        keep &= levels[:, k] <= best + REL * max(1.0, abs(best))
    return e.allocations[keep], levels[keep]


def is_one_of(a: np.ndarray, allocations: np.ndarray) -> bool:
    return bool((allocations == np.asarray(a)[None, :]).all(axis=1).any())


def assert_same_levels(got: list[float], want: list[float]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert abs(g - w) <= REL * max(1.0, abs(w)), (got, want)


def tiered(d: dict, priorities: dict[int, int], previous: np.ndarray | None = None,
           problem: ProblemData | None = None) -> dict:
    """``d`` with priority ``priorities[i % k]`` on the i-th worker (sorted ids) and a previous allocation."""
    d = json.loads(json.dumps(d))
    ids = sorted(w["id"] for w in d["workers"])
    rank = {w: i for i, w in enumerate(ids)}
    for w in d["workers"]:
        prio = priorities.get(rank[w["id"]] % 4)
        if prio is not None:
            w["priority"] = prio
    if previous is not None:
        d["previous_allocations"] = [
            {"worker_id": problem.worker_ids[s], "job_line_id": problem.line_ids[int(j)]}
            for s, j in enumerate(previous) if j >= 0
        ]
        d["settings"]["fewest_moves"] = True
    return d


# -- brute force -------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiered_snapshots())
def test_the_flow_returns_a_lexicographic_optimum(d):
    problem = problem_of(d)
    found = lex_optima(problem)
    res = lx.solve_levels(problem)
    if found is None:
        assert res.status is Status.INFEASIBLE
        return
    optima, levels = found
    assert res.status is Status.OPTIMAL
    # One of the allocations that tie on every level, to the spec's tolerance.
    assert_same_levels(problem.objective_levels(res.assignment), list(levels[0]))
    assert is_one_of(res.assignment, optima)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiered_snapshots(max_workers=5, max_lines=3))
def test_the_flow_and_the_cpsat_model_agree_with_brute_force(d):
    problem = problem_of(d)
    found = lex_optima(problem)
    outcome = solve_problem(problem, SolveOptions(time_limit=30))
    reference = solve_rules(problem, SolveOptions(time_limit=30))
    if found is None:
        assert outcome.status == reference.status == Status.INFEASIBLE
        return
    _, levels = found
    assert outcome.status == reference.status == Status.OPTIMAL
    assert outcome.backend == (lx.BACKEND if problem.lexicographic else "flow")
    assert_same_levels(problem.objective_levels(outcome.assignment), list(levels[0]))
    assert_same_levels(problem.objective_levels(reference.assignment), list(levels[0]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiered_snapshots(grid_only=True))
def test_seed_dependent_workers_are_those_another_optimum_moves(d):
    problem = problem_of(d)
    if not problem.lexicographic:
        return
    found = lex_optima(problem)
    result = engine.solve(RunSnapshot.parse(d))
    if found is None:
        assert result.status == Status.INFEASIBLE
        return
    optima, _ = found
    a = np.asarray(result.assignment)
    want = sorted(problem.worker_ids[s] for s in range(problem.n_workers) if (optima[:, s] != a[s]).any())
    assert result.seed_dependent_worker_ids == want
    # Without the solver's face at hand (a stored allocation): the same, from a fresh solve.
    assert seed_dependent_worker_ids(problem, a) == want


# -- named runs --------------------------------------------------------------------------------


def _two_tiers() -> ProblemData:
    """w1 (priority 1) and w2 (no priority) both want j1 most; the plain optimum gives j1 to w2,
    who has no good second choice, while w1's second choice is close."""
    workers = W("w1", "w2")
    workers[0]["priority"] = 1
    return named_problem(
        workers,
        L(("j1", 1), ("j2", 1), ("j3", 1)),
        worker_preferences=prefs(w1={"j1": 1, "j2": 2, "j3": 3}, w2={"j1": 1}),
        settings={"preferencer_weight": 0.0},
    )


def test_tier_one_is_placed_first_even_when_the_total_is_worse():
    problem = _two_tiers()
    plain = plain_flow.solve(problem, SolveOptions())
    res = lx.solve_levels(problem)
    by_id = dict(zip(problem.worker_ids, (problem.line_ids[j] for j in res.assignment), strict=True))
    assert by_id["w1"] == "j1" and by_id["w2"] in ("j2", "j3")
    # The plain optimum gives j1 to w2: that is what the tiers change.
    assert problem.line_ids[int(plain.assignment[problem.worker_index["w2"]])] == "j1"
    assert problem.objective(res.assignment) > problem.objective(plain.assignment)
    # The engine takes the same path and reports the tier.
    assert solve_problem(problem).backend == lx.BACKEND


def test_fewest_moves_keeps_the_told_doctors_in_place():
    d = generate_instance(30, 8, 5)
    base = problem_of(d)
    first = plain_flow.solve(base, SolveOptions()).assignment
    # A late change: two workers withdraw (they keep no previous line: their places open up).
    previous = first.copy()
    previous[:2] = -1
    d2 = tiered(d, {0: 1, 1: 2}, previous, base)
    problem = problem_of(d2)
    res = lx.solve_levels(problem)
    assert res.status is Status.OPTIMAL
    # The old allocation is still allowed, so nobody has to move.
    assert problem.objective_levels(res.assignment)[0] == 0.0
    assert (res.assignment[2:] == first[2:]).all()


# -- determinism and the plain path --------------------------------------------------------------


def test_same_seed_same_allocation_and_another_seed_ties_on_every_level():
    d = tiered(generate_instance(120, 30, 1), {0: 1, 1: 2, 2: 1})
    d["settings"]["preferencer_weight"] = 0.0  # the workers' ranks alone: many ties to draw from
    problem = problem_of(d)
    a1 = lx.solve_levels(problem).assignment
    shuffled = json.loads(json.dumps(d))
    shuffled["workers"].reverse()
    shuffled["job_lines"].reverse()
    a2 = lx.solve_levels(problem_of(shuffled)).assignment
    assert np.array_equal(a1, a2)
    # Other seeds: the same levels, and only seed-dependent workers (those some tying optimum
    # moves) ever change line.
    res = lx.solve_levels(problem)
    drawn = res.face.seed_dependent()
    assert drawn.any()
    changed = np.zeros(problem.n_workers, dtype=bool)
    for seed in range(1, 9):
        other = json.loads(json.dumps(d))
        other["settings"]["rng_seed"] = seed
        b = lx.solve_levels(problem_of(other)).assignment
        assert_same_levels(problem.objective_levels(b), problem.objective_levels(a1))
        changed |= b != a1
    assert changed.any()
    assert not (changed & ~drawn).any()


def test_a_run_without_rules_keeps_the_plain_flow_and_its_result():
    d = generate_instance(60, 15, 2)
    problem = problem_of(d)
    assert not problem.has_business_rules
    outcome = solve_problem(problem, SolveOptions())
    plain = plain_flow.solve(problem, SolveOptions())
    assert outcome.backend == "flow"
    assert np.array_equal(outcome.assignment, plain.assignment)
    # The whole result, as JSON, equals the one built from the plain flow's answer.
    result = engine.solve(RunSnapshot.parse(d))
    from allocator.result import Result

    rebuilt = Result.build(problem, Status.OPTIMAL, plain.assignment, best_bound=plain.best_bound,
                           solve_seconds=result.solve_seconds, backend="flow",
                           seed_dependent_worker_ids=seed_dependent_worker_ids(problem, plain.assignment,
                                                                               costs=plain.integer_costs))
    assert result.to_dict() == rebuilt.to_dict()


# -- medium runs against the CP-SAT model ------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "seed", "priorities", "fewest", "power"),
    [
        ((150, 40), 3, {0: 1, 1: 2}, False, None),  # two priorities and the workers without one
        ((90, 25), 7, {0: 1, 1: 2, 2: 3}, True, None),  # fewest moves first, then three priorities
        # Costs off any decimal grid (rank^1.5): the scaled-and-rounded integer costs.
        ((80, 20), 9, {0: 1, 1: 2, 2: 3}, True, 1.5),
    ],
)
def test_medium_runs_match_the_cpsat_models_levels(size, seed, priorities, fewest, power):
    d = generate_instance(*size, seed)
    if power is not None:
        d["settings"]["preference_power"] = power
    base = problem_of(d)
    previous = None
    if fewest:
        previous = plain_flow.solve(base, SolveOptions()).assignment.copy()
        previous[::7] = -1  # withdrawn or late workers
        previous[1::13] = (previous[1::13] + 1) % base.n_lines  # places that changed
    problem = problem_of(tiered(d, priorities, previous, base))
    assert problem.lexicographic and problem.fewest_moves == fewest
    ours = solve_problem(problem, SolveOptions(time_limit=300))
    reference = solve_rules(problem, SolveOptions(time_limit=300))
    assert ours.status == reference.status == Status.OPTIMAL
    assert_same_levels(problem.objective_levels(ours.assignment), problem.objective_levels(reference.assignment))


# -- explanations of a tiered run -------------------------------------------------------------------


def _small_tiered(seed: int) -> dict:
    """A 6 x 4 benchmark-shaped run with two priorities, and a previous allocation on odd seeds."""
    d = generate_instance(6, 4, seed)
    d["settings"]["preferencer_weight"] = 0.3
    if seed % 2:
        base = problem_of(d)
        rng = np.random.default_rng(seed)
        previous = rng.integers(0, base.n_lines, base.n_workers)
        previous[rng.random(base.n_workers) < 0.3] = -1
        return tiered(d, {0: 1, 1: 2, 2: 1}, previous, base)
    return tiered(d, {0: 1, 1: 2, 2: 1})


@pytest.mark.parametrize("seed", range(8))
def test_explanations_of_a_tiered_run_price_each_level_by_pinned_resolves(seed):
    d = _small_tiered(seed)
    problem = problem_of(d)
    assert problem.lexicographic
    result = engine.solve(RunSnapshot.parse(d))
    if not result.has_allocation:
        return
    a = np.asarray(result.assignment)
    assert Certificate.build(problem, a) is None  # the one-level certificate does not apply
    opt_levels = problem.objective_levels(a)
    names = lx.level_names(problem)
    for s, wid in enumerate(problem.worker_ids):
        out = explain_worker(result, wid)
        assert out["method"] == "resolve"
        # The lexicographic certificate prices the same, without re-solves.
        fast = explain_worker(result, wid, method="certificate")
        assert fast["method"] == "certificate"
        for x, y in zip(out["higher_choices"], fast["higher_choices"], strict=True):
            assert (x["reason"], x["price"], x.get("price_levels"), x.get("deciding_level")) == (
                y["reason"], y["price"], y.get("price_levels"), y.get("deciding_level"))
        for entry in out["higher_choices"]:
            p = problem.line_index[entry["job_line_id"]]
            if entry["reason"] not in ("price", "impossible"):
                continue
            pin = problem.pin.copy()
            pin[s] = p
            found = lex_optima(dataclasses.replace(problem, pin=pin))
            if entry["reason"] == "impossible":
                assert found is None
                continue
            assert found is not None
            want = [x - y for x, y in zip(found[1][0], opt_levels, strict=True)]
            got = [lv["price"] for lv in entry["price_levels"]]
            assert [lv["level"] for lv in entry["price_levels"]] == names
            for g, w, base in zip(got, want, opt_levels, strict=True):
                assert abs(g - w) <= 1e-6 * max(1.0, abs(base)), (got, want)
            first = next((nm for nm, w, base in zip(names, want, opt_levels, strict=True)
                          if abs(w) > 1e-6 * max(1.0, abs(base))), None)
            assert entry["deciding_level"] == first
            assert abs(entry["price"] - (problem.objective(found[0][0]) - problem.objective(a))) <= 1e-6 * max(
                1.0, abs(problem.objective(a)))


def test_all_pairs_prices_refuse_a_tiered_run_and_a_stored_allocation_is_judged_by_levels():
    d = tiered(generate_instance(40, 10, 4), {0: 1, 1: 2})
    result = engine.solve(RunSnapshot.parse(d))
    assert result.status == Status.OPTIMAL
    with pytest.raises(ExplainError, match="priority tiers"):
        price_all_pairs(result)
    # Every worker's statement numbers: the lexicographic certificate, every choice priced.
    every = explain_all(result)
    assert {e["method"] for e in every} == {"certificate"}
    priced = [c for e in every for c in e["higher_choices"] if c["reason"] == "price"]
    assert priced and all(c["price"] is not None and "price_levels" in c for c in priced)
    problem = result.problem
    stored = {w: problem.line_ids[int(j)] for w, j in zip(problem.worker_ids, result.assignment, strict=True)}
    assert allocation_result(RunSnapshot.parse(d), stored).status == Status.OPTIMAL
    # The plain optimum keeps every rule but is not the tiered optimum.
    plain = plain_flow.solve(problem, SolveOptions()).assignment
    assert problem.objective_levels(plain) != problem.objective_levels(np.asarray(result.assignment))
    stored = {w: problem.line_ids[int(j)] for w, j in zip(problem.worker_ids, plain, strict=True)}
    assert allocation_result(RunSnapshot.parse(d), stored).status == Status.FEASIBLE


def test_statements_name_the_level_that_decides_a_tiered_price():
    from allocator.statements import price_words

    problem = _two_tiers()
    result = engine.solve(problem.snapshot)
    out = explain_worker(result, "w2")
    (entry,) = [e for e in out["higher_choices"] if e["job_line_id"] == "j1"]
    # Granting j1 to w2 moves w1 (priority 1) off their first choice: tier 1 decides.
    assert entry["deciding_level"] == "priority 1"
    assert entry["price_levels"] == [{"level": "priority 1", "price": 1.0}, {"level": "no priority", "price": -1.5}]
    assert entry["price"] == -0.5  # the total falls: alone it would read as a gain
    words = price_words(problem, "w2", entry)
    assert "tier 1 doctors would rise by 1" in words
    assert "tie-break" not in words
