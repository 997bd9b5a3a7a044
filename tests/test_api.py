"""The HTTP API with FastAPI's test client, over the real embedded PostgreSQL.

The test client runs an answer's background tasks before it returns, so after a 202 the
database already shows what the background work did.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient

import allocator
from allocator.api import create_app
from allocator.config import AppConfig
from allocator.store.base import StoreError
from tests.helpers.named_runs import two_by_two as tiny

pytestmark = pytest.mark.db

KEY = "correct horse battery staple"




def settings(db: str, api_key: str | None = KEY) -> AppConfig:
    return AppConfig(database_url=db, api_key=api_key, _env_file=None)


@pytest.fixture
def client(db: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings(db), worker="api-test")) as c:
        yield c


def run_row(db: str, run_id: str) -> tuple[str, int, str | None, int]:
    with psycopg.connect(db) as conn:
        return conn.execute(
            "select status, attempts, claimed_by,"
            " (select count(*) from allocator_py_allocations a where a.run_id = r.id)::int"
            " from allocator_py_runs r where id = %s",
            (run_id,),
        ).fetchone()


def wait_for_status(db: str, run_id: str, status: str, seconds: float = 10.0) -> tuple:
    deadline = time.monotonic() + seconds
    while True:
        row = run_row(db, run_id)
        if row[0] == status or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


# --------------------------------------------------------------------------- health and docs


def test_health_reports_status_version_time_and_the_database(client):
    before = datetime.now(UTC)
    r = client.get("/health")

    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["version"] == allocator.__version__
    assert before <= datetime.fromisoformat(body["time"]) <= datetime.now(UTC)
    assert body["database"] == {"reachable": True, "store": "database_url", "error": None}


def test_health_is_503_when_the_database_cannot_be_opened(db):
    def unreachable():
        # What PostgresStore raises when its pool cannot connect (after a 30 s wait).
        raise StoreError("Cannot reach the database: connection refused")

    with TestClient(create_app(settings(db), store_factory=unreachable)) as c:
        r = c.get("/health")
    assert r.status_code == 503
    assert r.json()["status"] == "degraded"
    assert r.json()["database"]["reachable"] is False
    assert "connection refused" in r.json()["database"]["error"]


def test_openapi_docs_are_served_and_describe_the_key(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/health", "/runs/{run_id}/solve", "/runs/process-pending"} <= set(spec["paths"])
    (scheme,) = spec["components"]["securitySchemes"].values()
    assert scheme == {"type": "apiKey", "in": "header", "name": "X-API-KEY",
                      "description": scheme.get("description")}
    assert spec["paths"]["/runs/process-pending"]["post"]["security"]


# --------------------------------------------------------------------------- the key


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no key
        {"X-API-KEY": "wrong"},  # a wrong key
        {"X-API-KEY": KEY + " "},  # almost right is wrong
        {"X-API-KEY": ""},  # an empty key
        {"Authorization": f"Bearer {KEY}"},  # the right secret in the wrong header
    ],
)
@pytest.mark.parametrize("path", ["/runs/process-pending", f"/runs/{uuid.UUID(int=1)}/solve"])
def test_posts_without_the_right_key_are_401_and_do_nothing(client, store, db, headers, path):
    run_id = store.import_snapshot(tiny("untouched"))
    r = client.post(path, headers=headers)
    assert r.status_code == 401
    assert "X-API-KEY" in r.json()["detail"]
    assert run_row(db, run_id)[0] == "pending"
    store.claim_next("cleanup", 60, run_id=run_id)
    store.fail_run(run_id, "cleanup", "test over")


def test_posts_answer_503_when_no_key_is_configured(db):
    with TestClient(create_app(settings(db, api_key=None))) as c:
        r = c.post("/runs/process-pending", headers={"X-API-KEY": "anything"})
    assert r.status_code == 503
    assert "ALLOCATOR_API_KEY" in r.json()["detail"]


# --------------------------------------------------------------------------- the work


def test_solve_answers_202_and_the_run_is_solved_in_the_background(client, store, db):
    run_id = store.import_snapshot(tiny("solve-me"))
    other = store.import_snapshot(tiny("leave-me"))

    r = client.post(f"/runs/{run_id}/solve", headers={"X-API-KEY": KEY})

    assert r.status_code == 202
    assert r.json()["run_id"] == run_id and r.json()["accepted"] is True
    assert wait_for_status(db, run_id, "complete") == ("complete", 1, "api-test", 2)
    assert run_row(db, other)[0] == "pending"
    store.claim_next("cleanup", 60, run_id=other)
    store.fail_run(other, "cleanup", "test over")


@pytest.mark.parametrize(
    "run_id",
    [str(uuid.UUID(int=424242)), "not-a-run-id"],  # well-formed but unknown; malformed
)
def test_solve_of_an_unknown_run_is_404(client, run_id):
    r = client.post(f"/runs/{run_id}/solve", headers={"X-API-KEY": KEY})
    assert r.status_code == 404
    assert run_id in r.json()["detail"]


def test_solve_of_a_complete_run_is_409(client, store, db):
    run_id = store.import_snapshot(tiny("done"))
    client.post(f"/runs/{run_id}/solve", headers={"X-API-KEY": KEY})
    assert wait_for_status(db, run_id, "complete")[0] == "complete"

    r = client.post(f"/runs/{run_id}/solve", headers={"X-API-KEY": KEY})

    assert r.status_code == 409
    assert "already complete" in r.json()["detail"]
    assert run_row(db, run_id)[1] == 1  # not solved again


def test_process_pending_answers_202_and_solves_every_pending_run(client, store, db):
    ids = [store.import_snapshot(tiny(f"queue-{i}")) for i in range(3)]
    infeasible = store.import_snapshot(
        tiny("queue-bad", job_lines=[{"id": "j1", "max_n_workers": 1}, {"id": "j2", "max_n_workers": 0}])
    )

    r = client.post("/runs/process-pending", headers={"X-API-KEY": KEY})

    assert r.status_code == 202
    for run_id in ids:
        assert wait_for_status(db, run_id, "complete") == ("complete", 1, "api-test", 2)
    status, attempts, _, n = wait_for_status(db, infeasible, "failed")
    assert (status, attempts, n) == ("failed", 1, 0)
