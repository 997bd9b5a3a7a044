"""``allocator db migrate`` and ``allocator db url``: the database in use."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import typer

from allocator.cli.common import SERVICE_EXIT_CODES_HELP, err, group, planner_errors


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


def register(app: typer.Typer) -> None:
    """Add the ``db`` group to ``app``."""
    db_app = group("The database: apply the migrations, show its address.")
    app.add_typer(db_app, name="db")

    @db_app.command("migrate", epilog=SERVICE_EXIT_CODES_HELP)
    @planner_errors
    def db_migrate_command() -> None:
        """Apply the migrations in supabase/migrations that the database lacks, and again those
        changed since they were applied (safe to repeat)."""
        from allocator import service

        url, report = service.migrate_database()
        where = mask_password(url)
        lines = report.describe()
        if lines:
            err(f"Migrated {where}:")
            for line in lines:
                err(f"  {line[0].upper()}{line[1:]}.")
        else:
            err(f"{where} is up to date.")

    @db_app.command("url", epilog=SERVICE_EXIT_CODES_HELP)
    @planner_errors
    def db_url_command(
        show_password: Annotated[bool, typer.Option("--show-password", help="Print the password too (it is masked by default).")] = False,
    ) -> None:
        """Print the address of the database in use (starts the embedded one when that is it)."""
        from allocator import service

        url, note = service.database_url()
        if note:
            err(note)
        typer.echo(url if show_password else mask_password(url))
