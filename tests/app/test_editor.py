"""The scenario editor's tables: run values shown, only changes kept, blank rows named."""

from __future__ import annotations

import editor
import pandas as pd

from tests.named_runs import L, W, snap


def run():
    return snap(W("w1", "w2"), L(("j1", 2), ("j2", 1, True)))


def test_lines_frame_shows_the_scenarios_values():
    df = editor.lines_frame(run(), {"lines": [{"job_line_id": "j1", "max_n_workers": 5}]})
    assert df.to_dict("records") == [
        {"Job line id": "j1", "Job line": "j1", "Places": 5, "Must be filled": False},
        {"Job line id": "j2", "Job line": "j2", "Places": 1, "Must be filled": True},
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
        "Places and must be filled, row 1 (j1): places must be a whole number, 0 or more",
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
