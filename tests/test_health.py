"""Data health: found before solving, each finding naming who and what to do."""

from __future__ import annotations

from allocator.demo import demo_snapshot
from allocator.diagnosis import precheck
from allocator.engine import solve
from allocator.findings import Finding
from allocator.health import check
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
from tests.helpers.named_runs import L, W, prefs, snap


def sick_run():
    """Built to have one of every finding.

    - w4 may take no line: j1 and j2 exclude them by name, and they lack j3's tag;
    - j3 must be filled, but requires the tag 'rural' that nobody has;
    - j2 has 4 places but only w1, w2, w3 may take it;
    - supervisor 'silent' is named on j1 but ranks nobody; 'talker' ranks w1;
    - w3 ranked nothing; w1 ranked all three lines.
    """
    return snap(
        W("w1", "w2", "w3", "w4"),
        L(("j1", 2, False, ["silent", "talker"]), ("j2", 4), ("j3", 1, True)),
        worker_preferences=prefs(w1={"j1": 1, "j2": 2, "j3": 3}, w2={"j2": 1}, w4={"j1": 1}),
        preferencer_preferences=[{"preferencer_id": "talker", "worker_id": "w1", "rank": 1}],
        eligibility=[
            {"job_line_id": "j1", "excluded_worker_ids": ["w4"]},
            {"job_line_id": "j2", "excluded_worker_ids": ["w4"]},
            {"job_line_id": "j3", "included_qualification_ids": ["rural"]},
        ],
    )


def test_every_finding_of_a_sick_run():
    h = check(sick_run())
    assert (h.n_workers, h.n_job_lines, h.places) == (4, 3, 7)
    assert h.workers_without_line == ["w4"]
    assert h.mandatory_unfillable == ["j3"]
    assert h.lines_short == ["j2", "j3"]
    assert h.silent_supervisors == ["silent"]
    pools = {x.job_line_id: x.pool for x in h.lines}
    assert pools == {"j1": 3, "j2": 3, "j3": 0}
    depth = {d.worker_id: (d.ranked, d.eligible, d.ranked_eligible) for d in h.depth}
    assert depth == {"w1": (3, 2, 2), "w2": (1, 2, 1), "w3": (0, 2, 0), "w4": (1, 0, 0)}
    assert h.depth_histogram() == {0: 1, 1: 2, 3: 1}
    assert not h.ok
    text = " ".join(f.message for f in h.findings)
    assert "'w4'" in text and "'j3' must be filled, but no worker (doctor) can take it" in text
    assert "'silent'" in text and "'w3'" in text


def test_the_problems_found_are_the_ones_the_engine_reports():
    """A run health calls impossible is infeasible for the engine too."""
    res = solve(sick_run()).to_dict()
    assert res["status"] == "infeasible"
    flagged = {w for d in res["diagnosis"] for w in d["worker_ids"]} | {j for d in res["diagnosis"] for j in d["job_line_ids"]}
    assert "w4" in flagged or "j3" in flagged


def test_pins_and_forbids_shrink_the_pools():
    s = snap(
        W("w1", "w2"), L(("j1", 2), ("j2", 1)),
        pins=[{"worker_id": "w1", "job_line_id": "j2"}],
        forbids=[{"worker_id": "w2", "job_line_id": "j1"}],
    )
    h = check(s)
    pools = {x.job_line_id: x.pool for x in h.lines}
    assert pools == {"j1": 0, "j2": 2}
    assert h.workers_without_line == []
    assert h.lines_short == ["j1"]
    assert h.ok  # j1 need not be filled: vacancies are a warning, not a problem


def test_too_few_places_in_all_is_a_problem():
    h = check(snap(W("w1", "w2", "w3"), L(("j1", 1), ("j2", 1))))
    assert not h.ok
    assert any("3 workers (doctors) but its job lines have only 2 places" in f.message for f in h.findings)


def test_the_demo_run_is_healthy():
    h = check(RunSnapshot.parse(demo_snapshot()))
    assert h.ok
    assert h.workers_without_line == [] and h.mandatory_unfillable == []
    assert sum(h.depth_histogram().values()) == h.n_workers


def named_run():
    """Workers with names, built for the findings about rank lists and candidates.

    - Ana ranks j2 first, j1 second and j3 third; j2 excludes her by name, j3 is forbidden
      for her: two of her three ranked lines are out of reach, her first choice among them;
    - Ben ranks j1, j3, j2 and lacks the tag j3 needs: one blocked line, not his first;
    - Cleo ranks only j1 (a short list); Dev ranks j1 and j2 (short too);
    - j3 requires 'rural' (Cleo and Dev have it): 2 candidates for 1 place: few candidates.
    """
    workers = [
        {"id": "a", "name": "Ana Li"},
        {"id": "b", "name": "Ben Okafor"},
        {"id": "c", "name": "Cleo Diaz", "qualification_ids": ["rural"]},
        {"id": "d", "name": "Dev Shah", "qualification_ids": ["rural"]},
    ]
    return snap(
        workers,
        [{"id": "j1", "name": "Cardiology", "max_n_workers": 4}, {"id": "j2", "name": "Renal", "max_n_workers": 4},
         {"id": "j3", "name": "Rural GP", "max_n_workers": 1}],
        worker_preferences=prefs(a={"j2": 1, "j1": 2, "j3": 3}, b={"j1": 1, "j3": 2, "j2": 3}, c={"j1": 1}, d={"j1": 1, "j2": 2}),
        eligibility=[
            {"job_line_id": "j2", "excluded_worker_ids": ["a"]},
            {"job_line_id": "j3", "included_qualification_ids": ["rural"]},
        ],
        forbids=[{"worker_id": "a", "job_line_id": "j3"}],
    )


def test_ranked_lines_a_worker_may_not_take_are_counted_with_first_choices():
    h = check(named_run())
    blocked = {d.worker_id: (d.ranked_blocked, d.first_choice_blocked) for d in h.depth}
    assert blocked == {"a": (2, True), "b": (1, False), "c": (0, False), "d": (0, False)}
    assert (h.ranking_blocked, h.first_choice_blocked) == (["a", "b"], ["a"])
    (f,) = [f for f in h.findings if "may not take" in f.message]
    assert f.severity == "warning" and f.worker_ids == ("a", "b")
    assert "3 ranked lines in all; for 1 of them it is their first choice" in f.message
    assert "Ana Li ('a'): 2 of 3 ranked, incl. their first choice; Ben Okafor ('b'): 1 of 3 ranked" in f.message


def test_short_rank_lists_and_lines_with_few_candidates_are_named():
    h = check(named_run())
    assert h.short_rank_lists == ["c", "d"]
    (short,) = [f for f in h.findings if "fewer than 3 job lines" in f.message]
    assert "Cleo Diaz ('c'): 1; Dev Shah ('d'): 2" in short.message
    assert h.lines_few_candidates == ["j3"]
    (few,) = [f for f in h.findings if "or fewer workers who may take them" in f.message]
    assert "Rural GP ('j3'): 2 for 1 place" in few.message
    # A line with plenty of candidates is not reported; nor one already short of places.
    assert not next(x for x in h.lines if x.job_line_id == "j1").few_candidates


def test_a_worker_without_a_name_is_named_by_id():
    h = check(sick_run())
    (f,) = [f for f in h.findings if "has no job line they can take" in f.message]
    assert "'w4'" in f.message and "None" not in f.message


def test_what_cannot_be_solved_is_the_diagnosis_prechecks_word_for_word():
    s = sick_run()
    h = check(s)
    expected = precheck(ProblemData.from_snapshot(s))
    assert expected and [f for f in h.findings if f.severity == "problem"] == expected
    assert {f.code for f in expected} == {"WORKER_NO_LINE", "MANDATORY_LINE_NO_WORKER"}
    assert all(isinstance(f, Finding) and f.code and f.severity in ("problem", "warning") for f in h.findings)
    warnings = {f.code: f for f in h.findings if f.severity == "warning"}
    assert list(warnings) == ["LINES_SHORT_OF_CANDIDATES", "WORKERS_RANKED_NOTHING", "RANKED_LINES_OUT_OF_REACH",
                              "SHORT_RANK_LISTS", "LINES_FEW_CANDIDATES", "SUPERVISORS_RANKED_NOBODY"]
    assert warnings["LINES_SHORT_OF_CANDIDATES"].job_line_ids == ("j2",)  # j3 is a problem, not also a warning
    assert warnings["WORKERS_RANKED_NOTHING"].worker_ids == ("w3",)


def test_a_line_without_places_counts_as_the_engine_counts_it():
    """A must-be-filled line with no places cannot be filled, whoever may take it; a worker whose
    only lines have no places has no line. Health once looked only at who may take a line."""
    s = snap(
        W("w1", "w2"), L(("j1", 2), ("j2", 0, True), ("j3", 0)),
        eligibility=[{"job_line_id": "j1", "excluded_worker_ids": ["w2"]}],
    )
    h = check(s)
    assert not h.ok
    assert h.mandatory_unfillable == ["j2"] and h.workers_without_line == ["w2"]
    assert {x.job_line_id: x.cannot_fill for x in h.lines} == {"j1": False, "j2": True, "j3": False}
    codes = {f.code: f for f in h.findings if f.severity == "problem"}
    assert set(codes) == {"MANDATORY_LINE_NO_PLACES", "WORKER_NO_LINE"}
    assert codes["WORKER_NO_LINE"].worker_ids == ("w2",) and codes["MANDATORY_LINE_NO_PLACES"].job_line_ids == ("j2",)
    res = solve(s).to_dict()
    assert res["status"] == "infeasible"
    assert {d["code"] for d in res["diagnosis"]} == set(codes)


def test_quotas_that_cannot_mean_what_was_meant_are_named():
    """A tag no worker has (a misspelling, most likely) makes a quota count nobody; a quota
    without bounds changes nothing. Neither makes the run impossible, so only health says so."""
    run = snap(
        W("w1", "w2", "w3", tags={"w1": ["ed-ready"]}),
        L(("j1", 2), ("j2", 2)),
        quotas=[
            {"id": "ed-max", "job_line_ids": ["j1"], "qualification_id": "ed-redy", "max_workers": 1},
            {"id": "ed-ok", "job_line_ids": ["j1"], "qualification_id": "ed-ready", "max_workers": 1},
            {"id": "open", "job_line_ids": ["j2"]},
        ],
    )
    found = {f.code: f for f in check(run).findings}
    nobody = found["QUOTA_COUNTS_NOBODY"]
    assert "Quota 'ed-max'" in nobody.message and "'ed-redy', which no worker has" in nobody.message
    assert "its maximum holds whatever the allocation" in nobody.message and nobody.job_line_ids == ("j1",)
    assert "Quota 'open' has neither a minimum nor a maximum" in found["QUOTA_WITHOUT_BOUNDS"].message
    assert sum("ed-ok" in f.message for f in check(run).findings) == 0  # a tag some worker has is fine
    assert solve(run).status == "optimal"  # only a warning: the run solves
