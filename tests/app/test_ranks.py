"""Honest ranks and honest eligibility on the pages: no rank a worker did not give, no tick that
contradicts its reason."""

from __future__ import annotations

import derived
import pandas as pd

from allocator.demo import demo_snapshot
from allocator.problem import ProblemData
from allocator.scenario import apply
from allocator.snapshot import RunSnapshot
from tests.app.conftest import open_app, solve_now
from tests.app.test_flow import metric, table
from tests.helpers.named_runs import L, W, prefs, snap


def _fractional_max(snapshot: RunSnapshot) -> float:
    """The largest fractional rank any worker gave (a tie group a..b gets (a + b) / 2)."""
    lists: dict[str, list[float]] = {}
    for p in snapshot.worker_preferences:
        lists.setdefault(p.worker_id, []).append(p.rank)
    best = 0.0
    for ranks in lists.values():
        order = sorted(ranks)
        last = order[-1]
        a, b = order.index(last) + 1, len(order)
        best = max(best, (a + b) / 2)
    return best


def test_results_show_not_ranked_and_no_rank_nobody_gave(demo_run):
    run = RunSnapshot.parse(demo_snapshot())
    at = open_app(demo_run, "scenario")
    res = solve_now(at)["result"]
    at.switch_page("../pages/results.py").run()
    assert not at.exception, at.exception

    given = {(p.worker_id, p.job_line_id) for p in run.worker_preferences}
    off = {a["worker_id"] for a in res["allocations"] if (a["worker_id"], a["job_line_id"]) not in given}
    assert off, "the demo solve puts some workers on lines they did not rank"
    ranked = [a["worker_rank"] for a in res["allocations"] if a["worker_id"] not in off]
    top = _fractional_max(run)

    rows = table(at, "Worker id", "Job line", "Choice")
    on_unranked = rows[rows["Worker id"].isin(off)]
    assert len(on_unranked) == len(off)
    assert set(on_unranked["Choice"]) == {"not ranked"}
    assert on_unranked["Rank given"].isna().all()
    assert rows["Rank given"].max() <= top  # no number larger than any rank a worker gave

    assert int(metric(at, "Not ranked").value) == len(off)
    assert float(metric(at, "Worst rank").value) == max(ranked) <= top
    assert float(metric(at, "Mean rank").value) == round(sum(ranked) / len(ranked), 2)
    # The chart's last bar is the workers on lines they did not rank, by that name.
    (rank_chart, *_) = at.get("plotly_chart")
    import json

    bar = json.loads(rank_chart.proto.spec)["data"][0]
    assert bar["x"][-1] == "not ranked" and bar["y"][-1] == len(off)

    # Only those workers, when asked for.
    at.checkbox(key="res_unranked").check().run()
    assert set(table(at, "Worker id", "Job line", "Choice")["Worker id"]) == off


def test_coverage_past_a_dozen_lines_says_what_the_chart_leaves_out(demo_run):
    at = open_app(demo_run, "scenario")
    res = solve_now(at)["result"]
    at.switch_page("../pages/results.py").run()
    n = len(res["metrics"]["line_fill"])
    assert n > 12
    captions = [c.value for c in at.caption]
    # The lines with an empty place are drawn (at most 12); the caption says how many are left out.
    drawn = min(12, sum(1 for r in res["metrics"]["line_fill"] if r["capacity"] > r["filled"]))
    assert drawn > 0
    assert any(f"Showing the {drawn} of {n} lines" in c and f"the other {n - drawn} are not drawn" in c
               for c in captions)
    fill = table(at, "Job line", "Workers placed", "Places")
    assert len(fill) == n  # every line, in the table


# --------------------------------------------------------------------------- Eligibility


def _pinned_and_forbidden():
    """w1 is pinned by the run to j1; w2 is forbidden j2 by the run; j3 is open to all."""
    return snap(
        W("w1", "w2", "w3"), L(("j1", 1), ("j2", 2), ("j3", 2)),
        worker_preferences=prefs(w1={"j2": 1}, w2={"j2": 1, "j3": 2}),
        pins=[{"worker_id": "w1", "job_line_id": "j1"}],
        forbids=[{"worker_id": "w2", "job_line_id": "j2"}],
    )


def _row(df: pd.DataFrame, line: str) -> pd.Series:
    return df[df["Job line"] == line].iloc[0]


def test_a_pin_and_a_forbid_decide_before_the_lines_rules():
    run = _pinned_and_forbidden()
    p = ProblemData.from_snapshot(run)
    codes = derived.pair_codes(p)
    w1 = derived.worker_lines_table(p, p.worker_index["w1"], codes, run)
    assert _row(w1, "j1")["May take it"] and _row(w1, "j1")["Why"] == "Pinned to this line by the run."
    for other in ("j2", "j3"):  # open to all, but w1 is pinned elsewhere
        r = _row(w1, other)
        assert not r["May take it"] and r["Why"].startswith("Pinned to j1 by the run")
        assert "everyone may take it" not in r["Why"]
    w2 = derived.worker_lines_table(p, p.worker_index["w2"], codes, run)
    r = _row(w2, "j2")
    assert not r["May take it"] and r["Why"].startswith("Forbidden for this worker by the run")
    assert _row(w2, "j3")["May take it"] and "everyone may take it" in _row(w2, "j3")["Why"]
    # Every tick agrees with the words, for every pair.
    for i in range(p.n_workers):
        df = derived.worker_lines_table(p, i, codes, run)
        allowed = {p.line_names[j]: bool(p.allowed[i, j]) for j in range(p.n_lines)}
        assert dict(zip(df["Job line"], df["May take it"], strict=True)) == allowed


def test_a_scenarios_own_pin_and_forbid_are_named_as_the_scenarios():
    run = _pinned_and_forbidden()
    scen = apply(run, overrides={"pins": [{"worker_id": "w3", "job_line_id": "j3"}],
                                 "forbids": [{"worker_id": "w2", "job_line_id": "j3"}]})
    p = ProblemData.from_snapshot(scen)
    codes = derived.pair_codes(p)
    w3 = derived.worker_lines_table(p, p.worker_index["w3"], codes, run)
    assert _row(w3, "j3")["Why"] == "Pinned to this line by this scenario."
    assert not _row(w3, "j2")["May take it"]
    w2 = derived.worker_lines_table(p, p.worker_index["w2"], codes, run)
    assert _row(w2, "j3")["Why"].startswith("Forbidden for this worker by this scenario")
    assert _row(w2, "j2")["Why"].startswith("Forbidden for this worker by the run")


def test_eligibility_page_says_the_runs_pin_and_forbid(demo_run):
    run = RunSnapshot.parse(demo_snapshot())
    (pin,) = run.pins
    forbid = run.forbids[0]
    names = {j.id: j.name or j.id for j in run.job_lines}
    at = open_app(demo_run, "eligibility")
    workers = at.selectbox(key="el_worker")
    pinned_i = [w.id for w in run.workers].index(pin.worker_id)
    workers.select(pinned_i).run()
    assert not at.exception, at.exception
    rows = table(at, "May take it", "Why")
    here = _row(rows, names[pin.job_line_id])
    assert here["May take it"] and here["Why"] == "Pinned to this line by the run."
    elsewhere = rows[rows["Job line"] != names[pin.job_line_id]]
    assert not elsewhere["May take it"].any()
    assert elsewhere["Why"].str.startswith(f"Pinned to {names[pin.job_line_id]} by the run").all()

    at.selectbox(key="el_worker").select([w.id for w in run.workers].index(forbid.worker_id)).run()
    rows = table(at, "May take it", "Why")
    r = _row(rows, names[forbid.job_line_id])
    assert not r["May take it"] and r["Why"].startswith("Forbidden for this worker by the run")
    # No tick contradicts its reason anywhere in the table.
    assert not rows[rows["May take it"]]["Why"].str.contains("Forbidden|lacks|excludes|excluded").any()
    assert not rows[~rows["May take it"]]["Why"].str.contains("everyone may take it").any()


# --------------------------------------------------------------------------- last solved


def test_last_solved_counts_this_sessions_solve(demo_run, db_store):
    (summary,) = [r for r in db_store.list_runs() if r.id == demo_run]
    assert summary.last_solved_at is None  # nothing saved, nothing solved by the service
    at = open_app(demo_run, "scenario")
    assert derived.last_solved_text(summary.last_solved_at, demo_run, at.session_state) == "never"
    solve_now(at)
    (summary,) = [r for r in db_store.list_runs() if r.id == demo_run]
    when = derived.last_solved_at(summary.last_solved_at, demo_run, at.session_state)
    assert when is not None and summary.last_solved_at is None
    assert derived.last_solved_text(summary.last_solved_at, demo_run, at.session_state) != "never"
    # Another run's row does not borrow this session's solve.
    assert derived.last_solved_text(None, "another-run", at.session_state) == "never"


def test_a_blocking_pair_from_a_line_they_did_not_rank_says_not_ranked():
    from allocator.result import Result
    from allocator.solvers.base import Status

    # w1 ranked only j1, which has a free place, yet sits on j2: a blocking pair.
    run = snap(W("w1"), L(("j1", 1), ("j2", 1)), worker_preferences=prefs(w1={"j1": 1}))
    p = ProblemData.from_snapshot(run)
    a = [p.line_index["j2"]]
    result = Result.build(p, Status.FEASIBLE, a, best_bound=None, solve_seconds=0.0).to_dict()
    df = derived.blocking_table("t-" + derived.result_key(result), "fp", result, p)
    (row,) = df.to_dict("records")
    assert row["Rank given to it"] == "not ranked" and row["Rank given to that"] == "1"


def test_publish_preview_says_not_ranked_and_gives_no_rank_nobody_gave(demo_run):
    run = RunSnapshot.parse(demo_snapshot())
    at = open_app(demo_run, "scenario")
    res = solve_now(at)["result"]
    at.button(key="sc_save").click().run()
    at.switch_page("../pages/publish.py").run()
    assert not at.exception, at.exception
    given = {(p.worker_id, p.job_line_id) for p in run.worker_preferences}
    names = {w.id: w.name or w.id for w in run.workers}
    off = {names[a["worker_id"]] for a in res["allocations"] if (a["worker_id"], a["job_line_id"]) not in given}
    assert off
    (preview,) = [df.value for df in at.dataframe if "Rank given" in df.value.columns]
    shown = dict(zip(preview["Worker"], preview["Rank given"], strict=True))
    assert {shown[n] for n in off} == {"not ranked"}
    numbers = [float(v) for n, v in shown.items() if n not in off]
    assert max(numbers) <= _fractional_max(run)


def test_one_workers_lines_show_the_rank_they_wrote_not_the_tie_share():
    """w1 wrote j1=1, j2=2, j3=2 (a tie: fractional 2.5 each); the Eligibility table shows 1, 2, 2."""
    run = snap(W("w1"), L(("j1", 1), ("j2", 1), ("j3", 1)), worker_preferences=prefs(w1={"j1": 1, "j2": 2, "j3": 2}))
    p = ProblemData.from_snapshot(run)
    assert float(p.worker_rank[0, p.line_ids.index("j2")]) == 2.5  # what the engine works with
    df = derived.worker_lines_table(p, 0, derived.pair_codes(p), run)
    assert dict(zip(df["Job line"], df["Rank given"], strict=True)) == {"j1": 1.0, "j2": 2.0, "j3": 2.0}


def test_a_blocking_pair_shows_the_ranks_the_worker_wrote_not_the_tie_share():
    from allocator.result import Result
    from allocator.solvers.base import Status

    # w1 wrote j1=1, j2=2, j3=2 (j2 and j3 tied: fractional 2.5) and sits on j3 while j1 has room.
    run = snap(W("w1"), L(("j1", 1), ("j2", 1), ("j3", 1)), worker_preferences=prefs(w1={"j1": 1, "j2": 2, "j3": 2}))
    p = ProblemData.from_snapshot(run)
    result = Result.build(p, Status.FEASIBLE, [p.line_index["j3"]], best_bound=None, solve_seconds=0.0).to_dict()
    df = derived.blocking_table("t-" + derived.result_key(result), "fp", result, p)
    rows = {(r["Has"], r["Would rather have"]): (r["Rank given to it"], r["Rank given to that"])
            for r in df.to_dict("records")}
    assert rows[("j3", "j1")] == ("2", "1")


def test_eligibility_line_table_shows_the_rank_each_worker_wrote(import_run):
    """On the demo run some workers tied lines; the one-line table shows what each wrote."""
    run = RunSnapshot.parse(demo_snapshot())
    wrote = {(p.worker_id, p.job_line_id): float(p.rank) for p in run.worker_preferences}
    p = ProblemData.from_snapshot(run)
    # A line that some worker ranked in a tie (their fractional rank differs from what they wrote).
    lj = next(j for j in range(p.n_lines) for i in range(p.n_workers)
              if p.worker_ranked[i, j] and float(p.worker_rank[i, j]) != wrote[(p.worker_ids[i], p.line_ids[j])])
    at = open_app(import_run(), "eligibility")
    at.selectbox(key="el_line").select(lj).run()
    assert not at.exception, at.exception
    (df,) = [d.value for d in at.dataframe if "Rank they gave it" in d.value.columns]
    shown = {r["Worker id"]: r["Rank they gave it"] for r in df.to_dict("records")}
    for wid, rank in shown.items():
        expected = wrote.get((wid, p.line_ids[lj]))
        assert (rank != rank and expected is None) or rank == expected, (wid, rank, expected)
    assert any(wrote.get((wid, p.line_ids[lj])) != float(p.worker_rank[p.worker_index[wid], lj])
               for wid in shown if (wid, p.line_ids[lj]) in wrote)


def test_one_workers_ranked_lines_come_first_even_those_they_may_not_take():
    # w1 ranked j3 first, but j3 forbids them: the demo's Aiko Thompson's first choice was the
    # 45th row, below every line open to her, ranked or not.
    run = snap(W("w1"), L(("j1", 1), ("j2", 1), ("j3", 1), ("j4", 1)),
               worker_preferences=prefs(w1={"j3": 1, "j2": 2}),
               forbids=[{"worker_id": "w1", "job_line_id": "j3"}, {"worker_id": "w1", "job_line_id": "j4"}])
    p = ProblemData.from_snapshot(run)
    df = derived.worker_lines_table(p, 0, derived.pair_codes(p), run)
    assert list(df["Job line"]) == ["j3", "j2", "j1", "j4"]  # ranked by rank; then open ones, then the rest
    assert list(df["May take it"]) == [False, True, True, False]
    assert list(df.columns) == ["Job line", "May take it", "Rank given", "Decided by", "Why", "Reason code"]


def test_one_lines_tables_put_who_ranked_it_first_and_list_who_ranked_it_but_may_not_take_it():
    # j1 requires 'ed': w3 ranked it first but lacks the tag; w4 ranked it 2nd; w1, w2 did not rank it.
    run = snap(W("w1", "w2", "w3", "w4", tags={"w1": ["ed"], "w2": ["ed"], "w4": ["ed"]}),
               L(("j1", 2), ("j2", 2)),
               worker_preferences=prefs(w3={"j1": 1}, w4={"j2": 1, "j1": 2}),
               eligibility=[{"job_line_id": "j1", "included_qualification_ids": ["ed"]}])
    p = ProblemData.from_snapshot(run)
    may, may_not = derived.line_workers_tables(p, p.line_ids.index("j1"), derived.pair_codes(p), run)
    assert list(may["Worker id"]) == ["w4", "w1", "w2"]  # the one who ranked it first, then by id
    assert list(may["Rank they gave it"].fillna(0)) == [2, 0, 0]
    assert list(may_not["Worker id"]) == ["w3"] and list(may_not["Rank they gave it"]) == [1]
    assert "'ed'" in may_not["Because"].iloc[0]
