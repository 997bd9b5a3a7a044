"""The SQL import of the business rules refuses what the snapshot check refuses, in words,
also for numbers the check calls not whole (2.0): the cast to integer never raises."""

from __future__ import annotations

import psycopg
import pytest

from tests.db.test_business_rules_sql import _sql_import, rules_snapshot
from tests.helpers.dbtools import new_org_in_store

pytestmark = pytest.mark.db


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda s: s["quotas"][1].update(min_workers=1.0),
         r"quotas\[1\] \(id 'icu-ready'\): its minimum and maximum are whole numbers of workers, 0 or more"),
        (lambda s: s["quotas"][1].update(max_workers=2.0),
         r"quotas\[1\] \(id 'icu-ready'\): its minimum and maximum are whole numbers of workers, 0 or more"),
        (lambda s: s["workers"][2].update(priority=1.0),
         r"workers\[2\] \(id 'w3'\): the priority must be a whole number of at least 1"),
    ],
    ids=["quota-min-1.0", "quota-max-2.0", "priority-1.0"],
)
def test_sql_import_refuses_a_number_written_with_a_decimal_point_in_words(store, sql, change, expected):
    snap = rules_snapshot()
    change(snap)
    org = new_org_in_store(store)
    before = sql.execute("select count(*) from allocation_runs").fetchone()
    with pytest.raises(psycopg.Error, match=expected) as exc:
        _sql_import(sql, snap, org)
    assert exc.value.sqlstate == "AL008"
    assert sql.execute("select count(*) from allocation_runs").fetchone() == before


def test_a_late_workers_priority_written_1_0_is_refused_in_words(store, sql):
    run_id = store.import_snapshot(rules_snapshot(), organisation_id=new_org_in_store(store))
    with pytest.raises(psycopg.Error, match=r"Worker 'late': the priority must be a whole number of at least 1") as exc:
        sql.execute("select allocator_add_worker(%s, %s, %s)",
                    (run_id, psycopg.types.json.Jsonb({"id": "late", "priority": 1.0}), "arrived"))
    assert exc.value.sqlstate == "AL008"
