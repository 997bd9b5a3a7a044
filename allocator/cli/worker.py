"""``allocator solve-run`` and ``allocator process-pending``: headless solving of stored runs.

Exit codes
----------
0 done; 1 an unexpected error, or the database could not be reached; 2 invalid input or
configuration (stderr names each offending entry), or an unknown run; 3 the run is
infeasible (its diagnosis is recorded and printed); 4 no allocation within the time limit;
5 the run is not waiting to be solved (another worker holds it, or it is complete); 143
stopped by SIGTERM. On SIGTERM as on Ctrl-C, a command stops the embedded database it started.
"""

from __future__ import annotations

from typing import Annotated

import typer

from allocator.cli.common import (
    EXIT_INFEASIBLE,
    EXIT_INVALID,
    EXIT_NO_SOLUTION,
    EXIT_NOT_WAITING,
    EXIT_TERMINATED,
    SERVICE_EXIT_CODES_HELP,
    CliError,
    err,
    planner_errors,
    threads_errors,
)

#: The longest lease (the database refuses more: far beyond it its timestamps overflow).
MAX_LEASE_SECONDS = 604_800


def _check_lease_threads(lease: float, threads: int | None, worker: str | None = None) -> None:
    from allocator.snapshot import broken_text_problem

    errs = []
    problem = broken_text_problem(worker) if worker else None
    if problem:  # said here: solve-run reads the service's refusals as "not waiting" (exit 5)
        errs.append(f"--worker {worker!r} {problem}")
    if not (0 < lease <= MAX_LEASE_SECONDS):
        errs.append(f"--lease must be a number of seconds greater than 0 and at most {MAX_LEASE_SECONDS:,} (a week) (got {lease:g})")
    errs += threads_errors(threads)
    if errs:
        raise CliError(errs)


def register(app: typer.Typer) -> None:
    """Add ``solve-run`` and ``process-pending`` to ``app``."""

    @app.command("solve-run", epilog=SERVICE_EXIT_CODES_HELP)
    @planner_errors
    def solve_run_command(
        run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to solve.", show_default=False)],
        worker: Annotated[str | None, typer.Option("--worker", metavar="NAME", help="This worker's name in the runs table (default host:pid).", show_default=False)] = None,
        lease: Annotated[float, typer.Option("--lease", metavar="SECONDS", help="How long the claim holds.")] = 300.0,
        threads: Annotated[int | None, typer.Option("--threads", metavar="T", help="Solver threads (default ALLOCATOR_SOLVER_THREADS, else 2).", show_default=False)] = None,
    ) -> None:
        """Solve one run with its own settings and record the outcome in the database.

        A failed run is put back in the queue first; a complete run, or one another worker is
        solving, is refused (exit 5).
        """
        from allocator import service
        from allocator.config import get_settings

        _check_lease_threads(lease, threads, worker)
        service.stop_on_sigterm(EXIT_TERMINATED)
        settings = get_settings()
        store = service.open_store(settings)
        try:
            try:
                outcome = service.solve_run(
                    store, run_id, worker=worker, options=service.solve_options(settings, threads=threads),
                    lease_seconds=lease,
                )
            except service.ServiceError as exc:
                raise CliError(str(exc), EXIT_NOT_WAITING) from None
        finally:
            store.close()
        typer.echo(outcome.summary())
        if outcome.status == "complete":
            return
        if outcome.solve_status == "infeasible":
            raise typer.Exit(EXIT_INFEASIBLE)
        if outcome.solve_status == "no_solution":
            raise typer.Exit(EXIT_NO_SOLUTION)
        if outcome.status == "lost":
            raise typer.Exit(EXIT_NOT_WAITING)
        raise typer.Exit(EXIT_INVALID)  # the run's data is not valid input

    @app.command("process-pending", epilog=SERVICE_EXIT_CODES_HELP)
    @planner_errors
    def process_pending_command(
        once: Annotated[bool, typer.Option("--once", help="Solve at most one run, then stop.")] = False,
        worker: Annotated[str | None, typer.Option("--worker", metavar="NAME", help="This worker's name in the runs table (default host:pid).", show_default=False)] = None,
        lease: Annotated[float, typer.Option("--lease", metavar="SECONDS", help="How long each claim holds; a run whose worker died is taken over after it.")] = 300.0,
        threads: Annotated[int | None, typer.Option("--threads", metavar="T", help="Solver threads (default ALLOCATOR_SOLVER_THREADS, else 2).", show_default=False)] = None,
    ) -> None:
        """Solve pending runs until none is left, one line per run on stdout.

        Safe to run many at once, on any number of machines: each run is claimed with
        FOR UPDATE SKIP LOCKED and a lease, so no run is solved twice. A run that fails is
        recorded as failed with its reason; that does not change the exit code.
        """
        from allocator import service
        from allocator.config import get_settings

        _check_lease_threads(lease, threads, worker)
        service.stop_on_sigterm(EXIT_TERMINATED)
        settings = get_settings()
        store = service.open_store(settings)

        def report(outcome) -> None:
            typer.echo(outcome.summary())

        try:
            outcomes = service.process_pending(
                store, worker=worker, once=once, lease_seconds=lease,
                options=service.solve_options(settings, threads=threads), on_outcome=report, on_notice=err,
            )
        finally:
            store.close()
        counts = service.summaries_by_status(outcomes)
        said = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none were pending"
        err(f"Processed {len(outcomes)} run(s): {said}.")
