"""Nothing a planner needs is cut off: tables fit the page, labels fit their place.

The screenshots are taken at 1400 × 900 with a 340 px sidebar, which leaves about 900 px for
a page's content. A table whose columns add up to more hides its right-hand columns behind a
scroll bar; a column without a width is sized to its longest cell.
"""

from __future__ import annotations

import json

from tests.app.conftest import new_app, open_app, solve_now
from tests.app.test_flow import metric

CONTENT = 880  # px a table may use


#: Read-only tables carry no key in AppTest: each is found by columns only it has.
TABLES = {
    "res_table": {"Worker id", "Job line id", "Choice"},
    "res_blocking": {"Has", "Would rather have"},
    "el_worker_table": {"May take it", "Why"},
    "el_line_table": {"Because", "Rank they gave it"},
    "cmp_moves": {"Outcome", "Rank change"},
    "pub_history": {"Who", "Result", "Workers"},
    "pub_history_settings": {"Setting", "Value"},
    "runs_table": {"Run", "Run id", "Current"},
}

ROW_PICKER = 35  # px: the box column of a table whose rows are picked


def visible_widths(at, key: str) -> dict[str, object]:
    (df,) = [d for d in at.dataframe if TABLES[key] <= set(d.value.columns)]
    config = json.loads(df.proto.columns or "{}")
    shown = list(df.proto.column_order) or list(df.value.columns)

    def width(col: str) -> object:
        c = config.get(col) or config.get(f"name:{col}") or {}
        return c.get("width")

    return {col: width(col) for col in shown}


def assert_fits(at, key: str) -> None:
    widths = visible_widths(at, key)
    unset = [c for c, w in widths.items() if not isinstance(w, int)]
    assert not unset, f"{key}: columns sized by their content: {unset}"
    assert sum(widths.values()) <= CONTENT, f"{key}: {sum(widths.values())} px > {CONTENT}: {widths}"


def test_results_tables_and_headline_labels_fit(demo_run):
    at = open_app(demo_run, "scenario")
    solve_now(at)
    at.switch_page("../pages/results.py").run()
    assert not at.exception
    assert_fits(at, "res_table")
    assert_fits(at, "res_blocking")
    assert set(visible_widths(at, "res_table")) >= {"Worker", "Job line", "Choice", "Rank given"}
    # Six numbers side by side: each label short enough for its column, the words in its help.
    headline = [m for m in at.metric][:6]
    assert [m.label for m in headline][:2] == ["Got first choice", "Got top three"]
    for m in headline:
        assert len(m.label) <= 16, m.label
        assert m.help, f"{m.label} has no explanation"
    assert "top-three" in metric(at, "Got top three").help


def test_eligibility_and_compare_tables_fit(demo_run):
    at = open_app(demo_run, "eligibility")
    assert_fits(at, "el_worker_table")
    assert_fits(at, "el_line_table")
    assert "Why" in visible_widths(at, "el_worker_table")
    assert "Reason code" not in visible_widths(at, "el_worker_table")

    at.switch_page("../pages/scenario.py").run()
    for name, alpha in (("Low voice", 10), ("High voice", 90)):
        at.text_input(key="sc_name").input(name).run()
        at.slider(key="sc_alpha").set_value(alpha).run()
        solve_now(at)
        at.button(key="sc_save").click().run()
    at.switch_page("../pages/compare.py").run()
    assert not at.exception
    assert_fits(at, "cmp_moves")


def test_the_sidebar_names_the_run_in_a_short_label_with_details_below(import_run):
    run_id = import_run(name="2027 PGY1 intake (demo)")
    at = open_app(run_id)
    box = at.sidebar.selectbox(key="sidebar_run")
    assert box.value == run_id
    shown = [o for o in box.options if o.startswith("2027 PGY1 intake (demo)")]
    assert shown == ["2027 PGY1 intake (demo)"]  # no worker count squeezed into the picker
    assert len(shown[0]) + len(" · published") <= 36  # what a 340 px sidebar shows whole
    captions = [c.value for c in at.sidebar.caption]
    assert any(c.endswith("140 workers · 60 job lines · not published yet") for c in captions)


def test_the_runs_table_fits_with_current_and_published_in_view(demo_run):
    # At 1400 px the last columns, "Published" and "Current", were cut off at the right.
    at = new_app().run()
    assert not at.exception
    widths = visible_widths(at, "runs_table")
    unset = [c for c, w in widths.items() if not isinstance(w, int)]
    assert not unset, f"columns sized by their content: {unset}"
    assert sum(widths.values()) + ROW_PICKER <= CONTENT, widths
    assert list(widths)[:4] == ["Run", "Run id", "Current", "Published"]
