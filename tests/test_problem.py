"""ProblemData: ranks, unranked items, preferencer side, weightings and cost, per the spec.

The reference below recomputes every cost pair by pair in plain Python, straight from the
formulas of allocation-model.md, and the vectorised ProblemData must agree with it.
"""

import math
import random

import numpy as np
import pytest

from allocator.problem import ProblemData, fractional_ranks
from allocator.snapshot import RunSnapshot


def _snap(**kw):
    base = {
        "format": "allocator-run/1",
        "workers": [{"id": "w1"}, {"id": "w2"}, {"id": "w3"}],
        "job_lines": [
            {"id": "a", "max_n_workers": 1},
            {"id": "b", "max_n_workers": 1},
            {"id": "c", "max_n_workers": 1},
            {"id": "d", "max_n_workers": 1},
        ],
    }
    base.update(kw)
    return RunSnapshot.parse(base)


@pytest.mark.parametrize(
    "given",
    [
        [1, 1, 3],  # competition
        [1, 1, 2],  # dense
        [1.5, 1.5, 3],  # fractional
        [7, 7, 9.5],  # any increasing numbers with the same order
    ],
)
def test_every_notation_becomes_fractional(given):
    prefs = [
        {"worker_id": "w1", "job_line_id": line, "rank": r}
        for line, r in zip("abc", given, strict=True)
    ]
    p = ProblemData.from_snapshot(_snap(worker_preferences=prefs))
    assert p.worker_rank[0, :3].tolist() == [1.5, 1.5, 3.0]
    # one line left unranked: positions 4..4 -> (3 + 1 + 4) / 2 = 4
    assert p.worker_rank[0, 3] == 4.0
    assert p.worker_ranked[0].tolist() == [True, True, True, False]


def test_unranked_items_share_the_positions_left():
    p = ProblemData.from_snapshot(
        _snap(worker_preferences=[{"worker_id": "w2", "job_line_id": "c", "rank": 1}])
    )
    # w2 ranked 1 of 4: the other three share positions 2..4 -> 3
    assert p.worker_rank[1].tolist() == [3.0, 3.0, 1.0, 3.0]
    # the pool 1+2+3+4 = 10 is preserved
    assert p.worker_rank[1].sum() == 10
    # w1 ranked nothing: everyone at (0 + 1 + 4) / 2
    assert p.worker_rank[0].tolist() == [2.5] * 4


def test_fractional_ranks_groups_are_independent():
    ranks, counts = fractional_ranks(np.array([1, 0, 1, 0, 1]), np.array([5, 2, 5, 2, 1]))
    assert ranks.tolist() == [2.5, 1.5, 2.5, 1.5, 1.0]
    assert counts.tolist() == [2, 3]


def _reference_cost(snap: RunSnapshot, wid: str, lid: str) -> float:
    """Plain transcription of allocation-model.md for one pair."""
    s = snap.settings
    k, a = s.preference_power, s.preferencer_weight
    n, m = len(snap.job_lines), len(snap.workers)

    def frac(items: dict, item, pool: int) -> float:
        if item not in items:
            return (len(items) + 1 + pool) / 2
        ordered = sorted(items.values())
        v = items[item]
        first = ordered.index(v) + 1
        last = len(ordered) - ordered[::-1].index(v)
        return (first + last) / 2

    mine = {r.job_line_id: r.rank for r in snap.worker_preferences if r.worker_id == wid}
    dw = frac(mine, lid, n) ** k
    line = next(j for j in snap.job_lines if j.id == lid)
    qs = sorted(set(line.preferencer_ids))
    if qs:
        vals = []
        for q in qs:
            theirs = {r.worker_id: r.rank for r in snap.preferencer_preferences if r.preferencer_id == q}
            vals.append(frac(theirs, wid, m) ** k)
        base = sum(vals) / len(vals)
    else:
        base = ((m + 1) / 2) ** k
    wt = sum(
        w.value
        for w in snap.weightings
        if w.worker_id == wid and (w.job_line_id is None or w.job_line_id == lid)
    )
    return (1 - a) * dw + a * (base + wt)


@pytest.mark.parametrize("seed", range(30))
def test_costs_match_the_spec_pair_by_pair(seed):
    rng = random.Random(seed)
    m, n = rng.randint(1, 7), rng.randint(1, 5)
    workers = [{"id": f"w{i}"} for i in range(m)]
    lines = [
        {"id": f"j{k}", "max_n_workers": rng.randint(0, 3),
         "preferencer_ids": rng.sample(["p1", "p2", "p3"], rng.randint(0, 2))}
        for k in range(n)
    ]
    wp = []
    for w in workers:
        for line in rng.sample(lines, rng.randint(0, n)):
            wp.append({"worker_id": w["id"], "job_line_id": line["id"], "rank": rng.choice([1, 1, 2, 2.5, 4])})
    pp = []
    for q in ["p1", "p2", "p3", "p-unused"]:
        for w in rng.sample(workers, rng.randint(0, m)):
            pp.append({"preferencer_id": q, "worker_id": w["id"], "rank": rng.randint(1, 3)})
    wt = [
        {"worker_id": rng.choice(workers)["id"],
         "job_line_id": rng.choice([None, rng.choice(lines)["id"]]),
         "value": rng.uniform(-3, 3)}
        for _ in range(rng.randint(0, 4))
    ]
    settings = {"preferencer_weight": rng.choice([0, 0.3, 1]), "preference_power": rng.choice([0.5, 1, 2])}
    snap = RunSnapshot.parse({
        "format": "allocator-run/1", "settings": settings, "workers": workers, "job_lines": lines,
        "worker_preferences": wp, "preferencer_preferences": pp, "weightings": wt,
    })
    p = ProblemData.from_snapshot(snap)
    for i, wid in enumerate(p.worker_ids):
        for k, lid in enumerate(p.line_ids):
            assert math.isclose(p.cost[i, k], _reference_cost(snap, wid, lid), rel_tol=1e-12, abs_tol=1e-12)


def test_order_of_input_lists_does_not_matter():
    a = _snap(worker_preferences=[
        {"worker_id": "w3", "job_line_id": "a", "rank": 1},
        {"worker_id": "w1", "job_line_id": "b", "rank": 2},
    ])
    b = RunSnapshot.parse({
        **a.model_dump(),
        "workers": list(reversed(a.model_dump()["workers"])),
        "worker_preferences": list(reversed(a.model_dump()["worker_preferences"])),
    })
    pa, pb = ProblemData.from_snapshot(a), ProblemData.from_snapshot(b)
    assert pa.worker_ids == pb.worker_ids
    assert np.array_equal(pa.cost, pb.cost)
    assert a.fingerprint() == b.fingerprint()


def test_pins_and_forbids_shape_allowed_pairs():
    p = ProblemData.from_snapshot(_snap(
        pins=[{"worker_id": "w1", "job_line_id": "b"}],
        forbids=[{"worker_id": "w2", "job_line_id": "a"}],
    ))
    assert p.allowed[0].tolist() == [False, True, False, False]
    assert p.allowed[1].tolist() == [False, True, True, True]
    assert p.eligible[1, 0]  # forbidding does not change the eligibility verdict
