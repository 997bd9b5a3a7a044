"""The service's use cases against the real embedded PostgreSQL (the session's server).

These tests use a database of their own (``new_database``), because process_pending solves
every pending run it can see, and the shared database holds other tests' runs.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from allocator import service
from allocator.engine import solve
from allocator.snapshot import RunSnapshot, SnapshotError
from allocator.store.base import (
    AlreadyPublishedError,
    ClaimedRun,
    InvalidSnapshotError,
    RunNotFoundError,
    input_fingerprint,
)
from allocator.store.postgres import PostgresStore

pytestmark = pytest.mark.db


def tiny(run_id: str = "tiny", **extra) -> dict:
    """Three workers, two lines of two places; w1 and w2 both want j1 most."""
    return {
        "format": "allocator-run/1",
        "run": {"id": run_id, "name": f"Run {run_id}"},
        "settings": {"max_seconds": 10},
        "workers": [{"id": "w1"}, {"id": "w2"}, {"id": "w3", "qualification_ids": ["rural"]}],
        "job_lines": [
            {"id": "j1", "name": "Line 1", "max_n_workers": 2},
            {"id": "j2", "name": "Line 2", "max_n_workers": 2},
        ],
        "worker_preferences": [
            {"worker_id": "w1", "job_line_id": "j1", "rank": 1},
            {"worker_id": "w2", "job_line_id": "j1", "rank": 1},
            {"worker_id": "w3", "job_line_id": "j2", "rank": 1},
        ],
        **extra,
    }


def infeasible(run_id: str = "no-way") -> dict:
    """Line j2 must be filled, but only workers tagged 'paediatrics' may take it: none is."""
    return tiny(
        run_id,
        job_lines=[
            {"id": "j1", "max_n_workers": 3},
            {"id": "j2", "max_n_workers": 1, "must_have_workers": True},
        ],
        eligibility=[{"job_line_id": "j2", "included_qualification_ids": ["paediatrics"]}],
    )


def run_row(db: str, run_id: str) -> dict:
    with psycopg.connect(db, row_factory=psycopg.rows.dict_row) as conn:
        row = conn.execute(
            "select status, attempts, error, claimed_by, result is not null as has_result,"
            " (select count(*) from allocator_py_allocations a where a.run_id = r.id) as n_allocations"
            " from allocator_py_runs r where id = %s",
            (run_id,),
        ).fetchone()
    assert row is not None
    return row


def write(tmp_path, name: str, data: dict):
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- headless solving


def test_import_then_process_pending_writes_allocations_and_completes(store, db, tmp_path):
    run_id = service.import_file(store, write(tmp_path, "tiny.json", tiny("pp")))
    assert run_row(db, run_id)["status"] == "pending"

    outcomes = service.process_pending(store, worker="test-worker")

    mine = [o for o in outcomes if o.run_id == run_id]
    assert len(mine) == 1 and mine[0].status == "complete", mine
    assert mine[0].solve_status == "optimal" and mine[0].n_allocations == 3
    row = run_row(db, run_id)
    assert (row["status"], row["attempts"], row["claimed_by"], row["error"]) == ("complete", 1, "test-worker", None)
    assert row["has_result"] and row["n_allocations"] == 3
    # The written allocations are the engine's, for the run's own settings.
    expected = solve(RunSnapshot.parse(tiny("pp"))).to_dict()["allocations"]
    written = [(a.worker_id, a.job_line_id) for a in store.allocations(run_id)]
    assert written == [(a["worker_id"], a["job_line_id"]) for a in expected]
    assert mine[0].objective == pytest.approx(solve(RunSnapshot.parse(tiny("pp"))).to_dict()["objective"])
    assert [e.action for e in store.publication_log(run_id)] == ["complete"]
    # Nothing is left for a second pass.
    assert service.process_pending(store, worker="test-worker") == []


def test_an_infeasible_run_is_failed_with_its_diagnosis(store, db):
    run_id = store.import_snapshot(infeasible())
    diagnosis = solve(RunSnapshot.parse(infeasible())).to_dict()["diagnosis"]
    assert diagnosis, "the fixture must be infeasible"

    outcome = service.solve_run(store, run_id, worker="test-worker")

    assert (outcome.status, outcome.solve_status) == ("failed", "infeasible")
    row = run_row(db, run_id)
    assert row["status"] == "failed" and row["n_allocations"] == 0
    for d in diagnosis:
        assert d["message"] in row["error"]
    assert row["error"] == outcome.error


def test_solve_run_solves_exactly_that_run(store, db):
    first = store.import_snapshot(tiny("first"))
    second = store.import_snapshot(tiny("second"))

    outcome = service.solve_run(store, second, worker="test-worker")

    assert outcome.run_id == second and outcome.status == "complete"
    assert run_row(db, second)["status"] == "complete"
    assert run_row(db, first)["status"] == "pending"
    service.solve_run(store, first, worker="test-worker")


def test_solve_run_refuses_a_complete_run_and_retries_a_failed_one(store, db):
    run_id = store.import_snapshot(tiny("retry"))
    claim = store.claim_next("crashy", 60, run_id=run_id)
    assert claim is not None
    store.fail_run(run_id, "crashy", "The machine was switched off.")

    outcome = service.solve_run(store, run_id, worker="test-worker")

    assert outcome.status == "complete"
    assert run_row(db, run_id)["attempts"] == 1  # requeued: the count starts again
    with pytest.raises(service.ServiceError, match="already complete"):
        service.solve_run(store, run_id, worker="test-worker")


def test_solve_run_refuses_a_run_another_worker_holds(store, db):
    run_id = store.import_snapshot(tiny("held"))
    assert store.claim_next("other", 60, run_id=run_id) is not None
    with pytest.raises(service.ServiceError, match="being solved"):
        service.solve_run(store, run_id, worker="test-worker")
    assert run_row(db, run_id)["claimed_by"] == "other"
    store.fail_run(run_id, "other", "test over")


@pytest.mark.parametrize(
    "run_id",
    [
        str(uuid.UUID(int=12345)),  # well-formed, but no such run
        "not-a-run-id",  # malformed: still "not found", never a SQL error
    ],
)
def test_solve_run_of_an_unknown_run_is_not_found(store, run_id):
    with pytest.raises(RunNotFoundError):
        service.solve_run(store, run_id, worker="test-worker")


def test_process_pending_once_solves_one_run(store, db):
    service.process_pending(store, worker="drain")  # start from an empty queue
    a = store.import_snapshot(tiny("once-a"))
    b = store.import_snapshot(tiny("once-b"))

    outcomes = service.process_pending(store, worker="test-worker", once=True)

    assert [o.run_id for o in outcomes] == [a]  # oldest first
    assert run_row(db, b)["status"] == "pending"
    assert [o.run_id for o in service.process_pending(store, worker="test-worker")] == [b]


def test_a_solve_never_outlives_its_lease():
    """The time limit is cut to what the lease leaves, so a slow solve cannot lose its claim."""
    snap = RunSnapshot.parse(tiny("lease"))  # max_seconds 10
    now = datetime.now(UTC)
    short = ClaimedRun("r", "w", 1, now + timedelta(seconds=5))
    long = ClaimedRun("r", "w", 1, now + timedelta(seconds=600))
    assert 2.0 < service._time_budget(snap, short) < 5.0
    assert service._time_budget(snap, long) == 10.0


# --------------------------------------------------------------------------- files


def test_import_export_import_changes_nothing(store, tmp_path):
    first = service.import_file(store, write(tmp_path, "in.json", tiny("round", pins=[{"worker_id": "w3", "job_line_id": "j2"}])))
    exported = service.export_run(store, first)
    again = service.import_file(store, write(tmp_path, "again.json", json.loads(exported)))

    assert service.export_run(store, again) == exported
    assert store.load_run(again) == store.load_run(first) == RunSnapshot.parse(json.loads(exported))


def test_workbook_import_and_export_roundtrip(store, tmp_path):
    first = store.import_snapshot(tiny("sheet"))
    out = tmp_path / "run.xlsx"

    service.export_run(store, first, out)  # the format follows the extension
    again = service.import_file(store, out)

    assert store.load_run(again) == store.load_run(first)


def test_export_to_a_missing_folder_writes_nothing(store, tmp_path):
    run_id = store.import_snapshot(tiny("nowhere"))
    with pytest.raises(service.ServiceError, match="Cannot write"):
        service.export_run(store, run_id, tmp_path / "no-such-folder" / "run.json")
    assert not (tmp_path / "no-such-folder").exists()


def test_invalid_files_are_refused_naming_the_entry_and_store_nothing(store, tmp_path):
    before = len(store.list_runs())
    bad = tiny("bad", worker_preferences=[{"worker_id": "w9", "job_line_id": "j1", "rank": 1}])
    with pytest.raises(SnapshotError, match=r"worker_preferences\[0\].*'w9'"):
        service.import_file(store, write(tmp_path, "bad.json", bad))
    with pytest.raises(service.ServiceError, match="cannot read a .csv file"):
        service.import_file(store, tmp_path / "run.csv")
    with pytest.raises(SnapshotError, match="File not found"):
        service.import_file(store, tmp_path / "missing.xlsx")
    with pytest.raises(InvalidSnapshotError):
        store.import_snapshot({"format": "allocator-run/1", "workers": [], "job_lines": []})
    assert len(store.list_runs()) == before


# --------------------------------------------------------------------------- scenarios


def test_save_scenario_publish_and_the_log(store, db):
    run_id = store.import_snapshot(tiny("publish"))
    snap = service.load_run(store, run_id).with_settings(preferencer_weight=0.6)
    result = service.solve_snapshot(snap).to_dict()
    scenario_id = service.save_scenario(
        store, run_id, "  Supervisors 60%  ", settings=snap.settings.model_dump(), overrides=None,
        result=result, fingerprint=input_fingerprint(snap), created_by="planner@example.org",
    )
    (saved,) = service.list_scenarios(store, run_id)
    assert (saved.id, saved.name) == (scenario_id, "Supervisors 60%")

    outcome = service.publish(store, run_id, scenario_id, published_by="planner@example.org")

    assert outcome.n_allocations == 3 and not outcome.superseded
    assert service.get_run(store, run_id).status == "complete"
    with pytest.raises(AlreadyPublishedError):
        service.publish(store, run_id, scenario_id)
    with pytest.raises(service.ServiceError, match="needs a reason"):
        service.publish(store, run_id, scenario_id, supersede=True, reason="  ")
    service.publish(store, run_id, scenario_id, supersede=True, reason="Swap agreed by the director")
    log = service.publication_log(store, run_id)
    assert [e.action for e in log] == ["publish", "supersede"]
    assert log[1].reason == "Swap agreed by the director"


def test_save_scenario_needs_a_name(store):
    with pytest.raises(service.ServiceError, match="needs a name"):
        service.save_scenario(store, str(uuid.uuid4()), " ", settings={}, overrides=None, result=None, fingerprint="f")


# --------------------------------------------------------------------------- the store


def test_open_store_follows_the_configuration(db):
    from allocator.config import AppConfig
    from allocator.store.supabase import SupabaseStore

    pg = service.open_store(AppConfig(database_url=db, supabase_url="https://x.supabase.co", supabase_key="k", _env_file=None))
    try:
        assert isinstance(pg, PostgresStore)  # a database URL wins over a Supabase project
        service.ping(pg)
    finally:
        pg.close()
    sb = service.open_store(AppConfig(database_url=None, supabase_url="https://x.supabase.co", supabase_key="k", _env_file=None))
    assert isinstance(sb, SupabaseStore)


def test_write_file_atomically_gives_the_mode_open_would(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        new_file = tmp_path / "new.json"
        service.write_file_atomically(new_file, "{}\n")
        assert stat.S_IMODE(new_file.stat().st_mode) == 0o644
        assert new_file.read_text(encoding="utf-8") == "{}\n"

        kept = tmp_path / "kept.json"
        kept.write_text("old", encoding="utf-8")
        kept.chmod(0o600)
        service.write_file_atomically(kept, b"new")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert kept.read_bytes() == b"new"
    finally:
        os.umask(old)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_write_file_atomically_names_the_file_it_cannot_write(tmp_path):
    with pytest.raises(service.ServiceError, match="Cannot write .*missing"):
        service.write_file_atomically(tmp_path / "missing" / "x.json", "{}")
