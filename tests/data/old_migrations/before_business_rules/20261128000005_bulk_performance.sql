-- Large runs (tens of thousands of workers, hundreds of thousands of preferences).
--
-- The functions this change concerns are defined once, where a reader looks for them (no
-- database outside this project had applied the first versions): the change-tracking
-- triggers (allocator_inputs_changed, allocator_run_inputs_changed,
-- allocator_py_allocations_changed) in 20261128000002_triggers.sql; the snapshot as json
-- (allocator_run_snapshot_json, allocator_run_snapshot, allocator_load_run), the allocation
-- writes (allocator_write_allocations) and the import (allocator_import_run) in
-- 20261128000003_functions.sql. What they do for large runs:
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
-- What is left here are the privileges of the functions that 20261128000004_security.sql
-- did not know: after it, as before. Idempotent (safe to apply again).

-- What a store loads: the snapshot (json) and its inputs_version.
revoke all on function public.allocator_run_snapshot_json(uuid) from public, anon, authenticated, service_role;
revoke all on function public.allocator_load_run(uuid) from public, anon, authenticated, service_role;
grant execute on function public.allocator_run_snapshot_json(uuid) to authenticated, service_role;
grant execute on function public.allocator_load_run(uuid) to authenticated, service_role;

-- Trigger functions are never called directly; the import is called through its grant.
revoke all on function public.allocator_inputs_changed() from public, anon, authenticated, service_role;
revoke all on function public.allocator_run_inputs_changed() from public, anon, authenticated, service_role;
revoke all on function public.allocator_py_allocations_changed() from public, anon, authenticated, service_role;
revoke all on function public.allocator_write_allocations(uuid, jsonb) from public, anon, authenticated, service_role;
revoke all on function public.allocator_import_run(jsonb, uuid, text, text) from public, anon;
grant execute on function public.allocator_import_run(jsonb, uuid, text, text) to authenticated, service_role;
