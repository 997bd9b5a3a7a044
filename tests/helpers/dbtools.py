"""Helpers for the database tests: small snapshots, results, users, organisations.

Imported by the tests as ``tests.helpers.dbtools``.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.sql

from allocator.store.postgres import PostgresStore

_names = itertools.count(1)




def small_snapshot(
    n_workers: int = 4,
    n_lines: int = 3,
    *,
    capacity: int = 2,
    run_id: str | None = None,
    tag: str = "icu",
) -> dict[str, Any]:
    """A valid snapshot using every list of the format, ids unique to this call.

    Workers ``w1..wn`` rank every line in a rotating order; line ``j1`` needs a worker and
    has a supervisor ``p1`` who ranks every worker; odd workers carry ``tag``, which line
    ``j2`` excludes (but ``w1`` is named as included); ``w2`` gets a global weighting; ``w1``
    is forbidden on the last line.
    """
    n = next(_names)
    workers = [
        {"id": f"w{i}", "name": f"Worker {i}", "qualification_ids": [tag] if i % 2 else []}
        for i in range(1, n_workers + 1)
    ]
    lines = [
        {
            "id": f"j{k}",
            "name": f"Line {k}",
            "max_n_workers": capacity,
            "must_have_workers": k == 1,
            "preferencer_ids": ["p1"] if k == 1 else [],
        }
        for k in range(1, n_lines + 1)
    ]
    prefs = [
        {"worker_id": f"w{i}", "job_line_id": f"j{k}", "rank": float((k + i) % n_lines + 1)}
        for i in range(1, n_workers + 1)
        for k in range(1, n_lines + 1)
    ]
    snap: dict[str, Any] = {
        "format": "allocator-run/1",
        "run": {"id": run_id or f"run-{n}", "name": f"Test run {n}"},
        "settings": {
            "preferencer_weight": 0.25,
            "preference_power": 1.5,
            "max_seconds": 5,
            "rng_seed": 7,
            "allow_worker_preference_ties": True,
            "stability": False,
        },
        "workers": workers,
        "job_lines": lines,
        "worker_preferences": prefs,
        "preferencer_preferences": [
            {"preferencer_id": "p1", "worker_id": f"w{i}", "rank": float(i)}
            for i in range(1, n_workers + 1)
        ],
        "eligibility": [],
        "weightings": [],
        "pins": [],
        "forbids": [],
    }
    if n_lines >= 2:
        snap["eligibility"].append(
            {
                "job_line_id": "j2",
                "included_worker_ids": ["w1"],
                "excluded_worker_ids": [],
                "included_qualification_ids": [],
                "excluded_qualification_ids": [tag],
            }
        )
    if n_workers >= 2:
        snap["weightings"].append({"worker_id": "w2", "job_line_id": None, "value": -1.5})
    if n_lines >= 3:
        snap["forbids"].append({"worker_id": "w1", "job_line_id": f"j{n_lines}"})
    return snap


def allocation_result(
    snapshot: dict[str, Any], *, shift: int = 0, status: str = "optimal"
) -> dict[str, Any]:
    """A result JSON placing workers round-robin over lines (capacity, eligibility, forbids
    and pins respected, as the database checks them on publish).

    ``shift`` rotates the assignment, so two results for one run can differ.
    """
    from allocator.eligibility import RuleSet
    from allocator.snapshot import RunSnapshot

    rules = RuleSet.from_snapshot(RunSnapshot.parse(snapshot))
    tags = {w["id"]: set(w.get("qualification_ids") or []) for w in snapshot["workers"]}
    forbidden = {(f["worker_id"], f["job_line_id"]) for f in snapshot.get("forbids") or []}
    pinned = {p["worker_id"]: p["job_line_id"] for p in snapshot.get("pins") or []}
    lines = snapshot["job_lines"]
    load = {j["id"]: 0 for j in lines}
    allocations = []
    for i, w in enumerate(snapshot["workers"]):
        for step in range(len(lines)):
            line = lines[(i + shift + step) % len(lines)]
            if w["id"] in pinned and pinned[w["id"]] != line["id"]:
                continue
            if (w["id"], line["id"]) in forbidden:
                continue
            if not rules.verdict(w["id"], tags[w["id"]], line["id"]).eligible:
                continue
            if load[line["id"]] < line["max_n_workers"]:
                load[line["id"]] += 1
                allocations.append(
                    {"worker_id": w["id"], "job_line_id": line["id"], "worker_rank": 1.0, "cost": 1.0}
                )
                break
        else:
            raise ValueError("not enough places for a round-robin allocation")
    return {
        "format": "allocator-result/1",
        "run_id": snapshot["run"]["id"],
        "status": status,
        "objective": float(len(allocations)),
        "allocations": sorted(allocations, key=lambda a: a["worker_id"]),
    }


@contextmanager
def acting_as(url: str, role: str, user_id: str | None = None) -> Iterator[psycopg.Connection]:
    """A connection that acts as PostgREST does for a request: JWT claims, then SET ROLE."""
    with psycopg.connect(url, autocommit=True) as conn:
        claims: dict[str, str] = {"role": role}
        if user_id:
            claims["sub"] = user_id
        conn.execute("select set_config('request.jwt.claims', %s, false)", (json.dumps(claims),))
        conn.execute(psycopg.sql.SQL("set role {}").format(psycopg.sql.Identifier(role)))
        yield conn


def new_user(conn: psycopg.Connection, email: str) -> str:
    uid = str(uuid.uuid4())
    conn.execute("insert into auth.users (id, email) values (%s, %s)", (uid, email))
    return uid


def new_organisation(conn: psycopg.Connection, name: str, *members: str) -> str:
    (org,) = conn.execute(
        "insert into public.organisations (name) values (%s) returning id::text", (name,)
    ).fetchone()
    for uid in members:
        conn.execute(
            "insert into public.organisation_members (organisation_id, user_id) values (%s, %s)",
            (org, uid),
        )
    return org


def new_org_in_store(store: PostgresStore) -> str:
    """An organisation of its own (the shared database has several: imports must name one)."""
    with psycopg.connect(store.url, autocommit=True) as conn:
        return new_organisation(conn, f"Org {next(_names)}")


def import_small(store: PostgresStore, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """Import a small snapshot into a fresh organisation; return (run id, snapshot)."""
    snap = small_snapshot(**kwargs)
    return store.import_snapshot(snap, organisation_id=new_org_in_store(store)), snap
