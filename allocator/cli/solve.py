"""``allocator solve`` and ``allocator demo``: a snapshot file in, a result or a demo run out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from allocator.cli.common import (
    EXIT_CODES_HELP,
    EXIT_INFEASIBLE,
    EXIT_NO_SOLUTION,
    EXIT_OK,
    CliError,
    emit,
    err,
    finite,
    out_path_errors,
    planner_errors,
    same_file_errors,
    threads_errors,
)

#: The largest demo ``allocator demo`` writes (the demo generator's largest tested size): far
#: beyond it the generator would take the machine's memory before writing anything.
DEMO_MAX_SIZE = 40_000


def solve_flag_errors(
    alpha: float | None,
    power: float | None,
    seed: int | None,
    time_limit: float | None,
    threads: int | None,
) -> list[str]:
    """Planner-readable messages for every bad flag value of ``allocator solve``."""
    errs = []
    if alpha is not None and not (finite(alpha) and 0.0 <= alpha <= 1.0):
        errs.append(f"--alpha must be between 0 and 1 (got {alpha:g})")
    if power is not None and not (finite(power) and 0.0 < power <= 8.0):
        errs.append(f"--power must be greater than 0 and at most 8 (got {power:g})")
    if seed is not None and not (0 <= seed <= 2**63 - 1):
        errs.append(f"--seed must be a whole number from 0 to {2**63 - 1} (got {seed})")
    if time_limit is not None and not (finite(time_limit) and time_limit > 0):
        errs.append(f"--time-limit must be a number of seconds greater than 0 (got {time_limit:g})")
    return errs + threads_errors(threads)


def register(app: typer.Typer) -> None:
    """Add ``solve`` and ``demo`` to ``app``."""

    @app.command("solve", epilog=EXIT_CODES_HELP)
    @planner_errors
    def solve_command(
        snapshot: Annotated[str, typer.Argument(metavar="SNAPSHOT.json", help="The run snapshot (allocator-run/1) to solve.", show_default=False)],
        out: Annotated[Path | None, typer.Option("--out", metavar="RESULT.json", help="Write the result JSON here (atomically) instead of stdout.", show_default=False)] = None,
        alpha: Annotated[float | None, typer.Option("--alpha", metavar="A", help="preferencer_weight: the organisation's share of the objective, 0 to 1.", show_default=False)] = None,
        power: Annotated[float | None, typer.Option("--power", metavar="K", help="preference_power: above 1, low choices hurt more (0 < K <= 8).", show_default=False)] = None,
        seed: Annotated[int | None, typer.Option("--seed", metavar="N", help="rng_seed: picks among equally good allocations.", show_default=False)] = None,
        time_limit: Annotated[float | None, typer.Option("--time-limit", metavar="S", help="max_seconds: solver time limit in seconds.", show_default=False)] = None,
        stable: Annotated[bool | None, typer.Option("--stable/--no-stable", help="stability: forbid blocking pairs (default: the snapshot's setting).", show_default=False)] = None,
        threads: Annotated[int | None, typer.Option("--threads", metavar="T", help="Solver threads (default 2).", show_default=False)] = None,
    ) -> None:
        """Solve a run snapshot and write the result (allocator-result/1).

        Flags override the snapshot's settings. A short summary goes to stderr; the result JSON
        to --out, or stdout without it.
        """
        from allocator import service

        errs = solve_flag_errors(alpha, power, seed, time_limit, threads) + out_path_errors(out)
        errs += same_file_errors(snapshot, out)
        if errs:
            raise CliError(errs)

        # A snapshot is JSON whatever its file is called (/dev/stdin, a pipe's name ...).
        # --time-limit is the run's max_seconds: the one time limit (see SolveOptions).
        snap = service.load_snapshot(snapshot).with_settings(
            preferencer_weight=alpha,
            preference_power=power,
            rng_seed=seed,
            max_seconds=time_limit,
            stability=stable,
        )
        result = service.solve_snapshot(snap, service.solve_options(threads=threads))

        err(result.summary())
        emit(result.to_json(), out)
        if out is not None:
            err(f"Result written to {out}")
        code = {
            "optimal": EXIT_OK,
            "feasible": EXIT_OK,
            "infeasible": EXIT_INFEASIBLE,
            "no_solution": EXIT_NO_SOLUTION,
        }[str(result.status)]
        if code:
            raise typer.Exit(code)

    @app.command("demo", epilog="Exit codes: 0 written; 2 invalid flag values.")
    @planner_errors
    def demo_command(
        out: Annotated[Path | None, typer.Option("--out", metavar="FILE", help="Write the snapshot here (atomically) instead of stdout.", show_default=False)] = None,
        workers: Annotated[int, typer.Option("--workers", metavar="N", help="Number of workers (doctors).")] = 140,
        lines: Annotated[int | None, typer.Option("--lines", metavar="M", help="Number of job lines (default: about 3 workers per line, 60 for 140).", show_default=False)] = None,
        seed: Annotated[int, typer.Option("--seed", metavar="S", help="Seed: the same seed gives the same run.")] = 1234,
    ) -> None:
        """Write a realistic, deterministic demo run snapshot (allocator-run/1)."""
        from allocator import service

        errs = []
        if not 1 <= workers <= DEMO_MAX_SIZE:
            errs.append(f"--workers must be from 1 to {DEMO_MAX_SIZE:,} (got {workers})")
        if lines is not None and not 1 <= lines <= DEMO_MAX_SIZE:
            errs.append(f"--lines must be from 1 to {DEMO_MAX_SIZE:,} (got {lines})")
        if seed < 0:
            errs.append(f"--seed must be a whole number of at least 0 (got {seed})")
        errs += out_path_errors(out)
        if errs:
            raise CliError(errs)

        data = service.demo_snapshot(workers=workers, lines=lines, seed=seed)
        emit(json.dumps(data, indent=2, ensure_ascii=False) + "\n", out)
        where = f" to {out}" if out is not None else ""
        err(f"Demo run {data['run']['id']!r}: {len(data['workers'])} workers, {len(data['job_lines'])} job lines{where}.")
