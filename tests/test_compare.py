"""Comparing scenarios: settings that differ, KPI deltas, distributions, moves, Sankey."""

from __future__ import annotations

import pytest

from allocator.compare import (
    ScenarioView,
    format_delta,
    format_kpi,
    is_improvement,
    kpi_delta,
    kpi_table,
    move_summary,
    moves,
    rank_distributions,
    sankey_data,
    settings_diff,
)
from allocator.demo import demo_snapshot
from allocator.engine import solve
from allocator.scenario import apply
from allocator.snapshot import RunSnapshot


@pytest.fixture(scope="module")
def two_results():
    """The demo run solved with the supervisor voice at 0 % and at 90 %."""
    run = RunSnapshot.parse(demo_snapshot(workers=60, seed=3))
    a = solve(apply(run, {"preferencer_weight": 0.0})).to_dict()
    b = solve(apply(run, {"preferencer_weight": 0.9})).to_dict()
    return run, a, b


def test_settings_diff_lists_only_what_differs():
    views = [
        ScenarioView("A", None, {"preferencer_weight": 0.3, "stability": False, "rng_seed": 1}, {}),
        ScenarioView("B", None, {"preferencer_weight": 0.6, "stability": False, "rng_seed": 1},
                     {"pins": [{"worker_id": "w1", "job_line_id": "j1"}]}),
    ]
    rows = settings_diff(views)
    assert rows == [
        {"setting": "Supervisor voice", "A": "30%", "B": "60%"},
        {"setting": "Pins", "A": 0, "B": 1},
    ]


def test_kpi_table_and_deltas_follow_the_results(two_results):
    _, a, b = two_results
    views = [ScenarioView("workers", a), ScenarioView("supervisors", b)]
    rows = {r["key"]: r for r in kpi_table(views)}
    first = rows["first_choice_share"]
    assert first["workers"] == a["metrics"]["first_choice_share"]
    assert first["supervisors"] == b["metrics"]["first_choice_share"]
    assert first["supervisors change"] == pytest.approx(b["metrics"]["first_choice_share"] - a["metrics"]["first_choice_share"])
    assert "workers change" not in first  # the baseline has no change column
    # Giving supervisors the say cannot make workers happier on average than the workers-only optimum.
    assert kpi_delta(b, a, "mean_rank") >= 0
    assert kpi_delta(b, None, "mean_rank") is None


def test_improvement_direction_and_formats():
    assert is_improvement("first_choice_share", 0.1) is True
    assert is_improvement("mean_rank", 0.1) is False
    assert is_improvement("vacancies", -1) is True
    assert is_improvement("blocking_pairs", 0) is None
    assert format_kpi("first_choice_share", 0.456) == "46%"
    assert format_kpi("mean_rank", 1.234) == "1.23"
    assert format_kpi("vacancies", 3.0) == "3"
    assert format_kpi("worst_rank", 36.0) == "36" and format_kpi("worst_rank", 12.5) == "12.5"
    assert format_kpi("mean_rank", None) == "–"
    assert format_delta("first_choice_share", -0.36) == "-36 pts"
    assert format_delta("worst_rank", 2.0) == "+2" and format_delta("mean_rank", 4.294) == "+4.29"
    assert format_delta("vacancies", 0.0) == "+0" and format_delta("vacancies", None) is None
    assert format_delta("objective", 2132.6) == "+2.13e+03"


def test_rank_distributions_line_up_and_keep_totals(two_results):
    _, a, b = two_results
    rows = rank_distributions([ScenarioView("A", a), ScenarioView("B", b)])
    labels_a = [r["label"] for r in rows if r["scenario"] == "A"]
    labels_b = [r["label"] for r in rows if r["scenario"] == "B"]
    assert labels_a == labels_b and labels_a[-1] == "unranked line" and labels_a[0] == "1st choice"
    assert sum(r["workers"] for r in rows if r["scenario"] == "A") == len(a["allocations"])
    assert sum(r["workers"] for r in rows if r["scenario"] == "B") == len(b["allocations"])


def test_moves_are_exactly_the_workers_whose_line_changed(two_results):
    run, a, b = two_results
    la = {x["worker_id"]: x for x in a["allocations"]}
    lb = {x["worker_id"]: x for x in b["allocations"]}
    expected = {w for w in la if la[w]["job_line_id"] != lb[w]["job_line_id"]}
    assert expected, "α 0 → 0.9 should move somebody on the demo run"
    rows = moves(a, b, {w.id: w.name for w in run.workers})
    assert {r["worker_id"] for r in rows} == expected
    for r in rows:
        w = r["worker_id"]
        assert r["rank_change"] == pytest.approx(lb[w]["worker_rank"] - la[w]["worker_rank"])
        assert r["worker"] == next(x.name for x in run.workers if x.id == w)
    changes = [r["rank_change"] for r in rows]
    assert changes == sorted(changes, reverse=True)  # largest losses first
    s = move_summary(rows)
    assert s["moved"] == len(rows) == s["better"] + s["worse"] + s["same"]
    assert moves(a, a) == []


def test_sankey_links_sum_to_the_moves(two_results):
    _, a, b = two_results
    data = sankey_data(a, b)
    n_moves = len(moves(a, b))
    assert sum(data["value"]) == n_moves
    assert len(data["source"]) == len(data["target"]) == len(data["value"])
    n_left = len(set(data["source"]))
    assert all(s < n_left <= t < len(data["labels"]) for s, t in zip(data["source"], data["target"], strict=True))
    with_stays = sankey_data(a, b, include_stays=True)
    assert sum(with_stays["value"]) == len(a["allocations"])
    capped = sankey_data(a, b, include_stays=True, max_links=3)
    assert len(capped["value"]) == 4 and sum(capped["value"]) == len(a["allocations"])
    assert "other lines" in capped["labels"]
