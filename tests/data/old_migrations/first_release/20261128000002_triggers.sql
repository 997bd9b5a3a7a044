-- Triggers: default external ids, change tracking (inputs_version) and the append-only log.
--
-- Change tracking. A scenario is solved on a snapshot whose fingerprint (sha256 of the
-- canonical snapshot, computed in Python) is saved with it. To publish, the store loads the
-- run again, computes the current fingerprint and passes it to allocator_publish, which
-- refuses a scenario whose fingerprint differs (stale). The store also passes the run's
-- `inputs_version` read in the same transaction as that load; allocator_publish compares
-- it under the run's lock, so a change that lands between the load and the publish is
-- refused too. The version of a run is allocation_runs.inputs_version +
-- allocator_py_runs.inputs_version; both only grow, each bumped at most once per
-- transaction (inputs_version_xact), by the triggers below.
--
-- Idempotent: `create or replace`.

-- ------------------------------------------------------------------ external ids

create or replace function public.allocator_default_external_id() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.external_id is null or new.external_id = '' then
    new.external_id := new.id::text;
  end if;
  return new;
end
$$;

create or replace trigger worker_mappings_external_id
  before insert or update of external_id on public.worker_mappings
  for each row execute function public.allocator_default_external_id();
create or replace trigger job_lines_external_id
  before insert or update of external_id on public.job_lines
  for each row execute function public.allocator_default_external_id();
create or replace trigger preferencers_external_id
  before insert or update of external_id on public.preferencers
  for each row execute function public.allocator_default_external_id();
create or replace trigger qualification_tags_external_id
  before insert or update of external_id on public.qualification_tags
  for each row execute function public.allocator_default_external_id();

-- ------------------------------------------------------------------ change tracking

-- Bump an allocation run's inputs_version, once per transaction. An import names its
-- allocation run in `allocator.importing`: its own rows need no tracking.
create or replace function public.allocator_touch_allocation_run(p_allocation_run_id uuid)
returns void
language sql
security definer
set search_path = ''
as $$
  update public.allocation_runs
     set inputs_version = inputs_version + 1,
         inputs_version_xact = pg_catalog.pg_current_xact_id()
   where id = p_allocation_run_id
     and inputs_version_xact is distinct from pg_catalog.pg_current_xact_id()
     and p_allocation_run_id::text is distinct from
         nullif(pg_catalog.current_setting('allocator.importing', true), '')
$$;

create or replace function public.allocator_touch_run(p_run_id uuid)
returns void
language sql
security definer
set search_path = ''
as $$
  update public.allocator_py_runs
     set inputs_version = inputs_version + 1,
         inputs_version_xact = pg_catalog.pg_current_xact_id()
   where id = p_run_id
     and inputs_version_xact is distinct from pg_catalog.pg_current_xact_id()
     and allocation_run_id::text is distinct from
         nullif(pg_catalog.current_setting('allocator.importing', true), '')
$$;

-- A run's allocations change the inputs of every *exclusive* sibling run.
create or replace function public.allocator_touch_exclusive_siblings(p_allocation_run_id uuid, p_run_id uuid)
returns void
language sql
security definer
set search_path = ''
as $$
  update public.allocator_py_runs
     set inputs_version = inputs_version + 1,
         inputs_version_xact = pg_catalog.pg_current_xact_id()
   where allocation_run_id = p_allocation_run_id
     and id <> p_run_id
     and is_exclusive
     and inputs_version_xact is distinct from pg_catalog.pg_current_xact_id()
$$;

create or replace function public.allocator_inputs_changed() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op in ('UPDATE', 'DELETE') then
    perform public.allocator_touch_allocation_run(old.allocation_run_id);
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    perform public.allocator_touch_allocation_run(new.allocation_run_id);
  end if;
  return null;
end
$$;

do $$
declare
  t text;
begin
  foreach t in array array[
    'worker_mappings', 'job_lines', 'preferencers', 'job_line_preferencers',
    'worker_qualifications', 'preference_worker_job_lines', 'preference_preferencer_workers',
    'job_line_eligibility', 'job_line_eligibility_items', 'allocation_run_preferencer_weightings'
  ] loop
    execute format(
      'create or replace trigger %I after insert or update or delete on public.%I '
      'for each row execute function public.allocator_inputs_changed()',
      t || '_inputs_changed', t);
  end loop;
end
$$;

create or replace function public.allocator_run_inputs_changed() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op in ('UPDATE', 'DELETE') then
    perform public.allocator_touch_run(old.run_id);
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    perform public.allocator_touch_run(new.run_id);
  end if;
  return null;
end
$$;

do $$
declare
  t text;
begin
  foreach t in array array['allocator_py_run_workers', 'allocator_py_run_job_lines', 'allocator_py_run_overrides'] loop
    execute format(
      'create or replace trigger %I after insert or update or delete on public.%I '
      'for each row execute function public.allocator_run_inputs_changed()',
      t || '_inputs_changed', t);
  end loop;
end
$$;

-- Renaming an allocation run changes its snapshots.
create or replace function public.allocation_runs_bump_version() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if (new.name, new.external_id) is distinct from (old.name, old.external_id) then
    new.inputs_version := greatest(new.inputs_version, old.inputs_version + 1);
  end if;
  return new;
end
$$;

create or replace trigger allocation_runs_bump_version
  before update on public.allocation_runs
  for each row execute function public.allocation_runs_bump_version();

-- A run's own columns that shape its snapshot.
create or replace function public.allocator_py_runs_bump_version() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if (new.allocation_run_id, new.is_exclusive, new.external_id, new.name,
      new.preferencer_weight, new.preference_power, new.max_seconds, new.rng_seed,
      new.allow_worker_preference_ties, new.stability)
     is distinct from
     (old.allocation_run_id, old.is_exclusive, old.external_id, old.name,
      old.preferencer_weight, old.preference_power, old.max_seconds, old.rng_seed,
      old.allow_worker_preference_ties, old.stability) then
    new.inputs_version := greatest(new.inputs_version, old.inputs_version + 1);
  end if;
  return new;
end
$$;

create or replace trigger allocator_py_runs_bump_version
  before update on public.allocator_py_runs
  for each row execute function public.allocator_py_runs_bump_version();

-- A run becoming complete (or no longer complete) changes what its exclusive siblings see.
create or replace function public.allocator_py_runs_status_changed() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if (old.status = 'complete') is distinct from (new.status = 'complete') then
    perform public.allocator_touch_exclusive_siblings(new.allocation_run_id, new.id);
  end if;
  return null;
end
$$;

create or replace trigger allocator_py_runs_status_changed
  after update of status on public.allocator_py_runs
  for each row execute function public.allocator_py_runs_status_changed();

create or replace function public.allocator_py_allocations_changed() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op in ('UPDATE', 'DELETE') then
    perform public.allocator_touch_exclusive_siblings(old.allocation_run_id, old.run_id);
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    perform public.allocator_touch_exclusive_siblings(new.allocation_run_id, new.run_id);
  end if;
  return null;
end
$$;

create or replace trigger allocator_py_allocations_changed
  after insert or update or delete on public.allocator_py_allocations
  for each row execute function public.allocator_py_allocations_changed();

-- A tag's external id is part of every snapshot that uses it.
create or replace function public.qualification_tags_changed() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.external_id is distinct from old.external_id then
    perform public.allocator_touch_allocation_run(u.allocation_run_id)
       from (select wq.allocation_run_id from public.worker_qualifications wq
              where wq.qualification_tag_id = new.id
             union
             select i.allocation_run_id from public.job_line_eligibility_items i
              where i.qualification_tag_id = new.id) u;
  end if;
  return null;
end
$$;

create or replace trigger qualification_tags_changed
  after update of external_id on public.qualification_tags
  for each row execute function public.qualification_tags_changed();

-- ------------------------------------------------------------------ append-only log

create or replace function public.allocator_publication_log_append_only() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception using
    errcode = '42501',
    message = 'The publication log is append-only: its entries cannot be changed or deleted.',
    hint = 'To replace a run''s allocations, publish a scenario with supersede and a reason.';
end
$$;

create or replace trigger allocator_publication_log_no_update
  before update or delete on public.allocator_publication_log
  for each row execute function public.allocator_publication_log_append_only();
create or replace trigger allocator_publication_log_no_truncate
  before truncate on public.allocator_publication_log
  for each statement execute function public.allocator_publication_log_append_only();
