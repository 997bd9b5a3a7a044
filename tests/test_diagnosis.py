"""Infeasibility diagnosis: one named instance per case, and a brute-force property test.

Each named instance is built so that the workers and lines at fault are obvious from its
structure; the tests assert exactly those ids.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from allocator import diagnosis as dx
from allocator.findings import Finding
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
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


def codes(diags):
    return [d.code for d in diags]


def only(diags, code):
    found = [d for d in diags if d.code == code]
    assert len(found) == 1, f"expected one {code}, got {codes(diags)}"
    return found[0]


def test_feasible_run_has_no_diagnosis():
    p = problem(W("w1", "w2"), L(("j1", 1, True), ("j2", 1, True)))
    assert dx.precheck(p) == []
    assert dx.diagnose(p) == []


def test_worker_with_no_line_says_why_per_group_of_lines():
    # w3 has the tag 'nights' and not 'paediatrics'; every line is closed to them for a
    # different reason. w1 and w2 fit on j1.
    p = problem(
        W("w1", "w2", "w3", tags={"w1": ["paediatrics"], "w2": ["paediatrics"], "w3": ["nights"]}),
        L(("j1", 2), ("j2", 2), ("j3", 2), ("j4", 2), ("j5", 0)),
        eligibility=[
            {"job_line_id": "j1", "included_qualification_ids": ["paediatrics"]},
            {"job_line_id": "j2", "excluded_worker_ids": ["w3"]},
            {"job_line_id": "j3", "excluded_qualification_ids": ["nights"]},
        ],
        forbids=[{"worker_id": "w3", "job_line_id": "j4"}],
    )
    diags = dx.diagnose(p)
    assert codes(diags) == [dx.WORKER_NO_LINE]
    d = diags[0]
    assert d.worker_ids == ("w3",)
    assert d.message.startswith("Worker (doctor) 'w3' has no job line they can take: ")
    for part in (
        "job line 'j1' requires the tag 'paediatrics', which they lack",
        "job line 'j2' excludes them by name",
        "job line 'j3' excludes their tag 'nights'",
        "job line 'j4' is forbidden for them by the planner",
        "job line 'j5' has no places",
    ):
        assert part in d.message


def test_mandatory_line_with_no_places():
    p = problem(W("w1"), L(("j1", 1), ("j2", 0, True)))
    d = only(dx.diagnose(p), dx.MANDATORY_LINE_NO_PLACES)
    assert d.job_line_ids == ("j2",)
    assert "must be filled" in d.message and "no places" in d.message


def test_mandatory_line_nobody_can_take_names_the_missing_tag():
    p = problem(
        W("w1", "w2", "w3"),
        [{"id": "j12", "name": "Line 12", "max_n_workers": 1, "must_have_workers": True}]
        + L(("j1", 3)),
        eligibility=[{"job_line_id": "j12", "included_qualification_ids": ["paediatrics"]}],
    )
    d = only(dx.diagnose(p), dx.MANDATORY_LINE_NO_WORKER)
    assert d.job_line_ids == ("j12",)
    assert d.message == (
        "Job line 'Line 12' (j12) must be filled, but no worker (doctor) can take it: "
        "every worker lacks the tag 'paediatrics'."
    )


def test_mandatory_line_nobody_can_take_counts_each_reason():
    p = problem(
        W("w1", "w2", "w3", "w4", tags={"w2": ["nights", "paediatrics"]}),
        L(("j1", 1, True), ("j2", 4)),
        eligibility=[
            {
                "job_line_id": "j1",
                "included_qualification_ids": ["paediatrics"],
                "excluded_qualification_ids": ["nights"],
                "excluded_worker_ids": ["w3"],
            }
        ],
    )
    d = only(dx.diagnose(p), dx.MANDATORY_LINE_NO_WORKER)
    # w1, w4 lack the tag; w2 has the excluded tag; w3 is excluded by name.
    assert "of the 4 workers" in d.message
    assert "2 lack the tag 'paediatrics'" in d.message
    assert "1 has the tag 'nights', which it excludes" in d.message
    assert "1 is excluded from it by name" in d.message


def test_capacity_below_workers_is_said_once():
    p = problem(W("w1", "w2", "w3", "w4", "w5"), L(("j1", 2), ("j2", 2)))
    diags = dx.diagnose(p)
    assert codes(diags) == [dx.CAPACITY_BELOW_WORKERS]
    assert "5 workers (doctors)" in diags[0].message and "only 4 places" in diags[0].message


def test_pins_that_overfill_a_line():
    p = problem(
        W("w1", "w2", "w3"),
        L(("j1", 1), ("j2", 3)),
        pins=[{"worker_id": "w1", "job_line_id": "j1"}, {"worker_id": "w3", "job_line_id": "j1"}],
    )
    diags = dx.diagnose(p)
    assert codes(diags) == [dx.PINS_OVERFILL_LINE]  # not again as a set of workers short of places
    assert diags[0].worker_ids == ("w1", "w3") and diags[0].job_line_ids == ("j1",)


def test_pins_that_take_the_only_worker_of_a_mandatory_line():
    # Only w1 has 'nights', which j2 requires; w1 is pinned to j1.
    p = problem(
        W("w1", "w2", "w3", tags={"w1": ["nights"]}),
        L(("j1", 3), ("j2", 1, True)),
        eligibility=[{"job_line_id": "j2", "included_qualification_ids": ["nights"]}],
        pins=[{"worker_id": "w1", "job_line_id": "j1"}],
    )
    d = only(dx.diagnose(p), dx.PINS_BLOCK_MANDATORY)
    assert d.worker_ids == ("w1",) and d.job_line_ids == ("j2",)
    assert "pinned" in d.message


def test_pins_that_leave_mandatory_lines_short():
    # j2 and j3 must be filled and need 'nights'; w1 and w2 have it, but w2 is pinned to j1.
    p = problem(
        W("w1", "w2", "w3", tags={"w1": ["nights"], "w2": ["nights"]}),
        L(("j1", 3), ("j2", 1, True), ("j3", 1, True)),
        eligibility=[
            {"job_line_id": "j2", "included_qualification_ids": ["nights"]},
            {"job_line_id": "j3", "included_qualification_ids": ["nights"]},
        ],
        pins=[{"worker_id": "w2", "job_line_id": "j1"}],
    )
    d = only(dx.diagnose(p), dx.PINS_BLOCK_MANDATORY)
    assert d.job_line_ids == ("j2", "j3")
    assert d.worker_ids == ("w1", "w2")
    assert "'w2'" in d.message and "pinned to other lines" in d.message


def _two_groups_short_of_places(pin_w3: bool = False):
    """w1-w3 (rural-ready) fit only j1 and j2 (one place each); w8, w9 (nights) only j4 (one place).

    w4-w7 take j3, which excludes both tags.
    """
    tags = {"w1": ["rural-ready"], "w2": ["rural-ready"], "w3": ["rural-ready"], "w8": ["nights"], "w9": ["nights"]}
    return problem(
        W("w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9", tags=tags),
        L(("j1", 1), ("j2", 1), ("j3", 10), ("j4", 1)),
        eligibility=[
            {"job_line_id": "j1", "included_qualification_ids": ["rural-ready"]},
            {"job_line_id": "j2", "included_qualification_ids": ["rural-ready"]},
            {"job_line_id": "j3", "excluded_qualification_ids": ["nights", "rural-ready"]},
            {"job_line_id": "j4", "included_qualification_ids": ["nights"]},
        ],
        pins=[{"worker_id": "w3", "job_line_id": "j1"}] if pin_w3 else [],
    )


def test_min_cut_names_each_group_of_workers_short_of_places():
    diags = dx.diagnose(_two_groups_short_of_places())
    assert codes(diags) == [dx.WORKERS_EXCEED_PLACES, dx.WORKERS_EXCEED_PLACES]
    first, second = diags
    assert (first.worker_ids, first.job_line_ids) == (("w1", "w2", "w3"), ("j1", "j2"))
    assert (second.worker_ids, second.job_line_ids) == (("w8", "w9"), ("j4",))
    assert "These 3 workers (doctors) can only take job lines 'j1' and 'j2', which have 2 places" in first.message
    assert "1 too few" in first.message


def test_everyone_short_of_places_names_the_lines_out_of_reach():
    # 4 places in total for 3 workers, but j3's 4 places need a tag nobody has.
    p = problem(
        W("w1", "w2", "w3"),
        L(("j1", 1), ("j2", 1), ("j3", 4)),
        eligibility=[{"job_line_id": "j3", "included_qualification_ids": ["x"]}],
    )
    (d,) = dx.diagnose(p)
    assert d.code == dx.WORKERS_EXCEED_PLACES
    assert d.worker_ids == ("w1", "w2", "w3") and d.job_line_ids == ("j1", "j2")
    assert "All 3 workers (doctors) together can only use 2 places, 1 too few" in d.message
    assert "the 4 places on job line 'j3' are out of everyone's reach" in d.message


def test_workers_short_of_places_mentions_pins():
    diags = dx.diagnose(_two_groups_short_of_places(pin_w3=True))
    first = diags[0]
    assert first.code == dx.WORKERS_EXCEED_PLACES and first.worker_ids == ("w1", "w2", "w3")
    assert "'w3' is pinned there" in first.message


def test_mandatory_lines_share_too_few_workers():
    # j1-j3 must be filled and need 'nights', which only w1 and w2 have; j4 takes anyone.
    p = problem(
        W("w1", "w2", "w3", "w4", tags={"w1": ["nights"], "w2": ["nights"]}),
        L(("j1", 1, True), ("j2", 1, True), ("j3", 1, True), ("j4", 10)),
        eligibility=[
            {"job_line_id": j, "included_qualification_ids": ["nights"]} for j in ("j1", "j2", "j3")
        ],
    )
    diags = dx.diagnose(p)
    assert codes(diags) == [dx.MANDATORY_LINES_SHORT_OF_WORKERS]
    d = diags[0]
    assert d.job_line_ids == ("j1", "j2", "j3") and d.worker_ids == ("w1", "w2")
    assert "only 2 workers (doctors) can take any of them" in d.message
    assert dx.precheck(p) == []  # only the flow sees it


def test_stability_conflict_words_the_blocking_pairs():
    # a can take only x; b can take x or y and prefers x; x's supervisor prefers b to a.
    # The only allocation (a->x, b->y) is blocked by (b, x).
    p = problem(
        W("a", "b"),
        L(("x", 1, False, ["sup"]), ("y", 1)),
        eligibility=[{"job_line_id": "y", "excluded_worker_ids": ["a"]}],
        worker_preferences=prefs(b={"x": 1, "y": 2}),
        preferencer_preferences=pprefs(sup={"b": 1, "a": 2}),
        settings={"stability": True},
    )
    assert dx.diagnose(p) == []  # feasible without stability
    d = dx.stability_conflict(p, assignment(p, {"a": "x", "b": "y"}))
    assert d.code == dx.STABILITY_CONFLICT
    assert d.worker_ids == ("b",) and d.job_line_ids == ("x",)
    assert "'b' would rather have 'x' than 'y', which would rather have them than 'a'" in d.message
    d2 = dx.stability_conflict(p, None, stable_without_mandatory=False)
    assert "Letting the lines that must be filled stay empty alone does not help" in d2.message


def test_entry_has_the_spec_keys():
    p = problem(W("w1", "w2"), L(("j1", 1)))
    (d,) = dx.diagnose(p)
    assert d.severity == "problem"
    assert list(dx.entry(d)) == ["code", "message", "worker_ids", "job_line_ids"]
    assert dx.from_entry(dx.entry(d)) == d


# -- property: the diagnosis is empty exactly when an allocation exists -----------------------

def _check_entry_is_true(p: ProblemData, d: Finding) -> None:
    """Each entry states a fact that the data confirms, independently of how it was found."""
    wi = [p.worker_index[w] for w in d.worker_ids]
    li = [p.line_index[j] for j in d.job_line_ids]
    usable = p.allowed & (p.capacity > 0)[None, :]
    if d.code == dx.WORKERS_EXCEED_PLACES:
        reach = np.flatnonzero(usable[wi].any(axis=0))
        assert reach.tolist() == sorted(li)
        assert p.capacity[reach].sum() < len(wi)
    elif d.code in (dx.MANDATORY_LINES_SHORT_OF_WORKERS, dx.PINS_BLOCK_MANDATORY) and len(li) > 1:
        assert p.mandatory[li].all()
        assert p.allowed[:, li].any(axis=1).sum() < len(li)
    elif d.code in (dx.MANDATORY_LINE_NO_WORKER, dx.PINS_BLOCK_MANDATORY):
        assert p.mandatory[li].all() and not p.allowed[:, li].any()
    elif d.code == dx.MANDATORY_LINE_NO_PLACES:
        assert p.mandatory[li].all() and (p.capacity[li] == 0).all()
    elif d.code == dx.WORKER_NO_LINE:
        assert not usable[wi].any()
    elif d.code == dx.PINS_OVERFILL_LINE:
        assert (p.pin[wi] == li[0]).all() and len(wi) > p.capacity[li[0]]
    elif d.code == dx.CAPACITY_BELOW_WORKERS:
        assert p.capacity.sum() < p.n_workers
    else:  # pragma: no cover
        raise AssertionError(f"unexpected code {d.code}")


@given(tiny_runs())
@settings(max_examples=300, deadline=None)
def test_diagnosis_is_empty_exactly_when_brute_force_finds_an_allocation(p):
    diags = dx.diagnose(p)
    feasible = next(valid_assignments(p), None) is not None
    assert (diags == []) == feasible, [d.message for d in diags]
    for d in diags:
        _check_entry_is_true(p, d)
    pre = dx.precheck(p)
    assert all(d in diags for d in pre)


def test_shared_strategy_agrees_with_brute_force():
    """The same property on the project's shared strategy (tests/helpers/strategies.py)."""
    strategies = pytest.importorskip("tests.helpers.strategies")

    @given(strategies.snapshots(max_workers=5, max_lines=4))
    @settings(max_examples=150, deadline=None)
    def check(data):
        p = ProblemData.from_snapshot(RunSnapshot.parse(data))
        diags = dx.diagnose(p)
        feasible = next(valid_assignments(p), None) is not None
        assert (diags == []) == feasible, [d.message for d in diags]
        for d in diags:
            _check_entry_is_true(p, d)

    check()
