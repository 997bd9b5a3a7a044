"""Fixtures for the database tests (helpers are in tests/helpers/dbtools.py).

Everything runs against the session's embedded PostgreSQL (tests/conftest.py); nothing is
mocked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from allocator.db.migrate import BOOTSTRAP_SQL
from allocator.store.postgres import PostgresStore

# Supabase's setup is the local bootstrap plus what the shim adds on top of it.
SHIM_SQL = Path(__file__).with_name("supabase_shim.sql")




@pytest.fixture(scope="session")
def store(pg_url: str) -> Iterator[PostgresStore]:
    """A PostgresStore on the session's shared database."""
    s = PostgresStore(pg_url, max_size=6)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def sql(pg_url: str) -> Iterator[psycopg.Connection]:
    """A plain autocommit connection to the shared database, as its owner."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def supabase_url(new_database: Callable[..., str]) -> str:
    """A database set up like a Supabase project (bootstrap.sql and the shim), then migrated."""
    from allocator.db.migrate import migrate

    url = new_database(prefix="supa")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(BOOTSTRAP_SQL.read_text(encoding="utf-8"))
        conn.execute(SHIM_SQL.read_text(encoding="utf-8"))
    migrate(url)
    return url
