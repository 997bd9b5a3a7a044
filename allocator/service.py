"""The use cases: what the dashboard, the command line and the HTTP API do with runs.

Each entry point calls these functions and nothing below them: a function takes a
:class:`~allocator.store.base.RunStore` (open one with :func:`open_store`) and speaks in
run snapshots and results. Errors a planner can act on arrive as
:class:`~allocator.store.base.StoreError` (the store refused), :class:`ServiceError` (a
file or a request the service cannot use) or :class:`~allocator.snapshot.SnapshotError`
(invalid input, each message naming its entry).

Headless solving
----------------
:func:`process_pending` is the worker loop: claim the next pending run (the store claims
with ``FOR UPDATE SKIP LOCKED`` and a lease, so any number of workers may run at once and
a crashed worker's run is claimed again once its lease ends), load it, solve it with the
run's own settings, and write its allocations and completion in one transaction, or record
the failure with a message a planner can read. :func:`solve_run` does the same for one
named run.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from allocator.snapshot import RunSnapshot, SnapshotError, load_snapshot
from allocator.store.base import (
    ClaimedRun,
    ClaimLostError,
    PublicationEntry,
    PublishOutcome,
    RunNotFoundError,
    RunStore,
    RunSummary,
    Scenario,
)

if TYPE_CHECKING:
    from allocator.config import Settings
    from allocator.engine import Result
    from allocator.solvers.base import SolveOptions

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "ExportFormat",
    "OutcomeStatus",
    "RunOutcome",
    "ServiceError",
    "default_worker_name",
    "explain_run",
    "export_run",
    "get_run",
    "import_file",
    "import_snapshot",
    "list_runs",
    "list_scenarios",
    "load_run",
    "open_store",
    "ping",
    "process_pending",
    "publication_log",
    "publish",
    "read_snapshot_file",
    "run_result",
    "save_scenario",
    "solve_refusal",
    "solve_run",
    "solve_snapshot",
    "write_file_atomically",
]

log = logging.getLogger(__name__)

#: How long a headless worker holds a claimed run before another may take it over. A solve
#: gets its run's ``max_seconds``, cut to what the lease leaves (:func:`_time_budget`), so
#: keep the lease above the runs' ``max_seconds``; it only matters when a worker dies.
DEFAULT_LEASE_SECONDS = 300.0

#: Seconds of a lease kept back from the solve, for loading and writing back.
_LEASE_MARGIN_SECONDS = 30.0
#: The least time a solve is given, however little of its lease is left.
_MIN_TIME_LIMIT = 0.5

ExportFormat = Literal["json", "xlsx"]
OutcomeStatus = Literal["complete", "failed", "lost"]


class ServiceError(Exception):
    """A request the service cannot carry out; the message is meant for a planner."""


# --------------------------------------------------------------------------- the store


def open_store(settings: Settings | None = None) -> RunStore:
    """Open the store the configuration names.

    ``ALLOCATOR_DATABASE_URL`` gives the ``postgres`` store on that database;
    ``SUPABASE_URL`` with ``SUPABASE_KEY`` the ``supabase`` store; with neither, the
    embedded PostgreSQL is started (and migrated) in ``ALLOCATOR_DATA_DIR``.
    """
    from allocator.store import open_store as _open_store

    return _open_store(settings)


def list_runs(store: RunStore) -> list[RunSummary]:
    """Every run the caller may see, newest first."""
    return store.list_runs()


def load_run(store: RunStore, run_id: str) -> RunSnapshot:
    """The run's whole input as a validated snapshot. Raises RunNotFoundError."""
    return store.load_run(run_id)


def get_run(store: RunStore, run_id: str) -> RunSummary:
    """One run's summary. Raises RunNotFoundError."""
    summary = _find_summary(store, run_id)
    if summary is None:
        raise RunNotFoundError(f"There is no run with id {run_id!r}.")
    return summary


def ping(store: RunStore) -> None:
    """Raise if the store's database cannot be reached (a cheap query when it has one)."""
    check = getattr(store, "ping", None)
    if callable(check):
        check()
    else:
        store.list_runs()


# --------------------------------------------------------------------------- solving


def solve_snapshot(snapshot: RunSnapshot, options: SolveOptions | None = None) -> Result:
    """Solve a snapshot with its own settings; infeasibility is a status, not an error."""
    from allocator.engine import solve

    return solve(snapshot, options)


@dataclass(frozen=True)
class RunOutcome:
    """What a headless solve of one run did.

    ``status`` is the run's status afterwards: ``complete`` (allocations written),
    ``failed`` (``error`` says why, in a planner's words) or ``lost`` (the worker's
    lease ended and another worker took the run over; nothing was written).
    """

    run_id: str
    status: OutcomeStatus
    objective: float | None
    seconds: float
    error: str | None = None
    solve_status: str | None = None
    n_allocations: int = 0
    attempts: int = 0
    worker: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for a log or a terminal."""
        head = f"{self.run_id}: {self.status} in {self.seconds:.2f} s"
        if self.status == "complete":
            obj = "-" if self.objective is None else f"{self.objective:.6g}"
            return f"{head}, {self.n_allocations} allocations, objective {obj}"
        return f"{head}: {self.error}" if self.error else head


def default_worker_name() -> str:
    """A name that tells workers apart in the runs table: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def solve_run(
    store: RunStore,
    run_id: str,
    *,
    worker: str | None = None,
    options: SolveOptions | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> RunOutcome:
    """Claim this run, solve it with its own settings and record the outcome.

    The run is claimed like any headless worker claims it, so a run that another worker
    holds (with a live lease) is not solved twice. A failed run is put back in the queue
    first (its attempts count starts again); a complete run is refused.

    Raises
    ------
    RunNotFoundError
        No such run (or the caller may not see it).
    ServiceError
        The run cannot be claimed now: another worker is solving it, or it is complete.
    """
    worker = worker or default_worker_name()
    if get_run(store, run_id).status == "failed":
        store.requeue_run(run_id)
    claimed = store.claim_next(worker, lease_seconds, run_id=run_id)
    if claimed is None:
        # Tell "no such run" (raises) apart from "not claimable now".
        summary = get_run(store, run_id)
        raise ServiceError(
            solve_refusal(summary)
            or f"Run {run_id!r} cannot be claimed now (status {summary.status!r}); try again."
        )
    return _solve_claimed(store, claimed, worker, options)


def process_pending(
    store: RunStore,
    *,
    worker: str | None = None,
    once: bool = False,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    options: SolveOptions | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
    max_runs: int | None = None,
) -> list[RunOutcome]:
    """Solve pending runs until none is left; return one outcome per run, in order.

    Each run is claimed (``FOR UPDATE SKIP LOCKED`` with a lease), loaded, solved with its
    own settings and completed or failed in one transaction, so any number of workers may
    call this at once against one database and no run is solved twice. A run whose lease
    expired (its worker died) counts as pending again.

    Parameters
    ----------
    once
        Solve at most one run, then return.
    lease_seconds
        How long a claim holds before another worker may take the run over. A run's solve
        gets its own ``max_seconds``, cut to fit inside the lease.
    on_outcome
        Called after each run (the CLI prints a line per run as it goes).
    max_runs
        Stop after this many runs (``once`` is ``max_runs=1``).
    """
    worker = worker or default_worker_name()
    limit = 1 if once else max_runs
    outcomes: list[RunOutcome] = []
    while limit is None or len(outcomes) < limit:
        if options is not None and options.stop.is_set():
            break
        claimed = store.claim_next(worker, lease_seconds)
        if claimed is None:
            break
        outcome = _solve_claimed(store, claimed, worker, options)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes


def _time_budget(snapshot: RunSnapshot, claimed: ClaimedRun) -> float:
    """The run's own time limit, cut to what the lease leaves (minus a margin to write back).

    A solve that outlived its lease would let another worker take the run over and solve it
    a second time; cutting the time limit keeps the claim valid when it completes.
    """
    limit = float(snapshot.settings.max_seconds)
    expires = claimed.lease_expires_at
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    left = (expires - datetime.now(UTC)).total_seconds()
    margin = min(_LEASE_MARGIN_SECONDS, 0.2 * max(left, 0.0))
    return max(min(limit, left - margin), _MIN_TIME_LIMIT)


def solve_refusal(summary: RunSummary) -> str | None:
    """Why this run cannot be solved now, in a planner's words; ``None`` when it can."""
    if summary.status == "running":
        return (
            f"Run {summary.id!r} is being solved by a worker now. If that worker stopped, "
            "the run is taken over when its lease ends."
        )
    if summary.status == "complete":
        return (
            f"Run {summary.id!r} is already complete: its allocations are written. To change "
            "them, publish a scenario over them (supersede, with a reason)."
        )
    return None


def _find_summary(store: RunStore, run_id: str) -> RunSummary | None:
    try:  # run ids are uuids; compare their canonical text (any case, braces, ...)
        wanted = str(uuid.UUID(str(run_id)))
    except ValueError:
        return None
    direct = getattr(store, "get_run", None)
    if callable(direct):  # one indexed read instead of every run
        return direct(wanted)
    for summary in store.list_runs():
        if summary.id == wanted:
            return summary
    return None


def _solve_claimed(
    store: RunStore, claimed: ClaimedRun, worker: str, options: SolveOptions | None
) -> RunOutcome:
    """Load, solve and record one claimed run. Never raises for a run's own problems."""
    run_id = claimed.run_id
    started = time.perf_counter()

    def outcome(status: OutcomeStatus, **kw: Any) -> RunOutcome:
        return RunOutcome(
            run_id=run_id,
            status=status,
            seconds=time.perf_counter() - started,
            attempts=claimed.attempts,
            worker=worker,
            **{"objective": None, **kw},
        )

    def fail(message: str, **kw: Any) -> RunOutcome:
        try:
            store.fail_run(run_id, worker, message)
        except ClaimLostError as exc:
            return outcome("lost", error=str(exc), **kw)
        return outcome("failed", error=message, **kw)

    try:
        snapshot = store.load_run(run_id)
    except SnapshotError as exc:
        return fail("The run's data is not valid input: " + "; ".join(exc.messages))
    except RunNotFoundError as exc:
        return fail(str(exc))

    budget = _time_budget(snapshot, claimed)
    try:
        if budget < snapshot.settings.max_seconds:
            # The time limit is a setting (the result records it): cut it there.
            snapshot = snapshot.with_settings(max_seconds=budget)
        result = solve_snapshot(snapshot, options)
    except SnapshotError as exc:  # the engine re-checks some rules (e.g. pins)
        return fail("The run's data is not valid input: " + "; ".join(exc.messages))
    except Exception as exc:  # noqa: BLE001 - a bug must not leave the run claimed forever
        log.exception("solving run %s failed", run_id)
        return fail(f"The solver stopped with an internal error ({type(exc).__name__}: {exc}).")

    data = result.to_dict()
    status = str(data.get("status"))
    objective = data.get("objective")
    if status in ("optimal", "feasible"):
        allocations = data.get("allocations") or []
        try:
            store.complete_run(run_id, worker, allocations, data)
        except ClaimLostError as exc:
            return outcome("lost", error=str(exc), solve_status=status, objective=objective)
        return outcome(
            "complete", solve_status=status, objective=objective, n_allocations=len(allocations)
        )
    if status == "infeasible":
        return fail(diagnosis_text(data), solve_status=status)
    return fail(
        f"No allocation was found within the time limit of {snapshot.settings.max_seconds:g} s. "
        "Give the run more time (max_seconds) or relax its rules.",
        solve_status=status,
    )


def diagnosis_text(result: Mapping[str, Any]) -> str:
    """A planner-readable reason an infeasible result gives (its diagnosis messages)."""
    messages = [
        str(d.get("message")).strip()
        for d in result.get("diagnosis") or []
        if isinstance(d, Mapping) and d.get("message")
    ]
    if not messages:
        return "No allocation satisfies the run's rules (the solver gave no further reason)."
    return "No allocation satisfies the run's rules: " + " ".join(messages)


# --------------------------------------------------------------------------- scenarios


def save_scenario(
    store: RunStore,
    run_id: str,
    name: str,
    *,
    settings: Mapping[str, Any],
    overrides: Mapping[str, Any] | None,
    result: Mapping[str, Any] | None,
    fingerprint: str,
    created_by: str | None = None,
) -> str:
    """Save a planner's scenario; ``fingerprint`` is the input fingerprint it was solved on.

    Use the fingerprint the store reported when the run was loaded
    (:meth:`RunStore.current_fingerprint`), so a publish can tell whether the run's inputs
    changed since.
    """
    if not name or not name.strip():
        raise ServiceError("A scenario needs a name.")
    return store.save_scenario(
        run_id, name.strip(), dict(settings), dict(overrides or {}), result, fingerprint, created_by
    )


def list_scenarios(store: RunStore, run_id: str) -> list[Scenario]:
    """The run's saved scenarios, newest first."""
    return store.list_scenarios(run_id)


def publish(
    store: RunStore,
    run_id: str,
    scenario_id: str,
    *,
    reason: str | None = None,
    supersede: bool = False,
    published_by: str | None = None,
) -> PublishOutcome:
    """Write a scenario's allocations as the run's, mark it complete and log it, atomically.

    Raises StaleScenarioError (inputs changed since the scenario was solved),
    AlreadyPublishedError (unless ``supersede`` with a ``reason``), PublishRefusedError.
    """
    if supersede and not (reason and reason.strip()):
        raise ServiceError("Replacing published allocations needs a reason; say why.")
    return store.publish(
        run_id,
        scenario_id,
        reason=reason.strip() if reason else None,
        supersede=supersede,
        published_by=published_by,
    )


def publication_log(store: RunStore, run_id: str) -> list[PublicationEntry]:
    """The run's publication log, oldest first."""
    return store.publication_log(run_id)


# --------------------------------------------------------------------------- explanations


def run_result(store: RunStore, run_id: str, options: SolveOptions | None = None) -> Result:
    """The run's stored allocation as a result to explain, or a fresh solve when it has none.

    The stored allocation (published or completed) is checked against the run's current data
    (:func:`allocator.explain.allocation_result`); raises RunNotFoundError, or ServiceError
    when the stored allocation no longer fits the run.
    """
    from allocator.explain import ExplainError, allocation_result

    snapshot = store.load_run(run_id)
    stored = store.allocations(run_id)
    if not stored:
        return solve_snapshot(snapshot, options)
    try:
        return allocation_result(snapshot, {a.worker_id: a.job_line_id for a in stored})
    except ExplainError as exc:
        raise ServiceError(str(exc)) from None


def explain_run(
    store: RunStore, run_id: str, worker_id: str, options: SolveOptions | None = None
) -> tuple[Result, dict[str, Any] | None]:
    """``allocator-explain/1`` for one worker of a stored run (:func:`run_result` explained).

    Returns the result and the explanation (None when the run has no allocation: the result
    says why). Raises ServiceError for an unknown worker.
    """
    from allocator.explain import ExplainError, explain_worker

    snapshot = store.load_run(run_id)
    if worker_id not in {w.id for w in snapshot.workers}:
        raise ServiceError(f"There is no worker (doctor) with id {worker_id!r} in run {run_id!r}.")
    result = run_result(store, run_id, options)
    if not result.has_allocation:
        return result, None
    try:
        return result, explain_worker(result, worker_id, options=options)
    except ExplainError as exc:
        raise ServiceError(str(exc)) from None


# --------------------------------------------------------------------------- files


def read_snapshot_file(path: str | Path) -> RunSnapshot:
    """Read a snapshot ``.json`` or a workbook ``.xlsx`` and validate it.

    Raises SnapshotError (invalid content, each message naming its entry) or
    ServiceError (a file type this program does not read).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".json":
        return load_snapshot(p)
    if suffix in (".xlsx", ".xlsm"):
        from allocator.workbook import WorkbookError, xlsx_to_snapshot_dict

        if not p.is_file():
            raise SnapshotError([f"File not found: {p}"])
        try:
            data = xlsx_to_snapshot_dict(p)
        except WorkbookError as exc:
            raise SnapshotError(list(exc.messages)) from None
        return RunSnapshot.parse(data)
    raise ServiceError(
        f"{p.name}: cannot read a {suffix or 'extensionless'} file. "
        "Give a run snapshot (.json) or a workbook (.xlsx); `allocator template` writes one."
    )


def import_snapshot(
    store: RunStore,
    snapshot: RunSnapshot,
    *,
    organisation_id: str | None = None,
    name: str | None = None,
) -> str:
    """Store a validated snapshot as a new pending run (one transaction); return its run id."""
    return store.import_snapshot(snapshot, organisation_id=organisation_id, name=name)


def import_file(
    store: RunStore,
    path: str | Path,
    *,
    organisation_id: str | None = None,
    name: str | None = None,
) -> str:
    """Store a snapshot file or workbook as a new pending run; return the new run id."""
    snapshot = read_snapshot_file(path)
    return import_snapshot(store, snapshot, organisation_id=organisation_id, name=name)


def export_run(
    store: RunStore,
    run_id: str,
    path: str | Path | None = None,
    format: ExportFormat | None = None,
) -> str | bytes:
    """Write the run's snapshot to ``path`` (or return it) as JSON or a workbook.

    ``format`` defaults to the file's extension, else JSON. Without ``path`` the JSON text
    (or the workbook's bytes) is returned. The file is written whole or not at all.
    """
    fmt = _export_format(path, format)
    snapshot = store.load_run(run_id)
    payload: str | bytes
    if fmt == "json":
        payload = snapshot.to_json() + "\n"
    else:
        import io

        from allocator.workbook import snapshot_to_xlsx

        buf = io.BytesIO()
        snapshot_to_xlsx(snapshot.canonical(), buf)
        payload = buf.getvalue()
    if path is not None:
        write_file_atomically(Path(path), payload)
    return payload


def _export_format(path: str | Path | None, format: str | None) -> ExportFormat:
    if format is not None:
        fmt = format.lower()
        if fmt not in ("json", "xlsx"):
            raise ServiceError(f"Unknown export format {format!r}: use json or xlsx.")
        return fmt  # type: ignore[return-value]
    if path is not None and Path(path).suffix.lower() == ".xlsx":
        return "xlsx"
    return "json"


def write_file_atomically(path: str | Path, payload: str | bytes) -> None:
    """Write the whole file or nothing: readers see the old file or the complete new one."""
    import tempfile

    path = Path(path)
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise ServiceError(f"Cannot write {path}: {exc.strerror or exc}") from None


def summaries_by_status(outcomes: Sequence[RunOutcome]) -> dict[str, int]:
    """How many runs ended in each status."""
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    return counts

