"""Row-level security and grants, with Supabase's roles emulated by tests/db/supabase_shim.sql.

Two organisations, each with one planner and one run. A planner sees their organisation's
run and nothing of the other's; anon is refused everything; a planner cannot claim to be
someone else, nor write where the API does not let them.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from allocator.snapshot import RunSnapshot
from allocator.store import input_fingerprint
from tests.helpers.dbtools import (
    acting_as,
    allocation_result,
    new_organisation,
    new_user,
    small_snapshot,
)

pytestmark = pytest.mark.db

INPUT_TABLES = [
    "allocation_runs", "worker_mappings", "job_lines", "preferencers", "job_line_preferencers",
    "qualification_tags", "worker_qualifications", "preference_worker_job_lines",
    "preference_preferencer_workers", "job_line_eligibility", "job_line_eligibility_items",
    "allocation_run_preferencer_weightings", "allocator_py_runs", "allocator_py_run_overrides",
]


@pytest.fixture(scope="module")
def world(supabase_url):
    """Organisations A and B, planners ana (A) and ben (B), one run each, set up as owner."""
    with psycopg.connect(supabase_url, autocommit=True) as conn:
        ana = new_user(conn, "ana@a.example")
        ben = new_user(conn, "ben@b.example")
        org_a = new_organisation(conn, "Hospital A", ana)
        org_b = new_organisation(conn, "Hospital B", ben)
        runs = {}
        snaps = {}
        for org, key in ((org_a, "a"), (org_b, "b")):
            snaps[key] = small_snapshot(run_id=f"run-{key}")
            (runs[key],) = conn.execute(
                "select allocator_import_run(%s, %s)::text", (Jsonb(snaps[key]), org)
            ).fetchone()
    return {"url": supabase_url, "ana": ana, "ben": ben, "org_a": org_a, "org_b": org_b,
            "run_a": runs["a"], "run_b": runs["b"], "snap_a": snaps["a"], "snap_b": snaps["b"]}


def _fingerprint(conn, run_id):
    (snap,) = conn.execute("select allocator_run_snapshot(%s)", (run_id,)).fetchone()
    return input_fingerprint(RunSnapshot.parse(snap))


def test_a_planner_sees_only_their_organisations_runs(world):
    with acting_as(world["url"], "authenticated", world["ana"]) as conn:
        visible = {r[0] for r in conn.execute("select id::text from allocator_run_summaries").fetchall()}
        assert visible == {world["run_a"]}
        assert conn.execute("select id::text from organisations").fetchall() == [(world["org_a"],)]
        # Every input table: rows of A only (and some of A's).
        for table in INPUT_TABLES:
            col = "organisation_id" if table == "qualification_tags" else (
                "id" if table == "allocation_runs" else "allocation_run_id")
            key = "organisation_id" if col == "organisation_id" else "allocation_run_id"
            owners = {r[0] for r in conn.execute(f"select distinct {col}::text from {table}").fetchall()}
            expected = conn.execute(
                f"select {key}::text from allocator_run_summaries where id = %s", (world["run_a"],)
            ).fetchone()[0]
            assert owners == {expected}, table


def test_a_planner_loads_their_run_but_not_anothers(world):
    with acting_as(world["url"], "authenticated", world["ana"]) as conn:
        (snap,) = conn.execute("select allocator_run_snapshot(%s)", (world["run_a"],)).fetchone()
        assert RunSnapshot.parse(snap) == RunSnapshot.parse(world["snap_a"])
        with pytest.raises(psycopg.Error, match="not found") as exc:
            conn.execute("select allocator_run_snapshot(%s)", (world["run_b"],))
        assert exc.value.sqlstate == "AL003"


def test_a_planner_cannot_write_to_anothers_run_through_the_functions(world):
    with acting_as(world["url"], "authenticated", world["ana"]) as conn:
        for call, args in (
            ("select allocator_save_scenario(%s, 'x', '{}', '{}', null, 'fp')", (world["run_b"],)),
            ("select * from allocator_publish(%s, gen_random_uuid(), 'fp')", (world["run_b"],)),
            ("select allocator_requeue_run(%s)", (world["run_b"],)),
        ):
            with pytest.raises(psycopg.Error, match="not found") as exc:
                conn.execute(call, args)
            assert exc.value.sqlstate == "AL003", call
        with pytest.raises(psycopg.Error, match="not a member") as exc:
            conn.execute("select allocator_import_run(%s, %s)",
                         (Jsonb(small_snapshot()), world["org_b"]))
        assert exc.value.sqlstate == "AL005"


def test_anon_is_refused(world):
    with acting_as(world["url"], "anon") as conn:
        for statement in (
            "select * from allocator_py_runs",
            "select * from allocator_run_summaries",
            "select * from allocator_scenarios",
            "select * from allocator_publication_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        for call in (
            f"select allocator_run_snapshot('{world['run_a']}')",
            f"select allocator_save_scenario('{world['run_a']}', 'x', '{{}}', '{{}}', null, 'fp')",
            "select * from allocator_claim('anon-worker')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(call)


def test_a_spoofed_owner_is_refused(world):
    run_a, ana, ben = world["run_a"], world["ana"], world["ben"]
    with acting_as(world["url"], "authenticated", ana) as conn:
        fp = _fingerprint(conn, run_a)
        # A scenario claiming to be ben's, directly and through the function.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "insert into allocator_scenarios (run_id, name, input_fingerprint, created_by) "
                "values (%s, 'spoof', %s, %s)", (run_a, fp, ben))
        with pytest.raises(psycopg.Error, match="cannot act on behalf") as exc:
            conn.execute("select allocator_save_scenario(%s, 'spoof', '{}', '{}', null, %s, %s)",
                         (run_a, fp, ben))
        assert exc.value.sqlstate == "AL005"
        # A scenario on another organisation's run, under ana's own name.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "insert into allocator_scenarios (run_id, name, input_fingerprint, created_by) "
                "values (%s, 'elsewhere', %s, %s)", (world["run_b"], fp, ana))
        # A publication log row: planners cannot write the log at all.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "insert into allocator_publication_log (run_id, action, published_by) "
                "values (%s, 'publish', %s)", (run_a, ben))
        # Publishing as ben.
        (scenario_id,) = conn.execute(
            "select allocator_save_scenario(%s, 'mine', '{}', '{}', %s, %s)::text",
            (run_a, Jsonb(allocation_result(world["snap_a"])), fp)).fetchone()
        with pytest.raises(psycopg.Error, match="cannot act on behalf") as exc:
            conn.execute("select * from allocator_publish(%s, %s, %s, null, false, %s)",
                         (run_a, scenario_id, fp, ben))
        assert exc.value.sqlstate == "AL005"
        # Writing allocations or runs directly.
        for statement in (
            "update allocator_py_runs set status = 'complete'",
            "delete from allocator_py_allocations",
            "insert into organisation_members (organisation_id, user_id) "
            f"values ('{world['org_b']}', '{ana}')",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_a_planner_saves_and_publishes_their_own_runs_scenario(world):
    run_a, ana = world["run_a"], world["ana"]
    with acting_as(world["url"], "authenticated", ana) as conn:
        fp = _fingerprint(conn, run_a)
        result = allocation_result(world["snap_a"])
        # Directly, as themselves (RLS allows it) ...
        conn.execute(
            "insert into allocator_scenarios (run_id, name, input_fingerprint, created_by, result) "
            "values (%s, 'direct', %s, %s, %s)", (run_a, fp, ana, Jsonb(result)))
        # ... and through the function, which records who they are.
        (scenario_id,) = conn.execute(
            "select allocator_save_scenario(%s, 'via rpc', '{}', '{}', %s, %s)::text",
            (run_a, Jsonb(result), fp)).fetchone()
        (by,) = conn.execute("select created_by from allocator_scenarios where id = %s",
                             (scenario_id,)).fetchone()
        assert by == ana
        (n,) = conn.execute(
            "select n_allocations from allocator_publish(%s, %s, %s)", (run_a, scenario_id, fp)
        ).fetchone()
        assert n == len(world["snap_a"]["workers"])
        log = conn.execute("select published_by from allocator_publication_log where run_id = %s",
                           (run_a,)).fetchall()
        assert log == [(ana,)]
    # Ben sees none of it.
    with acting_as(world["url"], "authenticated", world["ben"]) as conn:
        assert conn.execute("select count(*) from allocator_scenarios where run_id = %s",
                            (run_a,)).fetchone() == (0,)
        assert conn.execute("select count(*) from allocator_publication_log where run_id = %s",
                            (run_a,)).fetchone() == (0,)


def test_planners_cannot_claim_runs_but_the_service_role_can(world):
    with acting_as(world["url"], "authenticated", world["ana"]) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from allocator_claim('planner')")
    with acting_as(world["url"], "service_role") as conn:
        # The service role sees every organisation's runs (it bypasses row-level security).
        (n,) = conn.execute(
            "select count(*) from allocator_run_summaries where id in (%s, %s)",
            (world["run_a"], world["run_b"]),
        ).fetchone()
        assert n == 2
        row = conn.execute("select run_id::text from allocator_claim('svc', 60, %s)",
                           (world["run_b"],)).fetchone()
        assert row == (world["run_b"],)
