"""Business rules in AppTest: a scenario edits a link and a quota, solves, and Results shows them.

Table edits are made as the browser makes them (the data editor's edit state assigned before a
run). The run is built here (a small one of the test's own), the rules added in the scenario.
"""

from __future__ import annotations

import streamlit as st

from tests.app.conftest import open_app, solve_now
from tests.app.test_draft import editor_table, edits, leave_and_come_back, sidebar_text
from tests.helpers.dbtools import small_snapshot

LINK = {"Link id": "couple-1", "Worker 1": "w3", "Worker 2": "w4"}
QUOTA = {"Quota id": "j2-min", "Job lines": ["j2"], "At least": 2}


def frame(at, columns: set[str]):
    (df,) = [d.value for d in at.dataframe if columns <= set(d.value.columns)]
    return df


def test_a_link_and_a_quota_edited_in_a_scenario_show_on_results(import_run, db_store):
    run_id = import_run(small_snapshot(6, 3))
    at = open_app(run_id, "scenario")
    assert editor_table(at, "sc_links").empty and editor_table(at, "sc_quotas").empty  # the run has none
    at.session_state["sc_links"] = edits(added=[LINK])
    at.session_state["sc_quotas"] = edits(added=[QUOTA])
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Unsaved changes" in sidebar_text(at)

    # Leave the page and come back: both edits are kept, and Solve is still possible.
    leave_and_come_back(at)
    assert editor_table(at, "sc_links").to_dict("records") == [{**LINK, "Worker 3": None, "Worker 4": None}]
    (q,) = editor_table(at, "sc_quotas").to_dict("records")
    assert (q["Quota id"], list(q["Job lines"]), q["At least"]) == ("j2-min", ["j2"], "2")
    assert not at.button(key="sc_solve").disabled

    res = solve_now(at)
    assert res["overrides"]["linked_workers"] == [{"id": "couple-1", "worker_ids": ["w3", "w4"]}]
    assert res["overrides"]["quotas"] == [{"id": "j2-min", "job_line_ids": ["j2"], "min_workers": 2}]
    got = {a["worker_id"]: a["job_line_id"] for a in res["result"]["allocations"]}
    assert got["w3"] == got["w4"]  # no sites in this run: a link shares one line

    at.switch_page("../pages/results.py").run()
    assert not at.exception, at.exception
    headers = [h.value for h in at.header]
    assert "Linked workers" in headers and "Quotas" in headers
    assert "Priority tiers" not in headers and "Moves from the previous allocation" not in headers  # not used
    links = frame(at, {"Link", "Worker", "Site"})
    assert links.to_dict("records") == [{
        "Link": "couple-1", "Worker": f"Worker {n} (w{n})",
        "Job line": f"Line {got['w3'][1:]}",  # no sites here: they share one line
        "Site": "its own site",
    } for n in (3, 4)]
    quotas = frame(at, {"Quota", "Workers counted", "Met"})
    # No quota counts only workers with a tag: the empty column is not shown.
    (shown,) = [d for d in at.dataframe if {"Quota", "Workers counted"} <= set(d.value.columns)]
    assert "Only workers with tag" not in shown.proto.column_order and "Counts" in shown.proto.column_order
    (row,) = quotas.to_dict("records")
    count = sum(1 for j in got.values() if j == "j2")
    assert (row["Quota"], row["Counts"], row["Workers counted"], row["At least"], row["Met"]) == (
        "j2-min", "Line 2", count, 2, "met")
    assert count >= 2
    assert any("Every quota is met" in s.value for s in at.success)

    # Saved with the scenario, and back on the Scenario page the edits are still there.
    at.switch_page("../pages/scenario.py").run()
    assert any("1 linked group of workers; 1 quota" in c.value for c in at.caption)  # beside Solve
    at.button(key="sc_save").click().run()
    assert not at.exception
    assert editor_table(at, "sc_links")["Link id"].tolist() == ["couple-1"]
    (saved,) = db_store.list_scenarios(run_id)
    assert saved.overrides["linked_workers"] == res["overrides"]["linked_workers"]
    assert saved.overrides["quotas"] == res["overrides"]["quotas"]
    assert saved.result["metrics"]["quotas"][0]["met"] is True


def test_a_bad_quota_is_named_and_solve_waits_for_the_fix(import_run):
    at = open_app(import_run(small_snapshot(4, 3)), "scenario")
    at.session_state["sc_quotas"] = edits(added=[{"Quota id": "both", "Job lines": ["j1"], "At least": 3,
                                                  "At most": 1}])
    at.run()
    assert not at.exception
    text = " ".join(e.value for e in at.error)
    assert "Quotas, row 1 ('both'): the minimum (3) is above the maximum (1)" in text
    assert at.button(key="sc_solve").disabled


def test_a_tier_of_0_typed_beside_set_tier_is_refused_not_set_as_1(import_run):
    # The box had min_value=1: it kept 1 when 0 was typed, and Set tier gave the workers tier 1.
    run_id = import_run(small_snapshot(4, 3))
    at = open_app(run_id, "scenario")
    before = editor_table(at, "sc_tiers")["Priority tier"].copy()
    at.multiselect(key="sc_tier_who").set_value(["w2"]).run()
    at.number_input(key="sc_tier_value").set_value(0).run()
    at.button(key="sc_tier_set").click().run()
    assert not at.exception
    assert any("Tier: must be a whole number, 1 or more" in w.value and "(you typed 0)" in w.value
               and "Nothing was changed" in w.value for w in at.warning), [w.value for w in at.warning]
    assert editor_table(at, "sc_tiers")["Priority tier"].equals(before)
    assert at.multiselect(key="sc_tier_who").value == ["w2"]  # still chosen, to set again


def test_tiers_set_in_bulk_and_fewest_moves_from_the_published_allocation(import_run, db_store):
    run_id = import_run(small_snapshot(4, 3))
    at = open_app(run_id, "scenario")
    assert at.button(key="sc_use_published").disabled  # nothing published yet
    at.multiselect(key="sc_tier_who").set_value(["w2", "w4"]).run()
    at.number_input(key="sc_tier_value").set_value(2).run()
    at.button(key="sc_tier_set").click().run()
    assert not at.exception
    tiers = editor_table(at, "sc_tiers").set_index("Worker id")["Priority tier"]
    assert tiers["w2"] == "2" and tiers["w4"] == "2" and tiers[["w1", "w3"]].isna().all()
    leave_and_come_back(at)
    assert editor_table(at, "sc_tiers").set_index("Worker id")["Priority tier"].equals(tiers)
    first = solve_now(at)
    assert first["overrides"]["priorities"] == [{"worker_id": "w2", "priority": 2}, {"worker_id": "w4", "priority": 2}]
    at.switch_page("../pages/results.py").run()
    assert "Priority tiers" in [h.value for h in at.header]
    tier_rows = frame(at, {"Tier", "Workers", "First choice"}).to_dict("records")
    assert [(r["Tier"], r["Workers"]) for r in tier_rows] == [("Tier 2", 2), ("No tier", 2)]

    # Publish it, then one click makes it the previous allocation and turns fewest moves on.
    at.switch_page("../pages/scenario.py").run()
    at.button(key="sc_save").click().run()
    saved = [sc for sc in db_store.list_scenarios(run_id) if sc.result][0]
    db_store.publish(run_id, saved.id, reason=None, supersede=False, published_by="test")
    st.cache_data.clear()  # published elsewhere: read again, as after the cache's 30 s
    at.switch_page("../pages/scenario.py").run()
    at.button(key="sc_use_published").click().run()
    assert not at.exception
    assert at.toggle(key="sc_moves").value is True
    prev = editor_table(at, "sc_previous")
    published = {a["worker_id"]: a["job_line_id"] for a in first["result"]["allocations"]}
    assert dict(zip(prev["Worker"], prev["Job line"], strict=True)) == published
    second = solve_now(at)
    assert second["settings"]["fewest_moves"] is True
    assert second["result"]["metrics"]["moves_count"] == 0 and second["result"]["metrics"]["moves"] == []
    at.switch_page("../pages/results.py").run()
    assert "Moves from the previous allocation" in [h.value for h in at.header]
    # Compare: the saved scenario and this solve side by side, the rules' outcomes among them.
    at.switch_page("../pages/compare.py").run()
    assert not at.exception, at.exception
    assert "Couples, quotas, tiers and sites" in [h.value for h in at.header]
    (rules,) = [d.value for d in at.dataframe
                if list(d.value.columns)[:1] == ["Outcome"] and "Rank change" not in d.value.columns]
    moved = rules[rules["Outcome"] == "Workers moved from the previous allocation"]
    assert "0" in moved.iloc[0].tolist()  # this solve kept everyone where they were published


def test_the_scenario_tables_leave_blank_cells_blank(import_run):
    """A link of two has no third worker, a quota no maximum, most workers no tier: blank, never 'None'."""
    from allocator.demo import demo_snapshot

    at = open_app(import_run(demo_snapshot()), "scenario")
    keys = ("sc_lines", "sc_pins", "sc_forbids", "sc_weights", "sc_links", "sc_quotas", "sc_tiers", "sc_previous",
            "sc_lifted_pins", "sc_lifted_forbids")
    editors = [d for d in at.dataframe if (d.key or "").startswith(keys)]
    assert {d.key for d in editors} >= {"sc_links", "sc_quotas", "sc_tiers", "sc_lines"}
    # The demo's tables do have blank cells (a couple of two, a quota without a maximum, no tier).
    assert editor_table(at, "sc_links")["Worker 3"].isna().all()
    assert editor_table(at, "sc_tiers")["Priority tier"].isna().any()
    for d in editors:
        assert d.proto.HasField("placeholder") and d.proto.placeholder == "", d.key


def _before(block, key: str, out: list[str]) -> bool:
    """The elements drawn above the editor ``key`` (in page order) into ``out``; True once found.

    A block of fixed height counts as one element: what it holds cannot move what follows.
    """
    for child in block.children.values():
        if (getattr(child, "key", None) or "").startswith(key):
            return True
        proto = getattr(child, "proto", None)
        fixed = (proto is not None and "height_config" in proto.DESCRIPTOR.fields_by_name
                 and proto.HasField("height_config") and proto.height_config.pixel_height)
        if fixed or not getattr(child, "children", None):
            out.append(f"{child.type}:{getattr(child, 'key', None)}")
        elif _before(child, key, out):
            return True
    return False


def above(at, key: str) -> list[str]:
    out: list[str] = []
    assert _before(at.main, key, out), f"no editor {key} on the page"
    return out


def test_adding_a_couple_row_keeps_the_grid_where_it_was_and_names_the_problem_under_it(import_run):
    # Walked in the browser: typing a new link's name into the couples grid showed "choose at
    # least 2 workers" in a box at the top of the page and the rules summary went, so the grid
    # moved under the planner's next click (screenshot w2_links_after_full.png).
    at = open_app(import_run(small_snapshot(6, 3)), "scenario")
    at.session_state["sc_links"] = edits(added=[LINK])
    at.run()
    assert not at.exception
    before = above(at, "sc_links")

    at.session_state["sc_links"] = edits(added=[LINK, {"Link id": "couple-2"}])
    at.run()
    assert not at.exception
    assert above(at, "sc_links") == before
    text = " ".join(e.value for e in at.error)
    assert "Linked workers, row 2 (couple-2): choose at least 2 workers" in text
    assert "cannot be solved as it stands" not in text
    assert at.button(key="sc_solve").disabled
    status = " ".join(c.value for c in at.get("caption"))
    assert "1 problem to fix, shown under the table below (Linked workers (couples))" in status

    # The draft keeps the unfinished row while the planner looks elsewhere.
    leave_and_come_back(at)
    links = editor_table(at, "sc_links")
    assert list(links["Link id"]) == ["couple-1", "couple-2"]
    assert "Linked workers, row 2 (couple-2)" in " ".join(e.value for e in at.error)


def test_problems_of_each_table_are_told_apart_from_the_rest():
    from editor import problems_pointer, split_problems

    general, by_table = split_problems([
        "Scenario name: fill it in",
        "Quotas, row 2 ('q'): give at least or at most (or both)",
        "Linked workers, row 1: give the link a name (for example couple-1)",
        "Job line 'A' (j1) must be filled but has 0 places: give it places, or untick must be filled.",
        "Quotas, row 3: give the quota a name (for example rural-minimum)",
    ])
    assert general == ["Scenario name: fill it in"]
    assert by_table == {"quotas": ["Quotas, row 2 ('q'): give at least or at most (or both)",
                                   "Quotas, row 3: give the quota a name (for example rural-minimum)"],
                        "links": ["Linked workers, row 1: give the link a name (for example couple-1)"],
                        "lines": ["Job line 'A' (j1) must be filled but has 0 places: give it places, or untick "
                                  "must be filled."]}
    assert problems_pointer(by_table) == (
        "Cannot be solved yet: 4 problems to fix, shown under the tables below "
        "(Places and must be filled, Linked workers (couples), Quotas).")
    assert problems_pointer({}) is None


def test_an_emptied_tier_box_or_a_fraction_beside_set_tier_changes_nothing(import_run):
    # Walked in the browser: the Tier box was a whole-number box, so 2.5 became 2 and 1e12 went
    # back to 1 as they were typed, without a word; an emptied box read as "no tier".
    from streamlit.proto.NumberInput_pb2 import NumberInput

    at = open_app(import_run(small_snapshot(4, 3)), "scenario")
    assert at.number_input(key="sc_tier_value").proto.data_type == NumberInput.FLOAT
    at.multiselect(key="sc_tier_who").set_value(["w2"]).run()
    at.number_input(key="sc_tier_value").set_value(2.0).run()
    at.button(key="sc_tier_set").click().run()
    tiers = editor_table(at, "sc_tiers").set_index("Worker id")["Priority tier"].copy()
    assert tiers["w2"] == "2"

    for typed, said in ((None, "Tier: fill it in"), (2.5, "(you typed 2.5)"), (1e12, "up to")):
        at.multiselect(key="sc_tier_who").set_value(["w2"]).run()
        at.number_input(key="sc_tier_value").set_value(typed).run()
        at.button(key="sc_tier_set").click().run()
        assert not at.exception
        assert any(said in w.value and "Nothing was changed" in w.value for w in at.warning), (
            typed, [w.value for w in at.warning])
        assert editor_table(at, "sc_tiers").set_index("Worker id")["Priority tier"].equals(tiers)


def test_an_emptied_number_box_of_the_rules_asks_for_a_value_not_0(import_run):
    # An emptied "How much low choices hurt" or "Time limit" box became 0: "(you typed 0)".
    at = open_app(import_run(small_snapshot(4, 3)), "scenario")
    for key, label in (("sc_power", "How much low choices hurt"), ("sc_time", "Time limit (seconds)")):
        kept = at.number_input(key=key).value
        at.number_input(key=key).set_value(None).run()
        assert not at.exception
        text = " ".join(e.value for e in at.error)
        assert f"{label}: fill it in" in text and "you typed 0" not in text
        assert at.button(key="sc_solve").disabled
        leave_and_come_back(at)  # the blank is kept, not replaced by the old value
        assert at.number_input(key=key).value is None
        at.number_input(key=key).set_value(kept).run()
        assert not [e.value for e in at.error]


def test_a_couple_renamed_in_the_grid_is_said_under_it(demo_run):
    # Walked in the browser: Enter pressed just after clicking the couples grid's empty last row
    # moves the grid's cursor to the first row (Streamlit's grid, reproduced without our code),
    # and the name typed next renames the first couple. The page cannot stop the grid; it says
    # under the grid what the table now changes from the run's couples, so the rename is seen.
    at = open_app(demo_run, "scenario")
    assert not [c for c in at.caption if "Changed from the run's couples" in c.value]
    at.session_state["sc_links"] = edits({0: {"Link id": "abc"}}, added=[{"Link id": "couple-3"}])
    at.run()
    assert not at.exception
    (said,) = [c.value.replace("\\", "") for c in at.caption if "Changed from the run's couples" in c.value]
    assert "couple-1 renamed 'abc' (same workers)" in said and "'couple-3' added: no workers" in said
    leave_and_come_back(at)
    assert [c for c in at.caption if "couple-1 renamed 'abc'" in c.value]
