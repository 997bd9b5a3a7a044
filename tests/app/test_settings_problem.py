"""A dashboard whose settings cannot work says which setting and why, instead of a traceback."""

from __future__ import annotations

import os

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.app.conftest import APP, TIMEOUT

_ENV = ("ALLOCATOR_DATABASE_URL", "SUPABASE_URL", "SUPABASE_KEY")


@pytest.fixture
def env_of_this_test(app_db):
    saved = {k: os.environ.get(k) for k in _ENV}
    st.cache_resource.clear()  # the settings are a cached resource: read them again
    try:
        yield os.environ
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        st.cache_resource.clear()


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ALLOCATOR_DATABASE_URL": "notaurl"}, "ALLOCATOR_DATABASE_URL: is not a PostgreSQL connection string"),
        ({"SUPABASE_URL": "https://abcd.supabase.co"}, "SUPABASE_URL is set but SUPABASE_KEY is not"),
    ],
)
def test_a_setting_that_cannot_work_is_named_on_the_page(env_of_this_test, env, says):
    for k in _ENV:
        env_of_this_test.pop(k, None)
    env_of_this_test.update(env)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and says in errors[0] and "settings cannot be used" in errors[0], errors
