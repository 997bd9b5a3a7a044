"""The planning dashboard: ``streamlit run app/streamlit_app.py``.

The entry builds nothing heavy itself: the settings, the store and the job runner are
``st.cache_resource`` (see ``state.py``). It signs the planner in when the dashboard runs on
Supabase, draws the sidebar (current run and scenario) and hands over to the page.
"""

from __future__ import annotations

import auth
import layout
import state
import streamlit as st

# A sidebar wide enough for a run's name and its "· published" mark (Streamlit's default is 300 px).
st.set_page_config(page_title="Allocation planning", page_icon="🩺", layout="wide", initial_sidebar_state=340)

state.settings_or_stop()  # a setting that cannot work is said in words, not a traceback
state.apply_pending_widgets()
state.open_store_with_status()  # the first page after a start: "Starting the database…", not a blank page

if state.store_mode() == "supabase" and not auth.signed_in():
    st.navigation([st.Page(auth.sign_in_page, title="Sign in", icon=":material/login:")]).run()
    st.stop()

pages = {
    "runs": st.Page("../pages/runs.py", title="Runs", icon=":material/list_alt:", default=True),
    "scenario": st.Page("../pages/scenario.py", title="Scenario", icon=":material/tune:"),
    "results": st.Page("../pages/results.py", title="Results", icon=":material/insights:"),
    "eligibility": st.Page("../pages/eligibility.py", title="Eligibility", icon=":material/rule:"),
    "compare": st.Page("../pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    "publish": st.Page("../pages/publish.py", title="Publish", icon=":material/publish:"),
}
layout.PAGES.update(pages)
nav = st.navigation(
    {
        "Plan": [pages["runs"], pages["scenario"], pages["results"]],
        "Check": [pages["eligibility"], pages["compare"]],
        "Decide": [pages["publish"]],
    }
)

state.harvest_job()
state.show_flash()
auth.sidebar_account()
layout.sidebar()
nav.run()
