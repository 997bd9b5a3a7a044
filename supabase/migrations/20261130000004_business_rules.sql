-- Business rules (business-rules.md): sites, priority tiers, linked workers, quotas, and a
-- previous allocation with the fewest-moves setting.
--
-- Where each lives:
--   job_lines.site             a line's site (null: the line is a site of its own); a fact
--                              of the intake, like its name, so sibling runs share it.
--   worker_mappings.priority   a worker's tier (1 is placed first; null: the last tier).
--   allocator_py_runs.fewest_moves  the setting (default false).
--   allocator_py_run_links (+ _link_workers), allocator_py_run_quotas (+ _quota_items),
--   allocator_py_run_previous_allocations: rules of one run, like its pins and forbids
--                              (allocator_py_run_overrides): a snapshot is a run's, and two
--                              runs of one intake may well set different quotas.
--
-- The functions that read and write them are defined once, where a reader looks for them
-- (no database outside this project had applied the first versions):
--   20261128000003_functions.sql  allocator_import_run (site, priority, fewest_moves, and
--                                 a call of allocator_import_business_rules below),
--                                 allocator_run_snapshot_json (site and priority only when
--                                 set; the rules below only when the run has any, so a run
--                                 without them keeps its bytes), allocator_run_settings
--                                 (fewest_moves only when on), allocator_check_allocations
--                                 (adds allocator_business_rule_breaches below);
--   20261128000002_triggers.sql   allocator_py_runs_bump_version (fewest_moves moves the
--                                 run's inputs version), qualification_tags_changed (a tag a
--                                 quota counts);
--   20261130000002_run_changes.sql  allocator_withdraw_worker (a linked worker leaves their
--                                 link, a link left with one worker is removed, their
--                                 previous allocation is dropped, all said in the change
--                                 log), allocator_add_worker (a late worker's priority),
--                                 allocator_set_job_line (a line's site).
-- What is new here: the columns and tables, their triggers, row-level security and grants,
-- and three functions: allocator_import_business_rules, allocator_run_rules_json and
-- allocator_business_rule_breaches.
--
-- Idempotent: `if not exists`, `or replace`, policies dropped and created again.

-- ------------------------------------------------------------------ columns

alter table public.job_lines add column if not exists site text
  constraint job_lines_site_not_blank check (btrim(site) <> '');
alter table public.worker_mappings add column if not exists priority integer
  constraint worker_mappings_priority_positive check (priority >= 1);
alter table public.allocator_py_runs add column if not exists fewest_moves boolean not null default false;

-- ------------------------------------------------------------------ tables

-- Linked workers: all workers of a link are allocated to job lines of one site.
create table if not exists public.allocator_py_run_links (
  id bigint generated always as identity primary key,
  run_id uuid not null,
  allocation_run_id uuid not null,
  external_id text not null check (btrim(external_id) <> ''),
  unique (run_id, external_id),
  unique (allocation_run_id, id),
  foreign key (allocation_run_id, run_id)
    references public.allocator_py_runs (allocation_run_id, id) on delete cascade
);
create index if not exists allocator_py_run_links_ar_idx on public.allocator_py_run_links (allocation_run_id);

create table if not exists public.allocator_py_run_link_workers (
  id bigint generated always as identity primary key,
  link_id bigint not null,
  run_id uuid not null,
  allocation_run_id uuid not null,
  worker_id bigint not null,
  -- A worker is in at most one link of a run.
  unique (run_id, worker_id),
  foreign key (allocation_run_id, link_id)
    references public.allocator_py_run_links (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, run_id)
    references public.allocator_py_runs (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, worker_id)
    references public.worker_mappings (allocation_run_id, id) on delete cascade
);
create index if not exists allocator_py_run_link_workers_link_idx on public.allocator_py_run_link_workers (link_id);
create index if not exists allocator_py_run_link_workers_ar_idx on public.allocator_py_run_link_workers (allocation_run_id);
create index if not exists allocator_py_run_link_workers_worker_idx on public.allocator_py_run_link_workers (worker_id);

-- Quotas: the number of workers (with a tag, when given) on a group of lines, named by
-- site or by line (by_site says which; the items hold the sites or the lines).
create table if not exists public.allocator_py_run_quotas (
  id bigint generated always as identity primary key,
  run_id uuid not null,
  allocation_run_id uuid not null,
  external_id text not null check (btrim(external_id) <> ''),
  by_site boolean not null,
  qualification_tag_id bigint references public.qualification_tags (id) on delete cascade,
  min_workers integer not null default 0 check (min_workers >= 0),
  max_workers integer check (max_workers >= 0),
  check (max_workers is null or min_workers <= max_workers),
  unique (run_id, external_id),
  unique (allocation_run_id, id),
  foreign key (allocation_run_id, run_id)
    references public.allocator_py_runs (allocation_run_id, id) on delete cascade
);
create index if not exists allocator_py_run_quotas_ar_idx on public.allocator_py_run_quotas (allocation_run_id);
create index if not exists allocator_py_run_quotas_tag_idx on public.allocator_py_run_quotas (qualification_tag_id);

create table if not exists public.allocator_py_run_quota_items (
  id bigint generated always as identity primary key,
  quota_id bigint not null,
  run_id uuid not null,
  allocation_run_id uuid not null,
  site text check (btrim(site) <> ''),
  job_line_id bigint,
  check ((site is null) <> (job_line_id is null)),
  foreign key (allocation_run_id, quota_id)
    references public.allocator_py_run_quotas (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, run_id)
    references public.allocator_py_runs (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, job_line_id)
    references public.job_lines (allocation_run_id, id) on delete cascade
);
create index if not exists allocator_py_run_quota_items_quota_idx on public.allocator_py_run_quota_items (quota_id);
create index if not exists allocator_py_run_quota_items_ar_idx on public.allocator_py_run_quota_items (allocation_run_id);
create index if not exists allocator_py_run_quota_items_line_idx on public.allocator_py_run_quota_items (job_line_id);

-- The allocation the planner wants to move as few workers from (a worker at most once).
create table if not exists public.allocator_py_run_previous_allocations (
  id bigint generated always as identity primary key,
  run_id uuid not null,
  allocation_run_id uuid not null,
  worker_id bigint not null,
  job_line_id bigint not null,
  unique (run_id, worker_id),
  foreign key (allocation_run_id, run_id)
    references public.allocator_py_runs (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, worker_id)
    references public.worker_mappings (allocation_run_id, id) on delete cascade,
  foreign key (allocation_run_id, job_line_id)
    references public.job_lines (allocation_run_id, id) on delete cascade
);
create index if not exists allocator_py_run_previous_allocations_ar_idx
  on public.allocator_py_run_previous_allocations (allocation_run_id);
create index if not exists allocator_py_run_previous_allocations_worker_idx
  on public.allocator_py_run_previous_allocations (worker_id);
create index if not exists allocator_py_run_previous_allocations_line_idx
  on public.allocator_py_run_previous_allocations (job_line_id);

-- ------------------------------------------------------------------ change tracking

-- Each of them is part of its run's snapshot: a change moves the run's inputs version.
do $$
declare
  t text;
begin
  foreach t in array array[
    'allocator_py_run_links', 'allocator_py_run_link_workers', 'allocator_py_run_quotas',
    'allocator_py_run_quota_items', 'allocator_py_run_previous_allocations'
  ] loop
    execute format(
      'create or replace trigger %I after insert or update or delete on public.%I '
      'for each row execute function public.allocator_run_inputs_changed()',
      t || '_inputs_changed', t);
  end loop;
end
$$;

-- ------------------------------------------------------------------ the run's rules as JSON

-- The run's links, quotas and previous allocation with snapshot ids, each key present only
-- when the run has some ({} for a run without them). Limited to the run's workers and
-- lines (a run may list some of its intake's, and an exclusive run loses those another run
-- allocated): a link left with fewer than two of them, and a quota left with none of its
-- sites or lines, is left out, so the snapshot stays valid.
create or replace function public.allocator_run_rules_json(p_run_id uuid) returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v jsonb := '{}'::jsonb;
  v_ws jsonb;     -- the run's workers: row id -> external id
  v_js jsonb;     -- the run's job lines: row id -> external id
  v_sites text[]; -- the sites of the run's job lines
  v_links jsonb;
  v_quotas jsonb;
  v_prev jsonb;
begin
  -- Most runs have none: answer without listing the run's workers and lines.
  if not exists (select 1 from public.allocator_py_run_links where run_id = p_run_id)
     and not exists (select 1 from public.allocator_py_run_quotas where run_id = p_run_id)
     and not exists (select 1 from public.allocator_py_run_previous_allocations where run_id = p_run_id) then
    return v;
  end if;

  select coalesce(jsonb_object_agg(w.id::text, w.external_id), '{}'::jsonb) into v_ws
    from public.worker_mappings w
   where w.id in (select public.allocator_run_worker_ids(p_run_id));
  select coalesce(jsonb_object_agg(j.id::text, j.external_id), '{}'::jsonb),
         coalesce(array_agg(distinct j.site) filter (where j.site is not null), '{}')
    into v_js, v_sites
    from public.job_lines j
   where j.id in (select public.allocator_run_job_line_ids(p_run_id));

  select jsonb_agg(jsonb_build_object('id', l.external_id, 'worker_ids', l.members) order by l.id)
    into v_links
    from (select l.id, l.external_id,
                 (select jsonb_agg(v_ws -> lw.worker_id::text order by lw.id)
                    from public.allocator_py_run_link_workers lw
                   where lw.link_id = l.id and v_ws ? lw.worker_id::text) as members
            from public.allocator_py_run_links l
           where l.run_id = p_run_id) l
   where jsonb_array_length(coalesce(l.members, '[]'::jsonb)) >= 2;

  select jsonb_agg(
           jsonb_build_object('id', q.external_id)
           || case when q.by_site then jsonb_build_object('sites', q.items)
                   else jsonb_build_object('job_line_ids', q.items) end
           || case when q.tag is not null then jsonb_build_object('qualification_id', q.tag) else '{}'::jsonb end
           || jsonb_build_object('min_workers', q.min_workers, 'max_workers', q.max_workers)
           order by q.id)
    into v_quotas
    from (select q.id, q.external_id, q.by_site, q.min_workers, q.max_workers, t.external_id as tag,
                 case when q.by_site then
                   (select jsonb_agg(i.site order by i.id)
                      from public.allocator_py_run_quota_items i
                     where i.quota_id = q.id and i.site = any (v_sites))
                 else
                   (select jsonb_agg(v_js -> i.job_line_id::text order by i.id)
                      from public.allocator_py_run_quota_items i
                     where i.quota_id = q.id and v_js ? i.job_line_id::text) end as items
            from public.allocator_py_run_quotas q
            left join public.qualification_tags t on t.id = q.qualification_tag_id
           where q.run_id = p_run_id) q
   where q.items is not null;

  select jsonb_agg(jsonb_build_object('worker_id', v_ws -> p.worker_id::text,
                                      'job_line_id', v_js -> p.job_line_id::text) order by p.id)
    into v_prev
    from public.allocator_py_run_previous_allocations p
   where p.run_id = p_run_id and v_ws ? p.worker_id::text and v_js ? p.job_line_id::text;

  if v_links is not null then v := v || jsonb_build_object('linked_workers', v_links); end if;
  if v_quotas is not null then v := v || jsonb_build_object('quotas', v_quotas); end if;
  if v_prev is not null then v := v || jsonb_build_object('previous_allocations', v_prev); end if;
  return v;
end
$$;

-- ------------------------------------------------------------------ import

-- A number of workers as JSON: a whole number from 0 to 1,000,000,000, the snapshot check's
-- bound (a quota beyond it was stored, and the run could then not be loaded); a check that
-- never fails on what it checks, so it can guard a cast. Written without a decimal point, as
-- the snapshot check asks: 2.0 is refused there, and '2.0'::integer raises.
create or replace function public.allocator_is_count(p_value jsonb) returns boolean
language sql
immutable
set search_path = ''
as $$
  select coalesce(case when jsonb_typeof(p_value) = 'number' and (p_value #>> '{}') ~ '^[0-9]+$'
                       then (p_value #>> '{}')::numeric between 0 and 1000000000 end, false)
$$;

-- Store a snapshot's links, quotas and previous allocation for a run being imported (called
-- by allocator_import_run, inside its transaction: a refusal leaves nothing). p_wmap /
-- p_jmap: the import's external id -> row id maps. Refuses (AL008) what business-rules.md
-- calls invalid, naming the entry, as the snapshot check does (a caller of the SQL may skip
-- that check).
create or replace function public.allocator_import_business_rules(
  p_run_id uuid,
  p_allocation_run_id uuid,
  p_organisation_id uuid,
  p_snapshot jsonb,
  p_wmap jsonb,
  p_jmap jsonb
) returns void
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_links jsonb := coalesce(p_snapshot -> 'linked_workers', '[]'::jsonb);
  v_quotas jsonb := coalesce(p_snapshot -> 'quotas', '[]'::jsonb);
  v_prev jsonb := coalesce(p_snapshot -> 'previous_allocations', '[]'::jsonb);
  v_sites text[];
  v_bad text;
  v_lmap jsonb;
  v_qmap jsonb;
  v_tmap jsonb;
begin
  if jsonb_typeof(v_links) <> 'array' or jsonb_typeof(v_quotas) <> 'array' or jsonb_typeof(v_prev) <> 'array' then
    perform public.allocator_invalid('linked_workers, quotas and previous_allocations must be lists.');
  end if;
  select coalesce(array_agg(distinct x.e ->> 'site'), '{}') into v_sites
    from jsonb_array_elements(coalesce(p_snapshot -> 'job_lines', '[]'::jsonb)) x(e)
   where x.e ->> 'site' is not null;

  -- Links.
  select m into v_bad from (
    select x.ord,
           case
             when coalesce(btrim(x.e ->> 'id'), '') = '' then
               format('linked_workers[%s]: a link needs an id.', x.ord - 1)
             when exists (select 1 from jsonb_array_elements(v_links) with ordinality y(e, ord)
                           where y.ord < x.ord and y.e ->> 'id' = x.e ->> 'id') then
               format('linked_workers[%s] (id %L): the id is used by more than one link.', x.ord - 1, x.e ->> 'id')
             when jsonb_typeof(x.e -> 'worker_ids') is distinct from 'array'
                  or (select count(distinct w) from jsonb_array_elements_text(x.e -> 'worker_ids') w) not between 2 and 4
                  or (select count(*) from jsonb_array_elements_text(x.e -> 'worker_ids') w)
                     <> (select count(distinct w) from jsonb_array_elements_text(x.e -> 'worker_ids') w) then
               format('linked_workers[%s] (id %L): a link has 2 to 4 different workers.', x.ord - 1, x.e ->> 'id')
             else (select format('linked_workers[%s] (id %L): worker %L is not in this snapshot.', x.ord - 1, x.e ->> 'id', w)
                     from jsonb_array_elements_text(x.e -> 'worker_ids') w
                    where p_wmap -> w is null limit 1)
           end as m
      from jsonb_array_elements(v_links) with ordinality x(e, ord)) c
   where c.m is not null
   order by c.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  select format('linked_workers[%s] (id %L): worker %L is already in another link; a worker is in at most one link.',
                d.ord - 1, d.lid, d.wid)
    into v_bad
    from (select x.ord, x.e ->> 'id' as lid, w.wid,
                 row_number() over (partition by w.wid order by x.ord) as nth
            from jsonb_array_elements(v_links) with ordinality x(e, ord)
            cross join lateral jsonb_array_elements_text(x.e -> 'worker_ids') w(wid)) d
   where d.nth = 2
   order by d.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.allocator_py_run_links (run_id, allocation_run_id, external_id)
  select p_run_id, p_allocation_run_id, x.e ->> 'id'
    from jsonb_array_elements(v_links) with ordinality x(e, ord)
   order by x.ord;
  select coalesce(jsonb_object_agg(external_id, id), '{}'::jsonb) into v_lmap
    from public.allocator_py_run_links where run_id = p_run_id;
  insert into public.allocator_py_run_link_workers (link_id, run_id, allocation_run_id, worker_id)
  select (v_lmap ->> (x.e ->> 'id'))::bigint, p_run_id, p_allocation_run_id, (p_wmap ->> w.wid)::bigint
    from jsonb_array_elements(v_links) with ordinality x(e, ord)
    cross join lateral jsonb_array_elements_text(x.e -> 'worker_ids') with ordinality w(wid, word)
   order by x.ord, w.word;

  -- Quotas.
  select m into v_bad from (
    select x.ord,
           case
             when coalesce(btrim(x.e ->> 'id'), '') = '' then
               format('quotas[%s]: a quota needs an id.', x.ord - 1)
             when exists (select 1 from jsonb_array_elements(v_quotas) with ordinality y(e, ord)
                           where y.ord < x.ord and y.e ->> 'id' = x.e ->> 'id') then
               format('quotas[%s] (id %L): the id is used by more than one quota.', x.ord - 1, x.e ->> 'id')
             when (jsonb_typeof(x.e -> 'sites') = 'array') = (jsonb_typeof(x.e -> 'job_line_ids') = 'array')
                  or jsonb_typeof(case when jsonb_typeof(x.e -> 'sites') = 'array' then x.e -> 'sites' else x.e -> 'job_line_ids' end) is distinct from 'array'
                  or jsonb_array_length(case when jsonb_typeof(x.e -> 'sites') = 'array' then x.e -> 'sites' else x.e -> 'job_line_ids' end) = 0 then
               format('quotas[%s] (id %L): a quota counts either sites or job lines (job_line_ids): name one, not both or neither.',
                      x.ord - 1, x.e ->> 'id')
             when not public.allocator_is_count(coalesce(x.e -> 'min_workers', '0'::jsonb))
                  or (coalesce(jsonb_typeof(x.e -> 'max_workers'), 'null') <> 'null'
                      and not public.allocator_is_count(x.e -> 'max_workers')) then
               format('quotas[%s] (id %L): its minimum and maximum are whole numbers of workers, 0 or more (at most 1,000,000,000).',
                      x.ord - 1, x.e ->> 'id')
             when jsonb_typeof(x.e -> 'max_workers') = 'number'
                  and coalesce((x.e ->> 'min_workers')::numeric, 0) > (x.e ->> 'max_workers')::numeric then
               format('quotas[%s] (id %L): the minimum (%s) is above the maximum (%s).', x.ord - 1, x.e ->> 'id',
                      x.e ->> 'min_workers', x.e ->> 'max_workers')
             when jsonb_typeof(x.e -> 'sites') = 'array' then
               (select format('quotas[%s] (id %L): site %L is not the site of any job line of this snapshot.',
                              x.ord - 1, x.e ->> 'id', s)
                  from jsonb_array_elements_text(x.e -> 'sites') s
                 where s <> all (v_sites) limit 1)
             else
               (select format('quotas[%s] (id %L): job line %L is not in this snapshot.', x.ord - 1, x.e ->> 'id', j)
                  from jsonb_array_elements_text(x.e -> 'job_line_ids') j
                 where p_jmap -> j is null limit 1)
           end as m
      from jsonb_array_elements(v_quotas) with ordinality x(e, ord)) c
   where c.m is not null
   order by c.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.qualification_tags (organisation_id, external_id, name)
  select distinct p_organisation_id, x.e ->> 'qualification_id', x.e ->> 'qualification_id'
    from jsonb_array_elements(v_quotas) x(e)
   where x.e ->> 'qualification_id' is not null
  on conflict (organisation_id, external_id) do nothing;
  select coalesce(jsonb_object_agg(t.external_id, t.id), '{}'::jsonb) into v_tmap
    from public.qualification_tags t
   where t.organisation_id = p_organisation_id
     and t.external_id in (select x.e ->> 'qualification_id' from jsonb_array_elements(v_quotas) x(e));

  insert into public.allocator_py_run_quotas
    (run_id, allocation_run_id, external_id, by_site, qualification_tag_id, min_workers, max_workers)
  select p_run_id, p_allocation_run_id, x.e ->> 'id', coalesce(jsonb_typeof(x.e -> 'sites') = 'array', false),
         (v_tmap ->> (x.e ->> 'qualification_id'))::bigint,
         coalesce((x.e ->> 'min_workers')::integer, 0), (x.e ->> 'max_workers')::integer
    from jsonb_array_elements(v_quotas) with ordinality x(e, ord)
   order by x.ord;
  select coalesce(jsonb_object_agg(external_id, id), '{}'::jsonb) into v_qmap
    from public.allocator_py_run_quotas where run_id = p_run_id;
  insert into public.allocator_py_run_quota_items (quota_id, run_id, allocation_run_id, site, job_line_id)
  select (v_qmap ->> (x.e ->> 'id'))::bigint, p_run_id, p_allocation_run_id,
         case when jsonb_typeof(x.e -> 'sites') = 'array' then i.item end,
         case when jsonb_typeof(x.e -> 'sites') = 'array' then null else (p_jmap ->> i.item)::bigint end
    from jsonb_array_elements(v_quotas) with ordinality x(e, ord)
    cross join lateral jsonb_array_elements_text(case when jsonb_typeof(x.e -> 'sites') = 'array' then x.e -> 'sites' else x.e -> 'job_line_ids' end) with ordinality i(item, iord)
   order by x.ord, i.iord;

  -- The previous allocation (as long as the run: a window, not a pairwise search, for repeats).
  select m into v_bad from (
    select x.ord,
           case
             when p_wmap -> x.wid is null then
               format('previous_allocations[%s]: worker %L is not in this snapshot.', x.ord - 1, x.wid)
             when p_jmap -> x.jid is null then
               format('previous_allocations[%s]: job line %L is not in this snapshot.', x.ord - 1, x.jid)
             when x.nth > 1 then
               format('previous_allocations[%s]: worker %L appears more than once.', x.ord - 1, x.wid)
           end as m
      from (select y.ord, y.e ->> 'worker_id' as wid, y.e ->> 'job_line_id' as jid,
                   row_number() over (partition by y.e ->> 'worker_id' order by y.ord) as nth
              from jsonb_array_elements(v_prev) with ordinality y(e, ord)) x) c
   where c.m is not null
   order by c.ord limit 1;
  if v_bad is not null then perform public.allocator_invalid(v_bad); end if;

  insert into public.allocator_py_run_previous_allocations (run_id, allocation_run_id, worker_id, job_line_id)
  select p_run_id, p_allocation_run_id, (p_wmap ->> (x.e ->> 'worker_id'))::bigint, (p_jmap ->> (x.e ->> 'job_line_id'))::bigint
    from jsonb_array_elements(v_prev) with ordinality x(e, ord)
   order by x.ord;
end
$$;

-- ------------------------------------------------------------------ publish checks

-- The links and quotas an allocation breaks (allocator_check_allocations adds them to its
-- refusal): the run's own, or the scenario's when it replaces them (overrides
-- `linked_workers` / `quotas` not null replace the run's wholly). p_allocations: snapshot
-- ids; only pairs of the run's workers and lines count (the caller names the others).
create or replace function public.allocator_business_rule_breaches(
  p_run_id uuid,
  p_overrides jsonb,
  p_allocations jsonb
) returns text[]
language plpgsql
stable
set search_path = ''
as $$
declare
  v_ov jsonb := case when jsonb_typeof(p_overrides) = 'object' then p_overrides else '{}'::jsonb end;
  v_rules jsonb;
  v_links jsonb;
  v_quotas jsonb;
  v_out text[];
begin
  v_rules := public.allocator_run_rules_json(p_run_id);
  v_links := case when jsonb_typeof(v_ov -> 'linked_workers') = 'array' then v_ov -> 'linked_workers'
                  else coalesce(v_rules -> 'linked_workers', '[]'::jsonb) end;
  v_quotas := case when jsonb_typeof(v_ov -> 'quotas') = 'array' then v_ov -> 'quotas'
                   else coalesce(v_rules -> 'quotas', '[]'::jsonb) end;
  if jsonb_array_length(v_links) = 0 and jsonb_array_length(v_quotas) = 0 then
    return '{}';
  end if;

  with
  js as materialized (
    select j.id, j.external_id as jid, j.site,
           coalesce('site ' || pg_catalog.quote_literal(j.site),
                    'job line ' || pg_catalog.quote_literal(j.external_id) || ' (a site of its own)') as site_words,
           coalesce('s:' || j.site, 'j:' || j.external_id) as site_key
      from public.job_lines j
     where j.id in (select public.allocator_run_job_line_ids(p_run_id))
  ),
  ws as materialized (
    select w.id, w.external_id as wid
      from public.worker_mappings w
     where w.id in (select public.allocator_run_worker_ids(p_run_id))
  ),
  pairs as materialized (
    select distinct on (x.e ->> 'worker_id') w.id as w_id, w.wid, js.*
      from jsonb_array_elements(p_allocations) with ordinality x(e, ord)
      join ws w on w.wid = x.e ->> 'worker_id'
      join js on js.jid = x.e ->> 'job_line_id'
     order by x.e ->> 'worker_id', x.ord
  ),
  members as (
    select l.ord, l.e ->> 'id' as lid, m.wid, m.mord, p.site_key, p.site_words, p.jid
      from jsonb_array_elements(v_links) with ordinality l(e, ord)
      cross join lateral jsonb_array_elements_text(
        case when jsonb_typeof(l.e -> 'worker_ids') = 'array' then l.e -> 'worker_ids' else '[]'::jsonb end)
        with ordinality m(wid, mord)
      join pairs p on p.wid = m.wid
  ),
  link_breaches as (
    select 1 as k, m.ord,
           format('Link %L keeps its workers at one site, but the allocation puts %s.', m.lid,
                  string_agg(format('%L at %s (job line %L)', m.wid, m.site_words, m.jid), ', ' order by m.mord)) as msg
      from members m
     group by m.ord, m.lid
    having count(distinct m.site_key) > 1
  ),
  quotas as (
    select q.ord, q.e ->> 'id' as qid, q.e ->> 'qualification_id' as tag,
           case when jsonb_typeof(q.e -> 'min_workers') = 'number' then (q.e ->> 'min_workers')::numeric else 0 end as lo,
           case when jsonb_typeof(q.e -> 'max_workers') = 'number' then (q.e ->> 'max_workers')::numeric end as hi,
           case when jsonb_typeof(q.e -> 'sites') = 'array' then q.e -> 'sites' else '[]'::jsonb end as sites,
           case when jsonb_typeof(q.e -> 'job_line_ids') = 'array' then q.e -> 'job_line_ids' else '[]'::jsonb end as lines
      from jsonb_array_elements(v_quotas) with ordinality q(e, ord)
  ),
  counts as (
    select q.*,
           (select count(*)
              from pairs p
             where (p.site in (select jsonb_array_elements_text(q.sites))
                    or p.jid in (select jsonb_array_elements_text(q.lines)))
               and (q.tag is null or exists (
                     select 1 from public.worker_qualifications wq
                       join public.qualification_tags t on t.id = wq.qualification_tag_id
                      where wq.worker_id = p.w_id and t.external_id = q.tag))) as n,
           case when jsonb_array_length(q.sites) > 0
                then (case when jsonb_array_length(q.sites) = 1 then 'site ' else 'sites ' end)
                     || (select string_agg(pg_catalog.quote_literal(s), ', ') from jsonb_array_elements_text(q.sites) s)
                else (case when jsonb_array_length(q.lines) = 1 then 'job line ' else 'job lines ' end)
                     || (select string_agg(pg_catalog.quote_literal(s), ', ') from jsonb_array_elements_text(q.lines) s)
           end as where_words
      from quotas q
  ),
  quota_breaches as (
    select 2 as k, c.ord,
           format('Quota %L %s %s worker%s%s on %s, but the allocation puts %s there.', c.qid,
                  case when c.n < c.lo then 'needs at least' else 'allows at most' end,
                  case when c.n < c.lo then c.lo else c.hi end,
                  case when (case when c.n < c.lo then c.lo else c.hi end) = 1 then '' else 's' end,
                  case when c.tag is not null then format(' with qualification %L', c.tag) else '' end,
                  c.where_words, c.n) as msg
      from counts c
     where c.n < c.lo or (c.hi is not null and c.n > c.hi)
  )
  select array_agg(b.msg order by b.k, b.ord) into v_out
    from (select * from link_breaches union all select * from quota_breaches) b;
  return coalesce(v_out, '{}');
end
$$;

-- ------------------------------------------------------------------ security

do $$
declare
  t text;
  seq text;
begin
  foreach t in array array[
    'allocator_py_run_links', 'allocator_py_run_link_workers', 'allocator_py_run_quotas',
    'allocator_py_run_quota_items', 'allocator_py_run_previous_allocations'
  ] loop
    execute format('alter table public.%I enable row level security', t);
    execute format('drop policy if exists %I on public.%I', t || '_planner_read', t);
    execute format(
      'create policy %I on public.%I for select to authenticated '
      'using (allocation_run_id in (select public.allocator_my_allocation_runs()))',
      t || '_planner_read', t);
    execute format('revoke all on table public.%I from public, anon, authenticated, service_role', t);
    execute format('grant select on table public.%I to authenticated', t);
    execute format('grant select, insert, update, delete on table public.%I to service_role', t);
    seq := pg_catalog.pg_get_serial_sequence('public.' || quote_ident(t), 'id');
    execute format('revoke all on sequence %s from public, anon, authenticated, service_role', seq);
    execute format('grant usage, select on sequence %s to service_role', seq);
  end loop;
end
$$;

-- The import and the publish check call these inside their own (SECURITY DEFINER) work;
-- the rules are read as the planner through the snapshot, so planners may call that one.
revoke all on function public.allocator_run_rules_json(uuid) from public, anon, authenticated, service_role;
revoke all on function public.allocator_is_count(jsonb) from public, anon, authenticated, service_role;
revoke all on function public.allocator_import_business_rules(uuid, uuid, uuid, jsonb, jsonb, jsonb)
  from public, anon, authenticated, service_role;
revoke all on function public.allocator_business_rule_breaches(uuid, jsonb, jsonb)
  from public, anon, authenticated, service_role;
grant execute on function public.allocator_run_rules_json(uuid) to authenticated, service_role;
