"""The RunStore interface: what every store adapter offers to the service layer.

A store turns rows into run snapshots (``allocator-run/1``) and writes results back. Every
multi-row write is one SQL function in ``supabase/migrations`` (``allocator_import_run``,
``allocator_save_scenario``, ``allocator_publish``, ``allocator_claim``,
``allocator_complete_run``, ``allocator_fail_run``, and the changes to a run's data
``allocator_withdraw_worker``, ``allocator_add_worker``, ``allocator_set_job_line``, each
logged in ``allocator_run_changes``), so each adapter gets the same atomic behaviour.

Ids
---
Run ids and scenario ids are the database's uuids, as strings. Worker, job line,
preferencer and qualification ids inside a snapshot are the snapshot's own string ids
(each row keeps its external id), so ``load_run(import_snapshot(s))`` gives ``s`` back.
The snapshot's ``run.id`` is the imported snapshot's own ``run.id`` as well, which is not
the database run id: always address runs by :attr:`RunSummary.id`.

Errors
------
Errors a planner can act on are :class:`StoreError` subclasses with a message that says
what happened and what to do. The SQL functions raise them with the SQLSTATEs of
:data:`SQLSTATE_ERRORS`; :func:`error_from_sqlstate` turns a code and message back into
the right exception, for any adapter.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from allocator.result import Allocation
from allocator.snapshot import RunSnapshot, SnapshotError

RunStatus = Literal["pending", "running", "complete", "failed"]
PublicationAction = Literal["publish", "supersede", "complete"]


# --------------------------------------------------------------------------- errors


class StoreError(Exception):
    """A store operation was refused or failed; the message is meant for a planner.

    Attributes
    ----------
    sqlstate
        The SQLSTATE the database raised, when the error came from the database.
    hint
        What the planner can do about it, when the database said so.
    """

    def __init__(self, message: str, *, sqlstate: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class RunNotFoundError(StoreError):
    """No run with this id, or the signed-in planner may not see it."""


class ScenarioNotFoundError(StoreError):
    """No saved scenario with this id for this run, or the planner may not see it."""


class StaleScenarioError(StoreError):
    """The run's inputs changed since the scenario was solved: solve it again."""


class AlreadyPublishedError(StoreError):
    """The run already has published allocations: supersede them with a reason."""


class PublishRefusedError(StoreError):
    """Publishing was refused for another reason (no allocations, missing reason, ...)."""


class ClaimLostError(StoreError):
    """The worker no longer holds the run's claim (its lease expired and another took it)."""


class AccessDeniedError(StoreError):
    """The caller may not do this (another organisation's run, or a spoofed owner)."""


class InvalidSnapshotError(StoreError):
    """The snapshot given to import is malformed (the message names the entry)."""


class DatabaseUnavailableError(StoreError):
    """The database cannot be reached now (refused, lost, or it did not answer in time).

    The only error worth retrying: the same call may succeed once the database is back.
    """


class ConfigurationError(StoreError):
    """The configuration names a store that cannot be used as it is (e.g. an
    ``ALLOCATOR_DATA_DIR`` that cannot be created); ``setting`` is the setting to change."""

    def __init__(self, setting: str, message: str):
        self.setting = setting
        super().__init__(message)


class RunBusyError(StoreError):
    """The run's state does not allow this now: a worker holds it, or it is already waiting."""


#: SQLSTATEs raised by the SQL functions in supabase/migrations, and their exceptions.
SQLSTATE_ERRORS: dict[str, type[StoreError]] = {
    "AL001": StaleScenarioError,
    "AL002": AlreadyPublishedError,
    "AL003": RunNotFoundError,
    "AL004": ClaimLostError,
    "AL005": AccessDeniedError,
    "AL006": ScenarioNotFoundError,
    "AL007": PublishRefusedError,
    "AL008": InvalidSnapshotError,
    "AL009": RunBusyError,
    "42501": AccessDeniedError,  # insufficient_privilege, incl. row-level security refusals
}


def error_from_sqlstate(sqlstate: str | None, message: str, hint: str | None = None) -> StoreError:
    """Return the :class:`StoreError` subclass for a database error code."""
    cls = SQLSTATE_ERRORS.get(sqlstate or "", StoreError)
    return cls(message, sqlstate=sqlstate, hint=hint)


# --------------------------------------------------------------------------- staleness


def input_fingerprint(snapshot: RunSnapshot) -> str:
    """The fingerprint a scenario is saved with and publishing checks: the run's data.

    It is ``snapshot.data_fingerprint()``: the canonical snapshot without settings, pins
    and forbids, so it changes exactly when the run's inputs change (a worker, a line, a
    preference, a rule), not when a planner tries other settings or overrides. Compute it on
    the snapshot the scenario was solved on (applying a scenario's settings or overrides
    does not change it) and pass it to :meth:`RunStore.save_scenario`; :meth:`RunStore.publish`
    recomputes it from a fresh load and refuses the scenario when the two differ.
    """
    return snapshot.data_fingerprint()


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RunSummary:
    """One run as the run list shows it."""

    id: str
    name: str
    status: RunStatus
    n_workers: int
    n_job_lines: int
    last_solved_at: datetime | None
    published: bool
    created_at: datetime
    allocation_run_id: str | None = None
    organisation_id: str | None = None
    is_exclusive: bool = False
    attempts: int = 0
    error: str | None = None
    completed_at: datetime | None = None
    #: The file the run was imported from (as the command line or the upload named it).
    source_file: str | None = None
    #: When a scenario of this run was last saved (a dashboard solve not saved is not counted).
    last_scenario_saved_at: datetime | None = None
    #: How many changes were made to the run's data after import (its change log).
    n_changes: int = 0

    @property
    def imported_at(self) -> datetime:
        """When the run was imported (it was created by its import)."""
        return self.created_at


RunChangeAction = Literal["withdraw_worker", "add_worker", "set_job_line"]


@dataclass(frozen=True)
class RunChange:
    """One entry of a run's change log: a change to its data after import, with who and why.

    ``details`` holds what changed: the worker's ``name`` (withdraw, add), the late worker's
    ``qualification_ids`` and ``preferences``, or a line's ``before`` and ``after``
    (``max_n_workers``, ``must_have_workers``).
    """

    id: int
    run_id: str
    action: RunChangeAction
    worker_id: str | None
    job_line_id: str | None
    details: dict[str, Any]
    reason: str
    changed_by: str | None
    changed_at: datetime
    inputs_version: int | None = None


@dataclass(frozen=True)
class LateWorker:
    """A worker who joins a run after import: id, name, tags and the lines they rank.

    ``preferences`` are ``(job_line_id, rank)`` pairs, ranks as in ``worker_preferences``
    (1 is the first choice; ties allowed when the run allows them).
    """

    id: str
    name: str = ""
    qualification_ids: tuple[str, ...] = ()
    preferences: tuple[tuple[str, float], ...] = ()
    #: business-rules.md: 1 is placed first; None puts them in the last tier.
    priority: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "qualification_ids": list(self.qualification_ids),
            "preferences": [{"job_line_id": j, "rank": r} for j, r in self.preferences],
        }
        if self.priority is not None:
            out["priority"] = self.priority
        return out


@dataclass(frozen=True)
class Scenario:
    """A planner's saved solve of a run: settings, overrides and the result JSON."""

    id: str
    run_id: str
    name: str
    settings: dict[str, Any]
    overrides: dict[str, Any]
    result: dict[str, Any] | None
    input_fingerprint: str
    created_by: str | None
    created_at: datetime
    #: 1, 2, 3, ... among the scenarios of its run saved under its name (the latest is listed).
    version: int = 1
    #: The version this one followed, if any.
    previous_id: str | None = None


@dataclass(frozen=True)
class PublishOutcome:
    """What a successful publish did."""

    run_id: str
    scenario_id: str
    publication_id: int
    n_allocations: int
    superseded: bool
    published_at: datetime
    #: The published scenario's version (set when the publish saved a new version).
    version: int | None = None


@dataclass(frozen=True)
class PublicationEntry:
    """One entry of a run's append-only publication log."""

    id: int
    run_id: str
    scenario_id: str | None
    action: PublicationAction
    reason: str | None
    input_fingerprint: str | None
    allocations: list[Allocation]
    previous_allocations: list[Allocation]
    published_by: str | None
    published_at: datetime


@dataclass(frozen=True)
class ClaimedRun:
    """A run a headless worker claimed: solve it before ``lease_expires_at``."""

    run_id: str
    worker: str
    attempts: int
    lease_expires_at: datetime
    settings: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- row helpers
# Shared by every adapter, so that rows become records in one way.


def allocation_from_row(d: Mapping[str, Any]) -> Allocation:
    return Allocation(
        worker_id=str(d["worker_id"]),
        job_line_id=str(d["job_line_id"]),
        worker_rank=d.get("worker_rank"),
        cost=d.get("cost"),
    )


def allocation_json(a: Allocation | Mapping[str, Any]) -> dict[str, Any]:
    d = asdict(a) if is_dataclass(a) else dict(a)  # type: ignore[arg-type]
    return {
        "worker_id": d["worker_id"],
        "job_line_id": d["job_line_id"],
        "worker_rank": d.get("worker_rank"),
        "cost": d.get("cost"),
    }


def snapshot_json(snapshot: RunSnapshot | Mapping[str, Any]) -> dict[str, Any]:
    """Validate (at the edge, once) and return the snapshot as JSON-ready data."""
    if isinstance(snapshot, RunSnapshot):
        return snapshot.model_dump(mode="json")
    try:
        return RunSnapshot.parse(dict(snapshot)).model_dump(mode="json")
    except SnapshotError as exc:
        raise InvalidSnapshotError("\n".join(exc.messages)) from exc


def run_change_from_row(d: Mapping[str, Any], ts: Any = None) -> RunChange:
    """A change-log row (a table row, or the JSON a change function returns) as a record.

    ``ts`` turns a timestamp as sent (text in JSON) into a datetime; by default ISO 8601.
    """
    at = d["changed_at"]
    if ts is None and isinstance(at, str):
        ts = datetime.fromisoformat
    return RunChange(
        id=int(d["id"]),
        run_id=str(d["run_id"]),
        action=d["action"],
        worker_id=d.get("worker_id"),
        job_line_id=d.get("job_line_id"),
        details=dict(d.get("details") or {}),
        reason=d["reason"],
        changed_by=d.get("changed_by"),
        changed_at=ts(at) if ts is not None else at,
        inputs_version=None if d.get("inputs_version") is None else int(d["inputs_version"]),
    )


def late_worker_json(worker: LateWorker | Mapping[str, Any]) -> dict[str, Any]:
    """A late worker as the JSON ``allocator_add_worker`` takes."""
    if isinstance(worker, LateWorker):
        return worker.to_json()
    return dict(worker)


# --------------------------------------------------------------------------- interface


@runtime_checkable
class RunStore(Protocol):
    """Where runs live. Adapters: :mod:`allocator.store.postgres` (and ``supabase``)."""

    def list_runs(self) -> list[RunSummary]:
        """Every run the caller may see, newest first."""
        ...

    def get_run(self, run_id: str) -> RunSummary | None:
        """One run's summary, or None when there is no such run (or the caller may not see it)."""
        ...

    #: Seconds a call waits for the database before giving up (a worker retries this long).
    timeout: float

    def ping(self) -> None:
        """Raise a StoreError when the database cannot be reached (a cheap query)."""
        ...

    def wait_until_reachable(self, timeout: float) -> None:
        """Wait (with backoff) until the database answers again, for at most ``timeout``
        seconds; raise DatabaseUnavailableError if it does not."""
        ...

    def load_run(self, run_id: str) -> RunSnapshot:
        """The run's whole input as a validated snapshot. Raises RunNotFoundError."""
        ...

    def import_snapshot(
        self,
        snapshot: RunSnapshot | Mapping[str, Any],
        *,
        organisation_id: str | None = None,
        name: str | None = None,
        source_file: str | None = None,
    ) -> str:
        """Store a snapshot as a new pending run (one transaction); return its run id.

        ``source_file`` is the name of the file it came from, shown with the run.
        """
        ...

    # -- changes to a run's data (each atomic, logged with who and why) -------------------
    def withdraw_worker(
        self, run_id: str, worker_id: str, *, reason: str, changed_by: str | None = None
    ) -> RunChange:
        """Take a worker out of the run (their rows and history stay). Raises
        InvalidSnapshotError naming the worker when they are not in the run."""
        ...

    def add_worker(
        self,
        run_id: str,
        worker: LateWorker | Mapping[str, Any],
        *,
        reason: str,
        changed_by: str | None = None,
    ) -> RunChange:
        """Add a late worker (id, name, tags, ranked lines) to the run."""
        ...

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
        """Change a job line's places, whether it must be filled, and/or its site
        (``site`` a new one; ``clear_site`` makes the line a site of its own)."""
        ...

    def run_changes(self, run_id: str) -> list[RunChange]:
        """The run's change log, oldest first."""
        ...

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
        """Save a planner's scenario; return its id.

        ``fingerprint`` is :func:`input_fingerprint` of the snapshot it was solved on.
        ``created_by`` is a label for trusted callers; a signed-in planner is always
        themselves (naming someone else raises AccessDeniedError).
        """
        ...

    def list_scenarios(self, run_id: str) -> list[Scenario]:
        """The run's saved scenarios (the latest version of each name), newest first."""
        ...

    def get_scenario(self, scenario_id: str) -> Scenario:
        """One saved scenario (any version). Raises ScenarioNotFoundError."""
        ...

    # -- scenario versions and the run's inputs version (stale scenarios) -------------
    def scenario_versions(self, run_id: str, name: str) -> list[Scenario]:
        """Every saved version of the run's scenario ``name``, the latest first."""
        ...

    def inputs_version(self, run_id: str) -> int:
        """The run's inputs version now: it moves whenever the run's data may have changed.

        One cheap query (``allocator_run_inputs_version``). Raises RunNotFoundError.
        """
        ...

    def load_run_versioned(self, run_id: str) -> tuple[RunSnapshot, int]:
        """The run's snapshot and the inputs version it was read at (one statement)."""
        ...

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
        """Save ``result`` as the next version of the scenario and publish it, atomically.

        ``result`` is a new solve of the scenario on the run's data read at
        ``inputs_version`` (whose fingerprint is ``fingerprint``). Nothing is saved when the
        publish is refused: StaleScenarioError when the run's data changed since that read,
        PublishRefusedError when the result has no allocation, AlreadyPublishedError as for
        :meth:`publish`. The outcome names the new version's id and number.
        """
        ...

    def current_fingerprint(self, run_id: str) -> str:
        """:func:`input_fingerprint` of the run's current inputs."""
        ...

    def publish(
        self,
        run_id: str,
        scenario_id: str,
        *,
        reason: str | None = None,
        supersede: bool = False,
        published_by: str | None = None,
    ) -> PublishOutcome:
        """Write the scenario's allocations, mark the run complete and log it, atomically.

        Raises StaleScenarioError, AlreadyPublishedError (unless ``supersede`` with a
        ``reason``), PublishRefusedError, RunNotFoundError, ScenarioNotFoundError.
        """
        ...

    def publication_log(self, run_id: str) -> list[PublicationEntry]:
        """The run's publication log, oldest first."""
        ...

    def allocations(self, run_id: str) -> list[Allocation]:
        """The run's current (published or completed) allocations, sorted by worker id."""
        ...

    def claim_next(
        self, worker: str, lease_seconds: float = 300.0, *, run_id: str | None = None
    ) -> ClaimedRun | None:
        """Claim the next pending run (or one whose lease expired), or ``run_id`` only."""
        ...

    def complete_run(
        self,
        run_id: str,
        worker: str,
        allocations: Sequence[Allocation | Mapping[str, Any]],
        result: Mapping[str, Any] | None = None,
    ) -> None:
        """Write a claimed run's allocations and mark it complete. Raises ClaimLostError."""
        ...

    def renew_lease(self, run_id: str, worker: str, lease_seconds: float = 300.0) -> datetime:
        """Extend a claimed run's lease to ``lease_seconds`` from now (a worker's heartbeat);
        return the new expiry. Raises ClaimLostError when the worker no longer holds it."""
        ...

    def fail_run(self, run_id: str, worker: str, error: str) -> None:
        """Mark a claimed run failed with a message. Raises ClaimLostError."""
        ...

    def requeue_run(self, run_id: str) -> None:
        """Put a failed run, or one whose lease expired, back to pending so a worker solves
        it again. Raises RunBusyError when a worker holds it or it is already waiting."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


# --------------------------------------------------------------------------- the shared base


def run_not_found(run_id: str) -> RunNotFoundError:
    """The one way both adapters say that a run is missing (or hidden from the caller by
    row-level security: the two look the same from outside)."""
    return RunNotFoundError(f"Run {run_id} was not found, or you may not see it.")


def checked_uuid(value: str, what: str = "run") -> str:
    """The canonical text of an id that must be a uuid, so that a typo is "not found" (exit 2
    on the command line), not a database error. ``what`` names the id in the message; a
    malformed scenario id is a ScenarioNotFoundError, any other a RunNotFoundError."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        error = ScenarioNotFoundError if what == "scenario" else RunNotFoundError
        raise error(
            f"{value!r} is not a {what} id (ids look like 1b4e28ba-2fa1-11d2-883f-0016d3cca427)."
        ) from None


class StoreBase:
    """What the two adapters share; each supplies :meth:`_load` and the rest of
    :class:`RunStore`.

    Loading a run as a snapshot, its fingerprint, the start of a publish (a fresh load whose
    ``inputs_version`` makes the database refuse a change landing between load and publish),
    and a run's summary by id when the adapter has no cheaper read.
    """

    def _load(self, run_id: str) -> tuple[dict[str, Any], int | None]:
        """The run's snapshot data and inputs_version, read at once. Raises RunNotFoundError."""
        raise NotImplementedError

    def list_runs(self) -> list[RunSummary]:
        raise NotImplementedError

    def load_run(self, run_id: str) -> RunSnapshot:
        data, _ = self._load(run_id)
        return RunSnapshot.parse(data)

    def current_fingerprint(self, run_id: str) -> str:
        return input_fingerprint(self.load_run(run_id))

    def _publish_inputs(self, run_id: str) -> tuple[str, int | None]:
        """The fingerprint of a fresh load and the ``inputs_version`` read with it."""
        data, version = self._load(run_id)
        return input_fingerprint(RunSnapshot.parse(data)), version

    def get_run(self, run_id: str) -> RunSummary | None:
        try:
            wanted = checked_uuid(run_id)
        except RunNotFoundError:
            return None
        return next((s for s in self.list_runs() if s.id == wanted), None)

    timeout: float = 30.0

    def ping(self) -> None:
        self.list_runs()

    def wait_until_reachable(self, timeout: float) -> None:
        """Ping with backoff until the database answers, for at most ``timeout`` seconds."""
        import time

        deadline = time.monotonic() + max(timeout, 0.0)
        delay = 0.25
        while True:
            try:
                self.ping()
                return
            except DatabaseUnavailableError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                time.sleep(min(delay, left))
                delay = min(delay * 2, 4.0)
