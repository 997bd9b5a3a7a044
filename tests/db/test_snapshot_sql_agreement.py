"""The snapshot check (Python) and allocator_import_run (SQL) accept and refuse the same values.

The command line, the dashboard and the API check a snapshot in Python before the store
calls ``allocator_import_run``; a Supabase client calls the SQL function on its own. Where the
two disagree, a snapshot that ``allocator solve`` accepts is refused at import, or (worse) the
database stores a run that can then not be loaded, solved or exported. Each case below puts
one boundary value (run-snapshot.md "Limits", business-rules.md) into an otherwise valid
snapshot and asks both; a refusal by the database must be its own words (AL008), never
PostgreSQL's ("invalid input syntax", a constraint's name).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from allocator.snapshot import RunSnapshot, SnapshotError
from tests.helpers.dbtools import new_org_in_store, small_snapshot

pytestmark = pytest.mark.db

Change = Callable[[dict[str, Any]], None]


def _base() -> dict[str, Any]:
    snap = small_snapshot(n_workers=4, n_lines=3, capacity=4)
    snap["job_lines"][0]["site"] = "Orange"
    snap["quotas"] = [{"id": "q", "job_line_ids": ["j1"], "min_workers": 0, "max_workers": None}]
    return snap


def _extra_worker(value: Any) -> Change:  # a worker nobody names: only its id is in question
    return lambda s: s["workers"].append({"id": value, "name": "Late"})


def _set(section: str, index: int | None, field: str, value: Any) -> Change:
    def change(s: dict[str, Any]) -> None:
        (s[section] if index is None else s[section][index])[field] = value

    return change


def _site(value: Any) -> Change:
    def change(s: dict[str, Any]) -> None:
        s["job_lines"][1]["site"] = value
        s["quotas"].append({"id": "by-site", "sites": [value], "min_workers": 0})

    return change


IDS = {
    "200-chars": "i" * 200, "201-chars": "i" * 201, "empty": "", "inner-space": "a b", "dots": "dr.a.nguyen",
    "accents": "zoë-éàü", "cjk": "山田太郎", "emoji-200": "🙂" * 200, "emoji-201": "🙂" * 201,
    "lead-space": " a", "trail-space": "a ", "trail-tab": "a\t", "trail-nbsp": "a\u00a0", "lead-ideographic": "\u3000a",
    "trail-figure-space": "a\u2007", "trail-line-separator": "a\u2028", "inner-line-separator": "a\u2028b",
    "zero-width-space": "a\u200b", "mongolian-vowel-separator": "a\u180e", "bom": "a\ufeff",
    "nel": "a\u0085", "unit-separator": "a\x1f", "delete": "a\x7f", "number": 7,
}
NAMES = {
    "500-chars": "N" * 500, "501-chars": "N" * 501, "emoji-500": "👩" * 500, "tab": "A\tB", "line-break": "A\nB",
    "carriage-return": "A\r\nB", "vertical-tab": "A\x0bB", "escape": "A\x1bB", "c1-control": "A\x9aB",
    "empty": "", "spaces": "   ", "accents": "Zoë Ångström", "cjk": "山田 太郎", "zwj-emoji": "👩‍⚕️ Dr Lee",
    "number": 5,
}
SITES = {
    "plain": "Dubbo", "500-chars": "S" * 500, "501-chars": "S" * 501, "inner-spaces": "Dubbo  Base",
    "lead-trail-spaces": " Dubbo ", "empty": "", "space": " ", "tab": "\t", "line-break": "\n",
    "nbsp": "\u00a0", "ideographic-space": "\u3000", "nbsp-around": "\u00a0Dubbo\u00a0", "escape": "Du\x1bbbo",
}
NUMBERS: dict[str, tuple[str, int | None, str, list[Any]]] = {
    "places": ("job_lines", 1, "max_n_workers", [0, 1_000_000, 1_000_001, -1, 2.0, 1.5, "3", True, None]),
    "rank": ("worker_preferences", 0, "rank", [1, 1.5, 1e9, 1_000_000_001, 0.999, 0, -1, "2", True]),
    "supervisor-rank": ("preferencer_preferences", 0, "rank", [1, 1e9, 1e9 + 1, 0.5]),
    "weighting": ("weightings", 0, "value", [0, 0.5, 1e9, -1e9, 1e9 + 1, -1e9 - 1, "1", False]),
    "priority": ("workers", 0, "priority", [1, 1_000_000, 1_000_001, 0, -1, 1.5, 2.0, "1", True, None]),
    "quota-min": ("quotas", 0, "min_workers", [0, 1_000_000_000, 1_000_000_001, 2_147_483_647, -1, 2.0, "1"]),
    "quota-max": ("quotas", 0, "max_workers", [0, 1_000_000_000, 1_000_000_001, 2_147_483_647, -1, 1.5, None]),
    "preferencer_weight": ("settings", None, "preferencer_weight", [0, 1, 0.5, 1.000001, -0.1, "0.3", True]),
    "preference_power": ("settings", None, "preference_power", [8, 1e-9, 8.000001, 0, -1]),
    "max_seconds": ("settings", None, "max_seconds", [1e-9, 86400, 1e12, 1e300, 1e301, 1.7e308, 0, -1, "60"]),
    "rng_seed": ("settings", None, "rng_seed", [0, 2**63 - 1, 2**63, -1, 1.5, "7"]),
    "stability": ("settings", None, "stability", [True, False, 0, "false"]),
}

CASES: list[Any] = (
    [pytest.param(_extra_worker(v), id=f"worker-id-{k}") for k, v in IDS.items()]
    + [pytest.param(_set("run", None, "id", v), id=f"run-id-{k}") for k, v in IDS.items()]
    + [pytest.param(lambda s, v=v: s["workers"][1]["qualification_ids"].append(v), id=f"tag-{k}") for k, v in IDS.items()]
    + [pytest.param(_set("quotas", 0, "id", v), id=f"quota-id-{k}") for k, v in IDS.items()]
    # A supervisor no job line names may rank workers (run-snapshot.md): only the id is checked.
    + [pytest.param(_set("preferencer_preferences", 0, "preferencer_id", v), id=f"supervisor-id-{k}") for k, v in IDS.items()]
    + [pytest.param(_set("workers", 0, "name", v), id=f"worker-name-{k}") for k, v in NAMES.items()]
    + [pytest.param(_set("job_lines", 2, "name", v), id=f"line-name-{k}") for k, v in NAMES.items()]
    + [pytest.param(_set("run", None, "name", v), id=f"run-name-{k}") for k, v in NAMES.items()]
    + [pytest.param(_site(v), id=f"site-{k}") for k, v in SITES.items()]
    + [
        pytest.param(_set(section, index, field, v), id=f"{name}-{v!r}")
        for name, (section, index, field, values) in NUMBERS.items()
        for v in values
    ]
    + [
        pytest.param(lambda s: None, id="as-is"),
        pytest.param(lambda s: [s.pop(k) for k in ("quotas", "eligibility", "weightings", "forbids")], id="no-rules-or-lists"),
        pytest.param(_set("job_lines", 2, "max_n_workers", 0), id="a-line-of-no-places"),
    ]
)


def _python_accepts(snap: dict[str, Any]) -> tuple[bool, str]:
    try:
        RunSnapshot.parse(copy.deepcopy(snap))
    except SnapshotError as exc:
        return False, "; ".join(exc.messages)
    return True, ""


def _sql_accepts(conn: psycopg.Connection, snap: dict[str, Any], org: str) -> tuple[bool, str]:
    """Import in a transaction that is rolled back either way (nothing is left behind)."""
    try:
        with conn.transaction():
            conn.execute("select allocator_import_run(%s, %s)", (Jsonb(snap), org))
            raise psycopg.Rollback()
    except psycopg.Error as exc:
        # Only the function's own refusal counts as "refused in the planner's words".
        assert exc.sqlstate == "AL008", f"refused in PostgreSQL's words ({exc.sqlstate}): {exc}"
        return False, str(exc).splitlines()[0]
    return True, ""


@pytest.fixture(scope="module")
def org(store) -> str:
    return new_org_in_store(store)


@pytest.mark.parametrize("change", CASES)
def test_snapshot_check_and_sql_import_agree(sql, org, change):
    snap = _base()
    change(snap)
    in_python, why_python = _python_accepts(snap)
    in_sql, why_sql = _sql_accepts(sql, snap, org)
    assert in_python == in_sql, (
        f"the snapshot check {'accepts' if in_python else 'refuses (' + why_python + ')'}, "
        f"the database {'accepts' if in_sql else 'refuses (' + why_sql + ')'}"
    )
