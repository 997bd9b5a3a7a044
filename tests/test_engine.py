"""The engine end to end: named runs, verification, diagnosis of infeasible runs, brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from allocator import diagnosis as dx
from allocator import engine
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot, load_snapshot
from allocator.solvers.base import SolveOptions, SolveOutcome, Status
from tests.helpers.named_runs import (
    DATA,
    L,
    W,
    assignment,
    brute_force_optimum,
    pprefs,
    prefs,
    problem,
    snap,
    tiny_runs,
    valid_assignments,
)

SMALL = DATA / "valid" / "small_network.json"


def test_small_network_is_solved_to_the_brute_force_optimum():
    s = load_snapshot(SMALL)
    r = engine.solve(s)
    p = ProblemData.from_snapshot(s)
    assert r.status == Status.OPTIMAL
    assert engine.verify(p, r.assignment) == []
    assert r.objective == pytest.approx(brute_force_optimum(p), rel=1e-9)
    assert r.best_bound == r.objective
    assert r.diagnosis == [] and r.metrics["mandatory_lines_filled"] == 3
    assert r.to_dict()["input_fingerprint"] == s.fingerprint()


def test_stable_mode_gives_the_best_stable_allocation():
    s = load_snapshot(SMALL).with_settings(stability=True)
    r = engine.solve(s)
    p = ProblemData.from_snapshot(s)
    assert r.status == Status.OPTIMAL
    assert r.metrics["blocking_pairs"] == 0
    assert r.objective == pytest.approx(brute_force_optimum(p, stable=True), rel=1e-9)


def test_infeasible_run_returns_a_diagnosis_not_an_exception():
    r = engine.solve(snap(W("w1", "w2", "w3"), L(("j1", 1), ("j2", 1))))
    assert r.status == Status.INFEASIBLE
    assert [d.code for d in r.diagnosis] == [dx.CAPACITY_BELOW_WORKERS]
    assert r.allocations == [] and r.metrics == {} and r.objective is None


def test_flow_only_infeasibility_is_diagnosed():
    # Passes the cheap checks; j1-j3 must be filled by the two workers with 'nights'.
    s = snap(
        W("w1", "w2", "w3", "w4", tags={"w1": ["nights"], "w2": ["nights"]}),
        L(("j1", 1, True), ("j2", 1, True), ("j3", 1, True), ("j4", 10)),
        eligibility=[{"job_line_id": j, "included_qualification_ids": ["nights"]} for j in ("j1", "j2", "j3")],
    )
    for stable in (False, True):
        r = engine.solve(s.with_settings(stability=stable))
        assert r.status == Status.INFEASIBLE
        (d,) = r.diagnosis
        assert d.code == dx.MANDATORY_LINES_SHORT_OF_WORKERS
        assert d.worker_ids == ("w1", "w2") and d.job_line_ids == ("j1", "j2", "j3")


def test_stability_conflict_with_every_worker_placed():
    # a fits only x; b prefers x, whose supervisor prefers b to a: (b, x) always blocks.
    s = snap(
        W("a", "b"),
        L(("x", 1, False, ["sup"]), ("y", 1)),
        eligibility=[{"job_line_id": "y", "excluded_worker_ids": ["a"]}],
        worker_preferences=prefs(b={"x": 1, "y": 2}),
        preferencer_preferences=pprefs(sup={"b": 1, "a": 2}),
        settings={"stability": True},
    )
    r = engine.solve(s)
    assert r.status == Status.INFEASIBLE
    (d,) = r.diagnosis
    assert d.code == dx.STABILITY_CONFLICT
    assert d.worker_ids == ("b",) and d.job_line_ids == ("x",)
    assert engine.solve(s.with_settings(stability=False)).status == Status.OPTIMAL


def test_stability_conflict_caused_by_a_pin():
    # Both want x; x's supervisor prefers w1; w2 is pinned to x, so (w1, x) blocks.
    s = snap(
        W("w1", "w2"),
        L(("x", 1, False, ["sup"]), ("y", 1)),
        worker_preferences=prefs(w1={"x": 1, "y": 2}, w2={"x": 1, "y": 2}),
        preferencer_preferences=pprefs(sup={"w1": 1, "w2": 2}),
        pins=[{"worker_id": "w2", "job_line_id": "x"}],
        settings={"stability": True},
    )
    (d,) = engine.solve(s).diagnosis
    assert d.code == dx.STABILITY_CONFLICT
    assert "Without the pin a stable allocation exists" in d.message
    # The pin is named, so the planner can lift that very pin on the Scenario page.
    assert "'w2' pinned to 'x'" in d.message
    assert d.worker_ids == ("w1", "w2") and d.job_line_ids == ("x",)


def test_an_impossible_stable_run_reports_no_allocation_while_it_is_worked_out():
    # Walked in the browser: a stable solve of the demo (impossible with its pin) showed "Best
    # total cost so far 1,479.88, left to prove 0.0 %" before saying "impossible": the stability
    # diagnosis's solve without stability reported its allocation as the solve's progress.
    from allocator.solvers.base import Callbacks

    class Record(Callbacks):
        def __init__(self):
            self.progress, self.phases = [], []

        def on_progress(self, objective, bound, elapsed):
            self.progress.append((objective, bound))

        def on_phase(self, phase):
            self.phases.append(phase)

    s = snap(
        W("w1", "w2"),
        L(("x", 1, False, ["sup"]), ("y", 1)),
        worker_preferences=prefs(w1={"x": 1, "y": 2}, w2={"x": 1, "y": 2}),
        preferencer_preferences=pprefs(sup={"w1": 1, "w2": 2}),
        pins=[{"worker_id": "w2", "job_line_id": "x"}],
        settings={"stability": True},
    )
    seen = Record()
    result = engine.solve(s, SolveOptions(time_limit=10, callbacks=seen))
    assert result.status == "infeasible" and result.diagnosis[0].code == dx.STABILITY_CONFLICT
    assert "stability diagnosis" in seen.phases
    assert [o for o, _ in seen.progress if o is not None] == []  # no allocation was ever said to exist


def test_stability_conflict_caused_by_a_mandatory_line():
    # w1 must fill x (mandatory) but prefers y, which has a free place.
    s = snap(
        W("w1"),
        L(("x", 1, True), ("y", 1)),
        worker_preferences=prefs(w1={"y": 1, "x": 2}),
        settings={"stability": True},
    )
    (d,) = engine.solve(s).diagnosis
    assert d.code == dx.STABILITY_CONFLICT
    assert "If the lines that must be filled could stay empty, a stable allocation would exist" in d.message
    assert d.worker_ids == ("w1",) and d.job_line_ids == ("x", "y")


# -- verification ------------------------------------------------------------------------------


def _verify_fixture():
    p = problem(
        W("a", "b", "c"),
        L(("x", 1, True), ("y", 2), ("z", 1)),
        eligibility=[{"job_line_id": "z", "excluded_worker_ids": ["c"]}],
        worker_preferences=prefs(a={"x": 1}, b={"x": 1}, c={"y": 1}),
    )
    return p


def test_verify_accepts_a_valid_allocation():
    p = _verify_fixture()
    assert engine.verify(p, assignment(p, {"a": "x", "b": "y", "c": "y"})) == []


@pytest.mark.parametrize(
    ("alloc", "fragment"),
    [
        ({"a": "x", "b": "x", "c": "y"}, "has 2 workers for 1 places"),  # x over capacity
        ({"a": "y", "b": "y", "c": "z"}, "not allowed"),  # c is excluded from z
        ({"a": "y", "b": "z", "c": "y"}, "must be filled but is empty"),  # x is mandatory
    ],
)
def test_verify_names_each_broken_rule(alloc, fragment):
    p = _verify_fixture()
    errors = engine.verify(p, assignment(p, alloc))
    assert any(fragment in e for e in errors), errors


def test_verify_checks_shape_range_and_stability():
    p = _verify_fixture()
    assert "shape" in engine.verify(p, np.array([0, 1]))[0]
    assert "valid line index" in engine.verify(p, np.array([0, 1, 7]))[0]
    assert "line indices" in engine.verify(p, np.array([0.0, 1.0, 1.0]))[0]
    # b wants x, which a holds; x has no supervisor, so a and b stand equal: no blocking pair.
    # y and z are both unranked for b (a tie), so b on z is not blocked by y either.
    assert engine.verify(p, assignment(p, {"a": "x", "b": "z", "c": "y"}), stability=True) == []
    two = problem(W("w1"), L(("j1", 1), ("j2", 1)), worker_preferences=prefs(w1={"j1": 1, "j2": 2}))
    errors = engine.verify(two, assignment(two, {"w1": "j2"}), stability=True)
    assert errors and "block" in errors[0]


def test_outcome_with_a_wrong_objective_or_invalid_allocation_is_a_bug():
    p = _verify_fixture()
    a = assignment(p, {"a": "x", "b": "y", "c": "y"})
    ok = SolveOutcome(Status.OPTIMAL, a, p.objective(a), p.objective(a), 0.0, "handmade")
    assert engine._check_outcome(p, ok).tolist() == a.tolist()
    wrong = SolveOutcome(Status.OPTIMAL, a, p.objective(a) + 1.0, None, 0.0, "handmade")
    with pytest.raises(engine.EngineError, match="objective"):
        engine._check_outcome(p, wrong)
    bad = SolveOutcome(Status.OPTIMAL, assignment(p, {"a": "x", "b": "x", "c": "y"}), None, None, 0.0, "handmade")
    with pytest.raises(engine.EngineError, match="invalid allocation"):
        engine._check_outcome(p, bad)
    with pytest.raises(engine.EngineError, match="without an allocation"):
        engine._check_outcome(p, SolveOutcome(Status.OPTIMAL, None, None, None, 0.0, "handmade"))


def test_time_limit_is_the_setting_in_force():
    # The options' own time limit gives way to max_seconds, which the result records.
    s = load_snapshot(SMALL).with_settings(max_seconds=7)
    r = engine.solve(s, SolveOptions(threads=1, time_limit=999))
    assert r.settings["max_seconds"] == 7.0 and r.status == Status.OPTIMAL


# -- properties ------------------------------------------------------------------------------------


@given(tiny_runs(ranks=True))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_engine_matches_brute_force(p):
    r = engine.solve(p.snapshot)
    best = brute_force_optimum(p)
    if best is None:
        assert r.status == Status.INFEASIBLE and r.diagnosis
    else:
        assert r.status == Status.OPTIMAL
        assert engine.verify(p, r.assignment) == []
        assert r.objective == pytest.approx(best, rel=1e-7, abs=1e-9)
        assert r.metrics["objective"] == r.objective


@given(tiny_runs(max_workers=4, max_lines=3, ranks=True, stability=True))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_stable_engine_matches_brute_force(p):
    r = engine.solve(p.snapshot)
    best = brute_force_optimum(p, stable=True)
    if best is None:
        assert r.status == Status.INFEASIBLE and r.diagnosis
        if next(valid_assignments(p), None) is not None:
            assert [d.code for d in r.diagnosis] == [dx.STABILITY_CONFLICT]
    else:
        assert r.status == Status.OPTIMAL
        assert r.metrics["blocking_pairs"] == 0
        assert r.objective == pytest.approx(best, rel=1e-7, abs=1e-9)


def test_shared_strategy_engine_matches_brute_force():
    """Plain and stable runs from the project's shared strategy (tests/helpers/strategies.py)."""
    strategies = pytest.importorskip("tests.helpers.strategies")

    @given(strategies.snapshots(max_workers=4, max_lines=3))
    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def check(data):
        s = RunSnapshot.parse(data)
        p = ProblemData.from_snapshot(s)
        r = engine.solve(s)
        stable = s.settings.stability
        best = brute_force_optimum(p, stable=stable)
        if best is None:
            assert r.status == Status.INFEASIBLE and r.diagnosis
        else:
            assert r.status == Status.OPTIMAL, r.summary()
            assert engine.verify(p, r.assignment) == []
            assert r.objective == pytest.approx(best, rel=1e-7, abs=1e-9)

    check()
