"""The postgres store: import and load, run lists, scenarios, run subsets and exclusivity."""

from __future__ import annotations

import copy

import psycopg
import pytest

from allocator.demo import demo_snapshot
from allocator.snapshot import RunSnapshot
from allocator.store import (
    InvalidSnapshotError,
    RunNotFoundError,
    RunStore,
    ScenarioNotFoundError,
    input_fingerprint,
)
from tests.helpers.dbtools import allocation_result, import_small, new_org_in_store, small_snapshot

pytestmark = pytest.mark.db

SPEC_EXAMPLE = {
    "format": "allocator-run/1",
    "run": {"id": "2027-intake", "name": "2027 PGY1 intake"},
    "settings": {
        "preferencer_weight": 0.3, "preference_power": 1.0, "max_seconds": 60,
        "rng_seed": 1234, "allow_worker_preference_ties": True, "stability": False,
    },
    "workers": [{"id": "w1", "name": "A. Nguyen", "qualification_ids": ["rural-ready"]}],
    "job_lines": [
        {"id": "j1", "name": "Line 1: ED / Gen Med / Surgery", "max_n_workers": 2,
         "must_have_workers": True, "preferencer_ids": ["p1"]}
    ],
    "worker_preferences": [{"worker_id": "w1", "job_line_id": "j1", "rank": 1}],
    "preferencer_preferences": [{"preferencer_id": "p1", "worker_id": "w1", "rank": 1}],
    "eligibility": [
        {"job_line_id": "j1", "included_worker_ids": [], "excluded_worker_ids": [],
         "included_qualification_ids": [], "excluded_qualification_ids": []}
    ],
    "weightings": [{"worker_id": "w1", "job_line_id": None, "value": -2.0}],
    "pins": [{"worker_id": "w1", "job_line_id": "j1"}],
    "forbids": [],
}


def test_postgres_store_implements_the_interface(store):
    assert isinstance(store, RunStore)


@pytest.mark.parametrize(
    "snapshot",
    [
        pytest.param(SPEC_EXAMPLE, id="spec-example"),
        pytest.param(small_snapshot(), id="small"),
        # A minimal snapshot: only the required keys; every list and setting defaults.
        pytest.param(
            {"format": "allocator-run/1", "workers": [{"id": "a"}],
             "job_lines": [{"id": "x", "max_n_workers": 1}]},
            id="minimal",
        ),
        pytest.param(demo_snapshot(60, seed=5), id="demo-60"),
    ],
)
def test_import_then_load_gives_the_snapshot_back(store, snapshot):
    run_id = store.import_snapshot(snapshot, organisation_id=new_org_in_store(store))
    loaded = store.load_run(run_id)
    expected = RunSnapshot.parse(copy.deepcopy(snapshot))
    assert loaded == expected  # same lists in the same order, not only the same content
    assert loaded.fingerprint() == expected.fingerprint()


def test_import_export_import_changes_nothing(store):
    org = new_org_in_store(store)
    first = store.load_run(store.import_snapshot(demo_snapshot(40, seed=9), organisation_id=org))
    second = store.load_run(store.import_snapshot(first, organisation_id=org))
    assert second == first


def test_invalid_snapshot_is_refused_naming_the_entry_and_nothing_is_stored(store, sql):
    bad = small_snapshot()
    bad["worker_preferences"][3]["job_line_id"] = "nope"
    before = sql.execute("select count(*) from allocation_runs").fetchone()
    with pytest.raises(InvalidSnapshotError, match=r"worker_preferences\[3\].*'nope'"):
        store.import_snapshot(bad, organisation_id=new_org_in_store(store))
    assert sql.execute("select count(*) from allocation_runs").fetchone() == before


@pytest.mark.parametrize(
    "section, index, field, value, expected",
    [
        # a preference naming a job line the snapshot does not have
        ("worker_preferences", 2, "job_line_id", "ghost", r"worker_preferences\[2\]: job line 'ghost'"),
        # a supervisor ranking a worker the snapshot does not have
        ("preferencer_preferences", 1, "worker_id", "ghost", r"preferencer_preferences\[1\]: worker 'ghost'"),
        # an eligibility rule naming an unknown worker
        ("eligibility", 0, "included_worker_ids", ["ghost"], r"eligibility\[0\]: worker 'ghost'"),
        # a weighting on an unknown job line
        ("weightings", 0, "job_line_id", "ghost", r"weightings\[0\]: job line 'ghost'"),
        # a forbid of an unknown worker
        ("forbids", 0, "worker_id", "ghost", r"forbids\[0\]: worker 'ghost'"),
    ],
)
def test_sql_import_refuses_dangling_ids_atomically(store, sql, section, index, field, value, expected):
    # The SQL function checks on its own (the Supabase adapter calls it over the API).
    snap = small_snapshot()
    snap[section][index][field] = value
    org = new_org_in_store(store)
    before = sql.execute("select count(*) from allocation_runs").fetchone()
    with pytest.raises(psycopg.Error, match=expected) as exc:
        sql.execute("select allocator_import_run(%s, %s)", (psycopg.types.json.Jsonb(snap), org))
    assert exc.value.sqlstate == "AL008"
    assert sql.execute("select count(*) from allocation_runs").fetchone() == before


@pytest.mark.parametrize(
    ("section", "index", "field", "value", "expected"),
    [
        # Each was stored (the run could then not be loaded, solved or exported) or refused
        # with PostgreSQL's own words (a constraint's name, "invalid input syntax for type").
        ("job_lines", 0, "max_n_workers", 1_000_001, r"job_lines\[0\] \(id 'j1'\): max_n_workers must be a whole number from 0 to 1,000,000, not 1000001"),
        ("job_lines", 1, "max_n_workers", "two", r"job_lines\[1\] \(id 'j2'\): max_n_workers must be a whole number from 0 to 1,000,000, not \"two\""),
        ("job_lines", 0, "must_have_workers", "yes", r"job_lines\[0\] \(id 'j1'\): must_have_workers must be true or false"),
        ("job_lines", 0, "name", "Line\x07one", r"job_lines\[0\] \(id 'j1'\): the name contains a control character"),
        ("workers", 1, "id", "w" * 201, r"workers\[1\] \(id 'w{60}'\): the id is 201 characters long; an id has at most 200"),
        ("workers", 1, "id", " w2", r"workers\[1\] \(id ' w2'\): the id starts or ends with a space"),
        # A no-break space: the snapshot check refuses it at either end (Python strips it), so must this.
        ("workers", 1, "id", "w2\u00a0", r"workers\[1\] \(id 'w2\xa0'\): the id starts or ends with a space"),
        ("workers", 1, "id", "w1", r"workers: the id 'w1' is used by more than one worker"),
        ("workers", 0, "name", "N" * 501, r"workers\[0\] \(id 'w1'\): the name is 501 characters long; a name has at most 500"),
        ("workers", 0, "qualification_ids", "icu", r"workers\[0\] \(id 'w1'\): qualification_ids: must be a list, not \"icu\""),
        # Which list and which entry of it (it was "a list of ids holds something that is not an id").
        ("workers", 1, "qualification_ids", ["icu", "rural\x07"], r"workers\[1\] \(id 'w2'\): qualification_ids\[1\]: the id contains a control character"),
        ("eligibility", 0, "excluded_qualification_ids", ["t" * 201], r"eligibility\[0\]: excluded_qualification_ids\[0\]: the id is 201 characters long"),
        ("worker_preferences", 0, "rank", 1e300, r"worker_preferences\[0\]: the rank must be a number from 1 to 1,000,000,000, not 1000000000000000000000000000000000000000…"),
        ("worker_preferences", 0, "rank", "1", r"worker_preferences\[0\]: the rank must be a number from 1 to 1,000,000,000, not \"1\""),
        ("weightings", 0, "value", -2e9, r"weightings\[0\]: the value must be a number from -1,000,000,000 to 1,000,000,000"),
        ("settings", None, "preferencer_weight", 5, r"settings: preferencer_weight must be a number from 0 to 1, not 5"),
        ("settings", None, "rng_seed", -1, r"settings: rng_seed must be a whole number from 0 to 9223372036854775807, not -1"),
        ("settings", None, "stability", "yes", r"settings: stability must be true or false"),
        ("run", None, "id", "r" * 201, r"run: the id is 201 characters long; an id has at most 200"),
        ("run", None, "name", "Intake\x1b", r"run: the name contains a control character"),
        # A supervisor whom no job line names may rank workers: no reference bounds the id.
        ("preferencer_preferences", 0, "preferencer_id", "p" * 201, r"preferencer_preferences\[0\]: the supervisor id is 201 characters long; an id has at most 200"),
        ("preferencer_preferences", 1, "preferencer_id", "p2\x1b", r"preferencer_preferences\[1\]: the supervisor id contains a control character"),
        ("preferencer_preferences", 1, "preferencer_id", "p2\u3000", r"preferencer_preferences\[1\]: the supervisor id starts or ends with a space"),
    ],
)
def test_sql_import_refuses_fields_beyond_the_limits_atomically(store, sql, section, index, field, value, expected):
    # The SQL function checks the snapshot's types and Limits on its own (run-snapshot.md),
    # as the snapshot check does before the store calls it.
    snap = small_snapshot()
    (snap[section] if index is None else snap[section][index])[field] = value
    org = new_org_in_store(store)
    before = sql.execute("select count(*) from allocation_runs").fetchone()
    with pytest.raises(psycopg.Error, match=expected) as exc:
        sql.execute("select allocator_import_run(%s, %s)", (psycopg.types.json.Jsonb(snap), org))
    assert exc.value.sqlstate == "AL008"
    assert sql.execute("select count(*) from allocation_runs").fetchone() == before


def test_sql_import_takes_values_at_the_limits_and_the_run_loads(store, sql):
    # Everything the snapshot check accepts, the SQL function stores, and the run loads back.
    snap = small_snapshot()
    snap["settings"]["max_seconds"] = 1e301  # any finite number of seconds (was refused above 1e300)
    snap["settings"]["rng_seed"] = 2**63 - 1
    snap["job_lines"][0]["max_n_workers"] = 1_000_000
    snap["job_lines"][1]["max_n_workers"] = 0
    snap["job_lines"][2]["name"] = "L" * 500
    snap["worker_preferences"][0]["rank"] = 1e9
    snap["weightings"][0]["value"] = -1e9
    snap["workers"][0]["name"] = "Zoë 山田\t👩\u200d⚕️" + "👩" * 489  # 500 characters
    snap["workers"].append({"id": "dr. a 山田 🙂", "qualification_ids": ["t" * 200]})
    snap["preferencer_preferences"].append({"preferencer_id": "s" * 200, "worker_id": "w1", "rank": 1})
    snap["quotas"] = [{"id": "q", "job_line_ids": ["j1"], "min_workers": 0, "max_workers": 1_000_000_000}]
    expected = RunSnapshot.parse(copy.deepcopy(snap))
    (run_id,) = sql.execute(
        "select allocator_import_run(%s, %s)", (psycopg.types.json.Jsonb(snap), new_org_in_store(store))
    ).fetchone()
    assert store.load_run(str(run_id)) == expected


def test_sql_import_refuses_a_non_snapshot(sql):
    with pytest.raises(psycopg.Error, match="allocator-run/1") as exc:
        sql.execute("select allocator_import_run('{\"format\": \"other\"}'::jsonb)")
    assert exc.value.sqlstate == "AL008"


def test_list_runs_summarises_each_run(store):
    run_id, snap = import_small(store, n_workers=5, n_lines=3)
    summary = {r.id: r for r in store.list_runs()}[run_id]
    assert summary.name == snap["run"]["name"]
    assert (summary.status, summary.published, summary.last_solved_at) == ("pending", False, None)
    assert (summary.n_workers, summary.n_job_lines) == (5, 3)

    fp = input_fingerprint(store.load_run(run_id))
    store.save_scenario(run_id, "first", {}, {}, allocation_result(snap), fp)
    summary = {r.id: r for r in store.list_runs()}[run_id]
    assert summary.last_solved_at is not None


def test_unknown_run_and_scenario_ids_raise_not_found(store):
    with pytest.raises(RunNotFoundError):
        store.load_run("00000000-0000-0000-0000-000000000000")
    with pytest.raises(RunNotFoundError):
        store.load_run("not-a-uuid")
    with pytest.raises(ScenarioNotFoundError):
        store.get_scenario("00000000-0000-0000-0000-000000000000")


def test_scenarios_are_saved_listed_and_read_back(store):
    run_id, snap = import_small(store)
    fp = input_fingerprint(store.load_run(run_id))
    result = allocation_result(snap)
    a = store.save_scenario(run_id, "alpha 0.3", {"preferencer_weight": 0.3}, {"pins": []}, result, fp, "ana")
    b = store.save_scenario(run_id, "alpha 0.5", {"preferencer_weight": 0.5}, None, None, fp)

    listed = store.list_scenarios(run_id)
    assert [s.id for s in listed] == [b, a]  # newest first
    got = store.get_scenario(a)
    assert (got.run_id, got.name, got.settings, got.overrides) == (
        run_id, "alpha 0.3", {"preferencer_weight": 0.3}, {"pins": []})
    assert got.result == result
    assert (got.input_fingerprint, got.created_by) == (fp, "ana")
    assert store.get_scenario(b).created_by == "postgres"  # a trusted caller's default label


def test_a_run_with_listed_workers_and_lines_takes_only_those(store, sql):
    run_id, snap = import_small(store, n_workers=4, n_lines=3)
    (ar,) = sql.execute("select allocation_run_id from allocator_py_runs where id = %s", (run_id,)).fetchone()
    (subset,) = sql.execute(
        "insert into allocator_py_runs (allocation_run_id, name) values (%s, 'subset') returning id::text", (ar,)
    ).fetchone()
    sql.execute(
        "insert into allocator_py_run_workers (run_id, allocation_run_id, worker_id) "
        "select %s, %s, id from worker_mappings where allocation_run_id = %s and external_id in ('w1', 'w3')",
        (subset, ar, ar),
    )
    sql.execute(
        "insert into allocator_py_run_job_lines (run_id, allocation_run_id, job_line_id) "
        "select %s, %s, id from job_lines where allocation_run_id = %s and external_id in ('j1', 'j2')",
        (subset, ar, ar),
    )
    loaded = store.load_run(subset)
    assert [w.id for w in loaded.workers] == ["w1", "w3"]
    assert [j.id for j in loaded.job_lines] == ["j1", "j2"]
    # Everything that names a left-out worker or line is left out with it.
    assert {(p.worker_id, p.job_line_id) for p in loaded.worker_preferences} == {
        (w, j) for w in ("w1", "w3") for j in ("j1", "j2")}
    assert {p.worker_id for p in loaded.preferencer_preferences} == {"w1", "w3"}
    assert loaded.forbids == []  # (w1, j3): j3 is not in the subset
    assert loaded.weightings == []  # w2's weighting
    # The full run is untouched.
    assert store.load_run(run_id) == RunSnapshot.parse(snap)


def test_an_exclusive_run_leaves_out_what_another_completed_run_allocated(store, sql):
    run_id, snap = import_small(store, n_workers=4, n_lines=3, capacity=1)
    (ar,) = sql.execute("select allocation_run_id from allocator_py_runs where id = %s", (run_id,)).fetchone()
    (exclusive,) = sql.execute(
        "insert into allocator_py_runs (allocation_run_id, is_exclusive) values (%s, true) returning id::text",
        (ar,),
    ).fetchone()
    (inclusive,) = sql.execute(
        "insert into allocator_py_runs (allocation_run_id) values (%s) returning id::text", (ar,)
    ).fetchone()
    assert len(store.load_run(exclusive).workers) == 4  # nothing completed yet

    # The first run completes with w1 -> j1 and w2 -> j2 (a partial allocation, by hand).
    claimed = store.claim_next("test-worker", 60, run_id=run_id)
    assert claimed is not None
    store.complete_run(run_id, "test-worker", [
        {"worker_id": "w1", "job_line_id": "j1"}, {"worker_id": "w2", "job_line_id": "j2"}])

    loaded = store.load_run(exclusive)
    assert [w.id for w in loaded.workers] == ["w3", "w4"]
    assert [j.id for j in loaded.job_lines] == ["j3"]
    assert len(store.load_run(inclusive).workers) == 4  # not exclusive: takes everyone
    summary = {r.id: r for r in store.list_runs()}[exclusive]
    assert (summary.n_workers, summary.n_job_lines) == (2, 1)


def test_get_worker_qualifications_lists_each_workers_tags(store, sql):
    run_id, snap = import_small(store, n_workers=3, n_lines=2, tag="rural")
    (ar,) = sql.execute("select allocation_run_id from allocator_py_runs where id = %s", (run_id,)).fetchone()
    rows = sql.execute(
        "select worker_id, qualification_id from get_worker_qualifications(%s)", (ar,)
    ).fetchall()
    expected = [(w["id"], q) for w in snap["workers"] for q in w["qualification_ids"]]
    assert rows == expected
