-- Large runs (tens of thousands of workers, hundreds of thousands of preferences).
--
-- 1. Import and allocation writes look external ids up in jsonb maps (id -> key) instead of
--    joining on (allocation_run_id, external_id): rows inserted earlier in the same
--    transaction have no statistics yet, and a join planned on none can turn quadratic.
-- 2. The snapshot is built as `json`, not `jsonb` (several times faster to build, and the
--    callers parse it as text anyway): allocator_run_snapshot_json, and allocator_load_run
--    (with the inputs_version); allocator_run_snapshot keeps its jsonb result.
-- 3. Change tracking skips the rows of the import in progress before doing any work, and
--    bumps each allocation run once per transaction without running an UPDATE per row.
--
-- Idempotent: `create or replace` (no return type changes, so the earlier files can be
-- applied again over this one).

-- ------------------------------------------------------------------ change tracking

create or replace function public.allocator_inputs_changed() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_importing text := pg_catalog.current_setting('allocator.importing', true);
  v_ar uuid;
  v_key text;
begin
  foreach v_ar in array array[
      case when tg_op in ('UPDATE', 'DELETE') then old.allocation_run_id end,
      case when tg_op in ('INSERT', 'UPDATE') then new.allocation_run_id end] loop
    continue when v_ar is null or v_ar::text = v_importing;
    v_key := pg_catalog.pg_current_xact_id()::text || ':' || v_ar::text;
    continue when pg_catalog.current_setting('allocator.touched', true) = v_key;
    perform public.allocator_touch_allocation_run(v_ar);
    perform pg_catalog.set_config('allocator.touched', v_key, true);
  end loop;
  return null;
end
$$;

create or replace function public.allocator_run_inputs_changed() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_run uuid;
  v_key text;
begin
  foreach v_run in array array[
      case when tg_op in ('UPDATE', 'DELETE') then old.run_id end,
      case when tg_op in ('INSERT', 'UPDATE') then new.run_id end] loop
    continue when v_run is null;
    v_key := pg_catalog.pg_current_xact_id()::text || ':' || v_run::text;
    continue when pg_catalog.current_setting('allocator.touched_run', true) = v_key;
    perform public.allocator_touch_run(v_run);
    perform pg_catalog.set_config('allocator.touched_run', v_key, true);
  end loop;
  return null;
end
$$;

-- ------------------------------------------------------------------ snapshot as json

-- The run as an `allocator-run/1` snapshot (lists in the order their rows were created).
create or replace function public.allocator_run_snapshot_json(p_run_id uuid) returns json
language plpgsql
stable
set search_path = ''
as $$
declare
  v json;
begin
  with r as (
    select r.id, r.external_id, r.name, ar.name as ar_name,
           public.allocator_run_settings(r)::json as settings
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
      select json_agg(json_build_object(
               'id', ws.external_id,
               'name', ws.name,
               'qualification_ids', coalesce((
                 select json_agg(t.external_id order by wq.id)
                   from public.worker_qualifications wq
                   join public.qualification_tags t on t.id = wq.qualification_tag_id
                  where wq.worker_id = ws.id), '[]'::json))
             order by ws.id)
        from ws), '[]'::json),
    'job_lines', coalesce((
      select json_agg(json_build_object(
               'id', js.external_id,
               'name', js.name,
               'max_n_workers', js.max_n_workers,
               'must_have_workers', js.must_have_workers,
               'preferencer_ids', coalesce((
                 select json_agg(p.external_id order by jp.id)
                   from public.job_line_preferencers jp
                   join public.preferencers p on p.id = jp.preferencer_id
                  where jp.job_line_id = js.id), '[]'::json))
             order by js.id)
        from js), '[]'::json),
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
  return v;
end
$$;

-- The jsonb form, for callers of the first version.
create or replace function public.allocator_run_snapshot(p_run_id uuid) returns jsonb
language sql
stable
set search_path = ''
as $$
  select public.allocator_run_snapshot_json(p_run_id)::jsonb
$$;

-- What a store loads: the snapshot and its inputs_version, read together (one statement,
-- one MVCC snapshot).
create or replace function public.allocator_load_run(p_run_id uuid)
returns table (snapshot json, inputs_version bigint)
language sql
stable
set search_path = ''
as $$
  select public.allocator_run_snapshot_json(p_run_id), public.allocator_run_inputs_version(p_run_id)
$$;

revoke all on function public.allocator_run_snapshot_json(uuid) from public, anon, authenticated, service_role;
revoke all on function public.allocator_load_run(uuid) from public, anon, authenticated, service_role;
grant execute on function public.allocator_run_snapshot_json(uuid) to authenticated, service_role;
grant execute on function public.allocator_load_run(uuid) to authenticated, service_role;

-- ------------------------------------------------------------------ allocations

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

-- ------------------------------------------------------------------ import

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
  -- This transaction's own rows need no change tracking (see allocator_inputs_changed).
  perform pg_catalog.set_config('allocator.importing', v_ar::text, true);

  -- Workers and job lines (a repeated id is refused by the unique constraints).
  insert into public.worker_mappings (allocation_run_id, external_id, name)
  select v_ar, x.e ->> 'id', coalesce(x.e ->> 'name', '')
    from jsonb_array_elements(v_workers) with ordinality x(e, ord)
   order by x.ord;
  select coalesce(jsonb_object_agg(external_id, id), '{}'::jsonb) into v_wmap
    from public.worker_mappings where allocation_run_id = v_ar;

  insert into public.job_lines (allocation_run_id, external_id, name, max_n_workers, must_have_workers)
  select v_ar, x.e ->> 'id', coalesce(x.e ->> 'name', ''), (x.e ->> 'max_n_workers')::integer,
         coalesce((x.e ->> 'must_have_workers')::boolean, false)
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

  perform pg_catalog.set_config('allocator.importing', '', true);
  return v_run;
end
$$;

-- Allocations: bump the exclusive siblings once per transaction, not once per row.
create or replace function public.allocator_py_allocations_changed() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ar uuid := case when tg_op = 'DELETE' then old.allocation_run_id else new.allocation_run_id end;
  v_run uuid := case when tg_op = 'DELETE' then old.run_id else new.run_id end;
  v_key text := pg_catalog.pg_current_xact_id()::text || ':' || v_run::text;
begin
  if pg_catalog.current_setting('allocator.touched_siblings', true) is distinct from v_key then
    perform public.allocator_touch_exclusive_siblings(v_ar, v_run);
    perform pg_catalog.set_config('allocator.touched_siblings', v_key, true);
  end if;
  if tg_op = 'UPDATE' and (old.allocation_run_id, old.run_id) is distinct from (new.allocation_run_id, new.run_id) then
    perform public.allocator_touch_exclusive_siblings(old.allocation_run_id, old.run_id);
  end if;
  return null;
end
$$;

-- Trigger functions are never called directly.
revoke all on function public.allocator_inputs_changed() from public, anon, authenticated, service_role;
revoke all on function public.allocator_run_inputs_changed() from public, anon, authenticated, service_role;
revoke all on function public.allocator_py_allocations_changed() from public, anon, authenticated, service_role;
revoke all on function public.allocator_write_allocations(uuid, jsonb) from public, anon, authenticated, service_role;
revoke all on function public.allocator_import_run(jsonb, uuid, text) from public, anon;
grant execute on function public.allocator_import_run(jsonb, uuid, text) to authenticated, service_role;
