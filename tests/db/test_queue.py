"""The headless queue: claim with SKIP LOCKED and a lease, complete, fail, requeue.

These tests use a database of their own: claim takes the oldest pending run of the whole
database, so runs imported by other tests would get in the way.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest

from allocator.store import ClaimLostError, StoreError
from allocator.store.postgres import PostgresStore
from tests.helpers.dbtools import allocation_result, small_snapshot

pytestmark = pytest.mark.db


@pytest.fixture
def queue(new_database):
    """A store on an empty migrated database of this test's own."""
    with PostgresStore(new_database(migrated=True, prefix="queue"), max_size=8) as s:
        yield s


def _import(store, n):
    return [store.import_snapshot(small_snapshot()) for _ in range(n)]


def test_claims_come_oldest_first_with_a_lease_and_an_attempt(queue):
    first, second = _import(queue, 2)
    claimed = queue.claim_next("w-1", lease_seconds=120)
    assert claimed is not None
    assert (claimed.run_id, claimed.worker, claimed.attempts) == (first, "w-1", 1)
    assert claimed.settings["rng_seed"] == 7  # the run's settings, from the snapshot
    assert queue.claim_next("w-2", lease_seconds=120).run_id == second
    assert queue.claim_next("w-3", lease_seconds=120) is None
    summary = {r.id: r for r in queue.list_runs()}
    assert (summary[first].status, summary[first].attempts) == ("running", 1)


def test_many_concurrent_claimers_get_each_run_exactly_once(queue):
    n_runs, n_claimers = 40, 6
    run_ids = _import(queue, n_runs)
    claims: list[tuple[str, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n_claimers)
    errors: list[BaseException] = []

    def claimer(name: str) -> None:
        try:
            barrier.wait()
            while (c := queue.claim_next(name, lease_seconds=300)) is not None:
                with lock:
                    claims.append((c.run_id, name))
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(f"claimer-{k}",)) for k in range(n_claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    counts = Counter(run for run, _ in claims)
    assert sorted(counts) == sorted(run_ids)
    assert set(counts.values()) == {1}


def test_an_expired_lease_makes_the_run_claimable_again(queue):
    (run_id,) = _import(queue, 1)
    snap = queue.load_run(run_id).model_dump(mode="json")
    first = queue.claim_next("crashed-worker", lease_seconds=0.2)
    assert first is not None and first.attempts == 1
    assert queue.claim_next("other", lease_seconds=60) is None  # still leased
    time.sleep(0.3)

    second = queue.claim_next("other", lease_seconds=60)
    assert second is not None
    assert (second.run_id, second.attempts) == (run_id, 2)

    # The first worker comes back: its claim is gone, and its result is refused.
    result = allocation_result(snap)
    with pytest.raises(ClaimLostError, match="no longer holds"):
        queue.complete_run(run_id, "crashed-worker", result["allocations"], result)
    with pytest.raises(ClaimLostError):
        queue.fail_run(run_id, "crashed-worker", "late")

    queue.complete_run(run_id, "other", result["allocations"], result)
    (entry,) = queue.publication_log(run_id)
    assert (entry.action, entry.published_by) == ("complete", "other")
    assert [(a.worker_id, a.job_line_id) for a in queue.allocations(run_id)] == [
        (a["worker_id"], a["job_line_id"]) for a in result["allocations"]]
    summary = {r.id: r for r in queue.list_runs()}[run_id]
    assert (summary.status, summary.published) == ("complete", True)
    assert queue.claim_next("third", lease_seconds=60) is None


def test_complete_is_atomic_and_checks_the_allocations(queue):
    (run_id,) = _import(queue, 1)
    queue.claim_next("w", lease_seconds=60)
    bad = [{"worker_id": "w1", "job_line_id": "j1"}, {"worker_id": "ghost", "job_line_id": "j1"}]
    with pytest.raises(StoreError, match="'ghost' is not part of this run"):
        queue.complete_run(run_id, "w", bad, {"status": "optimal"})
    twice = [{"worker_id": "w1", "job_line_id": "j1"}, {"worker_id": "w1", "job_line_id": "j2"}]
    with pytest.raises(StoreError, match="only once"):
        queue.complete_run(run_id, "w", twice, {"status": "optimal"})
    assert queue.allocations(run_id) == []
    assert {r.id: r for r in queue.list_runs()}[run_id].status == "running"


def test_a_failure_is_recorded_and_requeue_puts_the_run_back(queue):
    (run_id,) = _import(queue, 1)
    queue.claim_next("w", lease_seconds=60)
    queue.fail_run(run_id, "w", "Line 'j1' must be filled, but no eligible worker can take it")
    summary = {r.id: r for r in queue.list_runs()}[run_id]
    assert (summary.status, summary.attempts) == ("failed", 1)
    assert "must be filled" in summary.error
    assert queue.claim_next("w", lease_seconds=60) is None  # failed runs are not retried by themselves

    queue.requeue_run(run_id)
    again = queue.claim_next("w2", lease_seconds=60)
    assert again is not None and (again.run_id, again.attempts) == (run_id, 1)


def test_a_run_whose_lease_keeps_expiring_is_given_up(queue):
    (run_id,) = _import(queue, 1)
    with psycopg.connect(queue.url, autocommit=True) as conn:
        for k in range(3):
            (claimed,) = conn.execute(
                "select run_id::text from allocator_claim(%s, 0.05, null, 3)", (f"w{k}",)
            ).fetchone()
            assert claimed == run_id
            time.sleep(0.1)
        assert conn.execute("select * from allocator_claim('w9', 0.05, null, 3)").fetchone() is None
        status, error = conn.execute(
            "select status, error from allocator_py_runs where id = %s", (run_id,)
        ).fetchone()
    assert status == "failed"
    assert "3 attempts" in error


def test_claiming_one_run_by_id(queue):
    first, second = _import(queue, 2)
    claimed = queue.claim_next("w", lease_seconds=60, run_id=second)
    assert claimed is not None and claimed.run_id == second
    assert queue.claim_next("w", lease_seconds=60, run_id=second) is None  # already running
    assert queue.claim_next("w", lease_seconds=60).run_id == first


@pytest.mark.parametrize("lease", [1e300, 1e12, float("nan")])
def test_a_lease_beyond_a_week_is_refused_by_the_database(queue, lease):
    # 1e300 s was "interval out of range", 1e12 s "timestamp too large (after year 10K)".
    (run_id,) = _import(queue, 1)
    with psycopg.connect(queue.url, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("select * from allocator_claim('w-1', %s, %s)", (lease, run_id))
    assert refused.value.sqlstate == "AL008"
    assert "at most 604800 (a week)" in str(refused.value)
    assert {r.id: r for r in queue.list_runs()}[run_id].status == "pending"


def test_a_lease_of_exactly_a_week_is_taken_and_renewed(queue):
    # The bound is inclusive: `--lease 604800` is what the command line allows.
    (run_id,) = _import(queue, 1)
    claimed = queue.claim_next("w-1", lease_seconds=604_800, run_id=run_id)
    assert claimed is not None and claimed.run_id == run_id
    expires = queue.renew_lease(run_id, "w-1", 604_800)
    assert abs((expires - datetime.now(UTC)).total_seconds() - 604_800) < 600
