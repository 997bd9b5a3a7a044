"""solve_rules' step 6: a proven relaxation completed for the other workers proves the level.

The completion is a heuristic; what must hold is that a level it proves is the level's true
optimum. HiGHS on the same model, level by level (tests/helpers/highs_reference.py), is the
independent judge; the unfixed CP-SAT model a second one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from allocator.engine import rule_breaches, verify
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
from allocator.solvers.base import SolveOptions, Status
from allocator.solvers.cpsat.rules import _relaxed_workers, solve_rules
from benchmarks.instances import generate_instance
from tests.helpers.highs_reference import REL_TOL, solve_reference


def _run(seed: int = 14, size: tuple[int, int, int] = (100, 30, 8)) -> ProblemData:
    # 100 x 30 with 8 links, 3 quotas and 3 tiers by default. Which step proves which level
    # depends on the run (the LP's vertex, the probe): seed 18 has tier 2 proven by step 6's
    # completion right after the probe; 150 x 40 with 10 links, seed 14, has tier 2 proven by
    # the probe at the LP bound.
    m, n, links = size
    return ProblemData.from_snapshot(RunSnapshot.parse(generate_instance(m, n, seed, links=links, quotas=3, tiers=3)))


def test_a_level_proven_by_the_completed_relaxation_is_the_highs_optimum():
    p = _run(18)
    out = solve_rules(p, SolveOptions(time_limit=120))
    assert out.status is Status.OPTIMAL, out.log
    assert any("completed for the other workers" in line for line in out.log), out.log
    assert verify(p, out.assignment) == [] and rule_breaches(p, out.assignment) == []
    ref = solve_reference(p, time_limit=120)
    assert ref.status == "optimal", ref.status
    got = p.objective_levels(out.assignment)
    assert len(got) == len(ref.levels) == 3
    # Every level: the one the completion proved and those after it, on its optimal face.
    for g, w in zip(got, ref.levels, strict=True):
        assert math.isclose(g, w, rel_tol=REL_TOL, abs_tol=1e-6), (got, ref.levels)


@pytest.mark.parametrize("seed, size, step", [(14, (150, 40, 10), "probe"), (22, (100, 30, 8), "early relaxation")])
def test_levels_proven_by_the_probe_or_the_early_relaxation_are_the_highs_optimum(seed, size, step):
    # The probe: a tier (tier 2 here) proven by an allocation the probe at the LP bound finds. Early
    # relaxation: tier 2's probe finds nothing, and step 6's relaxation and completion run right
    # after it (before the LP's log line, the fresh start and the polish) and prove the tier.
    p = _run(seed, size)
    out = solve_rules(p, SolveOptions(time_limit=120))
    assert out.status is Status.OPTIMAL, out.log
    if step == "probe":
        probes = [k for k, line in enumerate(out.log) if "probe at the LP bound" in line and "OPTIMAL" in line]
        assert any("reaches the LP bound: proven" in " ".join(out.log[k + 1:k + 3]) for k in probes), out.log
    else:
        relaxed = out.log.index(next(line for line in out.log if line.startswith("tier 2: relaxation without")))
        lp_line = out.log.index(next(line for line in out.log if line.startswith("tier 2: LP bound")))
        assert relaxed < lp_line and not any(line.startswith("tier 2: polished") for line in out.log), out.log
        assert any(line.startswith("tier 2: the relaxation's allocation completed") for line in out.log)
    assert verify(p, out.assignment) == [] and rule_breaches(p, out.assignment) == []
    ref = solve_reference(p, time_limit=120)
    assert ref.status == "optimal", ref.status
    got = p.objective_levels(out.assignment)
    for g, w in zip(got, ref.levels, strict=True):
        assert math.isclose(g, w, rel_tol=REL_TOL, abs_tol=1e-6), (got, ref.levels)


def test_the_repair_over_a_few_pairs_falls_back_to_every_pair(monkeypatch):
    # One pair a worker (the cheapest in the flow's reduced costs, and its optimum's) leaves
    # the links and quotas nothing to mend with: that attempt finds no start, and the repair
    # over every kept pair must still give one that meets the rules.
    import allocator.solvers.cpsat.rules as rules
    from allocator.solvers.cpsat.levels import levels, meets_rules
    from allocator.solvers.scaling import allowed_pairs, cpsat_budget, integer_costs

    p = _run(1)
    costs = integer_costs(p, budget=cpsat_budget(p.n_workers), max_tie_range=1, pairs=allowed_pairs(p))
    todo = levels(p, costs.workers, costs.lines, costs.base)
    keep = rules.link_reach(p, costs, p.capacity[costs.lines] > 0)
    weights = rules._lex_weights(todo, p.n_lines)
    first = rules.level_flow(p, costs, keep, weights)
    assert not meets_rules(p, first.assignment)  # there is something to repair
    calls = []
    real = rules._repair

    def spy(problem, costs_, kept, *args, **kwargs):
        found = real(problem, costs_, kept, *args, **kwargs)
        calls.append((int(kept.sum()), found is not None))
        return found

    monkeypatch.setattr(rules, "_repair", spy)
    monkeypatch.setattr(rules, "REPAIR_FEW_ABOVE", 0)  # a small run: the few pairs only on large ones
    monkeypatch.setattr(rules, "REPAIR_PAIRS", 1)
    start = rules.repair(p, costs, keep, weights, first)
    assert calls == [(calls[0][0], False), (int(keep.sum()), True)] and calls[0][0] < int(keep.sum())
    assert start is not None and meets_rules(p, start) and verify(p, start, stability=False) == []
    monkeypatch.setattr(rules, "REPAIR_PAIRS", 12)
    calls.clear()
    assert meets_rules(p, rules.repair(p, costs, keep, weights, first))
    assert len(calls) == 1 and calls[0][0] < int(keep.sum())  # twelve pairs a worker suffice here
    monkeypatch.setattr(rules, "REPAIR_FEW_ABOVE", int(keep.sum()))
    calls.clear()
    assert meets_rules(p, rules.repair(p, costs, keep, weights, first))
    assert calls == [(int(keep.sum()), True)]  # at this size: every pair at once


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


def test_a_probe_too_large_is_not_tried_and_the_levels_stay(monkeypatch):
    import allocator.solvers.cpsat.rules as rules

    p = _run(3)
    probed = solve_rules(p, SolveOptions(time_limit=120))
    monkeypatch.setattr(rules, "PROBE_PAIRS", 10)
    capped = solve_rules(p, SolveOptions(time_limit=120))
    assert probed.status is Status.OPTIMAL and capped.status is Status.OPTIMAL, capped.log
    assert any("probe at the LP bound" in line and "OPTIMAL" in line for line in probed.log)
    skipped = [line for line in capped.log if "probe at the LP bound" in line]
    assert skipped and all("not tried (more than 10)" in line for line in skipped), capped.log
    for g, w in zip(p.objective_levels(capped.assignment), p.objective_levels(probed.assignment), strict=True):
        assert math.isclose(g, w, rel_tol=REL_TOL, abs_tol=1e-6)
