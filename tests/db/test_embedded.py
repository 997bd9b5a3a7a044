"""The embedded default database: ensure_database migrates; only the dashboard loads the demo.

The tests use the session's server through its data folder, as a planner's machine would
(ensure_database attaches to the running server rather than starting a second PostgreSQL),
and start from no ``allocator`` database at all, as on a first start.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from allocator.db.embedded import DATABASE, ensure_database, load_demo_once
from allocator.db.migrate import applied_versions, migration_files
from allocator.demo import demo_snapshot
from allocator.snapshot import RunSnapshot
from allocator.store.postgres import PostgresStore

pytestmark = pytest.mark.db


def _drop_embedded_database(pg_server) -> None:
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"drop database if exists {DATABASE} with (force)")


@pytest.fixture
def first_start(pg_server) -> Iterator[Path]:
    """The data folder of an embedded server whose ``allocator`` database does not exist yet."""
    _drop_embedded_database(pg_server)
    try:
        yield Path(pg_server.pgdata).parent
    finally:
        _drop_embedded_database(pg_server)


def _runs(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("select id::text, name from allocator_py_runs order by created_at").fetchall()


def test_ensure_database_migrates_and_loads_the_demo_once(first_start):
    directory = first_start
    url = ensure_database(directory=directory, load_demo=True)
    assert applied_versions(url) == [m.version for m in migration_files()]

    with PostgresStore(url) as store:
        runs = store.list_runs()
        assert len(runs) == 1
        assert store.load_run(runs[0].id) == RunSnapshot.parse(demo_snapshot())
        assert runs[0].source_file == "built-in demo"  # the run list says where it came from

        # Again (a restart of the dashboard): same database, still one demo run.
        assert ensure_database(directory=directory, load_demo=True) == url
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
    finally:
        store.close()


def test_an_unmigrated_database_says_to_migrate(new_database):
    from allocator.store import StoreError

    with PostgresStore(new_database()) as store, pytest.raises(StoreError, match="db migrate"):
        store.list_runs()


# --------------------------------------------------------------------------- who loads the demo


@pytest.fixture
def cli_on_embedded(first_start, tmp_path, monkeypatch, capsys):
    """Run ``allocator ARGS`` (the console script's main) with nothing configured but
    ALLOCATOR_DATA_DIR: the embedded database, on its first start."""
    from allocator.cli import main

    monkeypatch.chdir(tmp_path)  # no .env or secrets.toml of the checkout
    for name in list(os.environ):
        if name.startswith(("ALLOCATOR_", "SUPABASE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ALLOCATOR_DATA_DIR", str(first_start))

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        return exited.value.code, out, err

    return run


def test_a_first_import_leaves_one_run_the_planners(cli_on_embedded, tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({
        "format": "allocator-run/1", "run": {"id": "mine", "name": "My intake"},
        "workers": [{"id": "w1"}], "job_lines": [{"id": "j1", "max_n_workers": 1}],
    }), encoding="utf-8")

    code, out, err = cli_on_embedded("import", str(path))

    assert code == 0, err
    url = ensure_database()  # ALLOCATOR_DATA_DIR: the same embedded database
    assert _runs(url) == [(out.strip(), "My intake")]


def test_process_pending_on_a_first_start_solves_no_demo(cli_on_embedded):
    code, out, err = cli_on_embedded("process-pending")

    assert code == 0, err
    assert out == ""
    assert "none were pending" in err
    assert _runs(ensure_database()) == []


def test_the_dashboard_loads_the_demo_on_its_first_start(first_start, monkeypatch, tmp_path):
    from allocator import service
    from allocator.config import get_settings

    monkeypatch.chdir(tmp_path)
    for name in ("ALLOCATOR_DATABASE_URL", "SUPABASE_URL", "SUPABASE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALLOCATOR_DATA_DIR", str(first_start))

    store = service.open_store(get_settings(), load_demo=True)  # what app/state.py asks for
    try:
        runs = store.list_runs()
        assert len(runs) == 1
        assert store.load_run(runs[0].id) == RunSnapshot.parse(demo_snapshot())
    finally:
        store.close()
    store = service.open_store(get_settings())  # the command line and the API: no demo
    try:
        assert len(store.list_runs()) == 1
    finally:
        store.close()
