"""What every ``allocator`` command shares: exit codes, the one error decorator, path checks, output.

A command module imports from here and from :mod:`allocator.service`, never from the store
or the database packages (the import-linter contract in ``pyproject.toml`` checks it).
"""

from __future__ import annotations

import functools
import math
import os
import sys
from pathlib import Path
from typing import Any

import typer

# Exit codes (run-snapshot.md).
EXIT_OK = 0  # an allocation (optimal, or feasible when the time limit cut the proof)
EXIT_ERROR = 1  # an unexpected error (a bug) or an unreachable database
EXIT_INVALID = 2  # invalid input: stderr names each offending entry; nothing is written
EXIT_INFEASIBLE = 3  # infeasible: stderr and the result JSON carry the diagnosis
EXIT_NO_SOLUTION = 4  # no allocation found within the time limit
EXIT_NOT_WAITING = 5  # the run is being solved by another worker, or is complete
EXIT_TERMINATED = 143  # stopped by SIGTERM (128 + 15); the embedded server it started is stopped

EXIT_CODES_HELP = (
    "Exit codes: 0 an allocation (optimal, or feasible when the time limit cut the proof); "
    "1 an unexpected error; "
    "2 invalid input (stderr names each offending entry; nothing is written to --out); "
    "3 infeasible (stderr and the result JSON carry the diagnosis); "
    "4 no allocation found within the time limit."
)

SERVICE_EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 an unexpected error, or the database could not be reached; "
    "2 invalid input or configuration (stderr names each offending entry), or an unknown run; "
    "3 the run is infeasible (its diagnosis is recorded); "
    "4 no allocation within the time limit; "
    "5 the run is not waiting to be solved (another worker holds it, or it is complete); "
    "143 stopped by SIGTERM (solve-run, process-pending)."
)


def group(help: str) -> typer.Typer:
    """A command group (``allocator db ...``, ``allocator run ...``) configured like the app."""
    return typer.Typer(
        help=help,
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


def err(text: str) -> None:
    """One line to stderr."""
    typer.echo(text, err=True)


def invalid_input_lines(messages: list[str] | tuple[str, ...]) -> list[str]:
    """Invalid input as the command line says it: a heading, then one entry per line."""
    return ["Invalid input:", *(f"  - {m}" for m in messages)]


def planner_errors(fn):
    """The one error decorator of every command: what a planner can act on becomes stderr
    lines and an exit code, never a traceback.

    Invalid input (a snapshot's, a store's refusal of it) and an unknown run, scenario or
    forbidden access exit 2; a run another worker holds exits 5; an unreachable or failing
    database exits 1; invalid configuration (environment, ``.env``, ``secrets.toml``) exits 2.
    Raise :class:`CliError` for any other expected failure.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        from pydantic import ValidationError

        from allocator import service

        try:
            try:
                return fn(*args, **kwargs)
            except service.SnapshotError as exc:
                raise CliError(invalid_input_lines(exc.messages)) from None
            except (service.RunNotFoundError, service.ScenarioNotFoundError, service.AccessDeniedError) as exc:
                raise CliError(str(exc), EXIT_INVALID) from None
            except service.RunBusyError as exc:
                raise CliError(str(exc), EXIT_NOT_WAITING) from None
            except service.InvalidSnapshotError as exc:
                raise CliError(invalid_input_lines(exc.message.splitlines()), EXIT_INVALID) from None
            except service.ServiceError as exc:
                raise CliError(str(exc), EXIT_INVALID) from None
            except service.ConfigurationError as exc:
                raise CliError([CONFIG_HEADING, f"  - {exc.setting}: {exc}"], EXIT_INVALID) from None
            except service.StoreError as exc:
                raise CliError(f"Database error: {exc}", EXIT_ERROR) from None
            except ValidationError as exc:  # the configuration (pydantic settings)
                raise CliError(_config_messages(exc), EXIT_INVALID) from None
        except CliError as exc:
            for msg in exc.messages:
                err(msg)
            raise typer.Exit(exc.code) from None

    return wrapper


CONFIG_HEADING = "Invalid configuration (environment, .env or .streamlit/secrets.toml):"


def _config_messages(exc: Any) -> list[str]:
    from allocator.config import configuration_problems

    return [CONFIG_HEADING] + [f"  - {line}" for line in configuration_problems(exc)]


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


def same_file_errors(source: str | Path | None, out: Path | None, flag: str = "--out") -> list[str]:
    """Refuse an ``out`` that is the input file itself: the result would replace the planner's input."""
    if source is None or out is None:
        return []
    try:
        same = os.path.samefile(source, out)
    except OSError:  # one of them does not exist (yet): not the same file
        return []
    if same:
        return [f"{flag}: {out} is the input file itself; give another file name (it would be replaced)"]
    return []


def finite(x: float | None) -> bool:
    """``x`` is a number, not NaN or infinite."""
    return x is not None and math.isfinite(x)


def threads_errors(threads: int | None) -> list[str]:
    """The ``--threads`` flag's problem, said in the flag's words (the options check it too)."""
    if threads is not None and threads < 1:
        return [f"--threads must be at least 1 (got {threads})"]
    return []


def emit(text: str, out: Path | None) -> None:
    """``text`` to ``out`` (atomically, :func:`allocator.service.write_file_atomically`) or to stdout."""
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from allocator import service

        service.write_file_atomically(out, text)
