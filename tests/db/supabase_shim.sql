-- Test-only shim: what a Supabase project provides, on a plain PostgreSQL.
--
-- Applied to an empty database *before* the migrations, so that migrate sees an `auth`
-- schema, skips the local bootstrap (as on Supabase) and the migrations meet Supabase's
-- setup. It follows Supabase's definitions: the API roles (service_role bypasses row-level
-- security), `auth.users`, and `auth.uid()` / `auth.role()` / `auth.jwt()` read from the
-- `request.jwt.claims` setting that PostgREST sets for each request. Supabase also grants
-- the API roles every privilege on new tables by default; the shim does the same, so the
-- tests prove that the migrations' explicit revokes and grants are what counts.
--
-- A test acts as a user the way PostgREST does:
--   select set_config('request.jwt.claims', '{"sub": "<uuid>", "role": "authenticated"}', false);
--   set role authenticated;

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
end
$$;

create schema if not exists auth;

create table if not exists auth.users (
  instance_id uuid,
  id uuid primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  created_at timestamptz default now()
);

create or replace function auth.uid() returns uuid
language sql stable
as $$
  select nullif(
    coalesce(
      current_setting('request.jwt.claim.sub', true),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    ),
    ''
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
  select nullif(
    coalesce(
      current_setting('request.jwt.claim.role', true),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    ),
    ''
  )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

grant usage on schema auth to anon, authenticated, service_role;
grant execute on all functions in schema auth to anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;

-- Supabase's default privileges: every new table, sequence and function in `public` is
-- open to the API roles unless a migration says otherwise.
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
