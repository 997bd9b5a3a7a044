"""The job runner: solves in the background, one at a time, with progress anyone can poll.

The dashboard (and anything else that must stay responsive while a solve runs) submits a
snapshot here and polls :meth:`JobRunner.progress`. Solves run on ONE worker thread shared by
the whole process, so two planners who press Solve at once queue rather than fight for the
machine's cores; a queued job reports its position in the queue.

CP-SAT and the flow solver release the GIL while they work, so the script threads that poll
stay fast. The engine reports progress through :class:`~allocator.solvers.base.Callbacks`
from the worker thread; every write to a job's state happens under the runner's lock, and
readers get an immutable :class:`ProgressSnapshot` copy, never the live state.

This module never imports streamlit: it is used by the dashboard, tests and scripts alike.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from allocator.snapshot import SnapshotError
from allocator.solvers.base import Callbacks, SolveOptions

log = logging.getLogger(__name__)

#: Finished jobs kept for polling; the oldest are forgotten beyond this.
KEEP_FINISHED = 200


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.STOPPED)


@dataclass(frozen=True)
class ProgressPoint:
    """One report from the solver: the best allocation's objective and the proven bound."""

    elapsed: float
    objective: float | None
    bound: float | None


@dataclass(frozen=True)
class ProgressSnapshot:
    """An immutable copy of one job's state at the moment it was asked for.

    Attributes
    ----------
    status
        queued, running, done, failed or stopped. A job stopped while running keeps the best
        allocation found so far in ``result``; a job stopped while queued has no result.
    queue_position
        For a queued job, how many solves are ahead of it (the running one included): 0 means
        it starts next. ``None`` once it runs.
    history
        Every progress report so far, oldest first (objective and bound with elapsed time).
    elapsed
        Seconds since the solve started (0 while queued; frozen once finished).
    result
        The engine's result once the job has finished with one.
    error
        What went wrong, in planners' words, when the job failed.
    """

    job_id: str
    label: str
    status: JobStatus
    queue_position: int | None
    history: tuple[ProgressPoint, ...]
    elapsed: float
    phase: str | None
    result: Any | None
    error: str | None
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    stop_requested: bool

    @property
    def finished(self) -> bool:
        return self.status.finished

    @property
    def objective(self) -> float | None:
        """The latest reported objective (``None`` before any allocation is found)."""
        for p in reversed(self.history):
            if p.objective is not None:
                return p.objective
        return None

    @property
    def bound(self) -> float | None:
        """The latest reported lower bound."""
        for p in reversed(self.history):
            if p.bound is not None:
                return p.bound
        return None


@dataclass
class _Job:
    job_id: str
    label: str
    snapshot: Any
    options: SolveOptions
    status: JobStatus = JobStatus.QUEUED
    history: list[ProgressPoint] = field(default_factory=list)
    phase: str | None = None
    result: Any | None = None
    error: str | None = None
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    started_mono: float | None = None
    finished_mono: float | None = None


class _Recorder(Callbacks):
    """Forwards the engine's callbacks into the job's history (under the lock), then on."""

    def __init__(self, runner: JobRunner, job: _Job, inner: Callbacks):
        self._runner = runner
        self._job = job
        self._inner = inner

    def on_progress(self, objective: float | None, bound: float | None, elapsed: float) -> None:
        # Time is measured from the job's start by the runner's own clock: the engine's
        # ``elapsed`` restarts with some phases, and a progress chart needs one time axis.
        with self._runner._lock:
            start = self._job.started_mono
            t = time.monotonic() - start if start is not None else float(elapsed)
            self._job.history.append(ProgressPoint(t, objective, bound))
        self._inner.on_progress(objective, bound, elapsed)

    def on_phase(self, phase: str) -> None:
        with self._runner._lock:
            self._job.phase = phase
        self._inner.on_phase(phase)


def _default_solve(snapshot: Any, options: SolveOptions) -> Any:
    from allocator.engine import solve  # imported late: the engine pulls in OR-Tools

    return solve(snapshot, options)


class JobRunner:
    """Runs solves one at a time on a single background thread.

    Parameters
    ----------
    solve
        ``solve(snapshot, options) -> result``; defaults to :func:`allocator.engine.solve`.
        The runner passes its own :class:`SolveOptions` whose callbacks record progress and
        whose ``stop`` event :meth:`stop` sets.
    keep_finished
        How many finished jobs to remember for :meth:`progress`.
    """

    def __init__(
        self,
        solve: Callable[[Any, SolveOptions], Any] | None = None,
        *,
        keep_finished: int = KEEP_FINISHED,
    ):
        self._solve = solve or _default_solve
        self._keep = keep_finished
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._queue: deque[str] = deque()
        self._running: str | None = None
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- public API ----------------------------------------------------------------------
    def submit(self, snapshot: Any, options: SolveOptions | None = None, *, label: str = "") -> str:
        """Queue a solve of ``snapshot``; return its job id at once.

        ``options`` gives threads and callbacks of the caller's own (the time limit is the
        snapshot's ``max_seconds``, which the engine applies); the runner
        chains its recorder in front of those callbacks and uses its own stop event, so the
        caller's options object is never changed.
        """
        base = options or SolveOptions()
        with self._lock:
            if self._closed:
                raise RuntimeError("the job runner has been shut down")
            job_id = f"job-{next(self._ids)}"
            job = _Job(job_id=job_id, label=label, snapshot=snapshot, options=base)
            job.options = replace(
                base, callbacks=_Recorder(self, job, base.callbacks), stop=threading.Event()
            )
            if base.stop.is_set():
                job.options.stop.set()
            self._jobs[job_id] = job
            self._queue.append(job_id)
            self._ensure_thread()
            self._wake.notify_all()
        return job_id

    def progress(self, job_id: str) -> ProgressSnapshot:
        """An immutable copy of the job's state. Raises KeyError for an unknown job."""
        with self._lock:
            job = self._jobs[job_id]
            return self._snapshot(job)

    def stop(self, job_id: str) -> bool:
        """Ask a job to stop. Returns False when it had already finished.

        A running solve stops at the engine's next check and keeps the best allocation found so
        far (status ``stopped`` with a result); a queued job is taken off the queue.
        """
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status.finished:
                return False
            job.options.stop.set()
            if job.status is JobStatus.QUEUED:
                self._queue.remove(job_id)
                self._finish(job, JobStatus.STOPPED)
            return True

    def wait(self, job_id: str, timeout: float | None = None) -> ProgressSnapshot:
        """Block until the job finishes (or ``timeout`` passes); return its progress."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self._jobs[job_id].status.finished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._wake.wait(remaining if remaining is not None else 1.0)
            return self._snapshot(self._jobs[job_id])

    def queue_length(self) -> int:
        """Jobs waiting or running."""
        with self._lock:
            return len(self._queue) + (1 if self._running else 0)

    def shutdown(self, *, stop_running: bool = True, timeout: float | None = 10.0) -> None:
        """Stop accepting jobs, drop the queue, stop the running solve, join the thread."""
        with self._lock:
            self._closed = True
            while self._queue:
                job = self._jobs[self._queue.popleft()]
                job.options.stop.set()
                self._finish(job, JobStatus.STOPPED)
            if stop_running and self._running:
                self._jobs[self._running].options.stop.set()
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # -- internals -----------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="allocator-solver", daemon=True)
            self._thread.start()

    def _snapshot(self, job: _Job) -> ProgressSnapshot:
        position = None
        if job.status is JobStatus.QUEUED:
            position = self._queue.index(job.job_id) + (1 if self._running else 0)
        if job.started_mono is None:
            elapsed = 0.0
        else:
            end = job.finished_mono if job.finished_mono is not None else time.monotonic()
            elapsed = end - job.started_mono
        return ProgressSnapshot(
            job_id=job.job_id,
            label=job.label,
            status=job.status,
            queue_position=position,
            history=tuple(job.history),
            elapsed=elapsed,
            phase=job.phase,
            result=job.result,
            error=job.error,
            submitted_at=job.submitted_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            stop_requested=job.options.stop.is_set(),
        )

    def _finish(self, job: _Job, status: JobStatus) -> None:
        # Caller holds the lock.
        job.status = status
        job.finished_at = time.time()
        job.finished_mono = time.monotonic()
        job.snapshot = None  # the input is no longer needed; let it go
        self._forget_old()
        self._wake.notify_all()

    def _forget_old(self) -> None:
        finished = [j for j, job in self._jobs.items() if job.status.finished]
        for j in finished[: max(len(finished) - self._keep, 0)]:
            del self._jobs[j]

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if not self._queue:
                    return
                job = self._jobs[self._queue.popleft()]
                job.status = JobStatus.RUNNING
                job.started_at = time.time()
                job.started_mono = time.monotonic()
                self._running = job.job_id
                snapshot, options = job.snapshot, job.options
            try:
                result = self._solve(snapshot, options)
            except SnapshotError as exc:
                self._fail(job, "The input cannot be solved: " + "; ".join(exc.messages))
            except Exception as exc:  # a solver bug must not kill the worker thread
                log.exception("solve %s failed", job.job_id)
                self._fail(
                    job,
                    "The solver stopped with an internal error, so there is no result and nothing "
                    "was changed. Try again; if it happens again, send the run's snapshot and this "
                    f"message to support ({type(exc).__name__}: {exc}).",
                )
            else:
                with self._lock:
                    job.result = result
                    self._running = None
                    stopped = job.options.stop.is_set()
                    self._finish(job, JobStatus.STOPPED if stopped else JobStatus.DONE)

    def _fail(self, job: _Job, message: str) -> None:
        with self._lock:
            job.error = message
            self._running = None
            self._finish(job, JobStatus.FAILED)


_default: JobRunner | None = None
_default_lock = threading.Lock()


def default_runner() -> JobRunner:
    """The process-wide runner (one solver thread for everything in this process)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = JobRunner()
        return _default
