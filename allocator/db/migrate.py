"""Apply the SQL migrations in ``supabase/migrations`` to a PostgreSQL database.

The files are the Supabase CLI's (``supabase db push`` deploys the same ones). Each file is
recorded in ``allocator_schema_migrations`` with the sha256 of its bytes; running
:func:`migrate` again applies nothing.

This project edits a migration in place rather than adding one (each SQL function is defined
in exactly one file, so that a reader finds it there). A file whose checksum differs from
the recorded one is therefore applied again, and its new checksum recorded (with when, and
the checksums it had before). The files are written to be harmless when applied twice (``if
not exists``, ``or replace``, policies dropped first, guarded data updates, old overloads
dropped where a signature changed), also because a Supabase project may have received them
through the CLI, which records them elsewhere.

The order. From the first file (in version order) that is new or changed, every file is
applied in version order: the new ones, the changed ones and, between and after them, the
unchanged ones again. That is the order a new database gets, which the tests check on every
file: an older file never needs what a newer one makes, and a newer file may need what the
changed version of an older one makes (a function, a column: the run list of
20261130000002_run_changes.sql reads ``allocator_py_runs.source_file``, which a database of
the first release gets from the changed 20261128000001_core.sql). Running the unchanged later
files again matters as well: 20261128000004_security.sql revokes ``EXECUTE`` on every
allocator function, so a function a changed 20261128000003_functions.sql adds would
otherwise keep PostgreSQL's default grant to ``PUBLIC`` (every role, ``anon`` included). The
alternative of the new files first and then the changed ones would leave that gap, would
run a new file before the versions of the older files it was written against, and fails on a
database of the first release for the reason above.

Everything runs in one transaction, under an advisory lock, so two processes starting at
once cannot both apply the files, and a failing file leaves the database exactly as it was
(schema and recorded checksums); the error names the file.

A plain PostgreSQL (the embedded one) lacks what Supabase provides (the roles ``anon``,
``authenticated``, ``service_role``, the ``auth`` schema and ``auth.uid()``): when the
database has no ``auth`` schema, ``bootstrap.sql`` beside this module creates them first.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

#: The repository's migrations (this file is allocator/db/migrate.py).
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "supabase" / "migrations"
BOOTSTRAP_SQL = Path(__file__).resolve().with_name("bootstrap.sql")

# One lock id for "someone is migrating this database" (two processes starting at once).
_ADVISORY_LOCK = 0x616C6C6F63  # "alloc"

_TRACKING_DDL = """
create table if not exists public.allocator_schema_migrations (
  version text primary key,
  name text not null,
  checksum text not null,
  applied_at timestamptz not null default now()
);
-- A file changed in place is applied again: when last, and the checksums it had before.
alter table public.allocator_schema_migrations add column if not exists reapplied_at timestamptz;
alter table public.allocator_schema_migrations
  add column if not exists previous_checksums text[] not null default '{}';
alter table public.allocator_schema_migrations enable row level security;
"""

_TRACKING_GRANTS = """
revoke all on table public.allocator_schema_migrations from public, anon, authenticated, service_role;
grant select on table public.allocator_schema_migrations to service_role;
"""


@dataclass(frozen=True)
class Migration:
    """One migration file: ``<version>_<name>.sql``."""

    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def migration_files(directory: Path | None = None) -> list[Migration]:
    """The migrations in ``directory`` (default: the repository's), in the order to apply."""
    directory = directory or MIGRATIONS_DIR
    if not directory.is_dir():
        raise FileNotFoundError(f"No migrations folder at {directory}")
    out = []
    for path in sorted(directory.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        if not version.isdigit():
            raise ValueError(f"Migration file {path.name} does not start with a numeric version")
        out.append(Migration(version=version, name=name or path.stem, path=path))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise ValueError(f"Two migration files in {directory} share a version")
    return out


def _has_auth_schema(conn: psycopg.Connection) -> bool:
    row = conn.execute("select exists (select 1 from pg_namespace where nspname = 'auth')").fetchone()
    return bool(row and row[0])


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`apply_migrations` did, each tuple in the order the files ran.

    Attributes
    ----------
    applied
        Files applied for the first time.
    reapplied
        Files applied before whose content changed since: applied again, new checksum recorded.
    rerun
        Unchanged files after the first new or changed one, run again so that the database
        gets the files in the order a new one does (see the module's docstring).
    """

    applied: tuple[Migration, ...] = ()
    reapplied: tuple[Migration, ...] = ()
    rerun: tuple[Migration, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether any new or changed file was applied (unchanged ones run only with those)."""
        return bool(self.applied or self.reapplied)

    def describe(self) -> list[str]:
        """What was done, one line per kind, in words (``allocator db migrate`` prints them).

        Empty when nothing new or changed was found.
        """
        if not self.changed:
            return []
        lines = []
        if self.applied:
            lines.append(f"applied {_count(self.applied, 'new migration')}: {_names(self.applied)}")
        if self.reapplied:
            they = "it was" if len(self.reapplied) == 1 else "they were"
            lines.append(
                f"applied again {_count(self.reapplied, 'migration')} changed since {they} "
                f"applied: {_names(self.reapplied)}"
            )
        if self.rerun:
            lines.append(
                f"ran {_count(self.rerun, 'unchanged later migration')} again after the "
                f"new or changed ones, in the order a new database gets them: {_names(self.rerun)}"
            )
        return lines


def _count(items: tuple[Migration, ...], noun: str) -> str:
    return f"1 {noun}" if len(items) == 1 else f"{len(items)} {noun.replace('migration', 'migrations')}"


def _names(items: tuple[Migration, ...]) -> str:
    return ", ".join(m.path.name for m in items)


def apply_migrations(
    target: str | psycopg.Connection, *, directory: Path | None = None
) -> MigrationReport:
    """Bring the database up to date; say which files were applied, applied again, run again.

    Parameters
    ----------
    target
        A connection URI, or an open connection (preferably autocommit: the work runs in
        a ``transaction()`` block).
    directory
        Where the ``.sql`` files are; default the repository's ``supabase/migrations``.

    Raises
    ------
    psycopg.Error
        A file failed: the error (of the same class and SQLSTATE as PostgreSQL's) names the
        file and the line; nothing was changed.
    """
    migrations = migration_files(directory)
    if isinstance(target, str):
        with psycopg.connect(target, autocommit=True) as conn:
            return _migrate(conn, migrations)
    return _migrate(target, migrations)


def migrate(
    target: str | psycopg.Connection, *, directory: Path | None = None
) -> list[str]:
    """Bring the database up to date; return the versions of the new and changed files applied.

    Empty when the database was up to date. :func:`apply_migrations` says which were new and
    which were changed (and which unchanged ones ran again).

    Parameters
    ----------
    target
        A connection URI, or an open connection (preferably autocommit: the work runs in
        a ``transaction()`` block).
    directory
        Where the ``.sql`` files are; default the repository's ``supabase/migrations``.
    """
    report = apply_migrations(target, directory=directory)
    return [m.version for m in report.applied + report.reapplied]


def _migrate(conn: psycopg.Connection, migrations: list[Migration]) -> MigrationReport:
    applied: list[Migration] = []
    reapplied: list[Migration] = []
    rerun: list[Migration] = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_ADVISORY_LOCK,))
        if not _has_auth_schema(conn):
            log.info("No auth schema: applying the local Supabase bootstrap")
            conn.execute(BOOTSTRAP_SQL.read_text(encoding="utf-8"))
        conn.execute(_TRACKING_DDL)
        conn.execute(_TRACKING_GRANTS)
        done = {
            version: checksum
            for version, checksum in conn.execute(
                "select version, checksum from public.allocator_schema_migrations"
            ).fetchall()
        }
        first = next(
            (i for i, m in enumerate(migrations) if done.get(m.version) != m.checksum), None
        )
        for m in migrations[first:] if first is not None else []:
            if m.version not in done:
                log.info("Applying migration %s", m.path.name)
                _apply(conn, m, "could not be applied")
                conn.execute(
                    "insert into public.allocator_schema_migrations (version, name, checksum) "
                    "values (%s, %s, %s)",
                    (m.version, m.name, m.checksum),
                )
                applied.append(m)
            elif done[m.version] != m.checksum:
                log.info("Applying migration %s again: it changed since it was applied", m.path.name)
                _apply(conn, m, "changed since it was applied, and could not be applied again")
                conn.execute(
                    "update public.allocator_schema_migrations "
                    "   set name = %s, checksum = %s, reapplied_at = now(), "
                    "       previous_checksums = previous_checksums || checksum "
                    " where version = %s",
                    (m.name, m.checksum, m.version),
                )
                reapplied.append(m)
            else:
                log.info("Running migration %s again, after an earlier new or changed one", m.path.name)
                _apply(conn, m, "could not be run again after the new or changed files before it")
                rerun.append(m)
    if reapplied:
        log.warning(
            "Applied again %s changed since applied: %s",
            _count(tuple(reapplied), "migration"), _names(tuple(reapplied)),
        )
    return MigrationReport(tuple(applied), tuple(reapplied), tuple(rerun))


def _apply(conn: psycopg.Connection, m: Migration, what: str) -> None:
    """Run one file; on failure raise the same kind of error, naming the file and line."""
    sql = m.sql
    try:
        conn.execute(sql)
    except psycopg.Error as exc:
        diag = exc.diag
        where = ""
        if diag.statement_position and diag.statement_position.isdigit():
            line = sql[: int(diag.statement_position) - 1].count("\n") + 1
            where = f" (line {line})"
        detail = (diag.message_primary or str(exc)).strip()
        message = (
            f"Migration {m.path.name} {what}{where}: {detail}. "
            "Nothing was changed: the database is as it was before."
        )
        raise type(exc)(message) from exc


def applied_versions(target: str | psycopg.Connection) -> list[str]:
    """The versions recorded as applied (empty when the database was never migrated)."""
    sql = "select version from public.allocator_schema_migrations order by version"

    def _read(conn: psycopg.Connection) -> list[str]:
        exists = conn.execute(
            "select to_regclass('public.allocator_schema_migrations') is not null"
        ).fetchone()
        if not exists or not exists[0]:
            return []
        return [r[0] for r in conn.execute(sql).fetchall()]

    if isinstance(target, str):
        with psycopg.connect(target, autocommit=True) as conn:
            return _read(conn)
    return _read(target)
