"""Headless workers in parallel: every run solved exactly once; a dead worker's run taken over.

Real ``allocator process-pending`` processes against one database on the session's
embedded PostgreSQL; everything is checked from the database afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from allocator import service
from allocator.store.base import ClaimLostError

pytestmark = pytest.mark.db

REPO = Path(__file__).resolve().parents[1]
N_RUNS = 40
N_WORKERS = 4


def tiny(i: int) -> dict:
    """Three workers, two lines; a different preference per run so the runs differ."""
    return {
        "format": "allocator-run/1",
        "run": {"id": f"run-{i}"},
        "settings": {"max_seconds": 20, "rng_seed": i},
        "workers": [{"id": "w1"}, {"id": "w2"}, {"id": "w3"}],
        "job_lines": [{"id": "j1", "max_n_workers": 2}, {"id": "j2", "max_n_workers": 2}],
        "worker_preferences": [{"worker_id": f"w{1 + i % 3}", "job_line_id": "j2", "rank": 1}],
    }


def start_worker(db: str, cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOCATOR_", "SUPABASE_"))}
    env.update(ALLOCATOR_DATABASE_URL=db, PYTHONPATH=str(REPO), ALLOCATOR_SOLVER_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "allocator", "process-pending", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def rows(db: str, run_ids: list[str]) -> dict[str, tuple]:
    with psycopg.connect(db) as conn:
        found = conn.execute(
            """
            select r.id::text, r.status, r.attempts, r.claimed_by,
                   (select count(*) from allocator_py_allocations a where a.run_id = r.id),
                   (select count(*) from allocator_publication_log l
                     where l.run_id = r.id and l.action = 'complete')
              from allocator_py_runs r
             where r.id = any(%s::uuid[])
            """,
            (run_ids,),
        ).fetchall()
    return {r[0]: r[1:] for r in found}


def test_four_workers_over_forty_runs_solve_each_run_exactly_once(store, db, tmp_path):
    service.process_pending(store, worker="drain")  # nothing left from other tests
    run_ids = [store.import_snapshot(tiny(i)) for i in range(N_RUNS)]

    workers = [start_worker(db, tmp_path, "--worker", f"worker-{k}", "--lease", "60") for k in range(N_WORKERS)]
    results = [finish(p) for p in workers]

    for code, _, err in results:
        assert code == 0, err
        assert "Traceback" not in err
    state = rows(db, run_ids)
    assert len(state) == N_RUNS
    for run_id, (status, attempts, claimed_by, n_allocations, n_completions) in state.items():
        assert status == "complete", run_id
        assert attempts == 1, run_id  # claimed once: no run was solved twice
        assert n_allocations == 3, run_id  # one allocation set: a line per worker
        assert n_completions == 1, run_id  # completed once
        assert claimed_by in {f"worker-{k}" for k in range(N_WORKERS)}
    # Each worker reported the runs it solved; together they name every run once.
    reported = Counter(line.split(":")[0] for _, out, _ in results for line in out.splitlines())
    assert reported == Counter(run_ids)


def test_a_claimed_run_is_left_alone_while_its_lease_lasts(store, db):
    service.process_pending(store, worker="drain")
    run_id = store.import_snapshot(tiny(98))
    assert store.claim_next("busy-worker", 120.0, run_id=run_id) is not None

    assert service.process_pending(store, worker="other") == []
    assert rows(db, [run_id])[run_id][:3] == ("running", 1, "busy-worker")
    store.fail_run(run_id, "busy-worker", "test over")


def test_a_dead_workers_run_is_solved_by_another_after_its_lease(store, db, tmp_path):
    service.process_pending(store, worker="drain")
    run_id = store.import_snapshot(tiny(99))
    # A worker claims the run with a short lease and dies before finishing (nothing is
    # written back: the claim is all it leaves behind).
    dead = store.claim_next("dead-worker", 1.0, run_id=run_id)
    assert dead is not None and dead.attempts == 1

    time.sleep(max(0.0, (dead.lease_expires_at - datetime.now(UTC)).total_seconds()) + 0.2)
    code, out, err = finish(start_worker(db, tmp_path, "--worker", "rescuer"))

    assert code == 0, err
    assert out.startswith(f"{run_id}: complete")
    assert rows(db, [run_id])[run_id] == ("complete", 2, "rescuer", 3, 1)
    # Were the dead worker to wake up, its result would be refused, not written over.
    with pytest.raises(ClaimLostError):
        store.complete_run(run_id, "dead-worker", [{"worker_id": "w1", "job_line_id": "j1"}])
    with pytest.raises(ClaimLostError):
        store.fail_run(run_id, "dead-worker", "late")
    assert rows(db, [run_id])[run_id] == ("complete", 2, "rescuer", 3, 1)


def test_a_worker_that_loses_its_claim_writes_nothing(store, db):
    """The service's side of a lost claim: the outcome says 'lost' and the run is untouched."""
    service.process_pending(store, worker="drain")
    run_id = store.import_snapshot(tiny(7))
    slow = store.claim_next("slow-worker", 0.5, run_id=run_id)
    assert slow is not None
    time.sleep(0.7)
    assert [o.status for o in service.process_pending(store, worker="fast-worker")] == ["complete"]

    outcome = service._solve_claimed(store, slow, "slow-worker", None)

    assert outcome.status == "lost" and "no longer holds" in (outcome.error or "")
    assert rows(db, [run_id])[run_id] == ("complete", 2, "fast-worker", 3, 1)
