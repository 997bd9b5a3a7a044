"""Dashboard entry point (placeholder until the dashboard issue lands)."""

import streamlit as st

st.set_page_config(page_title="Allocator", layout="wide")
st.title("Allocator")
st.write("The planning dashboard is being built.")
