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
named run (:func:`claim_run` then :func:`solve_claimed`, which the HTTP API calls apart so
that it claims before it answers).

While it solves, a worker renews its lease (a heartbeat every third of the lease), so a solve
may use its whole time limit and is never taken over while its worker lives; a worker that
finds its run taken over stops solving. A database outage is ridden out: every store call
of :func:`process_pending` is retried with backoff for up to the store's pool timeout, and
what happened is said once when it starts and once when it ends.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from allocator.snapshot import (
    MAX_MAGNITUDE,
    MAX_PLACES,
    MAX_PRIORITY,
    RunSnapshot,
    SnapshotError,
    broken_text_problem,
    id_problem,
    load_snapshot,
    name_problem,
)
from allocator.store.base import (
    AccessDeniedError,
    AlreadyPublishedError,
    ClaimedRun,
    ClaimLostError,
    ConfigurationError,
    DatabaseUnavailableError,
    InvalidSnapshotError,
    LateWorker,
    PublicationEntry,
    PublishOutcome,
    PublishRefusedError,
    RunBusyError,
    RunChange,
    RunNotFoundError,
    RunStore,
    RunSummary,
    Scenario,
    ScenarioNotFoundError,
    StaleScenarioError,
    StoreError,
    input_fingerprint,
)

if TYPE_CHECKING:
    from allocator.config import AppConfig
    from allocator.db.migrate import MigrationReport
    from allocator.engine import Result
    from allocator.solvers.base import SolveOptions

__all__ = [
    # The store's types and errors, re-exported so that entry points (the command line, the
    # API, the pages) never import allocator.store or allocator.db themselves.
    "AccessDeniedError",
    "AlreadyPublishedError",
    "ClaimLostError",
    "ConfigurationError",
    "DatabaseUnavailableError",
    "InvalidSnapshotError",
    "LateWorker",
    "PublicationEntry",
    "PublishOutcome",
    "PublishRefusedError",
    "RunBusyError",
    "RunChange",
    "RunNotFoundError",
    "RunStore",
    "RunSummary",
    "Scenario",
    "ScenarioNotFoundError",
    "StaleScenarioError",
    "SnapshotError",
    "StoreError",
    "database_url",
    "input_fingerprint",
    "supabase_store",
    "demo_snapshot",
    "explain_snapshot",
    "migrate_database",
    "stop_on_sigterm",
    "statements_payload",
    "write_template",
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_RETRY_SECONDS",
    "claim_run",
    "ExportFormat",
    "NoAllocationError",
    "OutcomeStatus",
    "RunOutcome",
    "ServiceError",
    "add_worker",
    "change_words",
    "default_worker_name",
    "explain_run",
    "export_run",
    "get_run",
    "get_scenario",
    "import_file",
    "import_snapshot",
    "list_runs",
    "list_scenarios",
    "late_worker",
    "load_run",
    "load_snapshot",
    "open_store",
    "ping",
    "process_pending",
    "publication_log",
    "parse_ranked_lines",
    "publish",
    "prepare_resolve",
    "publish_resolved",
    "read_snapshot_file",
    "Resolve",
    "resolve_and_publish",
    "run_changes",
    "run_inputs_version",
    "run_result",
    "save_scenario",
    "scenario_versions",
    "set_job_line",
    "solve_refusal",
    "solve_run",
    "solve_claimed",
    "solve_options",
    "solve_snapshot",
    "withdraw_worker",
    "write_file_atomically",
]

log = logging.getLogger(__name__)

#: How long a headless worker holds a claimed run before another may take it over. The
#: worker renews it while it solves (a heartbeat every third of the lease), so a solve may
#: run its whole ``max_seconds``; the lease only matters when a worker dies.
DEFAULT_LEASE_SECONDS = 300.0

#: How long a worker keeps trying when the database stops answering, when the store does
#: not say (a PostgresStore's is its pool timeout).
DEFAULT_RETRY_SECONDS = 30.0

#: Seconds of a lease kept back from the solve, for loading and writing back.
_LEASE_MARGIN_SECONDS = 30.0
#: The least time a solve is given, however little of its lease is left.
_MIN_TIME_LIMIT = 0.5

ExportFormat = Literal["json", "xlsx"]
OutcomeStatus = Literal["complete", "failed", "lost"]


class ServiceError(Exception):
    """A request the service cannot carry out; the message is meant for a planner."""


# --------------------------------------------------------------------------- the store


def open_store(settings: AppConfig | None = None, *, load_demo: bool = False, fail_fast: bool = False) -> RunStore:
    """Open the store the configuration names.

    ``ALLOCATOR_DATABASE_URL`` gives the ``postgres`` store on that database;
    ``SUPABASE_URL`` with ``SUPABASE_KEY`` the ``supabase`` store; with neither, the
    embedded PostgreSQL is started (and migrated) in ``ALLOCATOR_DATA_DIR``. ``fail_fast``
    (the HTTP API): give up on an unreachable database after a few seconds, not 30.

    ``load_demo=True`` is for the dashboard alone: on an embedded database without runs it
    imports the demo run first. The command line and the API never do, so that a planner's
    first import leaves one pending run, theirs.
    """
    from allocator.store import open_store as _open_store

    return _open_store(settings, load_demo=load_demo, fail_fast=fail_fast)


def supabase_store(client: Any) -> RunStore:
    """The store of a signed-in planner's own Supabase client (row-level security applies)."""
    from allocator.store.supabase import SupabaseStore

    return SupabaseStore(client)


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
    store.ping()


# --------------------------------------------------------------------------- solving


def solve_options(
    settings: AppConfig | None = None,
    *,
    threads: int | None = None,
    initial_allocation: Mapping[str, str] | None = None,
    cpsat_parameters: Mapping[str, Any] | None = None,
    callbacks: Any = None,
) -> SolveOptions:
    """The solver options of every entry point, built in this one place.

    ``threads``: the caller's own (a ``--threads`` flag), else the configuration's
    ``ALLOCATOR_SOLVER_THREADS`` when ``settings`` are given, else 2. There is no time limit
    here: the run's ``settings.max_seconds`` is the one time limit (the engine sets the
    options' budget from it; ``allocator solve --time-limit`` sets ``max_seconds``).
    ``initial_allocation`` (worker id to job line id) is where CP-SAT starts, e.g. the last
    answer; ``cpsat_parameters`` lie over CP-SAT's defaults. Raises ValueError (a
    planner-readable message) for a value the options refuse (:class:`SolveOptions`).
    """
    from allocator.solvers.base import SolveOptions

    if threads is None and settings is not None:
        threads = settings.solver_threads
    kwargs: dict[str, Any] = {}
    if threads is not None:
        kwargs["threads"] = threads
    if initial_allocation is not None:
        kwargs["initial_allocation"] = dict(initial_allocation)
    if cpsat_parameters is not None:
        kwargs["cpsat_parameters"] = dict(cpsat_parameters)
    if callbacks is not None:
        kwargs["callbacks"] = callbacks
    return SolveOptions(**kwargs)


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
    _readable(worker, f"The worker name {worker!r}")
    claimed = claim_run(store, run_id, worker=worker, lease_seconds=lease_seconds)
    return solve_claimed(store, claimed, worker=worker, options=options, lease_seconds=lease_seconds)


def claim_run(
    store: RunStore, run_id: str, *, worker: str, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> ClaimedRun:
    """Claim this one run for ``worker`` (a failed run is put back in the queue first).

    Of any number of callers at once, exactly one gets the claim (``FOR UPDATE SKIP
    LOCKED``); the others get ServiceError. The HTTP API claims before it answers 202.

    Raises
    ------
    RunNotFoundError
        No such run (or the caller may not see it).
    ServiceError
        Another worker holds the run (or just claimed it), or it is complete.
    """
    if get_run(store, run_id).status == "failed":
        try:
            store.requeue_run(run_id)
        except RunBusyError:
            pass  # another caller put it back (or claimed it) first: the claim below decides
    claimed = store.claim_next(worker, lease_seconds, run_id=run_id)
    if claimed is None:
        # Tell "no such run" (raises) apart from "not claimable now".
        summary = get_run(store, run_id)
        raise ServiceError(
            solve_refusal(summary)
            or f"Run {run_id!r} was just claimed by another worker; its status shows the outcome."
        )
    return claimed


def solve_claimed(
    store: RunStore,
    claimed: ClaimedRun,
    *,
    worker: str,
    options: SolveOptions | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> RunOutcome:
    """Load, solve and record a run this worker claimed (see :func:`claim_run`), renewing
    the lease while it solves. Never raises for the run's own problems."""
    return _solve_claimed(store, claimed, worker, options, lease_seconds=lease_seconds)


def process_pending(
    store: RunStore,
    *,
    worker: str | None = None,
    once: bool = False,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    options: SolveOptions | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
    max_runs: int | None = None,
    on_notice: Callable[[str], None] | None = None,
    retry_seconds: float | None = None,
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
    on_notice
        Told once when the database stops answering and once when it is back (default: the
        log). Meanwhile every database call is retried with backoff for ``retry_seconds``
        (default: the store's pool timeout), then DatabaseUnavailableError is raised.
    """
    worker = worker or default_worker_name()
    _readable(worker, f"The worker name {worker!r}")
    limit = 1 if once else max_runs
    call = _Retrier(store, on_notice or log.warning, retry_seconds)
    outcomes: list[RunOutcome] = []
    while limit is None or len(outcomes) < limit:
        if options is not None and options.stop.is_set():
            break
        claimed = call(store.claim_next, worker, lease_seconds)
        if claimed is None:
            break
        outcome = _solve_claimed(store, claimed, worker, options, lease_seconds=lease_seconds, call=call)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes


class _Retrier:
    """Calls store operations, riding out a database outage.

    A call that finds the database unreachable is tried again with backoff (the store's
    ``wait_until_reachable`` when it has one) for up to ``window`` seconds. What happened is
    said once when the outage starts and once when it ends; if it outlasts the window, one
    DatabaseUnavailableError says so.
    """

    def __init__(self, store: RunStore, notice: Callable[[str], None], window: float | None = None):
        self.store = store
        self.notice = notice
        self.window = float(window if window is not None else store.timeout)

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DatabaseUnavailableError as exc:
            last = exc
        started = time.monotonic()
        self.notice(f"{last.message}. Trying again for up to {self.window:g} s.")
        wait = self.store.wait_until_reachable
        delay = 0.5
        while True:
            left = self.window - (time.monotonic() - started)
            if left <= 0:
                raise DatabaseUnavailableError(
                    f"{last.message}. Gave up after {self.window:g} s of retries; runs claimed "
                    "and not finished are taken up again once their claims expire."
                ) from last
            try:
                wait(left)
                result = fn(*args, **kwargs)
            except DatabaseUnavailableError as exc:
                last = exc
                # Reachable again, yet the call failed (or still unreachable): do not spin.
                time.sleep(min(delay, max(self.window - (time.monotonic() - started), 0.0)))
                delay = min(delay * 2, 8.0)
                continue
            self.notice(f"The database answers again after {time.monotonic() - started:.1f} s; carrying on.")
            return result


def _direct(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


class _Heartbeat:
    """Renews a claimed run's lease while the worker solves it, every third of the lease.

    If the worker has lost the run (its lease ran out and another worker took it), the solve
    is stopped: its result would be refused. A stop asked by the caller is passed on too.
    """

    def __init__(
        self,
        store: RunStore,
        claimed: ClaimedRun,
        worker: str,
        lease_seconds: float,
        solve_stop: threading.Event,
        caller_stop: threading.Event | None,
    ):
        self._renew = store.renew_lease
        self._args = (claimed.run_id, worker, lease_seconds)
        self._interval = max(lease_seconds / 3.0, 0.05)
        self._solve_stop = solve_stop
        self._caller_stop = caller_stop
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{claimed.run_id}", daemon=True)
        self.lost: ClaimLostError | None = None

    @property
    def active(self) -> bool:
        return callable(self._renew)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        due = time.monotonic() + self._interval
        while not self._done.wait(min(self._interval, 0.2)):
            if self._caller_stop is not None and self._caller_stop.is_set():
                self._solve_stop.set()
            if not callable(self._renew) or time.monotonic() < due:
                continue
            try:
                self._renew(*self._args)
                due = time.monotonic() + self._interval
            except ClaimLostError as exc:
                self.lost = exc
                self._solve_stop.set()
                return
            except StoreError as exc:  # the database did not answer: try again soon
                log.debug("renewing the lease of run %s failed: %s", self._args[0], exc)
                due = time.monotonic() + min(self._interval, 1.0)


def _time_budget(snapshot: RunSnapshot, claimed: ClaimedRun) -> float:
    """The run's own time limit, cut to what the lease leaves (minus a margin to write back).

    For a store that cannot renew leases (no heartbeat): a solve that outlived its lease
    would let another worker take the run over and solve it a second time; cutting the time
    limit keeps the claim valid when it completes.
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
    return store.get_run(wanted)


def _solve_claimed(
    store: RunStore,
    claimed: ClaimedRun,
    worker: str,
    options: SolveOptions | None,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    call: Callable[..., Any] = _direct,
) -> RunOutcome:
    """Load, solve and record one claimed run. Never raises for a run's own problems.

    ``call`` runs each store operation (process_pending passes one that rides out an outage).
    """
    from allocator.solvers.base import SolveOptions

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
            call(store.fail_run, run_id, worker, message)
        except ClaimLostError as exc:
            return outcome("lost", error=str(exc), **kw)
        return outcome("failed", error=message, **kw)

    try:
        snapshot = call(store.load_run, run_id)
    except SnapshotError as exc:
        return fail("The run's data is not valid input: " + "; ".join(exc.messages))
    except RunNotFoundError as exc:
        return fail(str(exc))

    base = options or SolveOptions()
    run_options = dataclasses.replace(base, stop=threading.Event())
    if base.stop.is_set():
        run_options.stop.set()
    heartbeat = _Heartbeat(store, claimed, worker, lease_seconds, run_options.stop, base.stop)
    try:
        if not heartbeat.active:
            budget = _time_budget(snapshot, claimed)
            if budget < snapshot.settings.max_seconds:
                # The time limit is a setting (the result records it): cut it there.
                snapshot = snapshot.with_settings(max_seconds=budget)
        with heartbeat:
            result = solve_snapshot(snapshot, run_options)
        if heartbeat.lost is not None:
            return outcome("lost", error=str(heartbeat.lost))
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
            call(store.complete_run, run_id, worker, allocations, data)
        except ClaimLostError as exc:
            return outcome("lost", error=str(exc), solve_status=status, objective=objective)
        except DatabaseUnavailableError:
            raise
        except StoreError as exc:  # the database refused the allocation: say why on the run
            return fail(f"The allocation could not be recorded: {exc}", solve_status=status)
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
    problem = name_problem(name.strip())
    if problem:
        raise ServiceError(f"The scenario's name {problem}.")
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


# --------------------------------------------------------------------------- stale scenarios


def run_inputs_version(store: RunStore, run_id: str) -> int:
    """The run's inputs version now: one cheap query, never cached.

    It moves whenever the run's data may have changed (a worker, a line, a preference, a
    rule, the run's own pins), so a dashboard compares it on every page to the version its
    cached copy of the run was read at. Raises RunNotFoundError.
    """
    return store.inputs_version(run_id)


def get_scenario(store: RunStore, scenario_id: str) -> Scenario:
    """One saved scenario, any version of it. Raises ScenarioNotFoundError."""
    return store.get_scenario(scenario_id)


def scenario_versions(store: RunStore, run_id: str, name: str) -> list[Scenario]:
    """Every saved version of one scenario of the run, the latest first."""
    return store.scenario_versions(run_id, name)


class NoAllocationError(ServiceError):
    """A new solve found no allocation (impossible as set up, or none in time): nothing is written."""


@dataclass(frozen=True)
class Resolve:
    """A stale scenario, ready to be solved again on the run's current data.

    ``snapshot`` is the run's current data with the scenario's settings and overrides on
    top; ``fingerprint`` and ``inputs_version`` are those of the data it was read from, so
    the publish is refused when the data changes again while the solve runs.
    """

    run_id: str
    scenario: Scenario
    snapshot: RunSnapshot
    fingerprint: str
    inputs_version: int


def prepare_resolve(
    store: RunStore,
    run_id: str,
    scenario_id: str,
    *,
    supersede: bool = False,
    reason: str | None = None,
) -> Resolve:
    """Read the run's current data and lay the saved scenario on it, before a new solve.

    Refuses before any solve what the publish would refuse anyway: replacing a published
    allocation without ``supersede`` and a reason (AlreadyPublishedError, ServiceError), a
    scenario of another run (ScenarioNotFoundError), and a scenario whose changes no longer
    fit the data (ServiceError naming each one, e.g. a pin of a worker no longer in the run).
    """
    from allocator.scenario import apply
    from allocator.store.base import AlreadyPublishedError, ScenarioNotFoundError, input_fingerprint

    if supersede and not (reason and reason.strip()):
        raise ServiceError("Replacing published allocations needs a reason; say why.")
    sc = store.get_scenario(scenario_id)
    if sc.run_id != run_id:
        raise ScenarioNotFoundError(f"Scenario {scenario_id} was not found for run {run_id}.")
    if not supersede and get_run(store, run_id).published:
        raise AlreadyPublishedError(
            "This run's allocation is already published.",
            hint="To replace it, supersede it and give a reason; the old one stays in the publication log.",
        )
    snapshot, version = store.load_run_versioned(run_id)
    try:
        applied = apply(snapshot, sc.settings, sc.overrides)
    except SnapshotError as exc:
        raise ServiceError(
            f"Scenario '{sc.name}' no longer fits the run's data, so it cannot be solved again as it is: "
            + "; ".join(exc.messages)
            + ". Open it on the Scenario page, change what is listed, solve it and save it."
        ) from None
    return Resolve(run_id, sc, applied, input_fingerprint(snapshot), version)


def publish_resolved(
    store: RunStore,
    plan: Resolve,
    result: Result | Mapping[str, Any],
    *,
    reason: str | None = None,
    supersede: bool = False,
    published_by: str | None = None,
) -> PublishOutcome:
    """Save a new solve of ``plan`` as the scenario's next version and publish it, atomically.

    Raises NoAllocationError (the solve found no allocation: nothing is written; the message
    gives the diagnosis), StaleScenarioError (the data changed again during the solve),
    AlreadyPublishedError, PublishRefusedError.
    """
    data = result.to_dict() if hasattr(result, "to_dict") else dict(result)  # type: ignore[union-attr]
    status = str(data.get("status"))
    name = plan.scenario.name
    if status == "infeasible":
        raise NoAllocationError(
            f"Solved again on the current data, scenario '{name}' is impossible, so nothing was saved or "
            f"published. {diagnosis_text(data)}"
        )
    if status not in ("optimal", "feasible") or not data.get("allocations"):
        raise NoAllocationError(
            f"Solved again on the current data, scenario '{name}' found no allocation within its time limit of "
            f"{plan.snapshot.settings.max_seconds:g} s, so nothing was saved or published. Give it more time on "
            "the Scenario page, or relax its rules."
        )
    return store.publish_new_version(
        plan.run_id,
        plan.scenario.id,
        data,
        plan.fingerprint,
        plan.inputs_version,
        reason=reason.strip() if reason else None,
        supersede=supersede,
        published_by=published_by,
    )


def resolve_and_publish(
    store: RunStore,
    run_id: str,
    scenario_id: str,
    *,
    reason: str | None = None,
    supersede: bool = False,
    published_by: str | None = None,
    options: SolveOptions | None = None,
) -> PublishOutcome:
    """Solve a saved scenario again with the run's current data, save it as the scenario's
    next version and publish it (the older versions stay). Nothing is written unless all of it
    succeeds; see :func:`prepare_resolve` and :func:`publish_resolved` for the refusals."""
    plan = prepare_resolve(store, run_id, scenario_id, supersede=supersede, reason=reason)
    result = solve_snapshot(plan.snapshot, options or solve_options())
    return publish_resolved(
        store, plan, result, reason=reason, supersede=supersede, published_by=published_by
    )


# --------------------------------------------------------------------------- run changes
# Changing a run's data after import: each change is one SQL function (atomic), logged with
# who and why, and moves the run's inputs version, so every scenario saved before is stale.


def _reason(reason: str | None, what: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise ServiceError(f"A reason is required to {what}: say why; it is kept in the run's change log.")
    _readable(text, "The reason")
    return text


def _readable(text: str | None, what: str) -> None:
    """Refuse text that no database can store (bytes of a command line that are not UTF-8):
    it would otherwise stop the change with an encoding error."""
    problem = broken_text_problem(text) if text else None
    if problem:
        raise ServiceError(f"{what} {problem}.")


def withdraw_worker(
    store: RunStore, run_id: str, worker_id: str, *, reason: str, changed_by: str | None = None
) -> RunChange:
    """Take a worker out of the run (their data and the run's history stay); log who and why."""
    wid = (worker_id or "").strip()
    if not wid:
        raise ServiceError("Name the worker to withdraw (their worker id).")
    _readable(wid, f"The worker id {wid!r}")
    _readable(changed_by, "The name of who makes the change")
    why = _reason(reason, f"withdraw worker {wid!r}")
    return store.withdraw_worker(run_id, wid, reason=why, changed_by=changed_by)


def parse_ranked_lines(text: str | Sequence[str] | None) -> tuple[tuple[str, float], ...]:
    """The job lines a worker ranks, as a planner types them.

    ``"j3, j1, j2"`` ranks j3 first, j1 second, j2 third (the order given); ``"j3=1, j1=1,
    j2=2"`` gives ranks explicitly (ties allowed). Raises ServiceError naming a bad item.
    """
    if text is None:
        return ()
    items = [x.strip() for x in (text.split(",") if isinstance(text, str) else text)]
    items = [x for x in items if x]
    out: list[tuple[str, float]] = []
    for pos, item in enumerate(items, start=1):
        line, sep, rank_text = item.partition("=")
        line = line.strip()
        if not line:
            raise ServiceError(f"Ranked line {pos} ({item!r}) names no job line.")
        if not sep:
            out.append((line, float(pos)))
            continue
        try:
            rank = float(rank_text)
        except ValueError:
            raise ServiceError(f"Ranked line {pos}: the rank of job line {line!r} must be a number (got {rank_text.strip()!r}).") from None
        if not (rank >= 1 and rank < float("inf")):
            raise ServiceError(f"Ranked line {pos}: the rank of job line {line!r} must be at least 1 (got {rank_text.strip()}).")
        if rank > MAX_MAGNITUDE:
            raise ServiceError(
                f"Ranked line {pos}: the rank of job line {line!r} must be at most {MAX_MAGNITUDE:,.0f} (got {rank_text.strip()})."
            )
        out.append((line, rank))
    return tuple(out)


def _quoted(text: str) -> str:
    """A text as a message quotes it; a huge one is cut (its length is said anyway)."""
    return repr(text) if len(text) <= 60 else f"{text[:40]!r}…"


def late_worker(
    worker_id: str,
    name: str = "",
    qualification_ids: str | Sequence[str] | None = None,
    ranked_lines: str | Sequence[str] | Sequence[tuple[str, float]] | None = None,
    priority: int | None = None,
) -> LateWorker:
    """A late worker from what a planner typed: tags comma-separated, lines as
    :func:`parse_ranked_lines`, and optionally their priority (1 is placed first)."""
    wid = (worker_id or "").strip()
    if not wid:
        raise ServiceError("The late worker needs an id (the id their rankings and the allocation use).")
    # The Limits of run-snapshot.md hold for a late worker as for an imported one: a run
    # holding what a snapshot may not could no longer be loaded, solved or exported.
    problem = id_problem(wid)
    if problem:
        raise ServiceError(f"The late worker's id {_quoted(wid)} {problem}.")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int) or priority < 1):
        raise ServiceError(
            f"Worker {wid!r}: the priority must be a whole number of at least 1 (1 is placed first), not {priority!r}."
        )
    if priority is not None and priority > MAX_PRIORITY:
        raise ServiceError(f"Worker {wid!r}: the priority must be at most {MAX_PRIORITY:,}, not {priority:,}.")
    full_name = (name or "").strip()
    problem = name_problem(full_name)
    if problem:
        raise ServiceError(f"Worker {wid!r}: the name {problem}.")
    if isinstance(qualification_ids, str):
        tags = [t.strip() for t in qualification_ids.split(",")]
    else:
        tags = [str(t).strip() for t in (qualification_ids or [])]
    for tag in tags:
        problem = id_problem(tag) if tag else None
        if problem:
            raise ServiceError(f"Worker {wid!r}: the tag {_quoted(tag)} {problem}.")
    if ranked_lines and not isinstance(ranked_lines, str) and isinstance(next(iter(ranked_lines)), tuple):
        prefs = tuple((str(j), float(r)) for j, r in ranked_lines)  # type: ignore[misc]
        for pos, (line, rank) in enumerate(prefs, start=1):
            if not (1 <= rank <= MAX_MAGNITUDE):
                raise ServiceError(
                    f"Ranked line {pos}: the rank of job line {line!r} must be from 1 to {MAX_MAGNITUDE:,.0f} (got {rank:g})."
                )
    else:
        prefs = parse_ranked_lines(ranked_lines)  # type: ignore[arg-type]
    return LateWorker(
        id=wid, name=full_name, qualification_ids=tuple(t for t in tags if t), preferences=prefs,
        priority=priority,
    )


def add_worker(
    store: RunStore, run_id: str, worker: LateWorker, *, reason: str, changed_by: str | None = None
) -> RunChange:
    """Add a late worker (id, name, tags, ranked lines) to the run; log who and why."""
    _readable(changed_by, "The name of who makes the change")
    why = _reason(reason, f"add worker {worker.id!r}")
    return store.add_worker(run_id, worker, reason=why, changed_by=changed_by)


def set_job_line(
    store: RunStore,
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
    """Change a job line's places, whether it must be filled, and/or its site (``site``; or
    ``clear_site``: the line becomes a site of its own); log who and why."""
    jid = (job_line_id or "").strip()
    if not jid:
        raise ServiceError("Name the job line to change (its line id).")
    if max_n_workers is None and must_have_workers is None and site is None and not clear_site:
        raise ServiceError(
            f"Job line {jid!r}: say what to change (its places, whether it must be filled, or its site)."
        )
    if site is not None and clear_site:
        raise ServiceError(f"Job line {jid!r}: give it a site or make it a site of its own, not both.")
    if site is not None and not site.strip():
        raise ServiceError(f"Job line {jid!r}: a site is a non-empty name.")
    _readable(jid, f"The job line id {jid!r}")
    _readable(changed_by, "The name of who makes the change")
    problem = name_problem(site.strip()) if site is not None else None
    if problem:
        raise ServiceError(f"Job line {jid!r}: the site {problem}.")
    if max_n_workers is not None and (isinstance(max_n_workers, bool) or int(max_n_workers) != max_n_workers or max_n_workers < 0):
        raise ServiceError(f"Job line {jid!r}: places must be a whole number, 0 or more (got {max_n_workers}).")
    if max_n_workers is not None and max_n_workers > MAX_PLACES:
        raise ServiceError(f"Job line {jid!r}: places must be at most {MAX_PLACES:,} (got {max_n_workers:,}).")
    why = _reason(reason, f"change job line {jid!r}")
    return store.set_job_line(
        run_id,
        jid,
        reason=why,
        max_n_workers=None if max_n_workers is None else int(max_n_workers),
        must_have_workers=must_have_workers,
        changed_by=changed_by,
        site=None if site is None else site.strip(),
        clear_site=bool(clear_site),
    )


def run_changes(store: RunStore, run_id: str) -> list[RunChange]:
    """The run's change log, oldest first."""
    return store.run_changes(run_id)


def _yes(flag: object) -> str:
    return "yes" if flag else "no"


def _site(site: object) -> str:
    return repr(site) if site else "none (a site of its own)"


def change_words(change: RunChange) -> str:
    """What a change did, in one planner's sentence (the change log shows it)."""
    d = change.details
    who = f"worker {change.worker_id!r}" + (f" ({d['name']})" if d.get("name") else "")
    if change.action == "withdraw_worker":
        # The database keeps the run valid (business-rules.md) and says how: their link and
        # their previous allocation.
        also = [x["message"] for x in (d.get("link"), d.get("previous_allocation")) if isinstance(x, dict) and x.get("message")]
        return " ".join([f"Withdrew {who} from the run.", *also])
    if change.action == "add_worker":
        tags = ", ".join(d.get("qualification_ids") or []) or "none"
        prefs = d.get("preferences") or []
        ranked = ", ".join(f"{p['job_line_id']} ({p['rank']:g})" for p in prefs) or "no lines"
        priority = f"; priority {d['priority']}" if d.get("priority") is not None else ""
        return f"Added late {who}; tags: {tags}; ranks: {ranked}{priority}."
    before, after = d.get("before") or {}, d.get("after") or {}
    line = f"job line {change.job_line_id!r}" + (f" ({d['name']})" if d.get("name") else "")
    parts = []
    if before.get("max_n_workers") != after.get("max_n_workers"):
        parts.append(f"places {before.get('max_n_workers')} → {after.get('max_n_workers')}")
    if before.get("must_have_workers") != after.get("must_have_workers"):
        parts.append(f"must be filled {_yes(before.get('must_have_workers'))} → {_yes(after.get('must_have_workers'))}")
    if before.get("site") != after.get("site"):
        parts.append(f"site {_site(before.get('site'))} → {_site(after.get('site'))}")
    return f"Changed {line}: {'; '.join(parts) or 'no difference'}."


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


def explain_snapshot(
    snapshot: RunSnapshot, worker_id: str | None, options: SolveOptions | None = None
) -> tuple[Result, dict[str, Any] | None]:
    """Solve a snapshot and explain one worker's allocation (``allocator-explain/1``).

    Returns the result and the explanation (None when ``worker_id`` is None or the run has
    no allocation: the result says why). Raises ServiceError for an unknown worker.
    """
    from allocator.explain import ExplainError, explain_worker

    if worker_id is not None and worker_id not in {w.id for w in snapshot.workers}:
        raise ServiceError(f"There is no worker (doctor) with id {worker_id!r} in run {snapshot.run.id!r}.")
    result = solve_snapshot(snapshot, options)
    if not result.has_allocation or worker_id is None:
        return result, None
    try:
        return result, explain_worker(result, worker_id, options=options)
    except ExplainError as exc:
        raise ServiceError(str(exc)) from None


def statements_payload(
    result: Result, format: str, options: SolveOptions | None = None
) -> tuple[bytes, int]:
    """Every worker's statement of an allocated result as one file (pdf, zip, json or xlsx).

    Returns the file's bytes and how many statements it holds.
    """
    from allocator.statements import build_statements, statements_file

    statements = build_statements(result, options=options)
    return statements_file(result, format, statements), len(statements)


# --------------------------------------------------------------------------- files


def read_snapshot_file(path: str | Path, *, label: str | None = None) -> RunSnapshot:
    """Read a snapshot ``.json`` or a workbook ``.xlsx`` and validate it.

    The one reader of a planner's file for the command line and the dashboard's upload: it
    refuses what is not a regular file, a file over ``ALLOCATOR_MAX_INPUT_MB`` (200 MB), JSON
    with repeated keys or deep nesting, and anything beyond run-snapshot.md's limits.
    ``label`` is how messages name the file (default its path), e.g. an upload's own name.

    Raises SnapshotError (invalid content, each message naming its entry) or
    ServiceError (a file type this program does not read).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".json":
        return load_snapshot(p, label=label)
    if suffix in (".xlsx", ".xlsm"):
        import io

        from allocator.inputfile import read_input_file
        from allocator.workbook import WorkbookError, xlsx_to_snapshot_dict

        content = read_input_file(p, label=label)
        try:
            data = xlsx_to_snapshot_dict(io.BytesIO(content))
        except WorkbookError as exc:
            raise SnapshotError(list(exc.messages)) from None
        return RunSnapshot.parse(data)
    if not label and p.is_dir():
        raise SnapshotError([f"{p} is a folder, not a file; give a run snapshot (.json) or a workbook (.xlsx)."])
    kind = f"a {suffix} file" if suffix else "a file without an extension"
    raise ServiceError(
        f"{label or p.name}: cannot read {kind}. "
        "Give a run snapshot (.json) or a workbook (.xlsx); `allocator template` writes one."
    )


def import_snapshot(
    store: RunStore,
    snapshot: RunSnapshot,
    *,
    organisation_id: str | None = None,
    name: str | None = None,
    source_file: str | None = None,
) -> str:
    """Store a validated snapshot as a new pending run (one transaction); return its run id.

    ``source_file`` names the file it came from (shown with the run: when and from what).
    """
    if organisation_id is not None:
        try:
            uuid.UUID(str(organisation_id))
        except ValueError:
            # Said before the database is asked, which would answer with a type error.
            raise ServiceError(
                f"{organisation_id!r} is not an organisation id (ids look like 1b4e28ba-2fa1-11d2-883f-0016d3cca427)."
            ) from None
    if source_file is not None:
        # A file name need not be text (Linux allows any bytes): keep what can be read of it,
        # since a name no database can store would stop the import.
        source_file = os.fsencode(source_file).decode("utf-8", errors="replace")
    return store.import_snapshot(snapshot, organisation_id=organisation_id, name=name, source_file=source_file)


def import_file(
    store: RunStore,
    path: str | Path,
    *,
    organisation_id: str | None = None,
    name: str | None = None,
) -> str:
    """Store a snapshot file or workbook as a new pending run; return the new run id."""
    snapshot = read_snapshot_file(path)
    return import_snapshot(store, snapshot, organisation_id=organisation_id, name=name, source_file=Path(path).name)


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
    """Write the whole file or nothing: readers see the old file or the complete new one.

    The one atomic writer of the project. The new file gets the mode a plain ``open()``
    would give it (the old file's mode, else 0666 less the umask), not ``mkstemp``'s private
    0600. Text is written as UTF-8 with ``\\n`` line ends. Raises ServiceError naming the file
    when it cannot be written.
    """
    import tempfile

    path = Path(path)
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or Path("."))
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise ServiceError(f"Cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    # os.umask can only be read by setting it; the lock keeps two writers from racing.
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


def write_template(path: str | Path) -> None:
    """Write an empty run workbook (one sheet per list) to ``path``, atomically."""
    import io

    from allocator.workbook import write_template as _write_template

    buf = io.BytesIO()
    _write_template(buf)
    write_file_atomically(path, buf.getvalue())


def demo_snapshot(*, workers: int = 140, lines: int | None = None, seed: int = 1234) -> dict[str, Any]:
    """A realistic, deterministic demo run snapshot (allocator-run/1) as JSON-ready data.

    The generator promises a valid run; it is checked here so that a bug never reaches a
    planner's file (raises SnapshotError).
    """
    from allocator.demo import demo_snapshot as _demo_snapshot

    data = _demo_snapshot(workers=workers, lines=lines, seed=seed)
    RunSnapshot.parse(data)
    return data


# --------------------------------------------------------------------------- the database


def migrate_database(settings: AppConfig | None = None) -> tuple[str, MigrationReport]:
    """Apply the migrations the configured database lacks or has in an older version; return
    its URL and what was applied (new files, files applied again because they changed).

    The embedded database is started first when it is the one configured. A Supabase project
    reached through its REST API cannot be migrated from here (ServiceError says how).
    Database failures arrive as StoreError.
    """
    from allocator.config import get_settings, store_choice

    settings = settings or get_settings()
    choice = store_choice(settings)
    if choice == "supabase":
        raise ServiceError(
            "A Supabase project reached through its REST API (SUPABASE_URL) is migrated with "
            "`supabase db push`, or set ALLOCATOR_DATABASE_URL to its connection string."
        )
    import psycopg

    from allocator.db.migrate import apply_migrations
    from allocator.store.base import error_from_sqlstate

    if choice == "database_url":
        url = settings.database_url.get_secret_value()  # type: ignore[union-attr]
    else:
        from allocator.db.embedded import create_database, start_server

        url = create_database(start_server(settings.resolved_data_dir))
    try:
        return url, apply_migrations(url)
    except psycopg.Error as exc:
        raise error_from_sqlstate(exc.sqlstate, f"{type(exc).__name__}: {str(exc).strip()}") from None


def database_url(settings: AppConfig | None = None) -> tuple[str, str | None]:
    """The address of the configured database (the embedded one is started), and a note on it.

    The URL carries its password; mask it before showing it. The note says what kind of
    database it is when that is not a plain URL (None otherwise).
    """
    from allocator.config import get_settings, store_choice

    settings = settings or get_settings()
    choice = store_choice(settings)
    if choice == "database_url":
        return settings.database_url.get_secret_value(), None  # type: ignore[union-attr]
    if choice == "supabase":
        return str(settings.supabase_url), "Supabase project over its REST API (SUPABASE_URL); its key is not printed."
    from allocator.db.embedded import ensure_database

    url = ensure_database(settings)
    return url, f"The embedded database in {settings.resolved_data_dir} (it stops when no process uses it)."


def stop_on_sigterm(exit_code: int = 143) -> bool:
    """On SIGTERM, exit with ``exit_code`` through the exit handlers (which stop the embedded
    database this process started) instead of dying at once."""
    from allocator.db.embedded import stop_on_sigterm as _stop_on_sigterm

    return _stop_on_sigterm(exit_code)


def summaries_by_status(outcomes: Sequence[RunOutcome]) -> dict[str, int]:
    """How many runs ended in each status."""
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    return counts

