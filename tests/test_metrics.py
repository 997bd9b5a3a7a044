"""Metrics, recomputed from the problem data: named instances worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator.metrics import (
    choice_numbers,
    compute_metrics,
    gini,
    rank_distribution,
    rank_metrics_of_result,
    round_sig,
)
from tests.helpers.named_runs import (
    L,
    W,
    assignment,
    pprefs,
    prefs,
    problem,
    tiny_runs,
    valid_assignments,
)


def ties_and_unranked(power: float = 1.0):
    """Four workers, four lines; every tie notation and an unranked worker.

    a: competition (j1=1, j2=1, j3=3) -> j1, j2 rank 1.5, j3 rank 3, j4 unranked (3+1+4)/2 = 4
    b: dense (j2=1, j3=1, j1=2)       -> j2, j3 rank 1.5, j1 rank 3 (3rd position), j4 rank 4
    c: ranks nothing                  -> every line (0+1+4)/2 = 2.5
    d: j4=1, j1=2                     -> j2, j3 unranked (2+1+4)/2 = 3.5
    j1 has supervisors p1 (ranks b=1, c=2; others (2+1+4)/2 = 3.5) and p2 (ranks c=1; others 3).
    The allocation a->j2, b->j1, c->j1, d->j4 leaves j3 with its one place empty.
    """
    p = problem(
        W("a", "b", "c", "d"),
        L(("j1", 2, True, ["p1", "p2"]), ("j2", 1), ("j3", 1), ("j4", 1, True)),
        worker_preferences=prefs(a={"j1": 1, "j2": 1, "j3": 3}, b={"j2": 1, "j3": 1, "j1": 2}, d={"j4": 1, "j1": 2}),
        preferencer_preferences=pprefs(p1={"b": 1, "c": 2}, p2={"c": 1}),
        settings={"preference_power": power},
    )
    return p, assignment(p, {"a": "j2", "b": "j1", "c": "j1", "d": "j4"})


def test_choice_numbers_count_tie_groups_by_their_first_position():
    p, a = ties_and_unranked()
    # a got j2, in their first tie group; b got j1, with two lines ranked better (3rd position);
    # c and d got lines they did not rank (0).
    assert choice_numbers(p, a).tolist() == [1, 3, 0, 1]


def test_rank_distribution_buckets_choices_and_unranked_lines():
    p, a = ties_and_unranked()
    dist = rank_distribution(p, a)
    assert [(b["choice"], b["workers"]) for b in dist] == [(1, 2), (2, 0), (3, 1), ("unranked", 1)]
    assert [b["label"] for b in dist] == ["1st choice", "2nd choice", "3rd choice", "unranked line"]


def test_metrics_of_the_named_instance():
    p, a = ties_and_unranked()
    m = compute_metrics(p, a)
    got = [1.5, 3.0, 2.5, 1.0]  # fractional ranks of a, b, c, d (see the docstring)
    assert m["n_workers"] == 4 and m["n_job_lines"] == 4
    assert m["first_choice_share"] == 0.5  # a and d
    assert m["top3_choice_share"] == 0.75  # a, b (3rd position) and d
    assert m["mean_rank"] == pytest.approx(sum(got) / 4)
    assert m["worst_rank"] == 3.0
    assert m["workers_on_unranked_lines"] == 1
    assert m["worker_rank_counts"] == [{"rank": r, "workers": 1} for r in sorted(got)]
    # b on j1: mean(p1 -> 1, p2 -> 3) = 2; c on j1: mean(2, 1) = 1.5. No other line has supervisors.
    assert m["preferencer_mean_rank"] == pytest.approx((2 + 1.5) / 2)
    assert m["pairs_with_preferencers"] == 2
    assert m["line_fill"] == [
        {"job_line_id": "j1", "filled": 2, "capacity": 2, "vacancies": 0, "mandatory": True},
        {"job_line_id": "j2", "filled": 1, "capacity": 1, "vacancies": 0, "mandatory": False},
        {"job_line_id": "j3", "filled": 0, "capacity": 1, "vacancies": 1, "mandatory": False},
        {"job_line_id": "j4", "filled": 1, "capacity": 1, "vacancies": 0, "mandatory": True},
    ]
    assert (m["mandatory_lines"], m["mandatory_lines_filled"]) == (2, 2)
    assert (m["places"], m["vacancies"]) == (5, 1)
    assert m["worker_dissatisfaction_gini"] == pytest.approx(_gini_by_definition(got))
    assert m["objective"] == pytest.approx(float(sum(p.cost[s, a[s]] for s in range(4))))
    json.dumps(m)  # plain JSON


def test_gini_uses_worker_dissatisfaction_with_the_power():
    p, a = ties_and_unranked(power=2.0)
    m = compute_metrics(p, a)
    assert m["worker_dissatisfaction_gini"] == pytest.approx(_gini_by_definition([1.5**2, 3.0**2, 2.5**2, 1.0]))
    assert m["mean_rank"] == pytest.approx(2.0)  # ranks, not their powers


def test_unfilled_mandatory_line_and_vacancies():
    p = problem(W("a", "b"), L(("j1", 3, True), ("j2", 2, True)))
    m = compute_metrics(p, assignment(p, {"a": "j1", "b": "j1"}))
    assert (m["mandatory_lines"], m["mandatory_lines_filled"]) == (2, 1)
    assert m["vacancies"] == 1 + 2
    assert m["preferencer_mean_rank"] is None and m["pairs_with_preferencers"] == 0
    # Nobody ranked anything: every line is unranked, no choice buckets, shares are 0.
    assert m["rank_distribution"] == [{"choice": "unranked", "label": "unranked line", "workers": 2}]
    assert m["first_choice_share"] == 0.0 and m["top3_choice_share"] == 0.0


def _two_want_one():
    """w1 and w2 both want j1 most; j1's supervisor prefers w1. One place per line."""
    return problem(
        W("w1", "w2"),
        L(("j1", 1, False, ["p"]), ("j2", 1)),
        worker_preferences=prefs(w1={"j1": 1, "j2": 2}, w2={"j1": 1, "j2": 2}),
        preferencer_preferences=pprefs(p={"w1": 1, "w2": 2}),
    )


def test_blocking_pairs_are_counted_even_without_stability():
    p = _two_want_one()
    assert p.settings.stability is False
    # w2 on j1 and w1 on j2: w1 and j1 would both rather be together.
    assert compute_metrics(p, assignment(p, {"w1": "j2", "w2": "j1"}))["blocking_pairs"] == 1
    # The other way round w2 would like j1, but j1 prefers w1, whom it has.
    assert compute_metrics(p, assignment(p, {"w1": "j1", "w2": "j2"}))["blocking_pairs"] == 0


def test_free_place_makes_a_blocking_pair():
    p = problem(W("w1"), L(("j1", 1), ("j2", 1)), worker_preferences=prefs(w1={"j1": 1, "j2": 2}))
    assert compute_metrics(p, assignment(p, {"w1": "j2"}))["blocking_pairs"] == 1


def test_wrong_shape_is_refused():
    p, a = ties_and_unranked()
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(p, a[:2])


def _gini_by_definition(xs):
    n = len(xs)
    mean = sum(xs) / n
    return sum(abs(x - y) for x in xs for y in xs) / (2 * n * n * mean)


def test_gini_known_values():
    assert gini(np.array([2.0, 2.0, 2.0])) == pytest.approx(0.0)
    assert gini(np.array([0.0, 0.0, 0.0, 1.0])) == pytest.approx(0.75)
    assert gini(np.array([])) == 0.0


@given(st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=1, max_size=30))
@settings(max_examples=60, deadline=None)
def test_gini_matches_its_definition(xs):
    if sum(xs) <= 0:
        assert gini(np.array(xs)) == 0.0
    else:
        assert gini(np.array(xs)) == pytest.approx(_gini_by_definition(xs), abs=1e-9)


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (1 / 3, 0.3333333333),  # 10 significant digits
        (123456789012.5, 123456789000.0),
        (2.0, 2.0),
        (0.0, 0.0),
        (-0.0, 0.0),  # no negative zero in the JSON
        (None, None),
    ],
)
def test_round_sig(x, expected):
    assert round_sig(x) == expected


def test_round_sig_is_stable_under_summation_order():
    xs = [0.1] * 10
    assert round_sig(sum(xs)) == round_sig(math.fsum(xs)) == 1.0


# -- honest ranks: over workers on lines they ranked, the unranked counted beside -----------------


def _fractional_ranks(given: dict[str, float]) -> dict[str, float]:
    """The spec's fractional ranks of one worker's own list, worked out independently."""
    order = sorted(given.values())
    return {j: (order.index(r) + 1 + len(order) - order[::-1].index(r)) / 2 for j, r in given.items()}


def _honest_by_hand(snapshot, alloc: dict[str, str]):
    """Mean and worst rank over workers on a line they ranked, and the unranked count, from rows."""
    lists: dict[str, dict[str, float]] = {}
    for row in snapshot.worker_preferences:
        lists.setdefault(row.worker_id, {})[row.job_line_id] = row.rank
    got = [
        _fractional_ranks(lists[w])[j] for w, j in alloc.items() if j in lists.get(w, {})
    ]
    return got, sum(1 for w, j in alloc.items() if j not in lists.get(w, {}))


def test_honest_ranks_leave_out_the_workers_on_unranked_lines():
    p, a = ties_and_unranked()
    alloc = {w: p.line_ids[int(a[s])] for s, w in enumerate(p.worker_ids)}
    got, unranked = _honest_by_hand(p.snapshot, alloc)
    m = compute_metrics(p, a)
    assert m["mean_rank_ranked"] == pytest.approx(sum(got) / len(got))
    assert m["worst_rank_ranked"] == max(got)
    assert m["unranked_count"] == unranked == m["workers_on_unranked_lines"]


def test_worst_rank_never_exceeds_the_longest_list_anyone_gave():
    # Three workers rank two of six lines each; w3 is placed on a line they did not rank, whose
    # shared rank (2 + 1 + 6) / 2 = 4.5 is no rank anyone gave.
    p = problem(
        W("w1", "w2", "w3"),
        L(*[(f"j{k}", 1) for k in range(1, 7)]),
        worker_preferences=prefs(w1={"j1": 1, "j2": 2}, w2={"j1": 1, "j2": 2}, w3={"j1": 1, "j2": 2}),
    )
    alloc = {"w1": "j1", "w2": "j2", "w3": "j5"}
    m = compute_metrics(p, assignment(p, alloc))
    got, unranked = _honest_by_hand(p.snapshot, alloc)
    longest = max(sum(1 for r in p.snapshot.worker_preferences if r.worker_id == w) for w in alloc)
    assert m["worst_rank_ranked"] == max(got) <= longest
    assert m["mean_rank_ranked"] == pytest.approx(sum(got) / len(got))
    assert m["unranked_count"] == unranked == 1
    assert m["worst_rank"] > longest  # the model's rank of the unranked line, kept apart


def test_honest_ranks_when_nobody_is_on_a_ranked_line():
    p = problem(W("a", "b"), L(("j1", 3), ("j2", 2)))
    m = compute_metrics(p, assignment(p, {"a": "j1", "b": "j2"}))
    assert m["mean_rank_ranked"] is None and m["worst_rank_ranked"] is None
    assert m["unranked_count"] == 2


@given(tiny_runs(ranks=True))
@settings(max_examples=40, deadline=None)
def test_honest_ranks_match_the_preference_rows(p):
    a = next(valid_assignments(p), None)
    if a is None:
        return
    alloc = {w: p.line_ids[int(a[s])] for s, w in enumerate(p.worker_ids)}
    got, unranked = _honest_by_hand(p.snapshot, alloc)
    m = compute_metrics(p, a)
    assert m["unranked_count"] == unranked
    if got:
        assert m["mean_rank_ranked"] == pytest.approx(sum(got) / len(got))
        assert m["worst_rank_ranked"] == pytest.approx(max(got))
    else:
        assert m["mean_rank_ranked"] is None and m["worst_rank_ranked"] is None


def test_rank_metrics_of_a_result_dict_agree_with_the_solve():
    # A result saved before the three keys existed is filled in from its rows and the snapshot.
    p, a = ties_and_unranked()
    from allocator.result import Result
    from allocator.solvers.base import Status

    d = Result.build(p, Status.OPTIMAL, a, best_bound=None, solve_seconds=0.1).to_dict()
    for key in ("mean_rank_ranked", "worst_rank_ranked", "unranked_count"):
        d["metrics"].pop(key)
    again = rank_metrics_of_result(d, p.snapshot)
    assert again == {k: compute_metrics(p, a)[k] for k in again}


def test_one_ordinal_spelling():
    from allocator.kpis import ordinal

    assert [ordinal(k) for k in (1, 2, 3, 4, 10, 11, 12, 13, 20, 21, 22, 23, 101, 111, 112, 113, 121)] == [
        "1st", "2nd", "3rd", "4th", "10th", "11th", "12th", "13th", "20th",
        "21st", "22nd", "23rd", "101st", "111th", "112th", "113th", "121st",
    ]


def test_supervisors_mean_rank_is_over_the_workers_they_ranked():
    """Two supervisors on j1: p1 ranked x=1, y=2, z=2 (a tie: 2.5 each); p2 ranked only x (1).
    x on j1: mean(1, 1) = 1; y on j1: p1 alone, 2.5; w on j1: nobody ranked w (not counted)."""
    from allocator.problem import ProblemData
    from allocator.snapshot import RunSnapshot

    data = {
        "format": "allocator-run/1",
        "workers": [{"id": i} for i in ("w", "x", "y", "z")],
        "job_lines": [{"id": "j1", "max_n_workers": 3, "preferencer_ids": ["p1", "p2"]},
                      {"id": "j2", "max_n_workers": 1}],
        "preferencer_preferences": [
            {"preferencer_id": "p1", "worker_id": "x", "rank": 1},
            {"preferencer_id": "p1", "worker_id": "y", "rank": 2},
            {"preferencer_id": "p1", "worker_id": "z", "rank": 2},
            {"preferencer_id": "p2", "worker_id": "x", "rank": 1},
        ],
    }
    p = ProblemData.from_snapshot(RunSnapshot.parse(data))
    m = compute_metrics(p, assignment(p, {"w": "j1", "x": "j1", "y": "j1", "z": "j2"}))
    assert m["preferencer_mean_rank_ranked"] == pytest.approx((1.0 + 2.5) / 2)
    assert m["preferencer_unranked_count"] == 1  # w: on j1, ranked by neither supervisor
    assert m["pairs_with_preferencers"] == 3
    # The model's figure counts w at the shared rank nobody gave: it is larger.
    assert m["preferencer_mean_rank"] > m["preferencer_mean_rank_ranked"]
