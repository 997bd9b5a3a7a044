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

-- A direct database connection (the postgres store, migrations, headless workers) or
-- Supabase's service_role: not a planner acting through the API.
create or replace function public.allocator_caller_is_trusted() returns boolean
language sql
stable
set search_path = ''
as $$
  select pg_catalog.current_setting('role') not in ('anon', 'authenticated')
     and coalesce(auth.role(), '') not in ('anon', 'authenticated')
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

create or replace function public.allocator_run_settings(r public.allocator_py_runs) returns jsonb
language sql
immutable
set search_path = ''
as $$
  select jsonb_build_object(
    'preferencer_weight', r.preferencer_weight,
    'preference_power', r.preference_power,
    'max_seconds', r.max_seconds,
    'rng_seed', r.rng_seed,
    'allow_worker_preference_ties', r.allow_worker_preference_ties,
    'stability', r.stability)
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
create or replace function public.allocator_run_snapshot(p_run_id uuid) returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v jsonb;
begin
  with r as (
    select r.id, r.external_id, r.name, ar.name as ar_name,
           public.allocator_run_settings(r) as settings
      from public.allocator_py_runs r
      join public.allocation_runs ar on ar.id = r.allocation_run_id
     where r.id = p_run_id
  ),
  ws as materialized (
    select w.id, w.external_id, w.name
      from public.worker_mappings w
     where w.id in (select public.allocator_run_worker_ids(p_run_id))
  ),
  js as materialized (
    select j.id, j.external_id, j.name, j.max_n_workers, j.must_have_workers
      from public.job_lines j
     where j.id in (select public.allocator_run_job_line_ids(p_run_id))
  ),
  items as materialized (
    select i.id, i.eligibility_id, i.rule,
           coalesce(w.external_id, t.external_id) as ref
      from public.job_line_eligibility_items i
      join public.job_line_eligibility e on e.id = i.eligibility_id
      join js on js.id = e.job_line_id
      left join ws w on w.id = i.worker_id
      left join public.qualification_tags t on t.id = i.qualification_tag_id
     where (i.worker_id is null or w.id is not null)
  )
  select jsonb_build_object(
    'format', 'allocator-run/1',
    'run', jsonb_build_object(
      'id', coalesce(r.external_id, r.id::text),
      'name', coalesce(r.name, r.ar_name, '')),
    'settings', r.settings,
    'workers', coalesce((
      select jsonb_agg(jsonb_build_object(
               'id', ws.external_id,
               'name', ws.name,
               'qualification_ids', coalesce((
                 select jsonb_agg(t.external_id order by wq.id)
                   from public.worker_qualifications wq
                   join public.qualification_tags t on t.id = wq.qualification_tag_id
                  where wq.worker_id = ws.id), '[]'::jsonb))
             order by ws.id)
        from ws), '[]'::jsonb),
    'job_lines', coalesce((
      select jsonb_agg(jsonb_build_object(
               'id', js.external_id,
               'name', js.name,
               'max_n_workers', js.max_n_workers,
               'must_have_workers', js.must_have_workers,
               'preferencer_ids', coalesce((
                 select jsonb_agg(p.external_id order by jp.id)
                   from public.job_line_preferencers jp
                   join public.preferencers p on p.id = jp.preferencer_id
                  where jp.job_line_id = js.id), '[]'::jsonb))
             order by js.id)
        from js), '[]'::jsonb),
    'worker_preferences', coalesce((
      select jsonb_agg(jsonb_build_object(
               'worker_id', ws.external_id, 'job_line_id', js.external_id, 'rank', pw.rank)
             order by pw.id)
        from public.preference_worker_job_lines pw
        join ws on ws.id = pw.worker_id
        join js on js.id = pw.job_line_id), '[]'::jsonb),
    'preferencer_preferences', coalesce((
      select jsonb_agg(jsonb_build_object(
               'preferencer_id', p.external_id, 'worker_id', ws.external_id, 'rank', pp.rank)
             order by pp.id)
        from public.preference_preferencer_workers pp
        join ws on ws.id = pp.worker_id
        join public.preferencers p on p.id = pp.preferencer_id), '[]'::jsonb),
    'eligibility', coalesce((
      select jsonb_agg(jsonb_build_object(
               'job_line_id', js.external_id,
               'included_worker_ids', coalesce((select jsonb_agg(i.ref order by i.id) from items i
                  where i.eligibility_id = e.id and i.rule = 'included_worker'), '[]'::jsonb),
               'excluded_worker_ids', coalesce((select jsonb_agg(i.ref order by i.id) from items i
                  where i.eligibility_id = e.id and i.rule = 'excluded_worker'), '[]'::jsonb),
               'included_qualification_ids', coalesce((select jsonb_agg(i.ref order by i.id) from items i
                  where i.eligibility_id = e.id and i.rule = 'included_qualification'), '[]'::jsonb),
               'excluded_qualification_ids', coalesce((select jsonb_agg(i.ref order by i.id) from items i
                  where i.eligibility_id = e.id and i.rule = 'excluded_qualification'), '[]'::jsonb))
             order by e.id)
        from public.job_line_eligibility e
        join js on js.id = e.job_line_id), '[]'::jsonb),
    'weightings', coalesce((
      select jsonb_agg(jsonb_build_object(
               'worker_id', ws.external_id, 'job_line_id', js.external_id, 'value', g.value)
             order by g.id)
        from public.allocation_run_preferencer_weightings g
        join ws on ws.id = g.worker_id
        left join js on js.id = g.job_line_id
       where g.job_line_id is null or js.id is not null), '[]'::jsonb),
    'pins', coalesce((
      select jsonb_agg(jsonb_build_object('worker_id', ws.external_id, 'job_line_id', js.external_id)
             order by o.id)
        from public.allocator_py_run_overrides o
        join ws on ws.id = o.worker_id
        join js on js.id = o.job_line_id
       where o.run_id = p_run_id and o.kind = 'pin'), '[]'::jsonb),
    'forbids', coalesce((
      select jsonb_agg(jsonb_build_object('worker_id', ws.external_id, 'job_line_id', js.external_id)
             order by o.id)
        from public.allocator_py_run_overrides o
        join ws on ws.id = o.worker_id
        join js on js.id = o.job_line_id
       where o.run_id = p_run_id and o.kind = 'forbid'), '[]'::jsonb)
  )
  into v
  from r;

  if v is null then
    perform public.allocator_run_not_found(p_run_id);
  end if;
  return v;
end
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
begin
  select allocation_run_id into v_ar from public.allocator_py_runs where id = p_run_id;
  if jsonb_typeof(p_allocations) is distinct from 'array' then
    perform public.allocator_invalid('The allocations must be a JSON list.');
  end if;

  select format('allocations[%s] (worker %L): each worker may be allocated only once.',
                x.ord - 1, x.e ->> 'worker_id')
    into v_bad
    from jsonb_array_elements(p_allocations) with ordinality x(e, ord)
   where exists (select 1 from jsonb_array_elements(p_allocations) with ordinality y(e, ord)
                  where y.e ->> 'worker_id' = x.e ->> 'worker_id' and y.ord < x.ord)
   order by x.ord
   limit 1;
  if v_bad is not null then
    perform public.allocator_invalid(v_bad);
  end if;

  with ws as materialized (
    select w.id, w.external_id from public.worker_mappings w
     where w.id in (select public.allocator_run_worker_ids(p_run_id))
  ), js as materialized (
    select j.id, j.external_id from public.job_lines j
     where j.id in (select public.allocator_run_job_line_ids(p_run_id))
  )
  select format('allocations[%s]: %s is not part of this run.', x.ord - 1,
                case when ws.id is null then format('worker %L', x.e ->> 'worker_id')
                     else format('job line %L', x.e ->> 'job_line_id') end)
    into v_bad
    from jsonb_array_elements(p_allocations) with ordinality x(e, ord)
    left join ws on ws.external_id = x.e ->> 'worker_id'
    left join js on js.external_id = x.e ->> 'job_line_id'
   where ws.id is null or js.id is null
   order by x.ord
   limit 1;
  if v_bad is not null then
    perform public.allocator_invalid(v_bad);
  end if;

  delete from public.allocator_py_allocations where run_id = p_run_id;
  insert into public.allocator_py_allocations (run_id, allocation_run_id, worker_id, job_line_id, worker_rank, cost)
  select p_run_id, v_ar, w.id, j.id,
         (x.e ->> 'worker_rank')::double precision, (x.e ->> 'cost')::double precision
    from jsonb_array_elements(p_allocations) with ordinality x(e, ord)
    join public.worker_mappings w on w.allocation_run_id = v_ar and w.external_id = x.e ->> 'worker_id'
    join public.job_lines j on j.allocation_run_id = v_ar and j.external_id = x.e ->> 'job_line_id'
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
create or replace function public.allocator_import_run(
  p_snapshot jsonb,
  p_organisation_id uuid default null,
  p_name text default null
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
begin
  if p_snapshot is null or jsonb_typeof(p_snapshot) <> 'object'
     or p_snapshot ->> 'format' is distinct from 'allocator-run/1' then
    perform public.allocator_invalid(format(
      'format: expected ''allocator-run/1'', found %s. This is not a run snapshot this database reads.',
      coalesce(quote_literal(p_snapshot ->> 'format'), 'nothing')));
  end if;

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

  insert into public.allocation_runs (organisation_id, external_id, name)
  values (v_org, p_snapshot -> 'run' ->> 'id', coalesce(p_snapshot -> 'run' ->> 'name', ''))
  returning id into v_ar;
  -- This transaction's own rows need no change tracking (see allocator_touch_allocation_run).
  perform pg_catalog.set_config('allocator.importing', v_ar::text, true);

  insert into public.worker_mappings (allocation_run_id, external_id, name)
  select v_ar, x.e ->> 'id', coalesce(x.e ->> 'name', '')
    from jsonb_array_elements(v_workers) with ordinality x(e, ord)
   order by x.ord;

  insert into public.job_lines (allocation_run_id, external_id, name, max_n_workers, must_have_workers)
  select v_ar, x.e ->> 'id', coalesce(x.e ->> 'name', ''), (x.e ->> 'max_n_workers')::integer,
         coalesce((x.e ->> 'must_have_workers')::boolean, false)
    from jsonb_array_elements(v_lines) with ordinality x(e, ord)
   order by x.ord;

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

  insert into public.worker_qualifications (allocation_run_id, worker_id, qualification_tag_id)
  select v_ar, w.id, t.id
    from jsonb_array_elements(v_workers) with ordinality x(e, ord)
    cross join lateral jsonb_array_elements_text(coalesce(x.e -> 'qualification_ids', '[]'::jsonb))
         with ordinality q(tag, qord)
    join public.worker_mappings w on w.allocation_run_id = v_ar and w.external_id = x.e ->> 'id'
    join public.qualification_tags t on t.organisation_id = v_org and t.external_id = q.tag
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

  insert into public.job_line_preferencers (allocation_run_id, job_line_id, preferencer_id)
  select v_ar, j.id, p.id
    from jsonb_array_elements(v_lines) with ordinality x(e, ord)
    cross join lateral jsonb_array_elements_text(coalesce(x.e -> 'preferencer_ids', '[]'::jsonb))
         with ordinality pj(pid, pord)
    join public.job_lines j on j.allocation_run_id = v_ar and j.external_id = x.e ->> 'id'
    join public.preferencers p on p.allocation_run_id = v_ar and p.external_id = pj.pid
   order by x.ord, pj.pord
  on conflict (job_line_id, preferencer_id) do nothing;

  -- Worker preferences.
  select format('worker_preferences[%s]: %s is not in this snapshot.', x.ord - 1,
                case when w.id is null then format('worker %L', x.e ->> 'worker_id')
                     else format('job line %L', x.e ->> 'job_line_id') end)
    into v_bad
    from jsonb_array_elements(v_wprefs) with ordinality x(e, ord)
    left join public.worker_mappings w on w.allocation_run_id = v_ar and w.external_id = x.e ->> 'worker_id'
    left join public.job_lines j on j.allocation_run_id = v_ar and j.external_id = x.e ->> 'job_line_id'
   where w.id is null or j.id is null
   order by x.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.preference_worker_job_lines (allocation_run_id, worker_id, job_line_id, rank)
  select v_ar, w.id, j.id, (x.e ->> 'rank')::double precision
    from jsonb_array_elements(v_wprefs) with ordinality x(e, ord)
    join public.worker_mappings w on w.allocation_run_id = v_ar and w.external_id = x.e ->> 'worker_id'
    join public.job_lines j on j.allocation_run_id = v_ar and j.external_id = x.e ->> 'job_line_id'
   order by x.ord;

  -- Preferencer preferences.
  select format('preferencer_preferences[%s]: worker %L is not in this snapshot.', x.ord - 1, x.e ->> 'worker_id')
    into v_bad
    from jsonb_array_elements(v_pprefs) with ordinality x(e, ord)
    left join public.worker_mappings w on w.allocation_run_id = v_ar and w.external_id = x.e ->> 'worker_id'
   where w.id is null
   order by x.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.preference_preferencer_workers (allocation_run_id, preferencer_id, worker_id, rank)
  select v_ar, p.id, w.id, (x.e ->> 'rank')::double precision
    from jsonb_array_elements(v_pprefs) with ordinality x(e, ord)
    join public.preferencers p on p.allocation_run_id = v_ar and p.external_id = x.e ->> 'preferencer_id'
    join public.worker_mappings w on w.allocation_run_id = v_ar and w.external_id = x.e ->> 'worker_id'
   order by x.ord;

  -- Eligibility entries and their rule items.
  select format('eligibility[%s]: %s is not in this snapshot.', x.ord - 1,
                case when j.id is null then format('job line %L', x.e ->> 'job_line_id')
                     else format('worker %L', wl.wid) end)
    into v_bad
    from jsonb_array_elements(v_elig) with ordinality x(e, ord)
    left join public.job_lines j on j.allocation_run_id = v_ar and j.external_id = x.e ->> 'job_line_id'
    left join lateral (
      select u.wid
        from (select jsonb_array_elements_text(coalesce(x.e -> 'included_worker_ids', '[]'::jsonb)) wid
              union all
              select jsonb_array_elements_text(coalesce(x.e -> 'excluded_worker_ids', '[]'::jsonb))) u
        left join public.worker_mappings w on w.allocation_run_id = v_ar and w.external_id = u.wid
       where w.id is null
       limit 1) wl on true
   where j.id is null or wl.wid is not null
   order by x.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.job_line_eligibility (allocation_run_id, job_line_id)
  select v_ar, j.id
    from jsonb_array_elements(v_elig) with ordinality x(e, ord)
    join public.job_lines j on j.allocation_run_id = v_ar and j.external_id = x.e ->> 'job_line_id'
   order by x.ord;

  insert into public.job_line_eligibility_items (allocation_run_id, eligibility_id, rule, worker_id, qualification_tag_id)
  select v_ar, e.id, k.rule,
         case when k.rule like '%worker' then w.id end,
         case when k.rule like '%qualification' then t.id end
    from jsonb_array_elements(v_elig) with ordinality x(el, ord)
    join public.job_lines j on j.allocation_run_id = v_ar and j.external_id = x.el ->> 'job_line_id'
    join public.job_line_eligibility e on e.job_line_id = j.id
    cross join lateral (values (1, 'included_worker', 'included_worker_ids'),
                               (2, 'excluded_worker', 'excluded_worker_ids'),
                               (3, 'included_qualification', 'included_qualification_ids'),
                               (4, 'excluded_qualification', 'excluded_qualification_ids')) k(kord, rule, key)
    cross join lateral jsonb_array_elements_text(coalesce(x.el -> k.key, '[]'::jsonb)) with ordinality r(ref, rord)
    left join public.worker_mappings w
           on k.rule like '%worker' and w.allocation_run_id = v_ar and w.external_id = r.ref
    left join public.qualification_tags t
           on k.rule like '%qualification' and t.organisation_id = v_org and t.external_id = r.ref
   order by x.ord, k.kord, r.rord
  on conflict do nothing;

  -- Weightings.
  select format('weightings[%s]: %s is not in this snapshot.', x.ord - 1,
                case when w.id is null then format('worker %L', x.e ->> 'worker_id')
                     else format('job line %L', x.e ->> 'job_line_id') end)
    into v_bad
    from jsonb_array_elements(v_weights) with ordinality x(e, ord)
    left join public.worker_mappings w on w.allocation_run_id = v_ar and w.external_id = x.e ->> 'worker_id'
    left join public.job_lines j on j.allocation_run_id = v_ar and j.external_id = x.e ->> 'job_line_id'
   where w.id is null or (x.e ->> 'job_line_id' is not null and j.id is null)
   order by x.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.allocation_run_preferencer_weightings (allocation_run_id, worker_id, job_line_id, value)
  select v_ar, w.id, j.id, (x.e ->> 'value')::double precision
    from jsonb_array_elements(v_weights) with ordinality x(e, ord)
    join public.worker_mappings w on w.allocation_run_id = v_ar and w.external_id = x.e ->> 'worker_id'
    left join public.job_lines j on j.allocation_run_id = v_ar and j.external_id = x.e ->> 'job_line_id'
   order by x.ord;

  -- The run itself, with its settings (defaults of allocation-model.md).
  insert into public.allocator_py_runs (
    allocation_run_id, external_id, name, preferencer_weight, preference_power, max_seconds,
    rng_seed, allow_worker_preference_ties, stability, status)
  values (
    v_ar, p_snapshot -> 'run' ->> 'id',
    coalesce(nullif(btrim(p_name), ''), p_snapshot -> 'run' ->> 'name', ''),
    coalesce((v_settings ->> 'preferencer_weight')::double precision, 0.3),
    coalesce((v_settings ->> 'preference_power')::double precision, 1.0),
    coalesce((v_settings ->> 'max_seconds')::double precision, 60),
    coalesce((v_settings ->> 'rng_seed')::bigint, 1234),
    coalesce((v_settings ->> 'allow_worker_preference_ties')::boolean, true),
    coalesce((v_settings ->> 'stability')::boolean, false),
    'pending')
  returning id into v_run;

  -- Pins and forbids.
  select format('%s[%s]: %s is not in this snapshot.', x.kind, x.ord - 1,
                case when w.id is null then format('worker %L', x.e ->> 'worker_id')
                     else format('job line %L', x.e ->> 'job_line_id') end)
    into v_bad
    from (select 'pins' as kind, e, ord from jsonb_array_elements(v_pins) with ordinality p(e, ord)
          union all
          select 'forbids', e, ord from jsonb_array_elements(v_forbids) with ordinality f(e, ord)) x
    left join public.worker_mappings w on w.allocation_run_id = v_ar and w.external_id = x.e ->> 'worker_id'
    left join public.job_lines j on j.allocation_run_id = v_ar and j.external_id = x.e ->> 'job_line_id'
   where w.id is null or j.id is null
   order by x.kind desc, x.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.allocator_py_run_overrides (run_id, allocation_run_id, kind, worker_id, job_line_id)
  select v_run, v_ar, x.kind, w.id, j.id
    from (select 1 as k, 'pin' as kind, e, ord from jsonb_array_elements(v_pins) with ordinality p(e, ord)
          union all
          select 2, 'forbid', e, ord from jsonb_array_elements(v_forbids) with ordinality f(e, ord)) x
    join public.worker_mappings w on w.allocation_run_id = v_ar and w.external_id = x.e ->> 'worker_id'
    join public.job_lines j on j.allocation_run_id = v_ar and j.external_id = x.e ->> 'job_line_id'
   order by x.k, x.ord
  on conflict do nothing;

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
  insert into public.allocator_scenarios (run_id, name, settings, overrides, result, input_fingerprint, created_by)
  values (p_run_id, coalesce(nullif(btrim(p_name), ''), 'Scenario'), coalesce(p_settings, '{}'::jsonb),
          coalesce(p_overrides, '{}'::jsonb), p_result, p_input_fingerprint, v_by)
  returning id into v_id;
  return v_id;
end
$$;

-- ------------------------------------------------------------------ publish

-- Write a scenario's allocations, mark the run complete and append to the log, at once.
-- p_expected_fingerprint: the run's current input fingerprint, computed by the caller from
-- a fresh load; p_expected_inputs_version: allocator_run_inputs_version read with that load.
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
begin
  v_run := public.allocator_lock_run(p_run_id);

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

  if p_expected_fingerprint is null or v_sc.input_fingerprint is distinct from p_expected_fingerprint then
    raise exception using errcode = 'AL001',
      message = format('The run''s inputs changed since scenario "%s" was solved.', v_sc.name),
      hint = 'Solve the scenario again on the current inputs, then publish.';
  end if;
  if p_expected_inputs_version is not null
     and p_expected_inputs_version <> public.allocator_run_inputs_version(p_run_id) then
    raise exception using errcode = 'AL001',
      message = 'The run''s inputs changed while publishing.',
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
  if p_lease_seconds is null or p_lease_seconds <= 0 then
    perform public.allocator_invalid('The lease must be a positive number of seconds.');
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

-- Put a failed or stuck run back in the queue (attempts start again from zero).
create or replace function public.allocator_requeue_run(p_run_id uuid) returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_run public.allocator_py_runs;
begin
  v_run := public.allocator_lock_run(p_run_id);
  if v_run.status = 'complete' then
    raise exception using errcode = 'AL002',
      message = format('Run "%s" is complete; it is not solved again by the queue.', coalesce(v_run.name, v_run.id::text)),
      hint = 'To change its allocations, publish a scenario with supersede and a reason.';
  end if;
  update public.allocator_py_runs
     set status = 'pending', claimed_by = null, claimed_at = null, lease_expires_at = null,
         attempts = 0, error = null
   where id = p_run_id;
end
$$;
