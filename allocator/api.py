"""The HTTP API: health, solve one run, process the pending runs.

Start it with ``allocator api`` (which refuses to start without ``ALLOCATOR_API_KEY``), or
serve :func:`create_app` with any ASGI server. The OpenAPI docs are at ``/docs``.

Every POST needs the header ``X-API-KEY`` equal to ``ALLOCATOR_API_KEY`` (compared in
constant time); without it or with a wrong one the answer is 401, and with no key
configured every POST answers 503. The solves run after the 202 answer, in the
background, through :mod:`allocator.service` like the command line's.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field

import allocator
from allocator import service
from allocator.config import Settings, get_settings
from allocator.store.base import RunNotFoundError, RunStore, StoreError

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-KEY"

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
    """One store per app, opened on first use (so /docs works before the database is up)."""

    def __init__(self, factory: Callable[[], RunStore]):
        self._factory = factory
        self._store: RunStore | None = None
        self._lock = threading.Lock()

    def get(self) -> RunStore:
        with self._lock:
            if self._store is None:
                self._store = self._factory()
            return self._store

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def create_app(
    settings: Settings | None = None,
    *,
    store_factory: Callable[[], RunStore] | None = None,
    worker: str | None = None,
) -> FastAPI:
    """Build the API. ``store_factory`` opens the store (default: from ``settings``)."""
    settings = settings or get_settings()
    holder = _StoreHolder(store_factory or (lambda: service.open_store(settings)))
    worker_name = worker or f"api@{service.default_worker_name()}"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
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

        db = DatabaseHealth(reachable=True, store=store_choice(settings))
        try:
            service.ping(holder.get())
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            db = DatabaseHealth(reachable=False, store=db.store, error=_one_line(exc))
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
        """Solve one run in the background with its own settings.

        404 when there is no such run; 409 when it is not waiting to be solved (another
        worker holds it, or it is complete).
        """
        st = store()
        try:
            summary = service.get_run(st, run_id)
        except RunNotFoundError:
            raise HTTPException(404, f"There is no run with id {run_id!r}.") from None
        refusal = service.solve_refusal(summary)
        if refusal:
            raise HTTPException(409, refusal)
        background.add_task(_solve_in_background, st, run_id, worker_name, _threads(settings))
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


def _threads(settings: Settings) -> int | None:
    return settings.solver_threads


def _options(threads: int | None):
    from allocator.solvers.base import SolveOptions

    return SolveOptions() if threads is None else SolveOptions(threads=threads)


def _solve_in_background(store: RunStore, run_id: str, worker: str, threads: int | None) -> None:
    try:
        outcome = service.solve_run(store, run_id, worker=worker, options=_options(threads))
        log.info("%s", outcome.summary())
    except Exception:  # noqa: BLE001 - nobody is waiting for the answer: log it
        log.exception("background solve of run %s failed", run_id)


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
