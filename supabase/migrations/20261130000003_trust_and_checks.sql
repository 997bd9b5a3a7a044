-- Trust nothing the caller sends: the database is the last line.
--
-- 1. Who is trusted is an allow-list: the service role, the role that owns the allocator's
--    tables (the one that runs the migrations) and superusers. Every other role, including
--    a custom role that inherits `authenticated` (Supabase switches to whatever role a
--    token's `role` claim names), is a planner and meets every organisation check.
-- 2. Publishing checks the scenario's allocation against the run's current data inside the
--    transaction (one line per worker, places, must-be-filled lines, the five eligibility
--    steps of allocation-model.md, pins and forbids: the run's own, less those the scenario
--    lifts, plus the scenario's own), and refuses it naming every worker and line at fault.
--    Staleness is decided by the database: a scenario is stamped with the run's inputs
--    version when it is saved, however it is saved; publishing refuses it once that moved.
-- 3. A run can be put back in the queue only when it failed or its lease expired; a
--    planner never resets its attempts.
-- 4. A worker renews its lease while it solves (allocator_renew_lease).
--
-- New SQLSTATE: AL009 the run is not in a state that allows this (held by a worker, or
-- already waiting). Idempotent: `create or replace`, `if not exists`; no signature of an
-- earlier file changes, so the earlier files can be applied again before this one.

-- ------------------------------------------------------------------ 1. trust

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

-- ------------------------------------------------------------------ 2. staleness

alter table public.allocator_scenarios add column if not exists inputs_version bigint;

-- Stamp every scenario with the run's inputs version when it is written. A caller may say
-- it solved on an older version (the scenario is then stale), never on a newer one.
create or replace function public.allocator_scenarios_stamp_version() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_now bigint := public.allocator_run_inputs_version(new.run_id);
begin
  new.inputs_version := least(coalesce(new.inputs_version, v_now), v_now);
  return new;
end
$$;

create or replace trigger allocator_scenarios_stamp_version
  before insert or update of run_id, inputs_version on public.allocator_scenarios
  for each row execute function public.allocator_scenarios_stamp_version();

-- Scenarios saved before this file: stamped with their run's version now, so they stay as
-- publishable as they were (the store's fingerprint check still tells a changed run).
update public.allocator_scenarios s
   set inputs_version = public.allocator_run_inputs_version(s.run_id)
 where s.inputs_version is null;

-- ------------------------------------------------------------------ 2. checking an allocation

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
-- the worker or line. p_allocations: [{worker_id, job_line_id, ...}] with snapshot ids.
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

-- ------------------------------------------------------------------ 2. publish

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

-- ------------------------------------------------------------------ 3. requeue

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

-- ------------------------------------------------------------------ 4. heartbeat

-- The claim holder extends its lease while it works; returns the new expiry. Raises AL004
-- when the worker no longer holds the run (another worker took it over).
create or replace function public.allocator_renew_lease(
  p_run_id uuid,
  p_worker text,
  p_lease_seconds double precision default 300
) returns timestamptz
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_run public.allocator_py_runs;
begin
  if not public.allocator_caller_is_trusted() then
    raise exception using errcode = 'AL005', message = 'Only a headless worker (service role) can renew a lease.';
  end if;
  if p_lease_seconds is null or not (p_lease_seconds > 0) then
    perform public.allocator_invalid('The lease must be a positive number of seconds.');
  end if;
  -- Only the run's row is locked (one lock, so no lock-order question with other writers).
  select * into v_run from public.allocator_py_runs where id = p_run_id for update;
  if not found then
    perform public.allocator_run_not_found(p_run_id);
  end if;
  -- A lease that ran out while nobody took the run over is still this worker's (as for
  -- allocator_complete_run): renewing it saves the work done so far.
  perform public.allocator_check_claim(v_run, p_worker);
  update public.allocator_py_runs
     set lease_expires_at = clock_timestamp() + make_interval(secs => p_lease_seconds)
   where id = p_run_id
  returning lease_expires_at into v_run.lease_expires_at;
  return v_run.lease_expires_at;
end
$$;

-- ------------------------------------------------------------------ grants

revoke all on function public.allocator_scenarios_stamp_version() from public, anon, authenticated, service_role;
revoke all on function public.allocator_label(text, text) from public, anon, authenticated, service_role;
revoke all on function public.allocator_check_allocations(uuid, jsonb, jsonb, text) from public, anon, authenticated, service_role;
revoke all on function public.allocator_renew_lease(uuid, text, double precision) from public, anon, authenticated, service_role;
grant execute on function public.allocator_renew_lease(uuid, text, double precision) to service_role;
-- Replaced functions keep their grants; say them again for a database where they differ.
revoke all on function public.allocator_caller_is_trusted() from public, anon;
revoke all on function public.allocator_publish(uuid, uuid, text, text, boolean, text, bigint) from public, anon;
revoke all on function public.allocator_requeue_run(uuid) from public, anon;
grant execute on function public.allocator_caller_is_trusted() to authenticated, service_role;
grant execute on function public.allocator_publish(uuid, uuid, text, text, boolean, text, bigint) to authenticated, service_role;
grant execute on function public.allocator_requeue_run(uuid) to authenticated, service_role;
