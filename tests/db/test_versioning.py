"""Change tracking: allocator_run_inputs_version moves exactly when a run's inputs may change."""

from __future__ import annotations

import pytest

from allocator.store import StaleScenarioError, input_fingerprint
from tests.helpers.dbtools import allocation_result, import_small

pytestmark = pytest.mark.db


def _version(sql, run_id):
    return sql.execute("select allocator_run_inputs_version(%s)", (run_id,)).fetchone()[0]


def _allocation_run(sql, run_id):
    return sql.execute("select allocation_run_id from allocator_py_runs where id = %s", (run_id,)).fetchone()[0]


@pytest.mark.parametrize(
    "statement",
    [
        # each statement changes one input table of the run's allocation run
        "update worker_mappings set name = name || '!' where allocation_run_id = %(ar)s and external_id = 'w1'",
        "update job_lines set max_n_workers = max_n_workers + 1 where allocation_run_id = %(ar)s and external_id = 'j2'",
        "delete from preference_worker_job_lines where allocation_run_id = %(ar)s and id = "
        "(select min(id) from preference_worker_job_lines where allocation_run_id = %(ar)s)",
        "update preference_preferencer_workers set rank = rank + 1 where allocation_run_id = %(ar)s",
        "delete from job_line_eligibility_items where allocation_run_id = %(ar)s",
        "update allocation_run_preferencer_weightings set value = value * 2 where allocation_run_id = %(ar)s",
        "delete from worker_qualifications where allocation_run_id = %(ar)s",
        "update allocator_py_runs set is_exclusive = true where id = %(run)s",
        "delete from allocator_py_run_overrides where run_id = %(run)s",
    ],
)
def test_any_input_change_moves_the_version(store, sql, statement):
    run_id, _ = import_small(store)
    ar = _allocation_run(sql, run_id)
    before = _version(sql, run_id)
    cur = sql.execute(statement, {"ar": ar, "run": run_id})
    assert cur.rowcount >= 1  # the statement did change something (often several rows)
    assert _version(sql, run_id) == before + 1


def test_many_changes_in_one_transaction_move_the_version_once(store, sql):
    run_id, _ = import_small(store)
    ar = _allocation_run(sql, run_id)
    before = _version(sql, run_id)
    with sql.transaction():
        sql.execute("update worker_mappings set name = name || '?' where allocation_run_id = %s", (ar,))
        sql.execute("update preference_worker_job_lines set rank = rank + 1 where allocation_run_id = %s", (ar,))
        sql.execute("delete from allocation_run_preferencer_weightings where allocation_run_id = %s", (ar,))
    assert _version(sql, run_id) == before + 1


def test_reading_and_solving_do_not_move_the_version(store, sql):
    run_id, snap = import_small(store)
    before = _version(sql, run_id)
    store.load_run(run_id)
    fp = input_fingerprint(store.load_run(run_id))
    store.save_scenario(run_id, "s", {}, {}, allocation_result(snap), fp)
    store.claim_next("w", 60, run_id=run_id)
    assert _version(sql, run_id) == before


def test_a_sibling_completing_makes_an_exclusive_runs_scenario_stale(store, sql):
    run_id, snap = import_small(store, n_workers=4, n_lines=3, capacity=2)
    ar = _allocation_run(sql, run_id)
    (exclusive,) = sql.execute(
        "insert into allocator_py_runs (allocation_run_id, is_exclusive) values (%s, true) returning id::text",
        (ar,)).fetchone()
    (inclusive,) = sql.execute(
        "insert into allocator_py_runs (allocation_run_id) values (%s) returning id::text", (ar,)).fetchone()
    fp_exclusive = input_fingerprint(store.load_run(exclusive))
    scenario = store.save_scenario(exclusive, "before", {}, {}, allocation_result(snap), fp_exclusive)
    versions = {r: _version(sql, r) for r in (exclusive, inclusive)}

    store.claim_next("w", 60, run_id=run_id)
    store.complete_run(run_id, "w", [{"worker_id": "w1", "job_line_id": "j1"}])

    assert _version(sql, exclusive) > versions[exclusive]
    assert _version(sql, inclusive) == versions[inclusive]  # not exclusive: its inputs did not change
    assert input_fingerprint(store.load_run(exclusive)) != fp_exclusive
    with pytest.raises(StaleScenarioError):
        store.publish(exclusive, scenario)
