-- Trust nothing the caller sends: the database is the last line.
--
-- What this change concerns is defined once, where a reader looks for it (no database
-- outside this project had applied the first versions):
--
-- 1. Who is trusted is an allow-list (allocator_caller_is_trusted, in
--    20261128000003_functions.sql): the service role, the role that owns the allocator's
--    tables (the one that runs the migrations) and superusers. Every other role, including
--    a custom role that inherits `authenticated` (Supabase switches to whatever role a
--    token's `role` claim names), is a planner and meets every organisation check.
-- 2. Publishing (allocator_publish, with allocator_check_allocations and allocator_label, in
--    20261128000003_functions.sql) checks the scenario's allocation against the run's
--    current data inside the transaction (one line per worker, places, must-be-filled
--    lines, the five eligibility steps of allocation-model.md, pins and forbids: the run's
--    own, less those the scenario lifts, plus the scenario's own), and refuses it naming
--    every worker and line at fault. Staleness is decided by the database: a scenario is
--    stamped with the run's inputs version when it is saved, however it is saved
--    (allocator_scenarios.inputs_version in 20261128000001_core.sql, stamped by the trigger
--    allocator_scenarios_stamp_version in 20261128000002_triggers.sql); publishing refuses
--    it once that moved.
-- 3. A run can be put back in the queue only when it failed or its lease expired; a
--    planner never resets its attempts (allocator_requeue_run, in 20261128000003_functions.sql).
-- 4. A worker renews its lease while it solves (allocator_renew_lease, here).
--
-- New SQLSTATE: AL009 the run is not in a state that allows this (held by a worker, or
-- already waiting). Idempotent: `create or replace`.

-- ------------------------------------------------------------------ scenarios saved before

-- Scenarios saved before the stamp existed (databases made before this file; the column is
-- added by 20261128000001_core.sql): stamped with their run's version now, so they stay as
-- publishable as they were (the store's fingerprint check still tells a changed run). The
-- stamp trigger leaves no scenario without one, so applying this again changes nothing.
update public.allocator_scenarios s
   set inputs_version = public.allocator_run_inputs_version(s.run_id)
 where s.inputs_version is null;

-- ------------------------------------------------------------------ heartbeat

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
  if p_lease_seconds is null or not (p_lease_seconds > 0 and p_lease_seconds <= 604800) then
    perform public.allocator_invalid(format(
      'The lease must be a number of seconds greater than 0 and at most 604800 (a week), not %s.', p_lease_seconds));
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

revoke all on function public.allocator_renew_lease(uuid, text, double precision) from public, anon, authenticated, service_role;
grant execute on function public.allocator_renew_lease(uuid, text, double precision) to service_role;
