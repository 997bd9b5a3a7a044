"""Result: the allocator-result/1 JSON, rounding, summaries and explanations.

These tests build results from hand-picked valid allocations of tests/data/valid/small_network.json
(no solver), so every number can be worked out from the snapshot by hand.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from allocator import diagnosis as dx
from allocator.problem import ProblemData
from allocator.result import FORMAT, Result
from allocator.snapshot import load_snapshot
from allocator.solvers.base import Status
from tests.helpers.named_runs import DATA, L, W, assignment, problem

SPEC_KEYS = [
    "format", "run_id", "status", "objective", "best_bound", "solve_seconds", "settings",
    "input_fingerprint", "allocations", "metrics", "diagnosis",
    "seed_dependent_worker_ids",  # explanations.md, "Alternative optima"
]

# Two valid allocations of small_network.json (capacities, eligibility, the pin of w05 on j2,
# the forbid of w07 on j5 and the three mandatory lines j1-j3 all kept).
# A: j1 is full with w06 and w07, so w04 (j1 = rank 1) gets j5, their rank 2.
ALLOC_A = {"w01": "j4", "w02": "j2", "w03": "j3", "w04": "j5", "w05": "j2", "w06": "j1", "w07": "j1", "w08": "j4"}
# B: w03 gets j5, a line they did not rank; j3 (rank 1.5) had a free place, j4 (rank 1.5) excludes
# their tag 'nights'.
ALLOC_B = {"w01": "j4", "w02": "j2", "w03": "j5", "w04": "j1", "w05": "j2", "w06": "j3", "w07": "j1", "w08": "j4"}


@pytest.fixture(scope="module")
def small() -> ProblemData:
    return ProblemData.from_snapshot(load_snapshot(DATA / "valid" / "small_network.json"))


def build(p: ProblemData, alloc: dict[str, str], status=Status.OPTIMAL, **kw) -> Result:
    kw.setdefault("best_bound", None)
    kw.setdefault("solve_seconds", 0.5)
    return Result.build(p, status, assignment(p, alloc), **kw)


def test_to_dict_is_exactly_the_spec_shape(small):
    r = build(small, ALLOC_A)
    d = r.to_dict()
    assert list(d) == SPEC_KEYS
    assert d["format"] == FORMAT == "allocator-result/1"
    assert d["run_id"] == "2027-small"
    assert d["status"] == "optimal"
    assert d["settings"] == {k: v for k, v in small.snapshot.settings.model_dump(mode="json").items() if k != "fewest_moves"}
    assert d["input_fingerprint"] == small.snapshot.fingerprint()
    assert d["diagnosis"] == []
    assert [a["worker_id"] for a in d["allocations"]] == sorted(ALLOC_A)
    assert all(list(a) == ["worker_id", "job_line_id", "worker_rank", "cost"] for a in d["allocations"])
    assert {a["worker_id"]: a["job_line_id"] for a in d["allocations"]} == ALLOC_A
    json.loads(r.to_json())  # valid JSON


def test_allocation_numbers_follow_the_model(small):
    d = build(small, ALLOC_A).to_dict()
    by_worker = {a["worker_id"]: a for a in d["allocations"]}
    # w04 on j5: rank 2; j5 has no supervisors, so Dp = ((8 + 1) / 2) ** 1 = 4.5;
    # cost = 0.7 * 2 + 0.3 * 4.5.
    assert by_worker["w04"]["worker_rank"] == 2.0
    assert by_worker["w04"]["cost"] == pytest.approx(0.7 * 2 + 0.3 * 4.5)
    # w07 on j1: rank 1; supervisor p-ed ranks them 2, and a global weighting adds 1.5.
    assert by_worker["w07"]["cost"] == pytest.approx(0.7 * 1 + 0.3 * (2 + 1.5))
    # The objective is the sum of the pair costs.
    assert d["objective"] == pytest.approx(sum(a["cost"] for a in d["allocations"]))


def test_optimal_bound_equals_objective_and_feasible_bound_never_exceeds_it(small):
    r = build(small, ALLOC_A, best_bound=1.0)
    assert r.best_bound == r.objective
    f = build(small, ALLOC_A, status=Status.FEASIBLE, best_bound=1e9)
    assert f.best_bound == f.objective
    g = build(small, ALLOC_A, status=Status.FEASIBLE, best_bound=3.0)
    assert g.best_bound == 3.0


def test_numbers_are_rounded_to_ten_significant_digits():
    # power 1.7 makes every cost irrational-looking
    p = problem(
        W("a", "b", "c"),
        L(("x", 2), ("y", 2)),
        worker_preferences=[{"worker_id": "a", "job_line_id": "x", "rank": 2}],
        settings={"preference_power": 1.7, "preferencer_weight": 0.37},
    )
    r = Result.build(p, Status.OPTIMAL, assignment(p, {"a": "x", "b": "x", "c": "y"}), best_bound=None, solve_seconds=0.1234567)
    for a in r.to_dict()["allocations"]:
        for key in ("worker_rank", "cost"):
            assert a[key] == float(f"{a[key]:.10g}")
    raw = p.cost[0, 0]
    assert r.allocations[0].cost == float(f"{raw:.10g}") != raw
    assert r.solve_seconds == 0.123


def test_infeasible_result_carries_the_diagnosis_and_nothing_else():
    p = problem(W("w1", "w2", "w3"), L(("j1", 1), ("j2", 1)))
    diag = dx.diagnose(p)
    r = Result.build(p, Status.INFEASIBLE, None, best_bound=None, solve_seconds=0.01, diagnosis=diag)
    d = r.to_dict()
    assert d["status"] == "infeasible"
    assert d["objective"] is None and d["best_bound"] is None
    assert d["allocations"] == [] and d["metrics"] == {}
    assert d["diagnosis"] == [dx.entry(x) for x in diag] and d["diagnosis"][0]["code"] == dx.CAPACITY_BELOW_WORKERS
    assert set(d["diagnosis"][0]) == {"code", "message", "worker_ids", "job_line_ids"}
    assert Result.from_dict(d).diagnosis == diag
    text = r.summary()
    assert "infeasible" in text and "CAPACITY_BELOW_WORKERS" in text and "3 workers (doctors)" in text


def test_summary_of_an_allocation(small):
    text = build(small, ALLOC_A).summary()
    assert "optimal allocation of 8 workers (doctors) to 5 job lines" in text
    assert "Mandatory lines filled: 3 of 3" in text
    feasible = build(small, ALLOC_A, status=Status.FEASIBLE, best_bound=10.0).summary()
    assert "not proven optimal" in feasible and "best bound 10" in feasible


def test_no_solution_summary():
    p = problem(W("w1"), L(("j1", 1)))
    r = Result.build(p, Status.NO_SOLUTION, None, best_bound=None, solve_seconds=1.0)
    assert r.to_dict()["status"] == "no_solution"
    assert "no allocation found within the time limit" in r.summary()
    # Stability is off here: the summary said "or turn stability off" all the same.
    assert r.summary().endswith("Give it more time (--time-limit).")


def test_round_trip_through_json(small):
    r = build(small, ALLOC_A)
    back = Result.from_dict(json.loads(r.to_json()))
    assert back.to_dict() == r.to_dict()
    with pytest.raises(ValueError, match="format"):
        Result.from_dict({"format": "something-else"})


def test_allocations_json_is_compact_and_sorted(small):
    r = build(small, ALLOC_A)
    text = r.allocations_json()
    assert json.loads(text) == r.to_dict()["allocations"]
    assert " " not in text.replace("worker_id", "")  # compact separators


# -- explain -----------------------------------------------------------------------------------


def test_explain_a_worker_whose_first_choice_was_full(small):
    e = build(small, ALLOC_A).explain("w04")
    assert (e.job_line_id, e.worker_rank, e.choice, e.pinned) == ("j5", 2.0, 2, False)
    assert e.dw == 2.0 and e.dp == 4.5 and e.weighting == 0.0 and e.preferencer_rank is None
    assert e.cost == pytest.approx((1 - e.alpha) * e.dw + e.alpha * e.dp)
    assert [b["job_line_id"] for b in e.better_lines] == ["j1"]
    j1 = e.better_lines[0]
    assert j1["full"] and (j1["filled"], j1["capacity"]) == (2, 2)
    assert j1["why_not"] == "full (2 of 2 places)"
    text = str(e)
    assert "'D. Smith' (w04) got job line 'Line 5: Cardiology / Gen Med / Aged Care' (j5), their 2nd choice" in text
    assert "'Line 1: ED / Gen Med / Surgery' (j1) (rank 1): full (2 of 2 places)" in text


def test_explain_ineligible_and_free_better_lines(small):
    e = build(small, ALLOC_B).explain("w03")
    # j5 is unranked by w03, who ranked 2 of 5 lines: (2 + 1 + 5) / 2 = 4.
    assert (e.job_line_id, e.worker_rank, e.choice) == ("j5", 4.0, None)
    better = {b["job_line_id"]: b for b in e.better_lines}
    assert list(better) == ["j3", "j4"]  # rank 1.5 each, by id
    assert better["j4"]["eligibility"] == "EXCLUDED_TAG" and not better["j4"]["eligible"]
    assert "'nights'" in better["j4"]["why_not"]
    assert better["j3"]["eligible"] and not better["j3"]["full"]
    assert better["j3"]["why_not"].startswith("had a free place")
    assert "a line they did not rank" in str(e)


def test_explain_cost_breakdown_with_supervisors_and_weighting(small):
    e = build(small, ALLOC_B).explain("w07")
    # p-ed ranks w07 second; a global weighting of +1.5 applies to every line.
    assert e.preferencer_rank == 2.0 and e.preferencer_base == 2.0 and e.weighting == 1.5
    assert e.dp == 3.5 and e.cost == pytest.approx(0.7 * 1 + 0.3 * 3.5)
    assert e.better_lines == []
    e5 = build(small, ALLOC_B).explain("w05")
    assert e5.pinned and "pinned there by the planner" in str(e5)
    json.dumps(e.to_dict())


def test_explain_refuses_unknown_worker_and_results_without_allocation(small):
    r = build(small, ALLOC_A)
    with pytest.raises(KeyError):
        r.explain("nobody")
    back = Result.from_dict(r.to_dict())
    with pytest.raises(ValueError):
        back.explain("w01")


def test_assignment_is_kept_as_indices(small):
    r = build(small, ALLOC_A)
    assert isinstance(r.assignment, np.ndarray) and r.assignment.dtype == np.int64


# -- honest ranks in the JSON, the summary and the explanation --------------------------------


def _ranked_by_rows(p: ProblemData, d: dict) -> tuple[list[float], int]:
    """Ranks of the allocation rows whose pair the worker ranked, and how many rows are unranked."""
    given = {(r.worker_id, r.job_line_id) for r in p.snapshot.worker_preferences}
    rows = d["allocations"]
    got = [a["worker_rank"] for a in rows if (a["worker_id"], a["job_line_id"]) in given]
    return got, len(rows) - len(got)


def test_result_json_carries_the_honest_rank_keys(small):
    d = json.loads(build(small, ALLOC_B).to_json())
    got, unranked = _ranked_by_rows(small, d)
    assert unranked >= 1  # w03 is on j5, which they did not rank
    m = d["metrics"]
    assert m["mean_rank_ranked"] == pytest.approx(sum(got) / len(got))
    assert m["worst_rank_ranked"] == max(got)
    assert m["unranked_count"] == unranked
    back = Result.from_dict(d)
    assert back.metrics["unranked_count"] == unranked


def test_summary_gives_ranks_over_ranked_lines_and_counts_the_rest(small):
    r = build(small, ALLOC_B)
    got, unranked = _ranked_by_rows(small, r.to_dict())
    text = r.summary()
    assert f"worst rank {max(got):.6g} over the workers on lines they ranked" in text
    assert f"{unranked} worker on a line they did not rank (not ranked)" in text
    # The shared rank of w03's unranked line (4) is in the model's worst rank, never in the text.
    assert r.metrics["worst_rank"] > max(got)
    assert f"worst rank {r.metrics['worst_rank']:.6g}" not in text


def test_explanation_of_an_unranked_line_gives_no_rank(small):
    e = build(small, ALLOC_B).explain("w03")
    head = str(e).splitlines()[0]
    assert head.endswith("a line they did not rank (not ranked).")
    assert "rank" not in head.replace("did not rank", "").replace("not ranked", "")
