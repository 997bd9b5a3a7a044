"""Scenarios: settings and overrides on a copy of the run, validated, in planners' words."""

from __future__ import annotations

import pytest

from allocator.engine import solve
from allocator.scenario import ScenarioOverrides, apply, changed_settings
from allocator.snapshot import SnapshotError
from tests.helpers.named_runs import L, W, prefs, snap


@pytest.fixture
def run():
    """j1 requires the tag 'paeds' (only w2 has it); j2 and j3 admit everyone."""
    return snap(
        W("w1", "w2", "w3", tags={"w2": ["paeds"]}),
        L(("j1", 1), ("j2", 2), ("j3", 1)),
        worker_preferences=prefs(w1={"j1": 1, "j2": 2}, w2={"j2": 1, "j1": 2}, w3={"j2": 1, "j3": 2}),
        eligibility=[{"job_line_id": "j1", "included_qualification_ids": ["paeds"]}],
        pins=[{"worker_id": "w3", "job_line_id": "j2"}],
        forbids=[{"worker_id": "w1", "job_line_id": "j3"}],
        weightings=[{"worker_id": "w1", "job_line_id": None, "value": 1.0}],
    )


def test_empty_scenario_is_the_run_itself(run):
    out = apply(run, {}, {})
    assert out == run
    assert out.fingerprint() == run.fingerprint()


def test_settings_and_overrides_are_applied_on_a_copy(run):
    before = run.model_dump()
    out = apply(
        run,
        {"preferencer_weight": 0.6, "stability": True, "max_seconds": 5},
        {
            "lines": [{"job_line_id": "j3", "max_n_workers": 3, "must_have_workers": True}],
            "pins": [{"worker_id": "w2", "job_line_id": "j1"}],
            "forbids": [{"worker_id": "w2", "job_line_id": "j3"}],
            "weightings": [{"worker_id": "w3", "job_line_id": "j2", "value": -2}],
        },
    )
    assert run.model_dump() == before  # the run's own data is untouched
    assert out.settings.preferencer_weight == 0.6 and out.settings.stability and out.settings.max_seconds == 5
    assert out.settings.rng_seed == run.settings.rng_seed  # not named: kept
    j3 = next(j for j in out.job_lines if j.id == "j3")
    assert (j3.max_n_workers, j3.must_have_workers) == (3, True)
    assert {(p.worker_id, p.job_line_id) for p in out.pins} == {("w3", "j2"), ("w2", "j1")}
    assert {(f.worker_id, f.job_line_id) for f in out.forbids} == {("w1", "j3"), ("w2", "j3")}
    assert [(w.worker_id, w.job_line_id, w.value) for w in out.weightings] == [("w1", None, 1.0), ("w3", "j2", -2.0)]
    # The run's data fingerprint changes with places, not with settings alone.
    assert apply(run, {"preferencer_weight": 0.9}, {}).data_fingerprint() == run.data_fingerprint()
    assert out.data_fingerprint() != run.data_fingerprint()


def test_a_line_override_may_change_one_field_only(run):
    out = apply(run, None, {"lines": [{"job_line_id": "j2", "must_have_workers": True}]})
    j2 = next(j for j in out.job_lines if j.id == "j2")
    assert j2.max_n_workers == 2 and j2.must_have_workers is True


def test_a_scenario_pin_replaces_the_runs_pin_for_that_worker(run):
    out = apply(run, None, {"pins": [{"worker_id": "w3", "job_line_id": "j3"}]})
    assert [(p.worker_id, p.job_line_id) for p in out.pins] == [("w3", "j3")]
    result = solve(out).to_dict()
    assert {a["worker_id"]: a["job_line_id"] for a in result["allocations"]}["w3"] == "j3"


def test_a_pin_on_an_ineligible_pair_names_the_row_and_the_reason(run):
    with pytest.raises(SnapshotError) as e:
        apply(run, None, {"pins": [{"worker_id": "w2", "job_line_id": "j2"}, {"worker_id": "w1", "job_line_id": "j1"}]})
    (msg,) = e.value.messages
    assert msg.startswith("Pins, row 2:")
    assert "'w1'" in msg and "'j1'" in msg and "not eligible" in msg and "paeds" in msg


def test_a_pin_on_a_forbidden_pair_is_refused(run):
    with pytest.raises(SnapshotError) as e:
        apply(run, None, {"pins": [{"worker_id": "w1", "job_line_id": "j3"}]})
    assert e.value.messages[0].startswith("Pins, row 1:") and "forbidden" in e.value.messages[0]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # unknown worker in a forbid
        ({"forbids": [{"worker_id": "w9", "job_line_id": "j1"}]}, "Forbids, row 1: 'w9' is not a worker of this run"),
        # unknown line in a weighting
        ({"weightings": [{"worker_id": "w1", "job_line_id": "j9", "value": 1}]},
         "Organisation priority, row 1: 'j9' is not a job line of this run"),
        # the same line twice in the places table
        ({"lines": [{"job_line_id": "j1", "max_n_workers": 2}, {"job_line_id": "j1", "max_n_workers": 3}]},
         "Places and must be filled, row 2: job line 'j1' appears more than once"),
        # a worker pinned twice
        ({"pins": [{"worker_id": "w2", "job_line_id": "j1"}, {"worker_id": "w2", "job_line_id": "j2"}]},
         "Pins, row 2: worker 'w2' is already pinned in row 1"),
        # negative places
        ({"lines": [{"job_line_id": "j1", "max_n_workers": -1}]}, "Places and must be filled, row 1: places must be at least 0"),
        # a weighting without a value
        ({"weightings": [{"worker_id": "w1"}]}, "Organisation priority, row 1: value is missing"),
        # a column that does not exist
        ({"pins": [{"worker_id": "w1", "job_line_id": "j2", "colour": "red"}]}, "Pins, row 1: colour is not a column"),
    ],
)
def test_bad_overrides_name_the_row(run, overrides, expected):
    with pytest.raises(SnapshotError) as e:
        apply(run, None, overrides)
    assert any(m.startswith(expected) for m in e.value.messages), e.value.messages


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"preferencer_weight": 1.5}, "Settings: Supervisor voice must be at most 1"),  # α above 100 %
        ({"preference_power": 0}, "Settings: How much low choices hurt must be more than 0"),
        ({"preference_power": 9}, "Settings: How much low choices hurt must be at most 8"),
        ({"max_seconds": -1}, "Settings: Time limit (seconds) must be more than 0"),
        ({"colour": "red"}, "Settings: 'colour' is not a setting"),
    ],
)
def test_bad_settings_are_named_in_planners_words(run, settings, expected):
    with pytest.raises(SnapshotError) as e:
        apply(run, settings, None)
    assert e.value.messages[0].startswith(expected), e.value.messages


def test_ties_setting_is_checked_against_the_runs_preferences():
    tied = snap(W("w1"), L(("j1", 1), ("j2", 1)), worker_preferences=prefs(w1={"j1": 1, "j2": 1}))
    with pytest.raises(SnapshotError) as e:
        apply(tied, {"allow_worker_preference_ties": False}, None)
    assert "ties are not allowed" in e.value.messages[0]


def test_overrides_round_trip_and_changed_settings(run):
    ov = ScenarioOverrides.parse({"pins": [{"worker_id": "w2", "job_line_id": "j1"}]})
    assert ScenarioOverrides.parse(ov.to_dict()) == ov
    assert ScenarioOverrides.parse(None).is_empty() and not ov.is_empty()
    assert changed_settings(run, {"preferencer_weight": 0.3, "stability": True}) == {"stability": True}


def test_changing_alpha_changes_the_solve():
    """The point of a scenario: both want j1; w2 loses more without it, j1's supervisor prefers w1."""
    s = snap(
        W("w1", "w2"),
        L(("j1", 1, False, ["sup"]), ("j2", 1), ("j3", 0)),
        worker_preferences=prefs(w1={"j1": 1, "j2": 2, "j3": 3}, w2={"j1": 1, "j3": 2, "j2": 3}),
        preferencer_preferences=[{"preferencer_id": "sup", "worker_id": "w1", "rank": 1},
                                 {"preferencer_id": "sup", "worker_id": "w2", "rank": 2}],
    )

    def lines(alpha):
        res = solve(apply(s, {"preferencer_weight": alpha})).to_dict()
        return {a["worker_id"]: a["job_line_id"] for a in res["allocations"]}

    assert lines(0.0) == {"w1": "j2", "w2": "j1"}  # workers only: 2 + 1 beats 1 + 3
    assert lines(1.0) == {"w1": "j1", "w2": "j2"}  # supervisor only: j1's supervisor ranks w1 first


def test_a_scenario_may_lift_the_runs_own_pins_and_forbids(run):
    out = apply(run, {}, {"lifted_pins": [{"worker_id": "w3", "job_line_id": "j2"}],
                          "lifted_forbids": [{"worker_id": "w1", "job_line_id": "j3"}]})
    assert out.pins == [] and out.forbids == []
    assert not ScenarioOverrides.parse({"lifted_pins": [{"worker_id": "w3", "job_line_id": "j2"}]}).is_empty()
    assert out.fingerprint() != run.fingerprint()  # the solve's input changes


def test_lifting_a_pin_the_run_does_not_have_names_the_row(run):
    with pytest.raises(SnapshotError) as err:
        apply(run, {}, {"lifted_pins": [{"worker_id": "w1", "job_line_id": "j2"}],
                        "lifted_forbids": [{"worker_id": "w1", "job_line_id": "j3"},
                                           {"worker_id": "w2", "job_line_id": "j3"}]})
    assert err.value.messages == [
        "Run pins lifted, row 1: the run has no pin of worker 'w1' on job line 'j2' to lift",
        "Run forbids lifted, row 2: the run has no forbid of worker 'w2' on job line 'j3' to lift",
    ]


def test_a_pin_keeps_its_reason_with_the_scenario_but_not_in_the_run(run):
    why = {"worker_id": "w2", "job_line_id": "j1", "reason": "agreed with the supervisor"}
    ov = ScenarioOverrides.parse({"pins": [why]})
    assert ov.to_dict()["pins"] == [why]
    # A pin without a reason is saved as before: worker and line only.
    bare = ScenarioOverrides.parse({"pins": [{"worker_id": "w2", "job_line_id": "j1"}]})
    assert bare.to_dict()["pins"] == [{"worker_id": "w2", "job_line_id": "j1"}]
    # The reason is the planner's note: the run solved is the same with it or without it.
    with_reason, without = apply(run, {}, {"pins": [why]}), apply(run, {}, bare.to_dict())
    assert with_reason == without and with_reason.fingerprint() == without.fingerprint()
    assert solve(with_reason).allocations == solve(without).allocations


def test_a_pin_reason_too_long_is_named(run):
    with pytest.raises(SnapshotError) as e:
        ScenarioOverrides.parse({"pins": [{"worker_id": "w2", "job_line_id": "j1", "reason": "x" * 501}]})
    assert e.value.messages == ["Pins, row 1: reason is too long: at most 500 characters"]


@pytest.mark.parametrize(
    ("settings", "overrides", "expected"),
    [
        # A scenario saved through the database's functions by another caller may hold these;
        # a re-solve of it stopped with a traceback ('str' object has no attribute 'items').
        ("fast", None, "Settings: the scenario's settings are text, not a table of settings"),
        ([1], None, "Settings: the scenario's settings are a list, not a table of settings"),
        (None, [{"worker_id": "w1"}], "The scenario's changes are a list, not a table of changes"),
        (None, "pins", "The scenario's changes are text, not a table of changes"),
    ],
)
def test_settings_or_changes_that_are_no_table_are_named(run, settings, overrides, expected):
    with pytest.raises(SnapshotError) as e:
        apply(run, settings, overrides)
    assert e.value.messages == [expected]
