"""The ``allocator`` command line (typer).

Adding a command
----------------
Define a function, decorate it with ``@app.command("name")`` and, under that,
``@planner_errors`` so that invalid input becomes a planner-readable message and exit code 2
instead of a traceback; raise :class:`CliError` for other expected failures. A group of
commands (like ``db``) is its own ``typer.Typer()`` added with ``app.add_typer(group, name=...)``.
Write files with :func:`write_atomic`. :func:`main` (the console script) maps whatever escapes
to an exit code, so no command ever prints a traceback unless ``ALLOCATOR_DEBUG=1``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer

from allocator.snapshot import SnapshotError

# Exit codes (run-snapshot.md).
EXIT_OK = 0  # an allocation (optimal, or feasible when the time limit cut the proof)
EXIT_ERROR = 1  # an unexpected error (a bug): short message, traceback with ALLOCATOR_DEBUG=1
EXIT_INVALID = 2  # invalid input: stderr names each offending entry; nothing is written
EXIT_INFEASIBLE = 3  # infeasible: stderr and the result JSON carry the diagnosis
EXIT_NO_SOLUTION = 4  # no allocation found within the time limit

EXIT_CODES_HELP = (
    "Exit codes: 0 an allocation (optimal, or feasible when the time limit cut the proof); "
    "1 an unexpected error; "
    "2 invalid input (stderr names each offending entry; nothing is written to --out); "
    "3 infeasible (stderr and the result JSON carry the diagnosis); "
    "4 no allocation found within the time limit."
)

app = typer.Typer(
    name="allocator",
    help="Exact, explained allocation of workers (junior doctors) to job lines.",
    epilog=(
        "Exit codes: 0 done; 1 an unexpected error or an unreachable database; "
        "2 invalid input or configuration (each offending entry is named), or an unknown run; "
        "3 infeasible (with a diagnosis); 4 no allocation found within the time limit; "
        "5 the run is not waiting to be solved. Each command's --help lists its own."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class CliError(Exception):
    """An expected failure: ``messages`` go to stderr, one per line, and the exit code is ``code``."""

    def __init__(self, messages: str | list[str], code: int = EXIT_INVALID):
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        self.code = code
        super().__init__("\n".join(self.messages))


def _err(text: str) -> None:
    typer.echo(text, err=True)


def planner_errors(fn):
    """Turn invalid input (:class:`SnapshotError`, :class:`CliError`) into stderr lines and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except SnapshotError as exc:
            _err("Invalid input:")
            for msg in exc.messages:
                _err(f"  - {msg}")
            raise typer.Exit(EXIT_INVALID) from None
        except CliError as exc:
            for msg in exc.messages:
                _err(msg)
            raise typer.Exit(exc.code) from None

    return wrapper


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or Path("."))
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def out_path_errors(out: Path | None, flag: str = "--out") -> list[str]:
    """Why ``out`` cannot be written (checked before any work is done); empty when it can."""
    if out is None:
        return []
    if out.is_dir():
        return [f"{flag}: {out} is a folder; give a file name"]
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return [f"{flag}: the folder {parent} does not exist"]
    if not os.access(parent, os.W_OK):
        return [f"{flag}: cannot write to the folder {parent}"]
    return []


def emit(text: str, out: Path | None) -> None:
    """``text`` to ``out`` (atomically) or to stdout."""
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomic(out, text)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def solve_flag_errors(
    alpha: float | None,
    power: float | None,
    seed: int | None,
    time_limit: float | None,
    threads: int | None,
) -> list[str]:
    """Planner-readable messages for every bad flag value of ``allocator solve``."""
    errs = []
    if alpha is not None and not (_finite(alpha) and 0.0 <= alpha <= 1.0):
        errs.append(f"--alpha must be between 0 and 1 (got {alpha:g})")
    if power is not None and not (_finite(power) and 0.0 < power <= 8.0):
        errs.append(f"--power must be greater than 0 and at most 8 (got {power:g})")
    if seed is not None and not (0 <= seed <= 2**63 - 1):
        errs.append(f"--seed must be a whole number from 0 to {2**63 - 1} (got {seed})")
    if time_limit is not None and not (_finite(time_limit) and time_limit > 0):
        errs.append(f"--time-limit must be a number of seconds greater than 0 (got {time_limit:g})")
    if threads is not None and threads < 1:
        errs.append(f"--threads must be at least 1 (got {threads})")
    return errs


# -- allocator solve -------------------------------------------------------------------------


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
    errs = solve_flag_errors(alpha, power, seed, time_limit, threads) + out_path_errors(out)
    if errs:
        raise CliError(errs)

    from allocator import engine
    from allocator.snapshot import load_snapshot
    from allocator.solvers.base import SolveOptions, Status

    snap = load_snapshot(snapshot).with_settings(
        preferencer_weight=alpha,
        preference_power=power,
        rng_seed=seed,
        max_seconds=time_limit,
        stability=stable,
    )
    options = SolveOptions() if threads is None else SolveOptions(threads=threads)
    result = engine.solve(snap, options)

    _err(result.summary())
    emit(result.to_json(), out)
    if out is not None:
        _err(f"Result written to {out}")
    code = {
        Status.OPTIMAL: EXIT_OK,
        Status.FEASIBLE: EXIT_OK,
        Status.INFEASIBLE: EXIT_INFEASIBLE,
        Status.NO_SOLUTION: EXIT_NO_SOLUTION,
    }[result.status]
    if code:
        raise typer.Exit(code)


# -- allocator demo --------------------------------------------------------------------------


@app.command("demo", epilog="Exit codes: 0 written; 2 invalid flag values.")
@planner_errors
def demo_command(
    out: Annotated[Path | None, typer.Option("--out", metavar="FILE", help="Write the snapshot here (atomically) instead of stdout.", show_default=False)] = None,
    workers: Annotated[int, typer.Option("--workers", metavar="N", help="Number of workers (doctors).")] = 140,
    lines: Annotated[int | None, typer.Option("--lines", metavar="M", help="Number of job lines (default: about 3 workers per line, 60 for 140).", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="S", help="Seed: the same seed gives the same run.")] = 1234,
) -> None:
    """Write a realistic, deterministic demo run snapshot (allocator-run/1)."""
    errs = []
    if workers < 1:
        errs.append(f"--workers must be at least 1 (got {workers})")
    if lines is not None and lines < 1:
        errs.append(f"--lines must be at least 1 (got {lines})")
    if seed < 0:
        errs.append(f"--seed must be a whole number of at least 0 (got {seed})")
    errs += out_path_errors(out)
    if errs:
        raise CliError(errs)

    from allocator.demo import demo_snapshot
    from allocator.snapshot import RunSnapshot

    data = demo_snapshot(workers=workers, lines=lines, seed=seed)
    # The generator promises a valid run; check it here so that a bug never reaches a planner's file.
    RunSnapshot.parse(data)
    emit(json.dumps(data, indent=2, ensure_ascii=False) + "\n", out)
    where = f" to {out}" if out is not None else ""
    _err(f"Demo run {data['run']['id']!r}: {len(data['workers'])} workers, {len(data['job_lines'])} job lines{where}.")


# -- entry point -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """The console script: run the app and map every outcome to an exit code, never a traceback.

    typer's standalone mode already turns usage errors (an unknown option, a value of the wrong
    type, a missing argument) into a message and exit 2, and ``typer.Exit`` into its code; what
    reaches the handlers here is invalid input raised outside :func:`planner_errors` and bugs.
    """
    try:
        app(args=argv, prog_name="allocator", standalone_mode=True)
        code = EXIT_OK
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_ERROR)
        if exc.code is not None and not isinstance(exc.code, int):
            _err(str(exc.code))
    except KeyboardInterrupt:
        _err("Interrupted.")
        code = 130
    except SnapshotError as exc:  # a command without @planner_errors
        _err("Invalid input:")
        for msg in exc.messages:
            _err(f"  - {msg}")
        code = EXIT_INVALID
    except Exception as exc:  # the last line of defence: a bug, said in one line
        if os.environ.get("ALLOCATOR_DEBUG") == "1":
            traceback.print_exc()
        _err(
            f"Unexpected error: {type(exc).__name__}: {exc}\n"
            "This is a bug in the allocator. Run again with ALLOCATOR_DEBUG=1 for the traceback, "
            "and attach the input to a bug report."
        )
        code = EXIT_ERROR
    sys.exit(code)


# The other command groups register themselves on `app` (this package layout is reworked by
# the structure issue: allocator/cli/ with one module per group).
from allocator import cli_explain  # noqa: E402,F401,I001  (explain)
from allocator import cli_run  # noqa: E402,F401,I001  (run withdraw|add-worker|set-line|log)
from allocator import cli_service  # noqa: E402,F401,I001  (db, import, export, template, solve-run, process-pending, api)
