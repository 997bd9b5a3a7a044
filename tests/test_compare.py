"""Comparing scenarios: what differs, headline numbers, who moved and how, the Sankey of moves."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.compare import (
    MOVE_KINDS,
    RunNames,
    ScenarioView,
    kpi_delta,
    kpi_table,
    kpi_value,
    line_sites,
    move_kind,
    move_sentence,
    move_summary,
    moves,
    rank_distributions,
    ranked_figures,
    ranked_pairs,
    sankey_data,
    what_differs,
    workers_in_one_only,
)
from allocator.demo import demo_snapshot
from allocator.engine import solve
from allocator.kpis import better as is_improvement
from allocator.kpis import delta_text as format_delta
from allocator.kpis import value_text as format_kpi
from allocator.scenario import apply
from allocator.snapshot import RunSnapshot
from benchmarks.instances import generate_instance


@pytest.fixture(scope="module")
def two_results():
    """The demo run solved with the supervisor voice at 0 % and at 90 %."""
    run = RunSnapshot.parse(demo_snapshot(workers=60, seed=3))
    a = solve(apply(run, {"preferencer_weight": 0.0})).to_dict()
    b = solve(apply(run, {"preferencer_weight": 0.9})).to_dict()
    return run, a, b


# --------------------------------------------------------------------------- what differs


def test_what_differs_names_each_change_with_workers_and_lines():
    run = RunSnapshot.parse(demo_snapshot(workers=30, seed=2))
    assert run.pins, "the demo carries pins of its own"
    names = RunNames.of(run)
    w0, w1 = run.workers[0], run.workers[1]
    j0, j1 = run.job_lines[0], run.job_lines[1]
    run_pin = run.pins[0]
    base = ScenarioView("Before", None, {"preferencer_weight": 0.3, "stability": False, "max_seconds": 60}, {})
    after = ScenarioView(
        "After", None, {"preferencer_weight": 0.6, "stability": True, "max_seconds": 60},
        {
            "pins": [{"worker_id": w0.id, "job_line_id": j1.id}],
            "lifted_pins": [run_pin.model_dump()],
            "lines": [{"job_line_id": j0.id, "max_n_workers": j0.max_n_workers + 2, "must_have_workers": None}],
            "forbids": [{"worker_id": w1.id, "job_line_id": j0.id}],
            "weightings": [{"worker_id": w1.id, "job_line_id": None, "value": -2.5}],
        },
    )
    rows = {r["what"]: (r["Before"], r["After"]) for r in what_differs([base, after], names)}
    pinned_w = next(w.name for w in run.workers if w.id == run_pin.worker_id)
    pinned_j = next(j.name for j in run.job_lines if j.id == run_pin.job_line_id)
    assert rows == {
        "Supervisor voice": ("30%", "60%"),
        "Stable": ("no", "yes"),
        f"Places on {j0.name}": (f"{j0.max_n_workers} (as in the run)", str(j0.max_n_workers + 2)),
        f"Pin {w0.name} to {j1.name}": ("–", "pinned"),
        f"Forbid {w1.name} from {j0.name}": ("–", "forbidden"),
        f"The run's pin of {pinned_w} to {pinned_j}": ("kept", "lifted"),
        f"Organisation priority for {w1.name} on every line": ("–", "−2.5 (favours)"),
    }
    # A line set to the run's own value differs in nothing; without a run, ids stand for names.
    same = ScenarioView("Same", None, {}, {"lines": [{"job_line_id": j0.id, "max_n_workers": j0.max_n_workers}]})
    assert what_differs([ScenarioView("Run", None, {}, {}), same], names) == []
    bare = what_differs([ScenarioView("A", None, {}, {}), ScenarioView("B", None, {}, {"lifted_forbids": [
        {"worker_id": "w9", "job_line_id": "j9"}]})])
    assert bare == [{"what": "The run's forbid of w9 from j9", "A": "kept", "B": "lifted"}]


def test_what_differs_cells_are_all_text():
    views = [ScenarioView("A", None, {"max_seconds": 60, "rng_seed": 1, "preferencer_weight": 0.3}, {}),
             ScenarioView("B", None, {"max_seconds": 5.0, "rng_seed": 2, "preferencer_weight": 0.3},
                          {"pins": [{"worker_id": "w1", "job_line_id": "j1"}]})]
    rows = what_differs(views)
    assert [r["what"] for r in rows] == ["Time limit (seconds)", "Tie-break seed", "Pin w1 to j1"]
    assert rows[0]["B"] == "5" and rows[1]["A"] == "1"
    assert all(isinstance(v, str) for r in rows for v in r.values())


# --------------------------------------------------------------------------- headline numbers


def test_kpi_table_and_deltas_follow_the_results(two_results):
    run, a, b = two_results
    views = [ScenarioView("workers", a), ScenarioView("supervisors", b)]
    rows = {r["key"]: r for r in kpi_table(views, ranked_pairs(run))}
    first = rows["first_choice_share"]
    assert first["workers"] == a["metrics"]["first_choice_share"]
    assert first["supervisors"] == b["metrics"]["first_choice_share"]
    assert first["supervisors change"] == pytest.approx(b["metrics"]["first_choice_share"] - a["metrics"]["first_choice_share"])
    assert "workers change" not in first  # the baseline has no change column
    assert kpi_delta(b, None, "mean_rank") is None


def _ranked_only(run, result):
    given = {(p.worker_id, p.job_line_id) for p in run.worker_preferences}
    on = [x for x in result["allocations"] if (x["worker_id"], x["job_line_id"]) in given]
    return on, len(result["allocations"]) - len(on)


@pytest.mark.parametrize("seed", [1, 7])
def test_mean_and_worst_rank_are_over_ranked_lines_only(seed):
    # Short rank lists over many lines: some workers end up on a line they did not rank.
    run = RunSnapshot.parse(generate_instance(80, 30, seed, rank_list=(1, 3)))
    res = solve(apply(run, {"preferencer_weight": 0.9})).to_dict()
    on, unranked = _ranked_only(run, res)
    assert unranked > 0, "the run should put somebody on a line they did not rank"
    ranked = ranked_pairs(run)
    figs = ranked_figures(res, ranked)
    assert figs["mean_rank"] == pytest.approx(sum(x["worker_rank"] for x in on) / len(on))
    assert figs["worst_rank"] == max(x["worker_rank"] for x in on) <= 3
    assert figs["workers_on_unranked_lines"] == unranked
    assert kpi_value(res, "worst_rank", ranked) == figs["worst_rank"]
    # Recorded figures win over computing; a result with neither says nothing.
    recorded = {**res, "metrics": {**res["metrics"], "mean_rank_ranked": 1.25, "worst_rank_ranked": 2,
                                   "unranked_count": 4}}
    assert ranked_figures(recorded, ranked) == {"mean_rank": 1.25, "worst_rank": 2.0, "workers_on_unranked_lines": 4.0}
    assert kpi_value(recorded, "mean_rank") == 1.25
    assert ranked_figures({"metrics": {}, "allocations": [{"worker_id": "w", "job_line_id": "j", "worker_rank": 3.0}]}) \
        == {"mean_rank": None, "worst_rank": None, "workers_on_unranked_lines": None}


def test_improvement_direction_and_formats():
    assert is_improvement("first_choice_share", 0.1) is True
    assert is_improvement("mean_rank", 0.1) is False
    assert is_improvement("vacancies", -1) is True
    assert is_improvement("blocking_pairs", 0) is None
    assert format_kpi("first_choice_share", 0.456) == "46%"
    assert format_kpi("mean_rank", 1.234) == "1.23"
    assert format_kpi("vacancies", 3.0) == "3"
    assert format_kpi("worst_rank", 36.0) == "36" and format_kpi("worst_rank", 12.5) == "12.5"
    assert format_kpi("mean_rank", None) == "–"
    assert format_delta("first_choice_share", -0.36) == "-36 pts"
    assert format_delta("worst_rank", 2.0) == "+2" and format_delta("mean_rank", 4.294) == "+4.29"
    # One vocabulary with the pages and the exports (allocator.kpis): no "+0", no "2.13e+03",
    # and the Gini with the two decimals the page shows.
    assert format_delta("vacancies", 0.0) == "no change" and format_delta("vacancies", None) is None
    assert format_delta("objective", 2132.6) == "+2,132.60"
    assert format_kpi("worker_dissatisfaction_gini", 0.456) == "0.46"


def test_rank_distributions_line_up_and_keep_totals(two_results):
    _, a, b = two_results
    rows = rank_distributions([ScenarioView("A", a), ScenarioView("B", b)])
    labels_a = [r["label"] for r in rows if r["scenario"] == "A"]
    labels_b = [r["label"] for r in rows if r["scenario"] == "B"]
    assert labels_a == labels_b and labels_a[-1] == "unranked line" and labels_a[0] == "1st choice"
    assert sum(r["workers"] for r in rows if r["scenario"] == "A") == len(a["allocations"])
    assert sum(r["workers"] for r in rows if r["scenario"] == "B") == len(b["allocations"])


# --------------------------------------------------------------------------- who moved


def expected_kinds(run: RunSnapshot, before: dict, after: dict) -> dict[str, str]:
    """Each mover's kind of move, from the ranks as the workers wrote them (not the engine's)."""
    given = {(p.worker_id, p.job_line_id): p.rank for p in run.worker_preferences}
    la = {x["worker_id"]: x["job_line_id"] for x in before["allocations"]}
    lb = {x["worker_id"]: x["job_line_id"] for x in after["allocations"]}
    out = {}
    for w in la.keys() & lb.keys():
        if la[w] == lb[w]:
            continue
        ra, rb = given.get((w, la[w])), given.get((w, lb[w]))
        if ra is None and rb is None:
            out[w] = "both_unranked"
        elif rb is None:
            out[w] = "to_unranked"
        elif ra is None:
            out[w] = "from_unranked"
        else:  # lower is better in every notation; equal numbers are one tie group
            out[w] = "equal" if ra == rb else ("better" if rb < ra else "worse")
    return out


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_move_counts_add_up_on_generated_runs(seed):
    run = RunSnapshot.parse(generate_instance(120, 40, seed, rank_list=(2, 8)))
    before = solve(apply(run, {"preferencer_weight": 0.0, "rng_seed": seed})).to_dict()
    after = solve(apply(run, {"preferencer_weight": 0.8, "preference_power": 2.0})).to_dict()
    want = expected_kinds(run, before, after)
    rows = moves(before, after, ranked=ranked_pairs(run))
    assert {r["worker_id"]: r["kind"] for r in rows} == want
    s = move_summary(rows)
    assert s["moved"] == len(want) > 0
    assert sum(s[k] for k in MOVE_KINDS) == s["moved"]
    for k in MOVE_KINDS:
        assert s[k] == sum(1 for v in want.values() if v == k)
    # The sentence the page shows is that sum, and it adds up.
    text = move_sentence(s)
    total, parts = text.split(" = ")
    assert int(total.split()[0]) == s["moved"] == sum(int(p.split()[0]) for p in parts.split(" + "))
    # A line the worker did not rank shows no rank at all.
    for r in rows:
        assert (r["rank_before"] is None) == (r["kind"] in ("from_unranked", "both_unranked"))
        assert (r["rank_after"] is None) == (r["kind"] in ("to_unranked", "both_unranked"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_move_counts_add_up_for_any_two_allocations(data):
    n_workers = data.draw(st.integers(1, 25))
    n_lines = data.draw(st.integers(2, 8))
    lines = [f"j{i}" for i in range(n_lines)]
    given_ranks: dict[tuple[str, str], int] = {}
    for w in range(n_workers):
        for j in data.draw(st.lists(st.sampled_from(lines), unique=True, max_size=n_lines)):
            given_ranks[(f"w{w}", j)] = data.draw(st.integers(1, 4))  # ties are common
    # The rank each result row carries: the given one, and for a line not ranked a shared
    # fractional number that may equal a real rank (it must never be compared).
    def rows():
        out = []
        for w in range(n_workers):
            j = data.draw(st.sampled_from(lines))
            out.append({"worker_id": f"w{w}", "job_line_id": j,
                        "worker_rank": float(given_ranks.get((f"w{w}", j), 2.0))})
        return {"allocations": out}

    before, after = rows(), rows()
    rows_ = moves(before, after, ranked=set(given_ranks))
    want = {}
    for x, y in zip(before["allocations"], after["allocations"], strict=True):
        if x["job_line_id"] == y["job_line_id"]:
            continue
        ra = given_ranks.get((x["worker_id"], x["job_line_id"]))
        rb = given_ranks.get((y["worker_id"], y["job_line_id"]))
        want[x["worker_id"]] = ("both_unranked" if ra is None and rb is None else "to_unranked" if rb is None
                                else "from_unranked" if ra is None else "equal" if ra == rb
                                else "better" if rb < ra else "worse")
    assert {r["worker_id"]: r["kind"] for r in rows_} == want
    s = move_summary(rows_)
    assert s["moved"] == len(want) == sum(s[k] for k in MOVE_KINDS)


def test_a_move_within_a_tie_group_is_equal_not_better_or_worse():
    # w1 ranked j1 and j2 both first (a tie: fractional 1.5 each) and j3 third.
    run = RunSnapshot.parse({
        "format": "allocator-run/1",
        "workers": [{"id": "w1"}, {"id": "w2"}],
        "job_lines": [{"id": j, "max_n_workers": 1} for j in ("j1", "j2", "j3")],
        "worker_preferences": [
            {"worker_id": "w1", "job_line_id": "j1", "rank": 1}, {"worker_id": "w1", "job_line_id": "j2", "rank": 1},
            {"worker_id": "w1", "job_line_id": "j3", "rank": 3},
            {"worker_id": "w2", "job_line_id": "j1", "rank": 1},
        ],
    })
    ranked = ranked_pairs(run)
    a = solve(apply(run, {}, {"pins": [{"worker_id": "w1", "job_line_id": "j1"},
                                       {"worker_id": "w2", "job_line_id": "j3"}]})).to_dict()
    b = solve(apply(run, {}, {"pins": [{"worker_id": "w1", "job_line_id": "j2"},
                                       {"worker_id": "w2", "job_line_id": "j1"}]})).to_dict()
    rows = {r["worker_id"]: r for r in moves(a, b, ranked=ranked)}
    assert rows["w1"]["kind"] == "equal" and rows["w1"]["rank_change"] == 0
    assert rows["w1"]["rank_before"] == rows["w1"]["rank_after"] == 1.5
    # w2 ranked only j1: from j3 (not ranked, whatever its shared rank) to j1.
    assert rows["w2"]["kind"] == "from_unranked" and rows["w2"]["rank_before"] is None
    assert rows["w2"]["rank_change"] is None
    s = move_summary(rows.values())
    assert (s["moved"], s["equal"], s["from_unranked"], s["better"], s["worse"]) == (2, 1, 1, 0, 0)
    back = move_summary(moves(b, a, ranked=ranked))
    assert (back["equal"], back["to_unranked"]) == (1, 1)
    assert move_sentence(back) == "2 workers moved = 0 better + 1 same rank + 0 worse + 1 to a line not ranked"


def test_move_kinds():
    assert move_kind(2.0, 1.0) == "better" and move_kind(1.0, 2.0) == "worse" and move_kind(1.5, 1.5) == "equal"
    assert move_kind(None, 1.0) == "from_unranked" and move_kind(3.0, None) == "to_unranked"
    assert move_kind(None, None) == "both_unranked"


def test_moves_are_exactly_the_workers_whose_line_changed(two_results):
    run, a, b = two_results
    la = {x["worker_id"]: x for x in a["allocations"]}
    lb = {x["worker_id"]: x for x in b["allocations"]}
    expected = {w for w in la if la[w]["job_line_id"] != lb[w]["job_line_id"]}
    assert expected, "α 0 → 0.9 should move somebody on the demo run"
    rows = moves(a, b, {w.id: w.name for w in run.workers}, ranked=ranked_pairs(run))
    assert {r["worker_id"] for r in rows} == expected
    for r in rows:
        assert r["worker"] == next(x.name for x in run.workers if x.id == r["worker_id"])
    worse = [r["rank_change"] for r in rows if r["kind"] == "worse"]
    assert worse == sorted(worse, reverse=True) and rows[0]["kind"] == "worse"  # largest losses first
    assert moves(a, a) == []
    # A worker only one result places is not a move, but is counted apart.
    fewer = {**b, "allocations": [x for x in b["allocations"] if x["worker_id"] != rows[0]["worker_id"]]}
    assert rows[0]["worker_id"] not in {r["worker_id"] for r in moves(a, fewer)}
    assert workers_in_one_only(a, fewer) == (1, 0)


def test_line_sites_come_from_a_site_attribute_when_lines_have_one():
    run = RunSnapshot.parse(demo_snapshot(workers=20, seed=1))
    sites = line_sites(run)  # the demo's lines name their hospitals (business-rules.md)
    assert sites and sites == {j.id: j.site for j in run.job_lines}

    class Line:
        def __init__(self, id_, site):
            self.id, self.site = id_, site

    class Run:
        job_lines = [Line("j1", "Westmead"), Line("j2", None), Line("j3", "Orange")]

    assert line_sites(Run()) == {"j1": "Westmead", "j3": "Orange"}


def test_sankey_links_sum_to_the_moves(two_results):
    _, a, b = two_results
    data = sankey_data(a, b)
    n_moves = len(moves(a, b))
    assert sum(data["value"]) == n_moves
    assert len(data["source"]) == len(data["target"]) == len(data["value"])
    n_left = len(set(data["source"]))
    assert all(s < n_left <= t < len(data["labels"]) for s, t in zip(data["source"], data["target"], strict=True))
    with_stays = sankey_data(a, b, include_stays=True)
    assert sum(with_stays["value"]) == len(a["allocations"])
    capped = sankey_data(a, b, include_stays=True, max_links=3)
    assert len(capped["value"]) == 4 and sum(capped["value"]) == len(a["allocations"])
    assert "other lines" in capped["labels"]


def test_what_differs_shows_why_a_pin_was_set():
    run = RunSnapshot.parse(demo_snapshot(workers=30, seed=2))
    names = RunNames.of(run)
    w0, j1 = run.workers[0], run.job_lines[1]
    pin = {"worker_id": w0.id, "job_line_id": j1.id}
    views = [ScenarioView("A", None, {}, {}),
             ScenarioView("B", None, {}, {"pins": [pin | {"reason": "agreed with the supervisor"}]}),
             ScenarioView("C", None, {}, {"pins": [pin]})]
    (row,) = what_differs(views, names)
    assert row == {"what": f"Pin {w0.name} to {j1.name}", "A": "–", "B": "pinned (agreed with the supervisor)",
                   "C": "pinned"}


def test_a_scenario_that_keeps_the_runs_links_and_quotas_shows_only_what_it_changed():
    """The scenario's tables hold the run's own links and quotas too: those are not changes."""
    run = RunSnapshot.parse(demo_snapshot())
    names = RunNames.of(run)
    own_links = [{"id": k.id, "worker_ids": list(k.worker_ids)} for k in run.linked_workers]
    own_quotas = [q.model_dump() for q in run.quotas]
    assert own_links and own_quotas  # the demo has both
    w = [x.id for x in run.workers if x.id not in {i for k in own_links for i in k["worker_ids"]}][:2]
    base = ScenarioView("Demo", None, {}, {})
    more = ScenarioView("More", None, {}, {
        "linked_workers": [*own_links, {"id": "new-pair", "worker_ids": w}],
        "quotas": [*own_quotas, {"id": "q-new", "job_line_ids": [run.job_lines[0].id], "min_workers": 2}]})
    rows = {r["what"]: r for r in what_differs([base, more], names)}
    assert {k for k in rows if k.startswith(("Link", "Quota"))} == {"Link new-pair", "Linked workers", "Quota q-new"}
    assert rows["Link new-pair"]["More"] == ", ".join(names.workers[x] for x in w)
    assert rows["Linked workers"]["More"] == f"{len(own_links) + 1} links"
    # Dropping one of the run's links says so, by name.
    fewer = ScenarioView("Fewer", None, {}, {"linked_workers": own_links[1:]})
    rows = {r["what"]: r for r in what_differs([base, fewer], names)}
    assert rows[f"Link {own_links[0]['id']}"]["Fewer"] == "removed"
    assert f"Link {own_links[1]['id']}" not in rows
    # The very same links as the run's, written out by the scenario: nothing differs.
    same = ScenarioView("Same", None, {}, {"linked_workers": list(reversed(own_links)), "quotas": own_quotas})
    assert what_differs([base, same], names) == []


def test_a_previous_allocation_is_counted_in_words():
    run = RunSnapshot.parse(demo_snapshot())
    one = [{"worker_id": run.workers[0].id, "job_line_id": run.job_lines[0].id}]
    rows = {r["what"]: r for r in what_differs([ScenarioView("A", None, {}, {}),
                                                ScenarioView("B", None, {}, {"previous_allocations": one})],
                                               RunNames.of(run))}
    assert rows["Previous allocation"] == {"what": "Previous allocation", "A": "as in the run",
                                           "B": "1 worker and their lines"}
