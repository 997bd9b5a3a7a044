"""Diagnosis of runs with business rules (business-rules.md, "Infeasible runs").

Each named run is built so that the link, quota or site at fault, and the workers and lines
involved, are obvious from its structure; the tests assert exactly those. The property tests
check every check against brute force on tiny runs: a check that calls a run infeasible is
never wrong, and the engine's status agrees with the enumeration.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from allocator import diagnosis as dx
from allocator import health
from allocator.cli import EXIT_INFEASIBLE, app
from allocator.engine import EngineError, rule_breaches, solve
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot, SnapshotError
from tests.helpers.bruteforce import enumerate_allocations
from tests.helpers.named_runs import L, W, snap


def S(*lines: tuple) -> list[dict[str, Any]]:
    """Job lines from ``(id, places, site[, must be filled])``."""
    out = []
    for t in lines:
        d: dict[str, Any] = {"id": t[0], "max_n_workers": t[1]}
        if t[2] is not None:
            d["site"] = t[2]
        if len(t) > 3:
            d["must_have_workers"] = t[3]
        out.append(d)
    return out


def excl(line: str, *workers: str) -> dict[str, Any]:
    return {"job_line_id": line, "excluded_worker_ids": list(workers)}


def only(findings, code):
    found = [f for f in findings if f.code == code]
    assert len(found) == 1, f"expected one {code}, got {[f.code for f in findings]}"
    return found[0]


def problem(*args, **kwargs) -> ProblemData:
    return ProblemData.from_snapshot(snap(*args, **kwargs))


def no_allocation(p: ProblemData) -> bool:
    """Brute force: no allocation keeps the seed's rules, the links and the quotas."""
    en = enumerate_allocations(p, check_stability=False)
    return not any(not rule_breaches(p, a) for a in en.allocations)


# -- links ----------------------------------------------------------------------------------


def test_link_with_no_common_site_names_the_link_its_workers_and_their_sites():
    # w1 can only take Orange's line, w2 only Dubbo's; w3 is free and unlinked.
    p = problem(W("w1", "w2", "w3"), S(("j1", 2, "Orange"), ("j2", 2, "Dubbo"), ("j3", 2, "Dubbo")),
                eligibility=[excl("j1", "w2"), excl("j2", "w1"), excl("j3", "w1")],
                linked_workers=[{"id": "couple-7", "worker_ids": ["w1", "w2"]}])
    f = only(dx.precheck(p), dx.LINK_NO_SITE)
    assert f.message.startswith("Link 'couple-7': no site has an eligible place for both 'w1' and 'w2'")
    assert "'w1' can only take lines at site 'Orange'" in f.message
    assert "'w2' can only take lines at site 'Dubbo'" in f.message
    assert f.worker_ids == ("w1", "w2") and f.job_line_ids == ("j1", "j2", "j3")
    assert no_allocation(p)


def test_a_pin_takes_a_link_to_a_site_the_other_member_cannot_reach():
    p = problem(W("w1", "w2"), S(("j1", 2, "Orange"), ("j2", 2, "Dubbo")),
                eligibility=[excl("j1", "w2")], pins=[{"worker_id": "w1", "job_line_id": "j1"}],
                linked_workers=[{"id": "pair", "worker_ids": ["w1", "w2"]}])
    f = only(dx.diagnose(p), dx.LINK_NO_SITE)
    assert "'w1' can only take lines at site 'Orange'; 'w2' can only take lines at site 'Dubbo'" in f.message
    assert no_allocation(p)


def test_link_whose_shared_sites_have_no_room_for_all_members():
    # Both may go to A or B, but each has one place; C has room but w1 may not go there.
    p = problem(W("w1", "w2", "w3"), S(("j1", 1, "A"), ("j2", 1, "B"), ("j3", 2, "C")),
                eligibility=[excl("j3", "w1")], linked_workers=[{"id": "couple-7", "worker_ids": ["w1", "w2"]}])
    f = only(dx.precheck(p), dx.LINK_NO_ROOM)
    assert f.message.startswith("Link 'couple-7': no site has room for both 'w1' and 'w2' together")
    assert "at site 'A' ('j1') only 1 of them can be placed at once" in f.message
    assert "at site 'B' ('j2') only 1 of them" in f.message
    assert f.worker_ids == ("w1", "w2") and f.job_line_ids == ("j1", "j2")
    assert no_allocation(p)


def test_places_taken_by_pinned_workers_outside_the_link_do_not_count():
    # A has 2 places but w3 is pinned to one of them.
    p = problem(W("w1", "w2", "w3"), S(("j1", 2, "A"), ("j2", 1, "B")),
                pins=[{"worker_id": "w3", "job_line_id": "j1"}],
                linked_workers=[{"id": "duo", "worker_ids": ["w1", "w2"]}])
    f = only(dx.precheck(p), dx.LINK_NO_ROOM)
    assert f.worker_ids == ("w1", "w2")
    assert no_allocation(p)


def test_site_that_must_hold_two_links_that_fit_nowhere_else():
    # Each couple fits at A alone (3 places), but only A can hold either: 4 workers for 3 places.
    p = problem(W("a1", "a2", "b1", "b2"), S(("j1", 3, "A"), ("j2", 1, "B"), ("j3", 1, "C")),
                linked_workers=[{"id": "c1", "worker_ids": ["a1", "a2"]}, {"id": "c2", "worker_ids": ["b1", "b2"]}])
    found = dx.precheck(p)
    f = only(found, dx.SITE_TOO_SMALL)
    assert f.message.startswith("Site 'A' is the only site that can hold links 'c1' ('a1' and 'a2') and 'c2'")
    assert "4 workers (doctors) in all, but at most 3 can be placed on its lines" in f.message
    assert f.worker_ids == ("a1", "a2", "b1", "b2") and f.job_line_ids == ("j1",)
    assert [x.code for x in found] == [dx.SITE_TOO_SMALL]
    assert no_allocation(p)


# -- quotas ---------------------------------------------------------------------------------


def rural(m: int, *, excluded: int = 0, places: int = 5, **quota: Any) -> ProblemData:
    """m workers; Orange's 3 lines and Sydney's 3 lines of ``places`` each; the first
    ``excluded`` workers may not work at Orange."""
    ws = [f"w{i:02d}" for i in range(m)]
    lines = S(*[(f"j{i}", places, "Orange" if i < 3 else "Sydney") for i in range(6)])
    out = ws[:excluded]
    elig = [excl(f"j{i}", *out) for i in range(3)] if out else []
    return problem(W(*ws), lines, eligibility=elig, quotas=[{"id": "rural-min", "sites": ["Orange"], **quota}])


def test_quota_minimum_above_its_places_is_caught_before_solving_with_the_numbers():
    p = rural(20, places=3, min_workers=12)
    f = only(dx.precheck(p), dx.QUOTA_MIN_ABOVE_PLACES)
    assert f.message.startswith("Quota 'rural-min' needs 12 workers but its job lines ('j0', 'j1' and 'j2') "
                                "have only 9 places in all")
    assert f.job_line_ids == ("j0", "j1", "j2")


def test_quota_minimum_above_the_workers_who_can_reach_its_lines():
    p = rural(15, excluded=6, min_workers=12)
    f = only(dx.precheck(p), dx.QUOTA_MIN_UNREACHABLE)
    assert f.message.startswith("Quota 'rural-min' needs 12 workers on its lines, but only 9 eligible workers "
                                "can reach its lines")
    assert f.worker_ids == tuple(f"w{i:02d}" for i in range(6, 15))
    assert f.job_line_ids == ("j0", "j1", "j2")


def test_quota_counting_a_qualification_counts_only_those_who_have_it():
    p = problem(W("w1", "w2", "w3", tags={"w1": ["ed-ready"]}), L(("j1", 3), ("j2", 3)),
                quotas=[{"id": "ed-ready", "job_line_ids": ["j1"], "qualification_id": "ed-ready", "min_workers": 2}])
    f = only(dx.precheck(p), dx.QUOTA_MIN_UNREACHABLE)
    assert "needs 2 workers with the tag 'ed-ready' on its lines, but only 1 eligible worker with " \
           "the tag 'ed-ready' can reach its lines: 'w1'" in f.message
    assert f.worker_ids == ("w1",)
    assert no_allocation(p)


def test_quota_minimum_above_what_its_lines_take_at_once():
    # Three workers reach the quota's lines, but all only j1 with one place (j2 excludes them).
    p = problem(W("w1", "w2", "w3", "w4"), L(("j1", 1), ("j2", 5), ("j3", 5)),
                eligibility=[excl("j2", "w1", "w2", "w3", "w4")],
                quotas=[{"id": "q", "job_line_ids": ["j1", "j2"], "min_workers": 2}])
    f = only(dx.precheck(p), dx.QUOTA_MIN_UNREACHABLE)
    assert "of the 4 eligible workers who can reach its lines ('j1' and 'j2'), at most 1 can be placed there" in f.message
    assert no_allocation(p)


def test_quota_maximum_below_the_workers_pinned_to_its_lines():
    p = problem(W("w1", "w2", "w3"), S(("j1", 2, "A"), ("j2", 2, "A"), ("j3", 2, "B")),
                pins=[{"worker_id": "w1", "job_line_id": "j1"}, {"worker_id": "w2", "job_line_id": "j2"}],
                quotas=[{"id": "a-cap", "sites": ["A"], "max_workers": 1}])
    f = only(dx.precheck(p), dx.QUOTA_MAX_BELOW_FORCED)
    assert f.message.startswith("Quota 'a-cap' allows at most 1 worker on its lines, but 2 workers it counts can "
                                "take no other line: 'w1' and 'w2' ('w1' and 'w2' are pinned)")
    assert f.worker_ids == ("w1", "w2") and f.job_line_ids == ("j1", "j2")
    assert no_allocation(p)


def test_quota_maximum_below_its_lines_that_must_be_filled():
    p = problem(W("w1", "w2", "w3"), S(("j1", 1, "A", True), ("j2", 1, "A", True), ("j3", 3, "B")),
                quotas=[{"id": "a-cap", "sites": ["A"], "max_workers": 1}])
    f = only(dx.precheck(p), dx.QUOTA_MAX_BELOW_FORCED)
    assert "its 2 job lines 'j1' and 'j2' must be filled and only workers it counts can take them" in f.message
    assert f.job_line_ids == ("j1", "j2")
    assert no_allocation(p)


def test_minimums_of_quotas_on_separate_lines_above_the_workers():
    p = problem(W(*[f"w{i}" for i in range(6)]), S(*[(f"j{i}", 5, "Orange" if i < 3 else "Sydney") for i in range(6)]),
                quotas=[{"id": "orange-min", "sites": ["Orange"], "min_workers": 4},
                        {"id": "sydney-min", "sites": ["Sydney"], "min_workers": 3}])
    found = dx.precheck(p)
    f = only(found, dx.QUOTAS_ABOVE_WORKERS)
    assert f.message.startswith("Quotas 'orange-min' and 'sydney-min' together need 7 workers (4 + 3) on job "
                                "lines that share none, but only 6 eligible workers they count can reach their lines")
    assert len(found) == 1
    assert no_allocation(p)


def test_maximums_of_quotas_below_the_workers_who_can_go_nowhere_else():
    p = problem(W(*[f"w{i}" for i in range(6)]), S(*[(f"j{i}", 5, "Orange" if i < 3 else "Sydney") for i in range(6)]),
                quotas=[{"id": "orange-max", "sites": ["Orange"], "max_workers": 2},
                        {"id": "sydney-max", "sites": ["Sydney"], "max_workers": 3}])
    f = only(dx.precheck(p), dx.QUOTAS_BELOW_FORCED)
    assert f.message.startswith("Quotas 'orange-max' and 'sydney-max' together allow at most 5 workers (2 + 3), but "
                                "6 workers they count can take no line outside them")
    assert no_allocation(p)


def mandatory_squeeze() -> dict[str, Any]:
    """Quota q wants 2 on j1/j2, but w1 and w2 must fill j3 and j4 (w3 cannot): only w3 is left."""
    return dict(
        workers=W("w1", "w2", "w3"),
        job_lines=L(("j1", 1), ("j2", 1), ("j3", 1, True), ("j4", 1, True)),
        eligibility=[excl("j3", "w3"), excl("j4", "w3")],
        quotas=[{"id": "q", "job_line_ids": ["j1", "j2"], "min_workers": 2}],
    )


def test_quota_out_of_range_only_a_min_cost_flow_sees():
    p = problem(**mandatory_squeeze())
    assert dx.precheck(p) == []
    f = only(dx.diagnose(p), dx.QUOTA_OUT_OF_RANGE)
    assert f.message.startswith("Quota 'q' needs 2 workers on its lines, but while every worker (doctor) gets a "
                                "job line and every line that must be filled is filled, at most 1 of the workers it "
                                "counts can be there")
    assert f.job_line_ids == ("j1", "j2")
    assert no_allocation(p)
    res = solve(snap(**mandatory_squeeze()))
    assert res.status == "infeasible"
    assert [d.code for d in res.diagnosis] == [dx.QUOTA_OUT_OF_RANGE]


# -- collisions: what no single check explains ----------------------------------------------


def overlapping_quotas(**extra: Any) -> dict[str, Any]:
    """q1 needs both j1 and j2 filled, q2 allows nobody on j2: each holds alone, not together.
    The couple and the cap on j4 are decoys that hold with either."""
    return dict(
        workers=W("w1", "w2", "w3", "w4", "w5"),
        job_lines=S(("j1", 1, "A"), ("j2", 1, "A"), ("j3", 1, "B"), ("j4", 4, "C")),
        linked_workers=[{"id": "decoy-couple", "worker_ids": ["w4", "w5"]}],
        quotas=[{"id": "q1", "job_line_ids": ["j1", "j2"], "min_workers": 2},
                {"id": "q2", "job_line_ids": ["j2", "j3"], "max_workers": 0},
                {"id": "decoy-cap", "sites": ["C"], "max_workers": 4}],
        **extra,
    )


def test_two_quotas_that_cannot_hold_together_are_named_with_the_numbers_before_any_search():
    s = snap(**overlapping_quotas())
    p = ProblemData.from_snapshot(s)
    assert dx.precheck(p) == []  # each quota alone can be met
    assert no_allocation(p)
    f = only(dx.diagnose(p), dx.QUOTAS_CONTRADICT)
    assert f.message.startswith("These quotas cannot hold together: quota 'q1' (at least 2 workers on 'j1' and "
                                "'j2') and quota 'q2' (at most 0 workers on 'j2' and 'j3').")
    assert "'q1' need at least 2 in all, 'q2' allow at most 0 in all" in f.message
    assert "by 2;" in f.message and "by at most 1." in f.message
    assert "decoy" not in f.message
    assert f.job_line_ids == ("j1", "j2", "j3")
    res = solve(s)
    assert res.status == "infeasible"
    assert [d.code for d in res.diagnosis] == [dx.QUOTAS_CONTRADICT]
    # The claim holds: with either quota dropped the run solves.
    for keep in ("q1", "q2"):
        d = overlapping_quotas()
        d["quotas"] = [q for q in d["quotas"] if q["id"] != keep]
        assert solve(snap(**d)).status == "optimal"


def link_and_two_caps() -> dict[str, Any]:
    """The couple may go to A or B (not C), but A and B each allow one worker; c-min is a decoy."""
    return dict(
        workers=W("w1", "w2", "w3"), job_lines=S(("j1", 2, "A"), ("j2", 2, "B"), ("j3", 5, "C")),
        eligibility=[excl("j3", "w1", "w2")],
        linked_workers=[{"id": "couple-7", "worker_ids": ["w1", "w2"]}],
        quotas=[{"id": "a-max", "sites": ["A"], "max_workers": 1}, {"id": "b-max", "sites": ["B"], "max_workers": 1},
                {"id": "c-min", "sites": ["C"], "min_workers": 1}],
    )


def test_a_link_colliding_with_two_caps_names_the_link_its_workers_and_both_caps():
    s = snap(**link_and_two_caps())
    assert dx.diagnose(ProblemData.from_snapshot(s)) == []
    assert no_allocation(ProblemData.from_snapshot(s))
    res = solve(s)
    f = only(res.diagnosis, dx.RULES_COLLIDE)
    assert "link 'couple-7' ('w1' and 'w2' at one site), quota 'a-max' (at most 1 worker at site 'A') and quota " \
           "'b-max' (at most 1 worker at site 'B')" in f.message
    assert "c-min" not in f.message
    assert f.worker_ids == ("w1", "w2") and f.job_line_ids == ("j1", "j2")


def _stable_solver_holds_rules() -> bool:
    """Whether the stable solver keeps links (it does once the CP-SAT stable model knows them):
    w1 alone would take x at A, w2 y at B; together they must share a site."""
    s = snap(W("w1", "w2"), S(("x", 1, "A"), ("y", 1, "B"), ("z", 1, "B")), settings={"stability": True},
             worker_preferences=[{"worker_id": "w1", "job_line_id": "x", "rank": 1},
                                 {"worker_id": "w2", "job_line_id": "y", "rank": 1}],
             linked_workers=[{"id": "pair", "worker_ids": ["w1", "w2"]}])
    try:
        solve(s)
    except EngineError:
        return False
    return True


needs_stable_rules = pytest.mark.skipif(not _stable_solver_holds_rules(),
                                        reason="the stable solver does not hold links yet")


@needs_stable_rules
def test_stability_colliding_with_a_link_is_named():
    """The couple can only go to site A (w1 may not take z); there w1 takes x, whose supervisor
    would rather have w3, who would rather have x than z: no stable allocation keeps the link."""
    s = snap(
        W("w1", "w2", "w3"),
        [{"id": "x", "max_n_workers": 1, "site": "A", "preferencer_ids": ["sup"]},
         {"id": "y", "max_n_workers": 1, "site": "A"},
         {"id": "z", "max_n_workers": 2, "site": "B"}],
        settings={"stability": True},
        eligibility=[excl("z", "w1")],
        worker_preferences=[{"worker_id": "w3", "job_line_id": "x", "rank": 1},
                            {"worker_id": "w3", "job_line_id": "z", "rank": 2},
                            {"worker_id": "w3", "job_line_id": "y", "rank": 3}],
        preferencer_preferences=[{"preferencer_id": "sup", "worker_id": "w3", "rank": 1},
                                 {"preferencer_id": "sup", "worker_id": "w1", "rank": 2},
                                 {"preferencer_id": "sup", "worker_id": "w2", "rank": 3}],
        linked_workers=[{"id": "couple-7", "worker_ids": ["w1", "w2"]}],
    )
    res = solve(s)
    assert res.status == "infeasible"
    f = only(res.diagnosis, dx.RULES_COLLIDE)
    assert f.message.startswith("No stable allocation (free of a worker and a job line who would both rather be "
                                "together) keeps this rule: link 'couple-7'")
    assert f.message.endswith("Without it a stable allocation exists. Relax or drop it, or turn stability off.")
    assert f.worker_ids == ("w1", "w2")


def test_a_pin_that_takes_part_in_a_collision_is_named_with_it():
    # Site B cannot take the couple (w3 is pinned to one of its two places), so the couple must
    # go to A, where a-max allows one worker. Without the pin they would fit at B.
    s = snap(W("w1", "w2", "w3"), S(("j1", 2, "A"), ("j2", 2, "B"), ("j3", 3, "C")),
             eligibility=[excl("j3", "w1", "w2")], pins=[{"worker_id": "w3", "job_line_id": "j2"}],
             linked_workers=[{"id": "couple-7", "worker_ids": ["w1", "w2"]}],
             quotas=[{"id": "a-max", "sites": ["A"], "max_workers": 1}])
    p = ProblemData.from_snapshot(s)
    assert dx.diagnose(p) == [] and no_allocation(p)
    assert not no_allocation(dataclasses.replace(p, pin=np.full_like(p.pin, -1)))
    f = only(solve(s).diagnosis, dx.RULES_COLLIDE)
    assert f.message.startswith("These rules cannot all hold together: link 'couple-7' ('w1' and 'w2' at one "
                                "site) and quota 'a-max' (at most 1 worker at site 'A').")
    assert "The pin ('w3' pinned to 'j2') is part of it: without it these rules can hold together." in f.message
    assert f.message.endswith("Relax or drop one of them, or lift the pins.")
    assert f.worker_ids == ("w1", "w2", "w3") and f.job_line_ids == ("j1", "j2")


# -- health and the command line --------------------------------------------------------------


def test_health_reports_the_rules_that_cannot_hold_and_a_link_with_one_site():
    s = snap(W("w1", "w2", "w3", "w4"), S(("j1", 2, "Orange"), ("j2", 2, "Dubbo"), ("j3", 4, "Bathurst")),
             eligibility=[excl("j1", "w2"), excl("j2", "w1"), excl("j3", "w1", "w2")],
             linked_workers=[{"id": "couple-7", "worker_ids": ["w1", "w2"]},
                             {"id": "couple-8", "worker_ids": ["w3", "w4"]}],
             quotas=[{"id": "bathurst-min", "sites": ["Bathurst"], "min_workers": 3}])
    h = health.check(s)
    assert not h.ok
    by_code = {f.code: f for f in h.findings}
    assert by_code[dx.LINK_NO_SITE].worker_ids == ("w1", "w2")
    assert by_code[dx.QUOTA_MIN_UNREACHABLE].message.startswith("Quota 'bathurst-min' needs 3 workers on its lines, "
                                                                "but only 2 eligible workers")
    # couple-8 fits at Orange or Dubbo: no warning for it; couple-7 is already a problem.
    assert health.LINK_ONE_SITE not in by_code


def test_health_warns_of_a_link_only_one_site_can_hold_and_of_a_quota_out_of_range():
    h = health.check(snap(**mandatory_squeeze()))
    assert [f.code for f in h.findings if f.severity == "problem"] == [dx.QUOTA_OUT_OF_RANGE]
    h2 = health.check(snap(W("w1", "w2"), S(("j1", 2, "A"), ("j2", 1, "B")),
                           linked_workers=[{"id": "duo", "worker_ids": ["w1", "w2"]}]))
    assert h2.ok
    f = only(h2.findings, health.LINK_ONE_SITE)
    assert f.message.startswith("Link 'duo': only site 'A' can hold both 'w1' and 'w2' together")
    assert f.job_line_ids == ("j1",)


def test_cli_solve_of_an_infeasible_run_names_the_rules_that_collide(tmp_path):
    d = {"format": "allocator-run/1", "run": {"id": "rules"}, **link_and_two_caps()}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(d))
    res = CliRunner().invoke(app, ["solve", str(path)])
    assert res.exit_code == EXIT_INFEASIBLE, res.output
    assert "RULES_COLLIDE" in res.stderr
    assert "link 'couple-7'" in res.stderr and "quota 'a-max'" in res.stderr and "quota 'b-max'" in res.stderr
    (entry,) = json.loads(res.stdout)["diagnosis"]
    assert entry["code"] == dx.RULES_COLLIDE
    assert entry["worker_ids"] == ["w1", "w2"] and entry["job_line_ids"] == ["j1", "j2"]
    assert set(entry) == {"code", "message", "worker_ids", "job_line_ids"}


def test_cli_solve_names_a_quota_that_contradicts_the_places(tmp_path):
    d = {"format": "allocator-run/1", "run": {"id": "rural"}, "workers": W(*[f"w{i}" for i in range(4)]),
         "job_lines": S(("j1", 1, "Orange"), ("j2", 5, "Sydney")),
         "quotas": [{"id": "rural-min", "sites": ["Orange"], "min_workers": 2}]}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(d))
    res = CliRunner().invoke(app, ["solve", str(path)])
    assert res.exit_code == EXIT_INFEASIBLE, res.output
    assert "Quota 'rural-min' needs 2 workers but its job lines ('j1') have only 1 place in all" in res.stderr


# -- against brute force on tiny runs ---------------------------------------------------------


@st.composite
def tiny_rule_runs(draw, *, max_workers: int = 4, max_lines: int = 4, quotas: tuple[int, int] = (0, 2)) -> dict[str, Any]:
    """Tiny runs with sites, a link and ``quotas`` (min, max) quotas (and every seed rule that
    changes feasibility)."""
    m = draw(st.integers(2, max_workers))
    n = draw(st.integers(1, max_lines))
    wids = [f"w{i}" for i in range(m)]
    lids = [f"j{k}" for k in range(n)]
    sites = ["A", "B", None]
    lines = []
    for j in lids:
        # Mostly room for everyone, so that the rules (not the places) decide.
        line: dict[str, Any] = {"id": j, "max_n_workers": draw(st.sampled_from([0, 1, 2, 2, 3, 3])),
                                "must_have_workers": draw(st.sampled_from([False, False, False, True]))}
        site = draw(st.sampled_from(sites))
        if site:
            line["site"] = site
        lines.append(line)
    used_sites = sorted({x["site"] for x in lines if "site" in x})
    workers = [{"id": w, "qualification_ids": ["q"] if draw(st.booleans()) else []} for w in wids]
    elig = [excl(j, *draw(st.lists(st.sampled_from(wids), unique=True, max_size=1))) for j in lids]
    pins = []
    if draw(st.booleans()):
        pins.append({"worker_id": draw(st.sampled_from(wids)), "job_line_id": draw(st.sampled_from(lids))})
    links = []
    if draw(st.booleans()):
        members = draw(st.lists(st.sampled_from(wids), unique=True, min_size=2, max_size=min(3, m)))
        links.append({"id": "link", "worker_ids": members})
    n_quotas = draw(st.integers(*quotas))
    quotas = []
    for i in range(n_quotas):
        q: dict[str, Any] = {"id": f"q{i}"}
        if used_sites and draw(st.booleans()):
            q["sites"] = draw(st.lists(st.sampled_from(used_sites), unique=True, min_size=1))
        else:
            q["job_line_ids"] = draw(st.lists(st.sampled_from(lids), unique=True, min_size=1))
        if draw(st.booleans()):
            q["qualification_id"] = "q"
        lo = draw(st.integers(0, 3))
        q["min_workers"] = lo
        q["max_workers"] = draw(st.one_of(st.none(), st.integers(lo, 3)))
        quotas.append(q)
    d = {"format": "allocator-run/1", "workers": workers, "job_lines": lines, "eligibility": elig,
         "pins": pins, "linked_workers": links, "quotas": quotas,
         "settings": {"rng_seed": draw(st.integers(0, 100))}}
    try:
        RunSnapshot.parse(d)
    except SnapshotError:
        assume(False)
    return d


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.one_of(tiny_rule_runs(), tiny_rule_runs(quotas=(2, 3))))
def test_a_check_that_calls_a_run_infeasible_is_never_wrong(d):
    p = ProblemData.from_snapshot(RunSnapshot.parse(d))
    found = dx.diagnose(p)
    for f in found:
        event(f.code)
    if found:
        assert no_allocation(p), [f.message for f in found]
    rule_found = [f for f in dx.precheck(p) if f.code in dx.RULE_CODES]
    if rule_found:
        assert no_allocation(p), [f.message for f in rule_found]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(tiny_rule_runs(max_workers=3, max_lines=3))
def test_the_engine_explains_every_infeasible_tiny_run(d):
    s = RunSnapshot.parse(d)
    p = ProblemData.from_snapshot(s)
    res = solve(s)
    event(res.status)
    for f in res.diagnosis:
        event(f.code)
    assert (res.status == "infeasible") == no_allocation(p)
    if res.status == "infeasible":
        assert res.diagnosis and all(f.code != dx.UNEXPLAINED for f in res.diagnosis)
        for f in res.diagnosis:
            if f.code == dx.RULES_COLLIDE:
                named = [q["id"] for q in d["quotas"] if f"quota '{q['id']}'" in f.message]
                named += [x["id"] for x in d["linked_workers"] if f"link '{x['id']}'" in f.message]
                assert named
                # Dropping any one rule named makes the run solvable (the set is minimal).
                for rule in named:
                    d2 = {**d, "quotas": [q for q in d["quotas"] if q["id"] != rule],
                          "linked_workers": [x for x in d["linked_workers"] if x["id"] != rule]}
                    assert not no_allocation(ProblemData.from_snapshot(RunSnapshot.parse(d2)))


def no_stable_allocation(p: ProblemData) -> bool:
    """Brute force: no stable allocation keeps the seed's rules, the links and the quotas."""
    en = enumerate_allocations(p, check_stability=True)
    return not any(ok and not rule_breaches(p, a) for a, ok in zip(en.allocations, en.stable, strict=True))


@needs_stable_rules
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(tiny_rule_runs(max_workers=3, max_lines=3), st.data())
def test_the_engine_explains_every_infeasible_tiny_stable_run(d, data):
    d = {**d, "settings": {**d["settings"], "stability": True}}
    d["worker_preferences"] = [
        {"worker_id": w["id"], "job_line_id": j["id"], "rank": data.draw(st.integers(1, 3))}
        for w in d["workers"] for j in d["job_lines"] if data.draw(st.booleans())
    ]
    # A supervisor on some lines, with a strict order of the workers: stability then bites.
    d["job_lines"] = [{**j, "preferencer_ids": ["sup"]} if data.draw(st.booleans()) else j for j in d["job_lines"]]
    order = data.draw(st.permutations([w["id"] for w in d["workers"]]))
    d["preferencer_preferences"] = [{"preferencer_id": "sup", "worker_id": w, "rank": r + 1} for r, w in enumerate(order)]
    s = RunSnapshot.parse(d)
    p = ProblemData.from_snapshot(s)
    res = solve(s)
    event(res.status)
    for f in res.diagnosis:
        event(f.code)
    assert (res.status == "infeasible") == no_stable_allocation(p)
    if res.status == "infeasible":
        assert res.diagnosis and all(f.code != dx.UNEXPLAINED for f in res.diagnosis)
        for f in res.diagnosis:
            if f.code == dx.RULES_COLLIDE and ("any one of them" in f.message or "Without it" in f.message):
                named = [q["id"] for q in d["quotas"] if f"quota '{q['id']}'" in f.message]
                named += [x["id"] for x in d["linked_workers"] if f"link '{x['id']}'" in f.message]
                stable = f.message.startswith("No stable allocation")
                for rule in named:
                    d2 = {**d, "quotas": [q for q in d["quotas"] if q["id"] != rule],
                          "linked_workers": [x for x in d["linked_workers"] if x["id"] != rule]}
                    p2 = ProblemData.from_snapshot(RunSnapshot.parse(d2))
                    assert not (no_stable_allocation(p2) if stable else no_allocation(p2))


def test_a_clash_that_is_not_the_only_one_does_not_promise_a_solvable_run():
    # w1 is pinned at site A and linked to w0, so both are at A; the quotas q0 (at most 1 at A)
    # and q1 (at least 1 worker with tag q, i.e. w0, at A) clash, and so do q0 and the link:
    # dropping q1 alone leaves the run impossible, and the finding must not say otherwise.
    d = {
        "format": "allocator-run/1",
        "workers": [{"id": "w0", "qualification_ids": ["q"]}, {"id": "w1"}, {"id": "w2"}],
        "job_lines": [{"id": "j0", "max_n_workers": 1, "site": "A"}, {"id": "j1", "max_n_workers": 1, "site": "A"},
                      {"id": "j2", "max_n_workers": 2}],
        "pins": [{"worker_id": "w1", "job_line_id": "j0"}],
        "linked_workers": [{"id": "link", "worker_ids": ["w0", "w1"]}],
        "quotas": [{"id": "q0", "sites": ["A"], "max_workers": 1},
                   {"id": "q1", "sites": ["A"], "qualification_id": "q", "min_workers": 1}],
    }
    res = solve(RunSnapshot.parse(d))
    assert res.status == "infeasible"
    (f,) = [f for f in res.diagnosis if f.code == dx.RULES_COLLIDE]
    assert "makes the run solvable" not in f.message and "any one of them" not in f.message
    assert "other rules that clash as well" in f.message
    without_q1 = {**d, "quotas": [q for q in d["quotas"] if q["id"] != "q1"]}
    assert solve(RunSnapshot.parse(without_q1)).status == "infeasible"
