-- Test-only shim: what a Supabase project has beyond allocator/db/bootstrap.sql.
--
-- The tests apply allocator/db/bootstrap.sql and then this file to an empty database
-- *before* the migrations, so that migrate sees an `auth` schema, skips the local bootstrap
-- (as on Supabase) and the migrations meet Supabase's setup. The bootstrap gives the API
-- roles (service_role bypasses row-level security), `auth.users`, and `auth.uid()` /
-- `auth.role()` / `auth.jwt()` read from the `request.jwt.claims` setting that PostgREST
-- sets for each request; this file adds what Supabase has on top: more `auth.users`
-- columns, and the API roles' privileges on every new table by default, so the tests prove
-- that the migrations' explicit revokes and grants are what counts.
--
-- A test acts as a user the way PostgREST does:
--   select set_config('request.jwt.claims', '{"sub": "<uuid>", "role": "authenticated"}', false);
--   set role authenticated;

-- Supabase's auth.users has many more columns than the bootstrap's; these few show that the
-- bootstrap was not applied a second time by migrate.
alter table auth.users add column if not exists instance_id uuid;
alter table auth.users add column if not exists aud varchar(255);
alter table auth.users add column if not exists role varchar(255);

grant execute on all functions in schema auth to anon, authenticated, service_role;

-- Supabase's default privileges: every new table, sequence and function in `public` is
-- open to the API roles unless a migration says otherwise.
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
