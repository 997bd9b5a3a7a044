"""Stores: where runs live. One interface (:class:`RunStore`), several adapters.

``open_store()`` picks the adapter from the configuration (see
:func:`allocator.config.store_choice`): an ``ALLOCATOR_DATABASE_URL`` wins, then a
Supabase project (``SUPABASE_URL`` + ``SUPABASE_KEY``), else the embedded PostgreSQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from allocator.store.base import (
    AccessDeniedError,
    Allocation,
    AlreadyPublishedError,
    ClaimedRun,
    ClaimLostError,
    ConfigurationError,
    DatabaseUnavailableError,
    InvalidSnapshotError,
    LateWorker,
    PublicationEntry,
    PublishOutcome,
    PublishRefusedError,
    RunBusyError,
    RunChange,
    RunNotFoundError,
    RunStore,
    RunSummary,
    Scenario,
    ScenarioNotFoundError,
    StaleScenarioError,
    StoreError,
    error_from_sqlstate,
    input_fingerprint,
)

if TYPE_CHECKING:
    from allocator.config import AppConfig

__all__ = [
    "AccessDeniedError",
    "Allocation",
    "AlreadyPublishedError",
    "ClaimLostError",
    "ClaimedRun",
    "ConfigurationError",
    "DatabaseUnavailableError",
    "InvalidSnapshotError",
    "LateWorker",
    "PublicationEntry",
    "PublishOutcome",
    "PublishRefusedError",
    "RunBusyError",
    "RunChange",
    "RunNotFoundError",
    "RunStore",
    "RunSummary",
    "Scenario",
    "ScenarioNotFoundError",
    "StaleScenarioError",
    "StoreError",
    "error_from_sqlstate",
    "input_fingerprint",
    "open_store",
]


#: Seconds a fail-fast store (the HTTP API's) waits for the database before giving up.
FAIL_FAST_SECONDS = 3.0


def open_store(settings: AppConfig | None = None, *, load_demo: bool = False, fail_fast: bool = False) -> RunStore:
    """Open the store the configuration asks for (imports adapters lazily).

    ``load_demo``: on the embedded database, import the demo run when it has no runs (the
    dashboard's first start); ignored for a configured database.
    ``fail_fast``: a PostgreSQL store waits :data:`FAIL_FAST_SECONDS` for a connection
    (connect attempts of 2 s) instead of 30 s, so callers that answer requests fail fast.
    """
    from allocator.config import get_settings, store_choice

    settings = settings or get_settings()
    choice = store_choice(settings)
    if choice == "supabase":
        from allocator.store.supabase import SupabaseStore  # written in the supabase issue

        return SupabaseStore.from_settings(settings)  # type: ignore[attr-defined]
    from allocator.store.postgres import PostgresStore

    limits = {"timeout": FAIL_FAST_SECONDS, "connect_timeout": 2.0} if fail_fast else {}
    if choice == "database_url":
        url = settings.database_url.get_secret_value()  # type: ignore[union-attr]
        return PostgresStore(url, migrate=False, **limits)
    from allocator.db.embedded import ensure_database

    directory = settings.resolved_data_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # not the database's fault, nor a bug: the setting names a bad place
        raise ConfigurationError(
            "ALLOCATOR_DATA_DIR",
            f"cannot hold the embedded database at {directory}: {exc.strerror or exc}",
        ) from None
    return PostgresStore(ensure_database(settings, load_demo=load_demo), migrate=False, **limits)
