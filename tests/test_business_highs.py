"""The engine against HiGHS on runs with business rules, tier by tier (spec/business-rules.md).

HiGHS solves the same model as a MILP (tests/helpers/highs_reference.py), one level of the
lexicographic objective at a time, each optimum fixed before the next. On medium runs the
engine's allocation must reach the same optimum on every level (fewest moves first, then
tier 1, tier 2, ..., the workers without a priority last), to the model's tolerance, and meet
every link and quota. On plain runs the reference equals the min-cost flow's optimum.

The runs come from ``benchmarks/instances.generate_instance`` with its business-rule options;
the generator's own promise (an allocation meeting every rule exists) is checked here too.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from allocator.engine import solve
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
from tests.helpers import business_runs as business
from tests.helpers import snapshot_feasibility as feas
from tests.helpers.highs_reference import REL_TOL, solve_reference


def _close(a: float, b: float) -> bool:
    # Each level is optimal to 1e-7 relative (business-rules.md); 1e-6 absolute for float sums.
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-6)


def _as_ids(problem: ProblemData, assignment: np.ndarray) -> dict[str, str]:
    return {problem.worker_ids[s]: problem.line_ids[p] for s, p in enumerate(assignment.tolist())}


def _check_reference_allocation(snap: dict, problem: ProblemData, assignment: np.ndarray) -> None:
    """HiGHS's allocation is valid by the independent checks: the reference means something."""
    wi, ji = feas.index(snap)
    ids = _as_ids(problem, assignment)
    line_of = np.array([ji[ids[w["id"]]] for w in snap["workers"]])
    assert feas.allocation_problems(snap, line_of) == []
    assert business.rule_problems(snap, ids) == []


# -- the generator -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "rules"),
    [
        ((120, 40, 1), {"links": 6, "quotas": 3, "tiers": 3}),
        ((90, 30, 2), {"quotas": 3, "fewest_moves": True}),
        ((60, 20, 3), {"links": 5, "tiers": 2, "fewest_moves": True}),
        ((200, 60, 4), {"links": 10, "quotas": 3, "tiers": 3}),
    ],
)
def test_generated_runs_carry_the_rules_asked_for_and_an_allocation_meets_them(size, rules):
    snap = business.generate_instance(*size, **rules)
    problem = ProblemData.from_snapshot(RunSnapshot.parse(snap))
    links = snap.get("linked_workers", [])
    assert len(links) == rules.get("links", 0)
    assert all(2 <= len(x["worker_ids"]) <= 4 for x in links)
    assert len({w for x in links for w in x["worker_ids"]}) == sum(
        len(x["worker_ids"]) for x in links
    )
    assert [q["id"] for q in snap.get("quotas", [])][:1] == (
        ["rural-minimum"] if rules.get("quotas") else []
    )
    assert len(snap.get("quotas", [])) == rules.get("quotas", 0)
    priorities = Counter(w.get("priority") for w in snap["workers"])
    assert len(priorities) == rules.get("tiers", 1)
    if rules.get("fewest_moves"):
        assert snap["settings"]["fewest_moves"] is True
        assert 0.85 * size[0] <= len(snap["previous_allocations"]) <= size[0]
    ref = solve_reference(problem, time_limit=120)
    assert ref.status == "optimal", ref.status
    _check_reference_allocation(snap, problem, ref.assignment)


def test_quotas_bind_and_couples_matter_on_a_benchmark_sized_run():
    """Rules read off a valid allocation change the optimum: they are not decoration."""
    plain = business.business_problem(150, 50, 7)
    ruled = business.business_problem(150, 50, 7, links=8, quotas=3)
    assert plain.cost.tolist() == ruled.cost.tolist()
    free = solve_reference(plain)
    bound = solve_reference(ruled)
    assert free.status == bound.status == "optimal"
    assert bound.levels[0] > free.levels[0] + 1e-6


def test_stable_runs_with_links_keep_a_stable_allocation_that_meets_them():
    snap = business.generate_instance(120, 36, 5, stability=True, links=6, quotas=1)
    assert len(snap["linked_workers"]) == 6 and snap["settings"]["stability"] is True
    allocation = business.instances().stable_allocation(
        {k: v for k, v in snap.items() if k not in ("linked_workers", "quotas")}
    )
    assert business.rule_problems(snap, allocation) == []
    wi, ji = feas.index(snap)
    line_of = np.array([ji[allocation[w["id"]]] for w in snap["workers"]])
    assert feas.allocation_problems(snap, line_of) == []
    # Weakly stable without the links; a linked worker forms no blocking pair, so with them too.
    assert feas.blocking_pairs(snap, line_of) == []


def test_named_benchmark_instances_have_no_rules():
    snap = business.instances().named_instance("small-140x60")
    assert not {"linked_workers", "quotas", "previous_allocations"} & set(snap)
    assert all("priority" not in w for w in snap["workers"]) and all(
        j["site"] for j in snap["job_lines"]
    )


# -- the engine against HiGHS --------------------------------------------------------------------


MEDIUM = [
    pytest.param((60, 24, 11), {"links": 4, "quotas": 3}, id="60x24-links-quotas"),
    pytest.param((80, 30, 12), {"tiers": 3}, id="80x30-three-tiers"),
    pytest.param(
        (100, 40, 13),
        {"tiers": 2, "fewest_moves": True, "quotas": 1},
        id="100x40-moves-tiers-quota",
    ),
    pytest.param(
        (120, 48, 14), {"links": 6, "quotas": 2, "tiers": 2}, id="120x48-links-quotas-tiers"
    ),
    pytest.param(
        (110, 44, 15),
        {"links": 5, "quotas": 3, "tiers": 3, "fewest_moves": True},
        id="110x44-everything",
    ),
    pytest.param((150, 60, 16), {"links": 8, "quotas": 3}, id="150x60-links-quotas"),
    # Fixing a solved tier by equality of costs scaled by 2^25 and rounded per pair excluded
    # allocations tied with it in real cost: the last level came out 1096.95 against HiGHS's
    # 1095.40 on this run (and 1025.6 against 1023.9 on seed 6) while reported optimal.
    pytest.param(
        (150, 40, 3), {"links": 8, "quotas": 3, "tiers": 3}, id="150x40-tied-tiers"
    ),
]


@pytest.mark.parametrize(("size", "rules"), MEDIUM)
def test_engine_equals_highs_level_by_level(size, rules):
    snap = business.generate_instance(*size, **rules)
    run = RunSnapshot.parse(snap)
    problem = ProblemData.from_snapshot(run)
    ref = solve_reference(problem, time_limit=120)
    assert ref.status == "optimal"
    _check_reference_allocation(snap, problem, ref.assignment)
    assert ref.levels == pytest.approx(
        problem.objective_levels(ref.assignment), rel=1e-12, abs=1e-9
    )

    # Exactness, not speed: a time limit that a loaded machine cannot reach.
    result = solve(run.with_settings(max_seconds=900))
    assert str(result.status) == "optimal", result.status
    engine = business.engine_assignment(problem, result)
    assert business.rule_problems(snap, _as_ids(problem, engine)) == []
    got = problem.objective_levels(engine)
    assert len(got) == len(ref.levels) == len(ref.level_names)
    for name, mine, theirs in zip(ref.level_names, got, ref.levels, strict=True):
        assert _close(mine, theirs), (name, mine, theirs, got, ref.levels)


def test_the_dashboard_demo_equals_highs_level_by_level():
    """The demo a new user sees (two couples, the rural minimum, two tiers) is solved exactly."""
    from allocator.demo import demo_snapshot

    snap = demo_snapshot()
    run = RunSnapshot.parse(snap)
    problem = ProblemData.from_snapshot(run)
    assert problem.links and problem.quotas and problem.n_tiers == 2
    ref = solve_reference(problem, time_limit=120)
    assert ref.status == "optimal"
    _check_reference_allocation(snap, problem, ref.assignment)
    result = solve(run.with_settings(max_seconds=900))
    assert str(result.status) == "optimal", result.status
    got = problem.objective_levels(business.engine_assignment(problem, result))
    assert all(_close(a, b) for a, b in zip(got, ref.levels, strict=True)), (got, ref.levels)


@pytest.mark.parametrize("size", [(140, 60, 21), (150, 50, 22), (90, 45, 23)])
def test_reference_equals_the_flow_optimum_on_plain_runs(size):
    snap = business.generate_instance(*size)
    run = RunSnapshot.parse(snap)
    problem = ProblemData.from_snapshot(run)
    assert not problem.has_business_rules
    ref = solve_reference(problem)
    result = solve(run)  # the min-cost flow path
    assert ref.status == "optimal" and str(result.status) == "optimal"
    assert ref.level_names == ["cost"]
    flow = problem.objective(business.engine_assignment(problem, result))
    assert _close(ref.levels[0], flow), (ref.levels[0], flow)


def test_reference_reports_an_infeasible_couple():
    """A couple with no common site: HiGHS says infeasible (the reference can say no)."""
    snap = business.generate_instance(40, 12, 31)
    site = {j["id"]: j["site"] for j in snap["job_lines"]}
    w1, w2 = snap["workers"][0]["id"], snap["workers"][1]["id"]
    lines = [j["id"] for j in snap["job_lines"]]
    a = lines[0]
    b = next(j for j in lines if site[j] != site[a])
    snap["pins"] = [p for p in snap["pins"] if p["worker_id"] not in (w1, w2)]
    snap["forbids"] = [f for f in snap["forbids"] if f["worker_id"] not in (w1, w2)]
    snap["eligibility"] = [
        {
            "job_line_id": e["job_line_id"],
            "included_worker_ids": [],
            "excluded_worker_ids": [],
            "included_qualification_ids": [],
            "excluded_qualification_ids": [],
        }
        for e in snap["eligibility"]
    ]
    # Forbid every line but one per worker, on two different sites.
    snap["forbids"] = [{"worker_id": w1, "job_line_id": j} for j in lines if j != a] + [
        {"worker_id": w2, "job_line_id": j} for j in lines if j != b
    ]
    snap["linked_workers"] = [{"id": "couple-x", "worker_ids": [w1, w2]}]
    ref = solve_reference(ProblemData.from_snapshot(RunSnapshot.parse(snap)))
    assert ref.status == "infeasible"
    snap["linked_workers"] = []
    assert solve_reference(ProblemData.from_snapshot(RunSnapshot.parse(snap))).status == "optimal"


def test_a_stable_run_with_links_solves_to_a_stable_allocation_that_meets_them():
    snap = business.generate_instance(120, 36, 5, stability=True, links=6)
    run = RunSnapshot.parse(snap).with_settings(max_seconds=120)
    problem = ProblemData.from_snapshot(run)
    result = solve(run)
    assert str(result.status) in ("optimal", "feasible")
    engine = business.engine_assignment(problem, result)
    ids = _as_ids(problem, engine)
    assert business.rule_problems(snap, ids) == []
    wi, ji = feas.index(snap)
    line_of = np.array([ji[ids[w["id"]]] for w in snap["workers"]])
    # Linked workers form no blocking pair (business-rules.md); everyone else must not either.
    linked = {w for x in snap["linked_workers"] for w in x["worker_ids"]}
    assert [b for b in feas.blocking_pairs(snap, line_of) if b[0] not in linked] == []
