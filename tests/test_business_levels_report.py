"""Which levels of a lexicographic objective a solve proved (``metrics["levels"]``).

A run with fewest moves or priority tiers is solved level by level (business-rules.md). When
the work limit stops the solve, the levels proven before it are optimal and the later ones are
the best found: the result says which, the command line's summary and the Results page in
words. The stop is made deterministic with CP-SAT's work limit at zero (``cpsat_parameters``)
and the LP step switched off by its pair cap, so only the levels the flow steps prove (no
CP-SAT, no LP) are proven.
"""

from __future__ import annotations

import math

import pytest

from allocator import kpis
from allocator.engine import solve
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
from allocator.solvers import SolveOptions
from tests.helpers import business_runs as business

NO_WORK = SolveOptions(time_limit=120, cpsat_parameters={"max_deterministic_time": 0.0})

RUNS = [
    pytest.param((150, 40, 3), {"links": 8, "quotas": 3, "tiers": 3}, id="150x40-three-tiers"),
    pytest.param((120, 40, 1), {"links": 6, "quotas": 2, "tiers": 2, "fewest_moves": True}, id="120x40-moves"),
    pytest.param((80, 30, 5), {"stability": True, "links": 4, "tiers": 2}, id="80x30-stable"),
]


def _levels(result) -> list[dict]:
    return result.metrics["levels"]


@pytest.mark.parametrize(("size", "rules"), RUNS)
def test_a_stopped_solve_proves_a_prefix_of_the_levels_and_they_are_optimal(size, rules, monkeypatch):
    import allocator.solvers.cpsat.rules as rules_solver

    run = RunSnapshot.parse(business.generate_instance(*size, **rules))
    problem = ProblemData.from_snapshot(run)
    with monkeypatch.context() as patch:
        patch.setattr(rules_solver, "LP_PAIRS_PER_SECOND", 0)  # no LP: it proves these runs at once
        stopped = solve(run, NO_WORK)
    assert str(stopped.status) == "feasible"
    levels = _levels(stopped)
    flags = [lv["proven"] for lv in levels]
    assert flags == sorted(flags, reverse=True), flags  # proven levels come first
    assert not all(flags)
    values = problem.objective_levels(business.engine_assignment(problem, stopped))
    assert [lv["value"] for lv in levels] == pytest.approx(values)
    kinds = (["moves"] if rules.get("fewest_moves") else []) + ["tier"] * rules["tiers"]
    assert [lv["objective"] for lv in levels] == kinds
    assert levels[-1]["priority"] is None and all(lv["priority"] is not None for lv in levels[len(kinds) - rules["tiers"]:-1])

    if rules.get("stability"):
        return  # a full stable solve of this run is for tests/test_stable_exact.py's sizes
    full = solve(run.with_settings(max_seconds=600))
    assert str(full.status) == "optimal"
    assert all(lv["proven"] for lv in _levels(full))
    for mine, best in zip(levels, _levels(full), strict=True):
        if mine["proven"]:  # a proven level is the optimum, whatever came after it
            assert math.isclose(mine["value"], best["value"], rel_tol=1e-7, abs_tol=1e-6), (mine, best)
    said = kpis.levels_text(levels)
    assert said is not None and said.endswith("the best found, not proven")
    assert said.split(";")[-1].strip().startswith(kpis.level_name(next(lv for lv in levels if not lv["proven"])))
    assert said[0].upper() + said[1:] + "." in stopped.summary().splitlines()


def test_a_run_with_one_level_has_no_levels_report():
    run = RunSnapshot.parse(business.generate_instance(60, 20, 7, links=3, quotas=2))
    assert "levels" not in solve(run).metrics


def test_levels_in_words():
    proven = {"objective": "tier", "priority": 1, "value": 10.0, "proven": True}
    moves = {"objective": "moves", "priority": None, "value": 3.0, "proven": True}
    rest = {"objective": "tier", "priority": None, "value": 20.0, "proven": False}
    assert kpis.levels_text([proven, {**rest, "proven": True}]) is None
    assert kpis.levels_text(None) is None
    assert kpis.levels_text([moves, proven, rest]) == (
        "fewest moves from the previous allocation and tier 1 workers: the best possible (proven); "
        "workers without a tier: the best found, not proven")
    assert kpis.levels_text([{**proven, "proven": False}, rest]) == (
        "tier 1 workers and workers without a tier: the best found, not proven")
