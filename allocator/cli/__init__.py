"""The ``allocator`` command line (typer).

Layout
------
This package holds the app and :func:`main` (the console script); :mod:`.common` the exit
codes, :class:`~.common.CliError`, the one error decorator and the path checks; and one
module per command group, each with a ``register(app)`` that this module calls explicitly:
:mod:`.solve` (``solve``, ``demo``), :mod:`.explain`, :mod:`.data` (``import``, ``export``,
``template``), :mod:`.db`, :mod:`.worker` (``solve-run``, ``process-pending``), :mod:`.api`
and :mod:`.run`. Every command calls :mod:`allocator.service`, never the store or the
database packages (the import-linter contract in ``pyproject.toml`` checks it).

Adding a command
----------------
In its group's module, define a function inside ``register(app)``, decorate it with
``@app.command("name")`` and, under that, ``@planner_errors`` so that invalid input, an
unknown run or an unreachable database become a planner-readable message and an exit code
instead of a traceback; raise :class:`CliError` for other expected failures. Write files
with :func:`allocator.service.write_file_atomically` (or :func:`~.common.emit`). :func:`main`
maps whatever escapes to an exit code, so no command ever prints a traceback unless
``ALLOCATOR_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

from allocator.cli import api, data, db, explain, run, solve, worker
from allocator.cli.common import (
    EXIT_ERROR,
    EXIT_INFEASIBLE,
    EXIT_INVALID,
    EXIT_NO_SOLUTION,
    EXIT_NOT_WAITING,
    EXIT_OK,
    EXIT_TERMINATED,
    CliError,
    err,
    invalid_input_lines,
)

__all__ = [
    "EXIT_ERROR",
    "EXIT_INFEASIBLE",
    "EXIT_INVALID",
    "EXIT_NO_SOLUTION",
    "EXIT_NOT_WAITING",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "CliError",
    "app",
    "main",
]

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

# The order here is the order of `allocator --help`.
for _group in (solve, explain, run, db, data, worker, api):
    _group.register(app)


def main(argv: list[str] | None = None) -> None:
    """The console script: run the app and map every outcome to an exit code, never a traceback.

    typer's standalone mode already turns usage errors (an unknown option, a value of the wrong
    type, a missing argument) into a message and exit 2, and ``typer.Exit`` into its code; what
    reaches the handlers here is invalid input raised outside the commands' error decorator,
    and bugs.
    """
    from allocator.service import SnapshotError

    try:
        app(args=argv, prog_name="allocator", standalone_mode=True)
        code = EXIT_OK
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_ERROR)
        if exc.code is not None and not isinstance(exc.code, int):
            err(str(exc.code))
    except KeyboardInterrupt:
        err("Interrupted.")
        code = 130
    except SnapshotError as exc:  # a command without @planner_errors
        for line in invalid_input_lines(exc.messages):
            err(line)
        code = EXIT_INVALID
    except Exception as exc:  # the last line of defence: a bug, said in one line
        if os.environ.get("ALLOCATOR_DEBUG") == "1":
            traceback.print_exc()
        err(
            f"Unexpected error: {type(exc).__name__}: {exc}\n"
            "This is a bug in the allocator. Run again with ALLOCATOR_DEBUG=1 for the traceback, "
            "and attach the input to a bug report."
        )
        code = EXIT_ERROR
    sys.exit(code)
