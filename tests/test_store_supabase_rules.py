"""The ``supabase`` store with the business rules: still one rpc per write, the rules travel
inside the snapshot, and the new parameters of the run changes are the SQL functions' own.

The HTTP server is fake (``httpx.MockTransport``, see tests/test_store_supabase.py); the
client and the adapter are the real ones, and the parameter names are checked against the
migrated embedded PostgreSQL."""

from __future__ import annotations

import copy

import psycopg
import pytest

from allocator.snapshot import RunSnapshot
from allocator.store.base import LateWorker
from tests.test_store_supabase import RUN, FakePostgrest, change_row, make_store

RULES = {
    "format": "allocator-run/1",
    "run": {"id": "tiny", "name": "Tiny"},
    "settings": {"fewest_moves": True},
    "workers": [{"id": "w1", "priority": 1}, {"id": "w2"}, {"id": "w3", "priority": 2}],
    "job_lines": [{"id": "j1", "max_n_workers": 2, "site": "Orange"}, {"id": "j2", "max_n_workers": 2}],
    "linked_workers": [{"id": "couple", "worker_ids": ["w1", "w2"]}],
    "quotas": [{"id": "orange", "sites": ["Orange"], "min_workers": 1, "max_workers": 2}],
    "previous_allocations": [{"worker_id": "w3", "job_line_id": "j2"}],
}


@pytest.fixture
def server() -> FakePostgrest:
    return FakePostgrest()


@pytest.fixture
def store(server):
    return make_store(server)


def test_import_sends_the_rules_inside_the_one_snapshot_rpc(server, store):
    server.rpcs["allocator_import_run"] = lambda body: RUN

    assert store.import_snapshot(copy.deepcopy(RULES)) == RUN

    (name, body), = server.rpc_calls()
    assert name == "allocator_import_run" and len(server.requests) == 1
    sent = RunSnapshot.parse(body["p_snapshot"])
    assert sent == RunSnapshot.parse(copy.deepcopy(RULES))
    assert body["p_snapshot"]["linked_workers"] == RULES["linked_workers"]
    assert body["p_snapshot"]["settings"]["fewest_moves"] is True


def test_load_run_reads_the_rules_from_the_snapshot_rpc(server, store):
    server.rpcs["allocator_load_run"] = lambda body: [{"snapshot": RULES, "inputs_version": 5}]

    snap, version = store.load_run_versioned(RUN)

    assert version == 5
    assert [link.id for link in snap.linked_workers] == ["couple"]
    assert snap.quotas[0].sites == ["Orange"] and snap.previous_allocations[0].job_line_id == "j2"
    assert snap.settings.fewest_moves and snap.job_lines[0].site == "Orange" and snap.workers[0].priority == 1


def test_a_lines_site_and_a_late_workers_priority_go_as_parameters(server, store, pg_url):
    server.rpcs.update({
        "allocator_set_job_line": lambda body: change_row(3, "set_job_line", worker_id=None, job_line_id="j1"),
        "allocator_add_worker": lambda body: change_row(2, "add_worker", worker_id="w9"),
    })

    store.set_job_line(RUN, "j1", reason="Moved", site="Dubbo")
    store.set_job_line(RUN, "j1", reason="Own site", clear_site=True)
    store.set_job_line(RUN, "j1", reason="Funding", max_n_workers=3)
    store.add_worker(RUN, LateWorker("w9", "Late", (), (("j1", 1.0),), priority=2), reason="Late offer")

    assert all(r.method == "POST" and "prefer" not in r.headers for r in server.requests)
    calls = server.rpc_calls()
    base = {"p_run_id": RUN, "p_job_line_id": "j1", "p_max_n_workers": None, "p_must_have_workers": None,
            "p_changed_by": None}
    assert [body for name, body in calls if name == "allocator_set_job_line"] == [
        {**base, "p_reason": "Moved", "p_site": "Dubbo"},
        {**base, "p_reason": "Own site", "p_clear_site": True},
        {**base, "p_reason": "Funding", "p_max_n_workers": 3},
    ]
    (add,) = [body for name, body in calls if name == "allocator_add_worker"]
    assert add["p_worker"]["priority"] == 2

    # The names are the real functions' (the fake server would accept any).
    with psycopg.connect(pg_url) as conn:
        for name, body in calls:
            (args,) = conn.execute(
                "select proargnames from pg_proc where pronamespace = 'public'::regnamespace and proname = %s",
                (name,),
            ).fetchone()
            assert set(body) <= set(args), (name, sorted(set(body) - set(args)))
