-- Run changes: where a run came from, and changing a run's data after import.
--
-- 1. Provenance. `allocator_py_runs.source_file` records the file a run was imported from
--    (the command line's FILE, the dashboard's upload); allocator_import_run takes it as
--    `p_source_file`, which defaults to null (the column and the function are defined once,
--    where a reader looks for them: 20261128000001_core.sql, 20261128000003_functions.sql,
--    as no database outside this project had applied the first versions). The run
--    list shows it with the import time (created_at) and, separately from a headless solve
--    (completed_at), when a scenario of the run was last saved (`last_scenario_saved_at`), in
--    the view `allocator_run_list`.
-- 2. Changes to a run's data, each one SQL function (atomic; invalid input refused with
--    AL008 naming the entry, nothing written), each logged with who and why in the
--    append-only `allocator_run_changes`:
--      allocator_withdraw_worker  the worker leaves the run's list of workers (their rows,
--                                 preferences and the run's history stay; a run that listed
--                                 none, meaning "all of its allocation run's", gets the list
--                                 of all but them);
--      allocator_add_worker       a late worker joins the allocation run (the intake) with
--                                 their tags and ranked lines, and the run's list when it
--                                 has one (sibling runs that list none see them too, as that
--                                 means "every worker of the intake");
--      allocator_set_job_line     a line's places, must-be-filled and/or site (the line
--                                 belongs to the allocation run, so sibling runs with it see
--                                 it too).
--    With the business rules (20261130000004_business_rules.sql) the run stays valid after
--    each: a withdrawn worker leaves their link (a link left with one worker is removed) and
--    their previous allocation is dropped, and the change log says so; a late worker may
--    bring a priority; a line's site may not change so that a quota names a site no line of
--    the run has, nor so that pinned workers of one link end up on different sites.
--    Every one of them moves allocator_run_inputs_version (through the triggers of
--    20261128000002 / 0005), so a scenario saved before is stale at once: its input
--    fingerprint no longer matches a fresh load, and allocator_publish refuses it.
--    They check access like the other writers (allocator_lock_run: another organisation's
--    run is "not found"), record the actor with allocator_resolve_actor (a signed-in planner
--    is always themselves), and refuse a run a headless worker is solving right now.
--
-- Idempotent: `if not exists`, `or replace`, policies dropped and created again.

-- ------------------------------------------------------------------ the change log

-- Append-only: every change made to a run's data after import, with who and why.
create table if not exists public.allocator_run_changes (
  id bigint generated always as identity primary key,
  run_id uuid not null,
  allocation_run_id uuid not null,
  action text not null check (action in ('withdraw_worker', 'add_worker', 'set_job_line')),
  worker_id text,    -- the snapshot (external) id of the worker changed, if any
  job_line_id text,  -- the snapshot (external) id of the job line changed, if any
  details jsonb not null default '{}'::jsonb,
  reason text not null check (btrim(reason) <> ''),
  changed_by text,
  changed_at timestamptz not null default now(),
  inputs_version bigint,  -- allocator_run_inputs_version right after the change
  foreign key (allocation_run_id, run_id)
    references public.allocator_py_runs (allocation_run_id, id) on delete cascade
);
create index if not exists allocator_run_changes_run_idx on public.allocator_run_changes (run_id, id);

create or replace function public.allocator_run_changes_append_only() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception using
    errcode = '42501',
    message = 'The run''s change log is append-only: its entries cannot be changed.',
    hint = 'To undo a change, make the opposite change with a reason; both stay in the log.';
end
$$;

create or replace trigger allocator_run_changes_no_update
  before update on public.allocator_run_changes
  for each row execute function public.allocator_run_changes_append_only();

alter table public.allocator_run_changes enable row level security;
revoke all on table public.allocator_run_changes from public, anon, authenticated, service_role;
grant select on table public.allocator_run_changes to authenticated;
grant select, insert on table public.allocator_run_changes to service_role;
do $$
declare
  seq text := pg_catalog.pg_get_serial_sequence('public.allocator_run_changes', 'id');
begin
  execute format('revoke all on sequence %s from public, anon, authenticated, service_role', seq);
  execute format('grant usage, select on sequence %s to service_role', seq);
end
$$;

drop policy if exists allocator_run_changes_planner_read on public.allocator_run_changes;
create policy allocator_run_changes_planner_read on public.allocator_run_changes
  for select to authenticated
  using (allocation_run_id in (select public.allocator_my_allocation_runs()));

-- ------------------------------------------------------------------ changes: helpers

-- Lock the run for a change (access checked as for every writer) and refuse one that a
-- headless worker is solving now: its result would be for data that no longer exists.
create or replace function public.allocator_lock_run_for_change(p_run_id uuid, p_reason text, p_what text)
returns public.allocator_py_runs
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_run public.allocator_py_runs;
begin
  v_run := public.allocator_lock_run(p_run_id);
  if v_run.status = 'running' then
    perform public.allocator_invalid(format(
      'Run "%s" is being solved by a worker now; %s when that solve has finished.',
      coalesce(nullif(v_run.name, ''), v_run.id::text), p_what));
  end if;
  if coalesce(btrim(p_reason), '') = '' then
    perform public.allocator_invalid(format(
      'A reason is required to %s: say why; it is kept in the run''s change log.', p_what));
  end if;
  return v_run;
end
$$;

create or replace function public.allocator_log_run_change(
  p_run public.allocator_py_runs,
  p_action text,
  p_worker_id text,
  p_job_line_id text,
  p_details jsonb,
  p_reason text,
  p_by text
) returns jsonb
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_row public.allocator_run_changes;
begin
  insert into public.allocator_run_changes
    (run_id, allocation_run_id, action, worker_id, job_line_id, details, reason, changed_by, inputs_version)
  values (p_run.id, p_run.allocation_run_id, p_action, p_worker_id, p_job_line_id,
          coalesce(p_details, '{}'::jsonb), btrim(p_reason), p_by,
          public.allocator_run_inputs_version(p_run.id))
  returning * into v_row;
  return to_jsonb(v_row);
end
$$;

-- ------------------------------------------------------------------ withdraw a worker

create or replace function public.allocator_withdraw_worker(
  p_run_id uuid,
  p_worker_id text,
  p_reason text,
  p_changed_by text default null
) returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_by text := public.allocator_resolve_actor(p_changed_by);
  v_run public.allocator_py_runs;
  v_wid bigint;
  v_name text;
  v_n integer;
  v_run_name text;
  v_details jsonb;
  -- The worker's link, if any (scalars: the table comes with 20261130000004, after this file).
  v_link_id bigint;
  v_link_ext text;
  v_left jsonb;
  v_prev text;
begin
  v_run := public.allocator_lock_run_for_change(p_run_id, p_reason,
             format('withdraw worker %L', coalesce(p_worker_id, '')));
  v_run_name := coalesce(nullif(v_run.name, ''), v_run.id::text);

  select w.id, w.name into v_wid, v_name
    from public.worker_mappings w
   where w.allocation_run_id = v_run.allocation_run_id and w.external_id = p_worker_id;
  if v_wid is null then
    perform public.allocator_invalid(format(
      'Worker %L is not in run "%s": check the worker id.', coalesce(p_worker_id, ''), v_run_name));
  end if;
  if v_wid not in (select public.allocator_run_worker_ids(p_run_id)) then
    perform public.allocator_invalid(format(
      'Worker %L is not in run "%s" any more: they were withdrawn or left out of it already.',
      p_worker_id, v_run_name));
  end if;
  select count(*) into v_n from public.allocator_run_worker_ids(p_run_id);
  if v_n <= 1 then
    perform public.allocator_invalid(format(
      'Worker %L is the only worker of run "%s"; a run needs at least one worker.', p_worker_id, v_run_name));
  end if;

  if exists (select 1 from public.allocator_py_run_workers x where x.run_id = p_run_id) then
    delete from public.allocator_py_run_workers where run_id = p_run_id and worker_id = v_wid;
  else
    -- No list means every worker of the allocation run: list them all but this one.
    insert into public.allocator_py_run_workers (run_id, allocation_run_id, worker_id)
    select p_run_id, v_run.allocation_run_id, w.id
      from public.worker_mappings w
     where w.allocation_run_id = v_run.allocation_run_id and w.id <> v_wid
     order by w.id;
  end if;
  v_details := jsonb_build_object('name', v_name);

  -- Their link goes on without them; a link of one is no link (business-rules.md: 2 to 4).
  select l.id, l.external_id into v_link_id, v_link_ext
    from public.allocator_py_run_links l
    join public.allocator_py_run_link_workers lw on lw.link_id = l.id
   where lw.run_id = p_run_id and lw.worker_id = v_wid;
  if v_link_id is not null then
    delete from public.allocator_py_run_link_workers where run_id = p_run_id and worker_id = v_wid;
    select coalesce(jsonb_agg(w.external_id order by lw.id), '[]'::jsonb) into v_left
      from public.allocator_py_run_link_workers lw
      join public.worker_mappings w on w.id = lw.worker_id
     where lw.link_id = v_link_id
       and lw.worker_id in (select public.allocator_run_worker_ids(p_run_id));
    if jsonb_array_length(v_left) < 2 then
      delete from public.allocator_py_run_links where id = v_link_id;
    end if;
    v_details := v_details || jsonb_build_object('link', jsonb_build_object(
      'id', v_link_ext,
      'worker_ids', v_left,
      'removed', jsonb_array_length(v_left) < 2,
      'message', case when jsonb_array_length(v_left) < 2
                      then format('Link %L is removed: %s was its only other worker.', v_link_ext,
                                  coalesce(v_left ->> 0, 'nobody'))
                      else format('Link %L goes on without them (%s).', v_link_ext,
                                  (select string_agg(quote_literal(x), ', ') from jsonb_array_elements_text(v_left) x)) end));
  end if;

  -- Their place in the previous allocation is no move to count.
  delete from public.allocator_py_run_previous_allocations p
   using public.job_lines j
   where p.run_id = p_run_id and p.worker_id = v_wid and j.id = p.job_line_id
  returning j.external_id into v_prev;
  if v_prev is not null then
    v_details := v_details || jsonb_build_object('previous_allocation', jsonb_build_object(
      'job_line_id', v_prev,
      'message', format('Their previous allocation (job line %L) is dropped.', v_prev)));
  end if;

  return public.allocator_log_run_change(v_run, 'withdraw_worker', p_worker_id, null,
           v_details, p_reason, v_by);
end
$$;

-- ------------------------------------------------------------------ add a late worker

-- p_worker: {"id", "name"?, "qualification_ids"?: [tag, ...],
--            "preferences"?: [{"job_line_id", "rank"}, ...], "priority"?: 1, 2, ... or null}
--           (ranks as in worker_preferences; priority as in business-rules.md).
create or replace function public.allocator_add_worker(
  p_run_id uuid,
  p_worker jsonb,
  p_reason text,
  p_changed_by text default null
) returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_by text := public.allocator_resolve_actor(p_changed_by);
  v_run public.allocator_py_runs;
  v_run_name text;
  v_org uuid;
  v_id text := btrim(p_worker ->> 'id');
  v_name text := coalesce(btrim(p_worker ->> 'name'), '');
  v_tags jsonb := coalesce(p_worker -> 'qualification_ids', '[]'::jsonb);
  v_prefs jsonb := coalesce(p_worker -> 'preferences', '[]'::jsonb);
  v_priority integer;
  v_wid bigint;
  v_bad text;
  v_jmap jsonb;  -- the run's job lines: external id -> id
begin
  v_run := public.allocator_lock_run_for_change(p_run_id, p_reason,
             format('add worker %L', coalesce(v_id, '')));
  v_run_name := coalesce(nullif(v_run.name, ''), v_run.id::text);
  select organisation_id into v_org from public.allocation_runs where id = v_run.allocation_run_id;

  if p_worker is null or jsonb_typeof(p_worker) <> 'object' or coalesce(v_id, '') = '' then
    perform public.allocator_invalid('The late worker needs an id (the id their rankings use).');
  end if;
  -- The Limits of run-snapshot.md, as for an imported worker: a run holding more could no
  -- longer be loaded, solved or exported.
  if length(v_id) > 200 or v_id ~ '[\x01-\x1f\x7f-\x9f]|^[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]|[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$' then
    perform public.allocator_invalid(format(
      'The late worker''s id %L is not an id: an id has 1 to 200 characters, without control characters or spaces at either end.',
      left(v_id, 40) || case when length(v_id) > 40 then '…' else '' end));
  end if;
  if jsonb_typeof(p_worker -> 'name') not in ('string', 'null') then
    perform public.allocator_invalid(format('Worker %L: the name must be text, not %s.', v_id, p_worker -> 'name'));
  end if;
  if length(v_name) > 500 or v_name ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]' then
    perform public.allocator_invalid(format(
      'Worker %L: a name has at most 500 characters, without control characters other than tab and line breaks.', v_id));
  end if;
  if exists (select 1 from public.worker_mappings w
              where w.allocation_run_id = v_run.allocation_run_id and w.external_id = v_id
                and w.id in (select public.allocator_run_worker_ids(p_run_id))) then
    perform public.allocator_invalid(format(
      'Worker %L is already in run "%s": give the late worker an id of their own.', v_id, v_run_name));
  end if;
  if exists (select 1 from public.worker_mappings w
              where w.allocation_run_id = v_run.allocation_run_id and w.external_id = v_id) then
    perform public.allocator_invalid(format(
      'The id %L belongs to a worker withdrawn from (or left out of) run "%s"; '
      'give the late worker an id of their own.', v_id, v_run_name));
  end if;

  if jsonb_typeof(v_tags) <> 'array' then
    perform public.allocator_invalid(format('Worker %L: the qualifications must be a list of tags.', v_id));
  end if;
  select format('Worker %L: qualification %s is not a tag (tags are text of 1 to 200 characters, without control characters).', v_id, t.ord)
    into v_bad
    from jsonb_array_elements(v_tags) with ordinality t(e, ord)
   where jsonb_typeof(t.e) <> 'string' or btrim(t.e #>> '{}') = ''
      or length(btrim(t.e #>> '{}')) > 200 or (t.e #>> '{}') ~ '[\x01-\x1f\x7f-\x9f]'
      or btrim(t.e #>> '{}') ~ '^[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]|[\s\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$'
   order by t.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  if jsonb_typeof(v_prefs) <> 'array' then
    perform public.allocator_invalid(format('Worker %L: the ranked lines must be a list.', v_id));
  end if;
  if coalesce(jsonb_typeof(p_worker -> 'priority'), 'null') <> 'null' then
    if not coalesce(case when jsonb_typeof(p_worker -> 'priority') = 'number' and (p_worker ->> 'priority') ~ '^[0-9]+$'
                         then (p_worker ->> 'priority')::numeric between 1 and 1000000 end,
                    false) then
      perform public.allocator_invalid(format(
        'Worker %L: the priority must be a whole number of at least 1 (1 is placed first) and at most 1,000,000, not %s.',
        v_id, p_worker -> 'priority'));
    end if;
    v_priority := (p_worker ->> 'priority')::integer;
  end if;
  select coalesce(jsonb_object_agg(j.external_id, j.id), '{}'::jsonb) into v_jmap
    from public.job_lines j
   where j.id in (select public.allocator_run_job_line_ids(p_run_id));
  select m into v_bad from (
    select x.ord,
           case
             when jsonb_typeof(x.e) <> 'object' then
               format('Worker %L, ranked line %s: give a job line and a rank.', v_id, x.ord)
             when v_jmap -> (x.e ->> 'job_line_id') is null then
               format('Worker %L ranks job line %L, which is not a job line of run "%s".',
                      v_id, coalesce(x.e ->> 'job_line_id', ''), v_run_name)
             when coalesce(case when jsonb_typeof(x.e -> 'rank') = 'number'
                                -- numeric: JSON's 1e400 is no double ('out of range for type double precision').
                                then (x.e ->> 'rank')::numeric between 1 and 1e9 end, false) is false then
               format('Worker %L ranks job line %L with %s: a rank is a number from 1 to 1,000,000,000.',
                      v_id, x.e ->> 'job_line_id', public.allocator_shown(x.e -> 'rank'))
             when exists (select 1 from jsonb_array_elements(v_prefs) with ordinality y(e, ord)
                           where y.ord < x.ord and y.e ->> 'job_line_id' = x.e ->> 'job_line_id') then
               format('Worker %L ranks job line %L more than once.', v_id, x.e ->> 'job_line_id')
             when not v_run.allow_worker_preference_ties
                  and exists (select 1 from jsonb_array_elements(v_prefs) with ordinality y(e, ord)
                               where y.ord < x.ord
                                 and case when jsonb_typeof(y.e -> 'rank') = 'number'
                                          then (y.e ->> 'rank')::numeric end
                                     = (x.e ->> 'rank')::numeric) then
               format('Worker %L gives rank %s to more than one job line, but this run does not allow tied ranks.',
                      v_id, x.e ->> 'rank')
           end as m
      from jsonb_array_elements(v_prefs) with ordinality x(e, ord)) c
   where c.m is not null
   order by c.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.worker_mappings (allocation_run_id, external_id, name, priority)
  values (v_run.allocation_run_id, v_id, v_name, v_priority)
  returning id into v_wid;

  insert into public.qualification_tags (organisation_id, external_id, name)
  select distinct v_org, btrim(t), btrim(t) from jsonb_array_elements_text(v_tags) t
  on conflict (organisation_id, external_id) do nothing;
  insert into public.worker_qualifications (allocation_run_id, worker_id, qualification_tag_id)
  select v_run.allocation_run_id, v_wid, q.id
    from jsonb_array_elements_text(v_tags) with ordinality t(tag, ord)
    join public.qualification_tags q on q.organisation_id = v_org and q.external_id = btrim(t.tag)
   order by t.ord
  on conflict (worker_id, qualification_tag_id) do nothing;

  insert into public.preference_worker_job_lines (allocation_run_id, worker_id, job_line_id, rank)
  select v_run.allocation_run_id, v_wid, (v_jmap ->> (x.e ->> 'job_line_id'))::bigint,
         (x.e ->> 'rank')::double precision
    from jsonb_array_elements(v_prefs) with ordinality x(e, ord)
   order by x.ord;

  -- A run that lists its workers takes the late worker in; one that lists none has them already.
  if exists (select 1 from public.allocator_py_run_workers x where x.run_id = p_run_id) then
    insert into public.allocator_py_run_workers (run_id, allocation_run_id, worker_id)
    values (p_run_id, v_run.allocation_run_id, v_wid);
  end if;

  return public.allocator_log_run_change(v_run, 'add_worker', v_id, null,
           jsonb_build_object(
             'name', v_name,
             'qualification_ids', (select coalesce(jsonb_agg(btrim(t) order by ord), '[]'::jsonb)
                                     from jsonb_array_elements_text(v_tags) with ordinality u(t, ord)),
             'preferences', (select coalesce(jsonb_agg(jsonb_build_object(
                                       'job_line_id', x.e ->> 'job_line_id',
                                       'rank', (x.e ->> 'rank')::double precision) order by x.ord), '[]'::jsonb)
                               from jsonb_array_elements(v_prefs) with ordinality x(e, ord)))
           || case when v_priority is not null then jsonb_build_object('priority', v_priority) else '{}'::jsonb end,
           p_reason, v_by);
end
$$;

-- ------------------------------------------------------------------ change a job line

-- Before the business rules it had no site: that version would stay beside this one (a
-- call naming only the first arguments would then match both).
drop function if exists public.allocator_set_job_line(uuid, text, text, integer, boolean, text);

-- p_site: the line's new site (business-rules.md); p_clear_site: the line becomes a site of
-- its own. Either, both or neither of places and must-be-filled may change with it.
create or replace function public.allocator_set_job_line(
  p_run_id uuid,
  p_job_line_id text,
  p_reason text,
  p_max_n_workers integer default null,
  p_must_have_workers boolean default null,
  p_changed_by text default null,
  p_site text default null,
  p_clear_site boolean default false
) returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_by text := public.allocator_resolve_actor(p_changed_by);
  v_run public.allocator_py_runs;
  v_run_name text;
  v_line public.job_lines;
  v_places integer;
  v_must boolean;
  v_site text;
  v_bad text;
  v_before jsonb;
  v_after jsonb;
begin
  v_run := public.allocator_lock_run_for_change(p_run_id, p_reason,
             format('change job line %L', coalesce(p_job_line_id, '')));
  v_run_name := coalesce(nullif(v_run.name, ''), v_run.id::text);

  select j.* into v_line
    from public.job_lines j
   where j.allocation_run_id = v_run.allocation_run_id and j.external_id = p_job_line_id
     and j.id in (select public.allocator_run_job_line_ids(p_run_id));
  if v_line.id is null then
    perform public.allocator_invalid(format(
      'Job line %L is not a job line of run "%s": check the line id.', coalesce(p_job_line_id, ''), v_run_name));
  end if;
  if p_max_n_workers is null and p_must_have_workers is null and p_site is null and not coalesce(p_clear_site, false) then
    perform public.allocator_invalid(format(
      'Job line %L: say what to change (its places, whether it must be filled, or its site).', p_job_line_id));
  end if;
  if p_max_n_workers is not null and (p_max_n_workers < 0 or p_max_n_workers > 1000000) then
    perform public.allocator_invalid(format(
      'Job line %L: places must be from 0 to 1,000,000 (got %s).', p_job_line_id, p_max_n_workers));
  end if;
  if p_site is not null and coalesce(p_clear_site, false) then
    perform public.allocator_invalid(format(
      'Job line %L: give it a site or make it a site of its own, not both.', p_job_line_id));
  end if;
  if p_site is not null and (p_site ~ '^[\s\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$' or p_site <> btrim(p_site) or length(p_site) > 500
                             or p_site ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]') then
    perform public.allocator_invalid(format(
      'Job line %L: a site is a name of 1 to 500 characters, without control characters or spaces at either end (got %L).',
      p_job_line_id, p_site));
  end if;
  v_places := coalesce(p_max_n_workers, v_line.max_n_workers);
  v_must := coalesce(p_must_have_workers, v_line.must_have_workers);
  v_site := case when coalesce(p_clear_site, false) then null else coalesce(p_site, v_line.site) end;
  if (v_places, v_must) = (v_line.max_n_workers, v_line.must_have_workers)
     and v_site is not distinct from v_line.site then
    perform public.allocator_invalid(format(
      'Job line %L already has %s place(s), %s and %s: there is nothing to change.', p_job_line_id,
      v_places, case when v_must then 'must be filled' else 'need not be filled' end,
      coalesce(format('site %L', v_site), 'is a site of its own')));
  end if;

  update public.job_lines
     set max_n_workers = v_places, must_have_workers = v_must, site = v_site
   where id = v_line.id;

  -- The run must stay valid (business-rules.md): every site a quota names is some line's,
  -- and the pinned workers of one link are on one site.
  if v_site is distinct from v_line.site then
    select format('Job line %L cannot move to %s: quota %L counts site %L, and no other job line of run "%s" is there. '
                  'Change or remove the quota first.', p_job_line_id,
                  coalesce(format('site %L', v_site), 'a site of its own'), q.external_id, i.site, v_run_name)
      into v_bad
      from public.allocator_py_run_quotas q
      join public.allocator_py_run_quota_items i on i.quota_id = q.id
     where q.run_id = p_run_id and i.site = v_line.site
       and not exists (select 1 from public.job_lines j
                        where j.site = i.site and j.id in (select public.allocator_run_job_line_ids(p_run_id)))
     order by q.id limit 1;
    if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

    select format('Job line %L cannot move to %s: link %L would have its pinned workers on different sites (%s).',
                  p_job_line_id, coalesce(format('site %L', v_site), 'a site of its own'), l.external_id,
                  string_agg(format('%L on job line %L', w.external_id, j.external_id), ', ' order by lw.id))
      into v_bad
      from public.allocator_py_run_links l
      join public.allocator_py_run_link_workers lw on lw.link_id = l.id
      join public.allocator_py_run_overrides o on o.run_id = p_run_id and o.kind = 'pin' and o.worker_id = lw.worker_id
      join public.job_lines j on j.id = o.job_line_id
      join public.worker_mappings w on w.id = lw.worker_id
     where l.run_id = p_run_id
     group by l.id, l.external_id
    having count(distinct coalesce('s:' || j.site, 'j:' || j.external_id)) > 1
     order by l.id limit 1;
    if v_bad is not null then perform public.allocator_invalid(v_bad); end if;
  end if;

  v_before := jsonb_build_object('max_n_workers', v_line.max_n_workers, 'must_have_workers', v_line.must_have_workers);
  v_after := jsonb_build_object('max_n_workers', v_places, 'must_have_workers', v_must);
  -- The site is logged when it is set or changed, so that earlier entries keep their shape.
  if v_line.site is not null or v_site is not null then
    v_before := v_before || jsonb_build_object('site', v_line.site);
    v_after := v_after || jsonb_build_object('site', v_site);
  end if;
  return public.allocator_log_run_change(v_run, 'set_job_line', null, p_job_line_id,
           jsonb_build_object('name', v_line.name, 'before', v_before, 'after', v_after),
           p_reason, v_by);
end
$$;

-- Helpers run only inside the functions above; planners and workers call the three changes.
revoke all on function public.allocator_run_changes_append_only() from public, anon, authenticated, service_role;
revoke all on function public.allocator_lock_run_for_change(uuid, text, text) from public, anon, authenticated, service_role;
revoke all on function public.allocator_log_run_change(public.allocator_py_runs, text, text, text, jsonb, text, text)
  from public, anon, authenticated, service_role;
revoke all on function public.allocator_withdraw_worker(uuid, text, text, text) from public, anon, authenticated, service_role;
revoke all on function public.allocator_add_worker(uuid, jsonb, text, text) from public, anon, authenticated, service_role;
revoke all on function public.allocator_set_job_line(uuid, text, text, integer, boolean, text, text, boolean) from public, anon, authenticated, service_role;
grant execute on function
  public.allocator_withdraw_worker(uuid, text, text, text),
  public.allocator_add_worker(uuid, jsonb, text, text),
  public.allocator_set_job_line(uuid, text, text, integer, boolean, text, text, boolean)
to authenticated, service_role;

-- The run list, with where each run came from and when a scenario was last saved: the
-- columns of allocator_run_summaries and three more. (A view of its own, not a replacement
-- of allocator_run_summaries, so that the earlier files can still be applied over this one.)
create or replace view public.allocator_run_list
with (security_invoker = true)
as
select s.*,
       r.source_file,
       (select max(sc.created_at) from public.allocator_scenarios sc where sc.run_id = s.id)
         as last_scenario_saved_at,
       (select count(*) from public.allocator_run_changes c where c.run_id = s.id)::integer
         as n_changes
  from public.allocator_run_summaries s
  join public.allocator_py_runs r on r.id = s.id;

revoke all on table public.allocator_run_list from public, anon, authenticated, service_role;
grant select on table public.allocator_run_list to authenticated, service_role;
