"""Databases made by an older version: migrate() applies the files changed since then again.

The project edits its SQL functions in place (each is defined in one migration file), so a
database migrated by an older version has the old function bodies until the changed files
are applied again. Each test builds such a database from the files as they were (kept in
tests/data/old_migrations, see its README), with a run and a saved scenario made by the old
functions, then runs today's migrate() on it. All on the real embedded PostgreSQL.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from allocator.db.migrate import (
    MIGRATIONS_DIR,
    MigrationReport,
    apply_migrations,
    migrate,
    migration_files,
)
from allocator.snapshot import RunSnapshot
from allocator.store import PublishRefusedError, input_fingerprint
from allocator.store.postgres import PostgresStore
from tests.helpers.dbtools import allocation_result, new_organisation, small_snapshot
from tests.helpers.schema import describe_schema, schema_differences

pytestmark = pytest.mark.db

OLD = Path(__file__).resolve().parents[1] / "data" / "old_migrations"
STATES = ["first_release", "before_business_rules"]


def _checksums(directory: Path) -> dict[str, str]:
    return {m.version: hashlib.sha256(m.path.read_bytes()).hexdigest() for m in migration_files(directory)}


def _expected(state: str) -> tuple[list[str], list[str]]:
    """Today's files the old database lacks, and those it has in another version."""
    old, now = _checksums(OLD / state), _checksums(MIGRATIONS_DIR)
    new = sorted(v for v in now if v not in old)
    changed = sorted(v for v in now if v in old and old[v] != now[v])
    return new, changed


def _tracking(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select version, name, checksum from allocator_schema_migrations order by version"
        ).fetchall()


def rules_snapshot() -> dict:
    """A run with the business rules: sites, priority tiers, two links, quotas (by site, by
    line with a tag), a previous allocation and fewest_moves (as test_business_rules_sql)."""
    snap = small_snapshot(n_workers=6, n_lines=4, capacity=3)
    snap["eligibility"] = []
    snap["forbids"] = []
    for line, site in zip(snap["job_lines"], ["Orange", "Orange", "Dubbo", None], strict=True):
        if site:
            line["site"] = site
    for i, tier in ((0, 1), (1, 2), (4, 1)):
        snap["workers"][i]["priority"] = tier
    snap["linked_workers"] = [
        {"id": "couple-7", "worker_ids": ["w3", "w4"]},
        {"id": "trio", "worker_ids": ["w5", "w6", "w2"]},
    ]
    snap["quotas"] = [
        {"id": "rural-min", "sites": ["Dubbo"], "min_workers": 1, "max_workers": None},
        {"id": "icu-cap", "job_line_ids": ["j1", "j2"], "qualification_id": "icu", "min_workers": 0, "max_workers": 2},
    ]
    snap["previous_allocations"] = [
        {"worker_id": "w1", "job_line_id": "j1"},
        {"worker_id": "w4", "job_line_id": "j3"},
    ]
    snap["settings"]["fewest_moves"] = True
    RunSnapshot.parse(copy.deepcopy(snap))
    return snap


# Meets every rule of rules_snapshot: couple-7 and trio each on one site (Dubbo, Orange),
# one worker at Dubbo, two icu workers (w1, w5) on j1/j2, within the places.
MEETS_THE_RULES = {"w1": "j1", "w2": "j2", "w3": "j3", "w4": "j3", "w5": "j1", "w6": "j2"}
# Breaks couple-7 (w3 at Dubbo, w4 at Orange) and nothing else.
SPLITS_A_COUPLE = {**MEETS_THE_RULES, "w4": "j2"}


def _result(snap: dict, where: dict[str, str]) -> dict:
    return {
        "format": "allocator-result/1", "run_id": snap["run"]["id"], "status": "optimal", "objective": 1.0,
        "allocations": [{"worker_id": w, "job_line_id": j, "worker_rank": 1.0, "cost": 1.0}
                        for w, j in sorted(where.items())],
    }


def _old_database(new_database: Callable[..., str], state: str) -> tuple[str, dict]:
    """A database migrated with the files of ``state``, holding what a planner made with them:
    a run imported by the old import function and a scenario saved for it (its allocation
    valid). Returns the URI and {"org", "run_id", "snapshot", "scenario_id"}."""
    url = new_database(prefix=f"old_{state}"[:20])
    assert migrate(url, directory=OLD / state) == sorted(_checksums(OLD / state))
    snap = small_snapshot()
    with psycopg.connect(url, autocommit=True) as conn:
        org = new_organisation(conn, "Old intake")
        # Every old version takes (snapshot, organisation, name) as its first three arguments.
        (run_id,) = conn.execute(
            "select public.allocator_import_run(%s::jsonb, %s::uuid, %s)::text",
            (json.dumps(snap), org, None),
        ).fetchone()
        # Saved as the old dashboard did: a row of allocator_scenarios with the columns of then.
        (scenario_id,) = conn.execute(
            "insert into public.allocator_scenarios (run_id, name, settings, overrides, result, "
            "input_fingerprint, created_by) values (%s, 'Last week', '{}', '{}', %s, %s, 'planner') "
            "returning id::text",
            (run_id, json.dumps(allocation_result(snap)), input_fingerprint(RunSnapshot.parse(copy.deepcopy(snap)))),
        ).fetchone()
    return url, {"org": org, "run_id": run_id, "snapshot": snap, "scenario_id": scenario_id}


@pytest.fixture(scope="module")
def fresh_schema(new_database: Callable[..., str]) -> dict:
    """The schema a new database gets from today's files."""
    return describe_schema(new_database(migrated=True, prefix="fresh"))


@pytest.mark.parametrize("state", STATES)
def test_an_old_database_gets_the_schema_of_a_new_one(new_database, fresh_schema, state):
    url, _ = _old_database(new_database, state)
    new, changed = _expected(state)
    assert changed, "the old files should differ from today's (else this test shows nothing)"
    before = describe_schema(url)
    assert schema_differences(before, fresh_schema), "the old database should differ from a new one"

    report = apply_migrations(url)

    assert [m.version for m in report.applied] == new
    assert [m.version for m in report.reapplied] == changed
    first = min(new + changed)
    assert [m.version for m in report.rerun] == sorted(
        v for v in _checksums(MIGRATIONS_DIR) if v > first and v not in new + changed)
    # Functions (bodies, signatures: no overload of an old signature left), columns, policies,
    # grants, triggers and views are what a new database has.
    assert schema_differences(describe_schema(url), fresh_schema) == {}

    # Recorded: today's checksums, when each was applied again and what it had before.
    now, old = _checksums(MIGRATIONS_DIR), _checksums(OLD / state)
    assert [(v, c) for v, _, c in _tracking(url)] == sorted(now.items())
    with psycopg.connect(url) as conn:
        history = dict(
            (v, (at is not None, prev)) for v, at, prev in conn.execute(
                "select version, reapplied_at, previous_checksums from allocator_schema_migrations"))
    assert {v: h for v, h in history.items() if h != (False, [])} == {v: (True, [old[v]]) for v in changed}


@pytest.mark.parametrize("state", STATES)
def test_after_migrating_a_run_with_the_business_rules_imports_exports_and_publishes(new_database, state):
    url, made = _old_database(new_database, state)
    migrate(url)

    with PostgresStore(url) as store:
        snap = rules_snapshot()
        run_id = store.import_snapshot(snap, organisation_id=made["org"])
        loaded = store.load_run(run_id)
        expected = RunSnapshot.parse(copy.deepcopy(snap))
        assert loaded == expected
        assert loaded.to_json() == expected.to_json()  # byte for byte
        assert [link.id for link in loaded.linked_workers] == ["couple-7", "trio"]
        assert {w.id: w.priority for w in loaded.workers if w.priority} == {"w1": 1, "w2": 2, "w5": 1}

        # Publishing checks the rules now: a split couple is refused, naming the link...
        fp = input_fingerprint(loaded)
        split = store.save_scenario(run_id, "split", snap["settings"], {}, _result(snap, SPLITS_A_COUPLE), fp)
        with pytest.raises(PublishRefusedError, match="Link 'couple-7' keeps its workers at one site"):
            store.publish(run_id, split)
        # ... and an allocation meeting them is published through allocator_publish.
        good = store.save_scenario(run_id, "good", snap["settings"], {}, _result(snap, MEETS_THE_RULES), fp)
        outcome = store.publish(run_id, good)
        assert outcome.n_allocations == len(MEETS_THE_RULES)

        # The run imported last week loads, and its scenario saved then still publishes.
        old_run = store.load_run(made["run_id"])
        assert old_run.to_json() == RunSnapshot.parse(copy.deepcopy(made["snapshot"])).to_json()
        assert store.publish(made["run_id"], made["scenario_id"]).n_allocations == len(made["snapshot"]["workers"])

    with psycopg.connect(url) as conn:
        placed = dict(conn.execute(
            "select w.external_id, j.external_id from allocator_py_allocations a "
            "join worker_mappings w on w.id = a.worker_id join job_lines j on j.id = a.job_line_id "
            "where a.run_id = %s", (run_id,)).fetchall())
    assert placed == MEETS_THE_RULES


@pytest.mark.parametrize("state", STATES)
def test_migrating_again_applies_nothing(new_database, state):
    url, _ = _old_database(new_database, state)
    assert migrate(url)
    recorded = _tracking(url)
    schema = describe_schema(url)

    again = apply_migrations(url)

    assert (again.applied, again.reapplied, again.rerun) == ((), (), ())
    assert again.describe() == []
    assert migrate(url) == []
    assert _tracking(url) == recorded
    assert describe_schema(url) == schema


def test_a_changed_file_that_fails_leaves_the_database_as_it_was(new_database, tmp_path):
    url, made = _old_database(new_database, "before_business_rules")
    _, changed = _expected("before_business_rules")
    broken = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, broken)
    # The last changed file gets a statement PostgreSQL refuses, after everything else in it.
    victim = next(m for m in migration_files(broken) if m.version == changed[-1])
    text = victim.path.read_text(encoding="utf-8")
    victim.path.write_text(text + "\ncreate tabel public.oops (id int);\n", encoding="utf-8")
    bad_line = text.count("\n") + 2
    schema, recorded = describe_schema(url), _tracking(url)

    with pytest.raises(psycopg.errors.SyntaxError) as failed:
        apply_migrations(url, directory=broken)

    message = str(failed.value)
    assert f"Migration {victim.path.name} changed since it was applied, and could not be applied again" in message
    assert f"(line {bad_line})" in message
    assert "Nothing was changed" in message
    # Not one of the files before it (new, changed or run again) left anything behind.
    assert describe_schema(url) == schema
    assert _tracking(url) == recorded
    with psycopg.connect(url) as conn:
        assert conn.execute("select to_regclass('public.allocator_py_run_links')").fetchone() == (None,)
        assert conn.execute(
            "select count(*) from allocator_scenarios where id = %s and inputs_version is not null",
            (made["scenario_id"],)).fetchone() == (1,)

    # With the file mended, the same database migrates.
    victim.path.write_text(text, encoding="utf-8")
    assert [m.version for m in apply_migrations(url, directory=broken).reapplied] == changed


def test_a_new_file_that_fails_is_named_too(new_database, tmp_path):
    url, _ = _old_database(new_database, "before_business_rules")
    new, _ = _expected("before_business_rules")
    broken = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, broken)
    victim = next(m for m in migration_files(broken) if m.version == new[0])
    victim.path.write_text("select 1;\nselect * from public.no_such_table;\n", encoding="utf-8")
    recorded = _tracking(url)

    with pytest.raises(psycopg.errors.UndefinedTable) as failed:
        apply_migrations(url, directory=broken)

    assert re.search(rf"Migration {victim.path.name} could not be applied \(line 2\): relation "
                     r"\"public.no_such_table\" does not exist", str(failed.value))
    assert _tracking(url) == recorded


def test_the_report_in_words():
    files = {m.version: m for m in migration_files()}
    core, triggers, functions, security, rules = (
        files[v] for v in ("20261128000001", "20261128000002", "20261128000003", "20261128000004", "20261130000004"))

    assert MigrationReport().describe() == []
    assert MigrationReport(rerun=(security,)).describe() == []  # never alone, but says nothing then
    assert MigrationReport(applied=(rules,), reapplied=(triggers, functions), rerun=(security,)).describe() == [
        "applied 1 new migration: 20261130000004_business_rules.sql",
        "applied again 2 migrations changed since they were applied: "
        "20261128000002_triggers.sql, 20261128000003_functions.sql",
        "ran 1 unchanged later migration again after the new or changed ones, in the order a new "
        "database gets them: 20261128000004_security.sql",
    ]
    assert MigrationReport(reapplied=(core,)).describe() == [
        "applied again 1 migration changed since it was applied: 20261128000001_core.sql"]


def test_db_migrate_says_which_files_it_applied_again(new_database, tmp_path, monkeypatch, capsys):
    from tests.helpers.cli import console

    url, _ = _old_database(new_database, "before_business_rules")
    new, changed = _expected("before_business_rules")
    names = {m.version: m.path.name for m in migration_files()}
    cli = console(url, tmp_path, monkeypatch, capsys)

    done = cli("db", "migrate")

    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("Migrated postgresql://")
    assert f"  Applied 1 new migration: {names[new[0]]}." in lines
    assert (f"  Applied again {len(changed)} migrations changed since they were applied: "
            f"{', '.join(names[v] for v in changed)}.") in lines
    assert "is up to date" in cli("db", "migrate").stderr


def test_a_function_added_to_a_changed_file_gets_the_grants_of_the_files_after_it(new_database, tmp_path):
    # Why the unchanged files after a changed one run again: 20261128000004_security.sql
    # revokes EXECUTE on every allocator function, which PostgreSQL grants to PUBLIC (anon
    # included) when a function is created.
    copied = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copied)
    url = new_database(prefix="grants")
    migrate(url, directory=copied)
    functions = next(m for m in migration_files(copied) if m.name == "functions")
    functions.path.write_text(functions.sql + """
create or replace function public.allocator_added_later() returns integer
language sql stable set search_path = '' as $$ select 1 $$;
""", encoding="utf-8")

    report = apply_migrations(url, directory=copied)

    assert [m.name for m in report.reapplied] == ["functions"]
    assert "security" in [m.name for m in report.rerun]
    with psycopg.connect(url) as conn:
        assert conn.execute(
            "select has_function_privilege('anon', 'public.allocator_added_later()', 'execute')"
        ).fetchone() == (False,)
