"""The ``supabase`` store's requests, against a fake PostgREST behind a real supabase-py client.

Only the HTTP server is fake (``httpx.MockTransport``): the client, its query builder and the
adapter are the real ones, so these tests check what actually goes over the wire (paths,
filters, ``Prefer`` headers, ``rpc`` bodies, pagination) and how PostgREST's errors come back.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import httpx
import pytest

from allocator.snapshot import RunSnapshot
from allocator.store.base import (
    AccessDeniedError,
    Allocation,
    AlreadyPublishedError,
    ClaimLostError,
    DatabaseUnavailableError,
    InvalidSnapshotError,
    LateWorker,
    RunBusyError,
    RunNotFoundError,
    ScenarioNotFoundError,
    StaleScenarioError,
    StoreError,
)
from allocator.store.supabase import SupabaseStore
from supabase import ClientOptions, create_client

URL = "https://project.supabase.co"
KEY = "anon-key-for-tests"
RUN = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
SCENARIO = "6fa459ea-ee8a-3ca4-894e-db77e160355e"

#: A tiny valid run: two workers, two lines.
SNAPSHOT = {
    "format": "allocator-run/1",
    "run": {"id": "tiny", "name": "Tiny"},
    "workers": [{"id": "w1"}, {"id": "w2"}],
    "job_lines": [{"id": "j1", "max_n_workers": 1}, {"id": "j2", "max_n_workers": 1}],
    "worker_preferences": [{"worker_id": "w1", "job_line_id": "j1", "rank": 1}],
}


class FakePostgrest:
    """Answers like PostgREST: tables read with offset/limit (capped at ``max_rows``) and
    ``Content-Range``; ``rpc`` answered by the functions in ``rpcs``. Records every request."""

    def __init__(self, *, max_rows: int = 1000, counts: bool = True):
        self.tables: dict[str, list[dict]] = {}
        self.rpcs: dict[str, Callable[[dict], httpx.Response | object]] = {}
        self.requests: list[httpx.Request] = []
        self.table_errors: dict[str, httpx.Response] = {}
        self.max_rows = max_rows
        self.counts = counts

    # -- the transport ------------------------------------------------------------------
    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        m = re.fullmatch(r"/rest/v1/rpc/(\w+)", path)
        if m:
            body = json.loads(request.content or b"{}")
            answer = self.rpcs[m.group(1)](body)
            return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)
        m = re.fullmatch(r"/rest/v1/(\w+)", path)
        assert m and request.method == "GET", f"unexpected request {request.method} {path}"
        if m.group(1) in self.table_errors:
            return self.table_errors[m.group(1)]
        return self._select(m.group(1), request)

    def _select(self, table: str, request: httpx.Request) -> httpx.Response:
        params = parse_qsl(request.url.query.decode())
        rows = list(self.tables.get(table, []))
        for key, value in params:
            if key in ("select", "order", "offset", "limit"):
                continue
            op, _, arg = value.partition(".")
            assert op == "eq", f"only eq filters are faked, got {key}={value}"
            rows = [r for r in rows if str(r.get(key)) == arg]
        q = dict(params)
        offset = int(q.get("offset", 0))
        limit = min(int(q.get("limit", self.max_rows)), self.max_rows)
        page = rows[offset : offset + limit]
        total = str(len(rows)) if self.counts and "count=exact" in request.headers.get("prefer", "") else "*"
        span = f"{offset}-{offset + len(page) - 1}" if page else "*"
        return httpx.Response(200, json=page, headers={"Content-Range": f"{span}/{total}"})

    # -- what was asked -----------------------------------------------------------------
    def rpc_calls(self, name: str | None = None) -> list[tuple[str, dict]]:
        out = []
        for r in self.requests:
            m = re.fullmatch(r"/rest/v1/rpc/(\w+)", r.url.path)
            if m and (name is None or m.group(1) == name):
                out.append((m.group(1), json.loads(r.content)))
        return out


@pytest.fixture
def server() -> FakePostgrest:
    return FakePostgrest()


def make_store(server: FakePostgrest, **kw) -> SupabaseStore:
    http = httpx.Client(transport=httpx.MockTransport(server))
    # Retries would sleep for seconds on a 503; the error tests want the first answer.
    options = ClientOptions(httpx_client=http, postgrest_client_retry=False)
    return SupabaseStore(create_client(URL, KEY, options=options), **kw)


@pytest.fixture
def store(server: FakePostgrest) -> SupabaseStore:
    return make_store(server)


def query(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.url.query.decode()))


def summary_row(i: int) -> dict:
    return {
        "id": str(uuid.UUID(int=i)), "name": f"run {i}", "status": "pending", "n_workers": 3,
        "n_job_lines": 2, "last_solved_at": None, "published": False,
        "created_at": "2026-11-28T21:14:36.123456+00:00", "allocation_run_id": str(uuid.UUID(int=10**6 + i)),
        "organisation_id": str(uuid.UUID(int=7)), "is_exclusive": False, "attempts": 0, "error": None,
        "completed_at": None,
    }


# --------------------------------------------------------------------------- reads


def test_a_2500_row_read_makes_three_range_requests_and_returns_every_row(server, store):
    server.tables["allocator_run_list"] = [summary_row(i) for i in range(2500)]

    runs = store.list_runs()

    assert [r.id for r in runs] == [str(uuid.UUID(int=i)) for i in range(2500)]
    assert len(server.requests) == 3
    pages = [query(r) for r in server.requests]
    assert [(p["offset"], p["limit"]) for p in pages] == [("0", "1000"), ("1000", "1000"), ("2000", "1000")]
    for r, p in zip(server.requests, pages, strict=True):
        assert r.method == "GET"
        assert r.url.path == "/rest/v1/allocator_run_list"
        # A stable order that ends in a unique column, so pages neither overlap nor skip.
        assert p["order"] == "created_at.desc,id.asc"
        assert p["select"] == "*"
        assert r.headers["apikey"] == KEY
        assert r.headers["authorization"] == f"Bearer {KEY}"
    # Only the first page asks for the total.
    assert [r.headers.get("prefer") for r in server.requests] == ["count=exact", None, None]


def test_read_continues_past_a_server_cap_below_the_page_size():
    """A project with max-rows 400 answers 400-row pages to 1,000-row requests: the count
    says more are left, so the read goes on instead of taking the short page for the end."""
    server = FakePostgrest(max_rows=400)
    server.tables["allocator_run_list"] = [summary_row(i) for i in range(1001)]

    runs = make_store(server).list_runs()

    assert len(runs) == 1001
    assert [query(r)["offset"] for r in server.requests] == ["0", "400", "800"]


def test_without_a_count_a_short_page_ends_the_read():
    server = FakePostgrest(counts=False)
    server.tables["allocator_run_list"] = [summary_row(i) for i in range(5)]

    runs = make_store(server, page_size=2).list_runs()

    assert len(runs) == 5
    assert [query(r)["offset"] for r in server.requests] == ["0", "2", "4"]


def test_run_summary_fields_are_typed(server, store):
    server.tables["allocator_run_list"] = [summary_row(1)]
    (run,) = store.list_runs()
    assert run.name == "run 1" and run.status == "pending" and run.n_workers == 3
    assert isinstance(run.created_at, datetime) and run.created_at.tzinfo is not None
    assert run.last_solved_at is None


def test_load_run_calls_the_snapshot_rpc_once(server, store):
    server.rpcs["allocator_load_run"] = lambda body: [
        {"snapshot": SNAPSHOT, "inputs_version": 3}
    ]

    snap = store.load_run(RUN)

    assert snap == RunSnapshot.parse(SNAPSHOT)
    (req,) = server.requests
    assert (req.method, req.url.path) == ("POST", "/rest/v1/rpc/allocator_load_run")
    assert json.loads(req.content) == {"p_run_id": RUN}


def test_list_scenarios_checks_the_run_then_filters_by_it(server, store):
    server.tables["allocator_py_runs"] = [{"id": RUN}]
    server.tables["allocator_latest_scenarios"] = [
        {"id": SCENARIO, "run_id": RUN, "name": "A", "settings": {"preferencer_weight": 0.5},
         "overrides": {}, "result": None, "input_fingerprint": "f" * 64, "created_by": "me",
         "created_at": "2026-11-28T21:14:36Z"},
        {"id": str(uuid.uuid4()), "run_id": str(uuid.uuid4()), "name": "other run's",
         "settings": {}, "overrides": {}, "result": None, "input_fingerprint": "x",
         "created_by": None, "created_at": "2026-11-28T21:14:36Z"},
    ]

    (scenario,) = store.list_scenarios(RUN)

    assert scenario.name == "A" and scenario.settings == {"preferencer_weight": 0.5}
    check, page = server.requests
    assert check.url.path == "/rest/v1/allocator_py_runs"
    assert query(check) == {"select": "id", "id": f"eq.{RUN}", "limit": "1"}
    # Only the latest version of each scenario name is listed.
    assert page.url.path == "/rest/v1/allocator_latest_scenarios"
    assert query(page)["run_id"] == f"eq.{RUN}"
    assert query(page)["order"] == "created_at.desc,id.asc"


def test_list_scenarios_of_an_unknown_run_is_not_found(server, store):
    server.tables["allocator_py_runs"] = []
    with pytest.raises(RunNotFoundError):
        store.list_scenarios(RUN)


def test_get_scenario_unknown_is_not_found(server, store):
    with pytest.raises(ScenarioNotFoundError):
        store.get_scenario(SCENARIO)
    assert query(server.requests[0]) == {"select": "*", "id": f"eq.{SCENARIO}", "limit": "1"}


def test_publication_log_pages_by_id(server, store):
    server.tables["allocator_publication_log"] = [
        {"id": 1, "run_id": RUN, "scenario_id": None, "action": "complete", "reason": None,
         "input_fingerprint": "f", "allocations": [{"worker_id": "w1", "job_line_id": "j1",
         "worker_rank": 1.0, "cost": 0.7}], "previous_allocations": [], "published_by": "worker-1",
         "published_at": "2026-11-28T21:14:36+00:00"},
    ]
    (entry,) = store.publication_log(RUN)
    assert entry.allocations == [Allocation("w1", "j1", 1.0, 0.7)]
    assert query(server.requests[0])["order"] == "id.asc"
    assert query(server.requests[0])["run_id"] == f"eq.{RUN}"


def test_allocations_come_from_the_rpc(server, store):
    server.tables["allocator_py_runs"] = [{"id": RUN}]
    server.rpcs["allocator_allocations_json"] = lambda body: [
        {"worker_id": "w1", "job_line_id": "j2", "worker_rank": 2.0, "cost": 1.5}
    ]
    assert store.allocations(RUN) == [Allocation("w1", "j2", 2.0, 1.5)]
    assert server.rpc_calls("allocator_allocations_json") == [("allocator_allocations_json", {"p_run_id": RUN})]


# --------------------------------------------------------------------------- writes


def test_every_write_is_one_rpc_post_without_a_prefer_header(server, store):
    """Writes go through the SQL functions only: a POST to /rpc/<function> with the
    arguments as a JSON body, never a table write (the fake refuses non-GET table requests)."""
    server.rpcs.update({
        "allocator_import_run": lambda body: RUN,
        "allocator_save_scenario": lambda body: SCENARIO,
        "allocator_complete_run": lambda body: 1,
        "allocator_fail_run": lambda body: None,
        "allocator_requeue_run": lambda body: None,
        "allocator_renew_lease": lambda body: "2026-11-30T12:00:00+00:00",
    })

    assert store.import_snapshot(SNAPSHOT, name="Intake") == RUN
    assert store.renew_lease(RUN, "worker-1", 90) == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert store.save_scenario(RUN, "A", {"stability": True}, None, {"status": "optimal"}, "f" * 64, "me") == SCENARIO
    store.complete_run(RUN, "worker-1", [Allocation("w1", "j1", 1.0, 0.7), {"worker_id": "w2", "job_line_id": "j2"}],
                       {"status": "optimal"})
    store.fail_run(RUN, "worker-1", "Line 'j1' must be filled")
    store.requeue_run(RUN)

    assert all(r.method == "POST" and "prefer" not in r.headers for r in server.requests)
    calls = dict(server.rpc_calls())
    assert calls["allocator_import_run"] == {
        "p_snapshot": RunSnapshot.parse(SNAPSHOT).model_dump(mode="json"),
        "p_organisation_id": None,
        "p_name": "Intake",
    }
    assert calls["allocator_save_scenario"] == {
        "p_run_id": RUN, "p_name": "A", "p_settings": {"stability": True}, "p_overrides": {},
        "p_result": {"status": "optimal"}, "p_input_fingerprint": "f" * 64, "p_created_by": "me",
    }
    assert calls["allocator_complete_run"] == {
        "p_run_id": RUN, "p_worker": "worker-1",
        "p_allocations": [
            {"worker_id": "w1", "job_line_id": "j1", "worker_rank": 1.0, "cost": 0.7},
            {"worker_id": "w2", "job_line_id": "j2", "worker_rank": None, "cost": None},
        ],
        "p_result": {"status": "optimal"},
    }
    assert calls["allocator_fail_run"] == {"p_run_id": RUN, "p_worker": "worker-1", "p_error": "Line 'j1' must be filled"}
    assert calls["allocator_requeue_run"] == {"p_run_id": RUN}
    assert calls["allocator_renew_lease"] == {"p_run_id": RUN, "p_worker": "worker-1", "p_lease_seconds": 90.0}


def test_an_invalid_snapshot_is_refused_before_any_request(server, store):
    bad = {**SNAPSHOT, "pins": [{"worker_id": "nobody", "job_line_id": "j1"}]}
    with pytest.raises(InvalidSnapshotError, match="nobody"):
        store.import_snapshot(bad)
    assert server.requests == []


def test_claim_next_sends_the_lease_and_reads_the_claim(server, store):
    answers = [[], [{"run_id": RUN, "worker": "w-1", "attempts": 2,
                     "lease_expires_at": "2026-11-28T21:19:36.5+00:00", "settings": {"max_seconds": 5}}]]
    server.rpcs["allocator_claim"] = lambda body: answers.pop(0)

    assert store.claim_next("w-1", 30) is None
    claim = store.claim_next("w-1", 30, run_id=RUN)

    assert claim is not None and claim.run_id == RUN and claim.attempts == 2
    assert claim.lease_expires_at == datetime.fromisoformat("2026-11-28T21:19:36.5+00:00")
    assert claim.settings == {"max_seconds": 5}
    assert [body for _, body in server.rpc_calls("allocator_claim")] == [
        {"p_worker": "w-1", "p_lease_seconds": 30.0, "p_run_id": None},
        {"p_worker": "w-1", "p_lease_seconds": 30.0, "p_run_id": RUN},
    ]


def test_publish_sends_the_fingerprint_and_version_of_a_fresh_load(server, store):
    server.rpcs["allocator_load_run"] = lambda body: [{"snapshot": SNAPSHOT, "inputs_version": 7}]
    server.rpcs["allocator_publish"] = lambda body: [
        {"publication_id": 12, "n_allocations": 2, "superseded": True,
         "published_at": "2026-11-28T22:00:00+00:00"}
    ]

    outcome = store.publish(RUN, SCENARIO, reason="Late swap", supersede=True, published_by="me")

    assert outcome.publication_id == 12 and outcome.superseded and outcome.n_allocations == 2
    assert [name for name, _ in server.rpc_calls()] == ["allocator_load_run", "allocator_publish"]
    (_, body), = server.rpc_calls("allocator_publish")
    assert body == {
        "p_run_id": RUN, "p_scenario_id": SCENARIO,
        "p_expected_fingerprint": RunSnapshot.parse(SNAPSHOT).data_fingerprint(),
        "p_reason": "Late swap", "p_supersede": True, "p_published_by": "me",
        "p_expected_inputs_version": 7,
    }


# --------------------------------------------------------------------------- versions and the inputs version


def scenario_row(version: int, *, name: str = "A", run_id: str = RUN) -> dict:
    return {"id": str(uuid.UUID(int=100 + version)), "run_id": run_id, "name": name, "settings": {},
            "overrides": {}, "result": None, "input_fingerprint": "f" * 64, "created_by": "me",
            "created_at": "2026-11-28T21:14:36Z", "version": version,
            "previous_id": str(uuid.UUID(int=99 + version)) if version > 1 else None}


def test_scenario_versions_reads_every_version_of_one_name_latest_first(server, store):
    server.tables["allocator_scenarios"] = [
        scenario_row(1), scenario_row(2), scenario_row(1, name="B"), scenario_row(1, run_id=str(uuid.uuid4()))]

    versions = store.scenario_versions(RUN, "A")

    assert [(s.version, s.previous_id) for s in versions] == [(1, None), (2, str(uuid.UUID(int=101)))]
    (req,) = server.requests
    assert req.url.path == "/rest/v1/allocator_scenarios"
    q = query(req)
    assert (q["run_id"], q["name"], q["order"]) == (f"eq.{RUN}", "eq.A", "version.desc,id.asc")


def test_inputs_version_is_one_rpc_of_the_sql_function(server, store):
    server.rpcs["allocator_run_inputs_version"] = lambda body: 42
    assert store.inputs_version(RUN) == 42
    assert server.rpc_calls() == [("allocator_run_inputs_version", {"p_run_id": RUN})]
    # An unknown run (or one the planner may not see) gives null.
    server.rpcs["allocator_run_inputs_version"] = lambda body: None
    with pytest.raises(RunNotFoundError):
        store.inputs_version(RUN)


def test_load_run_versioned_gives_the_snapshot_and_its_version_from_one_call(server, store):
    server.rpcs["allocator_load_run"] = lambda body: [{"snapshot": SNAPSHOT, "inputs_version": 5}]
    snap, version = store.load_run_versioned(RUN)
    assert (snap, version) == (RunSnapshot.parse(SNAPSHOT), 5)
    assert [name for name, _ in server.rpc_calls()] == ["allocator_load_run"]


def test_publish_new_version_is_one_rpc_and_names_the_new_version(server, store):
    new_id = str(uuid.UUID(int=555))
    server.rpcs["allocator_publish_new_version"] = lambda body: [
        {"scenario_id": new_id, "version": 3, "publication_id": 9, "n_allocations": 2, "superseded": False,
         "published_at": "2026-11-30T10:00:00+00:00"}]
    result = {"status": "optimal", "allocations": [{"worker_id": "w1", "job_line_id": "j1"}]}

    outcome = store.publish_new_version(RUN, SCENARIO, result, "f" * 64, 7, reason="Data changed",
                                        published_by="me")

    assert (outcome.scenario_id, outcome.version, outcome.publication_id) == (new_id, 3, 9)
    assert server.rpc_calls() == [("allocator_publish_new_version", {
        "p_run_id": RUN, "p_scenario_id": SCENARIO, "p_result": result, "p_input_fingerprint": "f" * 64,
        "p_expected_inputs_version": 7, "p_reason": "Data changed", "p_supersede": False, "p_published_by": "me",
    })]
    assert all(r.method == "POST" for r in server.requests)


def test_a_refused_new_version_comes_back_as_the_stale_error(server, store):
    server.rpcs["allocator_publish_new_version"] = lambda body: postgrest_error(
        400, "AL001", 'The run\'s data changed again while scenario "A" was being solved.', "Solve it again.")
    with pytest.raises(StaleScenarioError, match="changed again"):
        store.publish_new_version(RUN, SCENARIO, {"status": "optimal"}, "f", 1)


# --------------------------------------------------------------------------- errors


def postgrest_error(status: int, code: str, message: str, hint: str | None = None) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message, "hint": hint, "details": None})


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "AL001", StaleScenarioError),  # raised by allocator_publish: inputs changed
        (400, "AL002", AlreadyPublishedError),  # publish without supersede
        (400, "AL003", RunNotFoundError),  # unknown run (or invisible under RLS)
        (400, "AL004", ClaimLostError),  # the worker's lease ended and another took the run
        (400, "AL009", RunBusyError),  # requeue of a run a worker holds, or already waiting
        (403, "42501", AccessDeniedError),  # PostgREST's answer to a permission/RLS refusal
        (401, "PGRST301", StoreError),  # an expired JWT: no specific exception, a StoreError
    ],
)
def test_postgrest_errors_become_store_errors(server, store, status, code, expected):
    server.rpcs["allocator_publish"] = lambda body: postgrest_error(status, code, "It went wrong.", "Do this.")
    server.rpcs["allocator_load_run"] = lambda body: [{"snapshot": SNAPSHOT, "inputs_version": 1}]

    with pytest.raises(StoreError) as info:
        store.publish(RUN, SCENARIO)

    assert type(info.value) is expected
    assert info.value.sqlstate == code
    assert info.value.message == "It went wrong."
    assert info.value.hint == "Do this."
    assert str(info.value) == "It went wrong. (Do this.)"


def test_a_read_error_is_mapped_too(server, store):
    server.table_errors["allocator_run_list"] = postgrest_error(
        403, "42501", "permission denied for view allocator_run_list"
    )
    with pytest.raises(AccessDeniedError, match="permission denied"):
        store.list_runs()


def test_a_network_failure_is_a_store_error():
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    http = httpx.Client(transport=httpx.MockTransport(down))
    store = SupabaseStore(create_client(URL, KEY, options=ClientOptions(httpx_client=http, postgrest_client_retry=False)))
    with pytest.raises(DatabaseUnavailableError, match="Cannot reach the Supabase API"):
        store.claim_next("w", 10)


def test_a_malformed_id_is_not_found_without_a_request(server, store):
    with pytest.raises(RunNotFoundError, match="not a run or scenario id"):
        store.load_run("not-a-uuid")
    assert server.requests == []


def test_from_settings_needs_url_and_key():
    from allocator.config import AppConfig

    with pytest.raises(StoreError, match="SUPABASE_URL"):
        SupabaseStore.from_settings(AppConfig(supabase_url=None, supabase_key=None, _env_file=None))
    store = SupabaseStore.from_settings(AppConfig(supabase_url=URL, supabase_key=KEY, _env_file=None))
    assert isinstance(store, SupabaseStore)


# --------------------------------------------------------------------------- against the schema


@pytest.mark.db
def test_every_request_names_a_function_and_columns_the_migrations_define(server, store, pg_url):
    """The fake server accepts any name; the real schema must too. Every rpc the adapter
    sends names a function of the migrations with those parameter names (and leaves out
    only parameters with defaults); every table read names a relation and columns that exist."""
    import psycopg

    server.tables["allocator_py_runs"] = [{"id": RUN}]
    server.rpcs.update({
        "allocator_load_run": lambda body: [{"snapshot": SNAPSHOT, "inputs_version": 1}],
        "allocator_import_run": lambda body: RUN,
        "allocator_save_scenario": lambda body: SCENARIO,
        "allocator_publish": lambda body: [{"publication_id": 1, "n_allocations": 2, "superseded": False,
                                            "published_at": "2026-11-28T22:00:00+00:00"}],
        "allocator_allocations_json": lambda body: [],
        "allocator_claim": lambda body: [],
        "allocator_complete_run": lambda body: 2,
        "allocator_fail_run": lambda body: None,
        "allocator_requeue_run": lambda body: None,
        "allocator_run_inputs_version": lambda body: 1,
        "allocator_publish_new_version": lambda body: [
            {"scenario_id": SCENARIO, "version": 2, "publication_id": 1, "n_allocations": 2,
             "superseded": False, "published_at": "2026-11-28T22:00:00+00:00"}],
    })
    store.list_runs()
    store.scenario_versions(RUN, "A")
    store.inputs_version(RUN)
    store.load_run_versioned(RUN)
    store.publish_new_version(RUN, SCENARIO, {"status": "optimal"}, "f", 1, reason="r", supersede=True,
                              published_by="me")
    store.load_run(RUN)
    store.import_snapshot(SNAPSHOT)
    store.save_scenario(RUN, "A", {}, None, None, "f")
    store.list_scenarios(RUN)
    with pytest.raises(ScenarioNotFoundError):
        store.get_scenario(SCENARIO)
    store.publish(RUN, SCENARIO)
    store.publication_log(RUN)
    store.allocations(RUN)
    store.claim_next("w", 10, run_id=RUN)
    store.complete_run(RUN, "w", [])
    store.fail_run(RUN, "w", "x")
    store.requeue_run(RUN)

    with psycopg.connect(pg_url) as conn:
        for name, body in server.rpc_calls():
            signatures = conn.execute(
                """
                select coalesce(array(select n from unnest(p.proargnames, p.proargmodes::text[]) as a(n, m)
                                      where m is null or m in ('i', 'b')),
                                p.proargnames[1:p.pronargs]),
                       p.pronargs, p.pronargdefaults
                  from pg_proc p where p.pronamespace = 'public'::regnamespace and p.proname = %s
                """,
                (name,),
            ).fetchall()
            assert signatures, f"no function public.{name} in the migrations"
            assert any(
                set(body) <= set(args) and set(args[: nargs - ndefaults]) <= set(body)
                for args, nargs, ndefaults in signatures
            ), f"{name}({', '.join(body)}) matches no signature: {signatures}"

        for r in server.requests:
            if "/rpc/" in r.url.path:
                continue
            relation = r.url.path.rsplit("/", 1)[1]
            columns = {c for (c,) in conn.execute(
                "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0",
                (f"public.{relation}",),
            ).fetchall()}
            q = query(r)
            used = {k for k in q if k not in ("select", "order", "offset", "limit")}
            used |= {part.split(".")[0] for part in q.get("order", "").split(",") if part}
            used |= {c for c in q.get("select", "*").split(",") if c != "*"}
            assert used <= columns, f"{relation}: {used - columns} are not columns"


# --------------------------------------------------------------------------- run changes and provenance


def change_row(i: int, action: str = "withdraw_worker", **kw) -> dict:
    return {"id": i, "run_id": RUN, "allocation_run_id": str(uuid.UUID(int=99)), "action": action,
            "worker_id": "w2", "job_line_id": None, "details": {"name": "B. Osei"}, "reason": "Left",
            "changed_by": "ana@a.example", "changed_at": "2026-11-30T10:00:00.5+00:00", "inputs_version": 4, **kw}


def test_import_names_its_source_file_only_when_given(server, store):
    server.rpcs["allocator_import_run"] = lambda body: RUN
    store.import_snapshot(SNAPSHOT, name="Intake", source_file="march.xlsx")
    store.import_snapshot(SNAPSHOT)
    (_, with_file), (_, without) = server.rpc_calls("allocator_import_run")
    assert with_file["p_source_file"] == "march.xlsx"
    assert "p_source_file" not in without  # an older database's 3-argument function still answers


def test_each_run_change_is_one_rpc_and_comes_back_as_a_record(server, store):
    server.rpcs.update({
        "allocator_withdraw_worker": lambda body: change_row(1),
        "allocator_add_worker": lambda body: change_row(2, "add_worker", worker_id="w9"),
        "allocator_set_job_line": lambda body: change_row(3, "set_job_line", worker_id=None, job_line_id="j1"),
    })

    withdrawn = store.withdraw_worker(RUN, "w2", reason="Left", changed_by=None)
    added = store.add_worker(RUN, LateWorker("w9", "Late", ("icu",), (("j1", 1.0), ("j2", 2.0))), reason="Late start")
    line = store.set_job_line(RUN, "j1", reason="Funding", max_n_workers=3)

    assert all(r.method == "POST" and "prefer" not in r.headers for r in server.requests)
    calls = dict(server.rpc_calls())
    assert calls["allocator_withdraw_worker"] == {"p_run_id": RUN, "p_worker_id": "w2", "p_reason": "Left", "p_changed_by": None}
    assert calls["allocator_add_worker"] == {
        "p_run_id": RUN, "p_reason": "Late start", "p_changed_by": None,
        "p_worker": {"id": "w9", "name": "Late", "qualification_ids": ["icu"],
                     "preferences": [{"job_line_id": "j1", "rank": 1.0}, {"job_line_id": "j2", "rank": 2.0}]},
    }
    assert calls["allocator_set_job_line"] == {
        "p_run_id": RUN, "p_job_line_id": "j1", "p_reason": "Funding", "p_max_n_workers": 3,
        "p_must_have_workers": None, "p_changed_by": None,
    }
    assert (withdrawn.action, withdrawn.worker_id, withdrawn.reason) == ("withdraw_worker", "w2", "Left")
    assert isinstance(withdrawn.changed_at, datetime) and withdrawn.changed_at.tzinfo is not None
    assert (added.worker_id, line.job_line_id, line.inputs_version) == ("w9", "j1", 4)


def test_a_refused_change_names_the_entry(server, store):
    server.rpcs["allocator_withdraw_worker"] = lambda body: postgrest_error(
        400, "AL008", "Worker 'nobody' is not in run \"Intake\": check the worker id.")
    with pytest.raises(InvalidSnapshotError, match="Worker 'nobody' is not in run"):
        store.withdraw_worker(RUN, "nobody", reason="x")


def test_the_change_log_checks_the_run_then_reads_its_rows_by_id(server, store):
    server.tables["allocator_py_runs"] = [{"id": RUN}]
    server.tables["allocator_run_changes"] = [change_row(1), change_row(2, run_id=str(uuid.uuid4()))]

    (entry,) = store.run_changes(RUN)

    assert (entry.id, entry.changed_by, entry.details) == (1, "ana@a.example", {"name": "B. Osei"})
    check, page = server.requests
    assert check.url.path == "/rest/v1/allocator_py_runs"
    assert page.url.path == "/rest/v1/allocator_run_changes"
    assert query(page)["run_id"] == f"eq.{RUN}" and query(page)["order"] == "id.asc"


def test_run_summaries_carry_where_the_run_came_from(server, store):
    row = summary_row(1) | {"source_file": "march.xlsx", "last_scenario_saved_at": "2026-11-30T09:00:00Z",
                            "n_changes": 2}
    server.tables["allocator_run_list"] = [row]
    (run,) = store.list_runs()
    assert (run.source_file, run.n_changes) == ("march.xlsx", 2)
    assert run.last_scenario_saved_at == datetime.fromisoformat("2026-11-30T09:00:00+00:00")
    assert run.imported_at == run.created_at
