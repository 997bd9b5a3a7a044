"""Apply the SQL migrations in ``supabase/migrations`` to a PostgreSQL database.

The files are the Supabase CLI's (``supabase db push`` deploys the same ones). Each file is
applied once, in name order, and recorded in ``allocator_schema_migrations``; running
:func:`migrate` again applies nothing. The pending files are applied in one transaction,
under an advisory lock, so two processes starting at once cannot both apply them and a
failing file leaves the database as it was. The files are
also written to be harmless when applied twice (``if not exists``, ``or replace``), because
a Supabase project may have received them through the CLI, which records them elsewhere.

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


def migrate(
    target: str | psycopg.Connection, *, directory: Path | None = None
) -> list[str]:
    """Bring the database up to date; return the versions applied now (empty if none).

    Parameters
    ----------
    target
        A connection URI, or an open connection (preferably autocommit: the work runs in
        a ``transaction()`` block).
    directory
        Where the ``.sql`` files are; default the repository's ``supabase/migrations``.
    """
    migrations = migration_files(directory)
    if isinstance(target, str):
        with psycopg.connect(target, autocommit=True) as conn:
            return _migrate(conn, migrations)
    return _migrate(target, migrations)


def _migrate(conn: psycopg.Connection, migrations: list[Migration]) -> list[str]:
    applied_now: list[str] = []
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
        for m in migrations:
            if m.version in done:
                if done[m.version] != m.checksum:
                    log.warning(
                        "Migration %s_%s changed after it was applied; not applying it again "
                        "(add a new migration instead)", m.version, m.name)
                continue
            log.info("Applying migration %s_%s", m.version, m.name)
            with conn.transaction():
                conn.execute(m.sql)
                conn.execute(
                    "insert into public.allocator_schema_migrations (version, name, checksum) "
                    "values (%s, %s, %s)",
                    (m.version, m.name, m.checksum),
                )
            applied_now.append(m.version)
    return applied_now


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
