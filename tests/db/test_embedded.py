"""The embedded default database: ensure_database migrates and loads the demo run once."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from allocator.db.embedded import ensure_database, load_demo_once
from allocator.db.migrate import applied_versions, migration_files
from allocator.demo import demo_snapshot
from allocator.snapshot import RunSnapshot
from allocator.store.postgres import PostgresStore

pytestmark = pytest.mark.db


def test_ensure_database_migrates_and_loads_the_demo_once(pg_server):
    # The session's server: ensure_database attaches to it (same data folder) rather than
    # starting a second PostgreSQL.
    directory = Path(pg_server.pgdata).parent
    url = ensure_database(directory=directory)
    assert applied_versions(url) == [m.version for m in migration_files()]

    with PostgresStore(url) as store:
        runs = store.list_runs()
        assert len(runs) == 1
        assert store.load_run(runs[0].id) == RunSnapshot.parse(demo_snapshot())
        assert runs[0].source_file == "built-in demo"  # the run list says where it came from

        # Again (a restart of the dashboard): same database, still one demo run.
        assert ensure_database(directory=directory) == url
        assert load_demo_once(url) is None
        assert [r.id for r in store.list_runs()] == [runs[0].id]


def test_the_demo_is_not_loaded_into_a_database_that_has_runs(new_database):
    url = new_database(migrated=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "select allocator_import_run(%s)",
            (psycopg.types.json.Jsonb({"format": "allocator-run/1", "workers": [{"id": "a"}],
                                       "job_lines": [{"id": "x", "max_n_workers": 1}]}),),
        )
    assert load_demo_once(url) is None
    with PostgresStore(url) as store:
        assert len(store.list_runs()) == 1


def test_open_store_follows_the_configuration(pg_server, pg_url, monkeypatch, tmp_path):
    from allocator.config import get_settings
    from allocator.store import open_store

    monkeypatch.chdir(tmp_path)  # no .env or secrets.toml of the checkout
    for name in ("ALLOCATOR_DATABASE_URL", "SUPABASE_URL", "SUPABASE_KEY"):
        monkeypatch.delenv(name, raising=False)

    # A database URL: that database, as it is.
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", pg_url)
    store = open_store(get_settings())
    try:
        assert isinstance(store, PostgresStore) and store.url == pg_url
    finally:
        store.close()

    # Nothing configured: the embedded database in ALLOCATOR_DATA_DIR (the session's).
    monkeypatch.delenv("ALLOCATOR_DATABASE_URL")
    monkeypatch.setenv("ALLOCATOR_DATA_DIR", str(Path(pg_server.pgdata).parent))
    store = open_store(get_settings())
    try:
        assert isinstance(store, PostgresStore)
        assert store.url.startswith("postgresql://") and "/allocator?" in store.url
        assert len(store.list_runs()) == 1  # the demo run
    finally:
        store.close()


def test_an_unmigrated_database_says_to_migrate(new_database):
    from allocator.store import StoreError

    with PostgresStore(new_database()) as store, pytest.raises(StoreError, match="db migrate"):
        store.list_runs()
