"""One vocabulary for the headline figures: each one reads the same on the pages, in the XLSX
export (the cell's value shown with its number format) and on the Publish page and its history."""

from __future__ import annotations

import io
import re

import exports
import openpyxl
import pytest
from compare_view import kpi_frame
from headline import Solved

from allocator import kpis
from allocator.compare import ScenarioView, kpi_value
from allocator.demo import demo_snapshot
from allocator.engine import solve
from allocator.snapshot import RunSnapshot
from tests.app.conftest import open_app, solve_now
from tests.app.test_flow import metric, table
from tests.app.test_publish import publish, solve_save_and_open_publish


def excel_text(value: float | int, fmt: str) -> str:
    """What a spreadsheet shows for a number cell with one of the formats the exports use."""
    if fmt == "0%":
        return f"{value:.0%}"
    if fmt == "0":
        return f"{value:.0f}"
    if fmt == "0.00":
        return f"{value:.2f}"
    if m := re.fullmatch(r"#,##0(?:\.(0+))?", fmt):
        return f"{value:,.{len(m.group(1) or '')}f}"
    if fmt == "General":
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.10g}"
    raise AssertionError(f"a number format the test cannot show: {fmt!r}")


def summary_cells(result: dict, snapshot: RunSnapshot) -> dict[str, str]:
    """The XLSX export's summary sheet as a spreadsheet shows it: label -> text."""
    ws = openpyxl.load_workbook(io.BytesIO(exports.workbook(result, snapshot)))["Summary"]
    out = {}
    for what, cell in ws.iter_rows(min_row=2):
        if isinstance(cell.value, int | float) and not isinstance(cell.value, bool):
            out[what.value] = excel_text(cell.value, cell.number_format)
        else:
            out[what.value] = "–" if cell.value is None else str(cell.value)
    return out


@pytest.fixture(scope="module")
def demo():
    snapshot = RunSnapshot.parse(demo_snapshot())
    return snapshot, solve(snapshot).to_dict()


# Values whose shown form differs from the stored one: the Gini the export used to give as 0.456,
# half ranks, thousands, a value just under a rounding step.
AWKWARD = {
    "first_choice_share": 0.456, "top3_choice_share": 0.9951, "mean_rank_ranked": 3.186,
    "worst_rank_ranked": 12.5, "unranked_count": 3.0, "vacancies": 22.0, "mandatory_lines_filled": 7.0,
    "blocking_pairs": 1234.0, "worker_dissatisfaction_gini": 0.456, "preferencer_mean_rank_ranked": 1.999,
}


def test_every_figure_of_the_export_reads_as_the_page_writes_it(demo):
    snapshot, result = demo
    for metrics in (result["metrics"], {**result["metrics"], **AWKWARD}):
        res = {**result, "metrics": metrics, "objective": 1234567.891}
        cells = summary_cells(res, snapshot)
        for key in kpis.RESULT_KPIS:
            assert cells[kpis.label(key)] == kpis.value_text(key, metrics[key]), key
        assert cells[kpis.label("objective")] == kpis.value_text("objective", res["objective"]) == "1,234,567.89"
    assert kpis.value_text("worker_dissatisfaction_gini", 0.456) == "0.46"


def test_every_definition_has_one_format_for_its_value_its_cell_and_its_change():
    for kpi in kpis.DEFINITIONS:
        for v in (0.0, 0.456, 1.0, 12.5, 36.0, 2013.384):
            shown = kpis.shown_value(kpi.key, v)
            assert excel_text(shown, kpis.number_format(kpi.key)) == kpis.value_text(kpi.key, v), (kpi.key, v)
        assert kpis.value_text(kpi.key, None) == "–"
        assert kpis.delta_text(kpi.key, 0.0) == kpis.NO_CHANGE
        assert kpi.better in ("higher", "lower") and kpi.label and kpi.help


def test_the_compare_table_writes_every_figure_as_the_results_page(demo):
    snapshot, result = demo
    views = [ScenarioView("A", result), ScenarioView("B", {**result, "metrics": {**result["metrics"], **AWKWARD}})]
    sides = {v.name: Solved(v.name, {}, {}, "run", "f") for v in views}
    frame, _ = kpi_frame(views, sides)
    by_label = {row[""]: row for _, row in frame.iterrows()}
    for kpi in kpis.COMPARED:
        row = by_label[kpi.label]
        for v in views:
            assert row[v.name] == kpis.value_text(kpi.key, kpi_value(v.result, kpi.key)), (kpi.key, v.name)
    # Gini 0.456 is 0.46 here as on the Results page and in the export.
    assert by_label["Unevenness (Gini)"]["B"] == "0.46"


def test_the_results_page_the_publish_page_its_history_and_the_export_agree(demo_run, db_store):
    snapshot = RunSnapshot.parse(demo_snapshot())
    at = open_app(demo_run, "scenario")
    result = solve_now(at)["result"]
    m = result["metrics"]
    export = summary_cells(result, snapshot)

    at.switch_page("../pages/results.py").run()
    assert not at.exception, at.exception
    for key in ("first_choice_share", "top3_choice_share", "mean_rank_ranked", "worst_rank_ranked",
                "unranked_count", "vacancies", "blocking_pairs"):
        shown = metric(at, kpis.label(key, short=True)).value
        assert shown == kpis.value_text(key, m[key]) == export[kpis.label(key)], key
    for key in ("worker_dissatisfaction_gini", "objective"):
        value = result["objective"] if key == "objective" else m[key]
        assert metric(at, kpis.label(key)).value == kpis.value_text(key, value) == export[kpis.label(key)], key

    at.switch_page("../pages/scenario.py").run()
    solve_save_and_open_publish(at, "Figures")
    for key in ("first_choice_share", "vacancies"):
        assert metric(at, kpis.label(key)).value == export[kpis.label(key)], key
    filled = metric(at, kpis.label("mandatory_lines_filled")).value
    assert filled.startswith(export[kpis.label("mandatory_lines_filled")] + " of ")
    publish(at, "Figures agree")
    (saved,) = [s for s in db_store.list_scenarios(demo_run) if s.name == "Figures"]
    history = table(at, "Who", "Reason")
    assert history.iloc[0]["Total cost"] == kpis.value_text("objective", saved.result["objective"])
    assert history.iloc[0]["Total cost"] == summary_cells(saved.result, snapshot)[kpis.label("objective")]


def test_gap_words_say_how_far_from_the_best_possible_at_most():
    from allocator import kpis

    assert kpis.gap_share(103.0, 100.0) == pytest.approx(0.03)
    assert kpis.gap_text(102.6, 100.0) == "at most 2.6 % above the best possible"
    assert kpis.gap_text(100.0, 100.0) == "the best possible (proven)"
    assert kpis.gap_text(100.004, 100.0) == "at most 0.004 % above the best possible"
    assert kpis.gap_share(5.0, 0.0) is None and kpis.gap_share(None, 3.0) is None
    assert kpis.gap_text(5.0, None) == "how far from the best possible is not known"


def test_results_say_not_proven_with_the_gap_in_words(demo_run, db_store):
    from allocator.engine import solve
    from allocator.store import input_fingerprint

    run = db_store.load_run(demo_run)
    result = solve(run).to_dict()
    # As a solve stopped by its time limit records it: an allocation and a lower bound below it.
    result.update(status="feasible", best_bound=round(result["objective"] / 1.05, 6))
    db_store.save_scenario(demo_run, "Stopped early", {}, {}, result, input_fingerprint(run))
    at = open_app(demo_run, "results")
    sc = next(s for s in db_store.list_scenarios(demo_run) if s.name == "Stopped early")
    at.sidebar.selectbox(key="sidebar_scenario").set_value(sc.id).run()
    assert not at.exception, at.exception
    (note,) = [i.value for i in at.info if i.value.startswith("Not proven")]
    assert "at most 5.0 % above the best possible" in note
    # The Publish page, where it is decided, says the same number (it said only "not proven").
    at.switch_page("../pages/publish.py").run()
    assert not at.exception, at.exception
    (warning,) = [w.value for w in at.warning if w.value.startswith("This allocation was not proven")]
    assert warning.endswith("at most 5.0 % above the best possible.")


def test_results_say_which_priority_tiers_a_stopped_solve_proved(demo_run, db_store):
    """A tiered run stopped before its last tier was proven: Results says tier by tier."""
    from allocator.engine import solve
    from allocator.store import input_fingerprint

    run = db_store.load_run(demo_run)
    result = solve(run).to_dict()
    levels = result["metrics"]["levels"]
    assert [lv["priority"] for lv in levels] == [1, None] and all(lv["proven"] for lv in levels)
    # As a solve stopped at its last tier records it (see tests/test_business_levels_report.py).
    levels[-1]["proven"] = False
    result.update(status="feasible", best_bound=None)
    db_store.save_scenario(demo_run, "Stopped at the last tier", {}, {}, result, input_fingerprint(run))
    at = open_app(demo_run, "results")
    sc = next(s for s in db_store.list_scenarios(demo_run) if s.name == "Stopped at the last tier")
    at.sidebar.selectbox(key="sidebar_scenario").set_value(sc.id).run()
    assert not at.exception, at.exception
    (note,) = [i.value for i in at.info if i.value.startswith("Not proven")]
    assert ("tier 1 workers: the best possible (proven); workers without a tier: the best found, "
            "not proven") in note
    assert "how far from the best possible is not known" not in note
    # The Publish page warns the same way before the scenario is written.
    at.switch_page("../pages/publish.py").run()
    assert not at.exception, at.exception
    (warning,) = [w.value for w in at.warning if w.value.startswith("This allocation was not proven")]
    assert warning.endswith("workers without a tier: the best found, not proven.")
