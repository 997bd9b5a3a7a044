"""The HTTP API: health, solve one run, process the pending runs.

Start it with ``allocator api`` (which refuses to start without ``ALLOCATOR_API_KEY``), or
serve :func:`create_app` with any ASGI server. The OpenAPI docs are at ``/docs``.

Every POST needs the header ``X-API-KEY`` equal to ``ALLOCATOR_API_KEY`` (compared in
constant time); without it or with a wrong one the answer is 401, and with no key
configured every POST answers 503. A key sent in the query string is never accepted, and
never written to the access log (credentials in logged URLs are replaced by ``[redacted]``).
A solve claims its run before it answers 202 (409 when another caller has it); the solve
itself runs after the answer, in the background, through :mod:`allocator.service` like the
command line's.

With the database unreachable, ``/health`` still answers within :data:`HEALTH_BUDGET_SECONDS`
saying what is down, and every other request fails fast with 503: the store gives up after
a few seconds, and nothing queues behind one lock for longer than that.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field

import allocator
from allocator import service
from allocator.config import AppConfig, get_settings
from allocator.service import DatabaseUnavailableError, RunNotFoundError, RunStore, StoreError

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-KEY"

#: The shortest API key ``allocator api`` starts with.
MIN_API_KEY_LENGTH = 16

#: /health answers within this many seconds, whatever the database does.
HEALTH_BUDGET_SECONDS = 1.5

#: How long a request waits for another request that is opening the database connection.
_OPEN_WAIT_SECONDS = 1.0
#: After a failed attempt to open the database, requests within this many seconds get the
#: same answer at once instead of trying again.
_RETRY_AFTER_SECONDS = 2.0

# Query parameters that carry credentials: their values never reach the access log.
_SECRET_PARAM = re.compile(
    r"(?i)([?&](?:[a-z0-9_.-]*[_.-])?(?:api[_-]?key|apikey|key|token|secret|password|passwd|pwd|auth|authorization|signature|sig|jwt)=)[^&#\s]*"
)


def redact_url(path: str) -> str:
    """The path with the values of credential-like query parameters replaced by ``[redacted]``."""
    return _SECRET_PARAM.sub(r"\1[redacted]", path)


class RedactCredentials(logging.Filter):
    """Removes credentials from uvicorn's access-log lines (its third argument is the path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_url(args[2]), *args[3:])
        return True


def install_access_log_redaction() -> None:
    """Add :class:`RedactCredentials` to uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactCredentials) for f in access.filters):
        access.addFilter(RedactCredentials())


def api_key_problem(key: str | None) -> str | None:
    """Why ``allocator api`` refuses to start with this key; ``None`` when it is fine."""
    if key is None or not key.strip():
        return (
            "Refusing to start: no API key is configured. Set ALLOCATOR_API_KEY (environment, "
            ".env or .streamlit/secrets.toml) to a long random secret; clients send it in the "
            "X-API-KEY header."
        )
    if len(key) < MIN_API_KEY_LENGTH:
        return (
            f"Refusing to start: ALLOCATOR_API_KEY is {len(key)} characters long; use at least "
            f"{MIN_API_KEY_LENGTH} (a long random secret, e.g. `python -c \"import secrets; "
            "print(secrets.token_urlsafe(32))\"`)."
        )
    if not _header_safe(key):
        return (
            "Refusing to start: ALLOCATOR_API_KEY holds a character other than ASCII letters, digits, "
            "punctuation and inner spaces, which an X-API-KEY header cannot carry as it is, so no request "
            "could match it. Use a random secret of those (e.g. `python -c \"import secrets; "
            "print(secrets.token_urlsafe(32))\"`)."
        )
    return None


def _header_safe(key: str) -> bool:
    """Printable ASCII, no space at either end: HTTP clients send a header's other characters
    in different encodings (or refuse them), and trim its ends, so such a key never matches."""
    return all(" " <= ch <= "~" for ch in key) and key == key.strip()

_api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="The key set in ALLOCATOR_API_KEY; required on every POST.",
)


# --------------------------------------------------------------------------- answers


class DatabaseHealth(BaseModel):
    reachable: bool
    store: str
    error: str | None = None


class Health(BaseModel):
    status: str = Field(description="'ok', or 'degraded' when the database is unreachable")
    version: str
    time: datetime
    database: DatabaseHealth


class Accepted(BaseModel):
    accepted: bool = True
    worker: str
    run_id: str | None = None
    detail: str


class Problem(BaseModel):
    detail: str


# --------------------------------------------------------------------------- the app


class _StoreHolder:
    """One store per app, opened on first use (so /docs works before the database is up).

    Requests never queue behind one another for long: while one opens the store, the others
    wait at most ``open_wait`` seconds, and a failure to open is remembered for
    ``retry_after`` seconds, so the requests in that time get the same answer at once.
    """

    def __init__(
        self,
        factory: Callable[[], RunStore],
        *,
        open_wait: float = _OPEN_WAIT_SECONDS,
        retry_after: float = _RETRY_AFTER_SECONDS,
    ):
        self._factory = factory
        self._store: RunStore | None = None
        self._lock = threading.Lock()
        self._open_wait = open_wait
        self._retry_after = retry_after
        self._failure: tuple[float, StoreError] | None = None

    def get(self) -> RunStore:
        store = self._store
        if store is not None:
            return store
        if not self._lock.acquire(timeout=self._open_wait):
            raise DatabaseUnavailableError(
                "The database connection is being opened by another request and is not ready yet."
            )
        try:
            if self._store is None:
                if self._failure is not None and time.monotonic() - self._failure[0] < self._retry_after:
                    raise self._failure[1]
                try:
                    self._store = self._factory()
                except StoreError as exc:
                    self._failure = (time.monotonic(), exc)
                    raise
                self._failure = None
            return self._store
        finally:
            self._lock.release()

    def close(self, wait: float = 5.0) -> None:
        # A store still being opened (a database that does not answer) must not hold up
        # the shutdown for long.
        if not self._lock.acquire(timeout=wait):
            log.warning("The database connection was still being opened at shutdown; not waiting for it.")
            return
        try:
            if self._store is not None:
                self._store.close()
                self._store = None
        finally:
            self._lock.release()


class _HealthProbe:
    """Pings the database on a thread of its own and waits at most ``budget`` seconds.

    One ping at a time: while one hangs (a database that accepts connections but does not
    answer), later health checks wait for that same ping, never start more.
    """

    def __init__(self, holder: _StoreHolder, budget: float = HEALTH_BUDGET_SECONDS):
        self._holder = holder
        self._budget = budget
        self._lock = threading.Lock()
        self._future: Future[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="allocator-health")

    def check(self) -> str | None:
        """``None`` when the database answered; else what is wrong, in one line."""
        with self._lock:
            if self._future is None or self._future.done():
                self._future = self._executor.submit(lambda: service.ping(self._holder.get()))
            future = self._future
        try:
            future.result(timeout=self._budget)
        except FutureTimeout:
            return f"The database did not answer within {self._budget:g} s."
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            return _one_line(exc)
        return None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def create_app(
    settings: AppConfig | None = None,
    *,
    store_factory: Callable[[], RunStore] | None = None,
    worker: str | None = None,
) -> FastAPI:
    """Build the API. ``store_factory`` opens the store (default: from ``settings``)."""
    settings = settings or get_settings()
    holder = _StoreHolder(store_factory or (lambda: service.open_store(settings, fail_fast=True)))
    probe = _HealthProbe(holder)
    worker_name = worker or f"api@{service.default_worker_name()}"
    install_access_log_redaction()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_access_log_redaction()  # again: the server may have configured logging since
        yield
        probe.close()
        holder.close()

    app = FastAPI(
        title="Allocator",
        version=allocator.__version__,
        summary="Solve allocation runs held in the database.",
        description=(
            "Solve runs of junior doctors to job lines. POSTs need the `X-API-KEY` header. "
            "Solves run in the background: a 202 means the work was accepted; its outcome "
            "is recorded on the run (status, error, allocations)."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = holder

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        if isinstance(exc, DatabaseUnavailableError):
            return JSONResponse({"detail": f"The database is not available: {exc}"}, status_code=503)
        log.error("%s %s: %s", request.method, redact_url(request.url.path), exc)
        return JSONResponse({"detail": str(exc)}, status_code=500)

    def store() -> RunStore:
        try:
            return holder.get()
        except StoreError as exc:
            raise HTTPException(503, f"The database is not available: {exc}") from None

    def require_key(key: str | None = Security(_api_key_header)) -> None:
        expected = settings.api_key.get_secret_value() if settings.api_key else ""
        if not expected:
            raise HTTPException(
                503, "This API has no key configured (ALLOCATOR_API_KEY), so it accepts no POST."
            )
        if len(expected) < MIN_API_KEY_LENGTH:  # served by another ASGI server than `allocator api`
            raise HTTPException(
                503,
                f"This API's key (ALLOCATOR_API_KEY) is shorter than {MIN_API_KEY_LENGTH} characters, "
                "so it accepts no POST.",
            )
        if not _header_safe(expected):  # served by another ASGI server than `allocator api`
            raise HTTPException(
                503,
                "This API's key (ALLOCATOR_API_KEY) holds characters an X-API-KEY header cannot carry, "
                "so it accepts no POST.",
            )
        given = key or ""
        if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
            raise HTTPException(
                401,
                f"Missing or wrong {API_KEY_HEADER} header.",
                headers={"WWW-Authenticate": "APIKey"},
            )

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    def health() -> Any:
        """Liveness and the database's reachability (503 when it cannot be reached)."""
        from allocator.config import store_choice

        problem = probe.check()
        db = DatabaseHealth(reachable=problem is None, store=store_choice(settings), error=problem)
        body = Health(
            status="ok" if db.reachable else "degraded",
            version=allocator.__version__,
            time=datetime.now(UTC),
            database=db,
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=200 if db.reachable else 503)

    @app.post(
        "/runs/{run_id}/solve",
        status_code=202,
        response_model=Accepted,
        dependencies=[Depends(require_key)],
        responses={401: {"model": Problem}, 404: {"model": Problem}, 409: {"model": Problem},
                   503: {"model": Problem}},
    )
    def solve_run(run_id: str, background: BackgroundTasks, request: Request) -> Accepted:
        """Claim one run, then solve it in the background with its own settings.

        The claim is made before the answer: of any number of requests at once, exactly one
        gets 202. 404 when there is no such run; 409 when it is not waiting to be solved
        (another caller or worker holds it, or it is complete).
        """
        st = store()
        try:
            claimed = service.claim_run(st, run_id, worker=worker_name)
        except RunNotFoundError:
            raise HTTPException(404, f"There is no run with id {run_id!r}.") from None
        except service.ServiceError as exc:
            raise HTTPException(409, str(exc)) from None
        background.add_task(_solve_in_background, st, claimed, worker_name, _threads(settings))
        return Accepted(
            worker=worker_name,
            run_id=run_id,
            detail="Accepted: the run is solved in the background; its status shows the outcome.",
        )

    @app.post(
        "/runs/process-pending",
        status_code=202,
        response_model=Accepted,
        dependencies=[Depends(require_key)],
        responses={401: {"model": Problem}, 503: {"model": Problem}},
    )
    def process_pending(background: BackgroundTasks) -> Accepted:
        """Solve every pending run in the background, one after another."""
        st = store()
        background.add_task(_process_in_background, st, worker_name, _threads(settings))
        return Accepted(
            worker=worker_name,
            detail="Accepted: pending runs are solved in the background until none is left.",
        )

    return app


def _threads(settings: AppConfig) -> int | None:
    return settings.solver_threads


def _options(threads: int | None):
    return service.solve_options(threads=threads)


def _solve_in_background(store: RunStore, claimed: Any, worker: str, threads: int | None) -> None:
    try:
        outcome = service.solve_claimed(store, claimed, worker=worker, options=_options(threads))
        log.info("%s", outcome.summary())
    except Exception:  # noqa: BLE001 - nobody is waiting for the answer: log it
        log.exception("background solve of run %s failed", claimed.run_id)


def _process_in_background(store: RunStore, worker: str, threads: int | None) -> None:
    try:
        service.process_pending(
            store, worker=worker, options=_options(threads), on_outcome=lambda o: log.info("%s", o.summary())
        )
    except Exception:  # noqa: BLE001
        log.exception("background processing of pending runs failed")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
