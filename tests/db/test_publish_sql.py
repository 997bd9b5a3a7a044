"""Publishing: atomic, refuses stale and already-published scenarios, one winner in a race."""

from __future__ import annotations

import threading

import psycopg
import pytest

from allocator.store import (
    Allocation,
    AlreadyPublishedError,
    PublishRefusedError,
    ScenarioNotFoundError,
    StaleScenarioError,
    StoreError,
    input_fingerprint,
)
from tests.helpers.dbtools import allocation_result, import_small

pytestmark = pytest.mark.db


def _scenario(store, run_id, snap, *, shift=0, name="s", status="optimal"):
    fp = input_fingerprint(store.load_run(run_id))
    result = allocation_result(snap, shift=shift, status=status)
    return store.save_scenario(run_id, name, snap["settings"], {}, result, fp), result


def _state(sql, run_id):
    """Everything publish may change for a run."""
    return (
        sql.execute("select status, completed_at, published_scenario_id from allocator_py_runs where id = %s",
                    (run_id,)).fetchone(),
        sql.execute("select worker_id, job_line_id from allocator_py_allocations where run_id = %s order by 1",
                    (run_id,)).fetchall(),
        sql.execute("select count(*) from allocator_publication_log where run_id = %s", (run_id,)).fetchone(),
    )


def _as_allocations(result):
    return [Allocation(a["worker_id"], a["job_line_id"], a["worker_rank"], a["cost"]) for a in result["allocations"]]


def test_publish_writes_allocations_completes_the_run_and_logs_it(store):
    run_id, snap = import_small(store)
    scenario_id, result = _scenario(store, run_id, snap)

    outcome = store.publish(run_id, scenario_id, published_by="ana")

    assert (outcome.run_id, outcome.scenario_id, outcome.superseded) == (run_id, scenario_id, False)
    assert outcome.n_allocations == len(snap["workers"])
    assert store.allocations(run_id) == _as_allocations(result)
    summary = {r.id: r for r in store.list_runs()}[run_id]
    assert (summary.status, summary.published) == ("complete", True)
    (entry,) = store.publication_log(run_id)
    assert (entry.id, entry.action, entry.scenario_id, entry.published_by) == (
        outcome.publication_id, "publish", scenario_id, "ana")
    assert entry.allocations == _as_allocations(result)
    assert entry.previous_allocations == []


def test_second_publish_is_refused_unless_superseded_with_a_reason(store, sql):
    run_id, snap = import_small(store)
    first, first_result = _scenario(store, run_id, snap, name="first")
    second, second_result = _scenario(store, run_id, snap, shift=1, name="second")
    assert first_result["allocations"] != second_result["allocations"]
    store.publish(run_id, first)
    before = _state(sql, run_id)

    with pytest.raises(AlreadyPublishedError, match="already published") as exc:
        store.publish(run_id, second)
    assert "supersede" in str(exc.value)
    with pytest.raises(PublishRefusedError, match="reason"):
        store.publish(run_id, second, supersede=True, reason="  ")
    assert _state(sql, run_id) == before

    outcome = store.publish(run_id, second, supersede=True, reason="Dr B's leave was approved")
    assert outcome.superseded
    assert store.allocations(run_id) == _as_allocations(second_result)
    log = store.publication_log(run_id)
    assert [e.action for e in log] == ["publish", "supersede"]
    # The old allocations stay in the log: in their own entry and as what was replaced.
    assert log[0].allocations == _as_allocations(first_result)
    assert log[1].previous_allocations == _as_allocations(first_result)
    assert log[1].reason == "Dr B's leave was approved"


def test_a_stale_scenario_is_refused(store, sql):
    run_id, snap = import_small(store)
    scenario_id, _ = _scenario(store, run_id, snap)
    # An input changes after the solve: a worker moves a job line up their list.
    sql.execute(
        "update preference_worker_job_lines p set rank = rank + 10 from worker_mappings w "
        "where w.id = p.worker_id and w.external_id = 'w1' and p.allocation_run_id = "
        "(select allocation_run_id from allocator_py_runs where id = %s)",
        (run_id,),
    )
    before = _state(sql, run_id)
    with pytest.raises(StaleScenarioError, match="inputs changed") as exc:
        store.publish(run_id, scenario_id)
    assert "Solve" in str(exc.value)
    assert _state(sql, run_id) == before

    # Solved again on the current inputs, it publishes.
    fresh, _ = _scenario(store, run_id, snap)
    store.publish(run_id, fresh)
    assert _state(sql, run_id)[0][0] == "complete"


def test_other_settings_in_a_scenario_do_not_make_it_stale(store):
    run_id, snap = import_small(store)
    solved_on = store.load_run(run_id).with_settings(preferencer_weight=0.9, rng_seed=99)
    result = allocation_result(snap)
    scenario_id = store.save_scenario(
        run_id, "alpha 0.9", solved_on.settings.model_dump(), {}, result, input_fingerprint(solved_on))
    assert store.publish(run_id, scenario_id).n_allocations == len(snap["workers"])


def test_a_change_between_the_load_and_the_publish_is_refused(store, sql):
    # The store reads the snapshot and inputs_version together, then calls publish; a change
    # that lands in between moves inputs_version, and the database refuses.
    run_id, snap = import_small(store)
    scenario_id, _ = _scenario(store, run_id, snap)
    fp = input_fingerprint(store.load_run(run_id))
    (version,) = sql.execute("select allocator_run_inputs_version(%s)", (run_id,)).fetchone()
    sql.execute(
        "update worker_mappings set name = name || ' (renamed)' where allocation_run_id = "
        "(select allocation_run_id from allocator_py_runs where id = %s) and external_id = 'w2'",
        (run_id,),
    )
    with pytest.raises(psycopg.Error, match="changed while publishing") as exc:
        sql.execute("select * from allocator_publish(%s, %s, %s, null, false, null, %s)",
                    (run_id, scenario_id, fp, version))
    assert exc.value.sqlstate == "AL001"


def test_publish_is_atomic_when_it_fails_midway(store, sql):
    run_id, snap = import_small(store, n_workers=6, n_lines=3)
    scenario_id, _ = _scenario(store, run_id, snap)
    before = _state(sql, run_id)
    # Fail on the 4th allocation row written for this run.
    sql.execute(f"""
        create or replace function public.test_fail_on_fourth() returns trigger language plpgsql as $$
        begin
          if (select count(*) from public.allocator_py_allocations where run_id = '{run_id}') >= 4 then
            raise exception 'injected failure';
          end if;
          return new;
        end $$;
    """)
    sql.execute(
        "create trigger zz_inject_failure before insert on allocator_py_allocations "
        f"for each row when (new.run_id = '{run_id}') execute function public.test_fail_on_fourth()"
    )
    try:
        with pytest.raises(StoreError, match="injected failure"):
            store.publish(run_id, scenario_id)
    finally:
        sql.execute("drop trigger zz_inject_failure on allocator_py_allocations")
        sql.execute("drop function public.test_fail_on_fourth()")
    assert _state(sql, run_id) == before
    assert store.publication_log(run_id) == []

    store.publish(run_id, scenario_id)  # without the fault, it goes through
    assert len(store.allocations(run_id)) == 6


def test_two_concurrent_publishes_of_one_run_exactly_one_wins(store, sql):
    run_id, snap = import_small(store)
    scenarios = [_scenario(store, run_id, snap, shift=k, name=f"s{k}")[0] for k in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[object] = [None, None]

    def publish(k: int) -> None:
        barrier.wait()
        try:
            outcomes[k] = store.publish(run_id, scenarios[k], published_by=f"planner-{k}")
        except StoreError as exc:
            outcomes[k] = exc

    threads = [threading.Thread(target=publish, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    winners = [o for o in outcomes if not isinstance(o, StoreError)]
    losers = [o for o in outcomes if isinstance(o, StoreError)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert isinstance(losers[0], AlreadyPublishedError)
    (entry,) = store.publication_log(run_id)
    assert entry.scenario_id == winners[0].scenario_id


def test_a_scenario_without_an_allocation_is_refused(store):
    run_id, snap = import_small(store)
    infeasible, _ = _scenario(store, run_id, snap, status="infeasible")
    with pytest.raises(PublishRefusedError, match="infeasible"):
        store.publish(run_id, infeasible)
    fp = input_fingerprint(store.load_run(run_id))
    empty = store.save_scenario(run_id, "empty", {}, {}, None, fp)
    with pytest.raises(PublishRefusedError, match="no allocations"):
        store.publish(run_id, empty)


def test_a_scenario_of_another_run_is_refused(store):
    run_a, snap_a = import_small(store)
    run_b, _ = import_small(store)
    scenario_a, _ = _scenario(store, run_a, snap_a)
    with pytest.raises(ScenarioNotFoundError):
        store.publish(run_b, scenario_a)


def test_the_publication_log_cannot_be_changed_even_by_the_owner(store, sql):
    run_id, snap = import_small(store)
    scenario_id, _ = _scenario(store, run_id, snap)
    store.publish(run_id, scenario_id)
    for statement in (
        "update allocator_publication_log set reason = 'edited' where run_id = %s",
        "delete from allocator_publication_log where run_id = %s",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            sql.execute(statement, (run_id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        sql.execute("truncate allocator_publication_log")
    assert len(store.publication_log(run_id)) == 1
