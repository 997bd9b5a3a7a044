"""What a database's ``public`` schema is, read from the catalogs, to compare two databases.

Imported by the tests as ``tests.helpers.schema``. A migrated old database should end up with
the schema a new one gets: the same functions (signature, body, settings, privileges), tables,
columns, constraints, indexes, triggers, policies, views and privileges. Column order and
generated names that depend on the order things were created in are left out.
"""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg.sql

_QUERIES: dict[str, str] = {
    "functions": """
        select p.oid::regprocedure::text, pg_get_function_result(p.oid), md5(p.prosrc),
               p.prosecdef, p.provolatile, coalesce(array_to_string(p.proconfig, ','), ''),
               coalesce((select string_agg(a.grantee::regrole::text || ':' || a.privilege_type, ','
                                           order by a.grantee::regrole::text, a.privilege_type)
                           from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a), '')
          from pg_proc p
         where p.pronamespace = 'public'::regnamespace
    """,
    "relations": """
        select c.relname, c.relkind, c.relrowsecurity,
               coalesce((select string_agg(a.grantee::regrole::text || ':' || a.privilege_type, ','
                                           order by a.grantee::regrole::text, a.privilege_type)
                           from aclexplode(coalesce(c.relacl, acldefault(
                                  (case when c.relkind = 'S' then 's' else 'r' end)::"char", c.relowner))) a), '')
          from pg_class c
         where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'v', 'S', 'm')
    """,
    "columns": """
        select c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity
          from pg_attribute a
          join pg_class c on c.oid = a.attrelid
          left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'v')
           and a.attnum > 0 and not a.attisdropped
    """,
    "constraints": """
        select conrelid::regclass::text, contype, pg_get_constraintdef(oid)
          from pg_constraint
         where connamespace = 'public'::regnamespace
    """,
    "indexes": "select tablename, indexdef from pg_indexes where schemaname = 'public'",
    "triggers": """
        select tgrelid::regclass::text, tgname, pg_get_triggerdef(oid)
          from pg_trigger
         where not tgisinternal and tgrelid::regclass::text not like 'auth.%'
    """,
    "policies": """
        select tablename, policyname, permissive, roles::text, cmd, coalesce(qual, ''),
               coalesce(with_check, '')
          from pg_policies where schemaname = 'public'
    """,
    "views": """
        select c.relname, pg_get_viewdef(c.oid), coalesce(array_to_string(c.reloptions, ','), '')
          from pg_class c
         where c.relnamespace = 'public'::regnamespace and c.relkind = 'v'
    """,
}


def describe_schema(url: str) -> dict[str, set[tuple[Any, ...]]]:
    """The public schema of the database at ``url``, one set of rows per kind of object."""
    with psycopg.connect(url) as conn:
        out = {kind: {tuple(r) for r in conn.execute(q).fetchall()} for kind, q in _QUERIES.items()}
    # A view over `s.*` lists the table's columns in the order they were added, which differs
    # between a table created whole and one that got a column later: compare its lines as a set.
    out["views"] = {(name, _lines(definition), options) for name, definition, options in out["views"]}
    return out


def _lines(definition: str) -> tuple[str, ...]:
    return tuple(sorted(line.strip().rstrip(",") for line in definition.splitlines()))


def describe_data(url: str) -> dict[str, tuple[int, str]]:
    """Every public table's row count and a digest of its rows (to tell that nothing changed)."""
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "select relname from pg_class where relnamespace = 'public'::regnamespace and relkind = 'r' "
            "order by relname").fetchall()]
        out = {}
        for table in tables:
            row = conn.execute(psycopg.sql.SQL(
                "select count(*), coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from public.{} t"
            ).format(psycopg.sql.Identifier(table))).fetchone()
            assert row is not None
            out[table] = (row[0], row[1])
        return out


def schema_differences(
    got: dict[str, set[tuple[Any, ...]]], want: dict[str, set[tuple[Any, ...]]]
) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """Per kind of object, the rows only ``got`` has (``extra``) and only ``want`` has (``missing``)."""
    out: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for kind in sorted(set(got) | set(want)):
        extra = sorted(got.get(kind, set()) - want.get(kind, set()), key=repr)
        missing = sorted(want.get(kind, set()) - got.get(kind, set()), key=repr)
        if extra or missing:
            out[kind] = {"extra": extra, "missing": missing}
    return out
