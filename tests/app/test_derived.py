"""Speed: what a page derives from a result or a scenario is made once, not on every rerun."""

from __future__ import annotations

import copy

import charts
import derived
import state

from allocator.demo import demo_snapshot
from allocator.snapshot import RunSnapshot
from tests.app.conftest import open_app, solve_now


def test_a_result_key_follows_the_content_not_the_object():
    a = {"status": "optimal", "objective": 1.5, "allocations": [{"worker_id": "w1", "job_line_id": "j1"}]}
    b = copy.deepcopy(a)
    assert derived.result_key(a) == derived.result_key(b)
    c = copy.deepcopy(a)
    c["allocations"][0]["job_line_id"] = "j2"
    assert derived.result_key(c) != derived.result_key(a)
    assert derived.result_key(a) == derived.result_key(a)  # again, from the memo


def test_a_snapshot_fingerprint_is_worked_out_once_per_object(monkeypatch):
    snap = RunSnapshot.parse(demo_snapshot(workers=20, seed=3))
    calls = []
    real = RunSnapshot.fingerprint
    monkeypatch.setattr(RunSnapshot, "fingerprint", lambda self: calls.append(1) or real(self))
    first = state.fingerprint_of(snap)
    assert state.fingerprint_of(snap) == first == real(snap)
    assert len(calls) == 1


def counting(monkeypatch, module, name: str) -> list:
    calls: list = []
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_results_and_eligibility_reruns_rebuild_nothing(demo_run, monkeypatch):
    at = open_app(demo_run, "scenario")
    at.text_input(key="sc_name").input("Rerun me").run()
    at.slider(key="sc_alpha").set_value(45).run()
    solve_now(at)
    rank = counting(monkeypatch, charts, "rank_distribution_figure")
    fill = counting(monkeypatch, charts, "fill_figure")
    heat = counting(monkeypatch, charts, "eligibility_heatmap")
    to_json = counting(monkeypatch, RunSnapshot, "to_json")
    at.switch_page("../pages/results.py").run()
    for _ in range(3):
        at.run()
        assert not at.exception
    assert len(rank) <= 1 and len(fill) <= 1, (rank, fill)
    at.switch_page("../pages/eligibility.py").run()
    for _ in range(3):
        at.run()
        assert not at.exception
    assert len(heat) <= 1, heat
    at.switch_page("../pages/runs.py").run()
    at.run()
    assert not to_json  # the run's JSON is made when its download is clicked, not on every rerun
