"""The database checks everything a caller sends (issue 9, items 1-3 and the lease).

- Trust is an allow-list: a custom role that inherits ``authenticated`` is a planner.
- Publishing checks the allocation against the run's current data and the scenario's own
  overrides, and decides staleness itself; each refusal names the worker or line and
  writes nothing.
- Only a failed or expired run can be requeued; a planner never resets its attempts.
- The claim holder renews its lease; nobody else can.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg.types.json import Jsonb

from allocator.store import (
    ClaimLostError,
    PublishRefusedError,
    RunBusyError,
    StaleScenarioError,
    input_fingerprint,
)
from tests.helpers.dbtools import (
    acting_as,
    new_org_in_store,
    new_organisation,
    new_user,
    small_snapshot,
)

pytestmark = pytest.mark.db


# --------------------------------------------------------------------------- 1. trust


@pytest.fixture(scope="module")
def orgs(supabase_url):
    """Organisations A (planner ana) and B, one run each; a role `sneaky` inheriting
    `authenticated` and a role `sneaky_service` inheriting `service_role`."""
    with psycopg.connect(supabase_url, autocommit=True) as conn:
        ana = new_user(conn, "ana@trust.example")
        ben = new_user(conn, "ben@trust.example")
        org_a = new_organisation(conn, "Trust A", ana)
        org_b = new_organisation(conn, "Trust B", ben)
        runs = {}
        for org, key in ((org_a, "a"), (org_b, "b")):
            (runs[key],) = conn.execute(
                "select allocator_import_run(%s, %s)::text", (Jsonb(small_snapshot()), org)
            ).fetchone()
        for role, parent in (("sneaky", "authenticated"), ("sneaky_service", "service_role")):
            conn.execute(f"drop role if exists {role}")
            conn.execute(f"create role {role} nologin inherit")
            conn.execute(f"grant {parent} to {role}")
    return {"url": supabase_url, "ana": ana, "org_a": org_a, "org_b": org_b,
            "run_a": runs["a"], "run_b": runs["b"]}


def _trusted(conn) -> bool:
    return conn.execute("select allocator_caller_is_trusted()").fetchone()[0]


def test_only_the_service_role_and_the_owner_are_trusted(orgs):
    with psycopg.connect(orgs["url"], autocommit=True) as owner:
        assert _trusted(owner)
    with acting_as(orgs["url"], "service_role") as conn:
        assert _trusted(conn)
    for role in ("authenticated", "sneaky", "sneaky_service", "anon"):
        with acting_as(orgs["url"], role, orgs["ana"]) as conn:
            if role == "anon":
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    _trusted(conn)
            else:
                assert not _trusted(conn), role


def test_a_role_inheriting_authenticated_meets_every_organisation_check(orgs):
    with acting_as(orgs["url"], "sneaky", orgs["ana"]) as conn:
        with pytest.raises(psycopg.Error, match="not a member") as exc:
            conn.execute("select allocator_import_run(%s, %s)", (Jsonb(small_snapshot()), orgs["org_b"]))
        assert exc.value.sqlstate == "AL005"
        for call in (
            "select allocator_requeue_run(%s)",
            "select allocator_save_scenario(%s, 'x', '{}', '{}', null, 'fp')",
            "select * from allocator_publish(%s, gen_random_uuid(), 'fp')",
        ):
            with pytest.raises(psycopg.Error, match="not found") as exc:
                conn.execute(call, (orgs["run_b"],))
            assert exc.value.sqlstate == "AL003", call
        # Nor directly into the table: row-level security applies to the role as to its parent.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("insert into allocator_scenarios (run_id, name, input_fingerprint, created_by) "
                         "values (%s, 'elsewhere', 'fp', %s)", (orgs["run_b"], orgs["ana"]))
        # ... and claiming runs is for workers only.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from allocator_claim('sneaky')")
        # Its own organisation works as for any planner.
        (n,) = conn.execute("select count(*) from allocator_run_summaries").fetchone()
        assert n == 1
    with psycopg.connect(orgs["url"], autocommit=True) as owner:
        (n,) = owner.execute(
            "select count(*) from allocator_py_runs r join allocation_runs ar on ar.id = r.allocation_run_id "
            "where ar.organisation_id = %s", (orgs["org_b"],)).fetchone()
        assert n == 1  # nothing was imported into B
        assert owner.execute("select count(*) from allocator_scenarios where run_id = %s",
                             (orgs["run_b"],)).fetchone() == (0,)


def test_a_role_inheriting_the_service_role_is_not_a_worker(orgs):
    with acting_as(orgs["url"], "sneaky_service") as conn:
        with pytest.raises(psycopg.Error, match="Only a headless worker") as exc:
            conn.execute("select * from allocator_claim('sneaky', 60, %s)", (orgs["run_b"],))
        assert exc.value.sqlstate == "AL005"


# --------------------------------------------------------------------------- 2. publish


def _snap() -> dict:
    """Four workers, four lines: j1 one place; j2 must be filled, w4 pinned there; j3 excludes
    the tag 'night' (w3 has it), w2 is forbidden on j3; j4 must be filled.

    A valid allocation: w1 -> j1, w2 -> j4, w3 -> j2, w4 -> j2.
    """
    return {
        "format": "allocator-run/1",
        "run": {"id": "checks", "name": "Checks"},
        "workers": [
            {"id": "w1", "name": "Ada"},
            {"id": "w2", "name": "Bo"},
            {"id": "w3", "name": "Cy", "qualification_ids": ["night"]},
            {"id": "w4", "name": "Di"},
        ],
        "job_lines": [
            {"id": "j1", "name": "Surgery", "max_n_workers": 1},
            {"id": "j2", "name": "Medicine", "max_n_workers": 4, "must_have_workers": True},
            {"id": "j3", "name": "Paediatrics", "max_n_workers": 4},
            {"id": "j4", "name": "Psychiatry", "max_n_workers": 4, "must_have_workers": True},
        ],
        "eligibility": [{"job_line_id": "j3", "excluded_qualification_ids": ["night"]}],
        "pins": [{"worker_id": "w4", "job_line_id": "j2"}],
        "forbids": [{"worker_id": "w2", "job_line_id": "j3"}],
    }


VALID = {"w1": "j1", "w2": "j4", "w3": "j2", "w4": "j2"}


def _result(pairs) -> dict:
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return {"format": "allocator-result/1", "status": "optimal",
            "allocations": [{"worker_id": w, "job_line_id": j, "worker_rank": 1.0, "cost": 1.0}
                            for w, j in items]}


def _state(sql, run_id):
    return (
        sql.execute("select status, completed_at, published_scenario_id from allocator_py_runs where id = %s",
                    (run_id,)).fetchone(),
        sql.execute("select worker_id, job_line_id from allocator_py_allocations where run_id = %s order by 1",
                    (run_id,)).fetchall(),
        sql.execute("select count(*) from allocator_publication_log where run_id = %s", (run_id,)).fetchone(),
    )


@pytest.fixture
def run(store):
    return store.import_snapshot(_snap(), organisation_id=new_org_in_store(store))


def _save(store, run_id, pairs, overrides=None, name="s"):
    fp = input_fingerprint(store.load_run(run_id))
    return store.save_scenario(run_id, name, {}, overrides or {}, _result(pairs), fp)


@pytest.mark.parametrize(
    ("pairs", "named"),
    [
        pytest.param({"w1": "j1", "w2": "j1", "w3": "j1", "w4": "j1"},
                     ["Job line 'j1' (Surgery) has room for 1 but is given 4 workers",
                      "Job line 'j4' (Psychiatry) must be filled",
                      "Worker 'w4' (Di) is pinned to job line 'j2' (Medicine)"],
                     id="four-on-a-one-place-line"),
        pytest.param({**VALID, "w3": "j3"},
                     ["Worker 'w3' (Cy) may not take job line 'j3' (Paediatrics): they have the tag 'night'"],
                     id="ineligible"),
        pytest.param({**VALID, "w1": "j3", "w2": "j3"},
                     ["Worker 'w2' (Bo) is forbidden on job line 'j3' (Paediatrics)",
                      "Job line 'j4' (Psychiatry) must be filled"],
                     id="forbidden"),
        pytest.param({**VALID, "w2": "j2"},
                     ["Job line 'j4' (Psychiatry) must be filled, but the allocation leaves it empty"],
                     id="mandatory-left-empty"),
        pytest.param({"w2": "j4", "w3": "j2", "w4": "j2"},
                     ["Worker 'w1' (Ada) has no line"], id="worker-missing"),
        pytest.param([("w1", "j1"), ("w2", "j4"), ("w3", "j2"), ("w4", "j2"), ("w2", "j2")],
                     ["Worker 'w2' (Bo) is given 2 lines ('j4', 'j2')"], id="worker-twice"),
        pytest.param({**VALID, "w4": "j4"},
                     ["Worker 'w4' (Di) is pinned to job line 'j2' (Medicine), but the allocation puts them on 'j4'"],
                     id="pin-not-honoured"),
        pytest.param({**VALID, "ghost": "j2"},
                     ["worker 'ghost' is not a worker of this run"], id="stranger"),
    ],
)
def test_an_invalid_allocation_is_refused_naming_the_fault_and_nothing_is_written(
        store, sql, run, pairs, named):
    scenario = _save(store, run, pairs)
    before = _state(sql, run)
    with pytest.raises(PublishRefusedError) as exc:
        store.publish(run, scenario, published_by="ana")
    for text in named:
        assert text in str(exc.value)
    assert "nothing was written" in str(exc.value)
    assert _state(sql, run) == before
    # The same run publishes a valid allocation (the checks refuse only what is wrong).
    assert store.publish(run, _save(store, run, VALID, name="valid")).n_allocations == 4


def test_the_scenarios_own_overrides_are_honoured(store, sql, run):
    lifted = {"lifted_forbids": [{"worker_id": "w2", "job_line_id": "j3"}],
              "lifted_pins": [{"worker_id": "w4", "job_line_id": "j2"}],
              "lines": [{"job_line_id": "j1", "max_n_workers": 2},
                        {"job_line_id": "j4", "must_have_workers": False}]}
    # Its own forbid and pin are checked ...
    own = {"forbids": [{"worker_id": "w1", "job_line_id": "j1"}],
           "pins": [{"worker_id": "w3", "job_line_id": "j4"}]}
    scenario = _save(store, run, VALID, own)
    before = _state(sql, run)
    with pytest.raises(PublishRefusedError) as exc:
        store.publish(run, scenario)
    assert "Worker 'w1' (Ada) is forbidden on job line 'j1' (Surgery)" in str(exc.value)
    assert "Worker 'w3' (Cy) is pinned to job line 'j4' (Psychiatry), but the allocation puts them on 'j2'" in str(exc.value)
    assert _state(sql, run) == before
    # ... and what it lifts or changes is allowed: w2 on j3, w4 off its run pin, two on j1,
    # j4 no longer to be filled.
    pairs = {"w1": "j1", "w2": "j3", "w3": "j2", "w4": "j1"}
    with pytest.raises(PublishRefusedError):  # without the overrides: refused
        store.publish(run, _save(store, run, pairs, name="plain"))
    assert store.publish(run, _save(store, run, pairs, lifted, name="lifted")).n_allocations == 4


def test_staleness_is_decided_by_the_database_not_the_caller(store, sql, run):
    scenario = _save(store, run, VALID)
    (fp,) = sql.execute("select input_fingerprint from allocator_scenarios where id = %s", (scenario,)).fetchone()
    sql.execute("update worker_mappings set name = 'Ada Lovelace' where external_id = 'w1' and "
                "allocation_run_id = (select allocation_run_id from allocator_py_runs where id = %s)", (run,))
    before = _state(sql, run)
    # A caller passing the scenario's own fingerprint (or none) as "current" is not believed.
    for claimed in (fp, None):
        with pytest.raises(psycopg.Error, match="inputs changed") as exc:
            sql.execute("select * from allocator_publish(%s, %s, %s)", (run, scenario, claimed))
        assert exc.value.sqlstate == "AL001"
    with pytest.raises(StaleScenarioError):
        store.publish(run, scenario)
    assert _state(sql, run) == before


def test_a_scenario_cannot_claim_a_newer_inputs_version_than_the_runs(store, sql, run):
    (now,) = sql.execute("select allocator_run_inputs_version(%s)", (run,)).fetchone()
    (stamped,) = sql.execute(
        "insert into allocator_scenarios (run_id, name, input_fingerprint, inputs_version, result) "
        "values (%s, 'future', 'fp', %s, %s) returning inputs_version", (run, now + 1000, Jsonb(_result(VALID)))
    ).fetchone()
    assert stamped == now
    (older,) = sql.execute(
        "insert into allocator_scenarios (run_id, name, input_fingerprint, inputs_version) "
        "values (%s, 'past', 'fp', %s) returning id", (run, now - 1)).fetchone()
    with pytest.raises(StaleScenarioError):
        store.publish(run, str(older))


# --------------------------------------------------------------------------- 3. requeue


@pytest.fixture
def queue(new_database):
    from allocator.store.postgres import PostgresStore

    with PostgresStore(new_database(migrated=True, prefix="requeue"), max_size=4) as s:
        yield s


def _row(url, run_id):
    with psycopg.connect(url) as conn:
        return conn.execute("select status, attempts, claimed_by from allocator_py_runs where id = %s",
                            (run_id,)).fetchone()


def test_a_held_or_waiting_run_cannot_be_requeued(queue):
    run_id = queue.import_snapshot(small_snapshot())
    with pytest.raises(RunBusyError, match="already waiting"):
        queue.requeue_run(run_id)
    queue.claim_next("holder", lease_seconds=60, run_id=run_id)
    before = _row(queue.url, run_id)
    with pytest.raises(RunBusyError, match="being solved by worker 'holder'"):
        queue.requeue_run(run_id)
    assert _row(queue.url, run_id) == before == ("running", 1, "holder")


def test_an_expired_run_can_be_requeued(queue):
    run_id = queue.import_snapshot(small_snapshot())
    queue.claim_next("crashed", lease_seconds=0.05, run_id=run_id)
    time.sleep(0.1)
    queue.requeue_run(run_id)
    assert _row(queue.url, run_id) == ("pending", 0, None)  # an operator (trusted) resets attempts


def test_a_planner_requeues_a_failed_run_without_resetting_its_attempts(orgs):
    run_a = orgs["run_a"]
    with acting_as(orgs["url"], "service_role") as svc:
        for k in range(2):
            svc.execute("select * from allocator_claim(%s, 60, %s)", (f"w{k}", run_a))
            svc.execute("select allocator_fail_run(%s, %s, 'no luck')", (run_a, f"w{k}"))
            if k == 0:
                svc.execute("select allocator_requeue_run(%s)", (run_a,))
    with acting_as(orgs["url"], "authenticated", orgs["ana"]) as conn:
        conn.execute("select allocator_requeue_run(%s)", (run_a,))
        assert conn.execute("select status, attempts from allocator_py_runs where id = %s",
                            (run_a,)).fetchone() == ("pending", 1)
        with pytest.raises(psycopg.Error, match="already waiting") as exc:
            conn.execute("select allocator_requeue_run(%s)", (run_a,))
        assert exc.value.sqlstate == "AL009"


# --------------------------------------------------------------------------- the lease


def test_the_claim_holder_renews_its_lease_and_nobody_else_can(queue):
    run_id = queue.import_snapshot(small_snapshot())
    claimed = queue.claim_next("holder", lease_seconds=1, run_id=run_id)
    renewed = queue.renew_lease(run_id, "holder", lease_seconds=120)
    assert renewed > claimed.lease_expires_at
    time.sleep(1.2)  # past the first lease: the renewal keeps the run held
    assert queue.claim_next("other", lease_seconds=60) is None
    with pytest.raises(ClaimLostError):
        queue.renew_lease(run_id, "other", lease_seconds=120)


# --------------------------------------------------------------------------- 2. SQL = Python


@pytest.mark.parametrize("seed", [3, 17])
def test_the_databases_eligibility_agrees_with_the_engines(store, sql, seed):
    """A solved demo run publishes; moving workers onto lines the engine deems ineligible
    is refused for exactly those workers, each with the engine's reason."""
    import re

    from allocator.demo import demo_snapshot
    from allocator.eligibility import Reason, RuleSet
    from allocator.engine import solve

    snap = demo_snapshot(60, seed=seed)
    run_id = store.import_snapshot(snap, organisation_id=new_org_in_store(store))
    loaded = store.load_run(run_id)
    result = solve(loaded).to_dict()
    assert result["status"] in ("optimal", "feasible")
    fp = input_fingerprint(loaded)

    rules = RuleSet.from_snapshot(loaded)
    pinned = {p.worker_id for p in loaded.pins}
    # Up to 8 unpinned workers, each onto a line the engine says they may not take, trying
    # for every kind of reason.
    moved: dict[str, tuple[str, Reason]] = {}
    for w in loaded.workers:
        if w.id in pinned or len(moved) >= 8:
            continue
        verdicts = [(j.id, rules.verdict(w.id, set(w.qualification_ids), j.id).reason) for j in loaded.job_lines]
        ineligible = [(j, r) for j, r in verdicts if not r.eligible]
        seen = {r for _, r in moved.values()}
        fresh = [(j, r) for j, r in ineligible if r not in seen]
        if fresh or ineligible:
            moved[w.id] = (fresh or ineligible)[0]
    assert len({r for _, r in moved.values()}) >= 2, moved  # more than one kind of reason

    bad = {**result, "allocations": [
        {**a, "job_line_id": moved[a["worker_id"]][0]} if a["worker_id"] in moved else a
        for a in result["allocations"]]}
    refused = store.save_scenario(run_id, "moved", {}, {}, bad, fp)
    with pytest.raises(PublishRefusedError) as exc:
        store.publish(run_id, refused)
    said = dict(re.findall(r"Worker '([^']+)'[^\n]* may not take job line '([^']+)'", str(exc.value)))
    assert said == {w: j for w, (j, _) in moved.items()}
    words = {Reason.EXCLUDED_WORKER: "excluded workers", Reason.EXCLUDED_TAG: "which the line excludes",
             Reason.MISSING_INCLUDED_TAG: "lack every tag the line requires"}
    for line in str(exc.value).splitlines():
        m = re.search(r"Worker '([^']+)'", line)
        if m and "may not take" in line:
            assert words[moved[m.group(1)][1]] in line, line

    good = store.save_scenario(run_id, "solved", {}, {}, result, fp)
    assert store.publish(run_id, good).n_allocations == len(loaded.workers)


def test_a_pin_with_its_reason_is_checked_like_any_pin(store, sql, run):
    """A scenario pin set from the Results page carries ``reason``: the check reads the pair only."""
    why = "agreed with the supervisor"
    wrong = _save(store, run, VALID, {"pins": [{"worker_id": "w3", "job_line_id": "j4", "reason": why}]})
    with pytest.raises(PublishRefusedError) as exc:
        store.publish(run, wrong)
    assert "Worker 'w3' (Cy) is pinned to job line 'j4' (Psychiatry), but the allocation puts them on 'j2'" in str(exc.value)
    kept = {"pins": [{"worker_id": "w3", "job_line_id": VALID["w3"], "reason": why}]}
    scenario = _save(store, run, VALID, kept, name="pinned with a reason")
    assert store.publish(run, scenario, reason="Signed off").n_allocations == 4
    assert next(s for s in store.list_scenarios(run) if s.id == scenario).overrides == kept
