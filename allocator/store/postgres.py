"""The ``postgres`` store: psycopg 3 with a connection pool, against any PostgreSQL.

Used for the embedded database and for any ``ALLOCATOR_DATABASE_URL`` (including a
Supabase project's connection string). Connections are autocommit; every unit of work runs
in an explicit ``conn.transaction()``. Every write is one call of a SQL function from
``supabase/migrations``, so the work is atomic in the database itself.

The connection is trusted: it sees every organisation's runs (row-level security is for
planners signed in through the Supabase API; see the ``supabase`` store).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from allocator.snapshot import RunSnapshot
from allocator.store.base import (
    Allocation,
    ClaimedRun,
    DatabaseUnavailableError,
    LateWorker,
    PublicationEntry,
    PublishOutcome,
    RunChange,
    RunNotFoundError,
    RunSummary,
    Scenario,
    ScenarioNotFoundError,
    StoreBase,
    StoreError,
    checked_uuid,
    error_from_sqlstate,
    late_worker_json,
    run_change_from_row,
    run_not_found,
)
from allocator.store.base import allocation_from_row as _allocation
from allocator.store.base import allocation_json as _allocation_json
from allocator.store.base import snapshot_json as _snapshot_dict

# undefined_table, undefined_function: the schema is missing or older than this code.
_NOT_MIGRATED = {"42P01", "42883"}
# The server went away or is not accepting connections yet (class 08: connection exception).
_UNAVAILABLE = {"57P01", "57P02", "57P03"}

# The pool logs a warning for every failed reconnection attempt; the store says once what
# happened (DatabaseUnavailableError), so those would only repeat it. A level set by the
# application wins.
if logging.getLogger("psycopg.pool").level == logging.NOTSET:
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)


def _unavailable(exc: psycopg.Error) -> bool:
    state = exc.sqlstate or ""
    if isinstance(exc, psycopg.OperationalError) and not state:
        return True  # refused, lost, timed out, or no pooled connection in time (PoolTimeout)
    return state.startswith("08") or state in _UNAVAILABLE


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn database errors into StoreError subclasses with the database's message."""
    try:
        yield
    except psycopg.Error as exc:
        diag = exc.diag
        message = diag.message_primary or str(exc).strip() or type(exc).__name__
        hint = diag.message_hint
        if _unavailable(exc):
            raise DatabaseUnavailableError(f"Cannot reach the database: {message}", sqlstate=exc.sqlstate) from exc
        if exc.sqlstate in _NOT_MIGRATED:
            hint = "The database lacks the allocator's tables or functions: run `allocator db migrate`."
        raise error_from_sqlstate(exc.sqlstate, message, hint) from exc




class PostgresStore(StoreBase):
    """A :class:`~allocator.store.base.RunStore` over a PostgreSQL connection pool.

    Parameters
    ----------
    url
        A PostgreSQL connection URI.
    min_size, max_size
        The pool's bounds.
    migrate
        Apply the migrations first (the embedded database does this in ``ensure_database``).
    timeout
        Seconds to wait for the pool to open and for a connection from it: past that, the
        call raises DatabaseUnavailableError. The HTTP API uses a few seconds, to fail fast.
    connect_timeout
        Seconds one connection attempt may take (libpq's ``connect_timeout``; at least 2).
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 4,
        migrate: bool = False,
        timeout: float = 30.0,
        connect_timeout: float | None = None,
    ):
        if migrate:
            from allocator.db.migrate import migrate as _migrate

            with _translated():
                _migrate(url)
        self.url = url
        self.timeout = float(timeout)
        self._min_size, self._max_size = min_size, max_size
        self._connect_kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
        if connect_timeout is not None:
            self._connect_kwargs["connect_timeout"] = max(2, round(connect_timeout))
        self._pool_lock = threading.Lock()
        if connect_timeout is not None:
            # Fail fast with the real reason (refused, unknown host, bad password) rather than
            # the pool's "no connection in time" after its retries.
            with _translated(), psycopg.connect(url, **self._connect_kwargs) as probe:
                probe.execute("select 1")
        self._pool = self._new_pool()
        with _translated():
            self._pool.open(wait=True, timeout=self.timeout)

    def _new_pool(self) -> ConnectionPool:
        return ConnectionPool(
            self.url,
            min_size=self._min_size,
            max_size=self._max_size,
            kwargs=self._connect_kwargs,
            timeout=self.timeout,
            # A connection may have outlived a restart of the (embedded) server.
            check=ConnectionPool.check_connection,
            open=False,
            name="allocator",
        )

    # -- plumbing -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self) -> Iterator[psycopg.Connection]:
        """One unit of work: a pooled connection inside one transaction."""
        with _translated(), self._connection() as conn, conn.transaction():
            yield conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection. After an outage the pool may still be backing off between
        reconnection attempts when the database is back: if a direct connection works,
        the pool is replaced and asked once more."""
        with contextlib.ExitStack() as stack:
            try:
                conn = stack.enter_context(self._pool.connection())
            except PoolTimeout:
                if not self._renew_pool_if_reachable():
                    raise
                conn = stack.enter_context(self._pool.connection())
            yield conn

    def _renew_pool_if_reachable(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2, autocommit=True) as conn:
                conn.execute("select 1")
        except psycopg.Error:
            return False
        self._renew_pool(self.timeout)
        return True

    def _renew_pool(self, timeout: float) -> None:
        with self._pool_lock:
            old, self._pool = self._pool, self._new_pool()
            with _translated():
                self._pool.open(wait=True, timeout=max(timeout, 2.0))
        old.close(timeout=0)

    def wait_until_reachable(self, timeout: float) -> None:
        """Wait (with backoff) until the database accepts a connection again, for at most
        ``timeout`` seconds; raise DatabaseUnavailableError if it does not.

        The pool reconnects on its own, but with a backoff that doubles up to minutes, so
        after an outage it may still be waiting when the database is back. Once a direct
        connection succeeds, the pool is replaced by a fresh one.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = 0.25
        while True:
            left = deadline - time.monotonic()
            try:
                with psycopg.connect(self.url, connect_timeout=max(2, round(min(left, 5))), autocommit=True) as conn:
                    conn.execute("select 1")
            except psycopg.Error as exc:
                if left <= delay:
                    raise DatabaseUnavailableError(
                        f"Cannot reach the database: {str(exc).strip() or type(exc).__name__}"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 4.0)
                continue
            break
        self._renew_pool(deadline - time.monotonic())

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------------
    def list_runs(self) -> list[RunSummary]:
        with self._tx() as conn:
            rows = conn.execute(
                "select * from public.allocator_run_list order by created_at desc, id"
            ).fetchall()
        return [_summary(r) for r in rows]

    def get_run(self, run_id: str) -> RunSummary | None:
        """One run's summary, or ``None`` when there is no such run (or it is not visible)."""
        try:
            key = _uuid(run_id)
        except RunNotFoundError:
            return None
        with self._tx() as conn:
            row = conn.execute(
                "select * from public.allocator_run_list where id = %s", (key,)
            ).fetchone()
        return _summary(row) if row else None

    def ping(self) -> None:
        """Raise a StoreError when the database cannot be reached."""
        with self._tx() as conn:
            conn.execute("select 1")

    def _load(self, run_id: str) -> tuple[dict[str, Any], int]:
        """The run's snapshot data and inputs_version, read in one statement."""
        with self._tx() as conn:
            row = conn.execute(
                "select snapshot, inputs_version from public.allocator_load_run(%s)",
                (_uuid(run_id),),
            ).fetchone()
        assert row is not None  # the function raises AL003 for an unknown run
        return row["snapshot"], row["inputs_version"]


    def import_snapshot(
        self,
        snapshot: RunSnapshot | Mapping[str, Any],
        *,
        organisation_id: str | None = None,
        name: str | None = None,
        source_file: str | None = None,
    ) -> str:
        data = _snapshot_dict(snapshot)
        with self._tx() as conn:
            row = conn.execute(
                "select public.allocator_import_run(%s, %s, %s, %s) as id",
                (Jsonb(data), organisation_id, name, source_file),
            ).fetchone()
        assert row is not None
        return str(row["id"])

    # -- changes to a run's data ---------------------------------------------------------
    def _change(self, sql: str, params: tuple[Any, ...]) -> RunChange:
        with self._tx() as conn:
            row = conn.execute(sql, params).fetchone()
        assert row is not None
        return run_change_from_row(row["change"])

    def withdraw_worker(
        self, run_id: str, worker_id: str, *, reason: str, changed_by: str | None = None
    ) -> RunChange:
        return self._change(
            "select public.allocator_withdraw_worker(%s, %s, %s, %s) as change",
            (_uuid(run_id), worker_id, reason, changed_by),
        )

    def add_worker(
        self,
        run_id: str,
        worker: LateWorker | Mapping[str, Any],
        *,
        reason: str,
        changed_by: str | None = None,
    ) -> RunChange:
        return self._change(
            "select public.allocator_add_worker(%s, %s, %s, %s) as change",
            (_uuid(run_id), Jsonb(late_worker_json(worker)), reason, changed_by),
        )

    def set_job_line(
        self,
        run_id: str,
        job_line_id: str,
        *,
        reason: str,
        max_n_workers: int | None = None,
        must_have_workers: bool | None = None,
        changed_by: str | None = None,
        site: str | None = None,
        clear_site: bool = False,
    ) -> RunChange:
        return self._change(
            "select public.allocator_set_job_line(%s, %s, %s, %s, %s, %s, %s, %s) as change",
            (_uuid(run_id), job_line_id, reason, max_n_workers, must_have_workers, changed_by, site, clear_site),
        )

    def run_changes(self, run_id: str) -> list[RunChange]:
        with self._tx() as conn:
            if not conn.execute(
                "select 1 from public.allocator_py_runs where id = %s", (_uuid(run_id),)
            ).fetchone():
                raise run_not_found(run_id)
            rows = conn.execute(
                "select * from public.allocator_run_changes where run_id = %s order by id",
                (_uuid(run_id),),
            ).fetchall()
        return [run_change_from_row(r) for r in rows]

    # -- scenarios ----------------------------------------------------------------------
    def save_scenario(
        self,
        run_id: str,
        name: str,
        settings: Mapping[str, Any],
        overrides: Mapping[str, Any] | None,
        result: Mapping[str, Any] | None,
        fingerprint: str,
        created_by: str | None = None,
    ) -> str:
        with self._tx() as conn:
            row = conn.execute(
                "select public.allocator_save_scenario(%s, %s, %s, %s, %s, %s, %s) as id",
                (
                    _uuid(run_id),
                    name,
                    Jsonb(dict(settings or {})),
                    Jsonb(dict(overrides or {})),
                    Jsonb(dict(result)) if result is not None else None,
                    fingerprint,
                    created_by,
                ),
            ).fetchone()
        assert row is not None
        return str(row["id"])

    def list_scenarios(self, run_id: str) -> list[Scenario]:
        with self._tx() as conn:
            if not conn.execute(
                "select 1 from public.allocator_py_runs where id = %s", (_uuid(run_id),)
            ).fetchone():
                raise run_not_found(run_id)
            rows = conn.execute(
                "select * from public.allocator_latest_scenarios where run_id = %s "
                "order by created_at desc, id",
                (_uuid(run_id),),
            ).fetchall()
        return [_scenario(r) for r in rows]

    def get_scenario(self, scenario_id: str) -> Scenario:
        with self._tx() as conn:
            row = conn.execute(
                "select * from public.allocator_scenarios where id = %s",
                (_uuid(scenario_id, "scenario"),),
            ).fetchone()
        if row is None:
            raise ScenarioNotFoundError(f"Scenario {scenario_id} was not found.")
        return _scenario(row)

    # -- scenario versions and the inputs version ---------------------------------------
    def scenario_versions(self, run_id: str, name: str) -> list[Scenario]:
        with self._tx() as conn:
            rows = conn.execute(
                "select * from public.allocator_scenarios where run_id = %s and name = %s "
                "order by version desc",
                (_uuid(run_id), name),
            ).fetchall()
        return [_scenario(r) for r in rows]

    def inputs_version(self, run_id: str) -> int:
        with self._tx() as conn:
            row = conn.execute(
                "select public.allocator_run_inputs_version(%s) as v", (_uuid(run_id),)
            ).fetchone()
        if row is None or row["v"] is None:
            raise run_not_found(run_id)
        return int(row["v"])

    def load_run_versioned(self, run_id: str) -> tuple[RunSnapshot, int]:
        data, version = self._load(run_id)
        return RunSnapshot.parse(data), int(version)

    def publish_new_version(
        self,
        run_id: str,
        scenario_id: str,
        result: Mapping[str, Any],
        fingerprint: str,
        inputs_version: int,
        *,
        reason: str | None = None,
        supersede: bool = False,
        published_by: str | None = None,
    ) -> PublishOutcome:
        with self._tx() as conn:
            row = conn.execute(
                "select * from public.allocator_publish_new_version(%s, %s, %s, %s, %s, %s, %s, %s)",
                (_uuid(run_id), _uuid(scenario_id, "scenario"), Jsonb(dict(result)), fingerprint,
                 inputs_version, reason, supersede, published_by),
            ).fetchone()
        assert row is not None
        return PublishOutcome(
            run_id=run_id,
            scenario_id=str(row["scenario_id"]),
            publication_id=row["publication_id"],
            n_allocations=row["n_allocations"],
            superseded=row["superseded"],
            published_at=row["published_at"],
            version=row["version"],
        )

    # -- publishing ---------------------------------------------------------------------
    def publish(
        self,
        run_id: str,
        scenario_id: str,
        *,
        reason: str | None = None,
        supersede: bool = False,
        published_by: str | None = None,
    ) -> PublishOutcome:
        fingerprint, version = self._publish_inputs(run_id)
        with self._tx() as conn:
            row = conn.execute(
                "select * from public.allocator_publish(%s, %s, %s, %s, %s, %s, %s)",
                (_uuid(run_id), _uuid(scenario_id, "scenario"), fingerprint, reason, supersede, published_by, version),
            ).fetchone()
        assert row is not None
        return PublishOutcome(
            run_id=run_id,
            scenario_id=scenario_id,
            publication_id=row["publication_id"],
            n_allocations=row["n_allocations"],
            superseded=row["superseded"],
            published_at=row["published_at"],
        )

    def publication_log(self, run_id: str) -> list[PublicationEntry]:
        with self._tx() as conn:
            rows = conn.execute(
                "select * from public.allocator_publication_log where run_id = %s order by id",
                (_uuid(run_id),),
            ).fetchall()
        return [
            PublicationEntry(
                id=r["id"],
                run_id=str(r["run_id"]),
                scenario_id=str(r["scenario_id"]) if r["scenario_id"] else None,
                action=r["action"],
                reason=r["reason"],
                input_fingerprint=r["input_fingerprint"],
                allocations=[_allocation(a) for a in r["allocations"]],
                previous_allocations=[_allocation(a) for a in r["previous_allocations"]],
                published_by=r["published_by"],
                published_at=r["published_at"],
            )
            for r in rows
        ]

    def allocations(self, run_id: str) -> list[Allocation]:
        with self._tx() as conn:
            if not conn.execute(
                "select 1 from public.allocator_py_runs where id = %s", (_uuid(run_id),)
            ).fetchone():
                raise run_not_found(run_id)
            row = conn.execute(
                "select public.allocator_allocations_json(%s) as a", (_uuid(run_id),)
            ).fetchone()
        assert row is not None
        return [_allocation(a) for a in row["a"]]

    # -- headless queue -----------------------------------------------------------------
    def claim_next(
        self, worker: str, lease_seconds: float = 300.0, *, run_id: str | None = None
    ) -> ClaimedRun | None:
        with self._tx() as conn:
            row = conn.execute(
                "select * from public.allocator_claim(%s, %s, %s)",
                (worker, lease_seconds, _uuid(run_id) if run_id else None),
            ).fetchone()
        if row is None:
            return None
        return ClaimedRun(
            run_id=str(row["run_id"]),
            worker=row["worker"],
            attempts=row["attempts"],
            lease_expires_at=row["lease_expires_at"],
            settings=row["settings"],
        )

    def complete_run(
        self,
        run_id: str,
        worker: str,
        allocations: Sequence[Allocation | Mapping[str, Any]],
        result: Mapping[str, Any] | None = None,
    ) -> None:
        payload = [_allocation_json(a) for a in allocations]
        with self._tx() as conn:
            conn.execute(
                "select public.allocator_complete_run(%s, %s, %s, %s)",
                (_uuid(run_id), worker, Jsonb(payload), Jsonb(dict(result)) if result is not None else None),
            )

    def renew_lease(self, run_id: str, worker: str, lease_seconds: float = 300.0) -> datetime:
        with self._tx() as conn:
            row = conn.execute(
                "select public.allocator_renew_lease(%s, %s, %s) as expires",
                (_uuid(run_id), worker, lease_seconds),
            ).fetchone()
        assert row is not None
        return row["expires"]

    def fail_run(self, run_id: str, worker: str, error: str) -> None:
        with self._tx() as conn:
            conn.execute("select public.allocator_fail_run(%s, %s, %s)", (_uuid(run_id), worker, error))

    def requeue_run(self, run_id: str) -> None:
        with self._tx() as conn:
            conn.execute("select public.allocator_requeue_run(%s)", (_uuid(run_id),))


def _summary(r: Mapping[str, Any]) -> RunSummary:
    return RunSummary(
        id=str(r["id"]),
        name=r["name"],
        status=r["status"],
        n_workers=r["n_workers"],
        n_job_lines=r["n_job_lines"],
        last_solved_at=r["last_solved_at"],
        published=r["published"],
        created_at=r["created_at"],
        allocation_run_id=str(r["allocation_run_id"]),
        organisation_id=str(r["organisation_id"]),
        is_exclusive=r["is_exclusive"],
        attempts=r["attempts"],
        error=r["error"],
        completed_at=r["completed_at"],
        source_file=r.get("source_file"),
        last_scenario_saved_at=r.get("last_scenario_saved_at"),
        n_changes=r.get("n_changes") or 0,
    )


def _uuid(value: str, what: str = "run") -> str:
    return checked_uuid(value, what)


def _scenario(r: Mapping[str, Any]) -> Scenario:
    return Scenario(
        id=str(r["id"]),
        run_id=str(r["run_id"]),
        name=r["name"],
        settings=r["settings"],
        overrides=r["overrides"],
        result=r["result"],
        input_fingerprint=r["input_fingerprint"],
        created_by=r["created_by"],
        created_at=r["created_at"],
        version=int(r.get("version") or 1),
        previous_id=str(r["previous_id"]) if r.get("previous_id") else None,
    )


__all__ = ["PostgresStore", "StoreError"]
