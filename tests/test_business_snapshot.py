"""The business rules' keys in a run snapshot (business-rules.md): validation, canonical form,
the problem data built from them, and the result's reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from allocator.engine import rule_breaches, solve
from allocator.metrics import business_rule_metrics
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot, SnapshotError
from tests.helpers.named_runs import L, W, assignment, prefs


def _run(**extra) -> dict:
    lines = L(("j1", 1), ("j2", 1), ("j3", 2), ("j4", 1))
    for line, site in zip(lines, ["North", "North", "South", None], strict=True):
        if site:
            line["site"] = site
    return {
        "format": "allocator-run/1",
        "workers": W("w1", "w2", "w3", "w4", tags={"w3": ["ed"]}),
        "job_lines": lines,
        "worker_preferences": prefs(w1={"j1": 1, "j3": 2}, w2={"j3": 1, "j2": 2}, w3={"j1": 1}, w4={"j4": 1}),
        **extra,
    }


def _messages(data: dict) -> list[str]:
    with pytest.raises(SnapshotError) as err:
        RunSnapshot.parse(data)
    return err.value.messages


def test_a_snapshot_without_the_new_keys_keeps_its_canonical_bytes():
    plain = RunSnapshot.parse(_run())
    d = plain.canonical()
    for key in ("linked_workers", "quotas", "previous_allocations"):
        assert key not in d
    assert "fewest_moves" not in d["settings"]
    assert all("priority" not in w for w in d["workers"])
    # The lines that have a site carry it; the one without has no key at all.
    assert [j.get("site") for j in d["job_lines"]] == ["North", "North", "South", None]
    assert "site" not in d["job_lines"][3]


def test_the_new_keys_round_trip_through_the_canonical_json():
    data = _run(
        linked_workers=[{"id": "couple-1", "worker_ids": ["w2", "w1"]}],
        quotas=[{"id": "south-min", "sites": ["South"], "min_workers": 1, "max_workers": 2},
                {"id": "ed", "job_line_ids": ["j1", "j2"], "qualification_id": "ed", "max_workers": 1}],
        previous_allocations=[{"worker_id": "w4", "job_line_id": "j4"}],
        settings={"fewest_moves": True},
    )
    data["workers"][0]["priority"] = 1
    snap = RunSnapshot.parse(data)
    again = RunSnapshot.from_json(snap.to_json())
    assert again.canonical() == snap.canonical()
    assert again.fingerprint() == snap.fingerprint()
    assert snap.canonical()["linked_workers"] == [{"id": "couple-1", "worker_ids": ["w1", "w2"]}]
    assert again.settings.fewest_moves is True


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["job_lines"][0].update(site="  "), "job_lines[0] (id 'j1'): the site is blank"),
        (lambda d: d["workers"][0].update(priority=0), "workers[0] (id 'w1'): priority"),
        (lambda d: d["workers"][0].update(priority=1.5), "workers[0] (id 'w1'): priority"),
        (lambda d: d.update(linked_workers=[{"id": "c", "worker_ids": []}]), "linked_workers[0] (id 'c'): the link names no workers"),
        (lambda d: d.update(linked_workers=[{"id": "c", "worker_ids": ["w1"]}]), "a link has 2 to 4 workers, this one has 1"),
        (lambda d: d.update(linked_workers=[{"id": "c", "worker_ids": ["w1", "w9"]}]), "worker 'w9' is not a worker of this run"),
        (lambda d: d.update(linked_workers=[{"id": "a", "worker_ids": ["w1", "w2"]}, {"id": "b", "worker_ids": ["w2", "w3"]}]),
         "linked_workers[1] (id 'b'): worker 'w2' is already in link 'a'"),
        (lambda d: d.update(linked_workers=[{"id": "a", "worker_ids": ["w1", "w2"]}, {"id": "a", "worker_ids": ["w3", "w4"]}]),
         "linked_workers[1] (id 'a'): the id is used by more than one link"),
        (lambda d: d.update(quotas=[{"id": "q", "min_workers": 1}]), "quotas[0] (id 'q'): names neither sites nor job lines"),
        (lambda d: d.update(quotas=[{"id": "q", "sites": ["North"], "job_line_ids": ["j1"]}]), "names both sites and job lines"),
        (lambda d: d.update(quotas=[{"id": "q", "sites": ["East"]}]), "site 'East' is not the site of any job line"),
        (lambda d: d.update(quotas=[{"id": "q", "job_line_ids": ["j9"]}]), "job line 'j9' is not a job line of this run"),
        (lambda d: d.update(quotas=[{"id": "q", "sites": ["North"], "min_workers": 3, "max_workers": 2}]),
         "the minimum (3) is above the maximum (2)"),
        (lambda d: d.update(previous_allocations=[{"worker_id": "w1", "job_line_id": "j1"}, {"worker_id": "w1", "job_line_id": "j2"}]),
         "previous_allocations[1]: worker 'w1' appears more than once"),
        (lambda d: d.update(settings={"fewest_moves": "yes"}), "fewest_moves: must be true or false"),
        (lambda d: d.update(linked_workers=[{"id": "c", "worker_ids": ["w1", "w2"]}],
                            pins=[{"worker_id": "w1", "job_line_id": "j1"}, {"worker_id": "w2", "job_line_id": "j3"}]),
         "linked_workers[0] (id 'c'): its workers must be on one site, but they are pinned to different sites"),
    ],
)
def test_every_bad_business_rule_entry_is_named(change, expected):
    data = _run()
    change(data)
    messages = _messages(data)
    assert any(expected in m for m in messages), messages


def test_problem_data_holds_sites_tiers_links_quotas_and_the_previous_allocation():
    data = _run(
        linked_workers=[{"id": "couple-1", "worker_ids": ["w1", "w2"]}],
        quotas=[{"id": "ed", "job_line_ids": ["j1", "j2"], "qualification_id": "ed", "max_workers": 1}],
        previous_allocations=[{"worker_id": "w4", "job_line_id": "j4"}],
        settings={"fewest_moves": True},
    )
    data["workers"][0]["priority"] = 2
    data["workers"][2]["priority"] = 1
    p = ProblemData.from_snapshot(RunSnapshot.parse(data))
    # j1, j2 share North; j3 is South; j4 (no site) is a site of its own, labelled by its id.
    assert p.site[0] == p.site[1] != p.site[2] != p.site[3]
    assert [p.site_labels[k] for k in p.site] == ["North", "North", "South", "j4"]
    assert p.tier_priorities == [1, 2, None]
    assert p.tier.tolist() == [1, 2, 0, 2]  # w1 priority 2, w3 priority 1, the rest none
    assert [link.workers.tolist() for link in p.links] == [[0, 1]]
    assert p.quotas[0].lines.tolist() == [0, 1] and p.quotas[0].counts.tolist() == [False, False, True, False]
    assert p.previous.tolist() == [-1, -1, -1, 3]
    assert p.fewest_moves and p.lexicographic and p.has_links_or_quotas
    a = assignment(p, {"w1": "j1", "w2": "j2", "w3": "j3", "w4": "j3"})
    levels = p.objective_levels(a)
    rows = np.arange(4)
    costs = p.cost[rows, a]
    assert levels == [1.0, float(costs[2]), float(costs[0]), float(costs[[1, 3]].sum())]


def test_a_plain_run_has_one_level_and_no_business_rules():
    p = ProblemData.from_snapshot(RunSnapshot.parse(_run()))
    assert not p.has_business_rules and p.n_tiers == 1
    a = assignment(p, {"w1": "j1", "w2": "j3", "w3": "j2", "w4": "j4"})
    assert p.objective_levels(a) == [p.objective(a)]


def test_rule_breaches_and_the_reports_count_the_same_things():
    data = _run(
        linked_workers=[{"id": "couple-1", "worker_ids": ["w1", "w2"]}],
        quotas=[{"id": "south", "sites": ["South"], "min_workers": 2, "max_workers": 2}],
        previous_allocations=[{"worker_id": "w1", "job_line_id": "j1"}, {"worker_id": "w4", "job_line_id": "j4"}],
    )
    p = ProblemData.from_snapshot(RunSnapshot.parse(data))
    split = assignment(p, {"w1": "j1", "w2": "j3", "w3": "j2", "w4": "j4"})
    breaches = rule_breaches(p, split)
    assert any("couple-1" in b and "split" in b for b in breaches)
    assert any("south" in b and "below its minimum of 2" in b for b in breaches)
    report = business_rule_metrics(p, split)
    assert report["links"][0]["site"] is None
    assert report["quotas"][0] == {"id": "south", "count": 1, "min_workers": 2, "max_workers": 2, "met": False}
    assert report["moves"] == [] and report["moves_count"] == 0
    kept = assignment(p, {"w1": "j3", "w2": "j3", "w3": "j1", "w4": "j4"})
    assert rule_breaches(p, kept) == []
    report = business_rule_metrics(p, kept)
    assert report["links"][0]["site"] == "South"
    assert report["quotas"][0]["met"] is True
    assert report["moves"] == [{"worker_id": "w1", "from": "j1", "to": "j3"}] and report["moves_count"] == 1
    assert [s["site"] for s in report["sites"]] == ["North", "South", "j4"]
    assert sum(s["n_workers"] for s in report["sites"]) == 4


def test_the_engine_keeps_links_quotas_and_tiers_on_a_small_run(tmp_path: Path):
    data = _run(
        linked_workers=[{"id": "couple-1", "worker_ids": ["w1", "w2"]}],
        quotas=[{"id": "north", "sites": ["North"], "min_workers": 1}],
    )
    data["workers"][2]["priority"] = 1  # w3 is placed first: they get j1, their only choice
    res = solve(RunSnapshot.parse(data))
    assert res.status == "optimal"
    got = {a.worker_id: a.job_line_id for a in res.allocations}
    assert got["w3"] == "j1"
    assert rule_breaches(res.problem, res.assignment) == []
    # The couple cannot both be in North (j2 is the one place left there): both go South.
    assert got["w1"] == got["w2"] == "j3"
    out = tmp_path / "r.json"
    out.write_text(json.dumps(res.to_dict()))
    assert json.loads(out.read_text())["metrics"]["links"][0]["site"] == "South"
