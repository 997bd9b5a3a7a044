"""A dashboard whose settings cannot work says which setting and why, instead of a traceback."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import APP, TIMEOUT

_ENV = ("ALLOCATOR_DATABASE_URL", "SUPABASE_URL", "SUPABASE_KEY")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ALLOCATOR_DATABASE_URL": "notaurl"}, "ALLOCATOR_DATABASE_URL: is not a PostgreSQL connection string"),
        ({"SUPABASE_URL": "https://abcd.supabase.co"}, "SUPABASE_URL is set but SUPABASE_KEY is not"),
    ],
)
def test_a_setting_that_cannot_work_is_named_on_the_page(store_env, env, says):
    for k in _ENV:
        store_env.pop(k, None)
    store_env.update(env)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and says in errors[0] and "settings cannot be used" in errors[0], errors
