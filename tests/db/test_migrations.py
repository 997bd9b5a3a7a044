"""Migrations: apply on an empty database, again without effect, and the SQL twice."""

from __future__ import annotations

import re
from collections import defaultdict

import psycopg
import pytest

from allocator.db.migrate import applied_versions, migrate, migration_files
from tests.helpers.schema import describe_data, describe_schema, schema_differences

pytestmark = pytest.mark.db

# The tables issue 3 names (existing Receptor databases use these names).
REQUIRED_TABLES = {
    "allocator_py_runs",
    "allocator_py_allocations",
    "preference_worker_job_lines",
    "job_line_eligibility",
    "allocation_run_preferencer_weightings",
    "allocation_runs",
    "worker_mappings",
    "job_lines",
    "preferencers",
    "qualification_tags",
    "organisations",
    "organisation_members",
    "allocator_scenarios",
    "allocator_publication_log",
}


def _public_tables(conn: psycopg.Connection) -> dict[str, bool]:
    rows = conn.execute(
        "select c.relname, c.relrowsecurity from pg_class c "
        "where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'"
    ).fetchall()
    return dict(rows)


def test_files_are_ordered_supabase_migrations():
    files = migration_files()
    assert files, "no migration files found"
    assert [m.version for m in files] == sorted(m.version for m in files)
    for m in files:
        assert len(m.version) == 14, f"{m.path.name}: Supabase versions are YYYYMMDDHHMMSS"


def test_every_function_is_defined_in_one_migration_file():
    # A reader looks for a function where it is first defined; a later file that redefines
    # it leaves two versions to compare (issue 8).
    defined_in: dict[str, list[str]] = defaultdict(list)
    pattern = re.compile(r"create\s+(?:or\s+replace\s+)?function\s+public\.(\w+)", re.IGNORECASE)
    for m in migration_files():
        for name in sorted(set(pattern.findall(m.sql))):
            defined_in[name.lower()].append(m.path.name)
    assert "allocator_import_run" in defined_in  # the pattern finds the definitions
    twice = {name: files for name, files in defined_in.items() if len(files) > 1}
    assert twice == {}


def test_migrate_empty_database_then_again_is_a_no_op(new_database):
    url = new_database()
    versions = [m.version for m in migration_files()]

    first = migrate(url)
    assert first == versions
    assert applied_versions(url) == versions

    second = migrate(url)
    assert second == []
    assert applied_versions(url) == versions

    with psycopg.connect(url) as conn:
        tables = _public_tables(conn)
        missing = REQUIRED_TABLES - tables.keys()
        assert not missing, f"missing tables: {sorted(missing)}"
        assert conn.execute(
            "select to_regprocedure('public.get_worker_qualifications(uuid)') is not null"
        ).fetchone() == (True,)


def test_every_migration_file_is_safe_to_apply_twice(new_database):
    # A Supabase project may have received the files through `supabase db push` (recorded
    # elsewhere); `allocator db migrate` then applies them again over the top. And a file
    # changed in place is applied again, with every file after it (allocator/db/migrate.py).
    # So applying them again changes neither the schema nor any row, on a database in use.
    url = new_database(migrated=True)
    _in_use(url)
    schema, data = describe_schema(url), describe_data(url)
    with psycopg.connect(url, autocommit=True) as conn:
        for m in migration_files():
            with conn.transaction():
                conn.execute(m.sql)
                conn.execute(m.sql)  # twice in a row as well
    assert schema_differences(describe_schema(url), schema) == {}
    assert describe_data(url) == data


def _in_use(url: str) -> None:
    """A run with the business rules, a scenario published, one saved, a run change logged."""
    from allocator.store.base import input_fingerprint
    from allocator.store.postgres import PostgresStore
    from tests.helpers.dbtools import allocation_result, new_org_in_store, small_snapshot

    with PostgresStore(url) as store:
        snap = small_snapshot(n_workers=4, n_lines=3, capacity=4)
        snap["eligibility"], snap["forbids"] = [], []
        snap["job_lines"][0]["site"] = "Orange"
        snap["workers"][0]["priority"] = 1
        snap["linked_workers"] = [{"id": "pair", "worker_ids": ["w1", "w4"]}]
        snap["quotas"] = [{"id": "cap", "job_line_ids": ["j1"], "min_workers": 0, "max_workers": 3}]
        snap["previous_allocations"] = [{"worker_id": "w1", "job_line_id": "j2"}]
        run_id = store.import_snapshot(snap, organisation_id=new_org_in_store(store))
        fp = input_fingerprint(store.load_run(run_id))
        result = allocation_result(snap)  # round-robin: w1 and w4 (the pair) on j1
        store.publish(run_id, store.save_scenario(run_id, "Published", {}, {}, result, fp))
        store.save_scenario(run_id, "Saved", {}, {}, result, fp)
        store.save_scenario(run_id, "Saved", {}, {}, result, fp)  # its second version
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select allocator_withdraw_worker(%s, 'w4', 'left the program')", (run_id,))


# Both set-ups: the local bootstrap, and the Supabase shim (whose default privileges open
# every new table and function to anon, as Supabase's do).
SETUPS = ["pg_url", "supabase_url"]


@pytest.mark.parametrize("setup", SETUPS)
def test_row_level_security_on_every_table(request, setup):
    with psycopg.connect(request.getfixturevalue(setup)) as conn:
        tables = _public_tables(conn)
    without = sorted(t for t, rls in tables.items() if not rls)
    assert without == []


@pytest.mark.parametrize("setup", SETUPS)
def test_anon_has_no_privilege_on_any_table_view_or_sequence(request, setup):
    with psycopg.connect(request.getfixturevalue(setup)) as conn:
        rows = conn.execute(
            "select c.relname, p.privilege_type "
            "from pg_class c, lateral aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) p "
            "where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'v', 'S') "
            "  and p.grantee = 'anon'::regrole"
        ).fetchall()
    assert rows == []


@pytest.mark.parametrize("setup", SETUPS)
def test_anon_may_execute_none_of_our_functions(request, setup):
    with psycopg.connect(request.getfixturevalue(setup)) as conn:
        rows = conn.execute(
            "select p.oid::regprocedure::text from pg_proc p "
            "where p.pronamespace = 'public'::regnamespace "
            "  and has_function_privilege('anon', p.oid, 'execute')"
        ).fetchall()
        workers_only = conn.execute(
            "select p.proname from pg_proc p "
            "where p.pronamespace = 'public'::regnamespace "
            "  and p.proname in ('allocator_claim', 'allocator_complete_run', 'allocator_fail_run') "
            "  and has_function_privilege('authenticated', p.oid, 'execute')"
        ).fetchall()
    assert rows == []
    assert workers_only == []


def test_on_a_supabase_like_database_the_bootstrap_is_not_applied(supabase_url):
    # The shim made `auth` (with its own auth.users columns); the bootstrap's would differ.
    with psycopg.connect(supabase_url) as conn:
        cols = {
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'auth' and table_name = 'users'"
            ).fetchall()
        }
        assert "aud" in cols  # the shim's column, not created by allocator/db/bootstrap.sql
        assert applied_versions(supabase_url) == [m.version for m in migration_files()]


# The checks' helpers are internals of the SECURITY DEFINER functions that call them: no
# planner or API client calls them on their own (the security file's revoke covers them).
INTERNAL_CHECKS = [
    "allocator_snapshot_field_problem(jsonb)", "allocator_id_problem(jsonb)", "allocator_name_problem(jsonb)",
    "allocator_shown(jsonb)", "allocator_is_number_between(jsonb, numeric, numeric)", "allocator_is_count(jsonb)",
]


@pytest.mark.parametrize("setup", SETUPS)
def test_no_planner_or_client_may_execute_the_checks_helpers(request, setup):
    with psycopg.connect(request.getfixturevalue(setup)) as conn:
        callable_by = {
            (fn, role)
            for fn in INTERNAL_CHECKS
            for role in ("anon", "authenticated", "service_role")
            if conn.execute("select has_function_privilege(%s, %s, 'execute')", (role, f"public.{fn}")).fetchone()[0]
        }
    assert callable_by == set()
