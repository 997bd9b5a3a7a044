"""Scenario overrides for the business rules: links, quotas, priority tiers, previous allocation."""

from __future__ import annotations

import pytest

from allocator.engine import solve
from allocator.scenario import ScenarioOverrides, apply
from allocator.snapshot import SnapshotError
from tests.helpers.named_runs import L, W, prefs, snap


@pytest.fixture
def run():
    """Two sites (North: n1, n2; South: s1) and a line of its own (x1); w1 and w2 are a couple."""
    lines = L(("n1", 1), ("n2", 1), ("s1", 2), ("x1", 1))
    for line, site in zip(lines, ("North", "North", "South", None), strict=True):
        if site:
            line["site"] = site
    return snap(
        W("w1", "w2", "w3", "w4", tags={"w3": ["ed"]}),
        lines,
        worker_preferences=prefs(
            w1={"n1": 1, "s1": 2, "x1": 3}, w2={"s1": 1, "n2": 2}, w3={"n1": 1, "s1": 2}, w4={"x1": 1, "n2": 2}),
        linked_workers=[{"id": "couple-1", "worker_ids": ["w1", "w2"]}],
        quotas=[{"id": "north-min", "sites": ["North"], "min_workers": 1}],
        previous_allocations=[{"worker_id": "w4", "job_line_id": "x1"}],
    )


def test_no_business_rule_override_keeps_the_run_and_the_saved_keys(run):
    assert apply(run, {}, {}) == run
    assert "linked_workers" not in ScenarioOverrides.parse({}).to_dict()
    assert ScenarioOverrides.parse({}).is_empty()


def test_links_and_quotas_replace_the_runs_wholly(run):
    ov = {
        "linked_workers": [{"id": "pair-b", "worker_ids": ["w3", "w4"]}],
        "quotas": [{"id": "ed-south", "sites": ["South"], "qualification_id": "ed", "min_workers": 1, "max_workers": 1}],
    }
    out = apply(run, {}, ov)
    assert [(k.id, k.worker_ids) for k in out.linked_workers] == [("pair-b", ["w3", "w4"])]
    assert [(q.id, q.sites, q.qualification_id, q.min_workers, q.max_workers) for q in out.quotas] == [
        ("ed-south", ["South"], "ed", 1, 1)]
    assert run.linked_workers[0].id == "couple-1"  # the run itself untouched
    # An empty list drops the run's links; null (absent) keeps them.
    assert apply(run, {}, {"linked_workers": []}).linked_workers == []
    assert apply(run, {}, {"quotas": None}).quotas == run.quotas
    # Saved as given; read back the same.
    parsed = ScenarioOverrides.parse(ov)
    assert ScenarioOverrides.parse(parsed.to_dict()) == parsed
    assert parsed.to_dict()["quotas"] == ov["quotas"]


def test_the_solve_meets_the_scenarios_link_and_quota(run):
    out = apply(run, {}, {
        "linked_workers": [{"id": "pair-b", "worker_ids": ["w3", "w4"]}],
        "quotas": [{"id": "south-max", "sites": ["South"], "max_workers": 1}],
    })
    result = solve(out).to_dict()
    got = {a["worker_id"]: a["job_line_id"] for a in result["allocations"]}
    site = {"n1": "North", "n2": "North", "s1": "South", "x1": "x1"}
    assert site[got["w3"]] == site[got["w4"]]
    assert sum(1 for j in got.values() if j == "s1") <= 1
    link = result["metrics"]["links"][0]
    assert link["id"] == "pair-b" and link["site"] == site[got["w3"]]
    assert result["metrics"]["quotas"][0]["id"] == "south-max" and result["metrics"]["quotas"][0]["met"]


def test_priorities_set_and_clear_per_worker(run):
    out = apply(run, {}, {"priorities": [{"worker_id": "w2", "priority": 1}, {"worker_id": "w3", "priority": 2}]})
    assert {w.id: w.priority for w in out.workers} == {"w1": None, "w2": 1, "w3": 2, "w4": None}
    again = apply(out, {}, {"priorities": [{"worker_id": "w2", "priority": None}]})
    assert {w.id: w.priority for w in again.workers}["w2"] is None


def test_fewest_moves_and_a_previous_allocation(run):
    out = apply(run, {"fewest_moves": True}, {"previous_allocations": [{"worker_id": "w3", "job_line_id": "s1"}]})
    assert out.settings.fewest_moves is True
    assert [(p.worker_id, p.job_line_id) for p in out.previous_allocations] == [("w3", "s1")]
    result = solve(out).to_dict()
    assert result["metrics"]["moves_count"] == 0  # w3 can stay on s1, so no one moves
    assert {a["worker_id"]: a["job_line_id"] for a in result["allocations"]}["w3"] == "s1"
    assert apply(run, {}, {"previous_allocations": []}).previous_allocations == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"linked_workers": [{"id": "c", "worker_ids": ["w1"]}]},
         "Linked workers, row 1 ('c'): a link has 2 to 4 workers, this one has 1"),
        ({"linked_workers": [{"id": "c", "worker_ids": ["w1", "w9"]}]},
         "Linked workers, row 1 ('c'): worker 'w9' is not a worker of this run"),
        ({"linked_workers": [{"id": "a", "worker_ids": ["w1", "w2"]}, {"id": "b", "worker_ids": ["w2", "w3"]}]},
         "Linked workers, row 2 ('b'): worker 'w2' is already in link 'a'"),
        ({"quotas": [{"id": "q", "sites": ["Nowhere"], "min_workers": 1}]},
         "Quotas, row 1 ('q'): site 'Nowhere' is not the site of any job line"),
        ({"quotas": [{"id": "q", "job_line_ids": ["n1"], "min_workers": 3, "max_workers": 1}]},
         "Quotas, row 1 ('q'): the minimum (3) is above the maximum (1)"),
        ({"quotas": [{"id": "q", "min_workers": 1}]},
         "Quotas, row 1 ('q'): names neither sites nor job lines; say which"),
        ({"quotas": [{"id": "q", "job_line_ids": [], "min_workers": 1}]},
         "Quotas, row 1 ('q'): no job line is chosen; name at least one job line"),
        # Two links of one name: the tables call it a name, not an id.
        ({"linked_workers": [{"id": "c", "worker_ids": ["w1", "w2"]}, {"id": "c", "worker_ids": ["w3", "w4"]}]},
         "Linked workers, row 2 ('c'): the name is used by more than one link (also row 1)"),
        ({"quotas": [{"id": "q", "sites": ["North"], "min_workers": -1}]}, "Quotas, row 1: at least must be at least 0"),
        ({"priorities": [{"worker_id": "w1", "priority": 0}]}, "Priority tiers, row 1: priority must be at least 1"),
        ({"priorities": [{"worker_id": "w9", "priority": 1}]}, "Priority tiers, row 1: 'w9' is not a worker of this run"),
        ({"priorities": [{"worker_id": "w1", "priority": 1}, {"worker_id": "w1", "priority": 2}]},
         "Priority tiers, row 2: worker 'w1' appears more than once (also row 1)"),
        ({"previous_allocations": [{"worker_id": "w1", "job_line_id": "zz"}]},
         "Previous allocation, row 1: job line 'zz' is not a job line of this run"),
        # A scenario pin that splits the run's own couple names the run's link.
        ({"pins": [{"worker_id": "w1", "job_line_id": "n1"}, {"worker_id": "w2", "job_line_id": "s1"}]},
         "The run's own linked workers, entry 1 ('couple-1'): its workers must be on one site"),
    ],
)
def test_bad_rule_overrides_name_the_row(run, overrides, expected):
    with pytest.raises(SnapshotError) as e:
        apply(run, None, overrides)
    assert any(m.startswith(expected) for m in e.value.messages), e.value.messages


def test_fewest_moves_must_be_yes_or_no(run):
    with pytest.raises(SnapshotError) as e:
        apply(run, {"fewest_moves": "maybe"}, None)
    assert e.value.messages[0].startswith("Settings: Fewest moves from the previous allocation"), e.value.messages


def test_compare_names_the_rules_two_scenarios_set_differently():
    from allocator.compare import ScenarioView, what_differs

    a = ScenarioView("A", None, {}, {})
    b = ScenarioView("B", None, {"fewest_moves": True}, {
        "linked_workers": [{"id": "c1", "worker_ids": ["w1", "w2"]}],
        "quotas": [{"id": "q1", "job_line_ids": ["j1"], "qualification_id": "ed", "min_workers": 2, "max_workers": 3}],
        "priorities": [{"worker_id": "w3", "priority": 1}, {"worker_id": "w4", "priority": None}],
        "previous_allocations": [],
    })
    rows = {r["what"]: (r["A"], r["B"]) for r in what_differs([a, b])}
    assert rows == {
        "Fewest moves from the previous allocation": ("as in the run", "yes"),
        "Link c1": ("as in the run", "w1, w2"),
        "Linked workers": ("as in the run", "1 link"),
        "Quota q1": ("as in the run", "at least 2 and at most 3 with tag ed on j1"),
        "Priority tier of w3": ("as in the run", "tier 1"),
        "Priority tier of w4": ("as in the run", "no tier"),
        "Previous allocation": ("as in the run", "0 workers and their lines"),
    }
