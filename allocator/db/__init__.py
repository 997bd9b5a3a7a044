"""The database: migrations (``supabase/migrations``) and the embedded default PostgreSQL."""

from allocator.db.migrate import (
    MIGRATIONS_DIR,
    MigrationReport,
    apply_migrations,
    migrate,
    migration_files,
)

__all__ = ["MIGRATIONS_DIR", "MigrationReport", "apply_migrations", "migrate", "migration_files"]
