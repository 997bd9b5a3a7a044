"""Sign-in with Supabase Auth (email and password), when the dashboard runs on Supabase.

The dashboard holds only the project's anon key (``SUPABASE_KEY``). A planner signs in with
their email and password; the client then carries their session, so row-level security in
the database decides what they see and may do. The service-role key is never used here.
Neither key nor token is ever written to a page or a log.

With the embedded database or ``ALLOCATOR_DATABASE_URL`` there is no sign-in. The signed-in
planner's store is :func:`session_store.session_store`.
"""

from __future__ import annotations

import logging

import state
import streamlit as st

log = logging.getLogger(__name__)


def signed_in() -> bool:
    return st.session_state.get("auth_client") is not None


def _new_client():
    from supabase import create_client

    settings = state.app_settings()
    return create_client(settings.supabase_url, settings.supabase_key.get_secret_value())


def _message(exc: Exception) -> str:
    """What the planner sees: the auth server's own sentence, never a key, URL or token."""
    text = getattr(exc, "message", None)
    if isinstance(text, str) and text and len(text) < 200 and "eyJ" not in text:
        return text
    return "the sign-in service could not be reached or refused the request"


def sign_in(email: str, password: str) -> str | None:
    """Sign in; return None on success, else what went wrong in planners' words."""
    if not email.strip() or not password:
        return "Enter your email address and your password."
    try:
        client = _new_client()
        res = client.auth.sign_in_with_password({"email": email.strip(), "password": password})
    except Exception as exc:  # noqa: BLE001 - every failure becomes a sentence, not a trace
        log.info("sign-in failed for a planner: %s", type(exc).__name__)
        return f"Sign-in failed: {_message(exc)}."
    user = getattr(res, "user", None)
    if user is None:
        return "Sign-in failed: check your email address and password."
    st.session_state["auth_client"] = client
    st.session_state["auth_user_id"] = str(user.id)
    st.session_state["auth_email"] = getattr(user, "email", None) or email.strip()
    st.session_state.pop("auth_store", None)
    state.clear_reads()
    return None


def sign_out() -> None:
    client = st.session_state.get("auth_client")
    if client is not None:
        try:
            client.auth.sign_out()
        except Exception:  # noqa: BLE001 - signing out locally is what matters
            pass
    for k in ("auth_client", "auth_store", "auth_user_id", "auth_email", "run_id", "draft", "_drafts_by_run",
              "result", "previous", "job"):
        st.session_state.pop(k, None)
    state.clear_reads()


def sign_in_page() -> None:
    """The only page shown until the planner has signed in."""
    st.title("Sign in")
    st.write("Sign in with the email address and password of your planner account.")
    with st.form("sign_in", clear_on_submit=False):
        email = st.text_input("Email address", key="auth_email_input", autocomplete="email")
        password = st.text_input("Password", type="password", key="auth_password_input")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        error = sign_in(email, password)
        if error:
            st.error(error)
        else:
            st.rerun()


def sidebar_account() -> None:
    """Who is signed in, and a way out (Supabase only)."""
    if state.store_mode() != "supabase" or not signed_in():
        return
    st.sidebar.caption(f"Signed in as {st.session_state.get('auth_email', '')}")
    if st.sidebar.button("Sign out", key="auth_sign_out"):
        sign_out()
        st.rerun()
