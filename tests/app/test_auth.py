"""With a Supabase configuration the dashboard asks the planner to sign in, and shows no secret."""

from __future__ import annotations

import pytest

from tests.app.conftest import new_app

ANON_KEY = "anon-key-that-must-never-show-0123456789"


@pytest.fixture
def supabase_env(store_env):
    """Supabase settings instead of a database URL, for this test only."""
    store_env.pop("ALLOCATOR_DATABASE_URL", None)
    store_env["SUPABASE_URL"] = "http://127.0.0.1:9"  # nothing listens there
    store_env["SUPABASE_KEY"] = ANON_KEY
    return store_env


def every_text(at) -> str:
    parts = []
    for kind in ("markdown", "title", "header", "subheader", "caption", "error", "warning", "info", "success", "text", "code"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [w.label for w in at.text_input] + [str(w.value) for w in at.text_input]
    return "\n".join(parts)


def test_sign_in_is_asked_first_and_no_secret_is_shown(supabase_env):
    at = new_app().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Sign in"]
    assert "run_id" not in at.session_state  # no page, no data before signing in
    assert not at.sidebar.selectbox  # no run picker either
    at.text_input(key="auth_email_input").input("planner@example.org")
    at.text_input(key="auth_password_input").input("not-the-password")
    at.button[0].click().run()  # the form's Sign in button
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Sign-in failed")
    text = every_text(at)
    assert ANON_KEY not in text and "not-the-password" not in errors[0]
    assert "auth_client" not in at.session_state


def test_empty_sign_in_says_what_to_enter(supabase_env):
    at = new_app().run()
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Enter your email address and your password."]


def test_a_signed_in_planner_works_through_their_own_client(supabase_env, monkeypatch, db_store, demo_run):
    """After sign-in every read goes through a store built on the planner's signed-in client."""
    from types import SimpleNamespace

    import allocator.store.supabase as supabase_store
    import supabase

    made: dict = {}

    class FakeAuth:
        def sign_in_with_password(self, credentials):
            made["credentials"] = credentials
            return SimpleNamespace(user=SimpleNamespace(id="user-1", email=credentials["email"]))

        def sign_out(self):
            made["signed_out"] = True

    class FakeClient:
        auth = FakeAuth()

    def create_client(url, key):
        made["url_key"] = (url, key)
        return FakeClient()

    def store_for(client):
        made.setdefault("store_clients", []).append(client)
        return db_store  # the signed-in planner's view of the database (RLS is the store's job)

    monkeypatch.setattr(supabase, "create_client", create_client)
    monkeypatch.setattr(supabase_store, "SupabaseStore", store_for)

    at = new_app().run()
    at.text_input(key="auth_email_input").input("planner@example.org")
    at.text_input(key="auth_password_input").input("s3cret")
    at.button[0].click().run()
    assert not at.exception
    assert made["url_key"] == ("http://127.0.0.1:9", ANON_KEY)  # the anon key, never another
    assert made["credentials"] == {"email": "planner@example.org", "password": "s3cret"}
    assert all(isinstance(c, FakeClient) for c in made["store_clients"])
    assert [t.value for t in at.title] == ["Runs"]
    assert any("Signed in as planner@example.org" in c.value for c in at.sidebar.caption)
    assert ANON_KEY not in every_text(at) and "s3cret" not in every_text(at)
    at.sidebar.button(key="auth_sign_out").click().run()
    assert made.get("signed_out") and [t.value for t in at.title] == ["Sign in"]
