"""The HTTP API under faults and abuse (issue 9, items 4, 6, 7 and 10), on the real PostgreSQL.

- 30 concurrent solve POSTs for one run: exactly one 202, the others 409, one solve.
- With the database hanging or unreachable, /health still answers and says what is down,
  and requests fail with 503 instead of queueing.
- A key in the query string never reaches the access log; a short key is refused at start.
- SIGTERM stops `allocator api` and the embedded PostgreSQL it started.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from allocator.api import RedactCredentials, create_app
from allocator.config import AppConfig
from tests.helpers.named_runs import two_by_two as tiny

pytestmark = pytest.mark.db

REPO = Path(__file__).resolve().parents[1]
KEY = "correct horse battery staple"




def settings(db: str | None, api_key: str | None = KEY) -> AppConfig:
    return AppConfig(database_url=db, api_key=api_key, _env_file=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- 7. one claim


def test_concurrent_solve_posts_give_exactly_one_202(db, store):
    run_id = store.import_snapshot(tiny("raced"))
    n = 30
    barrier = threading.Barrier(n)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    with TestClient(create_app(settings(db), worker="api-race")) as client:
        def post() -> None:
            barrier.wait()
            r = client.post(f"/runs/{run_id}/solve", headers={"X-API-KEY": KEY})
            with lock:
                answers.append((r.status_code, r.json().get("detail", "")))

        threads = [threading.Thread(target=post) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)

    counts = Counter(code for code, _ in answers)
    assert counts == {202: 1, 409: n - 1}, answers
    assert all(detail for code, detail in answers if code == 409)
    with psycopg.connect(db) as conn:
        status, attempts = conn.execute(
            "select status, attempts from allocator_py_runs where id = %s", (run_id,)).fetchone()
        (logged,) = conn.execute(
            "select count(*) from allocator_publication_log where run_id = %s", (run_id,)).fetchone()
    # Solved once, by the one caller that got the claim.
    assert (status, attempts, logged) == ("complete", 1, 1)


# --------------------------------------------------------------------------- 6. database down


def test_health_answers_while_the_database_hangs_and_requests_do_not_queue(db):
    release = threading.Event()

    def hanging_store():
        release.wait(60)  # a database that accepts the connection but never answers
        raise AssertionError("released")

    app = create_app(settings(db), store_factory=hanging_store)
    try:
        with TestClient(app) as client:
            health = client.get("/health")
            assert health.status_code == 503
            body = health.json()
            assert body["status"] == "degraded"
            assert body["database"]["reachable"] is False
            assert "did not answer within" in body["database"]["error"]
            # The health ping still hangs: a second check waits for that same ping ...
            assert client.get("/health").status_code == 503
            # ... and a POST does not queue behind the connection being opened.
            r = client.post(f"/runs/{'0' * 8}-0000-0000-0000-{'0' * 12}/solve", headers={"X-API-KEY": KEY})
            assert r.status_code == 503
            assert "not available" in r.json()["detail"]
            assert not release.is_set()
            release.set()  # the database answers at last (with an error): shut down
    finally:
        release.set()


def test_with_the_database_unreachable_health_says_so_and_posts_are_503():
    port = _free_port()  # nothing listens there
    url = f"postgresql://nobody@127.0.0.1:{port}/nothing"
    with TestClient(create_app(settings(url), worker="api-down")) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["database"]["store"] == "database_url"
        assert "Cannot reach the database" in health.json()["database"]["error"]
        for path in (f"/runs/{'1' * 8}-1111-1111-1111-{'1' * 12}/solve", "/runs/process-pending"):
            r = client.post(path, headers={"X-API-KEY": KEY})
            assert r.status_code == 503, path
            assert "The database is not available" in r.json()["detail"]


# --------------------------------------------------------------------------- 4. the key


def test_a_key_in_the_query_string_never_reaches_the_access_log():
    # uvicorn's access log line: format and arguments as uvicorn.protocols.http logs them.
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/runs/process-pending?x=1&api_key=s3cr3t-v4lue&token=abc", "1.1", 401),
        None,
    )
    assert RedactCredentials().filter(record)
    line = record.getMessage()
    assert "s3cr3t-v4lue" not in line and "abc" not in line
    assert "api_key=[redacted]" in line and "x=1" in line and '" 401' in line


def test_posts_are_refused_when_the_configured_key_is_too_short(db):
    with TestClient(create_app(settings(db, api_key="fifteen-chars-k"))) as client:
        r = client.post("/runs/process-pending", headers={"X-API-KEY": "fifteen-chars-k"})
    assert r.status_code == 503
    assert "shorter than 16 characters" in r.json()["detail"]


@pytest.mark.parametrize("key", ["short", "fifteen-chars-k"])
def test_api_refuses_to_start_with_a_short_key(monkeypatch, capsys, tmp_path, key):
    from allocator.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALLOCATOR_API_KEY", key)
    with pytest.raises(SystemExit) as exited:
        main(["api", "--port", "1"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"is {len(key)} characters long" in err and "at least 16" in err
    assert key not in err  # the key itself is not printed


def test_a_key_no_header_can_carry_is_refused_at_start_and_on_every_post(db, monkeypatch, capsys, tmp_path):
    # Before, `allocator api` started with it and every POST answered 401, the right key or not.
    from allocator.cli import main

    key = "clé-secrète-très-longue-1234"
    with TestClient(create_app(settings(db, api_key=key))) as client:
        r = client.post("/runs/process-pending", headers={"X-API-KEY": key.encode("utf-8")})
    assert r.status_code == 503
    assert "holds characters an X-API-KEY header cannot carry" in r.json()["detail"]

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALLOCATOR_API_KEY", key)
    with pytest.raises(SystemExit) as exited:
        main(["api", "--port", "1"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "holds a character other than ASCII letters, digits, punctuation and inner spaces" in err and key not in err


# --------------------------------------------------------------------------- 10. SIGTERM


def _postgres_processes_of(directory: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "postgres" in cmdline and directory in cmdline:
            pids.append(int(entry.name))
    return pids


def test_sigterm_stops_the_api_and_the_embedded_server_it_started():
    directory = tempfile.mkdtemp(prefix="allocator-test-sigterm-")
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ALLOCATOR_", "SUPABASE_"))}
    env = {**base, "ALLOCATOR_DATA_DIR": directory, "ALLOCATOR_API_KEY": KEY, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "allocator", "api", "--port", str(port)],
        cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # the first health check starts the embedded server: wait until it is up
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the API and its database did not start"
            time.sleep(0.3)
        assert _postgres_processes_of(directory), "no embedded server found to stop"
        httpx.get(f"http://127.0.0.1:{port}/health?api_key=leaked-{KEY}", timeout=5)

        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
        assert "/health?api_key=[redacted]" in stdout, stdout  # uvicorn's access log, without the key
        assert f"leaked-{KEY}" not in stdout + stderr
        deadline = time.monotonic() + 15
        while _postgres_processes_of(directory) and time.monotonic() < deadline:
            time.sleep(0.2)  # the postmaster's children leave just after it
        assert _postgres_processes_of(directory) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for pid in _postgres_processes_of(directory):  # never leave a server behind
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)


def test_the_api_answers_503_during_an_outage_and_recovers_after_it(new_database, store):
    from test_worker_faults import CuttableProxy  # a real cut between the API and PostgreSQL

    url = new_database(migrated=True, prefix="apioutage")
    proxy = CuttableProxy(url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            (run_id,) = conn.execute("select allocator_import_run(%s)::text",
                                     (psycopg.types.json.Jsonb(tiny("outage")),)).fetchone()
        with TestClient(create_app(settings(proxy.url), worker="api-outage")) as client:
            assert client.get("/health").status_code == 200
            proxy.cut()
            health = client.get("/health")
            assert health.status_code == 503 and health.json()["database"]["error"]
            r = client.post(f"/runs/{run_id}/solve", headers={"X-API-KEY": KEY})
            assert r.status_code == 503
            assert "The database is not available" in r.json()["detail"]
            proxy.restore()
            for _ in range(20):  # the pool is renewed once the database answers again
                if client.get("/health").status_code == 200:
                    break
                time.sleep(0.5)
            else:
                pytest.fail("the API did not recover after the outage")
            assert client.post(f"/runs/{run_id}/solve", headers={"X-API-KEY": KEY}).status_code == 202
        with psycopg.connect(url) as conn:
            assert conn.execute("select status from allocator_py_runs where id = %s",
                                (run_id,)).fetchone() == ("complete",)
    finally:
        proxy.close()
