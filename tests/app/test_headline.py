"""Headline numbers: the same decimals everywhere, and total costs compared only when comparable."""

from __future__ import annotations

import re

import headline
import pytest

from tests.app.conftest import open_app, solve_now
from tests.app.test_flow import metric, table

GINI = re.compile(r"\d\.\d\d")
GINI_CHANGE = re.compile(r"[+-]\d\.\d\d|no change")


# --------------------------------------------------------------------------- formatting


def test_the_gini_has_two_decimals_as_value_and_as_change():
    assert headline.value_text("worker_dissatisfaction_gini", 0.44) == "0.44"
    assert headline.value_text("worker_dissatisfaction_gini", 0.4617) == "0.46"
    assert headline.delta_text("worker_dissatisfaction_gini", 0.0217) == "+0.02"
    assert headline.delta_text("worker_dissatisfaction_gini", -0.0217) == "-0.02"


def test_mean_ranks_keep_two_decimals_and_worst_ranks_are_whole_or_half():
    assert headline.value_text("mean_rank", 5.3) == "5.30"
    assert headline.value_text("mean_rank", 3.186) == "3.19"
    assert headline.delta_text("mean_rank", -2.14) == "-2.14"
    assert headline.value_text("worst_rank", 36.0) == "36"
    assert headline.value_text("worst_rank", 12.5) == "12.5"
    assert headline.value_text("mean_rank", None) == "–"


def test_shares_counts_and_the_total_cost():
    assert headline.value_text("first_choice_share", 0.456) == "46%"
    assert headline.delta_text("first_choice_share", 0.19) == "+19 pts"
    assert headline.value_text("vacancies", 22.0) == "22"
    assert headline.delta_text("blocking_pairs", -114.0) == "-114"
    assert headline.value_text("objective", 2013.384) == "2,013.38"
    assert headline.delta_text("objective", -1180.2) == "-1,180.20"


def test_a_change_that_rounds_to_nothing_is_no_change_in_grey():
    assert headline.delta_text("vacancies", 0.0) == "no change"
    assert headline.delta_text("worker_dissatisfaction_gini", 0.004) == "no change"
    assert headline.delta_text("first_choice_share", 0.004) == "no change"
    assert headline.metric_delta("vacancies", 0.0) == {"delta": "no change", "delta_color": "off", "delta_arrow": "off"}
    assert headline.metric_delta("vacancies", None) == {"delta": None}
    # Better is green whichever way the number runs.
    assert headline.metric_delta("first_choice_share", 0.1)["delta_color"] == "normal"
    assert headline.metric_delta("mean_rank", 0.5)["delta_color"] == "inverse"
    assert headline.metric_delta("objective", -3.0)["delta_color"] == "inverse"
    assert headline.better("mean_rank", -0.5) is True and headline.better("vacancies", 2) is False
    assert headline.better("worker_dissatisfaction_gini", 0.001) is None


def test_short_labels_carry_the_full_words_in_their_help():
    assert headline.label("top3_choice_share", short=True) == "Got top three"
    assert len(headline.label("top3_choice_share", short=True)) <= 16
    assert headline.help_text("top3_choice_share").startswith("Got a top-three choice: share of workers")


# --------------------------------------------------------------------------- comparable costs


def side(name="Other", alpha=0.3, power=1.0, weightings=(), run="r1", fp="f1"):
    return headline.Solved(name, {"preferencer_weight": alpha, "preference_power": power, "stability": False},
                           {"weightings": list(weightings)}, run, fp)


def test_costs_counted_the_same_way_are_comparable():
    assert headline.cost_not_comparable(side("This"), side()) is None
    # Places, pins, forbids, stability and the seed do not change how the cost is counted.
    a = headline.Solved("This", {"preferencer_weight": 0.3, "preference_power": 1.0, "stability": True, "rng_seed": 9},
                        {"lines": [{"job_line_id": "j01", "max_n_workers": 0}], "pins": [{"worker_id": "w1", "job_line_id": "j1"}]},
                        "r1", "f1")
    assert headline.cost_not_comparable(a, side()) is None


@pytest.mark.parametrize(
    ("other", "words"),
    [
        (side(alpha=0.5), "the supervisor voice differs (30% in 'This', 50% in 'Other')"),
        (side(power=2.0), "how much low choices hurt differs (1 in 'This', 2 in 'Other')"),
        (side(weightings=[{"worker_id": "w1", "job_line_id": None, "value": 2.0}]), "the organisation priorities differ"),
        (side(fp="f2"), "the run's data (preferences, places or rules) changed between the two solves"),
        (side(run="r2"), "they are allocations of different runs"),
    ],
)
def test_costs_counted_differently_are_not_comparable_and_say_why(other, words):
    why = headline.cost_not_comparable(side("This"), other)
    assert why is not None
    assert why.startswith("Total cost not comparable with 'Other': ")
    assert words in why
    assert "a lower number would not mean a better allocation" in why


# --------------------------------------------------------------------------- on the pages


def cost_captions(at) -> list[str]:
    return [c.value for c in at.caption if "not comparable" in c.value]


def test_results_show_a_cost_change_only_against_a_comparable_scenario(demo_run):
    at = open_app(demo_run, "scenario")
    at.text_input(key="sc_name").input("Mixed").run()
    solve_now(at)  # the run's own supervisor voice, 30 %
    at.text_input(key="sc_name").input("Supervisors only").run()
    at.slider(key="sc_alpha").set_value(100).run()
    solve_now(at)

    at.switch_page("../pages/results.py").run()
    assert not at.exception
    assert at.selectbox(key="res_baseline").value == "Previous solve: Mixed"
    cost = metric(at, "Total cost")
    assert not cost.delta  # a different voice: no change is shown for the cost ...
    (why,) = cost_captions(at)  # ... but why not, in the planners' words
    assert "supervisor voice differs (100% in 'Supervisors only', 30% in 'Mixed')" in why
    assert metric(at, "Mean rank").delta  # the other numbers still compare
    gini = metric(at, "Unevenness (Gini)")
    assert GINI.fullmatch(gini.value) and GINI_CHANGE.fullmatch(gini.delta)

    # Same voice and power, one line closed: the same cost scale, so the change shows.
    at.switch_page("../pages/scenario.py").run()
    at.text_input(key="sc_name").input("Supervisors only, line 1 closed").run()
    at.session_state["sc_lines"] = {"edited_rows": {0: {"Places": 0}}, "added_rows": [], "deleted_rows": []}
    at.run()
    solve_now(at)
    at.switch_page("../pages/results.py").run()
    assert at.selectbox(key="res_baseline").value == "Previous solve: Supervisors only"
    cost = metric(at, "Total cost")
    assert cost.delta and re.fullmatch(r"[+-][\d,]+\.\d\d|no change", cost.delta), cost.delta
    assert not cost_captions(at)


def test_compare_marks_the_cost_of_another_voice_not_comparable(demo_run):
    at = open_app(demo_run, "scenario")
    for name, alpha in (("Voice 0", 0), ("Voice 90", 90)):
        at.text_input(key="sc_name").input(name).run()
        at.slider(key="sc_alpha").set_value(alpha).run()
        solve_now(at)
        at.button(key="sc_save").click().run()
    at.switch_page("../pages/compare.py").run()
    assert not at.exception
    kpis = table(at, "Voice 90: change").set_index("")
    assert kpis.loc["Total cost", "Voice 90: change"] == "not comparable (see below)"
    assert re.fullmatch(r"[\d,]+\.\d\d", kpis.loc["Total cost", "Voice 0"])
    (why,) = cost_captions(at)
    assert why.startswith("Total cost not comparable with 'Voice 0'")
    assert "supervisor voice differs (90% in 'Voice 90', 0% in 'Voice 0')" in why
    gini = kpis.loc["Unevenness (Gini)"]
    assert GINI.fullmatch(gini["Voice 0"]) and GINI.fullmatch(gini["Voice 90"])
    assert re.fullmatch(r"([+-]\d\.\d\d ▲ better|[+-]\d\.\d\d ▼ worse|no change)", gini["Voice 90: change"])


def test_settings_read_the_same_on_the_page_and_in_the_workbook():
    assert headline.setting_text("preferencer_weight", 0.3) == "30%"
    assert headline.setting_value("preferencer_weight", 0.3) == (0.3, "0%")
    assert headline.setting_text("stability", False) == "no"
    assert headline.setting_text("preference_power", 1.0) == "1"
    assert headline.setting_text("rng_seed", 1234) == "1234"


def test_the_honest_rank_figures_have_their_own_words():
    assert headline.label("mean_rank_ranked") == "Mean rank"
    assert headline.label("unranked_count") == "Not ranked"
    assert "did not rank" in headline.help_text("worst_rank_ranked")
    assert headline.value_text("worst_rank_ranked", 12.0) == "12"
    assert headline.value_text("mean_rank_ranked", 3.762773723) == "3.76"
    assert headline.metric_delta("unranked_count", 2.0)["delta_color"] == "inverse"  # more is worse
    # Every figure the page gives is the rounded number the workbook stores.
    for key, v in (("mean_rank_ranked", 3.762773723), ("worker_dissatisfaction_gini", 0.4617),
                   ("first_choice_share", 0.2286), ("worst_rank_ranked", 12.5), ("unranked_count", 3)):
        stored = headline.shown_value(key, v)
        assert headline.value_text(key, stored) == headline.value_text(key, v)


def test_the_baseline_choices_put_the_previous_solve_then_the_published_scenario_first():
    saved = [("s3", "Newest"), ("s2", "Published one"), ("s1", "Oldest")]
    assert headline.baseline_choices(None, saved, "s2") == [
        ("Published: Published one", "s2"), ("Saved: Newest", "s3"), ("Saved: Oldest", "s1"), ("Nothing", None)]
    assert headline.baseline_choices("Try 4", saved, "s2")[:2] == [
        ("Previous solve: Try 4", headline.PREVIOUS), ("Published: Published one", "s2")]
    assert headline.baseline_choices(None, saved, None)[0] == ("Saved: Newest", "s3")
    assert headline.baseline_choices(None, [], None) == [("Nothing", None)]


def test_results_after_a_publication_are_measured_against_the_published_scenario(demo_run, db_store):
    # A re-solve after a publication (a withdrawal, fewest moves) opened in a new session: the
    # changes were shown against the newest other saved scenario, whichever it was.
    from tests.app.test_publish import publish, solve_save_and_open_publish

    at = open_app(demo_run, "scenario")
    solve_save_and_open_publish(at, "To publish")
    publish(at, "Approved")
    at.switch_page("../pages/scenario.py").run()
    at.text_input(key="sc_name").input("Other voice").run()
    at.slider(key="sc_alpha").set_value(60).run()
    solve_save_and_open_publish(at, "Other voice")
    at.switch_page("../pages/scenario.py").run()
    at.text_input(key="sc_name").input("After the change").run()
    at.slider(key="sc_alpha").set_value(35).run()
    solve_save_and_open_publish(at, "After the change")

    fresh = open_app(demo_run, "results")  # a new session: no previous solve of its own
    sc = next(s for s in db_store.list_scenarios(demo_run) if s.name == "After the change")
    fresh.sidebar.selectbox(key="sidebar_scenario").set_value(sc.id).run()
    assert not fresh.exception, fresh.exception
    box = fresh.selectbox(key="res_baseline")
    assert box.value == "Published: To publish"
    assert box.options == ["Published: To publish", "Saved: Other voice", "Nothing"]
