-- Scenario versions: a scenario saved again under its name is a new version of it.
--
-- A planner whose scenario went stale (the run's data changed after it was solved) solves it
-- again on the current data. The new solve is the same scenario (same name, settings and
-- overrides) with another result, so it is saved as the next version of that name; the older
-- versions stay as they were, readable, because the publication log may point at them.
--
-- * allocator_scenarios.version: 1, 2, 3, ... per (run, name), given by a trigger on every
--   insert (whatever the caller sent), so allocator_save_scenario, allocator_publish_new_version
--   and a planner's direct insert all number alike; previous_id points at the version before.
-- * allocator_latest_scenarios: the latest version of each scenario (what pickers list).
-- * allocator_publish_new_version: save the re-solved scenario as its next version and publish
--   it, in one transaction, refused when the run's data changed again during the solve.
--
-- Idempotent: `if not exists` / `or replace`; the backfill touches only unnumbered rows.

-- ------------------------------------------------------------------ columns

alter table public.allocator_scenarios add column if not exists version integer;
alter table public.allocator_scenarios add column if not exists previous_id uuid
  references public.allocator_scenarios (id) on delete set null;

-- Scenarios saved before versions existed: numbered by the order they were saved in.
with numbered as (
  select s.id,
         row_number() over w as v,
         lag(s.id) over w as prev
    from public.allocator_scenarios s
  window w as (partition by s.run_id, s.name order by s.created_at, s.id)
)
update public.allocator_scenarios s
   set version = n.v, previous_id = n.prev
  from numbered n
 where n.id = s.id and s.version is null;

alter table public.allocator_scenarios alter column version set not null;
create unique index if not exists allocator_scenarios_version_idx
  on public.allocator_scenarios (run_id, name, version);

-- ------------------------------------------------------------------ numbering

-- Every new row is the next version of its (run, name). SECURITY DEFINER: the number counts
-- every version, also those row-level security would hide from the saver.
create or replace function public.allocator_scenarios_number_version() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_prev_id uuid;
  v_prev_version integer;
begin
  -- Two saves of one name at once wait for each other (until commit), so the second
  -- counts the first and they get n and n+1 instead of a unique-index error.
  perform pg_catalog.pg_advisory_xact_lock(
    pg_catalog.hashtextextended('allocator_scenarios:' || new.run_id::text || ':' || new.name, 0));
  select s.id, s.version into v_prev_id, v_prev_version
    from public.allocator_scenarios s
   where s.run_id = new.run_id and s.name = new.name
   order by s.version desc
   limit 1;
  new.version := coalesce(v_prev_version, 0) + 1;
  new.previous_id := v_prev_id;
  return new;
end
$$;

drop trigger if exists allocator_scenarios_number_version on public.allocator_scenarios;
create trigger allocator_scenarios_number_version
  before insert on public.allocator_scenarios
  for each row execute function public.allocator_scenarios_number_version();

-- ------------------------------------------------------------------ the latest versions

create or replace view public.allocator_latest_scenarios
with (security_invoker = true)
as
select s.*
  from public.allocator_scenarios s
 where not exists (select 1 from public.allocator_scenarios n
                    where n.run_id = s.run_id and n.name = s.name and n.version > s.version);

-- ------------------------------------------------------------------ re-solve and publish

-- Save p_result (a new solve of scenario p_scenario_id on the run's current data, whose
-- input fingerprint is p_input_fingerprint and inputs_version p_expected_inputs_version) as
-- the next version of that scenario, and publish it, atomically: when anything refuses
-- (the data changed again, no allocation, already published without supersede), nothing
-- is saved either.
create or replace function public.allocator_publish_new_version(
  p_run_id uuid,
  p_scenario_id uuid,
  p_result jsonb,
  p_input_fingerprint text,
  p_expected_inputs_version bigint,
  p_reason text default null,
  p_supersede boolean default false,
  p_published_by text default null
) returns table (scenario_id uuid, version integer, publication_id bigint, n_allocations integer,
                 superseded boolean, published_at timestamptz)
language plpgsql
volatile
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_by text := public.allocator_resolve_actor(p_published_by);
  v_sc public.allocator_scenarios;
  v_new uuid;
  v_version integer;
  v_status text := p_result ->> 'status';
  v_pub record;
begin
  perform public.allocator_lock_run(p_run_id);

  select * into v_sc from public.allocator_scenarios s where s.id = p_scenario_id;
  if not found or v_sc.run_id <> p_run_id then
    raise exception using errcode = 'AL006',
      message = format('Scenario %s was not found for run %s.', p_scenario_id, p_run_id);
  end if;
  if coalesce(btrim(p_input_fingerprint), '') = '' then
    perform public.allocator_invalid('A new version needs the input fingerprint it was solved on.');
  end if;
  if p_expected_inputs_version is null
     or p_expected_inputs_version <> public.allocator_run_inputs_version(p_run_id) then
    raise exception using errcode = 'AL001',
      message = format('The run''s data changed again while scenario "%s" was being solved.', v_sc.name),
      hint = 'Nothing was saved or published. Solve it again with the current data.';
  end if;
  if v_status is distinct from 'optimal' and v_status is distinct from 'feasible'
     or jsonb_typeof(p_result -> 'allocations') is distinct from 'array'
     or jsonb_array_length(p_result -> 'allocations') = 0 then
    raise exception using errcode = 'AL007',
      message = format('The new solve of scenario "%s" found no allocation (it ended %s), so nothing was saved or published.',
                       v_sc.name, coalesce(v_status, 'without a status'));
  end if;

  insert into public.allocator_scenarios (run_id, name, settings, overrides, result, input_fingerprint, created_by)
  values (p_run_id, v_sc.name, v_sc.settings, v_sc.overrides, p_result, p_input_fingerprint, v_by)
  returning id, version into v_new, v_version;

  select p.publication_id, p.n_allocations, p.superseded, p.published_at
    into v_pub
    from public.allocator_publish(p_run_id, v_new, p_input_fingerprint, p_reason, p_supersede,
                                  p_published_by, p_expected_inputs_version) p;

  return query select v_new, v_version, v_pub.publication_id, v_pub.n_allocations, v_pub.superseded,
                      v_pub.published_at;
end
$$;

-- ------------------------------------------------------------------ grants

revoke all on table public.allocator_latest_scenarios from public, anon, authenticated, service_role;
grant select on table public.allocator_latest_scenarios to authenticated, service_role;

revoke all on function public.allocator_scenarios_number_version() from public, anon, authenticated, service_role;
revoke all on function public.allocator_publish_new_version(uuid, uuid, jsonb, text, bigint, text, boolean, text)
  from public, anon, authenticated, service_role;
grant execute on function public.allocator_publish_new_version(uuid, uuid, jsonb, text, bigint, text, boolean, text)
  to authenticated, service_role;
