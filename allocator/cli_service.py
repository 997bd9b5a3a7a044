"""The ``allocator`` commands for runs in the database: import, export, solve, serve.

Registered on :data:`allocator.cli.app` (``allocator.cli`` imports this module). Every
command goes through :mod:`allocator.service`; the store comes from the configuration
(``ALLOCATOR_DATABASE_URL``, else ``SUPABASE_URL`` + ``SUPABASE_KEY``, else the embedded
PostgreSQL in ``ALLOCATOR_DATA_DIR``).

Exit codes
----------
0 done; 1 an unexpected error, or the database could not be reached; 2 invalid input or
configuration (stderr names each offending entry), or an unknown run; 3 the run is
infeasible (its diagnosis is recorded and printed); 4 no allocation within the time limit;
5 the run is not waiting to be solved (another worker holds it, or it is complete); 143
stopped by SIGTERM (``solve-run``, ``process-pending``; ``api`` stops with 0). On SIGTERM as
on Ctrl-C, a command stops the embedded database it started.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import typer

from allocator.cli import (
    EXIT_ERROR,
    EXIT_INFEASIBLE,
    EXIT_INVALID,
    EXIT_NO_SOLUTION,
    CliError,
    app,
    out_path_errors,
    planner_errors,
)

EXIT_NOT_WAITING = 5  # the run is being solved by another worker, or is complete
EXIT_TERMINATED = 143  # stopped by SIGTERM (128 + 15); the embedded server it started is stopped

SERVICE_EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 an unexpected error, or the database could not be reached; "
    "2 invalid input or configuration (stderr names each offending entry), or an unknown run; "
    "3 the run is infeasible (its diagnosis is recorded); "
    "4 no allocation within the time limit; "
    "5 the run is not waiting to be solved (another worker holds it, or it is complete); "
    "143 stopped by SIGTERM (solve-run, process-pending)."
)

db_app = typer.Typer(
    help="The database: apply the migrations, show its address.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(db_app, name="db")


def _err(text: str) -> None:
    typer.echo(text, err=True)


def service_errors(fn):
    """Store, service and configuration errors become a message and an exit code."""

    @functools.wraps(fn)
    @planner_errors
    def wrapper(*args: Any, **kwargs: Any):
        from pydantic import ValidationError

        from allocator.service import ServiceError
        from allocator.store.base import (
            AccessDeniedError,
            InvalidSnapshotError,
            RunBusyError,
            RunNotFoundError,
            ScenarioNotFoundError,
            StoreError,
        )

        try:
            return fn(*args, **kwargs)
        except (RunNotFoundError, ScenarioNotFoundError, AccessDeniedError) as exc:
            raise CliError(str(exc), EXIT_INVALID) from None
        except RunBusyError as exc:
            raise CliError(str(exc), EXIT_NOT_WAITING) from None
        except InvalidSnapshotError as exc:
            raise CliError(["Invalid input:", *(f"  - {m}" for m in exc.message.splitlines())], EXIT_INVALID) from None
        except ServiceError as exc:
            raise CliError(str(exc), EXIT_INVALID) from None
        except StoreError as exc:
            raise CliError(f"Database error: {exc}", EXIT_ERROR) from None
        except ValidationError as exc:
            raise CliError(_settings_messages(exc), EXIT_INVALID) from None

    return wrapper


def _settings_messages(exc: Any) -> list[str]:
    lines = ["Invalid configuration (environment, .env or .streamlit/secrets.toml):"]
    for e in exc.errors(include_url=False):
        where = ".".join(str(x) for x in e["loc"]) or "settings"
        lines.append(f"  - {where.upper()}: {e['msg']}")
    return lines


def _settings():
    from allocator.config import get_settings

    return get_settings()


def _store(settings=None):
    from allocator import service

    return service.open_store(settings or _settings())


def _options(threads: int | None, settings=None):
    from allocator.solvers.base import SolveOptions

    threads = threads or (settings.solver_threads if settings is not None else None)
    return SolveOptions() if threads is None else SolveOptions(threads=threads)


# -- allocator db ---------------------------------------------------------------------------


def mask_password(url: str) -> str:
    """The URI with its password (in the authority or a ``password=`` parameter) as ``****``.

    Only the password changes; the rest of the text is kept as given.
    """
    parts = urlsplit(url)
    out = url
    if parts.password:
        userinfo, _, _host = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        start = url.index(parts.netloc)
        out = url[:start] + f"{user}:****@{_host}" + url[start + len(parts.netloc):]
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(k == "password" for k, _ in pairs):
            masked = urlencode(
                [(k, "****" if k == "password" else v) for k, v in pairs], safe="*/", quote_via=quote
            )
            head, _, rest = out.partition("?")
            fragment = ("#" + rest.split("#", 1)[1]) if "#" in rest else ""
            out = f"{head}?{masked}{fragment}"
    return out


@db_app.command("migrate", epilog=SERVICE_EXIT_CODES_HELP)
@service_errors
def db_migrate_command() -> None:
    """Apply the migrations in supabase/migrations that the database lacks (safe to repeat)."""
    from allocator.config import store_choice

    settings = _settings()
    choice = store_choice(settings)
    if choice == "supabase":
        raise CliError(
            "A Supabase project reached through its REST API (SUPABASE_URL) is migrated with "
            "`supabase db push`, or set ALLOCATOR_DATABASE_URL to its connection string."
        )
    from allocator.db.migrate import migrate

    if choice == "database_url":
        url = settings.database_url.get_secret_value()  # type: ignore[union-attr]
        applied = _migrate(migrate, url)
    else:
        from allocator.db.embedded import create_database, start_server

        url = create_database(start_server(settings.resolved_data_dir))
        applied = _migrate(migrate, url)
    where = mask_password(url)
    if applied:
        _err(f"Applied {len(applied)} migration(s) to {where}: {', '.join(applied)}")
    else:
        _err(f"{where} is up to date.")


def _migrate(migrate, url: str) -> list[str]:
    import psycopg

    from allocator.store.base import error_from_sqlstate

    try:
        return migrate(url)
    except psycopg.Error as exc:
        raise error_from_sqlstate(exc.sqlstate, f"{type(exc).__name__}: {str(exc).strip()}") from None


@db_app.command("url", epilog=SERVICE_EXIT_CODES_HELP)
@service_errors
def db_url_command(
    show_password: Annotated[bool, typer.Option("--show-password", help="Print the password too (it is masked by default).")] = False,
) -> None:
    """Print the address of the database in use (starts the embedded one when that is it)."""
    from allocator.config import store_choice

    settings = _settings()
    choice = store_choice(settings)
    if choice == "database_url":
        url = settings.database_url.get_secret_value()  # type: ignore[union-attr]
    elif choice == "supabase":
        url = str(settings.supabase_url)
        _err("Supabase project over its REST API (SUPABASE_URL); its key is not printed.")
    else:
        from allocator.db.embedded import ensure_database

        url = ensure_database(settings)
        _err(f"The embedded database in {settings.resolved_data_dir} (it stops when no process uses it).")
    typer.echo(url if show_password else mask_password(url))


# -- import / export / template --------------------------------------------------------------


@app.command("import", epilog=SERVICE_EXIT_CODES_HELP)
@service_errors
def import_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A run snapshot (.json) or a workbook (.xlsx).", show_default=False)],
    name: Annotated[str | None, typer.Option("--name", help="The run's name (default: the snapshot's).", show_default=False)] = None,
    organisation: Annotated[str | None, typer.Option("--organisation", metavar="ID", help="The organisation to import into (needed when there are several).", show_default=False)] = None,
) -> None:
    """Store a run snapshot or workbook as a new pending run; print only its run id."""
    from allocator import service
    from allocator.snapshot import name_problem

    problem = name_problem(name) if name is not None else None
    if problem:
        raise CliError(f"--name: the name {problem}")
    snapshot = service.read_snapshot_file(file)  # validate before opening the database
    store = _store()
    try:
        run_id = store.import_snapshot(snapshot, organisation_id=organisation, name=name, source_file=file.name)
    finally:
        store.close()
    typer.echo(run_id)
    _err(f"Imported {file.name} as pending run {run_id}: {len(snapshot.workers)} workers, {len(snapshot.job_lines)} job lines.")


@app.command("export", epilog=SERVICE_EXIT_CODES_HELP)
@service_errors
def export_command(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to export.", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", metavar="FILE", help="Write here (atomically) instead of stdout.", show_default=False)] = None,
    format: Annotated[str | None, typer.Option("--format", metavar="json|xlsx", help="Default: from --out's extension, else json.", show_default=False)] = None,
) -> None:
    """Write a run's snapshot as JSON or as a workbook (imports back unchanged)."""
    from allocator import service

    errs = out_path_errors(out)
    if format is not None and format.lower() not in ("json", "xlsx"):
        errs.append(f"--format must be json or xlsx (got {format!r})")
    fmt = (format or ("xlsx" if out is not None and out.suffix.lower() == ".xlsx" else "json")).lower()
    if fmt == "xlsx" and out is None:
        errs.append("--format xlsx needs --out FILE: a workbook is not written to the terminal")
    if errs:
        raise CliError(errs)
    store = _store()
    try:
        payload = service.export_run(store, run_id, out, fmt)  # type: ignore[arg-type]
    finally:
        store.close()
    if out is None:
        sys.stdout.write(payload if isinstance(payload, str) else payload.decode("utf-8"))
        sys.stdout.flush()
    else:
        _err(f"Run {run_id} written to {out}")


@app.command("template", epilog="Exit codes: 0 written; 2 the file cannot be written.")
@planner_errors
def template_command(
    out: Annotated[Path, typer.Option("--out", metavar="FILE.xlsx", help="Where to write the empty workbook.")] = Path("run.xlsx"),
) -> None:
    """Write an empty run workbook to fill in, then `allocator import` it."""
    errs = out_path_errors(out)
    if out.suffix.lower() != ".xlsx":
        errs.append(f"--out must name an .xlsx file (got {out.name})")
    if errs:
        raise CliError(errs)
    import io

    from allocator.service import ServiceError, write_file_atomically
    from allocator.workbook import write_template

    buf = io.BytesIO()
    write_template(buf)
    try:
        write_file_atomically(out, buf.getvalue())
    except ServiceError as exc:
        raise CliError(str(exc)) from None
    _err(f"Template written to {out}")


# -- headless solving -----------------------------------------------------------------------


@app.command("solve-run", epilog=SERVICE_EXIT_CODES_HELP)
@service_errors
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
    from allocator.db.embedded import stop_on_sigterm

    _check_lease_threads(lease, threads)
    stop_on_sigterm(EXIT_TERMINATED)
    settings = _settings()
    store = _store(settings)
    try:
        try:
            outcome = service.solve_run(
                store, run_id, worker=worker, options=_options(threads, settings), lease_seconds=lease
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
@service_errors
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
    from allocator.db.embedded import stop_on_sigterm

    _check_lease_threads(lease, threads)
    stop_on_sigterm(EXIT_TERMINATED)
    settings = _settings()
    store = _store(settings)

    def report(outcome) -> None:
        typer.echo(outcome.summary())

    try:
        outcomes = service.process_pending(
            store, worker=worker, once=once, lease_seconds=lease,
            options=_options(threads, settings), on_outcome=report, on_notice=_err,
        )
    finally:
        store.close()
    counts = service.summaries_by_status(outcomes)
    said = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "none were pending"
    _err(f"Processed {len(outcomes)} run(s): {said}.")


def _check_lease_threads(lease: float, threads: int | None) -> None:
    errs = []
    if not (lease > 0 and lease < float("inf")):
        errs.append(f"--lease must be a number of seconds greater than 0 (got {lease:g})")
    if threads is not None and threads < 1:
        errs.append(f"--threads must be at least 1 (got {threads})")
    if errs:
        raise CliError(errs)


# -- allocator api --------------------------------------------------------------------------


@app.command(
    "api",
    epilog="Exit codes: 0 stopped (Ctrl-C or SIGTERM; the embedded database it started stops too); "
    "2 no ALLOCATOR_API_KEY configured, a key shorter than 16 characters, or bad flags.",
)
@service_errors
def api_command(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
) -> None:
    """Serve the HTTP API (health, solve a run, process pending runs; docs at /docs)."""
    from allocator.api import api_key_problem

    settings = _settings()
    problem = api_key_problem(settings.api_key.get_secret_value() if settings.api_key else None)
    if problem:
        raise CliError(problem)
    if not 0 < port < 65536:
        raise CliError(f"--port must be between 1 and 65535 (got {port})")
    import uvicorn

    from allocator.api import create_app
    from allocator.db.embedded import stop_on_sigterm

    # uvicorn stops gracefully on SIGTERM, then raises the signal again: end with exit
    # handlers (they stop the embedded server), not by SIGTERM's default action.
    stop_on_sigterm(0)
    _err(f"Serving the allocator API on http://{host}:{port} (docs at /docs).")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
