"""Changing a run's data after import, on the real embedded PostgreSQL.

Each change (withdraw a worker, add a late worker, change a line) is one SQL function: it
changes the run's snapshot as intended, logs who and why, and moves the run's inputs version
so a scenario saved before it is stale (publish refuses it). Bad input is refused naming the
entry, and nothing is written. A planner of another organisation cannot change the run.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from allocator import service
from allocator.snapshot import RunSnapshot
from allocator.store import InvalidSnapshotError, LateWorker, StaleScenarioError
from tests.helpers.dbtools import (
    acting_as,
    allocation_result,
    import_small,
    new_org_in_store,
    new_organisation,
    new_user,
    small_snapshot,
)

pytestmark = pytest.mark.db


def _version(sql, run_id: str) -> int:
    return sql.execute("select allocator_run_inputs_version(%s)", (run_id,)).fetchone()[0]


def _save(store, run_id: str, snap: dict) -> str:
    """A scenario solved on the run as it is now (the result places everyone round-robin)."""
    fp = store.current_fingerprint(run_id)
    return store.save_scenario(run_id, "before the change", {}, {}, allocation_result(snap), fp, "tester")


def _assert_stale(store, run_id: str, scenario_id: str) -> None:
    sc = store.get_scenario(scenario_id)
    assert sc.input_fingerprint != store.current_fingerprint(run_id)
    with pytest.raises(StaleScenarioError):
        store.publish(run_id, scenario_id, published_by="tester")


# --------------------------------------------------------------------------- withdraw


def test_withdrawing_a_worker_takes_them_out_logs_who_and_why_and_makes_scenarios_stale(store, sql):
    run_id, snap = import_small(store, n_workers=4)
    scenario_id = _save(store, run_id, snap)
    v0 = _version(sql, run_id)

    change = service.withdraw_worker(store, run_id, "w3", reason="Left the programme", changed_by="Dr Reyes")

    after = store.load_run(run_id)
    assert [w.id for w in after.workers] == ["w1", "w2", "w4"]
    assert all(p.worker_id != "w3" for p in after.worker_preferences)
    assert all(p.worker_id != "w3" for p in after.preferencer_preferences)
    # The other workers and every line are as they were.
    before = RunSnapshot.parse(snap)
    assert [w for w in after.workers] == [w for w in before.workers if w.id != "w3"]
    assert after.job_lines == before.job_lines
    # History kept: the worker's row and preferences are still in the intake.
    (n,) = sql.execute(
        "select count(*) from worker_mappings w join preference_worker_job_lines p on p.worker_id = w.id "
        "where w.external_id = 'w3' and w.allocation_run_id = "
        "(select allocation_run_id from allocator_py_runs where id = %s)", (run_id,)).fetchone()
    assert n == len(snap["job_lines"])
    assert (change.action, change.worker_id, change.reason, change.changed_by) == (
        "withdraw_worker", "w3", "Left the programme", "Dr Reyes")
    assert change.details["name"] == "Worker 3"
    assert store.run_changes(run_id) == [change]
    assert _version(sql, run_id) > v0 and change.inputs_version == _version(sql, run_id)
    _assert_stale(store, run_id, scenario_id)
    summary = store.get_run(run_id)
    assert (summary.n_workers, summary.n_changes) == (3, 1)


def test_withdrawing_from_a_run_that_lists_its_workers_removes_only_that_one(store, sql):
    run_id, _ = import_small(store, n_workers=4)
    service.withdraw_worker(store, run_id, "w1", reason="first")
    service.withdraw_worker(store, run_id, "w4", reason="second")
    assert [w.id for w in store.load_run(run_id).workers] == ["w2", "w3"]
    assert [c.worker_id for c in store.run_changes(run_id)] == ["w1", "w4"]


# --------------------------------------------------------------------------- add


def test_adding_a_late_worker_puts_them_in_with_tags_and_ranks(store, sql):
    run_id, snap = import_small(store, n_workers=3)
    scenario_id = _save(store, run_id, snap)
    v0 = _version(sql, run_id)

    worker = service.late_worker("w99", "Late Starter", "icu, paeds", "j2, j1=5")
    change = service.add_worker(store, run_id, worker, reason="Started in March", changed_by="Dr Reyes")

    after = store.load_run(run_id)
    added = next(w for w in after.workers if w.id == "w99")
    assert (added.name, added.qualification_ids) == ("Late Starter", ["icu", "paeds"])
    ranks = {(p.job_line_id, p.rank) for p in after.worker_preferences if p.worker_id == "w99"}
    assert ranks == {("j2", 1.0), ("j1", 5.0)}
    assert len(after.workers) == 4
    assert change.details["preferences"] == [{"job_line_id": "j2", "rank": 1.0}, {"job_line_id": "j1", "rank": 5.0}]
    assert (change.action, change.changed_by, change.reason) == ("add_worker", "Dr Reyes", "Started in March")
    assert _version(sql, run_id) > v0
    _assert_stale(store, run_id, scenario_id)


def test_a_late_worker_joins_a_run_that_lists_its_workers(store):
    run_id, _ = import_small(store, n_workers=3)
    service.withdraw_worker(store, run_id, "w2", reason="left")  # the run now lists its workers
    service.add_worker(store, run_id, LateWorker("w7", "Seven", (), (("j1", 1.0),)), reason="late")
    assert [w.id for w in store.load_run(run_id).workers] == ["w1", "w3", "w7"]


# --------------------------------------------------------------------------- set line


def test_changing_a_lines_places_and_must_be_filled_is_logged_with_before_and_after(store, sql):
    run_id, snap = import_small(store)
    scenario_id = _save(store, run_id, snap)
    v0 = _version(sql, run_id)

    change = service.set_job_line(store, run_id, "j2", reason="A new post funded", max_n_workers=5,
                                  must_have_workers=True, changed_by="Dr Reyes")

    line = next(j for j in store.load_run(run_id).job_lines if j.id == "j2")
    assert (line.max_n_workers, line.must_have_workers) == (5, True)
    assert change.details["before"] == {"max_n_workers": 2, "must_have_workers": False}
    assert change.details["after"] == {"max_n_workers": 5, "must_have_workers": True}
    assert service.change_words(change) == (
        "Changed job line 'j2' (Line 2): places 2 → 5; must be filled no → yes.")
    assert _version(sql, run_id) > v0
    _assert_stale(store, run_id, scenario_id)

    only = service.set_job_line(store, run_id, "j2", reason="Post withdrawn", max_n_workers=1)
    assert only.details["after"] == {"max_n_workers": 1, "must_have_workers": True}


# --------------------------------------------------------------------------- refusals


def _state(sql, store, run_id: str):
    return (store.load_run(run_id), _version(sql, run_id),
            sql.execute("select count(*) from allocator_run_changes where run_id = %s", (run_id,)).fetchone()[0])


BAD_CHANGES = [
    pytest.param(lambda s, r: s.withdraw_worker(r, "nobody", reason="x"), "'nobody'", id="unknown-worker"),
    pytest.param(lambda s, r: s.withdraw_worker(r, "w1", reason="  "), "reason is required", id="withdraw-no-reason"),
    pytest.param(lambda s, r: s.set_job_line(r, "j1", reason="x", max_n_workers=-2), "places must be from 0 to 1,000,000 (got -2)", id="negative-places"),
    # The Limits of run-snapshot.md, checked by the database itself (a caller of the SQL may
    # skip the service's checks): a run holding more could no longer be loaded or exported.
    pytest.param(lambda s, r: s.set_job_line(r, "j1", reason="x", max_n_workers=1_000_001), "places must be from 0 to 1,000,000 (got 1000001)", id="places-over-the-limit"),
    pytest.param(lambda s, r: s.add_worker(r, LateWorker("w8", preferences=(("j1", 1e10),)), reason="x"), "a rank is a number from 1 to 1,000,000,000", id="late-worker-rank-over-the-limit"),
    pytest.param(lambda s, r: s.add_worker(r, LateWorker("w8", "A\x07B"), reason="x"), "Worker 'w8': a name has at most 500 characters, without control characters", id="late-worker-name-control-character"),
    pytest.param(lambda s, r: s.add_worker(r, LateWorker("w8", "N" * 501), reason="x"), "Worker 'w8': a name has at most 500 characters", id="late-worker-name-too-long"),
    pytest.param(lambda s, r: s.add_worker(r, LateWorker("w8" + "x" * 199), reason="x"), "is not an id: an id has 1 to 200 characters", id="late-worker-id-too-long"),
    pytest.param(lambda s, r: s.add_worker(r, LateWorker("w8\x1b"), reason="x"), "is not an id", id="late-worker-id-control-character"),
    pytest.param(lambda s, r: s.add_worker(r, LateWorker("w8\u00a0"), reason="x"), "or spaces at either end", id="late-worker-id-ending-in-a-no-break-space"),
    pytest.param(lambda s, r: s.add_worker(r, LateWorker("w8", qualification_ids=("icu\u3000",)), reason="x"), "Worker 'w8': qualification 1 is not a tag", id="late-worker-tag-ending-in-a-wide-space"),
    pytest.param(lambda s, r: s.add_worker(r, LateWorker("w8", qualification_ids=("icu", "t" * 201)), reason="x"), "Worker 'w8': qualification 2 is not a tag", id="late-worker-tag-too-long"),
    # A site the snapshot check calls blank (its strip() takes tabs and no-break spaces): the run could not be loaded.
    pytest.param(lambda s, r: s.set_job_line(r, "j1", reason="x", site="\t"), "a site is a name of 1 to 500 characters", id="tab-site"),
    pytest.param(lambda s, r: s.set_job_line(r, "j1", reason="x", site="\u00a0"), "a site is a name of 1 to 500 characters", id="no-break-space-site"),
    pytest.param(lambda s, r: s.add_worker(r, {"id": "w8", "priority": 1_000_001}, reason="x"), "at least 1 (1 is placed first) and at most 1,000,000, not 1000001", id="late-worker-priority-over-a-million"),
    # JSON numbers beyond a double: PostgreSQL's "out of range for type double precision" before.
    pytest.param(lambda s, r: s.add_worker(r, {"id": "w8", "preferences": [{"job_line_id": "j1", "rank": 10**400}]}, reason="x"), "a rank is a number from 1 to 1,000,000,000", id="late-worker-rank-1e400"),
    pytest.param(lambda s, r: s.add_worker(r, {"id": "w8", "preferences": [{"job_line_id": "j1", "rank": 10**400}, {"job_line_id": "j2", "rank": 2}]}, reason="x"), "a rank is a number from 1 to 1,000,000,000", id="late-worker-rank-1e400-then-another"),
    pytest.param(lambda s, r: s.set_job_line(r, "j9", reason="x", max_n_workers=1), "'j9'", id="unknown-line"),
    pytest.param(lambda s, r: s.set_job_line(r, "j1", reason="", max_n_workers=1), "reason is required", id="set-line-no-reason"),
    pytest.param(lambda s, r: s.set_job_line(r, "j1", reason="x", max_n_workers=2), "nothing to change", id="no-change"),
    pytest.param(lambda s, r: s.add_worker(r, LateWorker("w2", "Dup"), reason="x"), "Worker 'w2' is already in run", id="worker-already-in-run"),
    pytest.param(lambda s, r: s.add_worker(r, LateWorker("w8"), reason=None), "reason is required", id="add-no-reason"),
    pytest.param(lambda s, r: s.add_worker(r, LateWorker("w8", preferences=(("j1", 1.0), ("j7", 2.0))), reason="x"), "job line 'j7'", id="late-worker-unknown-line"),
    pytest.param(lambda s, r: s.add_worker(r, LateWorker("w8", preferences=(("j1", 0.5),)), reason="x"), "with 0.5: a rank is a number from 1 to", id="late-worker-rank-below-1"),
    pytest.param(lambda s, r: s.add_worker(r, LateWorker("w8", preferences=(("j1", 1.0), ("j1", 2.0))), reason="x"), "ranks job line 'j1' more than once", id="late-worker-line-twice"),
    pytest.param(lambda s, r: s.add_worker(r, {"id": "", "name": "No id"}, reason="x"), "needs an id", id="late-worker-no-id"),
]


@pytest.mark.parametrize(("change", "words"), BAD_CHANGES)
def test_bad_input_is_refused_naming_it_and_nothing_is_written(store, sql, change, words):
    run_id, _ = import_small(store)
    before = _state(sql, store, run_id)
    with pytest.raises(InvalidSnapshotError) as exc:
        change(store, run_id)
    assert words in str(exc.value)
    assert _state(sql, store, run_id) == before
    # The late worker's row was not half-written either.
    (n,) = sql.execute("select count(*) from worker_mappings w join allocator_py_runs r "
                       "on r.allocation_run_id = w.allocation_run_id where r.id = %s and w.external_id like 'w8%%'",
                       (run_id,)).fetchone()
    assert n == 0


def test_a_withdrawn_worker_cannot_be_withdrawn_again_nor_their_id_reused(store, sql):
    run_id, _ = import_small(store)
    service.withdraw_worker(store, run_id, "w2", reason="left")
    with pytest.raises(InvalidSnapshotError, match="'w2' is not in run .* any more"):
        store.withdraw_worker(run_id, "w2", reason="again")
    with pytest.raises(InvalidSnapshotError, match="'w2' belongs to a worker withdrawn"):
        store.add_worker(run_id, LateWorker("w2"), reason="back")
    assert len(store.run_changes(run_id)) == 1


def test_the_last_worker_cannot_be_withdrawn(store):
    run_id, _ = import_small(store, n_workers=1, n_lines=1)
    with pytest.raises(InvalidSnapshotError, match="only worker"):
        store.withdraw_worker(run_id, "w1", reason="x")
    assert [w.id for w in store.load_run(run_id).workers] == ["w1"]


def test_ties_are_refused_for_a_late_worker_when_the_run_allows_none(store):
    snap = small_snapshot()
    snap["settings"]["allow_worker_preference_ties"] = False
    snap["worker_preferences"] = [p for p in snap["worker_preferences"] if p["worker_id"] != "w1"]
    run_id = store.import_snapshot(snap, organisation_id=new_org_in_store(store))
    with pytest.raises(InvalidSnapshotError, match="tied ranks"):
        store.add_worker(run_id, LateWorker("w8", preferences=(("j1", 1.0), ("j2", 1.0))), reason="x")


def test_a_run_being_solved_cannot_be_changed(store, sql):
    run_id, _ = import_small(store)
    assert store.claim_next("busy-worker", 60, run_id=run_id) is not None
    with pytest.raises(InvalidSnapshotError, match="being solved by a worker now"):
        store.set_job_line(run_id, "j1", reason="x", max_n_workers=4)
    store.fail_run(run_id, "busy-worker", "stopped for the test")


def test_the_change_log_cannot_be_rewritten(store, sql):
    run_id, _ = import_small(store)
    store.withdraw_worker(run_id, "w1", reason="left")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        sql.execute("update allocator_run_changes set reason = 'other' where run_id = %s", (run_id,))


# --------------------------------------------------------------------------- provenance


def test_a_run_records_the_file_it_came_from_and_when_a_scenario_was_last_saved(store):
    org = new_org_in_store(store)
    snap = small_snapshot()
    run_id = store.import_snapshot(snap, organisation_id=org, name="Same name", source_file="intake-v2.xlsx")
    other = store.import_snapshot(snap, organisation_id=org, name="Same name")
    a, b = store.get_run(run_id), store.get_run(other)
    assert (a.source_file, b.source_file) == ("intake-v2.xlsx", None)
    assert a.imported_at == a.created_at and a.created_at <= b.created_at
    assert a.last_scenario_saved_at is None
    _save(store, run_id, snap)
    a = next(r for r in store.list_runs() if r.id == run_id)
    assert a.last_scenario_saved_at is not None and a.source_file == "intake-v2.xlsx"


def test_import_file_records_the_files_name(store, tmp_path):
    import json

    path = tmp_path / "march intake.json"
    path.write_text(json.dumps(small_snapshot()))
    org = new_org_in_store(store)
    run_id = service.import_file(store, path, organisation_id=org)
    assert store.get_run(run_id).source_file == "march intake.json"


# --------------------------------------------------------------------------- row-level security


@pytest.fixture(scope="module")
def world(supabase_url):
    with psycopg.connect(supabase_url, autocommit=True) as conn:
        ana = new_user(conn, "ana.changes@a.example")
        ben = new_user(conn, "ben.changes@b.example")
        org_a = new_organisation(conn, "Changes A", ana)
        org_b = new_organisation(conn, "Changes B", ben)
        runs = {}
        for org, key in ((org_a, "a"), (org_b, "b")):
            (runs[key],) = conn.execute(
                "select allocator_import_run(%s, %s)::text", (Jsonb(small_snapshot(run_id=f"chg-{key}")), org)
            ).fetchone()
    return {"url": supabase_url, "ana": ana, "ben": ben, "run_a": runs["a"], "run_b": runs["b"]}


def _snapshot(conn, run_id):
    return conn.execute("select allocator_run_snapshot(%s)", (run_id,)).fetchone()[0]


def test_a_planner_of_another_organisation_cannot_change_the_run(world):
    with psycopg.connect(world["url"], autocommit=True) as owner:
        before = _snapshot(owner, world["run_b"])
    with acting_as(world["url"], "authenticated", world["ana"]) as conn:
        for call, args in (
            ("select allocator_withdraw_worker(%s, 'w1', 'x')", (world["run_b"],)),
            ("select allocator_add_worker(%s, '{\"id\": \"w9\"}', 'x')", (world["run_b"],)),
            ("select allocator_set_job_line(%s, 'j1', 'x', 9)", (world["run_b"],)),
        ):
            with pytest.raises(psycopg.Error, match="not found") as exc:
                conn.execute(call, args)
            assert exc.value.sqlstate == "AL003", call
        # Nor write the log, nor read another organisation's log.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("insert into allocator_run_changes (run_id, allocation_run_id, action, reason) "
                         "select id, allocation_run_id, 'add_worker', 'x' from allocator_py_runs")
    with psycopg.connect(world["url"], autocommit=True) as owner:
        assert _snapshot(owner, world["run_b"]) == before
        assert owner.execute("select count(*) from allocator_run_changes where run_id = %s",
                             (world["run_b"],)).fetchone() == (0,)


def test_a_planner_changes_their_own_run_as_themselves(world):
    with acting_as(world["url"], "authenticated", world["ana"]) as conn:
        with pytest.raises(psycopg.Error, match="cannot act on behalf") as exc:
            conn.execute("select allocator_withdraw_worker(%s, 'w1', 'x', %s)", (world["run_a"], world["ben"]))
        assert exc.value.sqlstate == "AL005"
        (change,) = conn.execute("select allocator_set_job_line(%s, 'j3', 'More posts', 4)",
                                 (world["run_a"],)).fetchone()
        assert change["changed_by"] == world["ana"]
        conn.execute("select allocator_add_worker(%s, %s, 'Late start')",
                     (world["run_a"], Jsonb({"id": "w9", "name": "Nine", "qualification_ids": ["icu", "new-tag"],
                                             "preferences": [{"job_line_id": "j1", "rank": 1}]})))
        conn.execute("select allocator_withdraw_worker(%s, 'w2', 'Left')", (world["run_a"],))
        snap = RunSnapshot.parse(_snapshot(conn, world["run_a"]))
        assert "w9" in {w.id for w in snap.workers} and "w2" not in {w.id for w in snap.workers}
        assert conn.execute("select count(*) from allocator_run_changes").fetchone() == (3,)
        (n,) = conn.execute("select n_changes from allocator_run_list where id = %s", (world["run_a"],)).fetchone()
        assert n == 3
    with acting_as(world["url"], "authenticated", world["ben"]) as conn:
        assert conn.execute("select count(*) from allocator_run_changes where run_id = %s",
                            (world["run_a"],)).fetchone() == (0,)
