"""Business rules in the database (business-rules.md): import and export of sites, priorities,
links, quotas, the previous allocation and fewest_moves; the publish checks of links and
quotas; run changes that keep a run with them valid. All on the real embedded PostgreSQL."""

from __future__ import annotations

import copy

import psycopg
import pytest
from psycopg.types.json import Jsonb

from allocator.demo import demo_snapshot
from allocator.snapshot import RunSnapshot
from allocator.store import InvalidSnapshotError, PublishRefusedError, input_fingerprint
from tests.helpers.dbtools import new_org_in_store, small_snapshot

pytestmark = pytest.mark.db


def rules_snapshot() -> dict:
    """A small run with every new key: sites, priorities, two links, three quotas (by site,
    by line with a tag, a cap), a previous allocation and fewest_moves on."""
    snap = small_snapshot(n_workers=6, n_lines=4, capacity=3)
    sites = ["Orange", "Orange", "Dubbo", None]
    for line, site in zip(snap["job_lines"], sites, strict=True):
        if site:
            line["site"] = site
    snap["workers"][0]["priority"] = 1
    snap["workers"][1]["priority"] = 2
    snap["workers"][4]["priority"] = 1
    snap["linked_workers"] = [
        {"id": "couple-7", "worker_ids": ["w3", "w4"]},
        {"id": "trio", "worker_ids": ["w5", "w6", "w2"]},
    ]
    snap["quotas"] = [
        {"id": "rural-min", "sites": ["Dubbo"], "min_workers": 1, "max_workers": None},
        {"id": "icu-ready", "job_line_ids": ["j1", "j2"], "qualification_id": "icu", "min_workers": 0, "max_workers": 2},
        {"id": "new-tag", "job_line_ids": ["j4"], "qualification_id": "never-seen", "min_workers": 0, "max_workers": 5},
    ]
    snap["previous_allocations"] = [
        {"worker_id": "w1", "job_line_id": "j1"},
        {"worker_id": "w4", "job_line_id": "j3"},
    ]
    snap["settings"]["fewest_moves"] = True
    RunSnapshot.parse(copy.deepcopy(snap))
    return snap


def _raw(sql, run_id) -> dict:
    (data,) = sql.execute("select allocator_run_snapshot(%s)", (run_id,)).fetchone()
    return data


# --------------------------------------------------------------------------- import / export


def test_every_new_key_survives_import_then_export(store, sql):
    snap = rules_snapshot()
    run_id = store.import_snapshot(snap, organisation_id=new_org_in_store(store))

    loaded = store.load_run(run_id)
    expected = RunSnapshot.parse(copy.deepcopy(snap))
    assert loaded == expected  # same lists in the same order
    assert loaded.canonical() == expected.canonical()
    assert loaded.fingerprint() == expected.fingerprint()
    raw = _raw(sql, run_id)
    assert raw["settings"]["fewest_moves"] is True
    assert [j.get("site") for j in raw["job_lines"]] == ["Orange", "Orange", "Dubbo", None]
    assert [link["id"] for link in raw["linked_workers"]] == ["couple-7", "trio"]


def test_export_import_export_changes_nothing(store):
    org = new_org_in_store(store)
    first = store.load_run(store.import_snapshot(rules_snapshot(), organisation_id=org))
    second = store.load_run(store.import_snapshot(first, organisation_id=org))
    assert second == first
    assert second.to_json() == first.to_json()


@pytest.mark.parametrize("make", [lambda: small_snapshot(), lambda: demo_snapshot(30, seed=3)], ids=["small", "demo"])
def test_a_run_without_the_rules_exports_none_of_their_keys(store, sql, make):
    snap = make()
    for section in ("linked_workers", "quotas", "previous_allocations"):
        snap.pop(section, None)
    for line in snap["job_lines"]:
        line.pop("site", None)
    for worker in snap["workers"]:
        worker.pop("priority", None)
    snap.get("settings", {}).pop("fewest_moves", None)
    run_id = store.import_snapshot(snap, organisation_id=new_org_in_store(store))

    raw = _raw(sql, run_id)
    assert not {"linked_workers", "quotas", "previous_allocations"} & raw.keys()
    assert "fewest_moves" not in raw["settings"]
    assert all("site" not in j for j in raw["job_lines"])
    assert all("priority" not in w for w in raw["workers"])
    loaded = store.load_run(run_id)
    assert loaded.to_json() == RunSnapshot.parse(copy.deepcopy(snap)).to_json()  # byte for byte


def _sql_import(sql, snap, org):
    return sql.execute("select allocator_import_run(%s, %s)", (Jsonb(snap), org)).fetchone()[0]


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda s: s["linked_workers"][0].update(worker_ids=["w3", "ghost"]),
         r"linked_workers\[0\] \(id 'couple-7'\): worker 'ghost' is not in this snapshot"),
        (lambda s: s["linked_workers"][0].update(worker_ids=["w3"]),
         r"linked_workers\[0\] \(id 'couple-7'\): a link has 2 to 4 different workers"),
        (lambda s: s["linked_workers"][0].update(worker_ids=["w1", "w2", "w3", "w4", "w5"]),
         r"linked_workers\[0\] \(id 'couple-7'\): a link has 2 to 4"),
        (lambda s: s["linked_workers"][1].update(worker_ids=["w5", "w3"]),
         r"linked_workers\[1\] \(id 'trio'\): worker 'w3' is already in another link"),
        (lambda s: s["quotas"][0].update(job_line_ids=["j1"]),
         r"quotas\[0\] \(id 'rural-min'\): a quota counts either sites or job lines"),
        (lambda s: s["quotas"][0].update(sites=["Bathurst"]),
         r"quotas\[0\] \(id 'rural-min'\): site 'Bathurst' is not the site of any job line"),
        (lambda s: s["quotas"][1].update(job_line_ids=["j1", "ghost"]),
         r"quotas\[1\] \(id 'icu-ready'\): job line 'ghost' is not in this snapshot"),
        (lambda s: s["quotas"][1].update(min_workers=3),
         r"quotas\[1\] \(id 'icu-ready'\): the minimum \(3\) is above the maximum \(2\)"),
        (lambda s: s["quotas"][1].update(max_workers=1.5),
         r"quotas\[1\] \(id 'icu-ready'\): its minimum and maximum are whole numbers of workers, 0 or more"),
        (lambda s: s["quotas"][0].update(min_workers="3"),
         r"quotas\[0\] \(id 'rural-min'\): its minimum and maximum are whole numbers of workers, 0 or more"),
        (lambda s: s["previous_allocations"].append({"worker_id": "w1", "job_line_id": "j2"}),
         r"previous_allocations\[2\]: worker 'w1' appears more than once"),
        (lambda s: s["previous_allocations"][1].update(job_line_id="ghost"),
         r"previous_allocations\[1\]: job line 'ghost' is not in this snapshot"),
        (lambda s: s["workers"][2].update(priority=1.5),
         r"workers\[2\] \(id 'w3'\): the priority must be a whole number of at least 1"),
        (lambda s: s["workers"][2].update(priority=0),
         r"workers\[2\] \(id 'w3'\): the priority must be a whole number of at least 1"),
        (lambda s: s["job_lines"][3].update(site="  "),
         r"job_lines\[3\] \(id 'j4'\): the site must be a non-empty name"),
        # The Limits of run-snapshot.md: each was stored, and the run could not be loaded after.
        (lambda s: s["linked_workers"][0].update(id="c" * 201),
         r"linked_workers\[0\] \(id 'c{60}'\): the id is 201 characters long; an id has at most 200"),
        (lambda s: s["quotas"][1].update(qualification_id="icu\x07"),
         r"quotas\[1\] \(id 'icu-ready'\): the qualification_id contains a control character"),
        (lambda s: s["quotas"][0].update(sites=["Orange\x1b"]),
         r"quotas\[0\] \(id 'rural-min'\): a site is a non-empty name of at most 500 characters"),
        # Blank as the snapshot check's strip() sees it (each was stored: the run could not be loaded).
        (lambda s: s["job_lines"][3].update(site="\t"),
         r"job_lines\[3\] \(id 'j4'\): the site must be a non-empty name"),
        (lambda s: s["job_lines"][3].update(site="\u00a0\u3000"),
         r"job_lines\[3\] \(id 'j4'\): the site must be a non-empty name"),
        (lambda s: s["quotas"][0].update(sites=["Orange", "\u2007"]),
         r"quotas\[0\] \(id 'rural-min'\): a site is a non-empty name"),
        # Refused for its upper bound, which the message said nothing of ("at least 1, not 1000001").
        (lambda s: s["workers"][2].update(priority=1_000_001),
         r"workers\[2\] \(id 'w3'\): the priority must be a whole number of at least 1 \(1 is placed first\) and at most 1,000,000, not 1000001"),
        # The snapshot check's bound (1,000,000,000): beyond it the run was stored and could not be loaded.
        (lambda s: s["quotas"][1].update(max_workers=1_000_000_001),
         r"quotas\[1\] \(id 'icu-ready'\): its minimum and maximum are whole numbers of workers, 0 or more \(at most 1,000,000,000\)"),
    ],
    ids=["link-dangling", "link-of-one", "link-of-five", "worker-in-two-links", "quota-both",
         "quota-unknown-site", "quota-dangling-line", "quota-min-above-max", "quota-max-1.5",
         "quota-min-text", "previous-twice",
         "previous-dangling-line", "priority-1.5", "priority-0", "blank-site",
         "link-id-201-chars", "quota-tag-control-character", "quota-site-control-character",
         "tab-site", "no-break-and-wide-space-site", "figure-space-quota-site", "priority-over-a-million", "quota-max-over-a-billion"],
)
def test_sql_import_refuses_bad_rules_atomically(store, sql, change, expected):
    # The SQL function checks on its own (the Supabase adapter calls it over the API).
    snap = rules_snapshot()
    change(snap)
    org = new_org_in_store(store)
    before = sql.execute("select count(*) from allocation_runs").fetchone()
    with pytest.raises(psycopg.Error, match=expected) as exc:
        _sql_import(sql, snap, org)
    assert exc.value.sqlstate == "AL008"
    assert sql.execute("select count(*) from allocation_runs").fetchone() == before


def test_the_store_refuses_bad_rules_before_the_database(store, sql):
    snap = rules_snapshot()
    snap["linked_workers"][1]["worker_ids"] = ["w5", "w3"]
    before = sql.execute("select count(*) from allocation_runs").fetchone()
    with pytest.raises(InvalidSnapshotError, match=r"linked_workers\[1\] \(id 'trio'\).*'w3' is already in link 'couple-7'"):
        store.import_snapshot(snap, organisation_id=new_org_in_store(store))
    assert sql.execute("select count(*) from allocation_runs").fetchone() == before


def test_changing_a_rule_moves_the_inputs_version(store, sql):
    run_id = store.import_snapshot(rules_snapshot(), organisation_id=new_org_in_store(store))
    versions = [store.inputs_version(run_id)]
    sql.execute("update allocator_py_runs set fewest_moves = false where id = %s", (run_id,))
    versions.append(store.inputs_version(run_id))
    sql.execute("delete from allocator_py_run_previous_allocations where run_id = %s", (run_id,))
    versions.append(store.inputs_version(run_id))
    sql.execute("update allocator_py_run_quotas set min_workers = 2 where run_id = %s and external_id = 'rural-min'",
                (run_id,))
    versions.append(store.inputs_version(run_id))
    sql.execute("update worker_mappings set priority = 3 where id = (select worker_id from allocator_py_run_link_workers "
                "where run_id = %s order by id limit 1)", (run_id,))
    versions.append(store.inputs_version(run_id))
    assert versions == sorted(set(versions))  # each change moved it
    loaded = store.load_run(run_id)
    assert not loaded.settings.fewest_moves and loaded.previous_allocations == []
    assert [q.min_workers for q in loaded.quotas if q.id == "rural-min"] == [2]


def test_a_run_listing_some_workers_keeps_only_links_it_can_hold(store, sql):
    snap = rules_snapshot()
    run_id = store.import_snapshot(snap, organisation_id=new_org_in_store(store))
    # The run takes w1..w3 and w5 only: couple-7 loses w4 (one left: no link); trio keeps w5, w2.
    sql.execute(
        "insert into allocator_py_run_workers (run_id, allocation_run_id, worker_id) "
        "select r.id, r.allocation_run_id, w.id from allocator_py_runs r join worker_mappings w "
        "on w.allocation_run_id = r.allocation_run_id where r.id = %s and w.external_id in ('w1','w2','w3','w5')",
        (run_id,),
    )
    loaded = store.load_run(run_id)  # parses: the snapshot stays valid
    assert [(link.id, link.worker_ids) for link in loaded.linked_workers] == [("trio", ["w5", "w2"])]
    assert [(p.worker_id, p.job_line_id) for p in loaded.previous_allocations] == [("w1", "j1")]


# --------------------------------------------------------------------------- publish


def _place(snap, where: dict[str, str]) -> dict:
    return {
        "format": "allocator-result/1", "run_id": snap["run"]["id"], "status": "optimal", "objective": 1.0,
        "allocations": [{"worker_id": w, "job_line_id": j, "worker_rank": 1.0, "cost": 1.0}
                        for w, j in sorted(where.items())],
    }


def _rules_run(store):
    """A run whose rules the allocation GOOD meets: links on one site, quotas met."""
    snap = small_snapshot(n_workers=4, n_lines=3, capacity=3)
    snap["eligibility"] = []
    snap["forbids"] = []
    snap["job_lines"][0]["site"] = "Orange"
    snap["job_lines"][1]["site"] = "Orange"
    snap["job_lines"][2]["site"] = "Dubbo"
    snap["linked_workers"] = [{"id": "couple-7", "worker_ids": ["w1", "w2"]}]
    snap["quotas"] = [
        {"id": "rural-min", "sites": ["Dubbo"], "min_workers": 1},
        {"id": "icu-cap", "job_line_ids": ["j1"], "qualification_id": "icu", "max_workers": 1},
    ]
    run_id = store.import_snapshot(snap, organisation_id=new_org_in_store(store))
    return run_id, snap


GOOD = {"w1": "j1", "w2": "j2", "w3": "j3", "w4": "j1"}


def _state(sql, run_id):
    return (
        sql.execute("select status, published_scenario_id from allocator_py_runs where id = %s", (run_id,)).fetchone(),
        sql.execute("select count(*) from allocator_py_allocations where run_id = %s", (run_id,)).fetchone(),
        sql.execute("select count(*) from allocator_publication_log where run_id = %s", (run_id,)).fetchone(),
    )


def _save(store, run_id, snap, where, overrides=None, name="s"):
    fp = input_fingerprint(store.load_run(run_id))
    return store.save_scenario(run_id, name, snap["settings"], overrides or {}, _place(snap, where), fp)


def test_an_allocation_meeting_links_and_quotas_is_published(store):
    run_id, snap = _rules_run(store)
    outcome = store.publish(run_id, _save(store, run_id, snap, GOOD))
    assert outcome.n_allocations == 4


@pytest.mark.parametrize(
    "where, fragments",
    [
        ({**GOOD, "w2": "j3", "w3": "j2"},
         ["Link 'couple-7' keeps its workers at one site, but the allocation puts "
          "'w1' at site 'Orange' (job line 'j1'), 'w2' at site 'Dubbo' (job line 'j3')."]),
        ({**GOOD, "w3": "j2"},
         ["Quota 'rural-min' needs at least 1 worker on site 'Dubbo', but the allocation puts 0 there."]),
        ({**GOOD, "w3": "j1"},
         ["Quota 'icu-cap' allows at most 1 worker with qualification 'icu' on job line 'j1', "
          "but the allocation puts 2 there.",
          "Quota 'rural-min' needs at least 1 worker"]),
    ],
    ids=["link-on-two-sites", "quota-below-min", "quota-above-max-and-below-min"],
)
def test_publish_refuses_a_broken_link_or_quota_and_writes_nothing(store, sql, where, fragments):
    run_id, snap = _rules_run(store)
    scenario_id = _save(store, run_id, snap, where)
    before = _state(sql, run_id)

    with pytest.raises(PublishRefusedError) as refused:
        store.publish(run_id, scenario_id)

    message = str(refused.value)
    assert "nothing was written" in message
    for fragment in fragments:
        assert fragment in message
    assert _state(sql, run_id) == before


def test_the_scenarios_links_and_quotas_replace_the_runs(store, sql):
    run_id, snap = _rules_run(store)
    split = {**GOOD, "w2": "j3", "w3": "j2"}  # breaks the run's couple-7 and rural-min
    overrides = {
        "linked_workers": [{"id": "pair", "worker_ids": ["w3", "w4"]}],
        "quotas": [{"id": "orange-cap", "sites": ["Orange"], "job_line_ids": None, "qualification_id": None,
                    "min_workers": 0, "max_workers": 3}],
    }
    # The scenario's own link is broken (w3 at Orange's j2, w4 at Orange's j1 is one site: met),
    # its own quota is met (3 at Orange): publishable although the run's rules are broken.
    outcome = store.publish(run_id, _save(store, run_id, snap, split, overrides))
    assert outcome.n_allocations == 4

    # An empty list also replaces wholly: no links, no quotas.
    run_id, snap = _rules_run(store)
    store.publish(run_id, _save(store, run_id, snap, split, {"linked_workers": [], "quotas": []}))

    # A scenario's replacement is checked like the run's own.
    run_id, snap = _rules_run(store)
    bad = {"linked_workers": [{"id": "pair", "worker_ids": ["w2", "w3"]}], "quotas": None}
    scenario_id = _save(store, run_id, snap, {"w1": "j1", "w2": "j3", "w3": "j1", "w4": "j2"}, bad)
    before = _state(sql, run_id)
    with pytest.raises(PublishRefusedError) as refused:
        store.publish(run_id, scenario_id)
    message = str(refused.value)
    assert "Link 'pair' keeps its workers at one site" in message
    assert "Link 'couple-7'" not in message  # replaced
    assert "Quota 'icu-cap' allows at most 1 worker" in message  # quotas: null keeps the run's
    assert _state(sql, run_id) == before


def test_a_line_without_a_site_is_a_site_of_its_own(store, sql):
    snap = small_snapshot(n_workers=2, n_lines=2, capacity=2)
    snap["eligibility"], snap["forbids"] = [], []
    snap["linked_workers"] = [{"id": "couple", "worker_ids": ["w1", "w2"]}]
    run_id = store.import_snapshot(snap, organisation_id=new_org_in_store(store))
    scenario_id = _save(store, run_id, snap, {"w1": "j1", "w2": "j2"})
    with pytest.raises(PublishRefusedError, match=r"'w1' at job line 'j1' \(a site of its own\)"):
        store.publish(run_id, scenario_id)
    store.publish(run_id, _save(store, run_id, snap, {"w1": "j1", "w2": "j1"}, name="together"))


# --------------------------------------------------------------------------- run changes


def test_withdrawing_a_linked_worker_removes_a_link_of_two_and_their_previous_place(store):
    snap = rules_snapshot()
    run_id = store.import_snapshot(snap, organisation_id=new_org_in_store(store))

    change = store.withdraw_worker(run_id, "w4", reason="Withdrew on Monday")

    loaded = store.load_run(run_id)  # the run stays valid
    assert [link.id for link in loaded.linked_workers] == ["trio"]
    assert [p.worker_id for p in loaded.previous_allocations] == ["w1"]
    assert change.details["link"] == {
        "id": "couple-7", "worker_ids": ["w3"], "removed": True,
        "message": "Link 'couple-7' is removed: w3 was its only other worker.",
    }
    assert change.details["previous_allocation"]["job_line_id"] == "j3"
    assert "is dropped" in change.details["previous_allocation"]["message"]


def test_withdrawing_one_of_three_linked_workers_keeps_the_link_of_two(store):
    run_id = store.import_snapshot(rules_snapshot(), organisation_id=new_org_in_store(store))

    change = store.withdraw_worker(run_id, "w6", reason="Deferred a year")

    loaded = store.load_run(run_id)
    assert [(link.id, link.worker_ids) for link in loaded.linked_workers] == [
        ("couple-7", ["w3", "w4"]), ("trio", ["w5", "w2"])]
    assert change.details["link"]["removed"] is False
    assert change.details["link"]["message"] == "Link 'trio' goes on without them ('w5', 'w2')."
    assert "previous_allocation" not in change.details


def test_a_late_worker_may_bring_a_priority(store, sql):
    from allocator.store import LateWorker

    run_id = store.import_snapshot(rules_snapshot(), organisation_id=new_org_in_store(store))
    change = store.add_worker(run_id, LateWorker("w9", "Late", (), (("j1", 1.0),), priority=2), reason="Late offer")
    assert change.details["priority"] == 2
    assert {w.id: w.priority for w in store.load_run(run_id).workers}["w9"] == 2
    with pytest.raises(psycopg.Error, match="priority must be a whole number of at least 1") as exc:
        sql.execute("select allocator_add_worker(%s, %s, 'x')", (run_id, Jsonb({"id": "w10", "priority": 0})))
    assert exc.value.sqlstate == "AL008"


def test_a_lines_site_can_be_set_changed_and_cleared(store):
    run_id = store.import_snapshot(rules_snapshot(), organisation_id=new_org_in_store(store))

    change = store.set_job_line(run_id, "j4", reason="Moved to Dubbo", site="Dubbo")
    assert (change.details["before"]["site"], change.details["after"]["site"]) == (None, "Dubbo")
    assert {j.id: j.site for j in store.load_run(run_id).job_lines}["j4"] == "Dubbo"

    change = store.set_job_line(run_id, "j4", reason="Back on its own", clear_site=True)
    assert change.details["after"] == {"max_n_workers": 3, "must_have_workers": False, "site": None}
    assert {j.id: j.site for j in store.load_run(run_id).job_lines}["j4"] is None


def test_a_site_change_that_would_break_the_run_is_refused(store, sql):
    snap = rules_snapshot()
    snap["pins"] = [{"worker_id": "w3", "job_line_id": "j1"}, {"worker_id": "w4", "job_line_id": "j2"}]
    snap["forbids"] = []
    run_id = store.import_snapshot(snap, organisation_id=new_org_in_store(store))
    version = store.inputs_version(run_id)

    with pytest.raises(InvalidSnapshotError, match="quota 'rural-min' counts site 'Dubbo'"):
        store.set_job_line(run_id, "j3", reason="x", site="Orange")
    with pytest.raises(InvalidSnapshotError, match=r"link 'couple-7' would have its pinned workers on different sites"):
        store.set_job_line(run_id, "j2", reason="x", site="Bathurst")
    with pytest.raises(InvalidSnapshotError, match="a site is a name of 1 to 500 characters"):
        store.set_job_line(run_id, "j2", reason="x", site=" Orange")
    assert store.inputs_version(run_id) == version  # nothing written
    assert store.run_changes(run_id) == []


# --------------------------------------------------------------------------- planners (RLS)

RULE_TABLES = [
    "allocator_py_run_links", "allocator_py_run_link_workers", "allocator_py_run_quotas",
    "allocator_py_run_quota_items", "allocator_py_run_previous_allocations",
]


def test_a_planner_reads_their_own_runs_rules_and_nothing_of_another_organisation(supabase_url):
    from tests.helpers.dbtools import acting_as, new_organisation, new_user

    with psycopg.connect(supabase_url, autocommit=True) as conn:
        ana, ben = new_user(conn, "ana@rules.example"), new_user(conn, "ben@rules.example")
        orgs = {"a": new_organisation(conn, "Rules A", ana), "b": new_organisation(conn, "Rules B", ben)}
        runs = {k: _sql_import(conn, rules_snapshot(), org) for k, org in orgs.items()}

    with acting_as(supabase_url, "authenticated", ana) as conn:
        (snap,) = conn.execute("select allocator_run_snapshot(%s)", (runs["a"],)).fetchone()
        assert RunSnapshot.parse(snap).canonical() == RunSnapshot.parse(rules_snapshot()).canonical() | {
            "run": RunSnapshot.parse(snap).canonical()["run"]}
        for table in RULE_TABLES:
            runs_seen = {r[0] for r in conn.execute(f"select distinct run_id from {table}").fetchall()}
            assert runs["b"] not in runs_seen and runs["a"] in runs_seen, table
            with pytest.raises(psycopg.Error) as exc:
                conn.execute(f"delete from {table}")
            assert exc.value.sqlstate == "42501", table  # planners write only through the functions
        with pytest.raises(psycopg.Error, match="not found"):
            conn.execute("select allocator_run_snapshot(%s)", (runs["b"],))

    with acting_as(supabase_url, "anon") as conn:
        for table in RULE_TABLES:
            with pytest.raises(psycopg.Error) as exc:
                conn.execute(f"select 1 from {table}")
            assert exc.value.sqlstate == "42501", table


def test_renaming_a_tag_only_a_quota_counts_moves_the_runs_inputs_version(store, sql):
    org = new_org_in_store(store)
    run_id = store.import_snapshot(rules_snapshot(), organisation_id=org)
    before = store.inputs_version(run_id)
    sql.execute("update qualification_tags set external_id = 'renamed' where organisation_id = %s "
                "and external_id = 'never-seen'", (org,))
    assert store.inputs_version(run_id) > before
    assert [q.qualification_id for q in store.load_run(run_id).quotas if q.id == "new-tag"] == ["renamed"]
