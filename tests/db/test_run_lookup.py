"""PostgresStore.get_run and ping: one indexed read, and a reachability check."""

import pytest

from allocator import service
from allocator.store.base import RunNotFoundError
from allocator.store.postgres import PostgresStore

SNAP = {
    "format": "allocator-run/1",
    "run": {"id": "lookup", "name": "Lookup run"},
    "workers": [{"id": "w1"}, {"id": "w2"}],
    "job_lines": [{"id": "j1", "max_n_workers": 2}],
}


@pytest.fixture(scope="module")
def store(new_database):
    """A store on a database of its own: imports need a single organisation to go to."""
    s = PostgresStore(new_database(migrated=True, prefix="lookup"))
    yield s
    s.close()


def test_get_run_finds_the_same_summary_as_the_list(store: PostgresStore):
    run_id = store.import_snapshot(SNAP)
    direct = store.get_run(run_id)
    listed = next(r for r in store.list_runs() if r.id == run_id)
    assert direct == listed
    assert direct.n_workers == 2 and direct.n_job_lines == 1
    assert service.get_run(store, run_id.upper()) == listed  # any spelling of the uuid


def test_get_run_of_an_unknown_or_malformed_id(store: PostgresStore):
    assert store.get_run("00000000-0000-0000-0000-000000000000") is None
    assert store.get_run("not-a-uuid") is None
    with pytest.raises(RunNotFoundError):
        service.get_run(store, "00000000-0000-0000-0000-000000000000")


def test_ping_reaches_the_database(store: PostgresStore):
    store.ping()
    service.ping(store)
