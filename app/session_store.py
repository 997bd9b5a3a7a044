"""The signed-in planner's own store under Supabase (their client, so row-level security applies).

Apart from :mod:`auth` so that :mod:`state` can reach it without importing :mod:`auth`
(which imports :mod:`state`): the two modules do not import each other.
"""

from __future__ import annotations

import streamlit as st

from allocator import service


def session_store() -> service.RunStore:
    """The signed-in planner's store; stops the page with a warning when nobody has signed in."""
    store = st.session_state.get("auth_store")
    if store is None:
        client = st.session_state.get("auth_client")
        if client is None:
            st.warning("Sign in first.")
            st.stop()
        store = service.supabase_store(client)
        st.session_state["auth_store"] = store
    return store
