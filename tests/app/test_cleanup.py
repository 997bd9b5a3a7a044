"""One click takes out of a draft what names workers or job lines the run no longer has.

The draft is made on the run as it was (``before``); the run then loses worker w2 (withdrawn)
and, in some tests, job line x1 (``after``).
"""

from __future__ import annotations

import cleanup
import editor
import pandas as pd

from tests.helpers.named_runs import L, W, prefs, snap

NAMES = {"w1": "Dr A", "w2": "Dr B", "w3": "Dr C", "w4": "Dr D", "w5": "Dr E"}


def run(without_workers=(), without_lines=()):
    lines = [j for j in L(("n1", 2), ("n2", 2), ("s1", 2), ("x1", 2)) if j["id"] not in without_lines]
    for j in lines:
        j["name"] = f"Line {j['id']}"
        if j["id"] != "x1":
            j["site"] = "North" if j["id"].startswith("n") else "South"
    ws = [w for w in W(*NAMES) if w["id"] not in without_workers]
    for w in ws:
        w["name"] = NAMES[w["id"]]
    ranks = {w: {"n1": 1, "s1": 2} for w in NAMES if w not in without_workers}
    return snap(ws, lines, worker_preferences=[p for p in prefs(**ranks) if p["job_line_id"] not in without_lines])


BEFORE = run()
AFTER_W2 = run(without_workers=("w2",))
AFTER_W2_X1 = run(without_workers=("w2",), without_lines=("x1",))


def draft(overrides):
    """The draft's tables, made before the change, as the page keeps them."""
    return editor.frames_from_overrides(BEFORE, overrides)


def records(df):
    return editor.frame_records(df)


def test_nothing_is_removed_when_everything_the_draft_names_is_in_the_run():
    f = draft({
        "linked_workers": [{"id": "couple-1", "worker_ids": ["w1", "w3"]}],
        "quotas": [{"id": "north", "job_line_ids": ["n1", "n2"], "min_workers": 1}],
        "priorities": [{"worker_id": "w1", "priority": 1}],
        "pins": [{"worker_id": "w4", "job_line_id": "n1"}],
        "forbids": [{"worker_id": "w5", "job_line_id": "s1"}],
        "weightings": [{"worker_id": "w3", "job_line_id": None, "value": 2.0}],
        "previous_allocations": [{"worker_id": "w1", "job_line_id": "n1"}],
    })
    tables, removed = cleanup.remove_gone(BEFORE, f)
    assert removed == []
    assert all(tables[t] is f[t] for t in editor.TABLES)
    assert cleanup.found_title(BEFORE, f) is None


def test_a_withdrawn_worker_leaves_their_couple_and_a_couple_left_with_one_is_removed():
    f = draft({"linked_workers": [
        {"id": "couple-1", "worker_ids": ["w1", "w2"]},
        {"id": "trio", "worker_ids": ["w2", "w3", "w4"]},
        {"id": "couple-2", "worker_ids": ["w3", "w5"]},
    ]})
    tables, removed = cleanup.remove_gone(AFTER_W2, f)
    assert tables["links"].to_dict("records") == [
        {"Link id": "trio", "Worker 1": "w3", "Worker 2": "w4", "Worker 3": None, "Worker 4": None},
        {"Link id": "couple-2", "Worker 1": "w3", "Worker 2": "w5", "Worker 3": None, "Worker 4": None},
    ]
    assert removed == [
        "Dr B (w2) taken out of the couple 'couple-1': it had only Dr A (w1) left, so the couple was removed "
        "(a link needs 2 workers).",
        "Dr B (w2) taken out of the linked group 'trio', which keeps Dr C (w3) and Dr D (w4).",
        # The tiers table lists every worker: their row goes too, said even without a tier.
        "Priority tiers: the row of Dr B (w2) (no tier); they are no longer in the run.",
    ]
    # The cleaned links are what the scenario solves with: no problem left to fix by hand.
    ov, errs = editor.overrides_from_frames(AFTER_W2, *(tables[t] for t in editor.TABLES))
    assert errs == [] and ov["linked_workers"] == [
        {"id": "trio", "worker_ids": ["w3", "w4"]}, {"id": "couple-2", "worker_ids": ["w3", "w5"]}]


def test_the_withdrawn_workers_tier_pin_forbid_priority_and_previous_place_rows_go():
    f = draft({
        "priorities": [{"worker_id": "w2", "priority": 2}, {"worker_id": "w3", "priority": 1}],
        "pins": [{"worker_id": "w2", "job_line_id": "n1", "reason": "asked"},
                 {"worker_id": "w4", "job_line_id": "s1"}],
        "forbids": [{"worker_id": "w2", "job_line_id": "s1"}],
        "weightings": [{"worker_id": "w2", "job_line_id": None, "value": -3.0},
                       {"worker_id": "w5", "job_line_id": "n2", "value": 1.5}],
        "previous_allocations": [{"worker_id": "w1", "job_line_id": "n1"},
                                 {"worker_id": "w2", "job_line_id": "s1"}],
    })
    tables, removed = cleanup.remove_gone(AFTER_W2, f)
    assert removed == [
        "Priority tiers: the row of Dr B (w2) (tier 2); they are no longer in the run.",
        "Pin: Dr B (w2) on Line n1 (n1) (the worker is no longer in the run).",
        "Forbid: Dr B (w2) on Line s1 (s1) (the worker is no longer in the run).",
        "Organisation priority: Dr B (w2) on every job line (value -3); the worker is no longer in the run.",
        "Previous allocation: Dr B (w2) on Line s1 (s1) (the worker is no longer in the run).",
    ]
    assert tables["tiers"]["Worker id"].tolist() == ["w1", "w3", "w4", "w5"]
    assert records(tables["tiers"]) == [["w1", "Dr A", None], ["w3", "Dr C", "1"], ["w4", "Dr D", None],
                                        ["w5", "Dr E", None]]
    assert records(tables["pins"]) == [["w4", "s1", None]]
    assert tables["forbids"].empty and list(tables["forbids"].columns) == editor.PAIR_COLS
    assert records(tables["weights"]) == [["w5", "n2", "1.5"]]
    assert records(tables["previous"]) == [["w1", "n1"]]
    # Column types as the editors were seeded with them (tiers and values stay text cells).
    assert tables["tiers"].dtypes.to_dict() == f["tiers"].dtypes.to_dict()
    assert tables["weights"].dtypes.to_dict() == f["weights"].dtypes.to_dict()
    # Nothing else changed; the scenario is now one the page lets the planner solve.
    assert all(tables[t] is f[t] for t in ("lines", "links", "quotas", "lifted_pins", "lifted_forbids"))
    _, ov, problems, scenario = editor.check_scenario(AFTER_W2, editor.inputs_from_settings({}), tables)
    assert problems == [] and scenario is not None
    assert ov["priorities"] == [{"worker_id": "w3", "priority": 1}]
    assert ov["pins"] == [{"worker_id": "w4", "job_line_id": "s1"}]


def test_a_job_line_no_longer_in_the_run_leaves_the_quotas_and_a_quota_left_with_none_is_removed():
    f = draft({
        "quotas": [
            {"id": "mixed", "job_line_ids": ["x1", "n1"], "min_workers": 1},
            {"id": "only-x1", "job_line_ids": ["x1"], "max_workers": 1},
            {"id": "north", "sites": ["North"], "min_workers": 1},
        ],
        "pins": [{"worker_id": "w1", "job_line_id": "x1"}],
        "forbids": [{"worker_id": "w3", "job_line_id": "x1"}, {"worker_id": "w3", "job_line_id": "n2"}],
        "weightings": [{"worker_id": "w4", "job_line_id": "x1", "value": 1.0}],
        "previous_allocations": [{"worker_id": "w5", "job_line_id": "x1"}],
    })
    tables, removed = cleanup.remove_gone(AFTER_W2_X1, f)
    assert removed[:2] == [
        "Job line Line x1 (x1) taken out of the quota 'mixed', which still counts Line n1 (n1).",
        "Job line Line x1 (x1) taken out of the quota 'only-x1': it counted no other job line, so the quota "
        "was removed.",
    ]
    quotas = tables["quotas"].to_dict("records")
    assert [(q["Quota id"], list(q["Job lines"]), list(q["Sites"])) for q in quotas] == [
        ("mixed", ["n1"], []), ("north", [], ["North"])]
    assert tables["quotas"].dtypes.to_dict() == f["quotas"].dtypes.to_dict()
    assert "Pin: Dr A (w1) on Line x1 (x1) (the job line is no longer in the run)." in removed
    assert "Forbid: Dr C (w3) on Line x1 (x1) (the job line is no longer in the run)." in removed
    assert "Previous allocation: Dr E (w5) on Line x1 (x1) (the job line is no longer in the run)." in removed
    assert ("Organisation priority: Dr D (w4) on Line x1 (x1) (value 1); the job line is no longer in the run."
            in removed)
    assert ("Places and must be filled: the row of job line Line x1 (x1); it is no longer in the run."
            in removed)
    assert "Priority tiers: the row of Dr B (w2) (no tier); they are no longer in the run." in removed
    assert len(removed) == 8
    assert tables["pins"].empty and records(tables["forbids"]) == [["w3", "n2"]]
    assert tables["weights"].empty and tables["previous"].empty
    assert tables["lines"]["Job line id"].tolist() == ["n1", "n2", "s1"]
    _, ov, problems, _ = editor.check_scenario(AFTER_W2_X1, editor.inputs_from_settings({}), tables)
    assert problems == []
    assert ov["quotas"] == [{"id": "mixed", "job_line_ids": ["n1"], "min_workers": 1},
                            {"id": "north", "sites": ["North"], "min_workers": 1}]


def test_edits_not_yet_folded_in_are_cleaned_too_and_said_before_the_button():
    """A row the planner added after the withdrawal (still naming w2) goes as well."""
    f = draft({})
    f["pins"] = editor.apply_delta(f["pins"], {"edited_rows": {}, "deleted_rows": [],
                                               "added_rows": [{"Worker": "w2", "Job line": "n2"},
                                                              {"Worker": "w3", "Job line": None}]})
    title = cleanup.found_title(AFTER_W2, f)
    assert title.startswith("This draft still names the worker Dr B (w2), no longer in the run")
    assert "in 2 entries" in title and f"*{cleanup.BUTTON}*" in title
    tables, removed = cleanup.remove_gone(AFTER_W2, f)
    assert removed == ["Priority tiers: the row of Dr B (w2) (no tier); they are no longer in the run.",
                       "Pin: Dr B (w2) on Line n2 (n2) (the worker is no longer in the run)."]
    # A half-filled row is not a name of anyone gone: it stays, for the check to name.
    assert records(tables["pins"]) == [["w3", None, None]]
    assert cleanup.remove_gone(AFTER_W2, tables) == (tables, [])


def test_the_runs_own_pins_the_draft_listed_go_with_the_withdrawn_worker():
    before = snap(W("w1", "w2"), L(("j1", 1), ("j2", 1)), pins=[{"worker_id": "w2", "job_line_id": "j1"}],
                  forbids=[{"worker_id": "w1", "job_line_id": "j2"}])
    f = editor.frames_from_overrides(before, {"lifted_pins": [{"worker_id": "w2", "job_line_id": "j1"}]})
    after = snap(W("w1"), L(("j1", 1), ("j2", 1)), forbids=[{"worker_id": "w1", "job_line_id": "j2"}])
    tables, removed = cleanup.remove_gone(after, f)
    assert removed == ["Priority tiers: the row of w2 (no tier); they are no longer in the run.",
                       "Pin of the run: w2 on j1 (the worker is no longer in the run)."]
    assert tables["lifted_pins"].empty and tables["lifted_forbids"] is f["lifted_forbids"]
    assert isinstance(tables["lifted_pins"], pd.DataFrame)
    assert editor.check_scenario(after, editor.inputs_from_settings({}), tables)[2] == []


def test_a_withdrawn_workers_tier_typed_as_no_number_is_said_as_typed_not_a_traceback():
    # The tiers are text cells: "first" or "1,000" typed for a worker withdrawn since stopped
    # the Scenario page with a traceback on every draw (the title read the tier as a float).
    f = draft({})
    f["tiers"] = editor.apply_delta(f["tiers"], {
        "edited_rows": {1: {editor.TIER: "first"}, 2: {editor.TIER: " 3.0 "}}, "added_rows": [], "deleted_rows": []})
    assert "Dr B" in cleanup.found_title(AFTER_W2, f)
    tables, removed = cleanup.remove_gone(AFTER_W2, f)
    assert removed == ["Priority tiers: the row of Dr B (w2) (tier 'first'); they are no longer in the run."]
    assert tables["tiers"]["Worker id"].tolist() == ["w1", "w3", "w4", "w5"]
    f["tiers"] = editor.apply_delta(f["tiers"], {
        "edited_rows": {1: {editor.TIER: " 2.0 "}}, "added_rows": [], "deleted_rows": []})
    assert cleanup.remove_gone(AFTER_W2, f)[1] == [
        "Priority tiers: the row of Dr B (w2) (tier 2); they are no longer in the run."]
