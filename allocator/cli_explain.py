"""``allocator explain``: why a worker did not get each higher choice, at what price (explanations.md).

Registered on :data:`allocator.cli.app` (``allocator.cli`` imports this module). Exit codes as
``allocator solve``: 0 explained; 1 an unexpected error, or the database cannot be reached;
2 invalid input (an unknown worker id included), nothing written; 3 the run is infeasible (the
diagnosis goes to stderr); 4 no allocation found within the time limit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from allocator.cli import (
    EXIT_INFEASIBLE,
    EXIT_NO_SOLUTION,
    CliError,
    app,
    emit,
    out_path_errors,
)


def service_errors(fn):
    """:func:`allocator.cli_service.service_errors`, looked up when the command runs (until the
    command line becomes one package, ``cli_service`` may still be importing when this registers)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from allocator.cli_service import service_errors as translate

        return translate(fn)(*args, **kwargs)

    return wrapper

EXPLAIN_EXIT_CODES_HELP = (
    "Exit codes: 0 explained; 1 an unexpected error, or the database cannot be reached; "
    "2 invalid input, an unknown worker or run (stderr names it; nothing is written); "
    "3 infeasible (stderr carries the diagnosis); 4 no allocation found within the time limit."
)


def _err(text: str) -> None:
    typer.echo(text, err=True)


@app.command("explain", epilog=EXPLAIN_EXIT_CODES_HELP)
@service_errors
def explain_command(
    snapshot: Annotated[str | None, typer.Argument(metavar="SNAPSHOT.json", help="The run snapshot to solve and explain (or give --run).", show_default=False)] = None,
    worker: Annotated[str | None, typer.Option("--worker", metavar="ID", help="The worker (doctor) to explain.", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", metavar="FILE", help="Write here (atomically) instead of stdout.", show_default=False)] = None,
    run: Annotated[str | None, typer.Option("--run", metavar="RUN_ID", help="Explain a run stored in the database (its stored allocation, or a fresh solve).", show_default=False)] = None,
    all_workers: Annotated[bool, typer.Option("--all", help="Every worker's statement at once (needs --format and --out, except json to stdout).")] = False,
    format: Annotated[str | None, typer.Option("--format", metavar="pdf|zip|json|xlsx", help="With --all: one PDF (a page per worker), a ZIP of per-worker files, or one table.", show_default=False)] = None,
    threads: Annotated[int | None, typer.Option("--threads", metavar="T", help="Solver threads (default 2).", show_default=False)] = None,
) -> None:
    """Explain one worker's allocation (allocator-explain/1), or every worker's with --all.

    For each line the worker ranked higher than the one they got: exactly one reason
    (ineligible, forbidden, pinned, price, impossible) and, for a price, the exact increase
    of the total dissatisfaction if they had it, and who would move.
    """
    from allocator.explain import ExplainError
    from allocator.solvers.base import SolveOptions, Status
    from allocator.statements import FORMATS

    errs = out_path_errors(out)
    if (snapshot is None) == (run is None):
        errs.append("Give either a snapshot file or --run RUN_ID (one of them).")
    if all_workers and worker is not None:
        errs.append("Give --worker ID or --all, not both.")
    if not all_workers and worker is None:
        errs.append("Give --worker ID (the worker to explain), or --all for every worker.")
    fmt = (format or "json").lower()
    if format is not None and not all_workers:
        errs.append("--format is for --all; one worker's explanation is JSON.")
    if all_workers and fmt not in FORMATS:
        errs.append(f"--format must be one of {', '.join(FORMATS)} (got {format!r})")
    if all_workers and fmt != "json" and out is None:
        errs.append(f"--format {fmt} needs --out FILE: it is not written to the terminal")
    if threads is not None and threads < 1:
        errs.append(f"--threads must be at least 1 (got {threads})")
    if errs:
        raise CliError(errs)
    options = SolveOptions() if threads is None else SolveOptions(threads=threads)

    from allocator import explain, service

    if run is not None:
        store = service.open_store()
        try:
            if all_workers:
                result, explanation = service.run_result(store, run, options), None
            else:
                result, explanation = service.explain_run(store, run, worker, options)  # type: ignore[arg-type]
        finally:
            store.close()
    else:
        snap = service.read_snapshot_file(snapshot)  # type: ignore[arg-type]
        if worker is not None and worker not in {w.id for w in snap.workers}:
            raise CliError(f"There is no worker (doctor) with id {worker!r} in run {snap.run.id!r}.")
        result = service.solve_snapshot(snap, options)
        explanation = None
        if result.has_allocation and worker is not None:
            try:
                explanation = explain.explain_worker(result, worker, options=options)
            except ExplainError as exc:
                raise CliError(str(exc)) from None

    if not result.has_allocation:
        _err(result.summary())
        raise typer.Exit(EXIT_INFEASIBLE if result.status == Status.INFEASIBLE else EXIT_NO_SOLUTION)

    if all_workers:
        from allocator.statements import build_statements, statements_file

        statements = build_statements(result, options=options)
        payload = statements_file(result, fmt, statements)
        if out is None:
            emit(payload.decode("utf-8"), None)
        else:
            service.write_file_atomically(out, payload)
            _err(f"Statements of {len(statements)} workers written to {out}")
        return

    assert explanation is not None
    emit(json.dumps(explanation, indent=2, ensure_ascii=False) + "\n", out)
    n = len(explanation["higher_choices"])
    _err(
        f"Worker {explanation['worker_id']!r} is on {explanation['job_line_id']!r}; "
        f"{n} higher {'choice' if n == 1 else 'choices'} explained"
        + (f", written to {out}." if out is not None else ".")
    )
