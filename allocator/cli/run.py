"""``allocator run ...``: change a stored run's data, each change logged with who and why.

Every command goes through :mod:`allocator.service` and one SQL function, so a change is
whole or not at all; each moves the run's inputs version, so scenarios saved before the
change are stale (solve them again before publishing).

Exit codes
----------
0 done; 1 an unexpected error, or the database could not be reached; 2 invalid input (the
message names the worker or line), a missing reason, or an unknown run.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from allocator.cli.common import CliError, group, planner_errors

RUN_EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 an unexpected error, or the database could not be reached; "
    "2 invalid input (the worker or line is named), a missing reason, or an unknown run."
)


ReasonOption = Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why (required): kept in the run's change log.", show_default=False)]
ByOption = Annotated[
    str | None,
    typer.Option("--by", metavar="NAME", help="Who is making the change (default ALLOCATOR_PLANNER_NAME, else your user name).", show_default=False),
]
RunIdArgument = Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to change.", show_default=False)]


def _who(by: str | None) -> str | None:
    """The name recorded with a change. Through a Supabase API key the database records
    the caller itself (and would refuse another name), so nothing is passed there."""
    from allocator.config import get_settings, store_choice

    if store_choice(get_settings()) == "supabase":
        return by
    if by and by.strip():
        return by.strip()
    given = os.environ.get("ALLOCATOR_PLANNER_NAME", "").strip()
    if given:
        return given
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment: the database names its role
        return None


def _done(change) -> None:
    from allocator import service

    typer.echo(service.change_words(change))
    typer.echo(
        "Scenarios saved before this change are now out of date: solve them again before publishing.",
        err=True,
    )


def register(app: typer.Typer) -> None:
    """Add the ``run`` group to ``app``."""
    run_app = group("Change a stored run's data: withdraw a worker, add a late worker, change a line; show its change log.")
    app.add_typer(run_app, name="run")

    @run_app.command("withdraw", epilog=RUN_EXIT_CODES_HELP)
    @planner_errors
    def withdraw_command(
        run_id: RunIdArgument,
        worker_id: Annotated[str, typer.Argument(metavar="WORKER_ID", help="The worker to take out of the run.", show_default=False)],
        reason: ReasonOption,
        by: ByOption = None,
    ) -> None:
        """Withdraw a worker from a run (their data and the run's history stay)."""
        from allocator import service

        store = service.open_store()
        try:
            change = service.withdraw_worker(store, run_id, worker_id, reason=reason, changed_by=_who(by))
        finally:
            store.close()
        _done(change)


    @run_app.command("add-worker", epilog=RUN_EXIT_CODES_HELP)
    @planner_errors
    def add_worker_command(
        run_id: RunIdArgument,
        worker_id: Annotated[str, typer.Argument(metavar="WORKER_ID", help="The late worker's id (new to the run).", show_default=False)],
        reason: ReasonOption,
        name: Annotated[str, typer.Option("--name", metavar="NAME", help="The worker's name.")] = "",
        tags: Annotated[str, typer.Option("--tags", metavar="TAG,TAG", help="Their tags (qualifications), comma-separated.")] = "",
        ranks: Annotated[
            str,
            typer.Option("--ranks", metavar="LINE,LINE|LINE=R,...", help="The job lines they rank: in order of preference (j3,j1,j2), or with ranks (j3=1,j1=1,j2=2)."),
        ] = "",
        by: ByOption = None,
        priority: Annotated[int | None, typer.Option("--priority", metavar="N", help="Their priority: 1 is placed first, then 2, ...; leave out to place them last.", show_default=False)] = None,
    ) -> None:
        """Add a late worker to a run, with their tags and the lines they rank."""
        from allocator import service

        worker = service.late_worker(worker_id, name, tags, ranks, priority)
        store = service.open_store()
        try:
            change = service.add_worker(store, run_id, worker, reason=reason, changed_by=_who(by))
        finally:
            store.close()
        _done(change)


    @run_app.command("set-line", epilog=RUN_EXIT_CODES_HELP)
    @planner_errors
    def set_line_command(
        run_id: RunIdArgument,
        line_id: Annotated[str, typer.Argument(metavar="LINE_ID", help="The job line to change.", show_default=False)],
        reason: ReasonOption,
        places: Annotated[int | None, typer.Option("--places", metavar="N", help="Its places (0 or more).", show_default=False)] = None,
        must_fill: Annotated[bool | None, typer.Option("--must-fill/--no-must-fill", help="Whether it must be filled.", show_default=False)] = None,
        by: ByOption = None,
        site: Annotated[str | None, typer.Option("--site", metavar="SITE", help="Its site (the hospital its workers work at).", show_default=False)] = None,
        own_site: Annotated[bool, typer.Option("--own-site", help="Make it a site of its own (no shared site).")] = False,
    ) -> None:
        """Change a job line's places, whether it must be filled, and/or its site."""
        from allocator import service

        if places is None and must_fill is None and site is None and not own_site:
            raise CliError(
                f"Job line {line_id!r}: say what to change with --places N, --must-fill / --no-must-fill, "
                "--site SITE or --own-site."
            )
        store = service.open_store()
        try:
            change = service.set_job_line(
                store, run_id, line_id, reason=reason, max_n_workers=places, must_have_workers=must_fill,
                changed_by=_who(by), site=site, clear_site=own_site,
            )
        finally:
            store.close()
        _done(change)


    @run_app.command("log", epilog=RUN_EXIT_CODES_HELP)
    @planner_errors
    def log_command(run_id: RunIdArgument) -> None:
        """Print the run's change log, oldest first: when, who, what and why (tab-separated)."""
        from allocator import service

        store = service.open_store()
        try:
            changes = service.run_changes(store, run_id)
        finally:
            store.close()
        if not changes:
            typer.echo(f"Run {run_id} has not been changed since it was imported.", err=True)
            return
        for c in changes:
            when = c.changed_at.astimezone().strftime("%Y-%m-%d %H:%M")
            typer.echo(f"{when}\t{c.changed_by or '-'}\t{service.change_words(c)}\tReason: {c.reason}")
