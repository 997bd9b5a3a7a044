"""The ``supabase`` store: a Supabase project over its REST API (supabase-py / PostgREST).

It acts with whatever token its client carries: the signed-in planner's (row-level
security decides what they see and may do) or a service key for a headless worker.

It stays thin on purpose. It reads the same views and SQL functions as the ``postgres``
store (``allocator_run_summaries``, ``allocator_load_run``,
``allocator_allocations_json``) and writes ONLY through the SQL functions of
``supabase/migrations`` via ``rpc``, so every write is one atomic call in the database.

Reads of whole tables are paginated: PostgREST answers at most ``max-rows`` (1,000 on
Supabase) rows per request, so a read asks for pages of :attr:`SupabaseStore.page_size`
rows in a stable order, the first with ``Prefer: count=exact``, until it has the total
(or, when the server gives no count, until a short page).

PostgREST errors carry the SQLSTATE as ``code``; they become the same
:class:`~allocator.store.base.StoreError` subclasses as the postgres store raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
from postgrest.exceptions import APIError

from allocator.snapshot import RunSnapshot
from allocator.store.base import (
    Allocation,
    ClaimedRun,
    DatabaseUnavailableError,
    LateWorker,
    PublicationEntry,
    PublishOutcome,
    RunChange,
    RunSummary,
    Scenario,
    ScenarioNotFoundError,
    StoreBase,
    StoreError,
    checked_uuid,
    error_from_sqlstate,
    late_worker_json,
    run_change_from_row,
    run_not_found,
)
from allocator.store.base import allocation_from_row as _allocation
from allocator.store.base import allocation_json as _allocation_json
from allocator.store.base import snapshot_json as _snapshot_dict

if TYPE_CHECKING:
    from allocator.config import AppConfig
    from supabase import Client

#: Rows per request; Supabase's default ``max-rows``.
PAGE_SIZE = 1000


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn PostgREST and network errors into StoreError subclasses."""
    try:
        yield
    except APIError as exc:
        message = (exc.message or "").strip() or f"The Supabase API refused the request ({exc.code})."
        raise error_from_sqlstate(exc.code, message, exc.hint) from exc
    except httpx.HTTPError as exc:
        raise DatabaseUnavailableError(f"Cannot reach the Supabase API: {exc}") from exc


class SupabaseStore(StoreBase):
    """A :class:`~allocator.store.base.RunStore` over a supabase-py client.

    Parameters
    ----------
    client
        A ``supabase.Client`` (``create_client(url, key)``), signed in as the planner when
        row-level security should apply.
    page_size
        Rows per read request.
    """

    def __init__(self, client: Client, *, page_size: int = PAGE_SIZE):
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.client = client
        self.page_size = page_size

    @classmethod
    def from_settings(cls, settings: AppConfig) -> SupabaseStore:
        """A store for ``SUPABASE_URL`` with ``SUPABASE_KEY``."""
        from supabase import create_client

        if not settings.supabase_url or settings.supabase_key is None:
            raise StoreError("Set SUPABASE_URL and SUPABASE_KEY to use a Supabase project.")
        with _translated():
            client = create_client(settings.supabase_url, settings.supabase_key.get_secret_value())
        return cls(client)

    def close(self) -> None:
        """Nothing to release: the client's HTTP session belongs to its creator."""

    def ping(self) -> None:
        """Raise StoreError if the API cannot be reached or refuses the caller."""
        with _translated():
            self.client.table("allocator_run_summaries").select("id").limit(1).execute()

    # -- plumbing -----------------------------------------------------------------------
    def _rpc(self, fn: str, params: Mapping[str, Any]) -> Any:
        with _translated():
            return self.client.rpc(fn, dict(params)).execute().data

    def _select_all(
        self,
        table: str,
        *,
        order: Sequence[tuple[str, bool]],
        filters: Callable[[Any], Any] = lambda q: q,
        columns: str = "*",
    ) -> list[dict[str, Any]]:
        """Every row of ``table`` that ``filters`` keeps, page by page in ``order``.

        ``order`` must end in a unique column, so pages neither overlap nor skip rows.
        """
        rows: list[dict[str, Any]] = []
        total: int | None = None
        while True:
            start = len(rows)
            q = self.client.table(table).select(columns, count="exact" if start == 0 else None)
            q = filters(q)
            for column, desc in order:
                q = q.order(column, desc=desc)
            with _translated():
                resp = q.range(start, start + self.page_size - 1).execute()
            page = list(resp.data or [])
            if start == 0:
                total = resp.count
            rows.extend(page)
            if not page:
                break
            if total is not None:
                if len(rows) >= total:
                    break
            elif len(page) < self.page_size:
                break
        return rows

    def _select_one(self, table: str, column: str, value: str, columns: str = "*") -> dict[str, Any] | None:
        with _translated():
            resp = self.client.table(table).select(columns).eq(column, value).limit(1).execute()
        return resp.data[0] if resp.data else None

    def _require_run(self, run_id: str) -> str:
        rid = _uuid(run_id)
        if self._select_one("allocator_py_runs", "id", rid, columns="id") is None:
            raise run_not_found(run_id)
        return rid

    # -- runs ---------------------------------------------------------------------------
    def list_runs(self) -> list[RunSummary]:
        rows = self._select_all("allocator_run_list", order=[("created_at", True), ("id", False)])
        return [
            RunSummary(
                id=str(r["id"]),
                name=r.get("name") or "",
                status=r["status"],
                n_workers=int(r["n_workers"]),
                n_job_lines=int(r["n_job_lines"]),
                last_solved_at=_ts(r.get("last_solved_at")),
                published=bool(r["published"]),
                created_at=_ts(r["created_at"]),  # type: ignore[arg-type]
                allocation_run_id=_str(r.get("allocation_run_id")),
                organisation_id=_str(r.get("organisation_id")),
                is_exclusive=bool(r.get("is_exclusive", False)),
                attempts=int(r.get("attempts") or 0),
                error=r.get("error"),
                completed_at=_ts(r.get("completed_at")),
                source_file=r.get("source_file"),
                last_scenario_saved_at=_ts(r.get("last_scenario_saved_at")),
                n_changes=int(r.get("n_changes") or 0),
            )
            for r in rows
        ]

    def _load(self, run_id: str) -> tuple[dict[str, Any], int | None]:
        """The run's snapshot data and inputs_version, read in one call."""
        data = self._rpc("allocator_load_run", {"p_run_id": _uuid(run_id)})
        row = data[0] if isinstance(data, list) and data else data
        if not isinstance(row, Mapping) or row.get("snapshot") is None:
            raise run_not_found(run_id)
        return row["snapshot"], row.get("inputs_version")

    def import_snapshot(
        self,
        snapshot: RunSnapshot | Mapping[str, Any],
        *,
        organisation_id: str | None = None,
        name: str | None = None,
        source_file: str | None = None,
    ) -> str:
        data = _snapshot_dict(snapshot)
        params: dict[str, Any] = {"p_snapshot": data, "p_organisation_id": organisation_id, "p_name": name}
        if source_file is not None:
            params["p_source_file"] = source_file
        run_id = self._rpc("allocator_import_run", params)
        return str(run_id)

    # -- changes to a run's data (each one rpc: atomic and logged in the database) ---------
    def _change(self, fn: str, params: Mapping[str, Any]) -> RunChange:
        data = self._rpc(fn, params)
        row = data[0] if isinstance(data, list) and data else data
        if not isinstance(row, Mapping):
            raise StoreError(f"The Supabase API gave no answer to {fn}; check the run's change log.")
        return run_change_from_row(row, _ts)

    def withdraw_worker(
        self, run_id: str, worker_id: str, *, reason: str, changed_by: str | None = None
    ) -> RunChange:
        return self._change(
            "allocator_withdraw_worker",
            {"p_run_id": _uuid(run_id), "p_worker_id": worker_id, "p_reason": reason,
             "p_changed_by": changed_by},
        )

    def add_worker(
        self,
        run_id: str,
        worker: LateWorker | Mapping[str, Any],
        *,
        reason: str,
        changed_by: str | None = None,
    ) -> RunChange:
        return self._change(
            "allocator_add_worker",
            {"p_run_id": _uuid(run_id), "p_worker": late_worker_json(worker), "p_reason": reason,
             "p_changed_by": changed_by},
        )

    def set_job_line(
        self,
        run_id: str,
        job_line_id: str,
        *,
        reason: str,
        max_n_workers: int | None = None,
        must_have_workers: bool | None = None,
        changed_by: str | None = None,
        site: str | None = None,
        clear_site: bool = False,
    ) -> RunChange:
        body: dict[str, Any] = {
            "p_run_id": _uuid(run_id), "p_job_line_id": job_line_id, "p_reason": reason,
            "p_max_n_workers": max_n_workers, "p_must_have_workers": must_have_workers,
            "p_changed_by": changed_by,
        }
        # Sent only when used: the function's defaults say "leave the site as it is".
        if site is not None:
            body["p_site"] = site
        if clear_site:
            body["p_clear_site"] = True
        return self._change("allocator_set_job_line", body)

    def run_changes(self, run_id: str) -> list[RunChange]:
        rid = self._require_run(run_id)
        rows = self._select_all(
            "allocator_run_changes", order=[("id", False)], filters=lambda q: q.eq("run_id", rid)
        )
        return [run_change_from_row(r, _ts) for r in rows]

    # -- scenarios ----------------------------------------------------------------------
    def save_scenario(
        self,
        run_id: str,
        name: str,
        settings: Mapping[str, Any],
        overrides: Mapping[str, Any] | None,
        result: Mapping[str, Any] | None,
        fingerprint: str,
        created_by: str | None = None,
    ) -> str:
        scenario_id = self._rpc(
            "allocator_save_scenario",
            {
                "p_run_id": _uuid(run_id),
                "p_name": name,
                "p_settings": dict(settings or {}),
                "p_overrides": dict(overrides or {}),
                "p_result": dict(result) if result is not None else None,
                "p_input_fingerprint": fingerprint,
                "p_created_by": created_by,
            },
        )
        return str(scenario_id)

    def list_scenarios(self, run_id: str) -> list[Scenario]:
        rid = self._require_run(run_id)
        rows = self._select_all(
            "allocator_latest_scenarios",
            order=[("created_at", True), ("id", False)],
            filters=lambda q: q.eq("run_id", rid),
        )
        return [_scenario(r) for r in rows]

    def get_scenario(self, scenario_id: str) -> Scenario:
        sid = checked_uuid(scenario_id, "scenario")
        row = self._select_one("allocator_scenarios", "id", sid)
        if row is None:
            raise ScenarioNotFoundError(f"Scenario {scenario_id} was not found.")
        return _scenario(row)

    # -- scenario versions and the inputs version ---------------------------------------
    def scenario_versions(self, run_id: str, name: str) -> list[Scenario]:
        rid = _uuid(run_id)
        rows = self._select_all(
            "allocator_scenarios",
            order=[("version", True), ("id", False)],
            filters=lambda q: q.eq("run_id", rid).eq("name", name),
        )
        return [_scenario(r) for r in rows]

    def inputs_version(self, run_id: str) -> int:
        value = self._rpc("allocator_run_inputs_version", {"p_run_id": _uuid(run_id)})
        if value is None or value == []:  # null: no such run (the client hands null over as [])
            raise run_not_found(run_id)
        return int(value)

    def load_run_versioned(self, run_id: str) -> tuple[RunSnapshot, int]:
        data, version = self._load(run_id)
        if version is None:
            raise run_not_found(run_id)
        return RunSnapshot.parse(data), int(version)

    def publish_new_version(
        self,
        run_id: str,
        scenario_id: str,
        result: Mapping[str, Any],
        fingerprint: str,
        inputs_version: int,
        *,
        reason: str | None = None,
        supersede: bool = False,
        published_by: str | None = None,
    ) -> PublishOutcome:
        rows = self._rpc(
            "allocator_publish_new_version",
            {
                "p_run_id": _uuid(run_id),
                "p_scenario_id": _uuid(scenario_id),
                "p_result": dict(result),
                "p_input_fingerprint": fingerprint,
                "p_expected_inputs_version": inputs_version,
                "p_reason": reason,
                "p_supersede": supersede,
                "p_published_by": published_by,
            },
        )
        row = rows[0] if isinstance(rows, list) and rows else rows
        if not isinstance(row, Mapping):
            raise StoreError("The Supabase API gave no answer to the publish; check the run's log.")
        return PublishOutcome(
            run_id=run_id,
            scenario_id=str(row["scenario_id"]),
            publication_id=int(row["publication_id"]),
            n_allocations=int(row["n_allocations"]),
            superseded=bool(row["superseded"]),
            published_at=_ts(row["published_at"]),  # type: ignore[arg-type]
            version=int(row["version"]),
        )

    # -- publishing ---------------------------------------------------------------------
    def publish(
        self,
        run_id: str,
        scenario_id: str,
        *,
        reason: str | None = None,
        supersede: bool = False,
        published_by: str | None = None,
    ) -> PublishOutcome:
        fingerprint, version = self._publish_inputs(run_id)
        rows = self._rpc(
            "allocator_publish",
            {
                "p_run_id": _uuid(run_id),
                "p_scenario_id": _uuid(scenario_id),
                "p_expected_fingerprint": fingerprint,
                "p_reason": reason,
                "p_supersede": supersede,
                "p_published_by": published_by,
                "p_expected_inputs_version": version,
            },
        )
        row = rows[0] if isinstance(rows, list) and rows else rows
        if not isinstance(row, Mapping):
            raise StoreError("The Supabase API gave no answer to the publish; check the run's log.")
        return PublishOutcome(
            run_id=run_id,
            scenario_id=scenario_id,
            publication_id=int(row["publication_id"]),
            n_allocations=int(row["n_allocations"]),
            superseded=bool(row["superseded"]),
            published_at=_ts(row["published_at"]),  # type: ignore[arg-type]
        )

    def publication_log(self, run_id: str) -> list[PublicationEntry]:
        rid = _uuid(run_id)
        rows = self._select_all(
            "allocator_publication_log", order=[("id", False)], filters=lambda q: q.eq("run_id", rid)
        )
        return [
            PublicationEntry(
                id=int(r["id"]),
                run_id=str(r["run_id"]),
                scenario_id=_str(r.get("scenario_id")),
                action=r["action"],
                reason=r.get("reason"),
                input_fingerprint=r.get("input_fingerprint"),
                allocations=[_allocation(a) for a in r.get("allocations") or []],
                previous_allocations=[_allocation(a) for a in r.get("previous_allocations") or []],
                published_by=r.get("published_by"),
                published_at=_ts(r["published_at"]),  # type: ignore[arg-type]
            )
            for r in rows
        ]

    def allocations(self, run_id: str) -> list[Allocation]:
        rid = self._require_run(run_id)
        data = self._rpc("allocator_allocations_json", {"p_run_id": rid})
        return [_allocation(a) for a in data or []]

    # -- headless queue -----------------------------------------------------------------
    def claim_next(
        self, worker: str, lease_seconds: float = 300.0, *, run_id: str | None = None
    ) -> ClaimedRun | None:
        rows = self._rpc(
            "allocator_claim",
            {
                "p_worker": worker,
                "p_lease_seconds": float(lease_seconds),
                "p_run_id": _uuid(run_id) if run_id else None,
            },
        )
        if not rows:
            return None
        row = rows[0] if isinstance(rows, list) else rows
        return ClaimedRun(
            run_id=str(row["run_id"]),
            worker=row["worker"],
            attempts=int(row["attempts"]),
            lease_expires_at=_ts(row["lease_expires_at"]),  # type: ignore[arg-type]
            settings=row.get("settings") or {},
        )

    def complete_run(
        self,
        run_id: str,
        worker: str,
        allocations: Sequence[Allocation | Mapping[str, Any]],
        result: Mapping[str, Any] | None = None,
    ) -> None:
        self._rpc(
            "allocator_complete_run",
            {
                "p_run_id": _uuid(run_id),
                "p_worker": worker,
                "p_allocations": [_allocation_json(a) for a in allocations],
                "p_result": dict(result) if result is not None else None,
            },
        )

    def renew_lease(self, run_id: str, worker: str, lease_seconds: float = 300.0) -> datetime:
        expires = self._rpc(
            "allocator_renew_lease",
            {"p_run_id": _uuid(run_id), "p_worker": worker, "p_lease_seconds": float(lease_seconds)},
        )
        return _ts(expires)  # type: ignore[return-value]

    def fail_run(self, run_id: str, worker: str, error: str) -> None:
        self._rpc("allocator_fail_run", {"p_run_id": _uuid(run_id), "p_worker": worker, "p_error": error})

    def requeue_run(self, run_id: str) -> None:
        self._rpc("allocator_requeue_run", {"p_run_id": _uuid(run_id)})


# --------------------------------------------------------------------------- helpers


def _uuid(value: str) -> str:
    # The REST API cannot tell a run's id from a scenario's: the message names both.
    return checked_uuid(value, "run or scenario")


def _ts(value: Any) -> datetime | None:
    """PostgREST sends timestamps as ISO 8601 text."""
    if value is None or isinstance(value, datetime):
        return value
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)




def _scenario(r: Mapping[str, Any]) -> Scenario:
    return Scenario(
        id=str(r["id"]),
        run_id=str(r["run_id"]),
        name=r["name"],
        settings=r.get("settings") or {},
        overrides=r.get("overrides") or {},
        result=r.get("result"),
        input_fingerprint=r["input_fingerprint"],
        created_by=r.get("created_by"),
        created_at=_ts(r["created_at"]),  # type: ignore[arg-type]
        version=int(r.get("version") or 1),
        previous_id=_str(r.get("previous_id")),
    )


__all__ = ["PAGE_SIZE", "SupabaseStore"]
