"""Configuration sources and the choice of store."""

from __future__ import annotations

import pytest

from allocator.config import get_settings, store_choice

ENV_NAMES = [
    "ALLOCATOR_DATABASE_URL", "ALLOCATOR_DATA_DIR", "SUPABASE_URL", "SUPABASE_KEY",
    "ALLOCATOR_API_KEY", "ALLOCATOR_SOLVER_THREADS",
]


@pytest.fixture
def clean(monkeypatch, tmp_path):
    """No settings from the environment or the current folder."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_nothing_configured_means_the_embedded_database(clean):
    settings = get_settings()
    assert store_choice(settings) == "embedded"
    assert settings.resolved_data_dir.name == "allocator"


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"SUPABASE_URL": "https://x.supabase.co", "SUPABASE_KEY": "k"}, "supabase"),
        # half a Supabase configuration does not matter when a database URL is given
        ({"ALLOCATOR_DATABASE_URL": "postgresql://u@h/db", "SUPABASE_URL": "https://x.supabase.co"},
         "database_url"),
        # a database URL wins over Supabase
        ({"ALLOCATOR_DATABASE_URL": "postgresql://u@h/db", "SUPABASE_URL": "https://x.supabase.co",
          "SUPABASE_KEY": "k"}, "database_url"),
        # an empty value is no value
        ({"ALLOCATOR_DATABASE_URL": "", "SUPABASE_URL": "https://x.supabase.co", "SUPABASE_KEY": "k"},
         "supabase"),
    ],
)
def test_store_choice_order(clean, monkeypatch, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert store_choice() == expected


@pytest.mark.parametrize(
    "env, given, missing",
    [
        ({"SUPABASE_URL": "https://x.supabase.co"}, "SUPABASE_URL", "SUPABASE_KEY"),
        ({"SUPABASE_KEY": "k"}, "SUPABASE_KEY", "SUPABASE_URL"),
        ({"SUPABASE_URL": "https://x.supabase.co", "SUPABASE_KEY": "  "}, "SUPABASE_URL", "SUPABASE_KEY"),
    ],
)
def test_half_a_supabase_configuration_is_refused_naming_what_is_missing(clean, monkeypatch, env, given, missing):
    """Read as "the embedded database", planners would publish on this machine while they
    believe they publish to the Supabase project."""
    from pydantic import ValidationError

    from allocator.config import configuration_problems

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        get_settings()
    (line,) = configuration_problems(caught.value)
    assert line.startswith(f"{given} is set but {missing} is not")


def test_dotenv_and_streamlit_secrets_are_read_environment_first(clean, monkeypatch):
    (clean / ".env").write_text("ALLOCATOR_SOLVER_THREADS=3\nALLOCATOR_API_KEY=from-dotenv\n")
    (clean / ".streamlit").mkdir()
    (clean / ".streamlit" / "secrets.toml").write_text(
        'SUPABASE_URL = "https://p.supabase.co"\nsupabase_key = "anon-key"\n'
        'ALLOCATOR_API_KEY = "from-secrets"\n[other]\nx = 1\n'
    )
    monkeypatch.setenv("ALLOCATOR_DATA_DIR", str(clean / "data"))
    settings = get_settings()
    assert settings.solver_threads == 3
    assert settings.api_key.get_secret_value() == "from-dotenv"  # .env before secrets.toml
    assert settings.supabase_url == "https://p.supabase.co"
    assert settings.supabase_key.get_secret_value() == "anon-key"
    assert settings.resolved_data_dir == clean / "data"
    assert store_choice(settings) == "supabase"
    assert "anon-key" not in repr(settings)  # secrets are not printed
