"""The scenario editor's tables: run values shown, only changes kept, blank rows named."""

from __future__ import annotations

import editor
import pandas as pd

from tests.helpers.named_runs import L, W, prefs, snap


def run():
    return snap(W("w1", "w2"), L(("j1", 2), ("j2", 1, True)))


def test_lines_frame_shows_the_scenarios_values():
    df = editor.lines_frame(run(), {"lines": [{"job_line_id": "j1", "max_n_workers": 5}]})
    assert df.to_dict("records") == [
        {"Job line id": "j1", "Job line": "j1", "Places": "5", "Must be filled": False},
        {"Job line id": "j2", "Job line": "j2", "Places": "1", "Must be filled": True},
    ]


def test_only_changed_lines_become_overrides():
    df = editor.lines_frame(run(), {})
    df.loc[0, "Places"] = 3
    df.loc[1, "Must be filled"] = False
    out, errs = editor.lines_overrides(run(), df)
    assert errs == []
    assert out == [{"job_line_id": "j1", "max_n_workers": 3}, {"job_line_id": "j2", "must_have_workers": False}]
    # Back to the run's values: no override at all.
    assert editor.lines_overrides(run(), editor.lines_frame(run(), {}))[0] == []


def test_bad_places_are_named_by_row():
    df = editor.lines_frame(run(), {})
    df["Places"] = df["Places"].astype(object)
    df.loc[1, "Places"] = None
    df.loc[0, "Places"] = 1.5
    _, errs = editor.lines_overrides(run(), df)
    assert errs == [
        "Places and must be filled, row 1 (j1): places must be a whole number, 0 or more (you typed 1.5)",
        "Places and must be filled, row 2 (j2): places must be filled in (0 or more)",
    ]


def test_pairs_skip_blank_rows_and_name_half_filled_ones():
    df = pd.DataFrame([
        {"Worker": "w1", "Job line": "j2"},
        {"Worker": None, "Job line": None},  # a new row left empty: ignored
        {"Worker": "w2", "Job line": ""},
    ])
    out, errs = editor.pairs_overrides(df, "Pins")
    assert out == [{"worker_id": "w1", "job_line_id": "j2"}]
    assert errs == ["Pins, row 3: choose both a worker and a job line, or delete the row"]


def test_weightings_need_a_worker_and_a_number():
    df = pd.DataFrame([
        {"Worker": "w1", "Job line": None, "Value": -2.0},  # every line
        {"Worker": "w2", "Job line": "j1", "Value": float("nan")},
        {"Worker": None, "Job line": "j1", "Value": 1.0},
    ])
    out, errs = editor.weights_overrides(df)
    assert out == [{"worker_id": "w1", "job_line_id": None, "value": -2.0}]
    assert errs == [
        "Organisation priority, row 2: give a value (positive discourages the pair, negative favours it)",
        "Organisation priority, row 3: choose a worker, or delete the row",
    ]


def test_overrides_round_trip_through_the_frames():
    ov = {
        "lines": [{"job_line_id": "j2", "must_have_workers": False}],
        "pins": [{"worker_id": "w1", "job_line_id": "j1"}],
        "forbids": [{"worker_id": "w2", "job_line_id": "j1"}],
        "weightings": [{"worker_id": "w2", "job_line_id": None, "value": 1.5}],
    }
    r = run()
    back, errs = editor.overrides_from_frames(
        r, editor.lines_frame(r, ov), editor.pairs_frame(ov["pins"]), editor.pairs_frame(ov["forbids"]),
        editor.weights_frame(ov["weightings"]),
    )
    assert errs == [] and back == ov


# --------------------------------------------------------------------------- typed values are never changed


def test_places_typed_as_a_fraction_or_below_zero_are_refused_as_typed():
    r = run()
    typed = editor.apply_delta(editor.lines_frame(r, {}), {
        "edited_rows": {0: {"Places": 2.7}, "1": {"Places": -5}}, "added_rows": [], "deleted_rows": []})
    assert list(typed["Places"]) == [2.7, -5]  # kept as typed: never 27, never dropped
    out, errs = editor.lines_overrides(r, typed)
    assert out == []
    assert errs == [
        "Places and must be filled, row 1 (j1): places must be a whole number, 0 or more (you typed 2.7)",
        "Places and must be filled, row 2 (j2): places must be a whole number, 0 or more (you typed -5)",
    ]


def test_settings_out_of_the_spec_range_are_refused_naming_the_value():
    good = editor.inputs_from_settings({})
    assert editor.settings_from_inputs(good) == (
        {"preferencer_weight": 0.3, "preference_power": 1.0, "max_seconds": 60.0, "rng_seed": 1234,
         "stability": False, "allow_worker_preference_ties": True}, [])
    settings, errs = editor.settings_from_inputs({**good, "power": 50, "time": -3, "seed": "-1"})
    assert settings is None
    assert errs == [
        "How much low choices hurt: must be more than 0 and at most 8 (you typed 50)",
        "Time limit (seconds): must be more than 0 seconds (you typed -3)",
        "Tie-break seed: must be at least 0 (you typed -1)",
    ]
    settings, errs = editor.settings_from_inputs({**good, "seed": "2.5", "power": 0})
    assert settings is None and errs == [
        "Tie-break seed: must be a whole number, 0 or more (you typed 2.5)",
        "How much low choices hurt: must be more than 0 and at most 8 (you typed 0)",
    ]
    # The spec puts no upper bound on the time limit: a long one is the planner's to choose.
    settings, errs = editor.settings_from_inputs({**good, "time": 999999})
    assert errs == [] and settings["max_seconds"] == 999999.0


def test_the_data_editor_edits_apply_in_the_editors_order():
    base = editor.pairs_frame([{"worker_id": "w1", "job_line_id": "j1"}, {"worker_id": "w2", "job_line_id": "j2"}])
    delta = {"edited_rows": {1: {"Job line": "j1"}}, "deleted_rows": [0],
             "added_rows": [{"Worker": "w3", "Job line": "j2"}]}
    out = editor.apply_delta(base, delta)
    assert out.to_dict("records") == [{"Worker": "w2", "Job line": "j1"}, {"Worker": "w3", "Job line": "j2"}]
    assert base.to_dict("records")[0] == {"Worker": "w1", "Job line": "j1"}  # the base is not changed


def test_lifting_a_run_pin_and_forbid_becomes_an_override():
    r = snap(W("w1", "w2"), L(("j1", 2), ("j2", 1)), pins=[{"worker_id": "w1", "job_line_id": "j1"}],
             forbids=[{"worker_id": "w2", "job_line_id": "j2"}])
    frames = editor.frames_from_overrides(r, {"lifted_forbids": [{"worker_id": "w2", "job_line_id": "j2"}]})
    assert list(frames["lifted_pins"][editor.LIFT]) == [False]
    assert list(frames["lifted_forbids"][editor.LIFT]) == [True]
    frames["lifted_pins"] = editor.apply_delta(
        frames["lifted_pins"], {"edited_rows": {0: {editor.LIFT: True}}, "added_rows": [], "deleted_rows": []})
    _, ov, problems, scenario = editor.check_scenario(r, editor.inputs_from_settings({}), frames)
    assert problems == []
    assert ov == {"lifted_pins": [{"worker_id": "w1", "job_line_id": "j1"}],
                  "lifted_forbids": [{"worker_id": "w2", "job_line_id": "j2"}]}
    assert scenario.pins == [] and scenario.forbids == []


def test_too_many_pins_and_a_must_be_filled_line_with_no_places_are_named():
    r = snap(W("w1", "w2", "w3"), L(("j1", 1), ("j2", 2, True)))
    frames = editor.frames_from_overrides(r, {
        "pins": [{"worker_id": "w1", "job_line_id": "j1"}, {"worker_id": "w2", "job_line_id": "j1"}],
        "lines": [{"job_line_id": "j2", "max_n_workers": 0}],
    })
    _, _, problems, scenario = editor.check_scenario(r, editor.inputs_from_settings({}), frames)
    assert scenario is None
    assert problems == [
        "Job line 'j1' has 1 place but 2 workers are pinned to it (w1, w2): remove 1 of these pins, "
        "or give the line more places.",
        "Job line 'j2' must be filled but has 0 places: give it places, or untick must be filled.",
    ]


def test_tied_ranks_are_summed_up_not_listed_one_by_one():
    many = [f"w{i:02d}" for i in range(12)]
    r = snap(W(*many), L(("j1", 12), ("j2", 12)),
             worker_preferences=prefs(**{w: {"j1": 1, "j2": 1} for w in many}))
    _, _, problems, _ = editor.check_scenario(r, {**editor.inputs_from_settings({}), "ties": False},
                                              editor.frames_from_overrides(r, {}))
    assert problems == [
        "Allow tied worker ranks is off, but 12 workers (doctors) gave the same rank to two or more job lines: "
        "w00, w01, w02, w03, w04 and 7 more. Turn Allow tied worker ranks back on, or correct their ranks in "
        "the run's data."
    ]


def test_a_lift_of_a_pin_the_run_no_longer_has_is_shown_and_named_not_dropped():
    r = snap(W("w1", "w2"), L(("j1", 2), ("j2", 1)))
    frames = editor.frames_from_overrides(r, {"lifted_pins": [{"worker_id": "w1", "job_line_id": "j1"}]})
    assert frames["lifted_pins"].to_dict("records") == [
        {"Worker id": "w1", "Worker": "w1", "Job line id": "j1", "Job line": "j1", editor.LIFT: True}]
    _, _, problems, _ = editor.check_scenario(r, editor.inputs_from_settings({}), frames)
    assert problems == ["Run pins lifted, row 1: the run has no pin of worker 'w1' on job line 'j1' to lift"]


def test_a_pins_reason_goes_from_the_table_to_the_overrides_and_back():
    r = snap(W("w1", "w2"), L(("j1", 2), ("j2", 1)))
    pins = [{"worker_id": "w1", "job_line_id": "j2", "reason": "agreed with the supervisor"},
            {"worker_id": "w2", "job_line_id": "j1"}]
    frames = editor.frames_from_overrides(r, {"pins": pins})
    assert frames["pins"].to_dict("records") == [
        {"Worker": "w1", "Job line": "j2", "Reason": "agreed with the supervisor"},
        {"Worker": "w2", "Job line": "j1", "Reason": None}]
    ov, errs = editor.overrides_from_frames(r, *(frames[t] for t in editor.TABLES))
    assert errs == [] and ov["pins"] == pins
    # A reason typed with spaces around is kept without them; a blank one is no reason.
    frames["pins"] = editor.apply_delta(frames["pins"], {"edited_rows": {1: {"Reason": "  "}, 0: {"Reason": " why "}},
                                                         "added_rows": [], "deleted_rows": []})
    ov, _ = editor.overrides_from_frames(r, *(frames[t] for t in editor.TABLES))
    assert ov["pins"] == [{"worker_id": "w1", "job_line_id": "j2", "reason": "why"},
                          {"worker_id": "w2", "job_line_id": "j1"}]


# --------------------------------------------------------------------------- number cells are text cells
# Streamlit's number cell keeps only what it takes for a digit: "1e12" typed in a grid arrived as
# 112 and was solved with, without a word (walked in the browser). The tables' number cells are
# text cells, so what was typed reaches these checks, which read it or name it.


def test_number_cells_start_as_text_that_reads_back_as_the_same_number():
    r = snap(W("w1", "w2"), L(("j1", 2), ("j2", 1, True)))
    lines = editor.lines_frame(r, {"lines": [{"job_line_id": "j1", "max_n_workers": 5}]})
    assert list(lines["Places"]) == ["5", "1"]
    weights = editor.weights_frame([{"worker_id": "w1", "job_line_id": None, "value": 0.123456789012345},
                                    {"worker_id": "w2", "job_line_id": "j1", "value": -2.0}])
    assert list(weights["Value"]) == ["0.123456789012345", "-2"]
    out, errs = editor.weights_overrides(weights)
    assert errs == [] and [o["value"] for o in out] == [0.123456789012345, -2.0]  # never rounded by the text
    assert editor.number_text(None) is None and editor.number_text(float("nan")) is None
    assert editor.number_text(1e20) == "1e+20"


def test_text_typed_into_number_cells_is_read_or_named_as_typed():
    r = run()
    typed = editor.apply_delta(editor.lines_frame(r, {}), {
        "edited_rows": {0: {"Places": "1e12"}, 1: {"Places": "abc"}}, "added_rows": [], "deleted_rows": []})
    out, errs = editor.lines_overrides(r, typed)
    assert out == []
    assert errs == [
        "Places and must be filled, row 1 (j1): places must be a whole number up to 1,000,000 (you typed 1e12)",
        "Places and must be filled, row 2 (j2): places must be a whole number, 0 or more (you typed abc)",
    ]
    ok = editor.apply_delta(editor.lines_frame(r, {}), {
        "edited_rows": {0: {"Places": " 3 "}}, "added_rows": [], "deleted_rows": []})
    assert editor.lines_overrides(r, ok) == ([{"job_line_id": "j1", "max_n_workers": 3}], [])
    weights = pd.DataFrame([{"Worker": "w1", "Job line": None, "Value": "1e12"},
                            {"Worker": "w2", "Job line": None, "Value": "two"}], columns=editor.WEIGHT_COLS)
    assert editor.weights_overrides(weights)[1] == [
        "Organisation priority, row 1: the value must be between -1,000,000,000 and 1,000,000,000 (you typed 1e12)",
        "Organisation priority, row 2: the value must be a number (you typed two)",
    ]


def test_an_implausible_time_limit_is_said_back_but_a_long_one_is_not():
    # Walked in the browser: "1e12" typed as the time limit was taken as 31,709 years, silently.
    note = editor.time_limit_note({"time": 1e12})
    assert note.startswith("Time limit: 1,000,000,000,000 seconds is about 31,688 years.")
    assert "Is that what you meant?" in note
    assert "about 2 days" in editor.time_limit_note({"time": 2 * 86400 + 5})
    assert "90,000 seconds is about 1 day." in editor.time_limit_note({"time": 90000})  # not "1 days"
    for fine in (60.0, 3600.0, 86400.0, None, "", "abc", float("inf")):
        assert editor.time_limit_note({"time": fine}) is None, fine


def test_a_number_typed_with_commas_or_spaces_is_refused_saying_how_to_write_it():
    # "1,000" in a text cell was refused as "must be a whole number (you typed 1,000)": it is one.
    r = run()
    typed = editor.apply_delta(editor.lines_frame(r, {}), {
        "edited_rows": {0: {"Places": "1,000"}, 1: {"Places": "2 000"}}, "added_rows": [], "deleted_rows": []})
    out, errs = editor.lines_overrides(r, typed)
    assert out == []
    assert errs == [
        "Places and must be filled, row 1 (j1): places must be a whole number, 0 or more (you typed 1,000; "
        "write numbers without commas or spaces, e.g. 1000 or 2.5)",
        "Places and must be filled, row 2 (j2): places must be a whole number, 0 or more (you typed 2 000; "
        "write numbers without commas or spaces, e.g. 1000 or 2.5)",
    ]
    weights = pd.DataFrame([{"Worker": "w1", "Job line": None, "Value": "1,5"}], columns=editor.WEIGHT_COLS)
    (err,) = editor.weights_overrides(weights)[1]
    assert err.endswith("(you typed 1,5; write numbers without commas or spaces, e.g. 1000 or 2.5)")
    assert editor.tier_value_problem("a, b").endswith("(you typed a, b)")  # not a number either way
