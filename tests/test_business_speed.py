"""solve_rules' step 6: a proven relaxation completed for the other workers proves the level.

The completion is a heuristic; what must hold is that a level it proves is the level's true
optimum. HiGHS on the same model, level by level (tests/helpers/highs_reference.py), is the
independent judge; the unfixed CP-SAT model a second one.
"""

from __future__ import annotations

import math

import numpy as np

from allocator.engine import rule_breaches, verify
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
from allocator.solvers.base import SolveOptions, Status
from allocator.solvers.cpsat.rules import _relaxed_workers, solve_rules
from benchmarks.instances import generate_instance
from tests.helpers.highs_reference import REL_TOL, solve_reference


def _run() -> ProblemData:
    # 100 x 30 with 8 links, 3 quotas and 3 tiers: tier 1 is the level the completion proves.
    return ProblemData.from_snapshot(RunSnapshot.parse(generate_instance(100, 30, 3, links=8, quotas=3, tiers=3)))


def test_a_level_proven_by_the_completed_relaxation_is_the_highs_optimum():
    p = _run()
    out = solve_rules(p, SolveOptions(time_limit=120))
    assert out.status is Status.OPTIMAL, out.log
    assert any("completed for the other workers" in line for line in out.log), out.log
    assert verify(p, out.assignment) == [] and rule_breaches(p, out.assignment) == []
    ref = solve_reference(p, time_limit=120)
    assert ref.status == "optimal", ref.status
    got = p.objective_levels(out.assignment)
    assert len(got) == len(ref.levels) == 3
    proven = next(k for k, line in enumerate(out.log) if "completed for the other workers" in line)
    assert out.log[proven].startswith("tier 1:")
    # Every level: the one the completion proved and those after it, on its optimal face.
    for g, w in zip(got, ref.levels, strict=True):
        assert math.isclose(g, w, rel_tol=REL_TOL, abs_tol=1e-6), (got, ref.levels)


def test_the_same_run_without_fixing_agrees():
    p = _run()
    fixed = solve_rules(p, SolveOptions(time_limit=120))
    plain = solve_rules(p, SolveOptions(time_limit=120), fixing=False)
    assert fixed.status is Status.OPTIMAL and plain.status is Status.OPTIMAL, (fixed.log, plain.log)
    for g, w in zip(p.objective_levels(fixed.assignment), p.objective_levels(plain.assignment), strict=True):
        assert math.isclose(g, w, rel_tol=REL_TOL, abs_tol=1e-6)


def test_the_relaxation_holds_pinned_workers_and_whole_links_of_its_workers():
    p = _run()
    active = p.tier == 0
    held = _relaxed_workers(p, active)
    assert (held >= active).all()
    assert held[p.pin >= 0].all()
    touched = [link for link in p.links if active[link.workers].any()]
    untouched = [link for link in p.links if not active[link.workers].any()]
    assert touched, "the run should link a tier-1 worker"
    for link in touched:
        assert held[link.workers].all()
    extra = held & ~active & ~(p.pin >= 0)
    linked = np.zeros(p.n_workers, dtype=bool)
    for link in touched:
        linked[link.workers] = True
    assert not (extra & ~linked).any()
    for link in untouched:
        assert not held[link.workers[p.pin[link.workers] < 0]].any()
