"""The Compare page: tables that convert to Arrow, counts that add up, changes named, moves drawn or listed.

Streamlit sends every table to the browser as Arrow (``pyarrow.Table.from_pandas``); a column
that mixes numbers and text fails that conversion, and Streamlit logs the traceback
("Serialization of dataframe to Arrow table was unsuccessful") before patching the column.
These tests convert each frame the page builds, and watch Streamlit's log while the page runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import compare_view
import headline
import pandas as pd
import pyarrow as pa
import pytest

from allocator import compare
from allocator.compare import RunNames, ScenarioView, line_sites, moves, ranked_pairs
from allocator.demo import demo_snapshot
from allocator.engine import solve
from allocator.scenario import apply
from allocator.snapshot import RunSnapshot
from allocator.store.base import input_fingerprint
from benchmarks.instances import generate_instance
from tests.app.conftest import open_app
from tests.app.test_flow import metric


def assert_arrow_clean(df: pd.DataFrame, what: str) -> None:
    """Streamlit's own conversion succeeds without its fix-up, and no column mixes types."""
    pa.Table.from_pandas(df)  # raises ArrowTypeError / ArrowInvalid on a mixed column
    for col in df.columns:
        if df[col].dtype == object:
            types = {type(v).__name__ for v in df[col] if v is not None}
            assert len(types) <= 1, f"{what}: column {col!r} mixes {sorted(types)}"


def two_scenarios(run: RunSnapshot) -> list[tuple[str, dict, dict, dict]]:
    """Two scenarios of ``run``: as it is, and with a voice, a pin, a lifted run pin and a line's places changed."""
    free = next(w for w in run.workers if all(p.worker_id != w.id for p in run.pins))
    line = run.job_lines[0]
    over: dict = {"lines": [{"job_line_id": line.id, "max_n_workers": line.max_n_workers + 1}]}
    if run.pins:
        over["lifted_pins"] = [run.pins[0].model_dump()]
    base = solve(apply(run, {"preferencer_weight": 0.0})).to_dict()
    on = base["allocations"]
    # Pin a worker to a line that is open to them and has room: where another scenario put them.
    mid = solve(apply(run, {"preferencer_weight": 0.9}, over)).to_dict()
    to = next(x["job_line_id"] for x in mid["allocations"] if x["worker_id"] == free.id)
    if to == next(x["job_line_id"] for x in on if x["worker_id"] == free.id):
        over["pins"] = []
    else:
        over["pins"] = [{"worker_id": free.id, "job_line_id": to}]
    after = solve(apply(run, {"preferencer_weight": 0.9}, over)).to_dict()
    assert base["allocations"] and after["allocations"], (base["status"], after["status"])
    return [("Run as it is", {"preferencer_weight": 0.0}, {}, base),
            ("Supervisors first", {"preferencer_weight": 0.9}, over, after)]


def frames(run: RunSnapshot, scen) -> Iterator[tuple[str, pd.DataFrame]]:
    views = [ScenarioView(n, r, s, o) for n, s, o, r in scen]
    sides = {v.name: headline.Solved(v.name, v.settings, v.overrides, "run", "f") for v in views}
    ranked = ranked_pairs(run)
    yield "What differs", compare_view.differs_frame(views, RunNames.of(run))
    kpis, _ = compare_view.kpi_frame(views, sides, ranked)
    yield "Headline numbers", kpis
    # An old result (no ranked-lines figures, no Gini): "not recorded" in a text column.
    old = {**views[0].result, "metrics": {k: v for k, v in views[0].result["metrics"].items()
                                           if k != "worker_dissatisfaction_gini"}}
    kpis_old, _ = compare_view.kpi_frame([ScenarioView("old", old), views[1]], {"old": sides[views[0].name],
                                         views[1].name: sides[views[1].name]})
    assert set(kpis_old.set_index("").loc["Unevenness (Gini)"][["old"]]) == {compare_view.NOT_RECORDED}
    yield "Headline numbers (old result)", kpis_old
    # Nobody on a ranked line: no mean or worst rank to show, and the table says why.
    # (Results saved before the ranked-lines figures were recorded: worked out from ``ranked``.)
    unrecorded = [ScenarioView(v.name, {**v.result, "metrics": {k: x for k, x in v.result["metrics"].items()
                                                                 if k not in compare.RANKED_KEYS.values()}},
                               v.settings, v.overrides) for v in views]
    nobody = compare_view.kpi_frame(unrecorded, sides, ranked=set())[0].set_index("")
    assert nobody.loc["Mean rank", views[0].name] == compare_view.NOBODY_RANKED
    assert nobody.loc["Worst rank", views[1].name] == compare_view.NOBODY_RANKED
    mv = moves(views[0].result, views[1].result, ranked=ranked)
    yield "Who moved", compare_view.moves_frame(mv)
    sites = {j.id: f"Site {i % 4}" for i, j in enumerate(run.job_lines)}
    yield "Who moved (by site)", compare_view.moves_frame(mv, sites)


@pytest.mark.parametrize("size", ["demo", "1500x300"])
def test_every_frame_compare_shows_converts_to_arrow(size):
    snap = demo_snapshot() if size == "demo" else generate_instance(1500, 300, 1)
    run = RunSnapshot.parse(snap)
    scen = two_scenarios(run)
    seen = []
    for what, df in frames(run, scen):
        assert len(df), what
        assert_arrow_clean(df, what)
        seen.append(what)
    assert len(seen) == 5
    diff = dict(frames(run, scen))["What differs"]
    assert "Supervisor voice" in set(diff["Change"])


def test_the_moves_table_names_lines_and_ranks_and_groups_by_site():
    run = RunSnapshot.parse(demo_snapshot(workers=60, seed=3))
    scen = two_scenarios(run)
    mv = moves(scen[0][3], scen[1][3], {w.id: w.name for w in run.workers},
               {j.id: j.name for j in run.job_lines}, ranked_pairs(run))
    df = compare_view.moves_frame(mv)
    assert len(df) == len(mv) and list(df["Worker id"]) == [m["worker_id"] for m in mv]
    given = {(p.worker_id, p.job_line_id) for p in run.worker_preferences}
    alloc_before = {x["worker_id"]: x for x in scen[0][3]["allocations"]}
    for _, row in df.iterrows():
        x = alloc_before[row["Worker id"]]
        if (x["worker_id"], x["job_line_id"]) in given:
            assert row["Rank before"] == f"{x['worker_rank']:g}"
        else:
            assert row["Rank before"] == "not ranked"
    sites = {j.id: ("North" if i % 2 else "South") for i, j in enumerate(run.job_lines)}
    by_site = compare_view.moves_frame(mv, sites)
    assert list(by_site["From"].str.split(" · ").str[0]) == sorted(by_site["From"].str.split(" · ").str[0])
    # The demo's lines name their hospitals (business-rules.md): Compare groups by them.
    assert line_sites(run) == {j.id: j.site for j in run.job_lines}
    by_hospital = compare_view.moves_frame(mv, line_sites(run))
    assert list(by_hospital["From"].str.split(" · ").str[0]) == sorted(by_hospital["From"].str.split(" · ").str[0])


@pytest.fixture
def streamlit_log() -> Iterator[list[logging.LogRecord]]:
    """Every record Streamlit's dataframe conversion logs while a test runs."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log = logging.getLogger("streamlit.dataframe_util")
    handler, level = Keep(level=logging.DEBUG), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield records
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def save(db_store, run_id: str, scen) -> RunSnapshot:
    run = db_store.load_run(run_id)
    for name, settings, over, result in scen:
        db_store.save_scenario(run_id, name, settings, over, result, input_fingerprint(run))
    return run


def arrow_failures(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() + (f" {r.exc_info[1]}" if r.exc_info else "") for r in records
            if "Arrow" in r.getMessage() or (r.exc_info and "Arrow" in type(r.exc_info[1]).__name__)]


def test_compare_page_with_two_solved_scenarios(import_run, db_store, streamlit_log):
    run_id = import_run(demo_snapshot())
    run = db_store.load_run(run_id)
    scen = two_scenarios(run)
    save(db_store, run_id, scen)
    at = open_app(run_id, "compare")
    assert not at.exception, at.exception
    at.multiselect(key="cmp_pick").set_value(["Run as it is", "Supervisors first"]).run()
    assert not at.exception, at.exception

    # Every table the page shows converts to Arrow as it is, and Streamlit logged no failure.
    # What differs, headline numbers, who moved, and (the demo has couples, a quota and tiers)
    # the rules' outcomes.
    assert len(at.dataframe) == 4
    assert any("Outcome" in d.value.columns for d in at.dataframe)
    for df in at.dataframe:
        assert_arrow_clean(df.value, str(list(df.value.columns)))
    assert not arrow_failures(streamlit_log), arrow_failures(streamlit_log)

    # What differs: the changes themselves, by name.
    diff = next(d.value for d in at.dataframe if "Change" in d.value.columns).set_index("Change")
    over = scen[1][2]
    line = run.job_lines[0]
    assert diff.loc["Supervisor voice"].tolist() == ["0%", "90%"]
    assert diff.loc[f"Places on {line.name}"].tolist() == [f"{line.max_n_workers} (as in the run)",
                                                           str(line.max_n_workers + 1)]
    pin = run.pins[0]
    wn = {w.id: w.name for w in run.workers}
    ln = {j.id: j.name for j in run.job_lines}
    assert diff.loc[f"The run's pin of {wn[pin.worker_id]} to {ln[pin.job_line_id]}"].tolist() == ["kept", "lifted"]
    for p in over["pins"]:
        assert diff.loc[f"Pin {wn[p['worker_id']]} to {ln[p['job_line_id']]}"].tolist() == ["–", "pinned"]

    # Who moved: the parts add up to the whole, and the caption says so.
    moved = int(metric(at, "Workers who moved").value)
    parts = {"Ranked higher", "Ranked the same", "Ranked lower", "To a line not ranked",
             "From a line not ranked", "Between lines not ranked"}
    shown = [m for m in at.metric if m.label in parts]
    assert len(shown) >= 3 and sum(int(m.value) for m in shown) == moved > 0
    mv = moves(scen[0][3], scen[1][3], ranked=ranked_pairs(run))
    assert moved == len(mv)
    assert any(c.value.startswith(f"{moved} workers moved = ") for c in at.caption)
    table = next(d.value for d in at.dataframe if "Worker id" in d.value.columns)
    assert len(table) == moved
    given = ranked_pairs(run)
    # The page groups the moves by the site they left (the demo's lines have sites): same moves.
    assert sorted(table["Worker id"]) == sorted(m["worker_id"] for m in mv)
    by_worker = table.set_index("Worker id")
    for m in mv:
        before, after = by_worker.loc[m["worker_id"], "Rank before"], by_worker.loc[m["worker_id"], "Rank after"]
        # A rank only for a line the worker ranked; "not ranked" otherwise, never a shared rank.
        assert (before == "not ranked") == ((m["worker_id"], m["from_line_id"]) not in given)
        assert (after == "not ranked") == ((m["worker_id"], m["to_line_id"]) not in given)
    # The demo run's moves span far more than a dozen lines, but its lines have sites: the
    # Sankey is drawn between sites, and its caption says so.
    assert [c.key for c in at.get("plotly_chart")] == ["cmp_rank_chart", "cmp_sankey"]
    assert any(c.value.startswith("Where moved workers went: sites in") for c in at.caption)


def test_compare_page_on_a_1500_by_300_run_logs_no_arrow_failure(import_run, db_store, streamlit_log):
    run_id = import_run(generate_instance(1500, 300, 1))
    run = db_store.load_run(run_id)
    save(db_store, run_id, two_scenarios(run))
    at = open_app(run_id, "compare")
    at.multiselect(key="cmp_pick").set_value(["Run as it is", "Supervisors first"]).run()
    assert not at.exception, at.exception
    for df in at.dataframe:
        assert_arrow_clean(df.value, str(list(df.value.columns)))
    assert not arrow_failures(streamlit_log), arrow_failures(streamlit_log)
    moved = int(metric(at, "Workers who moved").value)
    parts = [m for m in at.metric if m.label != "Workers who moved"]
    assert sum(int(m.value) for m in parts) == moved > 0


def test_compare_page_draws_a_sankey_when_a_dozen_lines_or_fewer_are_involved(import_run, db_store, streamlit_log):
    run_id = import_run(demo_snapshot(workers=20, lines=8, seed=2))
    run = db_store.load_run(run_id)
    scen = two_scenarios(run)
    save(db_store, run_id, scen)
    at = open_app(run_id, "compare")
    at.multiselect(key="cmp_pick").set_value(["Run as it is", "Supervisors first"]).run()
    assert not at.exception, at.exception
    mv = moves(scen[0][3], scen[1][3], ranked=ranked_pairs(run))
    lines = {m["from_line_id"] for m in mv} | {m["to_line_id"] for m in mv}
    assert mv and len(lines) <= 12
    traces = [[t["type"] for t in json.loads(c.proto.spec)["data"]] for c in at.get("plotly_chart")]
    assert traces[-1] == ["sankey"] and sum(t == ["sankey"] for t in traces) == 1
    assert any(f"All {len(mv)} moves between the {len(lines)} lines involved." in c.value for c in at.caption)
    assert not any("too many for a readable chart" in c.value for c in at.caption)
    assert not arrow_failures(streamlit_log), arrow_failures(streamlit_log)


def test_compare_warns_at_once_when_scenarios_were_solved_on_older_data(import_run, db_store):
    run_id = import_run(demo_snapshot())
    run = db_store.load_run(run_id)
    save(db_store, run_id, two_scenarios(run))
    at = open_app(run_id, "compare")
    at.multiselect(key="cmp_pick").set_value(["Run as it is", "Supervisors first"]).run()
    assert not [w for w in at.warning if "older data" in w.value]
    # The run's data changes behind the dashboard's back (a planner elsewhere withdraws a worker).
    free = next(w for w in run.workers if all(p.worker_id != w.id for p in run.pins))
    db_store.withdraw_worker(run_id, free.id, reason="left the programme", changed_by="test")
    at.run()
    assert not at.exception, at.exception
    (warning,) = [w.value for w in at.warning if "older data" in w.value]
    assert "'Run as it is'" in warning and "'Supervisors first'" in warning


def test_the_moves_table_shows_the_rank_the_worker_wrote_not_the_tie_share():
    """A worker who ranked two lines 2 (positions 2 and 3, fractional 2.5) reads 2 in the table."""
    run = RunSnapshot.parse(demo_snapshot())
    scen = two_scenarios(run)
    mv = moves(scen[0][3], scen[1][3], ranked=ranked_pairs(run))
    given = compare_view.given_ranks(run)
    df = compare_view.moves_frame(mv, given=given).set_index("Worker id")
    tied = 0
    for m in mv:
        for side, line in (("before", m["from_line_id"]), ("after", m["to_line_id"])):
            cell = df.loc[m["worker_id"], f"Rank {side}"]
            if m[f"rank_{side}"] is None:
                assert cell == "not ranked"
                continue
            wrote = given[(m["worker_id"], line)]
            assert cell == f"{wrote:g}"
            tied += wrote != m[f"rank_{side}"]
    # The demo run has tied ranks, so some move's fractional rank differs from the number written.
    assert tied > 0


def test_workers_left_out_of_the_moves_are_counted_in_plain_words():
    assert compare_view.not_counted_sentence(1, 0, "A", "B") == (
        "Not counted: 1 worker placed only in A and 0 workers only in B "
        "(the run's workers changed between the two solves).")
    assert "2 workers placed only in A and 1 worker only in B" in compare_view.not_counted_sentence(2, 1, "A", "B")


def test_nobody_moved_does_not_claim_every_worker_when_some_are_in_one_scenario_only():
    # After a withdrawal: "1 worker placed only in A" above, then "every worker on the same line".
    assert compare_view.nobody_moved_sentence(1, 0) == (
        "Nobody moved: every worker placed in both scenarios is on the same line in each.")
    assert compare_view.nobody_moved_sentence(0, 0) == "Nobody moved: both scenarios put every worker on the same line."


def test_compare_says_which_scenario_is_not_proven_and_how_far_from_the_best_it_may_be(import_run, db_store):
    # Walked in the browser: a stable scenario stopped by its 5 s time limit sat beside a proven
    # one in the headline numbers without a word that its numbers may still improve.
    run_id = import_run(demo_snapshot())
    run = db_store.load_run(run_id)
    (a, b) = two_scenarios(run)
    cut = dict(b[3], status="feasible", best_bound=round(b[3]["objective"] / 1.04, 6))
    save(db_store, run_id, [a, (b[0], b[1], b[2], cut)])
    at = open_app(run_id, "compare")
    at.multiselect(key="cmp_pick").set_value(["Run as it is", "Supervisors first"]).run()
    assert not at.exception, at.exception
    (note,) = [i.value for i in at.info if "Not proven" in i.value]
    assert "'Supervisors first' (at most 4.0 % above the best possible) is the best found" in note
    assert "Run as it is" not in note

    assert compare_view.unproven_note([ScenarioView("A", a[3]), ScenarioView("B", b[3])]) is None
