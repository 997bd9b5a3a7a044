"""Scenario versions, the inputs version, and "solve again with the current data and publish".

All on the real embedded PostgreSQL; the re-solves run the real engine on small runs.
"""

from __future__ import annotations

import json
import shutil

import psycopg
import pytest

from allocator import service
from allocator.db.migrate import MIGRATIONS_DIR, migrate
from allocator.store import (
    AlreadyPublishedError,
    PublishRefusedError,
    RunNotFoundError,
    StaleScenarioError,
    input_fingerprint,
)
from tests.helpers.dbtools import allocation_result, import_small, new_org_in_store, small_snapshot

pytestmark = pytest.mark.db

SETTINGS = {"preferencer_weight": 0.25, "preference_power": 1.5, "max_seconds": 5, "rng_seed": 7,
            "allow_worker_preference_ties": True, "stability": False}


def _save(store, run_id, snap, name, *, shift=0, fp=None, status="optimal"):
    fp = fp or input_fingerprint(store.load_run(run_id))
    return store.save_scenario(run_id, name, SETTINGS, {}, allocation_result(snap, shift=shift, status=status), fp,
                               "ana")


def _allocation_run(sql, run_id):
    return sql.execute("select allocation_run_id from allocator_py_runs where id = %s", (run_id,)).fetchone()[0]


def _change_data(sql, run_id):
    """A worker moves a line down their list: the run's data (and fingerprint) change."""
    sql.execute(
        "update preference_worker_job_lines set rank = rank + 10 "
        "where allocation_run_id = %s and worker_id = "
        "(select id from worker_mappings where allocation_run_id = %s and external_id = 'w1') "
        "and rank = (select min(rank) from preference_worker_job_lines p join worker_mappings w on w.id = p.worker_id "
        "            where w.allocation_run_id = %s and w.external_id = 'w1')",
        (_allocation_run(sql, run_id),) * 3,
    )


def _published(sql, run_id):
    return sql.execute("select status, published_scenario_id::text from allocator_py_runs where id = %s",
                       (run_id,)).fetchone()


# --------------------------------------------------------------------------- versions


def test_two_saves_under_one_name_are_two_versions_both_kept_the_latest_listed(store):
    run_id, snap = import_small(store)
    first = _save(store, run_id, snap, "Plan A")
    other = _save(store, run_id, snap, "Plan B")
    second = _save(store, run_id, snap, "Plan A", shift=1)

    old, new = store.get_scenario(first), store.get_scenario(second)
    assert (old.name, old.version, old.previous_id) == ("Plan A", 1, None)
    assert (new.name, new.version, new.previous_id) == ("Plan A", 2, first)
    # The old version is kept as it was saved, its own result included.
    assert old.result["allocations"] == allocation_result(snap)["allocations"]
    assert new.result["allocations"] == allocation_result(snap, shift=1)["allocations"]
    assert old.result != new.result

    listed = store.list_scenarios(run_id)
    assert [s.id for s in listed] == [second, other]  # the latest version of each name, newest first
    assert store.get_scenario(other).version == 1  # versions count per name
    assert [s.id for s in service.scenario_versions(store, run_id, "Plan A")] == [second, first]
    assert service.scenario_versions(store, run_id, "No such plan") == []


def test_versions_count_per_run(store):
    run_a, snap_a = import_small(store)
    run_b, snap_b = import_small(store)
    _save(store, run_a, snap_a, "Same name")
    in_b = _save(store, run_b, snap_b, "Same name")
    assert store.get_scenario(in_b).version == 1


def test_a_caller_cannot_choose_the_version_number(store, sql):
    run_id, snap = import_small(store)
    _save(store, run_id, snap, "Mine")
    (version,) = sql.execute(
        "insert into allocator_scenarios (run_id, name, input_fingerprint, version) "
        "values (%s, 'Mine', 'fp', 99) returning version", (run_id,)).fetchone()
    assert version == 2


def test_scenarios_saved_before_versions_existed_are_numbered_by_the_migration(new_database, tmp_path):
    # The database as it was before this migration, with two scenarios under one name.
    before = tmp_path / "before"
    before.mkdir()
    for f in sorted(MIGRATIONS_DIR.glob("*.sql")):
        # The earlier files' functions are today's, and today's import and snapshot use the
        # business rules' columns and tables: that file comes along (it needs nothing later).
        if f.name < "20261130000001" or "_business_rules" in f.name:
            shutil.copy(f, before / f.name)
    url = new_database(prefix="versions")
    migrate(url, directory=before)
    from allocator.store.postgres import PostgresStore

    with PostgresStore(url) as old_store, psycopg.connect(url, autocommit=True) as conn:
        # Imported as the code of that time did (the import function had three arguments then).
        snap = small_snapshot()
        org = new_org_in_store(old_store)
        run_id = str(conn.execute("select public.allocator_import_run(%s::jsonb, %s::uuid, %s)",
                                  (json.dumps(snap), org, None)).fetchone()[0])
        fp = input_fingerprint(old_store.load_run(run_id))
        ids = [old_store.save_scenario(run_id, "Twice", {}, {}, None, fp) for _ in range(2)]
        old_store.save_scenario(run_id, "Once", {}, {}, None, fp)

        migrate(url)  # applies the versions migration only

        rows = conn.execute(
            "select id::text, version, previous_id::text from allocator_scenarios where name = 'Twice' "
            "order by created_at, id").fetchall()
        assert {r[1] for r in rows} == {1, 2}
        ordered = sorted(rows, key=lambda r: r[1])
        assert ordered[0][2] is None and ordered[1][2] == ordered[0][0]
        assert {r[0] for r in rows} == set(ids)
        assert [s.name for s in old_store.list_scenarios(run_id)].count("Twice") == 1


# --------------------------------------------------------------------------- inputs version


def test_the_inputs_version_moves_when_the_runs_data_changes(store, sql):
    run_id, snap = import_small(store)
    before = service.run_inputs_version(store, run_id)
    assert store.inputs_version(run_id) == before
    _save(store, run_id, snap, "Reading and saving do not move it")
    store.load_run(run_id)
    assert store.inputs_version(run_id) == before

    sql.execute("update job_lines set max_n_workers = max_n_workers + 1 where allocation_run_id = %s "
                "and external_id = 'j2'", (_allocation_run(sql, run_id),))
    after = store.inputs_version(run_id)
    assert after > before
    snapshot, version = store.load_run_versioned(run_id)
    assert version == after
    assert {j.id: j.max_n_workers for j in snapshot.job_lines}["j2"] == snap["job_lines"][1]["max_n_workers"] + 1


def test_the_inputs_version_of_an_unknown_run_is_not_found(store):
    with pytest.raises(RunNotFoundError):
        store.inputs_version("00000000-0000-0000-0000-000000000000")


# --------------------------------------------------------------------------- solve again and publish


def test_a_stale_publish_is_refused_then_solving_again_publishes_a_new_version(store, sql):
    run_id, snap = import_small(store)
    stale = _save(store, run_id, snap, "Plan A")
    _change_data(sql, run_id)

    with pytest.raises(StaleScenarioError):
        store.publish(run_id, stale, published_by="ana")
    assert _published(sql, run_id)[0] == "pending"

    outcome = service.resolve_and_publish(store, run_id, stale, reason="After w1 changed their list",
                                          published_by="ana")

    assert outcome.version == 2 and outcome.scenario_id != stale
    assert _published(sql, run_id) == ("complete", outcome.scenario_id)
    new = store.get_scenario(outcome.scenario_id)
    old = store.get_scenario(stale)
    assert (new.name, new.version, new.previous_id, new.created_by) == ("Plan A", 2, stale, "ana")
    assert (new.settings, new.overrides) == (old.settings, old.overrides)
    assert new.input_fingerprint == store.current_fingerprint(run_id) != old.input_fingerprint
    assert new.result["status"] == "optimal"
    assert old.result == allocation_result(snap)  # the old version is untouched
    # The history names the new version, and it is what the run now carries.
    (entry,) = store.publication_log(run_id)
    assert (entry.scenario_id, entry.action, entry.published_by, entry.reason) == (
        outcome.scenario_id, "publish", "ana", "After w1 changed their list")
    assert store.get_scenario(entry.scenario_id).version == 2
    assert [(a.worker_id, a.job_line_id) for a in store.allocations(run_id)] == [
        (a["worker_id"], a["job_line_id"]) for a in new.result["allocations"]]
    assert [s.id for s in store.list_scenarios(run_id)] == [outcome.scenario_id]


def test_a_change_during_the_new_solve_publishes_nothing(store, sql):
    run_id, snap = import_small(store)
    stale = _save(store, run_id, snap, "Plan A")
    _change_data(sql, run_id)
    plan = service.prepare_resolve(store, run_id, stale)
    result = service.solve_snapshot(plan.snapshot)
    sql.execute("update job_lines set name = 'Renamed' where allocation_run_id = %s and external_id = 'j1'",
                (_allocation_run(sql, run_id),))

    with pytest.raises(StaleScenarioError, match="changed again"):
        service.publish_resolved(store, plan, result)
    assert [s.version for s in store.scenario_versions(run_id, "Plan A")] == [1]
    assert _published(sql, run_id)[0] == "pending"
    assert store.publication_log(run_id) == []


def test_an_impossible_new_solve_says_why_and_writes_nothing(store, sql):
    run_id, snap = import_small(store)  # 4 workers
    stale = _save(store, run_id, snap, "Plan A")
    # Three places left for four workers: every allocation is impossible.
    sql.execute("update job_lines set max_n_workers = 1 where allocation_run_id = %s", (_allocation_run(sql, run_id),))

    with pytest.raises(service.NoAllocationError, match="impossible") as exc:
        service.resolve_and_publish(store, run_id, stale)
    assert "nothing was saved or published" in str(exc.value)
    assert [s.id for s in store.scenario_versions(run_id, "Plan A")] == [stale]
    assert _published(sql, run_id)[0] == "pending"


def test_the_database_refuses_a_result_without_an_allocation(store, sql):
    run_id, snap = import_small(store)
    stale = _save(store, run_id, snap, "Plan A")
    snapshot, version = store.load_run_versioned(run_id)
    with pytest.raises(PublishRefusedError, match="found no allocation"):
        store.publish_new_version(run_id, stale, {"status": "infeasible", "allocations": []},
                                  input_fingerprint(snapshot), version)
    assert len(store.scenario_versions(run_id, "Plan A")) == 1


def test_replacing_a_published_allocation_needs_supersede_and_a_reason(store, sql):
    run_id, snap = import_small(store)
    first = _save(store, run_id, snap, "Plan A")
    store.publish(run_id, first)
    _change_data(sql, run_id)

    with pytest.raises(AlreadyPublishedError):
        service.prepare_resolve(store, run_id, first)  # refused before any solve
    with pytest.raises(service.ServiceError, match="reason"):
        service.resolve_and_publish(store, run_id, first, supersede=True, reason=" ")
    # At the database too, atomically: no version is left behind by a refused publish.
    plan = service.prepare_resolve(store, run_id, first, supersede=True, reason="x")
    result = service.solve_snapshot(plan.snapshot)
    with pytest.raises(AlreadyPublishedError):
        service.publish_resolved(store, plan, result, supersede=False)
    assert len(store.scenario_versions(run_id, "Plan A")) == 1

    outcome = service.resolve_and_publish(store, run_id, first, supersede=True, reason="Late change to w1")
    assert outcome.superseded and outcome.version == 2
    log = store.publication_log(run_id)
    assert [(e.action, store.get_scenario(e.scenario_id).version) for e in log] == [("publish", 1), ("supersede", 2)]


def test_a_scenario_that_no_longer_fits_the_data_names_what_to_change(store, sql):
    run_id, snap = import_small(store)
    fp = input_fingerprint(store.load_run(run_id))
    pinned = store.save_scenario(run_id, "Pinned", SETTINGS, {"pins": [{"worker_id": "w4", "job_line_id": "j1"}]},
                                 allocation_result(snap), fp)
    sql.execute("delete from worker_mappings where allocation_run_id = %s and external_id = 'w4'",
                (_allocation_run(sql, run_id),))
    with pytest.raises(service.ServiceError, match="no longer fits") as exc:
        service.resolve_and_publish(store, run_id, pinned)
    assert "w4" in str(exc.value) and "Pins, row 1" in str(exc.value)
    assert len(store.scenario_versions(run_id, "Pinned")) == 1


# --------------------------------------------------------------------------- as a signed-in planner (Supabase)


def test_a_planner_sees_and_versions_only_their_own_organisations_scenarios(supabase_url):
    from psycopg.types.json import Jsonb

    from allocator.snapshot import RunSnapshot
    from tests.helpers.dbtools import acting_as, new_organisation, new_user, small_snapshot

    with psycopg.connect(supabase_url, autocommit=True) as conn:
        ana, ben = new_user(conn, "ana@versions.example"), new_user(conn, "ben@versions.example")
        runs, snaps = {}, {}
        for key, planner in (("a", ana), ("b", ben)):
            org = new_organisation(conn, f"Hospital {key}", planner)
            snaps[key] = small_snapshot()
            (runs[key],) = conn.execute("select allocator_import_run(%s, %s)::text", (Jsonb(snaps[key]), org)).fetchone()
            (data,) = conn.execute("select allocator_run_snapshot(%s)", (runs[key],)).fetchone()
            fp = input_fingerprint(RunSnapshot.parse(data))
            for _ in range(2):
                conn.execute("select allocator_save_scenario(%s, 'Shared name', '{}', '{}', %s, %s)",
                             (runs[key], Jsonb(allocation_result(snaps[key])), fp))
        (version_a,) = conn.execute("select allocator_run_inputs_version(%s)", (runs["a"],)).fetchone()
        (sc_a,) = conn.execute("select id::text from allocator_latest_scenarios where run_id = %s",
                               (runs["a"],)).fetchone()
        (sc_b,) = conn.execute("select id::text from allocator_latest_scenarios where run_id = %s",
                               (runs["b"],)).fetchone()

    result = Jsonb(allocation_result(snaps["a"], shift=1))
    with acting_as(supabase_url, "authenticated", ana) as conn:
        latest = conn.execute("select run_id::text, version from allocator_latest_scenarios").fetchall()
        assert latest == [(runs["a"], 2)]
        assert conn.execute("select allocator_run_inputs_version(%s)", (runs["b"],)).fetchone() == (None,)
        with pytest.raises(psycopg.Error) as exc:  # another organisation's run
            conn.execute("select * from allocator_publish_new_version(%s, %s, %s, 'fp', %s)",
                         (runs["b"], sc_b, result, version_a))
        assert exc.value.sqlstate == "AL003"
        with pytest.raises(psycopg.Error) as exc:  # on behalf of someone else
            conn.execute("select * from allocator_publish_new_version(%s, %s, %s, 'fp', %s, null, false, %s)",
                         (runs["a"], sc_a, result, version_a, ben))
        assert exc.value.sqlstate == "AL005"
        (new_id, version) = conn.execute(
            "select scenario_id::text, version from allocator_publish_new_version(%s, %s, %s, 'fp', %s)",
            (runs["a"], sc_a, result, version_a)).fetchone()
        assert version == 3
        assert conn.execute("select created_by from allocator_scenarios where id = %s", (new_id,)).fetchone() == (ana,)
        assert conn.execute("select published_by from allocator_publication_log where scenario_id = %s",
                            (new_id,)).fetchone() == (ana,)


@pytest.mark.parametrize(
    ("settings", "overrides", "result", "words"),
    [
        # Each was saved, and read back it stopped the re-solve with a traceback ('str' object
        # has no attribute 'items') or was taken for an empty table.
        ("fast", {}, None, "A scenario's settings are a table of settings (setting: value), not \"fast\"."),
        ([], {}, None, "A scenario's settings are a table of settings (setting: value), not []."),
        ({}, [{"worker_id": "w1"}], None, "A scenario's changes are a table of changes"),
        ({}, {}, 5, "A scenario's result is a result (allocator-result/1) with a list of allocations"),
        ({}, {}, {"allocations": {"w1": "j1"}}, "A scenario's result is a result (allocator-result/1)"),
    ],
)
def test_the_database_refuses_a_scenario_whose_settings_changes_or_result_are_no_tables(
    store, sql, settings, overrides, result, words
):
    from psycopg.types.json import Jsonb

    run_id, _snap = import_small(store)
    fp = input_fingerprint(store.load_run(run_id))
    with pytest.raises(psycopg.Error) as refused:
        sql.execute(
            "select allocator_save_scenario(%s, 'odd', %s, %s, %s, %s, 'ana')",
            (run_id, Jsonb(settings), Jsonb(overrides), None if result is None else Jsonb(result), fp),
        )
    assert refused.value.sqlstate == "AL008"  # invalid input, said in the planner's words
    assert str(refused.value).startswith(words)
    assert store.list_scenarios(run_id) == []


@pytest.mark.parametrize("name", ["N" * 501, "Plan\x1bB"])
def test_the_database_refuses_a_scenario_name_beyond_a_names_limits(store, sql, name):
    run_id, _snap = import_small(store)
    fp = input_fingerprint(store.load_run(run_id))
    with pytest.raises(psycopg.Error) as refused:
        sql.execute("select allocator_save_scenario(%s, %s, '{}', '{}', null, %s, 'ana')", (run_id, name, fp))
    assert refused.value.sqlstate == "AL008"
    assert str(refused.value).startswith("A scenario's name has at most 500 characters, without control characters")
    assert store.list_scenarios(run_id) == []
