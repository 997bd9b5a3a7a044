"""``allocator import``, ``export`` and ``template``: runs in and out of the database as files.

The store comes from the configuration (``ALLOCATOR_DATABASE_URL``, else ``SUPABASE_URL`` +
``SUPABASE_KEY``, else the embedded PostgreSQL in ``ALLOCATOR_DATA_DIR``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from allocator.cli.common import (
    SERVICE_EXIT_CODES_HELP,
    CliError,
    err,
    out_path_errors,
    planner_errors,
)


def register(app: typer.Typer) -> None:
    """Add ``import``, ``export`` and ``template`` to ``app``."""

    @app.command("import", epilog=SERVICE_EXIT_CODES_HELP)
    @planner_errors
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
        store = service.open_store()
        try:
            run_id = service.import_snapshot(store, snapshot, organisation_id=organisation, name=name, source_file=file.name)
        finally:
            store.close()
        typer.echo(run_id)
        shown = os.fsencode(file.name).decode("utf-8", errors="replace")  # a file name need not be text
        err(f"Imported {shown} as pending run {run_id}: {len(snapshot.workers)} workers, {len(snapshot.job_lines)} job lines.")

    @app.command("export", epilog=SERVICE_EXIT_CODES_HELP)
    @planner_errors
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
        store = service.open_store()
        try:
            payload = service.export_run(store, run_id, out, fmt)  # type: ignore[arg-type]
        finally:
            store.close()
        if out is None:
            sys.stdout.write(payload if isinstance(payload, str) else payload.decode("utf-8"))
            sys.stdout.flush()
        else:
            err(f"Run {run_id} written to {out}")

    @app.command("template", epilog="Exit codes: 0 written; 2 the file cannot be written.")
    @planner_errors
    def template_command(
        out: Annotated[Path, typer.Option("--out", metavar="FILE.xlsx", help="Where to write the empty workbook.")] = Path("run.xlsx"),
    ) -> None:
        """Write an empty run workbook to fill in, then `allocator import` it."""
        from allocator import service

        errs = out_path_errors(out)
        if out.suffix.lower() != ".xlsx":
            errs.append(f"--out must name an .xlsx file (got {out.name})")
        if errs:
            raise CliError(errs)
        service.write_template(out)
        err(f"Template written to {out}")
