"""Configuration: environment variables, a ``.env`` file, or ``.streamlit/secrets.toml``.

Precedence, highest first: arguments to :class:`AppConfig`, environment, ``.env``,
``.streamlit/secrets.toml`` (both read from the current directory). Each setting is named
by its environment variable; in ``secrets.toml`` the same names are top-level keys (lower
case is accepted too).

Which store the project uses follows from the settings (:func:`store_choice`): an
``ALLOCATOR_DATABASE_URL`` wins, then a Supabase project (``SUPABASE_URL`` and
``SUPABASE_KEY``), else the embedded PostgreSQL in ``ALLOCATOR_DATA_DIR``. One of the two
Supabase settings without the other (and no database URL) is refused, not read as "use the
embedded database": planners would otherwise save and publish on this machine while they
believe they publish to the project.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

StoreChoice = Literal["database_url", "supabase", "embedded"]

SECRETS_TOML = Path(".streamlit") / "secrets.toml"


def _names(env: str) -> AliasChoices:
    return AliasChoices(env, env.lower())


class AppConfig(BaseSettings):
    """The environment's configuration (not a run's settings: those are
    :class:`allocator.snapshot.RunSettings`). Secrets are :class:`~pydantic.SecretStr` (not printed)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    database_url: SecretStr | None = Field(None, validation_alias=_names("ALLOCATOR_DATABASE_URL"))
    data_dir: Path | None = Field(None, validation_alias=_names("ALLOCATOR_DATA_DIR"))
    supabase_url: str | None = Field(None, validation_alias=_names("SUPABASE_URL"))
    supabase_key: SecretStr | None = Field(None, validation_alias=_names("SUPABASE_KEY"))
    api_key: SecretStr | None = Field(None, validation_alias=_names("ALLOCATOR_API_KEY"))
    solver_threads: int | None = Field(
        None, ge=1, validation_alias=_names("ALLOCATOR_SOLVER_THREADS")
    )
    #: The largest input file (snapshot or workbook) that is read, in MB (run-snapshot.md).
    max_input_mb: float = Field(
        200.0, gt=0, allow_inf_nan=False, validation_alias=_names("ALLOCATOR_MAX_INPUT_MB")
    )

    @field_validator("database_url", "supabase_key", "api_key", "supabase_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, v: object) -> object:
        # An empty line in .env (`SUPABASE_URL=`) means "not set", not "set to nothing".
        if isinstance(v, str) and not v.strip():
            return None
        return v

    @field_validator("data_dir", mode="before")
    @classmethod
    def _blank_dir_is_unset(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip():
            return None
        return v

    # Said when the setting is read: a malformed address was otherwise tried for 30 s and
    # then reported as an unreachable database, or stopped with the client library's error.
    @field_validator("database_url", mode="after")
    @classmethod
    def _a_postgres_address(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(v.get_secret_value())
        except psycopg.Error as exc:
            why = str(exc).strip()
            # The library quotes what it could not read, which may hold the password.
            why = "" if not why or v.get_secret_value() in why else f" ({why})"
            raise PydanticCustomError(
                "database_url",
                "is not a PostgreSQL connection string{why}; give one like postgresql://user:password@host:5432/dbname",
                {"why": why},
            ) from None
        return v

    @field_validator("supabase_url", mode="after")
    @classmethod
    def _a_web_address(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/?#]+", v.strip()):
            raise PydanticCustomError(
                "supabase_url", "is not a web address; give the project's URL, like https://abcd.supabase.co"
            )
        return v

    @model_validator(mode="after")
    def _supabase_both_or_neither(self) -> AppConfig:
        if self.database_url is None and (self.supabase_url is None) != (self.supabase_key is None):
            given, missing = (("SUPABASE_URL", "SUPABASE_KEY") if self.supabase_key is None
                              else ("SUPABASE_KEY", "SUPABASE_URL"))
            raise PydanticCustomError(
                "supabase_pair",
                "{given} is set but {missing} is not: set both to use the Supabase project, or neither "
                "to use the embedded database",
                {"given": given, "missing": missing},
            )
        return self

    @field_validator("data_dir", mode="after")
    @classmethod
    def _a_folder(cls, v: Path | None) -> Path | None:
        if v is not None and v.expanduser().exists() and not v.expanduser().is_dir():
            raise PydanticCustomError("data_dir", "{path} is a file, not a folder", {"path": str(v)})
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=SECRETS_TOML),
        )

    @property
    def resolved_data_dir(self) -> Path:
        """Where the embedded database lives: ``ALLOCATOR_DATA_DIR`` or the per-user data folder."""
        if self.data_dir is not None:
            return self.data_dir.expanduser()
        return platformdirs.user_data_path("allocator", appauthor=False)


def get_settings(**overrides: object) -> AppConfig:
    """Read the settings now (not cached: tests and the CLI change the environment)."""
    return AppConfig(**overrides)  # type: ignore[arg-type]


def store_choice(settings: AppConfig | None = None) -> StoreChoice:
    """Which store to use: a database URL, else a Supabase project, else the embedded database."""
    settings = settings or get_settings()
    if settings.database_url is not None:
        return "database_url"
    if settings.supabase_url and settings.supabase_key is not None:
        return "supabase"
    return "embedded"


def configuration_problems(exc: Exception) -> list[str]:
    """A configuration's ``ValidationError`` as one line per problem, each naming its setting
    (``SUPABASE_URL: is not a web address ...``); a problem of two settings together names
    both in its words."""
    lines = []
    for e in exc.errors(include_url=False):  # type: ignore[attr-defined]
        where = ".".join(str(x) for x in e["loc"])
        lines.append(f"{where.upper()}: {e['msg']}" if where else str(e["msg"]))
    return lines
