"""The business rules on Results, from a real solve: tables and the tier chart, tested directly."""

from __future__ import annotations

import rules_view

from allocator.engine import solve
from allocator.scenario import apply
from tests.helpers.named_runs import L, W, prefs, snap


def run():
    lines = L(("n1", 1), ("n2", 1), ("s1", 2), ("x1", 1))
    for line, site in zip(lines, ("North", "North", "South", None), strict=True):
        if site:
            line["site"] = site
        line["name"] = f"Line {line['id']}"
    ws = W("w1", "w2", "w3", "w4", "w5", tags={"w3": ["ed"]})
    for w, p in zip(ws, (1, 1, 2, None, None), strict=True):
        w["name"] = f"Dr {w['id']}"
        if p:
            w["priority"] = p
    s = snap(
        ws, lines,
        worker_preferences=prefs(w1={"n1": 1, "s1": 2}, w2={"s1": 1, "n2": 2}, w3={"n1": 1, "x1": 2},
                                 w4={"x1": 1, "n2": 2}, w5={"n1": 1, "s1": 2}),
        linked_workers=[{"id": "couple-1", "worker_ids": ["w1", "w2"]}],
        quotas=[{"id": "north-min", "sites": ["North"], "min_workers": 2},
                {"id": "ed-x1", "job_line_ids": ["x1"], "qualification_id": "ed", "max_workers": 0}],
        previous_allocations=[{"worker_id": "w4", "job_line_id": "n2"}, {"worker_id": "w5", "job_line_id": "s1"}],
    )
    return apply(s, {"fewest_moves": False}, {})


def test_tables_say_each_rule_in_planners_words():
    s = run()
    m = solve(s).to_dict()["metrics"]
    assert rules_view.uses_rules(m) and not rules_view.uses_rules({"rank_distribution": []})
    names = rules_view.Names(s)
    rows = rules_view.links_table(m["links"], names).to_dict("records")
    got_site = {"n1": "North", "n2": "North", "s1": "South", "x1": "its own site"}
    got = {a["worker_id"]: a["job_line_id"] for a in solve(s).to_dict()["allocations"]}
    # A row a worker of the link, each with the line they got and the one site the link shares.
    assert rows == [{"Link": "couple-1", "Worker": f"Dr {w} ({w})", "Job line": f"Line {got[w]}",
                     "Site": got_site[got["w1"]]} for w in ("w1", "w2")]
    q = sorted(rules_view.quotas_table(m["quotas"], s).to_dict("records"), key=lambda r: r["Quota"])
    m["quotas"].sort(key=lambda r: r["id"])
    assert [(r["Quota"], r["Counts"], r["Only workers with tag"], r["At least"], r["At most"]) for r in q] == [
        ("ed-x1", "Line x1", "ed", 0, "0"), ("north-min", "North (site)", "", 2, "no maximum")]
    assert [r["Workers counted"] for r in q] == [x["count"] for x in m["quotas"]]
    assert all(r["Met"] == "met" for r in q) and rules_view.quota_summary(m["quotas"]) == "Every quota is met (2)."
    assert rules_view.quota_summary([{"id": "a", "met": False}, {"id": "b", "met": True}]) == (
        "1 of 2 quotas NOT met: a.")
    moves = rules_view.moves_table(m["moves"], names)
    assert len(moves) == m["moves_count"]
    assert rules_view.moves_caption(1, 2) == ("1 of the 2 workers of the previous allocation move to another job "
                                              "line; 1 stay where they were told.")
    sites = rules_view.equity_table(m["sites"], "site", names)
    assert set(sites["Site"]) == {"North", "South", "Line x1 (its own site)"}
    assert sites["Workers"].sum() == 5  # every placed worker counted once
    tiers = rules_view.equity_table(m["tiers"], "tier", names)
    assert tiers["Tier"].tolist() == ["Tier 1", "Tier 2", "No tier"] and tiers["Workers"].tolist() == [2, 1, 2]


def test_the_tier_chart_has_a_bar_group_per_tier_that_adds_up():
    m = solve(run()).to_dict()["metrics"]
    fig = rules_view.tier_rank_figure(m["tiers"])
    assert [t.name for t in fig.data] == ["Tier 1 (2 workers)", "Tier 2 (1 worker)", "No tier (2 workers)"]
    for trace, tier in zip(fig.data, m["tiers"], strict=True):
        assert list(trace.x)[-1] == "not ranked"
        assert sum(trace.customdata) == tier["n_workers"]  # counts on hover add up to the tier
        assert abs(sum(trace.y) - 1.0) < 1e-9  # shares of the tier
    assert fig.layout.yaxis.title.text == "Share of the tier's workers"
    assert fig.layout.xaxis.title.text == "Choice the worker got"


def test_sites_stand_beside_lines_and_a_line_without_one_is_its_own():
    import compare_view
    import derived
    import editor

    from allocator.problem import ProblemData

    s = run()
    p = ProblemData.from_snapshot(s)
    table = derived.worker_lines_table(p, 0, derived.pair_codes(p), s)  # the Eligibility page's table
    assert dict(zip(table["Job line"], table["Site"], strict=True)) == {
        "Line n1": "North", "Line n2": "North", "Line s1": "South", "Line x1": "its own site"}
    assert list(editor.lines_frame(s, {})["Site"]) == ["North", "North", "South", "its own site"]
    mv = [{"worker": "Dr w1", "worker_id": "w1", "from_line_id": "n1", "from_line": "Line n1", "to_line_id": "x1",
           "to_line": "Line x1", "rank_before": 1.0, "rank_after": None, "kind": "to_unranked", "rank_change": None}]
    df = compare_view.moves_frame(mv, {"n1": "North", "n2": "North", "s1": "South"})
    assert (df.loc[0, "From"], df.loc[0, "To"]) == ("North · Line n1", "Line x1 (its own site)")


def test_compare_puts_the_rules_outcomes_side_by_side():
    from allocator.compare import ScenarioView

    s = run()
    with_rules = solve(s).to_dict()
    plain = solve(apply(s, {}, {"linked_workers": [], "quotas": []})).to_dict()
    df = rules_view.compare_rules_frame(
        [ScenarioView("A", with_rules), ScenarioView("B", plain), ScenarioView("C", None)], rules_view.Names(s))
    rows = {r["Outcome"]: (r["A"], r["B"], r["C"]) for r in df.to_dict("records")}
    m = with_rules["metrics"]
    assert rows["Quotas met"] == (f"{sum(q['met'] for q in m['quotas'])} of 2", "–", "–")
    north = next(q for q in m["quotas"] if q["id"] == "north-min")
    assert rows["Quota north-min"] == (f"{north['count']} workers", "–", "–")
    assert rows["Link couple-1: site"][1:] == ("–", "–")
    assert rows["Workers moved from the previous allocation"] == (
        str(m["moves_count"]), str(plain["metrics"]["moves_count"]), "–")
    t1 = m["tiers"][0]
    assert rows["Tier 1"][0] == (f"{round(100 * t1['first_choice_share'])} % first choice, "
                                 f"mean rank {t1['mean_rank_ranked']:.2f}")
    assert "Site Line x1 (its own site)" in rows and "Site North" in rows
    assert [o for o in df["Outcome"] if o.endswith("tier") or o.startswith("Tier")] == ["Tier 1", "Tier 2", "No tier"]
