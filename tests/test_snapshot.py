"""Bad input, end to end: every malformed file under tests/data/invalid/ gives exit 2 from
``allocator solve``, names the offending entry on stderr and writes no output file.

Each row: the file, then fragments that stderr must contain (the entry and the rule).
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from allocator.cli import EXIT_INVALID, app
from allocator.snapshot import RunSnapshot, SnapshotError, load_snapshot
from tests.helpers.named_runs import DATA

INVALID = DATA / "invalid"
VALID = DATA / "valid"

CASES = [
    # workers[1] carries an "email" field the format does not have
    ("unknown_key.json", ["workers[1] (id 'w2')", "unknown field 'email'"]),
    # worker_preferences[1] names worker w9, who is not in the run
    ("dangling_worker_id.json", ["worker_preferences[1]", "'w9' is not a worker of this run"]),
    # pins[0] names job line j7, which is not in the run
    ("dangling_job_line_id.json", ["pins[0]", "'j7' is not a job line of this run"]),
    # two workers share the id w2
    ("duplicate_worker_id.json", ["workers", "'w2' is used by more than one worker"]),
    # two job lines share the id j1
    ("duplicate_job_line_id.json", ["job_lines", "'j1' is used by more than one job line"]),
    # worker w2 ranks job line j1 twice
    ("duplicate_preference.json", ["worker_preferences[1]", "'w2' ranks job line 'j1' more than once"]),
    # an empty worker id
    ("empty_id.json", ["workers[1]", "id"]),
    # rank 0 (ranks start at 1)
    ("rank_below_one.json", ["worker_preferences[1] (worker 'w2', job line 'j2')", "rank", "greater than or equal to 1"]),
    # rank 1e999, which JSON readers take as infinity
    ("rank_not_finite.json", ["worker_preferences[1] (worker 'w2', job line 'j2')", "rank", "finite"]),
    # a supervisor's rank is NaN
    ("preferencer_rank_nan.json", ["preferencer_preferences[1] (supervisor 'p1', worker 'w2')", "finite"]),
    # a weighting value is NaN
    ("weight_nan.json", ["weightings[1] (worker 'w2', job line 'j1')", "value", "finite"]),
    # a weighting value is -1e999 (minus infinity)
    ("weight_inf.json", ["weightings[0] (worker 'w2')", "value", "finite"]),
    # max_n_workers is -1
    ("negative_capacity.json", ["job_lines[1] (id 'j2')", "max_n_workers", "greater than or equal to 0"]),
    # max_n_workers is 1.5, not a whole number
    ("fractional_capacity.json", ["job_lines[0] (id 'j1')", "max_n_workers", "must be a whole number, not 1.5"]),
    # preferencer_weight (alpha) 1.5 is above 1
    ("alpha_above_one.json", ["settings", "preferencer_weight", "less than or equal to 1"]),
    # preferencer_weight (alpha) -0.1 is below 0
    ("alpha_negative.json", ["settings", "preferencer_weight", "greater than or equal to 0"]),
    # preference_power 0 (it must be above 0)
    ("power_zero.json", ["settings", "preference_power", "greater than 0"]),
    # preference_power -1
    ("power_negative.json", ["settings", "preference_power", "greater than 0"]),
    # w2 gives rank 1 to two lines while allow_worker_preference_ties is false
    ("ties_not_allowed.json", ["worker 'w2' gives rank 1 to 2 job lines", "ties are not allowed"]),
    # w2 is pinned to j2, which requires a tag w2 lacks
    ("pin_ineligible.json", ["pins[0]", "'w2' cannot be pinned to job line 'j2'", "MISSING_INCLUDED_TAG"]),
    # w2 is pinned to j2 and forbidden from it
    ("pin_forbidden.json", ["pins[0]", "also forbidden"]),
    # w1 is pinned twice
    ("two_pins_one_worker.json", ["pins[1]", "'w1' is pinned more than once"]),
    # format "allocator-run/2"
    ("wrong_format.json", ["format", "'allocator-run/2'"]),
    # no format at all
    ("missing_format.json", ["format", "found None"]),
    # a trailing comma: not JSON
    ("not_json.json", ["not valid JSON", "line 3"]),
    # a JSON list instead of an object
    ("not_an_object.json", ["must be a JSON object"]),
]


@pytest.mark.parametrize(("name", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_solve_rejects_malformed_file(tmp_path, name, fragments):
    out = tmp_path / "result.json"
    res = CliRunner().invoke(app, ["solve", str(INVALID / name), "--out", str(out)])
    assert res.exit_code == EXIT_INVALID, res.output
    assert res.stderr.startswith("Invalid input:")
    for fragment in fragments:
        assert fragment in res.stderr
    assert "Traceback" not in res.output
    assert res.stdout == ""
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left either


@pytest.mark.parametrize(("name", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_loader_raises_snapshot_error_naming_the_entry(name, fragments):
    with pytest.raises(SnapshotError) as info:
        load_snapshot(INVALID / name)
    text = "\n".join(info.value.messages)
    for fragment in fragments:
        assert fragment in text


def test_every_malformed_file_has_a_row():
    assert sorted(p.name for p in INVALID.glob("*.json")) == sorted(c[0] for c in CASES)


def test_missing_file(tmp_path):
    out = tmp_path / "result.json"
    res = CliRunner().invoke(app, ["solve", str(tmp_path / "nope.json"), "--out", str(out)])
    assert res.exit_code == EXIT_INVALID
    assert "File not found" in res.stderr and "nope.json" in res.stderr
    assert not out.exists()


def test_every_problem_is_reported_not_just_the_first():
    data = json.loads((INVALID / "dangling_worker_id.json").read_text())
    data["pins"] = [{"worker_id": "w1", "job_line_id": "j5"}]
    with pytest.raises(SnapshotError) as info:
        RunSnapshot.parse(data)
    assert len(info.value.messages) == 2


@pytest.mark.parametrize("path", sorted(VALID.glob("*.json")), ids=lambda p: p.name)
def test_valid_files_load(path):
    snap = load_snapshot(path)
    assert snap.workers and snap.job_lines
