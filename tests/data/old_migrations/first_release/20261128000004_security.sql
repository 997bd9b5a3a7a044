-- Row-level security and explicit grants on every table, view and function.
--
-- Roles (Supabase's): anon gets nothing. authenticated (a signed-in planner) reads the rows
-- of the organisations they belong to, saves and deletes their own scenarios, and writes
-- everything else only through the SECURITY DEFINER functions. service_role (headless
-- workers, trusted back ends; BYPASSRLS on Supabase) reads and writes the tables, except
-- that nobody may change or delete publication log entries.
--
-- Every grant is revoked first, so the result does not depend on a project's default
-- privileges. Idempotent: policies are dropped and created again.

do $$
declare
  t text;
  seq text;
begin
  -- Tables scoped by allocation run: a planner reads those of their organisations.
  foreach t in array array[
    'worker_mappings', 'job_lines', 'preferencers', 'job_line_preferencers',
    'worker_qualifications', 'preference_worker_job_lines', 'preference_preferencer_workers',
    'job_line_eligibility', 'job_line_eligibility_items', 'allocation_run_preferencer_weightings',
    'allocator_py_runs', 'allocator_py_run_workers', 'allocator_py_run_job_lines',
    'allocator_py_run_overrides', 'allocator_py_allocations'
  ] loop
    execute format('alter table public.%I enable row level security', t);
    execute format('drop policy if exists %I on public.%I', t || '_planner_read', t);
    execute format(
      'create policy %I on public.%I for select to authenticated '
      'using (allocation_run_id in (select public.allocator_my_allocation_runs()))',
      t || '_planner_read', t);
  end loop;

  -- Every table: no grants but the intended ones.
  foreach t in array array[
    'organisations', 'organisation_members', 'allocation_runs', 'qualification_tags',
    'worker_mappings', 'job_lines', 'preferencers', 'job_line_preferencers',
    'worker_qualifications', 'preference_worker_job_lines', 'preference_preferencer_workers',
    'job_line_eligibility', 'job_line_eligibility_items', 'allocation_run_preferencer_weightings',
    'allocator_py_runs', 'allocator_py_run_workers', 'allocator_py_run_job_lines',
    'allocator_py_run_overrides', 'allocator_py_allocations',
    'allocator_scenarios', 'allocator_publication_log'
  ] loop
    execute format('alter table public.%I enable row level security', t);
    execute format('revoke all on table public.%I from public, anon, authenticated, service_role', t);
    execute format('grant select on table public.%I to authenticated', t);
    if t = 'allocator_publication_log' then
      execute format('grant select, insert on table public.%I to service_role', t);
    else
      execute format('grant select, insert, update, delete on table public.%I to service_role', t);
    end if;
    -- The identity sequence, if the table has one.
    select pg_catalog.pg_get_serial_sequence('public.' || quote_ident(t), 'id') into seq
     where exists (select 1 from pg_catalog.pg_attribute a
                    where a.attrelid = ('public.' || quote_ident(t))::regclass
                      and a.attname = 'id' and not a.attisdropped);
    if seq is not null then
      execute format('revoke all on sequence %s from public, anon, authenticated, service_role', seq);
      execute format('grant usage, select on sequence %s to service_role', seq);
    end if;
  end loop;
end
$$;

-- Organisations and membership.
drop policy if exists organisations_member_read on public.organisations;
create policy organisations_member_read on public.organisations
  for select to authenticated
  using (id in (select public.allocator_my_organisations()));

drop policy if exists organisation_members_member_read on public.organisation_members;
create policy organisation_members_member_read on public.organisation_members
  for select to authenticated
  using (organisation_id in (select public.allocator_my_organisations()));

drop policy if exists allocation_runs_planner_read on public.allocation_runs;
create policy allocation_runs_planner_read on public.allocation_runs
  for select to authenticated
  using (id in (select public.allocator_my_allocation_runs()));

drop policy if exists qualification_tags_planner_read on public.qualification_tags;
create policy qualification_tags_planner_read on public.qualification_tags
  for select to authenticated
  using (organisation_id in (select public.allocator_my_organisations()));

-- Scenarios: a planner reads their organisations' and saves and deletes their own.
grant insert, delete on table public.allocator_scenarios to authenticated;

drop policy if exists allocator_scenarios_planner_read on public.allocator_scenarios;
create policy allocator_scenarios_planner_read on public.allocator_scenarios
  for select to authenticated
  using (run_id in (select public.allocator_my_runs()));

drop policy if exists allocator_scenarios_planner_insert on public.allocator_scenarios;
create policy allocator_scenarios_planner_insert on public.allocator_scenarios
  for insert to authenticated
  with check (run_id in (select public.allocator_my_runs())
              and created_by = (select auth.uid())::text);

drop policy if exists allocator_scenarios_planner_delete on public.allocator_scenarios;
create policy allocator_scenarios_planner_delete on public.allocator_scenarios
  for delete to authenticated
  using (run_id in (select public.allocator_my_runs())
         and created_by = (select auth.uid())::text);

-- The publication log: read by the run's planners, written only by allocator_publish and
-- allocator_complete_run, never changed (see the append-only trigger).
drop policy if exists allocator_publication_log_planner_read on public.allocator_publication_log;
create policy allocator_publication_log_planner_read on public.allocator_publication_log
  for select to authenticated
  using (run_id in (select public.allocator_my_runs()));

-- The run list.
revoke all on table public.allocator_run_summaries from public, anon, authenticated, service_role;
grant select on table public.allocator_run_summaries to authenticated, service_role;

-- Functions: nobody by default; planners and workers as listed.
do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure
      from pg_catalog.pg_proc p
     where p.pronamespace = 'public'::regnamespace
       and (p.proname like 'allocator\_%' or p.proname in (
              'get_worker_qualifications', 'allocation_runs_bump_version', 'qualification_tags_changed'))
  loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', f);
  end loop;
end
$$;

-- Called by row-level security policies and by the readers, as the planner.
grant execute on function
  public.allocator_caller_is_trusted(),
  public.allocator_my_organisations(),
  public.allocator_my_allocation_runs(),
  public.allocator_my_runs(),
  public.allocator_may_access_run(uuid),
  public.allocator_run_not_found(uuid),
  public.allocator_run_worker_ids(uuid),
  public.allocator_run_job_line_ids(uuid),
  public.allocator_run_settings(public.allocator_py_runs),
  public.allocator_run_inputs_version(uuid),
  public.allocator_run_snapshot(uuid),
  public.allocator_run_snapshot_versioned(uuid),
  public.allocator_allocations_json(uuid),
  public.get_worker_qualifications(uuid),
  public.allocator_import_run(jsonb, uuid, text),
  public.allocator_save_scenario(uuid, text, jsonb, jsonb, jsonb, text, text),
  public.allocator_publish(uuid, uuid, text, text, boolean, text, bigint),
  public.allocator_requeue_run(uuid)
to authenticated, service_role;

-- Headless workers only.
grant execute on function
  public.allocator_claim(text, double precision, uuid, integer),
  public.allocator_complete_run(uuid, text, jsonb, jsonb),
  public.allocator_fail_run(uuid, text, text)
to service_role;
