-- Core tables: organisations, allocation runs and their inputs, solve runs, allocations,
-- the dashboard's saved scenarios and the append-only publication log.
--
-- An *allocation run* is one intake (its workers, job lines, preferences and rules).
-- A *run* (`allocator_py_runs`) is one solve over part or all of an allocation run; its
-- snapshot (`allocator-run/1`) is built by `allocator_run_snapshot()`.
--
-- Every input row keeps its *external id* (the id a snapshot uses); rows created without
-- one get their own key as text. Every input table carries `allocation_run_id`, so that
-- row-level security and change tracking need no joins, and composite foreign keys keep
-- a row's references inside its own allocation run.
--
-- Idempotent: everything is `if not exists` / `or replace`, so applying it twice is harmless.
-- A column added to a table here after the table was first created also gets an
-- `add column if not exists` below the table, for the databases made before it.

-- ------------------------------------------------------------------ organisations

create table if not exists public.organisations (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  created_at timestamptz not null default now()
);

create table if not exists public.organisation_members (
  organisation_id uuid not null references public.organisations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null default 'planner' check (role in ('planner', 'admin')),
  created_at timestamptz not null default now(),
  primary key (organisation_id, user_id)
);
create index if not exists organisation_members_user_idx on public.organisation_members (user_id);

-- ------------------------------------------------------------------ allocation runs

create table if not exists public.allocation_runs (
  id uuid primary key default gen_random_uuid(),
  organisation_id uuid not null references public.organisations (id) on delete cascade,
  external_id text,
  name text not null default '',
  -- Bumped (once per transaction) by triggers whenever any input row changes.
  inputs_version bigint not null default 0,
  inputs_version_xact xid8,
  created_at timestamptz not null default now()
);
create index if not exists allocation_runs_organisation_idx on public.allocation_runs (organisation_id);

-- Workers taking part in an allocation run.
create table if not exists public.worker_mappings (
  id bigint generated always as identity primary key,
  allocation_run_id uuid not null references public.allocation_runs (id) on delete cascade,
  external_id text not null,
  name text not null default '',
  user_id uuid,
  created_at timestamptz not null default now(),
  unique (allocation_run_id, external_id),
  unique (allocation_run_id, id)
);

create table if not exists public.job_lines (
  id bigint generated always as identity primary key,
  allocation_run_id uuid not null references public.allocation_runs (id) on delete cascade,
  external_id text not null,
  name text not null default '',
  max_n_workers integer not null check (max_n_workers >= 0),
  must_have_workers boolean not null default false,
  created_at timestamptz not null default now(),
  unique (allocation_run_id, external_id),
  unique (allocation_run_id, id)
);

-- Preferencers (supervisors) rank workers for the job lines they are linked to.
create table if not exists public.preferencers (
  id bigint generated always as identity primary key,
  allocation_run_id uuid not null references public.allocation_runs (id) on delete cascade,
  external_id text not null,
  name text not null default '',
  user_id uuid,
  created_at timestamptz not null default now(),
  unique (allocation_run_id, external_id),
  unique (allocation_run_id, id)
);

create table if not exists public.job_line_preferencers (
  id bigint generated always as identity primary key,
  allocation_run_id uuid not null,
  job_line_id bigint not null,
  preferencer_id bigint not null,
  unique (job_line_id, preferencer_id),
  foreign key (allocation_run_id, job_line_id)
    references public.job_lines (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, preferencer_id)
    references public.preferencers (allocation_run_id, id) on delete cascade
);
create index if not exists job_line_preferencers_ar_idx on public.job_line_preferencers (allocation_run_id);

-- Qualification tags belong to an organisation; workers carry them per allocation run.
create table if not exists public.qualification_tags (
  id bigint generated always as identity primary key,
  organisation_id uuid not null references public.organisations (id) on delete cascade,
  external_id text not null,
  name text not null default '',
  created_at timestamptz not null default now(),
  unique (organisation_id, external_id)
);

create table if not exists public.worker_qualifications (
  id bigint generated always as identity primary key,
  allocation_run_id uuid not null,
  worker_id bigint not null,
  qualification_tag_id bigint not null references public.qualification_tags (id) on delete cascade,
  unique (worker_id, qualification_tag_id),
  foreign key (allocation_run_id, worker_id)
    references public.worker_mappings (allocation_run_id, id) on delete cascade
);
create index if not exists worker_qualifications_ar_idx on public.worker_qualifications (allocation_run_id);
create index if not exists worker_qualifications_tag_idx on public.worker_qualifications (qualification_tag_id);

-- Worker ranks of job lines (lower is better; ties and gaps allowed).
create table if not exists public.preference_worker_job_lines (
  id bigint generated always as identity primary key,
  allocation_run_id uuid not null,
  worker_id bigint not null,
  job_line_id bigint not null,
  rank double precision not null check (rank >= 1 and rank < 'infinity'),
  unique (worker_id, job_line_id),
  foreign key (allocation_run_id, worker_id)
    references public.worker_mappings (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, job_line_id)
    references public.job_lines (allocation_run_id, id) on delete cascade
);
create index if not exists preference_worker_job_lines_ar_idx on public.preference_worker_job_lines (allocation_run_id);
create index if not exists preference_worker_job_lines_line_idx on public.preference_worker_job_lines (job_line_id);

-- Preferencer ranks of workers.
create table if not exists public.preference_preferencer_workers (
  id bigint generated always as identity primary key,
  allocation_run_id uuid not null,
  preferencer_id bigint not null,
  worker_id bigint not null,
  rank double precision not null check (rank >= 1 and rank < 'infinity'),
  unique (preferencer_id, worker_id),
  foreign key (allocation_run_id, preferencer_id)
    references public.preferencers (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, worker_id)
    references public.worker_mappings (allocation_run_id, id) on delete cascade
);
create index if not exists preference_preferencer_workers_ar_idx on public.preference_preferencer_workers (allocation_run_id);
create index if not exists preference_preferencer_workers_worker_idx on public.preference_preferencer_workers (worker_id);

-- Eligibility: one entry per job line (it may be empty), with its rule items.
create table if not exists public.job_line_eligibility (
  id bigint generated always as identity primary key,
  allocation_run_id uuid not null,
  job_line_id bigint not null,
  unique (job_line_id),
  unique (allocation_run_id, id),
  foreign key (allocation_run_id, job_line_id)
    references public.job_lines (allocation_run_id, id) on delete cascade
);
create index if not exists job_line_eligibility_ar_idx on public.job_line_eligibility (allocation_run_id);

create table if not exists public.job_line_eligibility_items (
  id bigint generated always as identity primary key,
  allocation_run_id uuid not null,
  eligibility_id bigint not null,
  rule text not null check (rule in (
    'included_worker', 'excluded_worker', 'included_qualification', 'excluded_qualification')),
  worker_id bigint,
  qualification_tag_id bigint references public.qualification_tags (id) on delete cascade,
  check (
    (rule in ('included_worker', 'excluded_worker')
      and worker_id is not null and qualification_tag_id is null)
    or (rule in ('included_qualification', 'excluded_qualification')
      and qualification_tag_id is not null and worker_id is null)
  ),
  foreign key (allocation_run_id, eligibility_id)
    references public.job_line_eligibility (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, worker_id)
    references public.worker_mappings (allocation_run_id, id) on delete cascade
);
create index if not exists job_line_eligibility_items_elig_idx on public.job_line_eligibility_items (eligibility_id);
create index if not exists job_line_eligibility_items_ar_idx on public.job_line_eligibility_items (allocation_run_id);
create unique index if not exists job_line_eligibility_items_unique_idx
  on public.job_line_eligibility_items (eligibility_id, rule, coalesce(worker_id, -1), coalesce(qualification_tag_id, -1));

-- Weightings adjust the preferencer side's dissatisfaction of a worker (on one job line,
-- or on every job line when job_line_id is null).
create table if not exists public.allocation_run_preferencer_weightings (
  id bigint generated always as identity primary key,
  allocation_run_id uuid not null,
  worker_id bigint not null,
  job_line_id bigint,
  value double precision not null check (value > '-infinity' and value < 'infinity'),
  foreign key (allocation_run_id, worker_id)
    references public.worker_mappings (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, job_line_id)
    references public.job_lines (allocation_run_id, id) on delete cascade
);
create index if not exists allocation_run_preferencer_weightings_ar_idx on public.allocation_run_preferencer_weightings (allocation_run_id);

-- ------------------------------------------------------------------ solve runs

create table if not exists public.allocator_py_runs (
  id uuid primary key default gen_random_uuid(),
  allocation_run_id uuid not null references public.allocation_runs (id) on delete cascade,
  external_id text,
  name text,
  -- The file the run was imported from (the command line's FILE, the dashboard's upload).
  source_file text,
  -- Leave out workers and job lines already allocated by another completed run of the
  -- same allocation run.
  is_exclusive boolean not null default false,
  -- Settings (allocation-model.md, "Settings and their defaults").
  preferencer_weight double precision not null default 0.3 check (preferencer_weight between 0 and 1),
  preference_power double precision not null default 1.0 check (preference_power > 0),
  max_seconds double precision not null default 60 check (max_seconds > 0),
  rng_seed bigint not null default 1234 check (rng_seed >= 0),
  allow_worker_preference_ties boolean not null default true,
  stability boolean not null default false,
  -- Queue: claim and lease.
  status text not null default 'pending' check (status in ('pending', 'running', 'complete', 'failed')),
  claimed_by text,
  claimed_at timestamptz,
  lease_expires_at timestamptz,
  attempts integer not null default 0,
  error text,
  result jsonb,
  published_scenario_id uuid,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  -- Bumped by triggers when the run's own selection or overrides change.
  inputs_version bigint not null default 0,
  inputs_version_xact xid8,
  unique (allocation_run_id, id)
);
-- A database made before source_file was part of the table (an edited file is applied
-- again: allocator/db/migrate.py) gets it here; `create table if not exists` would not add it.
alter table public.allocator_py_runs add column if not exists source_file text;
create index if not exists allocator_py_runs_ar_idx on public.allocator_py_runs (allocation_run_id);
create index if not exists allocator_py_runs_queue_idx
  on public.allocator_py_runs (created_at, id) where status in ('pending', 'running');

-- The workers and job lines a run includes; none listed means all of its allocation run's.
create table if not exists public.allocator_py_run_workers (
  run_id uuid not null,
  allocation_run_id uuid not null,
  worker_id bigint not null,
  primary key (run_id, worker_id),
  foreign key (allocation_run_id, run_id)
    references public.allocator_py_runs (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, worker_id)
    references public.worker_mappings (allocation_run_id, id) on delete cascade
);

create table if not exists public.allocator_py_run_job_lines (
  run_id uuid not null,
  allocation_run_id uuid not null,
  job_line_id bigint not null,
  primary key (run_id, job_line_id),
  foreign key (allocation_run_id, run_id)
    references public.allocator_py_runs (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, job_line_id)
    references public.job_lines (allocation_run_id, id) on delete cascade
);

-- Planner overrides that belong to the run: pins and forbids.
create table if not exists public.allocator_py_run_overrides (
  id bigint generated always as identity primary key,
  run_id uuid not null,
  allocation_run_id uuid not null,
  kind text not null check (kind in ('pin', 'forbid')),
  worker_id bigint not null,
  job_line_id bigint not null,
  unique (run_id, kind, worker_id, job_line_id),
  foreign key (allocation_run_id, run_id)
    references public.allocator_py_runs (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, worker_id)
    references public.worker_mappings (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, job_line_id)
    references public.job_lines (allocation_run_id, id) on delete cascade
);
create index if not exists allocator_py_run_overrides_run_idx on public.allocator_py_run_overrides (run_id);

-- A run's current allocations (written only by allocator_publish / allocator_complete_run).
create table if not exists public.allocator_py_allocations (
  id bigint generated always as identity primary key,
  run_id uuid not null,
  allocation_run_id uuid not null,
  worker_id bigint not null,
  job_line_id bigint not null,
  worker_rank double precision,
  cost double precision,
  created_at timestamptz not null default now(),
  unique (run_id, worker_id),
  foreign key (allocation_run_id, run_id)
    references public.allocator_py_runs (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, worker_id)
    references public.worker_mappings (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, job_line_id)
    references public.job_lines (allocation_run_id, id) on delete cascade
);
create index if not exists allocator_py_allocations_worker_idx on public.allocator_py_allocations (worker_id);
create index if not exists allocator_py_allocations_line_idx on public.allocator_py_allocations (job_line_id);
create index if not exists allocator_py_allocations_ar_idx on public.allocator_py_allocations (allocation_run_id);

-- ------------------------------------------------------------------ dashboard

create table if not exists public.allocator_scenarios (
  id uuid primary key default gen_random_uuid(),
  run_id uuid not null references public.allocator_py_runs (id) on delete cascade,
  name text not null,
  settings jsonb not null default '{}'::jsonb,
  overrides jsonb not null default '{}'::jsonb,
  result jsonb,
  input_fingerprint text not null,
  created_by text,
  created_at timestamptz not null default now(),
  -- The run's inputs version the scenario was solved on (stamped by a trigger on write).
  inputs_version bigint
);
-- As source_file above, for a database made before the column was part of the table (its
-- scenarios are stamped in 20261130000003_trust_and_checks.sql, once the functions exist).
alter table public.allocator_scenarios add column if not exists inputs_version bigint;
create index if not exists allocator_scenarios_run_idx on public.allocator_scenarios (run_id, created_at);

-- Append-only: every set of allocations ever written, with what it replaced.
create table if not exists public.allocator_publication_log (
  id bigint generated always as identity primary key,
  run_id uuid not null references public.allocator_py_runs (id) on delete restrict,
  scenario_id uuid references public.allocator_scenarios (id) on delete restrict,
  action text not null check (action in ('publish', 'supersede', 'complete')),
  reason text,
  input_fingerprint text,
  allocations jsonb not null default '[]'::jsonb,
  previous_allocations jsonb not null default '[]'::jsonb,
  published_by text,
  published_at timestamptz not null default now()
);
create index if not exists allocator_publication_log_run_idx on public.allocator_publication_log (run_id, id);
