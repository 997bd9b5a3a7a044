"""The dashboard's Plotly figures, built by plain functions and checked without Streamlit."""

from __future__ import annotations

import charts
import pytest

from allocator.compare import ScenarioView, moves, rank_distributions, sankey_data
from allocator.demo import demo_snapshot
from allocator.engine import solve
from allocator.jobs import ProgressPoint
from allocator.scenario import apply
from allocator.snapshot import RunSnapshot


@pytest.fixture(scope="module")
def results():
    run = RunSnapshot.parse(demo_snapshot(workers=50, seed=5))
    return run, solve(apply(run, {"preferencer_weight": 0.0})).to_dict(), solve(apply(run, {"preferencer_weight": 1.0})).to_dict()


def test_rank_distribution_bars_follow_the_metrics(results):
    _, a, _ = results
    buckets = a["metrics"]["rank_distribution"]
    fig = charts.rank_distribution_figure(buckets)
    (bar,) = fig.data
    assert list(bar.x) == [b["label"] for b in buckets[:-1]] + ["not ranked"]
    assert buckets[-1]["choice"] == "unranked"
    assert list(bar.y) == [b["workers"] for b in buckets]
    assert sum(bar.y) == 50
    assert fig.layout.xaxis.title.text == "Choice the worker got"
    assert fig.layout.yaxis.title.text == "Workers"
    colours = list(bar.marker.color)
    assert colours[0] == charts.BLUE  # first choices: the "good" colour
    assert colours[-1] == charts.VERMILLION  # unranked lines: attention


def test_overlay_has_one_trace_per_scenario(results):
    _, a, b = results
    rows = rank_distributions([ScenarioView("A", a), ScenarioView("B", b)])
    fig = charts.rank_distribution_overlay(rows)
    assert [t.name for t in fig.data] == ["A", "B"]
    assert fig.layout.barmode == "group"
    assert list(fig.data[0].x) == list(fig.data[1].x)
    assert list(fig.data[0].x)[-1] == "not ranked"
    assert [t.marker.color for t in fig.data] == [charts.SCENARIO_COLOURS[0], charts.SCENARIO_COLOURS[1]]


def test_overlay_shows_a_scenario_name_as_typed_not_as_markup(results):
    _, a, b = results
    rows = rank_distributions([ScenarioView("<b>x</b>", a), ScenarioView("50%{y} off", b)])
    fig = charts.rank_distribution_overlay(rows)
    assert [t.name for t in fig.data] == ["&lt;b&gt;x&lt;/b&gt;", "50%{y} off"]
    assert all(t.hovertemplate.startswith("%{fullData.name}<br>") for t in fig.data)


def test_fill_chart_marks_mandatory_lines_and_an_empty_one():
    fill = [
        {"job_line_id": "j1", "filled": 2, "capacity": 3, "vacancies": 1, "mandatory": True},
        {"job_line_id": "j2", "filled": 0, "capacity": 1, "vacancies": 1, "mandatory": True},
        {"job_line_id": "j3", "filled": 4, "capacity": 4, "vacancies": 0, "mandatory": False},
    ]
    fig = charts.fill_figure(fill, {"j1": "Line one", "j3": "Line three"})
    places, placed, must = fig.data
    assert places.name == "Places" and placed.name == "Workers placed" and must.name == "Must be filled"
    assert dict(zip(placed.y, placed.x, strict=True)) == {"Line one  ◆": 2, "j2  ◆": 0, "Line three": 4}
    assert dict(zip(places.y, places.x, strict=True)) == {"Line one  ◆": 3, "j2  ◆": 1, "Line three": 4}
    assert set(must.y) == {"Line one  ◆", "j2  ◆"}
    colour = dict(zip(placed.y, placed.marker.color, strict=True))
    assert colour["j2  ◆"] == charts.VERMILLION and colour["Line one  ◆"] == charts.BLUE
    assert "places" in fig.layout.xaxis.title.text


def test_eligibility_heatmap_colours_by_reason_and_greys_out_the_rest():
    codes = [["DEFAULT", "EXCLUDED_TAG"], ["FORBIDDEN", "INCLUDED_WORKER"]]
    fig = charts.eligibility_heatmap(codes, ["w1", "w2"], ["j1", "j2"])
    heat = fig.data[0]
    assert list(heat.y) == ["w1", "w2"] and list(heat.x) == ["j1", "j2"]
    legend = [t.name for t in fig.data[1:]]
    assert legend == [charts.REASON_WORDS[c] for c in ("INCLUDED_WORKER", "DEFAULT", "EXCLUDED_TAG", "FORBIDDEN")]
    assert heat.text[0][1] == charts.REASON_WORDS["EXCLUDED_TAG"]
    # Show one reason: every other cell takes the "filtered out" value (the last colour).
    only = charts.eligibility_heatmap(codes, ["w1", "w2"], ["j1", "j2"], show=["EXCLUDED_TAG"])
    z = [list(r) for r in only.data[0].z]
    hidden = max(max(r) for r in z)
    assert z[0][1] != hidden and [z[0][0], z[1][0], z[1][1]] == [hidden] * 3
    assert only.data[0].colorscale[-1][1] == charts.FILTERED_OUT
    assert [t.name for t in only.data[1:]] == [charts.REASON_WORDS["EXCLUDED_TAG"]]


def test_sankey_figure_carries_the_flows(results):
    _, a, b = results
    data = sankey_data(a, b)
    fig = charts.sankey_figure(data)
    s = fig.data[0]
    assert list(s.link.value) == data["value"] and list(s.node.label) == data["labels"]
    assert sum(s.link.value) > 0


def move(i: int, a: str, b: str) -> dict:
    return {"worker_id": f"w{i}", "from_line_id": a, "to_line_id": b, "from_line": f"Line {a}", "to_line": f"Line {b}"}


def test_a_sankey_of_many_moves_keeps_the_busiest_lines_and_groups_the_rest():
    # 61 moves over 40 lines: line a0 loses 12 workers and b0 gains 12, the rest one or two each.
    mv = [move(i, "a0", "b0" if i < 6 else f"b{i}") for i in range(12)]
    mv += [move(100 + i, f"a{1 + i % 30}", "b0" if i < 6 else f"b{1 + i % 25}") for i in range(49)]
    data = charts.sankey_moves(mv, max_lines=10)
    fig = charts.sankey_figure(data)
    s = fig.data[0]
    assert fig.layout.height <= charts.SANKEY_MAX_HEIGHT == 650
    left, right = data["labels"][: data["n_left"]], data["labels"][data["n_left"]:]
    assert len(left) == len(right) == 11  # ten lines each, and "Other lines"
    assert left[0] == "Line a0" and "Line b0" in right  # the busiest lines keep their own node
    assert left[-1] == right[-1] == charts.OTHER_LINES
    assert sum(s.link.value) == len(mv)  # every move is drawn, grouped or not
    in_other = sum(1 for m in mv if m["from_line_id"] not in {x[5:] for x in left[:-1]}
                   or m["to_line_id"] not in {y[5:] for y in right[:-1]})
    assert data["grouped_moves"] == in_other > 0
    assert data["lines_left"] == 31 and data["shown_left"] == 10
    colours = list(s.node.color)
    assert colours[data["n_left"] - 1] == colours[-1] == charts.GREY  # grouped lines in grey


def test_a_sankey_of_few_moves_groups_nothing(results):
    run, a, b = results
    names = {j.id: j.name for j in run.job_lines}
    mv = moves(a, b, line_names=names)
    assert mv
    data = charts.sankey_moves(mv, max_lines=100)
    assert data["grouped_moves"] == 0 and charts.OTHER_LINES not in data["labels"]
    assert sum(data["value"]) == len(mv)
    assert charts.sankey_figure(data).layout.height <= charts.SANKEY_MAX_HEIGHT
    # Eleven lines a side with max_lines=10: one line is not worth a group of its own.
    few = [move(i, f"a{i}", f"b{i}") for i in range(11)]
    assert charts.OTHER_LINES not in charts.sankey_moves(few, max_lines=10)["labels"]


def test_progress_figure_plots_objective_and_bound():
    hist = [ProgressPoint(0.1, None, 5.0), ProgressPoint(0.4, 9.0, 6.0), ProgressPoint(0.9, 7.0, 7.0)]
    fig = charts.progress_figure(hist)
    obj, bnd = fig.data
    assert list(obj.x) == [0.4, 0.9] and list(obj.y) == [9.0, 7.0]
    assert list(bnd.x) == [0.1, 0.4, 0.9] and list(bnd.y) == [5.0, 6.0, 7.0]
    assert fig.layout.xaxis.title.text == "Seconds since the solve started"
    # Dicts work too (a result saved as JSON).
    assert list(charts.progress_figure([{"elapsed": 1, "objective": 2, "bound": 1}]).data[0].y) == [2]
    assert not fig.layout.annotations and fig.layout.yaxis.showticklabels is not False


def test_progress_figure_before_anything_is_found_says_so_instead_of_an_empty_cost_axis():
    # A stable solve searches for seconds before its first allocation: the chart showed a
    # "Total cost" axis from -1 to 4, numbers no solve gave.
    for hist in ([], [ProgressPoint(0.5, None, None)]):
        fig = charts.progress_figure(hist)
        assert all(len(t.y) == 0 for t in fig.data)
        assert fig.layout.yaxis.showticklabels is False
        (note,) = fig.layout.annotations
        assert note.text.startswith("No allocation found yet")


def test_depth_figure_flags_workers_who_ranked_nothing():
    fig = charts.depth_figure({0: 2, 3: 5, 7: 1})
    (bar,) = fig.data
    assert list(bar.x) == [0, 3, 7] and list(bar.y) == [2, 5, 1]
    assert bar.marker.color[0] == charts.VERMILLION and bar.marker.color[1] == charts.BLUE


def test_palette_is_one_meaning_per_colour():
    assert len(set(charts.REASON_COLOURS.values())) == len(charts.REASON_COLOURS)
    assert set(charts.REASON_COLOURS) == set(charts.REASON_WORDS)


def test_moves_chart_draws_a_sankey_of_up_to_a_dozen_lines_with_nothing_grouped():
    mv = [move(i, f"a{i % 6}", f"b{i % 6}") for i in range(30)]  # six lines a side: 12 lines
    plan = charts.moves_chart(mv)
    assert plan["kind"] == "sankey" and plan["by"] == "line" and plan["lines"] == 12
    data = plan["data"]
    assert charts.OTHER_LINES not in data["labels"] and data["grouped_moves"] == 0
    assert sum(data["value"]) == len(mv)
    assert plan["note"] == "All 30 moves between the 12 lines involved."


def test_moves_chart_gives_way_to_the_table_past_a_dozen_lines_and_says_so():
    mv = [move(i, f"a{i % 7}", f"b{i % 6}") for i in range(40)]  # 13 lines
    plan = charts.moves_chart(mv)
    assert plan["kind"] == "table" and plan["data"] is None and plan["lines"] == 13
    assert plan["note"] == ("13 lines are involved: too many for a readable chart (at most 12), "
                            "so no chart is drawn. The table lists all 40 moves.")
    assert charts.moves_chart([])["note"] == "Nobody moved."


def test_moves_chart_groups_by_site_when_lines_carry_sites():
    mv = [move(i, f"a{i % 10}", f"b{i % 10}") for i in range(50)]  # 20 lines
    sites = {f"a{i}": f"Site {i % 3}" for i in range(10)} | {f"b{i}": f"Site {i % 4}" for i in range(9)}
    plan = charts.moves_chart(mv, sites=sites)
    assert plan["kind"] == "sankey" and plan["by"] == "site" and plan["lines"] == 20
    data = plan["data"]
    left, right = data["labels"][: data["n_left"]], data["labels"][data["n_left"]:]
    assert set(left) == {"Site 0", "Site 1", "Site 2"}
    # b9 has no site: a site of its own, named by its line.
    assert set(right) == {"Site 0", "Site 1", "Site 2", "Site 3", "Line b9 (its own site)"}
    assert sum(data["value"]) == len(mv) and plan["sites"] == 5
    assert plan["note"].startswith("All 50 moves, grouped by site: 20 lines at 5 sites.")
    within = sum(1 for m in mv if sites[m["from_line_id"]] == sites.get(m["to_line_id"], m["to_line_id"]))
    assert f"{within} moves stay within one site" in plan["note"]
    # Too many sites: the table again, saying why.
    many = charts.moves_chart(mv, sites={k: k for k in sites})
    assert many["kind"] == "table" and "20 lines at 20 sites are involved" in many["note"]
    assert "The table lists all 50 moves." in many["note"]


def test_rank_chart_gives_workers_on_unranked_lines_their_own_bar_last():
    buckets = [
        {"choice": "unranked", "label": "unranked line", "workers": 3},
        {"choice": 1, "label": "1st choice", "workers": 5},
        {"choice": 2, "label": "2nd choice", "workers": 0},
    ]
    (bar,) = charts.rank_distribution_figure(buckets).data
    assert list(bar.x) == ["1st choice", "2nd choice", "not ranked"]
    assert list(bar.y) == [5, 0, 3]
    assert list(bar.marker.color)[-1] == charts.VERMILLION


def _fill(n: int) -> list[dict]:
    # Line k has k % 4 empty places of 3; every fifth line must be filled (and j005 is left empty).
    rows = []
    for k in range(1, n + 1):
        filled = 0 if k == 5 else 3 - k % 4
        rows.append({"job_line_id": f"j{k:03}", "filled": filled, "capacity": 3,
                     "vacancies": 3 - filled, "mandatory": k % 5 == 0})
    return rows


def test_coverage_chart_of_a_few_lines_draws_them_all_and_says_so():
    fill = _fill(8)
    fig = charts.fill_figure(fill)
    assert len(fig.data[0].y) == 8
    assert "All 8 lines" in charts.fill_caption(fill)
    assert "not drawn" not in charts.fill_caption(fill)


def test_truncated_coverage_chart_says_what_it_leaves_out():
    fill = _fill(300)
    fig = charts.fill_figure(fill)
    drawn = {lab.replace("  ◆", "") for lab in fig.data[0].y}
    assert len(drawn) == charts.FILL_CHART_LINES
    # The lines left out, counted here from the rows themselves.
    rest = [r for r in fill if r["job_line_id"] not in drawn]
    empty = sum(r["capacity"] - r["filled"] for r in rest)
    full = sum(1 for r in rest if r["filled"] == r["capacity"])
    caption = charts.fill_caption(fill)
    assert f"Showing the {len(drawn)} of 300 lines" in caption
    assert f"the other {len(rest)} are not drawn" in caption
    assert f"{empty} empty places between them ({full} of them full)" in caption
    assert "table below" in caption
    assert f"{len(drawn)} of 300" in fig.layout.title.text
    # The must-be-filled line left empty needs attention most: it is drawn, first from the top.
    assert "j005" in drawn and fig.data[0].y[-1] == "j005  ◆"
    # Nothing left out has more empty places than a line drawn.
    most_left = max(r["capacity"] - r["filled"] for r in rest)
    assert all(r["capacity"] - r["filled"] >= most_left for r in fill if r["job_line_id"] in drawn)


def test_coverage_caption_when_every_line_left_out_is_full():
    fill = [{"job_line_id": f"j{k:02}", "filled": 1 if k < 3 else 2, "capacity": 2,
             "vacancies": 1 if k < 3 else 0, "mandatory": False} for k in range(20)]
    caption = charts.fill_caption(fill)
    # Only the 3 lines with an empty place are drawn: a full line is no line "with empty places".
    assert "Showing the 3 of 20 lines with empty places" in caption
    assert "the other 17 are not drawn: they are all full" in caption


def test_coverage_chart_draws_no_full_line_as_one_with_empty_places():
    # The demo's shape: 60 lines, 11 with empty places. The chart beside "Lines with empty
    # places: 11" drew 12 under the title "lines with the most empty places", one of them full.
    fill = [{"job_line_id": f"j{k:02}", "filled": 2 if k < 11 else 3, "capacity": 3,
             "vacancies": 1 if k < 11 else 0, "mandatory": k == 30} for k in range(60)]
    fig = charts.fill_figure(fill)
    drawn = [lab.replace("  ◆", "") for lab in fig.data[0].y]
    with_empty = [r["job_line_id"] for r in fill if r["capacity"] > r["filled"]]
    assert sorted(drawn) == sorted(with_empty)
    assert fig.layout.title.text == f"The {len(with_empty)} of 60 lines with empty places"
    caption = charts.fill_caption(fill)
    assert f"Showing the {len(with_empty)} of 60 lines with empty places; the other {60 - len(with_empty)} " \
           "are not drawn: they are all full" in caption


def test_coverage_chart_when_every_line_is_full_says_so():
    fill = [{"job_line_id": f"j{k:02}", "filled": 2, "capacity": 2, "vacancies": 0, "mandatory": False}
            for k in range(20)]
    fig = charts.fill_figure(fill)
    assert len(fig.data[0].y) == charts.FILL_CHART_LINES
    assert fig.layout.title.text == f"{charts.FILL_CHART_LINES} of 20 lines (every line is full)"
    assert "most empty places" not in charts.fill_caption(fill)


def test_eligibility_heatmap_hover_names_the_line_not_only_its_id():
    codes = [["DEFAULT", "EXCLUDED_TAG"], ["FORBIDDEN", "INCLUDED_WORKER"]]
    fig = charts.eligibility_heatmap(codes, ["w1", "w2"], ["j1", "j2"],
                                     line_names=["Line 1: Surgery (Auburn) (j1)", "Line 2: ED (Orange) (j2)"])
    heat = fig.data[0]
    assert list(heat.x) == ["j1", "j2"]  # the axis stays short
    assert [list(r) for r in heat.customdata] == [["Line 1: Surgery (Auburn) (j1)", "Line 2: ED (Orange) (j2)"]] * 2
    assert "%{customdata}" in heat.hovertemplate and "%{x}" not in heat.hovertemplate


def test_progress_shows_the_best_bound_so_far_when_a_later_phase_reports_a_weaker_one():
    # Walked in the browser: a stable solve's proof search reported a bound 5 % under its best
    # allocation, then its neighbourhood search reported its own much weaker bound, and "Left
    # to prove" jumped to 140 % (Results then said "at most 1.0 %"): the gap must only close.
    hist = [ProgressPoint(1.7, 192_332.0, 156_600.0), ProgressPoint(2.4, 170_934.0, 162_640.0),
            ProgressPoint(3.5, 164_384.0, 68_330.0), ProgressPoint(4.4, 164_500.0, 69_000.0)]
    assert charts.best_so_far(hist) == (164_384.0, 162_640.0)
    fig = charts.progress_figure(hist)
    obj, bnd = fig.data
    assert list(bnd.y) == [156_600.0, 162_640.0, 162_640.0, 162_640.0]
    assert list(obj.y) == [192_332.0, 170_934.0, 164_384.0, 164_384.0]
    gaps = [(o - b) / b for o, b in zip(obj.y, bnd.y, strict=True)]
    assert gaps == sorted(gaps, reverse=True)
    assert charts.best_so_far([]) == (None, None)
    assert charts.best_so_far([ProgressPoint(0.2, None, 3.0)]) == (None, 3.0)
