"""``allocator explain``: why a worker did not get each higher choice, at what price (explanations.md).

Exit codes as ``allocator solve``: 0 explained; 1 an unexpected error, or the database cannot
be reached; 2 invalid input (an unknown worker id included), nothing written; 3 the run is
infeasible (the diagnosis goes to stderr); 4 no allocation found within the time limit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from allocator.cli.common import (
    EXIT_INFEASIBLE,
    EXIT_NO_SOLUTION,
    CliError,
    emit,
    err,
    out_path_errors,
    planner_errors,
    same_file_errors,
    threads_errors,
)

EXPLAIN_EXIT_CODES_HELP = (
    "Exit codes: 0 explained; 1 an unexpected error, or the database cannot be reached; "
    "2 invalid input, an unknown worker or run (stderr names it; nothing is written); "
    "3 infeasible (stderr carries the diagnosis); 4 no allocation found within the time limit."
)


def register(app: typer.Typer) -> None:
    """Add ``explain`` to ``app``."""

    @app.command("explain", epilog=EXPLAIN_EXIT_CODES_HELP)
    @planner_errors
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
        from allocator import service
        from allocator.statements import FORMATS

        errs = out_path_errors(out) + same_file_errors(snapshot, out)
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
        errs += threads_errors(threads)
        if errs:
            raise CliError(errs)
        options = service.solve_options(threads=threads)

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
            result, explanation = service.explain_snapshot(snap, worker, options)

        if not result.has_allocation:
            err(result.summary())
            raise typer.Exit(EXIT_INFEASIBLE if str(result.status) == "infeasible" else EXIT_NO_SOLUTION)

        if all_workers:
            payload, n = service.statements_payload(result, fmt, options)
            if out is None:
                emit(payload.decode("utf-8"), None)
            else:
                service.write_file_atomically(out, payload)
                err(f"Statements of {n} workers written to {out}")
            return

        assert explanation is not None
        emit(json.dumps(explanation, indent=2, ensure_ascii=False) + "\n", out)
        n = len(explanation["higher_choices"])
        err(
            f"Worker {explanation['worker_id']!r} is on {explanation['job_line_id']!r}; "
            f"{n} higher {'choice' if n == 1 else 'choices'} explained"
            + (f", written to {out}." if out is not None else ".")
        )
