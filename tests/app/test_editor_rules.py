"""The scenario editor's business-rule tables: links, quotas, priority tiers, previous allocation."""

from __future__ import annotations

import editor
import pandas as pd

from allocator.scenario import apply
from tests.helpers.named_runs import L, W, prefs, snap


def run():
    lines = L(("n1", 1), ("n2", 1), ("s1", 2), ("x1", 1))
    for line, site in zip(lines, ("North", "North", "South", None), strict=True):
        if site:
            line["site"] = site
    ws = W("w1", "w2", "w3", "w4", tags={"w3": ["ed"]})
    ws[0]["priority"] = 1
    return snap(
        ws, lines,
        worker_preferences=prefs(w1={"n1": 1, "s1": 2}, w2={"s1": 1, "n2": 2}, w3={"n1": 1}, w4={"x1": 1}),
        linked_workers=[{"id": "couple-1", "worker_ids": ["w1", "w2"]}],
        quotas=[{"id": "north-min", "sites": ["North"], "min_workers": 1}],
        previous_allocations=[{"worker_id": "w4", "job_line_id": "x1"}],
    )


def frames(r, overrides=None):
    return editor.frames_from_overrides(r, overrides or {})


def overrides(r, f):
    return editor.overrides_from_frames(r, *(f[t] for t in editor.TABLES))


def test_the_tables_start_as_the_run_has_them_and_add_nothing():
    r = run()
    f = frames(r)
    assert f["links"].to_dict("records") == [
        {"Link id": "couple-1", "Worker 1": "w1", "Worker 2": "w2", "Worker 3": None, "Worker 4": None}]
    (q,) = f["quotas"].to_dict("records")
    assert (q["Quota id"], q["Sites"], q["Job lines"], q["At least"]) == ("north-min", ["North"], [], "1")
    assert f["tiers"]["Priority tier"].tolist()[0] == "1" and f["tiers"]["Priority tier"].isna().sum() == 3
    assert f["previous"].to_dict("records") == [{"Worker": "w4", "Job line": "x1"}]
    assert list(f["lines"]["Site"]) == ["North", "North", "South", editor.OWN_SITE]
    assert overrides(r, f) == ({}, [])


def test_edited_tables_replace_the_runs_rules_and_round_trip():
    r = run()
    f = frames(r)
    f["links"] = editor.apply_delta(f["links"], {"edited_rows": {0: {"Worker 2": "w3"}}, "added_rows": [],
                                                 "deleted_rows": []})
    f["quotas"] = editor.apply_delta(f["quotas"], {"edited_rows": {}, "deleted_rows": [], "added_rows": [
        {"Quota id": "ed-cap", "Job lines": ["s1", "x1"], "Only workers with tag": "ed", "At most": 1}]})
    f["tiers"] = editor.set_tier(f["tiers"], ["w2", "w3"], 2)
    f["previous"] = editor.pairs_frame([])
    ov, errs = overrides(r, f)
    assert errs == []
    assert ov["linked_workers"] == [{"id": "couple-1", "worker_ids": ["w1", "w3"]}]
    assert ov["quotas"] == [
        {"id": "north-min", "sites": ["North"], "min_workers": 1},
        {"id": "ed-cap", "job_line_ids": ["s1", "x1"], "qualification_id": "ed", "min_workers": 0, "max_workers": 1},
    ]
    assert ov["priorities"] == [{"worker_id": "w2", "priority": 2}, {"worker_id": "w3", "priority": 2}]
    assert ov["previous_allocations"] == []
    out = apply(r, {}, ov)  # what the editor produces is what the scenario applies
    assert [q.id for q in out.quotas] == ["north-min", "ed-cap"] and out.previous_allocations == []
    # Opened again from the saved overrides: the same tables, the same overrides.
    again = frames(r, ov)
    assert overrides(r, again) == (ov, [])
    # Back to the run's own tier for w2 and w3: no priorities override.
    f["tiers"] = editor.set_tier(f["tiers"], ["w2", "w3"], None)
    assert "priorities" not in overrides(r, f)[0]


def test_bad_rows_are_named_with_what_to_do():
    r = run()
    f = frames(r)
    f["links"] = editor.apply_delta(f["links"], {"edited_rows": {}, "deleted_rows": [], "added_rows": [
        {"Link id": "solo", "Worker 1": "w3"}, {"Worker 1": "w3", "Worker 2": "w4"}]})
    f["quotas"] = editor.apply_delta(f["quotas"], {"edited_rows": {0: {"Job lines": ["n1"]}}, "deleted_rows": [],
                                                   "added_rows": [{"Quota id": "q2", "Sites": ["South"],
                                                                   "At least": 1.5},
                                                                  {"Quota id": "q3", "Sites": ["South"]}]})
    f["tiers"] = editor.apply_delta(f["tiers"], {"edited_rows": {1: {"Priority tier": 0}, 2: {"Priority tier": 1.5}},
                                                 "deleted_rows": [], "added_rows": []})
    _, errs = overrides(r, f)
    assert errs == [
        "Linked workers, row 2 (solo): choose at least 2 workers (2 to 4 work on one site together)",
        "Linked workers, row 3: give the link a name (for example couple-3)",
        "Quotas, row 1 (north-min): choose either sites or job lines (one of the two, not both)",
        "Quotas, row 2 (q2): at least must be a whole number, 0 or more (you typed 1.5)",
        "Quotas, row 3 (q3): give at least or at most (or both)",
        "Priority tiers, row 2 (w2): the tier must be a whole number, 1 or more (1 is placed first), "
        "or blank for none (you typed 0)",
        "Priority tiers, row 3 (w3): the tier must be a whole number, 1 or more (1 is placed first), "
        "or blank for none (you typed 1.5)",
    ]


def test_a_check_before_solving_names_a_link_the_run_cannot_hold():
    r = run()
    f = frames(r)
    f["links"] = editor.apply_delta(f["links"], {"edited_rows": {}, "deleted_rows": [], "added_rows": [
        {"Link id": "pair-2", "Worker 1": "w2", "Worker 2": "w4"}]})
    _, _, problems, scenario = editor.check_scenario(r, editor.inputs_from_settings({}), f)
    assert scenario is None
    assert problems == ["Linked workers, row 2 ('pair-2'): worker 'w2' is already in link 'couple-1' "
                        "(row 1); a worker is in at most one link"]


def test_fewest_moves_is_a_setting_only_when_on():
    inputs = editor.inputs_from_settings({})
    assert inputs["moves"] is False and "fewest_moves" not in editor.settings_from_inputs(inputs)[0]
    on = editor.settings_from_inputs({**inputs, "moves": True})[0]
    assert on["fewest_moves"] is True
    assert editor.inputs_from_settings(on)["moves"] is True


def test_the_rules_in_force_are_summed_up_beside_solve():
    r = run()
    assert editor.rules_summary(apply(r, {"fewest_moves": True}, {})) == (
        "Also in this scenario: 1 linked group of workers; 1 quota; priority tiers (tier 1: 1 worker, no tier, "
        "placed last: 3); fewest moves from a previous allocation of 1 worker (see Couples, quotas, priority "
        "tiers and fewest moves below).")
    # Two tiers: each with its own count, and nobody left over.
    two = apply(r, {}, {"priorities": [{"worker_id": w, "priority": 2} for w in ("w2", "w3")]
                        + [{"worker_id": "w4", "priority": 1}]})
    assert "priority tiers (tier 1: 2 workers, tier 2: 2 workers)" in editor.rules_summary(two)
    bare = apply(r, {}, {"linked_workers": [], "quotas": [], "priorities": [{"worker_id": "w1", "priority": None}]})
    assert editor.rules_summary(bare) is None


def test_the_published_allocation_leaves_out_who_and_what_the_run_no_longer_has():
    from allocator.result import Allocation

    r = run()
    published = [Allocation("w1", "n1"), Allocation("w9", "s1"), Allocation("w2", "gone-line")]
    rows, notes = editor.published_rows(r, published)
    assert rows == [{"worker_id": "w1", "job_line_id": "n1"}]
    assert notes == [
        "1 worker of the publication is no longer in the run and left out: w9",
        "1 worker was published to a job line the run no longer has and is left out: gone-line",
    ]


def test_a_draft_naming_a_withdrawn_worker_says_what_to_do():
    """The draft was filled (a couple, the published allocation) before w2 was withdrawn on Runs."""
    before = run()
    f = frames(before, {"linked_workers": [{"id": "couple-1", "worker_ids": ["w1", "w2"]}],
                        "previous_allocations": [{"worker_id": "w4", "job_line_id": "x1"},
                                                 {"worker_id": "w2", "job_line_id": "s1"}]})
    data = before.model_dump(mode="json", exclude_none=True)
    data["workers"] = [w for w in data["workers"] if w["id"] != "w2"]
    data["worker_preferences"] = [p for p in data["worker_preferences"] if p["worker_id"] != "w2"]
    data["linked_workers"] = []
    after = type(before).parse(data)
    _, _, problems, scenario = editor.check_scenario(after, editor.inputs_from_settings({}), f)
    assert scenario is None
    assert sorted(problems) == [
        "Linked workers, row 1 ('couple-1'): worker 'w2' is not a worker of this run (withdrawn, or never in it): "
        f"press *{editor.GONE_BUTTON}* above, or "
        "take them out of the link (a link needs 2 workers: with one left, delete the row).",
        "Previous allocation, row 2: worker 'w2' is not a worker of this run (withdrawn, or never in it): "
        f"press *{editor.GONE_BUTTON}* above, or "
        "press Use the published allocation again (it leaves out who has left), or delete the row.",
    ]


def test_tier_counts_add_up_to_the_runs_workers_after_a_withdrawal():
    before = run()  # w1 is tier 1
    f = frames(before)
    f["tiers"] = editor.set_tier(f["tiers"], ["w2", "w3"], 2)
    assert editor.tier_counts(f["tiers"], before) == ("Now: tier 1: 1, tier 2: 2; without a tier: 1.", [])
    data = before.model_dump(mode="json", exclude_none=True)
    data["workers"] = [w for w in data["workers"] if w["id"] != "w2"]
    data["worker_preferences"] = [p for p in data["worker_preferences"] if p["worker_id"] != "w2"]
    data["linked_workers"] = []
    after = type(before).parse(data)
    caption, gone = editor.tier_counts(f["tiers"], after)
    assert (caption, gone) == ("Now: tier 1: 1, tier 2: 1; without a tier: 1.", ["w2"])
    assert editor.gone_from_tiers(gone).startswith("w2: no longer in the run")
    # The solve ignores the withdrawn worker's row too: only w3's tier is set.
    assert overrides(after, f)[0]["priorities"] == [{"worker_id": "w3", "priority": 2}]


def test_numbers_past_the_limits_are_named_in_the_tables_words():
    # Past the snapshot's limits the engine's own check would say "job_lines[0] (id 'n1'):
    # max_n_workers: ..." or "max_workers: ...": the page names the row and the column instead.
    r = run()
    f = frames(r)
    f["lines"] = editor.apply_delta(f["lines"], {"edited_rows": {0: {"Places": 5_000_000}}, "added_rows": [],
                                                 "deleted_rows": []})
    f["quotas"] = editor.apply_delta(f["quotas"], {"edited_rows": {0: {"At most": 99_999_999_999.0}},
                                                   "added_rows": [], "deleted_rows": []})
    f["tiers"] = editor.apply_delta(f["tiers"], {"edited_rows": {1: {"Priority tier": 10_000_000}},
                                                 "added_rows": [], "deleted_rows": []})
    f["weights"] = pd.DataFrame([{"Worker": "w1", "Job line": None, "Value": 1e12}], columns=f["weights"].columns)
    settings = editor.settings_from_inputs(editor.inputs_from_settings(r.settings.model_dump()))[0]
    assert settings is not None
    _, _, errs, scenario = editor.check_scenario(r, editor.inputs_from_settings(settings), f)
    assert scenario is None
    assert errs == [
        "Places and must be filled, row 1 (n1): places must be a whole number up to 1,000,000 (you typed 5000000)",
        "Organisation priority, row 1: the value must be between -1,000,000,000 and 1,000,000,000 "
        "(you typed 1000000000000)",
        "Quotas, row 1 (north-min): at most must be a whole number up to 1,000,000,000 (you typed 99999999999)",
        "Priority tiers, row 2 (w2): the tier must be a whole number up to 1,000,000 (you typed 10000000)",
    ]


def test_a_huge_number_is_shown_short_not_as_three_hundred_digits():
    r = run()
    f = frames(r)
    f["quotas"] = editor.apply_delta(f["quotas"], {"edited_rows": {0: {"At least": 1e300}},
                                                   "added_rows": [], "deleted_rows": []})
    _, errs = overrides(r, f)
    assert errs == ["Quotas, row 1 (north-min): at least must be a whole number up to 1,000,000,000 "
                    "(you typed 1e+300)"]


def test_the_checks_name_workers_and_lines_as_the_tables_show_them():
    # The engine's check said "worker 'w1' is already in link 'couple-1'" and "(MISSING_INCLUDED_TAG:
    # lacks ...)"; the tables show "Ana Ruiz (w1)" and the reason in words.
    lines = L(("n1", 1), ("n2", 1), ("s1", 2), ("x1", 1))
    lines[3]["name"] = "Line X"
    ws = W("w1", "w2", "w3", "w4")
    for w, name in zip(ws, ("Ana Ruiz", "Ben Ode", "Cy Lam", "Di Oak"), strict=True):
        w["name"] = name
    r = snap(ws, lines, worker_preferences=prefs(w1={"n1": 1}, w2={"s1": 1}, w3={"n1": 1}, w4={"x1": 1}),
             linked_workers=[{"id": "couple-1", "worker_ids": ["w1", "w2"]}],
             eligibility=[{"job_line_id": "x1", "included_qualification_ids": ["ed"]}])
    f = frames(r)
    f["links"] = editor.apply_delta(f["links"], {"edited_rows": {}, "deleted_rows": [], "added_rows": [
        {"Link id": "couple-2", "Worker 1": "w1", "Worker 2": "w3"}]})
    settings = editor.inputs_from_settings(r.settings.model_dump())
    _, _, errs, scenario = editor.check_scenario(r, settings, f)
    assert scenario is None
    assert errs == ["Linked workers, row 2 ('couple-2'): worker 'Ana Ruiz' (w1) is already in link 'couple-1' "
                    "(row 1); a worker is in at most one link"]
    f = frames(r)
    f["pins"] = editor.pins_frame([{"worker_id": "w4", "job_line_id": "x1"}])
    _, _, errs, scenario = editor.check_scenario(r, settings, f)
    assert scenario is None
    (pin,) = errs
    assert pin.startswith("Pins, row 1: worker 'Di Oak' (w4) cannot be pinned to job line 'Line X' (x1)"), pin
    assert "MISSING_INCLUDED_TAG" not in pin and pin.endswith("(lacks every tag the line requires ('ed'))"), pin


def test_link_changes_name_each_change_from_the_runs_couples():
    r = run()
    f = frames(r)
    assert editor.link_changes(r, f["links"]) == []  # as the run has them
    # What the browser's grid did on Enter after a click on the empty last row: the new row
    # (named couple-2, no workers) and the name typed next over the first couple.
    typed = editor.apply_delta(f["links"], {"edited_rows": {0: {"Link id": "abc"}},
                                            "added_rows": [{"Link id": "couple-2"}], "deleted_rows": []})
    assert editor.link_changes(r, typed) == ["couple-1 renamed 'abc' (same workers)", "'couple-2' added: no workers"]
    moved = editor.apply_delta(f["links"], {"edited_rows": {0: {"Worker 2": "w3"}}, "added_rows": [],
                                            "deleted_rows": []})
    assert editor.link_changes(r, moved) == ["couple-1: now w1, w3 (the run has w1, w2)"]
    gone = editor.apply_delta(f["links"], {"edited_rows": {}, "added_rows": [], "deleted_rows": [0]})
    assert editor.link_changes(r, gone) == ["couple-1 removed"]
