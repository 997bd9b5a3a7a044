-- SQL functions: access helpers, reading a run as a snapshot, and every multi-row write
-- (import, save scenario, publish, claim, complete, fail, requeue). Both store adapters
-- call these, so each write is atomic whichever way it arrives.
--
-- Errors a planner can act on are raised with these SQLSTATEs (allocator/store/base.py maps
-- them to exceptions): AL001 stale scenario, AL002 already published, AL003 run not found,
-- AL004 claim lost, AL005 access denied / spoofed owner, AL006 scenario not found,
-- AL007 publish refused, AL008 invalid snapshot or allocations.
--
-- The write functions are SECURITY DEFINER (so planners need no write grants on the
-- tables) and check access themselves; the readers are SECURITY INVOKER, so row-level
-- security applies to them. Idempotent: `create or replace`.

-- ------------------------------------------------------------------ access

-- Who is trusted (a direct database connection, a headless worker, a trusted back end; not
-- a planner acting through the API) is an allow-list: the service role, the role that owns
-- the allocator's tables (the one that runs the migrations) and superusers. Every other
-- role, including a custom role that inherits `authenticated` (Supabase switches to whatever
-- role a token's `role` claim names), is a planner and meets every organisation check.
create or replace function public.allocator_caller_is_trusted() returns boolean
language sql
stable
set search_path = ''
as $$
  -- The role the caller acts as: SET ROLE's (PostgREST switches to the token's role), else
  -- the login role. Inside a SECURITY DEFINER function current_user is the owner, so it
  -- cannot tell callers apart; the `role` setting and session_user can.
  with caller as (
    select case when pg_catalog.current_setting('role') = 'none' then session_user::text
                else pg_catalog.current_setting('role') end as name
  )
  select coalesce((
    select (r.rolname = 'service_role'
            or r.rolsuper
            or r.oid = (select c.relowner from pg_catalog.pg_class c
                         where c.oid = 'public.allocator_py_runs'::pg_catalog.regclass))
           -- A token's role claim, when there is one, must say the same.
           and coalesce(auth.role(), r.rolname) in ('service_role', r.rolname)
      from pg_catalog.pg_roles r
      join caller on caller.name = r.rolname), false)
$$;

create or replace function public.allocator_my_organisations() returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select m.organisation_id from public.organisation_members m where m.user_id = auth.uid()
$$;

create or replace function public.allocator_my_allocation_runs() returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select ar.id
    from public.allocation_runs ar
    join public.organisation_members m on m.organisation_id = ar.organisation_id
   where m.user_id = auth.uid()
$$;

create or replace function public.allocator_my_runs() returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select r.id
    from public.allocator_py_runs r
    join public.allocation_runs ar on ar.id = r.allocation_run_id
    join public.organisation_members m on m.organisation_id = ar.organisation_id
   where m.user_id = auth.uid()
$$;

create or replace function public.allocator_may_access_run(p_run_id uuid) returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select public.allocator_caller_is_trusted()
      or exists (select 1 from public.allocator_my_runs() x where x = p_run_id)
$$;

-- Who is acting: a trusted caller names anyone (default: its database user); a planner is
-- always themselves, and naming someone else is refused.
create or replace function public.allocator_resolve_actor(p_claimed text) returns text
language plpgsql
stable
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_claimed text := nullif(btrim(p_claimed), '');
begin
  if public.allocator_caller_is_trusted() then
    return coalesce(v_claimed, v_uid::text, session_user::text);
  end if;
  if v_uid is null then
    raise exception using errcode = 'AL005',
      message = 'Sign in first: this needs a signed-in planner.';
  end if;
  if v_claimed is not null and v_claimed <> v_uid::text then
    raise exception using errcode = 'AL005',
      message = format('You are signed in as %s and cannot act on behalf of %s.', v_uid, v_claimed);
  end if;
  return v_uid::text;
end
$$;

create or replace function public.allocator_run_not_found(p_run_id uuid) returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = 'AL003',
    message = format('Run %s was not found, or you may not see it.', p_run_id),
    hint = 'Check the run id, or ask to be added to the run''s organisation.';
end
$$;

-- ------------------------------------------------------------------ reading a run

-- The workers of a run: the listed ones (all of the allocation run's when none are
-- listed), less, for an exclusive run, those allocated by another completed run.
create or replace function public.allocator_run_worker_ids(p_run_id uuid) returns setof bigint
language sql
stable
set search_path = ''
as $$
  select w.id
    from public.allocator_py_runs r
    join public.worker_mappings w on w.allocation_run_id = r.allocation_run_id
   where r.id = p_run_id
     and (not exists (select 1 from public.allocator_py_run_workers x where x.run_id = r.id)
          or exists (select 1 from public.allocator_py_run_workers x
                      where x.run_id = r.id and x.worker_id = w.id))
     and (not r.is_exclusive
          or not exists (select 1
                           from public.allocator_py_allocations a
                           join public.allocator_py_runs o on o.id = a.run_id
                          where a.worker_id = w.id and o.id <> r.id and o.status = 'complete'))
$$;

create or replace function public.allocator_run_job_line_ids(p_run_id uuid) returns setof bigint
language sql
stable
set search_path = ''
as $$
  select j.id
    from public.allocator_py_runs r
    join public.job_lines j on j.allocation_run_id = r.allocation_run_id
   where r.id = p_run_id
     and (not exists (select 1 from public.allocator_py_run_job_lines x where x.run_id = r.id)
          or exists (select 1 from public.allocator_py_run_job_lines x
                      where x.run_id = r.id and x.job_line_id = j.id))
     and (not r.is_exclusive
          or not exists (select 1
                           from public.allocator_py_allocations a
                           join public.allocator_py_runs o on o.id = a.run_id
                          where a.job_line_id = j.id and o.id <> r.id and o.status = 'complete'))
$$;

-- fewest_moves (business-rules.md) only when on, so a run without it keeps its bytes. PL/pgSQL
-- rather than SQL: its column comes with 20261130000004_business_rules.sql, after this file.
create or replace function public.allocator_run_settings(r public.allocator_py_runs) returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
begin
  return jsonb_build_object(
    'preferencer_weight', r.preferencer_weight,
    'preference_power', r.preference_power,
    'max_seconds', r.max_seconds,
    'rng_seed', r.rng_seed,
    'allow_worker_preference_ties', r.allow_worker_preference_ties,
    'stability', r.stability)
    || case when r.fewest_moves then '{"fewest_moves": true}'::jsonb else '{}'::jsonb end;
end
$$;

-- The version that moves whenever anything in the run's snapshot may have changed.
create or replace function public.allocator_run_inputs_version(p_run_id uuid) returns bigint
language sql
stable
set search_path = ''
as $$
  select r.inputs_version + ar.inputs_version
    from public.allocator_py_runs r
    join public.allocation_runs ar on ar.id = r.allocation_run_id
   where r.id = p_run_id
$$;

-- The run as an `allocator-run/1` snapshot (lists in the order their rows were created).
-- The business rules' keys (20261130000004_business_rules.sql) appear only when used: a
-- line's site and a worker's priority when set, links, quotas and the previous allocation
-- (allocator_run_rules_json) when the run has some, so a run without them keeps its bytes.
create or replace function public.allocator_run_snapshot_json(p_run_id uuid) returns json
language plpgsql
stable
set search_path = ''
as $$
declare
  v json;
  v_rules jsonb;
begin
  with r as (
    select r.id, r.external_id, r.name, ar.name as ar_name,
           public.allocator_run_settings(r)::json as settings
      from public.allocator_py_runs r
      join public.allocation_runs ar on ar.id = r.allocation_run_id
     where r.id = p_run_id
  ),
  ws as materialized (
    select w.id, w.external_id, w.name, w.priority
      from public.worker_mappings w
     where w.id in (select public.allocator_run_worker_ids(p_run_id))
  ),
  js as materialized (
    select j.id, j.external_id, j.name, j.max_n_workers, j.must_have_workers, j.site
      from public.job_lines j
     where j.id in (select public.allocator_run_job_line_ids(p_run_id))
  ),
  items as materialized (
    select i.id, i.eligibility_id, i.rule, coalesce(w.external_id, t.external_id) as ref
      from public.job_line_eligibility_items i
      join public.job_line_eligibility e on e.id = i.eligibility_id
      join js on js.id = e.job_line_id
      left join ws w on w.id = i.worker_id
      left join public.qualification_tags t on t.id = i.qualification_tag_id
     where (i.worker_id is null or w.id is not null)
  )
  select json_build_object(
    'format', 'allocator-run/1',
    'run', json_build_object(
      'id', coalesce(r.external_id, r.id::text),
      'name', coalesce(r.name, r.ar_name, '')),
    'settings', r.settings,
    'workers', coalesce((
      select json_agg(case when ws.priority is null then json_build_object(
               'id', ws.external_id,
               'name', ws.name,
               'qualification_ids', q.ids)
             else json_build_object(
               'id', ws.external_id,
               'name', ws.name,
               'qualification_ids', q.ids,
               'priority', ws.priority) end
             order by ws.id)
        from ws
        cross join lateral (select coalesce((
                 select json_agg(t.external_id order by wq.id)
                   from public.worker_qualifications wq
                   join public.qualification_tags t on t.id = wq.qualification_tag_id
                  where wq.worker_id = ws.id), '[]'::json) as ids) q), '[]'::json),
    'job_lines', coalesce((
      select json_agg(case when js.site is null then json_build_object(
               'id', js.external_id,
               'name', js.name,
               'max_n_workers', js.max_n_workers,
               'must_have_workers', js.must_have_workers,
               'preferencer_ids', pj.ids)
             else json_build_object(
               'id', js.external_id,
               'name', js.name,
               'max_n_workers', js.max_n_workers,
               'must_have_workers', js.must_have_workers,
               'preferencer_ids', pj.ids,
               'site', js.site) end
             order by js.id)
        from js
        cross join lateral (select coalesce((
                 select json_agg(p.external_id order by jp.id)
                   from public.job_line_preferencers jp
                   join public.preferencers p on p.id = jp.preferencer_id
                  where jp.job_line_id = js.id), '[]'::json) as ids) pj), '[]'::json),
    'worker_preferences', coalesce((
      select json_agg(json_build_object(
               'worker_id', ws.external_id, 'job_line_id', js.external_id, 'rank', pw.rank)
             order by pw.id)
        from public.preference_worker_job_lines pw
        join ws on ws.id = pw.worker_id
        join js on js.id = pw.job_line_id), '[]'::json),
    'preferencer_preferences', coalesce((
      select json_agg(json_build_object(
               'preferencer_id', p.external_id, 'worker_id', ws.external_id, 'rank', pp.rank)
             order by pp.id)
        from public.preference_preferencer_workers pp
        join ws on ws.id = pp.worker_id
        join public.preferencers p on p.id = pp.preferencer_id), '[]'::json),
    'eligibility', coalesce((
      select json_agg(json_build_object(
               'job_line_id', js.external_id,
               'included_worker_ids', coalesce((select json_agg(i.ref order by i.id) from items i
                  where i.eligibility_id = e.id and i.rule = 'included_worker'), '[]'::json),
               'excluded_worker_ids', coalesce((select json_agg(i.ref order by i.id) from items i
                  where i.eligibility_id = e.id and i.rule = 'excluded_worker'), '[]'::json),
               'included_qualification_ids', coalesce((select json_agg(i.ref order by i.id) from items i
                  where i.eligibility_id = e.id and i.rule = 'included_qualification'), '[]'::json),
               'excluded_qualification_ids', coalesce((select json_agg(i.ref order by i.id) from items i
                  where i.eligibility_id = e.id and i.rule = 'excluded_qualification'), '[]'::json))
             order by e.id)
        from public.job_line_eligibility e
        join js on js.id = e.job_line_id), '[]'::json),
    'weightings', coalesce((
      select json_agg(json_build_object(
               'worker_id', ws.external_id, 'job_line_id', js.external_id, 'value', g.value)
             order by g.id)
        from public.allocation_run_preferencer_weightings g
        join ws on ws.id = g.worker_id
        left join js on js.id = g.job_line_id
       where g.job_line_id is null or js.id is not null), '[]'::json),
    'pins', coalesce((
      select json_agg(json_build_object('worker_id', ws.external_id, 'job_line_id', js.external_id)
             order by o.id)
        from public.allocator_py_run_overrides o
        join ws on ws.id = o.worker_id
        join js on js.id = o.job_line_id
       where o.run_id = p_run_id and o.kind = 'pin'), '[]'::json),
    'forbids', coalesce((
      select json_agg(json_build_object('worker_id', ws.external_id, 'job_line_id', js.external_id)
             order by o.id)
        from public.allocator_py_run_overrides o
        join ws on ws.id = o.worker_id
        join js on js.id = o.job_line_id
       where o.run_id = p_run_id and o.kind = 'forbid'), '[]'::json)
  )
  into v
  from r;

  if v is null then
    perform public.allocator_run_not_found(p_run_id);
  end if;
  v_rules := public.allocator_run_rules_json(p_run_id);
  if v_rules <> '{}'::jsonb then
    v := (v::jsonb || v_rules)::json;
  end if;
  return v;
end
$$;

create or replace function public.allocator_run_snapshot(p_run_id uuid) returns jsonb
language sql
stable
set search_path = ''
as $$
  select public.allocator_run_snapshot_json(p_run_id)::jsonb
$$;

create or replace function public.allocator_load_run(p_run_id uuid)
returns table (snapshot json, inputs_version bigint)
language sql
stable
set search_path = ''
as $$
  select public.allocator_run_snapshot_json(p_run_id), public.allocator_run_inputs_version(p_run_id)
$$;

-- The snapshot and its inputs_version, read together (one statement, one MVCC snapshot).
create or replace function public.allocator_run_snapshot_versioned(p_run_id uuid)
returns table (snapshot jsonb, inputs_version bigint)
language sql
stable
set search_path = ''
as $$
  select public.allocator_run_snapshot(p_run_id), public.allocator_run_inputs_version(p_run_id)
$$;

-- Receptor's RPC: each worker of an allocation run with its qualification tags.
create or replace function public.get_worker_qualifications(p_allocation_run_id uuid)
returns table (
  worker_mapping_id bigint,
  worker_id text,
  worker_name text,
  qualification_tag_id bigint,
  qualification_id text,
  qualification_name text
)
language sql
stable
set search_path = ''
as $$
  select w.id, w.external_id, w.name, t.id, t.external_id, t.name
    from public.worker_mappings w
    join public.worker_qualifications wq on wq.worker_id = w.id
    join public.qualification_tags t on t.id = wq.qualification_tag_id
   where w.allocation_run_id = p_allocation_run_id
   order by w.id, wq.id
$$;

-- Allocations as snapshot-id JSON, sorted by worker id.
create or replace function public.allocator_allocations_json(p_run_id uuid) returns jsonb
language sql
stable
set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
           'worker_id', w.external_id, 'job_line_id', j.external_id,
           'worker_rank', a.worker_rank, 'cost', a.cost)
         order by w.external_id), '[]'::jsonb)
    from public.allocator_py_allocations a
    join public.worker_mappings w on w.id = a.worker_id
    join public.job_lines j on j.id = a.job_line_id
   where a.run_id = p_run_id
$$;

-- One row per run, for the run list (row-level security applies: security_invoker).
create or replace view public.allocator_run_summaries
with (security_invoker = true)
as
select r.id,
       coalesce(r.name, ar.name, '') as name,
       r.status,
       (select count(*) from public.allocator_run_worker_ids(r.id))::integer as n_workers,
       (select count(*) from public.allocator_run_job_line_ids(r.id))::integer as n_job_lines,
       greatest(r.completed_at,
                (select max(s.created_at) from public.allocator_scenarios s where s.run_id = r.id))
         as last_solved_at,
       (r.status = 'complete') as published,
       r.created_at,
       r.allocation_run_id,
       ar.organisation_id,
       r.is_exclusive,
       r.attempts,
       r.error,
       r.completed_at
  from public.allocator_py_runs r
  join public.allocation_runs ar on ar.id = r.allocation_run_id;

-- ------------------------------------------------------------------ writes: helpers

create or replace function public.allocator_invalid(p_message text) returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception using errcode = 'AL008', message = p_message;
end
$$;

-- Replace a run's allocations by `p_allocations` ([{worker_id, job_line_id, worker_rank?,
-- cost?}] with snapshot ids); every worker and job line must belong to the run.
create or replace function public.allocator_write_allocations(p_run_id uuid, p_allocations jsonb)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_ar uuid;
  v_bad text;
  v_n integer;
  v_wmap jsonb;  -- worker external id -> id, for the run's workers only
  v_jmap jsonb;  -- job line external id -> id, for the run's job lines only
begin
  select allocation_run_id into v_ar from public.allocator_py_runs where id = p_run_id;
  if jsonb_typeof(p_allocations) is distinct from 'array' then
    perform public.allocator_invalid('The allocations must be a JSON list.');
  end if;

  select format('allocations[%s] (worker %L): each worker may be allocated only once.',
                d.ord - 1, d.wid)
    into v_bad
    from (select x.ord, x.e ->> 'worker_id' as wid,
                 row_number() over (partition by x.e ->> 'worker_id' order by x.ord) as nth
            from jsonb_array_elements(p_allocations) with ordinality x(e, ord)) d
   where d.nth = 2
   order by d.ord
   limit 1;
  if v_bad is not null then
    perform public.allocator_invalid(v_bad);
  end if;

  select coalesce(jsonb_object_agg(w.external_id, w.id), '{}'::jsonb) into v_wmap
    from public.worker_mappings w
   where w.id in (select public.allocator_run_worker_ids(p_run_id));
  select coalesce(jsonb_object_agg(j.external_id, j.id), '{}'::jsonb) into v_jmap
    from public.job_lines j
   where j.id in (select public.allocator_run_job_line_ids(p_run_id));

  select format('allocations[%s]: %s is not part of this run.', x.ord - 1,
                case when v_wmap -> (x.e ->> 'worker_id') is null
                     then format('worker %L', x.e ->> 'worker_id')
                     else format('job line %L', x.e ->> 'job_line_id') end)
    into v_bad
    from jsonb_array_elements(p_allocations) with ordinality x(e, ord)
   where v_wmap -> (x.e ->> 'worker_id') is null or v_jmap -> (x.e ->> 'job_line_id') is null
   order by x.ord
   limit 1;
  if v_bad is not null then
    perform public.allocator_invalid(v_bad);
  end if;

  delete from public.allocator_py_allocations where run_id = p_run_id;
  insert into public.allocator_py_allocations (run_id, allocation_run_id, worker_id, job_line_id, worker_rank, cost)
  select p_run_id, v_ar, (v_wmap ->> (x.e ->> 'worker_id'))::bigint, (v_jmap ->> (x.e ->> 'job_line_id'))::bigint,
         (x.e ->> 'worker_rank')::double precision, (x.e ->> 'cost')::double precision
    from jsonb_array_elements(p_allocations) with ordinality x(e, ord)
   order by x.ord;
  get diagnostics v_n = row_count;
  return v_n;
end
$$;

-- Lock a run for a write, allocation run first (one lock order for every writer: writes
-- to sibling runs touch each other's inputs_version).
create or replace function public.allocator_lock_run(p_run_id uuid) returns public.allocator_py_runs
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_ar uuid;
  v_run public.allocator_py_runs;
begin
  select allocation_run_id into v_ar from public.allocator_py_runs where id = p_run_id;
  if v_ar is null or not public.allocator_may_access_run(p_run_id) then
    perform public.allocator_run_not_found(p_run_id);
  end if;
  perform 1 from public.allocation_runs where id = v_ar for update;
  select * into v_run from public.allocator_py_runs where id = p_run_id for update;
  if not found then
    perform public.allocator_run_not_found(p_run_id);
  end if;
  return v_run;
end
$$;

-- ------------------------------------------------------------------ import

-- Store a whole snapshot as a new allocation run with one pending run over all of it.
-- The organisation: p_organisation_id, else the caller's only organisation (a planner) or
-- the database's only organisation, created as "Local" when there is none (trusted).
-- p_source_file: the file the run was imported from, kept as allocator_py_runs.source_file.
-- (Before p_source_file it had three arguments: that version would stay beside this one,
-- and a call with one to three arguments would match both.)
drop function if exists public.allocator_import_run(jsonb, uuid, text);
-- Why a JSON value cannot be an id (run-snapshot.md, "Limits"), as a predicate, or null.
create or replace function public.allocator_id_problem(p_value jsonb) returns text
language sql
immutable
set search_path = ''
as $$
  select case
    when p_value is null or jsonb_typeof(p_value) <> 'string' then format('must be text, not %s', coalesce(p_value::text, 'nothing'))
    when p_value #>> '{}' = '' then 'is empty'
    when length(p_value #>> '{}') > 200
      then format('is %s characters long; an id has at most 200', length(p_value #>> '{}'))
    when (p_value #>> '{}') ~ '[\x01-\x1f\x7f-\x9f]' then 'contains a control character'
    -- Every space Python's strip() takes (the snapshot check), not only ASCII ones.
    when (p_value #>> '{}') ~ '^[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]|[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$' then 'starts or ends with a space'
  end
$$;

-- Why a JSON value cannot be a name (absent or null is no name, and fine), or null.
create or replace function public.allocator_name_problem(p_value jsonb) returns text
language sql
immutable
set search_path = ''
as $$
  select case
    when p_value is null or jsonb_typeof(p_value) = 'null' then null
    when jsonb_typeof(p_value) <> 'string' then format('must be text, not %s', p_value::text)
    when length(p_value #>> '{}') > 500
      then format('is %s characters long; a name has at most 500', length(p_value #>> '{}'))
    when (p_value #>> '{}') ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]'
      then 'contains a control character (other than tab and line breaks)'
  end
$$;

-- A JSON value as a message quotes it, a long one cut (a 5,000-digit number is no help).
create or replace function public.allocator_shown(p_value jsonb) returns text
language sql
immutable
set search_path = ''
as $$
  select case when p_value is null then 'nothing'
              when length(p_value::text) > 40 then left(p_value::text, 40) || '…'
              else p_value::text end
$$;

-- A JSON value is a number from p_low to p_high (a check that never fails on what it checks).
create or replace function public.allocator_is_number_between(p_value jsonb, p_low numeric, p_high numeric)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select coalesce(case when jsonb_typeof(p_value) = 'number'
                       then (p_value #>> '{}')::numeric between p_low and p_high end, false)
$$;

-- The first field of a snapshot that run-snapshot.md refuses (its types and its Limits),
-- said as the snapshot check says it, naming the entry; null when there is none. The
-- import runs it before any row is written: a caller of the SQL may skip the snapshot
-- check, and a run holding more than the Limits could not be loaded, solved or exported.
create or replace function public.allocator_snapshot_field_problem(p_snapshot jsonb) returns text
language sql
immutable
set search_path = ''
as $$
  -- One pass over each list with plain expressions (a call of the helpers above costs more
  -- than the test: they only word the one entry at fault, found first).
  with s as (
    select case when jsonb_typeof(p_snapshot -> 'settings') = 'object' then p_snapshot -> 'settings' end as settings
  ),
  lists as (  -- each list with the ids its entries name (key1, key2)
    select k.section, k.sord, k.key1, k.key2,
           case when jsonb_typeof(p_snapshot -> k.section) = 'array' then p_snapshot -> k.section else '[]'::jsonb end
             as entries,
           jsonb_typeof(coalesce(p_snapshot -> k.section, '[]'::jsonb)) as kind
      from (values ('workers', 1, null, null), ('job_lines', 2, null, null),
                   ('worker_preferences', 3, 'worker_id', 'job_line_id'),
                   ('preferencer_preferences', 4, 'preferencer_id', 'worker_id'),
                   ('eligibility', 5, 'job_line_id', null), ('weightings', 6, 'worker_id', null),
                   ('pins', 7, 'worker_id', 'job_line_id'), ('forbids', 8, 'worker_id', 'job_line_id'),
                   ('linked_workers', 9, null, null), ('quotas', 10, null, null))
           k(section, sord, key1, key2)
  ),
  -- Each entry and the first of its fields at fault (k), by plain tests only.
  faults as (
    select l.section, l.sord, x.ord, x.e,
           case
             when jsonb_typeof(x.e) <> 'object' then 0
             when l.sord in (1, 2, 9, 10)
                  and not (jsonb_typeof(x.e -> 'id') = 'string' and length(x.e ->> 'id') between 1 and 200
                           and (x.e ->> 'id') !~ '[\x01-\x1f\x7f-\x9f]|^[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]|[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$') then 1
             when l.sord <= 2 and jsonb_typeof(x.e -> 'name') is distinct from 'null' and x.e ? 'name'
                  and not (jsonb_typeof(x.e -> 'name') = 'string' and length(x.e ->> 'name') <= 500
                           and (x.e ->> 'name') !~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]') then 2
             when l.sord = 2 and jsonb_typeof(x.e -> 'site') = 'string'
                  and (length(x.e ->> 'site') > 500 or (x.e ->> 'site') ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]') then 3
             when l.sord = 2 and not coalesce(case when jsonb_typeof(x.e -> 'max_n_workers') = 'number'
                                                        and (x.e ->> 'max_n_workers') ~ '^[0-9]{1,7}$'
                                                   then (x.e ->> 'max_n_workers')::integer <= 1000000 end, false) then 4
             when l.sord = 2 and coalesce(jsonb_typeof(x.e -> 'must_have_workers'), 'null') not in ('boolean', 'null') then 5
             when l.sord in (1, 2, 5) and exists (
                    select 1
                      from (values (1, 'qualification_ids'), (2, 'preferencer_ids'), (5, 'included_worker_ids'),
                                   (5, 'excluded_worker_ids'), (5, 'included_qualification_ids'),
                                   (5, 'excluded_qualification_ids')) k(sord, key)
                     where k.sord = l.sord
                       and (coalesce(jsonb_typeof(x.e -> k.key), 'null') not in ('array', 'null')
                            or exists (select 1 from jsonb_array_elements(case when jsonb_typeof(x.e -> k.key) = 'array'
                                                                               then x.e -> k.key else '[]'::jsonb end) y(v)
                                        where not (jsonb_typeof(y.v) = 'string' and length(y.v #>> '{}') between 1 and 200
                                                   and (y.v #>> '{}') !~ '[\x01-\x1f\x7f-\x9f]|^[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]|[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$')))) then 6
             when l.sord = 10 and coalesce(jsonb_typeof(x.e -> 'qualification_id'), 'null') <> 'null'
                  and public.allocator_id_problem(x.e -> 'qualification_id') is not null then 11
             when l.sord = 10 and jsonb_typeof(x.e -> 'sites') = 'array' and exists (
                    select 1 from jsonb_array_elements(x.e -> 'sites') y(v)
                     where jsonb_typeof(y.v) <> 'string' or (y.v #>> '{}') ~ '^[\s\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$'
                        or public.allocator_name_problem(y.v) is not null) then 12
             when l.sord between 3 and 8 and (jsonb_typeof(x.e -> l.key1) is distinct from 'string'
                                   or (l.key2 is not null and jsonb_typeof(x.e -> l.key2) is distinct from 'string')) then 7
             -- A supervisor's id needs no job line naming it (run-snapshot.md), so no reference
             -- bounds it as the worker and job line ids are bounded: it is checked here.
             when l.sord = 4 and not (length(x.e ->> 'preferencer_id') between 1 and 200
                                      and (x.e ->> 'preferencer_id') !~ '[\x01-\x1f\x7f-\x9f]|^[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]|[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$') then 13
             when l.sord = 6 and coalesce(jsonb_typeof(x.e -> 'job_line_id'), 'null') not in ('string', 'null') then 8
             when l.sord in (3, 4) and not coalesce(case when jsonb_typeof(x.e -> 'rank') = 'number'
                                                         then (x.e ->> 'rank')::numeric between 1 and 1e9 end, false) then 9
             when l.sord = 6 and not coalesce(case when jsonb_typeof(x.e -> 'value') = 'number'
                                                    then (x.e ->> 'value')::numeric between -1e9 and 1e9 end, false) then 10
           end as k
      from lists l cross join lateral jsonb_array_elements(l.entries) with ordinality x(e, ord)
  ),
  problems as (
    select 0 as sord, 0::bigint as ord, 0 as k, format('%s: must be a list, not %s', l.section,
                                                       public.allocator_shown(p_snapshot -> l.section)) as m
      from lists l where l.kind not in ('array', 'null')
    union all
    select 0, 0, 1, format('settings: must be a JSON object, not %s', public.allocator_shown(p_snapshot -> 'settings'))
     where jsonb_typeof(coalesce(p_snapshot -> 'settings', '{}'::jsonb)) not in ('object', 'null')
    union all
    select 0, 0, 0, format('run: must be a JSON object, not %s', public.allocator_shown(p_snapshot -> 'run'))
     where jsonb_typeof(coalesce(p_snapshot -> 'run', '{}'::jsonb)) not in ('object', 'null')
    union all
    select 0, 0, 0, format('run: the id %s', public.allocator_id_problem(p_snapshot -> 'run' -> 'id'))
     where jsonb_typeof(p_snapshot -> 'run') = 'object' and p_snapshot -> 'run' ? 'id'
       and public.allocator_id_problem(p_snapshot -> 'run' -> 'id') is not null
    union all
    select 0, 0, 0, format('run: the name %s', public.allocator_name_problem(p_snapshot -> 'run' -> 'name'))
     where jsonb_typeof(p_snapshot -> 'run') = 'object'
       and public.allocator_name_problem(p_snapshot -> 'run' -> 'name') is not null
    union all
    select 0, 0, 2, format('settings: %s', m) from s, lateral (values
        (case when s.settings ? 'preferencer_weight' and not public.allocator_is_number_between(s.settings -> 'preferencer_weight', 0, 1)
              then format('preferencer_weight must be a number from 0 to 1, not %s', public.allocator_shown(s.settings -> 'preferencer_weight')) end),
        (case when s.settings ? 'preference_power'
                   and not (public.allocator_is_number_between(s.settings -> 'preference_power', 0, 8)
                            and (s.settings ->> 'preference_power')::numeric > 0)
              then format('preference_power must be a number greater than 0 and at most 8, not %s', public.allocator_shown(s.settings -> 'preference_power')) end),
        (case when s.settings ? 'max_seconds'
                   -- Any finite double, as the snapshot check takes (the column is one).
                   and not (public.allocator_is_number_between(s.settings -> 'max_seconds', 0, 1.7976931348623157e308)
                            and (s.settings ->> 'max_seconds')::numeric > 0)
              then format('max_seconds must be a number of seconds greater than 0, not %s', public.allocator_shown(s.settings -> 'max_seconds')) end),
        (case when s.settings ? 'rng_seed'
                   and not (public.allocator_is_number_between(s.settings -> 'rng_seed', 0, 9223372036854775807)
                            and (s.settings ->> 'rng_seed') ~ '^[0-9]+$')
              then format('rng_seed must be a whole number from 0 to 9223372036854775807, not %s', public.allocator_shown(s.settings -> 'rng_seed')) end),
        (case when coalesce(jsonb_typeof(s.settings -> 'allow_worker_preference_ties'), 'boolean') <> 'boolean'
              then format('allow_worker_preference_ties must be true or false, not %s', public.allocator_shown(s.settings -> 'allow_worker_preference_ties')) end),
        (case when coalesce(jsonb_typeof(s.settings -> 'stability'), 'boolean') <> 'boolean'
              then format('stability must be true or false, not %s', public.allocator_shown(s.settings -> 'stability')) end),
        (case when coalesce(jsonb_typeof(s.settings -> 'fewest_moves'), 'boolean') <> 'boolean'
              then format('fewest_moves must be true or false, not %s', public.allocator_shown(s.settings -> 'fewest_moves')) end)) v(m)
     where m is not null
    union all
    (select f.sord, f.ord, 3, format('%s[%s]', f.section, f.ord - 1)
              || case when f.sord in (1, 2, 9, 10) and jsonb_typeof(f.e -> 'id') = 'string'
                      then format(' (id %L)', left(f.e ->> 'id', 60)) else '' end
              || ': '
              || case f.k
                   when 0 then format('must be a JSON object, not %s', public.allocator_shown(f.e))
                   when 1 then format('the id %s', public.allocator_id_problem(f.e -> 'id'))
                   when 2 then format('the name %s', public.allocator_name_problem(f.e -> 'name'))
                   when 3 then format('the site %s', public.allocator_name_problem(f.e -> 'site'))
                   when 4 then format('max_n_workers must be a whole number from 0 to 1,000,000, not %s',
                                      public.allocator_shown(f.e -> 'max_n_workers'))
                   when 5 then format('must_have_workers must be true or false, not %s',
                                      public.allocator_shown(f.e -> 'must_have_workers'))
                   -- Which list and which of its ids, as the snapshot check names them.
                   when 6 then coalesce((
                     select case when jsonb_typeof(f.e -> k.key) <> 'array'
                                 then format('%s: must be a list, not %s', k.key, public.allocator_shown(f.e -> k.key))
                                 else format('%s[%s]: the id %s', k.key, y.ord - 1, public.allocator_id_problem(y.v)) end
                       from (values (1, 1, 'qualification_ids'), (2, 1, 'preferencer_ids'), (5, 1, 'included_worker_ids'),
                                    (5, 2, 'excluded_worker_ids'), (5, 3, 'included_qualification_ids'),
                                    (5, 4, 'excluded_qualification_ids')) k(sord, kord, key)
                       left join lateral jsonb_array_elements(case when jsonb_typeof(f.e -> k.key) = 'array'
                                                                   then f.e -> k.key end) with ordinality y(v, ord)
                              on public.allocator_id_problem(y.v) is not null
                      where k.sord = f.sord and coalesce(jsonb_typeof(f.e -> k.key), 'null') <> 'null'
                        and (jsonb_typeof(f.e -> k.key) <> 'array' or y.v is not null)
                      order by k.kord, y.ord limit 1), 'a list of ids holds something that is not an id')
                   when 7 then 'its worker, job line and supervisor ids must be text'
                   when 8 then format('job_line_id must be text or null, not %s', public.allocator_shown(f.e -> 'job_line_id'))
                   when 9 then format('the rank must be a number from 1 to 1,000,000,000, not %s',
                                      public.allocator_shown(f.e -> 'rank'))
                   when 10 then format('the value must be a number from -1,000,000,000 to 1,000,000,000, not %s',
                                       public.allocator_shown(f.e -> 'value'))
                   when 11 then format('the qualification_id %s', public.allocator_id_problem(f.e -> 'qualification_id'))
                   when 12 then 'a site is a non-empty name of at most 500 characters, without control characters'
                   when 13 then format('the supervisor id %s', public.allocator_id_problem(f.e -> 'preferencer_id'))
                 end
       from faults f where f.k is not null
      order by f.sord, f.ord limit 1)
    union all
    -- Repeated ids of workers and of job lines.
    (select f.sord, max(f.ord), 4,
            format('%s: the id %L is used by more than one %s', min(f.section), f.e ->> 'id',
                   case when f.sord = 1 then 'worker' else 'job line' end)
       from faults f
      where f.sord <= 2 and jsonb_typeof(f.e -> 'id') = 'string'
      group by f.sord, f.e ->> 'id' having count(*) > 1
      order by 1, 2 limit 1)
  )
  -- Fail closed: an entry at fault whose message could not be worded is still refused.
  select coalesce(m, 'the snapshot has an entry that cannot be stored') from problems order by sord, ord, k limit 1
$$;

create or replace function public.allocator_import_run(
  p_snapshot jsonb,
  p_organisation_id uuid default null,
  p_name text default null,
  p_source_file text default null
) returns uuid
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_trusted boolean := public.allocator_caller_is_trusted();
  v_org uuid := p_organisation_id;
  v_n integer;
  v_ar uuid;
  v_run uuid;
  v_bad text;
  v_settings jsonb := coalesce(p_snapshot -> 'settings', '{}'::jsonb);
  v_workers jsonb := coalesce(p_snapshot -> 'workers', '[]'::jsonb);
  v_lines jsonb := coalesce(p_snapshot -> 'job_lines', '[]'::jsonb);
  v_wprefs jsonb := coalesce(p_snapshot -> 'worker_preferences', '[]'::jsonb);
  v_pprefs jsonb := coalesce(p_snapshot -> 'preferencer_preferences', '[]'::jsonb);
  v_elig jsonb := coalesce(p_snapshot -> 'eligibility', '[]'::jsonb);
  v_weights jsonb := coalesce(p_snapshot -> 'weightings', '[]'::jsonb);
  v_pins jsonb := coalesce(p_snapshot -> 'pins', '[]'::jsonb);
  v_forbids jsonb := coalesce(p_snapshot -> 'forbids', '[]'::jsonb);
  -- external id -> row id, for this import's rows
  v_wmap jsonb;
  v_jmap jsonb;
  v_pmap jsonb;
  v_tmap jsonb;
  v_emap jsonb;  -- job line row id -> eligibility entry id
begin
  if p_snapshot is null or jsonb_typeof(p_snapshot) <> 'object'
     or p_snapshot ->> 'format' is distinct from 'allocator-run/1' then
    perform public.allocator_invalid(format(
      'format: expected ''allocator-run/1'', found %s. This is not a run snapshot this database reads.',
      coalesce(quote_literal(p_snapshot ->> 'format'), 'nothing')));
  end if;
  if jsonb_typeof(v_workers) <> 'array' or jsonb_typeof(v_lines) <> 'array' then
    perform public.allocator_invalid('workers and job_lines must be lists.');
  end if;
  v_bad := public.allocator_snapshot_field_problem(p_snapshot);
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  -- Which organisation.
  if v_org is not null then
    if not v_trusted and not exists (select 1 from public.allocator_my_organisations() o where o = v_org) then
      raise exception using errcode = 'AL005',
        message = format('You are not a member of organisation %s, so you cannot import runs into it.', v_org);
    end if;
    if not exists (select 1 from public.organisations where id = v_org) then
      perform public.allocator_invalid(format('Organisation %s does not exist.', v_org));
    end if;
  elsif v_trusted then
    select count(*) into v_n from public.organisations;
    if v_n = 0 then
      insert into public.organisations (name) values ('Local') returning id into v_org;
    elsif v_n = 1 then
      select id into v_org from public.organisations;
    else
      perform public.allocator_invalid(
        'The database has several organisations: name the one to import the run into.');
    end if;
  else
    select count(*), min(o::text)::uuid into v_n, v_org from public.allocator_my_organisations() o;
    if v_n <> 1 then
      raise exception using errcode = 'AL005',
        message = case when v_n = 0 then 'You are not a member of any organisation, so you cannot import runs.'
                       else 'You belong to several organisations: name the one to import the run into.' end;
    end if;
  end if;

  -- A worker's priority and a line's site (business-rules.md), before any row is written.
  select m into v_bad from (
    select 1 as k, x.ord, format('workers[%s] (id %L): the priority must be a whole number of at least 1 (1 is placed first) and at most 1,000,000, not %s.',
                                 x.ord - 1, x.e ->> 'id', x.e -> 'priority') as m
      from jsonb_array_elements(v_workers) with ordinality x(e, ord)
     where jsonb_typeof(x.e -> 'priority') <> 'null'
       -- Digits only (as the snapshot check: 1.0 is not a whole number there; '1.0'::integer raises).
       and not coalesce(case when jsonb_typeof(x.e -> 'priority') = 'number' and (x.e ->> 'priority') ~ '^[0-9]+$'
                             then (x.e ->> 'priority')::numeric between 1 and 1000000 end, false)
    union all
    select 2, x.ord, format('job_lines[%s] (id %L): the site must be a non-empty name, not %s.',
                            x.ord - 1, x.e ->> 'id', x.e -> 'site')
      from jsonb_array_elements(v_lines) with ordinality x(e, ord)
     where jsonb_typeof(x.e -> 'site') <> 'null'
       -- Blank as the snapshot check's strip() sees it: a tab or a no-break space alone is no site.
       and not coalesce(case when jsonb_typeof(x.e -> 'site') = 'string'
                             then (x.e ->> 'site') !~ '^[\s\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$' end, false)) c
   order by c.k, c.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.allocation_runs (organisation_id, external_id, name)
  values (v_org, p_snapshot -> 'run' ->> 'id', coalesce(p_snapshot -> 'run' ->> 'name', ''))
  returning id into v_ar;
  -- This transaction's own rows need no change tracking (see allocator_inputs_changed).
  perform pg_catalog.set_config('allocator.importing', v_ar::text, true);

  -- Workers and job lines (a repeated id is refused by the unique constraints).
  insert into public.worker_mappings (allocation_run_id, external_id, name, priority)
  select v_ar, x.e ->> 'id', coalesce(x.e ->> 'name', ''), (x.e ->> 'priority')::integer
    from jsonb_array_elements(v_workers) with ordinality x(e, ord)
   order by x.ord;
  select coalesce(jsonb_object_agg(external_id, id), '{}'::jsonb) into v_wmap
    from public.worker_mappings where allocation_run_id = v_ar;

  insert into public.job_lines (allocation_run_id, external_id, name, max_n_workers, must_have_workers, site)
  select v_ar, x.e ->> 'id', coalesce(x.e ->> 'name', ''), (x.e ->> 'max_n_workers')::integer,
         coalesce((x.e ->> 'must_have_workers')::boolean, false), x.e ->> 'site'
    from jsonb_array_elements(v_lines) with ordinality x(e, ord)
   order by x.ord;
  select coalesce(jsonb_object_agg(external_id, id), '{}'::jsonb) into v_jmap
    from public.job_lines where allocation_run_id = v_ar;

  -- Qualification tags (shared by the organisation's allocation runs).
  insert into public.qualification_tags (organisation_id, external_id, name)
  select distinct v_org, q, q
    from (select jsonb_array_elements_text(coalesce(x.e -> 'qualification_ids', '[]'::jsonb)) q
            from jsonb_array_elements(v_workers) x(e)
          union all
          select jsonb_array_elements_text(coalesce(x.e -> 'included_qualification_ids', '[]'::jsonb))
            from jsonb_array_elements(v_elig) x(e)
          union all
          select jsonb_array_elements_text(coalesce(x.e -> 'excluded_qualification_ids', '[]'::jsonb))
            from jsonb_array_elements(v_elig) x(e)) t
  on conflict (organisation_id, external_id) do nothing;
  select coalesce(jsonb_object_agg(external_id, id), '{}'::jsonb) into v_tmap
    from public.qualification_tags where organisation_id = v_org;

  insert into public.worker_qualifications (allocation_run_id, worker_id, qualification_tag_id)
  select v_ar, (v_wmap ->> (x.e ->> 'id'))::bigint, (v_tmap ->> q.tag)::bigint
    from jsonb_array_elements(v_workers) with ordinality x(e, ord)
    cross join lateral jsonb_array_elements_text(coalesce(x.e -> 'qualification_ids', '[]'::jsonb))
         with ordinality q(tag, qord)
   order by x.ord, q.qord
  on conflict (worker_id, qualification_tag_id) do nothing;

  -- Preferencers: everyone a job line names or who ranks workers, in order of appearance.
  insert into public.preferencers (allocation_run_id, external_id, name)
  select v_ar, p.pid, p.pid
    from (select u.pid, min(u.pos) as pos
            from (select pj.pid, x.ord * 1000000 + pj.pord as pos
                    from jsonb_array_elements(v_lines) with ordinality x(e, ord)
                    cross join lateral jsonb_array_elements_text(coalesce(x.e -> 'preferencer_ids', '[]'::jsonb))
                         with ordinality pj(pid, pord)
                  union all
                  select x.e ->> 'preferencer_id', (jsonb_array_length(v_lines) + 1 + x.ord) * 1000000
                    from jsonb_array_elements(v_pprefs) with ordinality x(e, ord)) u
           group by u.pid) p
   order by p.pos;
  select coalesce(jsonb_object_agg(external_id, id), '{}'::jsonb) into v_pmap
    from public.preferencers where allocation_run_id = v_ar;

  insert into public.job_line_preferencers (allocation_run_id, job_line_id, preferencer_id)
  select v_ar, (v_jmap ->> (x.e ->> 'id'))::bigint, (v_pmap ->> pj.pid)::bigint
    from jsonb_array_elements(v_lines) with ordinality x(e, ord)
    cross join lateral jsonb_array_elements_text(coalesce(x.e -> 'preferencer_ids', '[]'::jsonb))
         with ordinality pj(pid, pord)
   order by x.ord, pj.pord
  on conflict (job_line_id, preferencer_id) do nothing;

  -- Worker preferences.
  select format('worker_preferences[%s]: %s is not in this snapshot.', x.ord - 1,
                case when v_wmap -> (x.e ->> 'worker_id') is null then format('worker %L', x.e ->> 'worker_id')
                     else format('job line %L', x.e ->> 'job_line_id') end)
    into v_bad
    from jsonb_array_elements(v_wprefs) with ordinality x(e, ord)
   where v_wmap -> (x.e ->> 'worker_id') is null or v_jmap -> (x.e ->> 'job_line_id') is null
   order by x.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.preference_worker_job_lines (allocation_run_id, worker_id, job_line_id, rank)
  select v_ar, (v_wmap ->> (x.e ->> 'worker_id'))::bigint, (v_jmap ->> (x.e ->> 'job_line_id'))::bigint,
         (x.e ->> 'rank')::double precision
    from jsonb_array_elements(v_wprefs) with ordinality x(e, ord)
   order by x.ord;

  -- Preferencer preferences.
  select format('preferencer_preferences[%s]: worker %L is not in this snapshot.', x.ord - 1, x.e ->> 'worker_id')
    into v_bad
    from jsonb_array_elements(v_pprefs) with ordinality x(e, ord)
   where v_wmap -> (x.e ->> 'worker_id') is null
   order by x.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.preference_preferencer_workers (allocation_run_id, preferencer_id, worker_id, rank)
  select v_ar, (v_pmap ->> (x.e ->> 'preferencer_id'))::bigint, (v_wmap ->> (x.e ->> 'worker_id'))::bigint,
         (x.e ->> 'rank')::double precision
    from jsonb_array_elements(v_pprefs) with ordinality x(e, ord)
   order by x.ord;

  -- Eligibility entries and their rule items.
  select format('eligibility[%s]: %s is not in this snapshot.', x.ord - 1,
                case when v_jmap -> (x.e ->> 'job_line_id') is null then format('job line %L', x.e ->> 'job_line_id')
                     else format('worker %L', wl.wid) end)
    into v_bad
    from jsonb_array_elements(v_elig) with ordinality x(e, ord)
    left join lateral (
      select u.wid
        from (select jsonb_array_elements_text(coalesce(x.e -> 'included_worker_ids', '[]'::jsonb)) wid
              union all
              select jsonb_array_elements_text(coalesce(x.e -> 'excluded_worker_ids', '[]'::jsonb))) u
       where v_wmap -> u.wid is null
       limit 1) wl on true
   where v_jmap -> (x.e ->> 'job_line_id') is null or wl.wid is not null
   order by x.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.job_line_eligibility (allocation_run_id, job_line_id)
  select v_ar, (v_jmap ->> (x.e ->> 'job_line_id'))::bigint
    from jsonb_array_elements(v_elig) with ordinality x(e, ord)
   order by x.ord;
  select coalesce(jsonb_object_agg(job_line_id::text, id), '{}'::jsonb) into v_emap
    from public.job_line_eligibility where allocation_run_id = v_ar;

  insert into public.job_line_eligibility_items (allocation_run_id, eligibility_id, rule, worker_id, qualification_tag_id)
  select v_ar, (v_emap ->> (v_jmap ->> (x.el ->> 'job_line_id')))::bigint, k.rule,
         case when k.rule like '%worker' then (v_wmap ->> r.ref)::bigint end,
         case when k.rule like '%qualification' then (v_tmap ->> r.ref)::bigint end
    from jsonb_array_elements(v_elig) with ordinality x(el, ord)
    cross join lateral (values (1, 'included_worker', 'included_worker_ids'),
                               (2, 'excluded_worker', 'excluded_worker_ids'),
                               (3, 'included_qualification', 'included_qualification_ids'),
                               (4, 'excluded_qualification', 'excluded_qualification_ids')) k(kord, rule, key)
    cross join lateral jsonb_array_elements_text(coalesce(x.el -> k.key, '[]'::jsonb)) with ordinality r(ref, rord)
   order by x.ord, k.kord, r.rord
  on conflict do nothing;

  -- Weightings.
  select format('weightings[%s]: %s is not in this snapshot.', x.ord - 1,
                case when v_wmap -> (x.e ->> 'worker_id') is null then format('worker %L', x.e ->> 'worker_id')
                     else format('job line %L', x.e ->> 'job_line_id') end)
    into v_bad
    from jsonb_array_elements(v_weights) with ordinality x(e, ord)
   where v_wmap -> (x.e ->> 'worker_id') is null
      or (x.e ->> 'job_line_id' is not null and v_jmap -> (x.e ->> 'job_line_id') is null)
   order by x.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.allocation_run_preferencer_weightings (allocation_run_id, worker_id, job_line_id, value)
  select v_ar, (v_wmap ->> (x.e ->> 'worker_id'))::bigint, (v_jmap ->> (x.e ->> 'job_line_id'))::bigint,
         (x.e ->> 'value')::double precision
    from jsonb_array_elements(v_weights) with ordinality x(e, ord)
   order by x.ord;

  -- The run itself, with its settings (defaults of allocation-model.md).
  insert into public.allocator_py_runs (
    allocation_run_id, external_id, name, preferencer_weight, preference_power, max_seconds,
    rng_seed, allow_worker_preference_ties, stability, fewest_moves, status, source_file)
  values (
    v_ar, p_snapshot -> 'run' ->> 'id',
    coalesce(nullif(btrim(p_name), ''), p_snapshot -> 'run' ->> 'name', ''),
    coalesce((v_settings ->> 'preferencer_weight')::double precision, 0.3),
    coalesce((v_settings ->> 'preference_power')::double precision, 1.0),
    coalesce((v_settings ->> 'max_seconds')::double precision, 60),
    coalesce((v_settings ->> 'rng_seed')::bigint, 1234),
    coalesce((v_settings ->> 'allow_worker_preference_ties')::boolean, true),
    coalesce((v_settings ->> 'stability')::boolean, false),
    coalesce((v_settings ->> 'fewest_moves')::boolean, false),
    'pending',
    nullif(btrim(p_source_file), ''))
  returning id into v_run;

  -- Pins and forbids.
  select format('%s[%s]: %s is not in this snapshot.', x.kind, x.ord - 1,
                case when v_wmap -> (x.e ->> 'worker_id') is null then format('worker %L', x.e ->> 'worker_id')
                     else format('job line %L', x.e ->> 'job_line_id') end)
    into v_bad
    from (select 1 as k, 'pins' as kind, e, ord from jsonb_array_elements(v_pins) with ordinality p(e, ord)
          union all
          select 2, 'forbids', e, ord from jsonb_array_elements(v_forbids) with ordinality f(e, ord)) x
   where v_wmap -> (x.e ->> 'worker_id') is null or v_jmap -> (x.e ->> 'job_line_id') is null
   order by x.k, x.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.allocator_py_run_overrides (run_id, allocation_run_id, kind, worker_id, job_line_id)
  select v_run, v_ar, x.kind, (v_wmap ->> (x.e ->> 'worker_id'))::bigint, (v_jmap ->> (x.e ->> 'job_line_id'))::bigint
    from (select 1 as k, 'pin' as kind, e, ord from jsonb_array_elements(v_pins) with ordinality p(e, ord)
          union all
          select 2, 'forbid', e, ord from jsonb_array_elements(v_forbids) with ordinality f(e, ord)) x
   order by x.k, x.ord
  on conflict do nothing;

  -- Links, quotas and the previous allocation (20261130000004_business_rules.sql).
  perform public.allocator_import_business_rules(v_run, v_ar, v_org, p_snapshot, v_wmap, v_jmap);

  perform pg_catalog.set_config('allocator.importing', '', true);
  return v_run;
end
$$;

-- ------------------------------------------------------------------ scenarios

create or replace function public.allocator_save_scenario(
  p_run_id uuid,
  p_name text,
  p_settings jsonb,
  p_overrides jsonb,
  p_result jsonb,
  p_input_fingerprint text,
  p_created_by text default null
) returns uuid
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_by text := public.allocator_resolve_actor(p_created_by);
  v_id uuid;
begin
  if not exists (select 1 from public.allocator_py_runs where id = p_run_id)
     or not public.allocator_may_access_run(p_run_id) then
    perform public.allocator_run_not_found(p_run_id);
  end if;
  if coalesce(btrim(p_input_fingerprint), '') = '' then
    perform public.allocator_invalid('A scenario needs the input fingerprint it was solved on.');
  end if;
  if length(p_name) > 500 or p_name ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]' then
    perform public.allocator_invalid(
      'A scenario''s name has at most 500 characters, without control characters other than tab and line breaks.');
  end if;
  -- Whatever reads a scenario back (the dashboard, a re-solve, the publish check) takes its
  -- settings and changes as tables and its result as a result with a list of allocations.
  if coalesce(jsonb_typeof(p_settings), 'object') <> 'object' then
    perform public.allocator_invalid(format(
      'A scenario''s settings are a table of settings (setting: value), not %s.', left(p_settings::text, 200)));
  end if;
  if coalesce(jsonb_typeof(p_overrides), 'object') <> 'object' then
    perform public.allocator_invalid(format(
      'A scenario''s changes are a table of changes (pins, forbids, places, ...), not %s.', left(p_overrides::text, 200)));
  end if;
  if p_result is not null and (jsonb_typeof(p_result) <> 'object'
                               or coalesce(jsonb_typeof(p_result -> 'allocations'), 'array') <> 'array') then
    perform public.allocator_invalid(
      'A scenario''s result is a result (allocator-result/1) with a list of allocations, not this.');
  end if;
  insert into public.allocator_scenarios (run_id, name, settings, overrides, result, input_fingerprint, created_by)
  values (p_run_id, coalesce(nullif(btrim(p_name), ''), 'Scenario'), coalesce(p_settings, '{}'::jsonb),
          coalesce(p_overrides, '{}'::jsonb), p_result, p_input_fingerprint, v_by)
  returning id into v_id;
  return v_id;
end
$$;

-- ------------------------------------------------------------------ publish

-- How a worker or line is named in a refusal: its id, and its name when it has another.
create or replace function public.allocator_label(p_id text, p_name text) returns text
language sql
immutable
set search_path = ''
as $$
  select case when coalesce(btrim(p_name), '') in ('', p_id) then pg_catalog.quote_literal(p_id)
              else pg_catalog.format('%L (%s)', p_id, p_name) end
$$;

-- Refuse (AL007) an allocation that breaks a rule of the run as it is now, with the
-- scenario's overrides on top; the message lists every problem (the first 20), each naming
-- the worker or line, and the link or quota (allocator_business_rule_breaches, in
-- 20261130000004_business_rules.sql). p_allocations: [{worker_id, job_line_id, ...}] with snapshot ids.
create or replace function public.allocator_check_allocations(
  p_run_id uuid,
  p_overrides jsonb,
  p_allocations jsonb,
  p_what text default 'The allocation'
) returns void
language plpgsql
stable
set search_path = ''
as $$
declare
  v_ov jsonb := case when jsonb_typeof(p_overrides) = 'object' then p_overrides else '{}'::jsonb end;
  v_problems text[];
  v_shown integer := 20;
begin
  if jsonb_typeof(p_allocations) is distinct from 'array' then
    raise exception using errcode = 'AL007',
      message = format('%s has no list of allocations to publish.', p_what);
  end if;

  with
  ws as materialized (
    select w.id, w.external_id as wid, public.allocator_label(w.external_id, w.name) as label
      from public.worker_mappings w
     where w.id in (select public.allocator_run_worker_ids(p_run_id))
  ),
  js0 as materialized (
    select j.id, j.external_id as jid, public.allocator_label(j.external_id, j.name) as label,
           j.max_n_workers, j.must_have_workers
      from public.job_lines j
     where j.id in (select public.allocator_run_job_line_ids(p_run_id))
  ),
  -- The scenario's places and must-be-filled per line (its first row for a line).
  line_ov as (
    select distinct on (x.e ->> 'job_line_id') x.e ->> 'job_line_id' as jid,
           case when jsonb_typeof(x.e -> 'max_n_workers') = 'number'
                then (x.e ->> 'max_n_workers')::numeric end as cap,
           case when jsonb_typeof(x.e -> 'must_have_workers') = 'boolean'
                then (x.e ->> 'must_have_workers')::boolean end as must
      from jsonb_array_elements(case when jsonb_typeof(v_ov -> 'lines') = 'array'
                                     then v_ov -> 'lines' else '[]'::jsonb end) with ordinality x(e, ord)
     order by x.e ->> 'job_line_id', x.ord
  ),
  js as materialized (
    select js0.*, coalesce(o.cap, js0.max_n_workers) as cap, coalesce(o.must, js0.must_have_workers) as must
      from js0 left join line_ov o on o.jid = js0.jid
  ),
  given as materialized (
    select x.ord, x.e ->> 'worker_id' as wid, x.e ->> 'job_line_id' as jid,
           count(*) over (partition by x.e ->> 'worker_id') as n_for_worker
      from jsonb_array_elements(p_allocations) with ordinality x(e, ord)
  ),
  -- One row per worker of the run that is allocated exactly once to a line of the run.
  pairs as materialized (
    select g.ord, w.id as w_id, w.wid, w.label as w_label, j.id as j_id, j.jid, j.label as j_label
      from given g
      join ws w on w.wid = g.wid
      join js j on j.jid = g.jid
     where g.n_for_worker = 1
  ),
  ov_pairs as (
    select k.kind, x.e ->> 'worker_id' as wid, x.e ->> 'job_line_id' as jid
      from (values ('pins'), ('forbids'), ('lifted_pins'), ('lifted_forbids')) k(kind)
      cross join lateral jsonb_array_elements(case when jsonb_typeof(v_ov -> k.kind) = 'array'
                                                   then v_ov -> k.kind else '[]'::jsonb end) x(e)
  ),
  run_pairs as (
    select o.kind, w.wid, j.jid
      from public.allocator_py_run_overrides o
      join ws w on w.id = o.worker_id
      join js j on j.id = o.job_line_id
     where o.run_id = p_run_id
  ),
  -- The scenario's pins replace a run pin of the same worker; lifted ones are gone.
  pins as (
    select wid, jid from ov_pairs where kind = 'pins'
    union
    select r.wid, r.jid from run_pairs r
     where r.kind = 'pin'
       and not exists (select 1 from ov_pairs o where o.kind = 'pins' and o.wid = r.wid)
       and not exists (select 1 from ov_pairs o where o.kind = 'lifted_pins' and (o.wid, o.jid) = (r.wid, r.jid))
  ),
  forbids as (
    select wid, jid from ov_pairs where kind = 'forbids'
    union
    select r.wid, r.jid from run_pairs r
     where r.kind = 'forbid'
       and not exists (select 1 from ov_pairs o where o.kind = 'lifted_forbids' and (o.wid, o.jid) = (r.wid, r.jid))
  ),
  -- The five steps, first match wins (allocation-model.md), for each allocated pair.
  verdicts as (
    select p.*,
           e.id is not null and exists (
             select 1 from public.job_line_eligibility_items i
              where i.eligibility_id = e.id and i.rule = 'included_worker'
                and coalesce(i.worker_id, -1) = p.w_id and coalesce(i.qualification_tag_id, -1) = -1) as inc_worker,
           e.id is not null and exists (
             select 1 from public.job_line_eligibility_items i
              where i.eligibility_id = e.id and i.rule = 'excluded_worker'
                and coalesce(i.worker_id, -1) = p.w_id and coalesce(i.qualification_tag_id, -1) = -1) as exc_worker,
           (select min(t.external_id)
              from public.worker_qualifications wq
              join public.job_line_eligibility_items i
                on i.eligibility_id = e.id and i.rule = 'excluded_qualification'
               and coalesce(i.worker_id, -1) = -1 and coalesce(i.qualification_tag_id, -1) = wq.qualification_tag_id
              join public.qualification_tags t on t.id = wq.qualification_tag_id
             where wq.worker_id = p.w_id) as exc_tag,
           exists (
             select 1
               from public.worker_qualifications wq
               join public.job_line_eligibility_items i
                 on i.eligibility_id = e.id and i.rule = 'included_qualification'
                and coalesce(i.worker_id, -1) = -1 and coalesce(i.qualification_tag_id, -1) = wq.qualification_tag_id
              where wq.worker_id = p.w_id) as inc_tag,
           e.id
      from pairs p
      left join public.job_line_eligibility e on e.job_line_id = p.j_id
  ),
  loads as (
    select j.jid, j.label, j.cap, j.must, count(p.w_id) as n
      from js j left join pairs p on p.j_id = j.id
     group by j.jid, j.label, j.cap, j.must
  ),
  problems as (
    -- Workers and lines that are not the run's, and workers given more than one line.
    select 1 as k, g.ord as o, format('allocations[%s]: worker %L is not a worker of this run.', g.ord - 1, g.wid) as msg
      from given g where not exists (select 1 from ws where ws.wid = g.wid)
    union all
    select 2, g.ord, format('allocations[%s]: job line %L (for worker %L) is not a job line of this run.',
                            g.ord - 1, g.jid, g.wid)
      from given g where exists (select 1 from ws where ws.wid = g.wid)
                     and not exists (select 1 from js where js.jid = g.jid)
    union all
    select 3, min(g.ord), format('Worker %s is given %s lines (%s); each worker gets exactly one.',
                                 min(w.label), count(*), string_agg(quote_literal(g.jid), ', ' order by g.ord))
      from given g join ws w on w.wid = g.wid
     where g.n_for_worker > 1
     group by g.wid
    union all
    select 4, w.id, format('Worker %s has no line: every worker of the run gets exactly one.', w.label)
      from ws w where not exists (select 1 from given g where g.wid = w.wid)
    -- The pairs themselves.
    union all
    select 5, v.ord, format('Worker %s may not take job line %s: %s.', v.w_label, v.j_label,
             case when v.exc_worker then 'they are on the line''s list of excluded workers'
                  when v.exc_tag is not null then format('they have the tag %L, which the line excludes', v.exc_tag)
                  else format('they lack every tag the line requires (%s)',
                              (select string_agg(quote_literal(t.external_id), ', ' order by t.external_id)
                                 from public.job_line_eligibility_items i
                                 join public.qualification_tags t on t.id = i.qualification_tag_id
                                where i.eligibility_id = v.id and i.rule = 'included_qualification')) end)
      from verdicts v
     where not (v.inc_worker
                or (not v.exc_worker and v.exc_tag is null
                    and (v.inc_tag or not exists (
                           select 1 from public.job_line_eligibility_items i
                            where i.eligibility_id = v.id and i.rule = 'included_qualification'))))
    union all
    select 6, p.ord, format('Worker %s is forbidden on job line %s, yet the allocation puts them there.',
                            p.w_label, p.j_label)
      from pairs p where exists (select 1 from forbids f where (f.wid, f.jid) = (p.wid, p.jid))
    union all
    select 7, coalesce(p.ord, 0), format('Worker %s is pinned to job line %s, but the allocation puts them %s.',
             coalesce(w.label, quote_literal(pn.wid)), coalesce(j.label, quote_literal(pn.jid)),
             coalesce('on ' || p.j_label, 'on no line of this run'))
      from pins pn
      left join ws w on w.wid = pn.wid
      left join js j on j.jid = pn.jid
      left join pairs p on p.wid = pn.wid
     where p.jid is distinct from pn.jid
    -- The lines.
    union all
    select 8, 0, format('Job line %s has room for %s but is given %s workers.', l.label, l.cap, l.n)
      from loads l where l.n > l.cap
    union all
    select 9, 0, format('Job line %s must be filled, but the allocation leaves it empty.', l.label)
      from loads l where l.must and l.n = 0
  )
  select array_agg(msg order by k, o, msg) into v_problems from problems;
  -- Links and quotas (business-rules.md), the run's or the scenario's replacements.
  v_problems := coalesce(v_problems, '{}') || public.allocator_business_rule_breaches(p_run_id, v_ov, p_allocations);
  if cardinality(v_problems) = 0 then
    v_problems := null;
  end if;

  if v_problems is not null then
    raise exception using errcode = 'AL007',
      message = format('%s breaks the run''s rules as they are now, so nothing was written:%s%s',
                       p_what,
                       E'\n- ' || array_to_string(v_problems[1:v_shown], E'\n- '),
                       case when cardinality(v_problems) > v_shown
                            then format(E'\n... and %s more.', cardinality(v_problems) - v_shown) else '' end),
      hint = 'Solve again on the run''s current data.';
  end if;
end
$$;

-- Write a scenario's allocations, mark the run complete and append to the log, at once,
-- after checking the allocation against the run's current data and the scenario's
-- overrides. Staleness: the scenario's stamped inputs_version against the run's now.
-- p_expected_fingerprint / p_expected_inputs_version: optional further checks by a caller
-- that loaded the run (they can only refuse more, never let a stale scenario through).
create or replace function public.allocator_publish(
  p_run_id uuid,
  p_scenario_id uuid,
  p_expected_fingerprint text,
  p_reason text default null,
  p_supersede boolean default false,
  p_published_by text default null,
  p_expected_inputs_version bigint default null
) returns table (publication_id bigint, n_allocations integer, superseded boolean, published_at timestamptz)
language plpgsql
volatile
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_by text := public.allocator_resolve_actor(p_published_by);
  v_run public.allocator_py_runs;
  v_sc public.allocator_scenarios;
  v_action text := 'publish';
  v_allocs jsonb;
  v_prev jsonb;
  v_n integer;
  v_log bigint;
  v_now timestamptz := now();
  v_status text;
  v_version bigint;
begin
  v_run := public.allocator_lock_run(p_run_id);
  v_version := public.allocator_run_inputs_version(p_run_id);

  select * into v_sc from public.allocator_scenarios s where s.id = p_scenario_id;
  if not found or v_sc.run_id <> p_run_id then
    raise exception using errcode = 'AL006',
      message = format('Scenario %s was not found for run %s.', p_scenario_id, p_run_id);
  end if;

  if v_run.status = 'complete' then
    if not coalesce(p_supersede, false) then
      raise exception using errcode = 'AL002',
        message = format('Run "%s" is already published (%s).', coalesce(v_run.name, v_run.id::text),
                         to_char(v_run.completed_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')),
        hint = 'To replace its allocations, supersede them and give a reason; the old ones stay in the publication log.';
    end if;
    if coalesce(btrim(p_reason), '') = '' then
      raise exception using errcode = 'AL007',
        message = 'A reason is required to supersede published allocations.',
        hint = 'Say why the published allocations are being replaced; it is kept in the publication log.';
    end if;
    v_action := 'supersede';
  end if;

  if p_expected_inputs_version is not null and p_expected_inputs_version <> v_version then
    raise exception using errcode = 'AL001',
      message = 'The run''s inputs changed while publishing.',
      hint = 'Solve the scenario again on the current inputs, then publish.';
  end if;
  if v_sc.inputs_version is distinct from v_version
     or (p_expected_fingerprint is not null and v_sc.input_fingerprint is distinct from p_expected_fingerprint) then
    raise exception using errcode = 'AL001',
      message = format('The run''s inputs changed since scenario "%s" was solved.', v_sc.name),
      hint = 'Solve the scenario again on the current inputs, then publish.';
  end if;

  v_status := v_sc.result ->> 'status';
  v_allocs := v_sc.result -> 'allocations';
  if v_status is not null and v_status not in ('optimal', 'feasible') then
    raise exception using errcode = 'AL007',
      message = format('Scenario "%s" has no allocation to publish (its solve ended %s).', v_sc.name, v_status);
  end if;
  if jsonb_typeof(v_allocs) is distinct from 'array' or jsonb_array_length(v_allocs) = 0 then
    raise exception using errcode = 'AL007',
      message = format('Scenario "%s" has no allocations to publish.', v_sc.name);
  end if;
  perform public.allocator_check_allocations(
    p_run_id, v_sc.overrides, v_allocs, format('Scenario "%s"', v_sc.name));

  v_prev := public.allocator_allocations_json(p_run_id);
  v_n := public.allocator_write_allocations(p_run_id, v_allocs);

  update public.allocator_py_runs r
     set status = 'complete', completed_at = v_now, error = null, lease_expires_at = null,
         published_scenario_id = p_scenario_id, result = v_sc.result
   where r.id = p_run_id;

  insert into public.allocator_publication_log
    (run_id, scenario_id, action, reason, input_fingerprint, allocations, previous_allocations,
     published_by, published_at)
  values (p_run_id, p_scenario_id, v_action, nullif(btrim(p_reason), ''), v_sc.input_fingerprint,
          public.allocator_allocations_json(p_run_id), v_prev, v_by, v_now)
  returning id into v_log;

  return query select v_log, v_n, v_action = 'supersede', v_now;
end
$$;

-- ------------------------------------------------------------------ headless queue

-- Claim the next pending run (or a running one whose lease expired), oldest first, or only
-- p_run_id. Runs whose lease expired p_max_attempts times are marked failed instead.
create or replace function public.allocator_claim(
  p_worker text,
  p_lease_seconds double precision default 300,
  p_run_id uuid default null,
  p_max_attempts integer default 5
) returns table (run_id uuid, worker text, attempts integer, lease_expires_at timestamptz, settings jsonb)
language plpgsql
volatile
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_id uuid;
  v_run public.allocator_py_runs;
begin
  if not public.allocator_caller_is_trusted() then
    raise exception using errcode = 'AL005', message = 'Only a headless worker (service role) can claim runs.';
  end if;
  if coalesce(btrim(p_worker), '') = '' then
    perform public.allocator_invalid('A worker name is needed to claim a run.');
  end if;
  -- At most a week: PostgreSQL's timestamps end in the year 294276 (NaN sorts above all).
  if p_lease_seconds is null or p_lease_seconds <= 0 or p_lease_seconds > 604800 then
    perform public.allocator_invalid(format(
      'The lease must be a number of seconds greater than 0 and at most 604800 (a week), not %s.', p_lease_seconds));
  end if;

  update public.allocator_py_runs r
     set status = 'failed', lease_expires_at = null,
         error = format('Given up after %s attempts: each worker that claimed the run stopped '
                        'before finishing (its lease expired).', r.attempts)
   where r.id in (select x.id from public.allocator_py_runs x
                   where x.status = 'running' and x.lease_expires_at < clock_timestamp()
                     and x.attempts >= p_max_attempts
                     and (p_run_id is null or x.id = p_run_id)
                   for update skip locked);

  select x.id into v_id
    from public.allocator_py_runs x
   where (x.status = 'pending' or (x.status = 'running' and x.lease_expires_at < clock_timestamp()))
     and (p_run_id is null or x.id = p_run_id)
   order by x.created_at, x.id
   limit 1
   for update skip locked;
  if v_id is null then
    return;
  end if;

  update public.allocator_py_runs r
     set status = 'running', claimed_by = p_worker, claimed_at = clock_timestamp(),
         lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_seconds),
         attempts = r.attempts + 1, error = null
   where r.id = v_id
  returning r.* into v_run;

  return query select v_run.id, v_run.claimed_by, v_run.attempts, v_run.lease_expires_at,
                      public.allocator_run_settings(v_run);
end
$$;

create or replace function public.allocator_check_claim(p_run public.allocator_py_runs, p_worker text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if p_run.status <> 'running' or p_run.claimed_by is distinct from p_worker then
    raise exception using errcode = 'AL004',
      message = format('Worker %L no longer holds run %s: it is %s%s.', p_worker, p_run.id, p_run.status,
                       case when p_run.status = 'running' then format(', claimed by %L', p_run.claimed_by) else '' end),
      hint = 'Its lease probably expired and another worker took the run; this result is discarded.';
  end if;
end
$$;

-- A worker's finished solve: allocations and completion, atomically, only by the claim holder.
create or replace function public.allocator_complete_run(
  p_run_id uuid,
  p_worker text,
  p_allocations jsonb,
  p_result jsonb default null
) returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_run public.allocator_py_runs;
  v_prev jsonb;
  v_n integer;
  v_now timestamptz := now();
begin
  if not public.allocator_caller_is_trusted() then
    raise exception using errcode = 'AL005', message = 'Only a headless worker (service role) can complete runs.';
  end if;
  v_run := public.allocator_lock_run(p_run_id);
  perform public.allocator_check_claim(v_run, p_worker);

  v_prev := public.allocator_allocations_json(p_run_id);
  v_n := public.allocator_write_allocations(p_run_id, coalesce(p_allocations, '[]'::jsonb));
  update public.allocator_py_runs
     set status = 'complete', completed_at = v_now, lease_expires_at = null, error = null,
         result = p_result, published_scenario_id = null
   where id = p_run_id;
  insert into public.allocator_publication_log
    (run_id, action, input_fingerprint, allocations, previous_allocations, published_by, published_at)
  values (p_run_id, 'complete', p_result ->> 'input_fingerprint',
          public.allocator_allocations_json(p_run_id), v_prev, p_worker, v_now);
  return v_n;
end
$$;

create or replace function public.allocator_fail_run(p_run_id uuid, p_worker text, p_error text)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_run public.allocator_py_runs;
begin
  if not public.allocator_caller_is_trusted() then
    raise exception using errcode = 'AL005', message = 'Only a headless worker (service role) can fail runs.';
  end if;
  v_run := public.allocator_lock_run(p_run_id);
  perform public.allocator_check_claim(v_run, p_worker);
  update public.allocator_py_runs
     set status = 'failed', lease_expires_at = null,
         error = coalesce(nullif(btrim(p_error), ''), 'The solve failed without a message.')
   where id = p_run_id;
end
$$;

-- Put a failed run, or one whose worker's lease expired, back in the queue. A trusted
-- caller (an operator's `allocator solve-run`) starts its attempts again; a planner never
-- resets them.
create or replace function public.allocator_requeue_run(p_run_id uuid) returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_run public.allocator_py_runs;
  v_label text;
begin
  v_run := public.allocator_lock_run(p_run_id);
  v_label := coalesce(nullif(v_run.name, ''), v_run.id::text);
  if v_run.status = 'complete' then
    raise exception using errcode = 'AL002',
      message = format('Run "%s" is complete; it is not solved again by the queue.', v_label),
      hint = 'To change its allocations, publish a scenario with supersede and a reason.';
  end if;
  if v_run.status = 'pending' then
    raise exception using errcode = 'AL009',
      message = format('Run "%s" is already waiting to be solved.', v_label);
  end if;
  if v_run.status = 'running' and v_run.lease_expires_at >= clock_timestamp() then
    raise exception using errcode = 'AL009',
      message = format('Run "%s" is being solved by worker %L (its claim holds until %s), so it cannot be put back in the queue.',
                       v_label, v_run.claimed_by,
                       to_char(v_run.lease_expires_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"')),
      hint = 'Only a failed run, or one whose worker stopped (its claim expired), can be put back in the queue.';
  end if;
  update public.allocator_py_runs
     set status = 'pending', claimed_by = null, claimed_at = null, lease_expires_at = null,
         attempts = case when public.allocator_caller_is_trusted() then 0 else attempts end,
         error = null
   where id = p_run_id;
end
$$;
