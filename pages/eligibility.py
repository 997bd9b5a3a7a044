"""Eligibility: who may take which line, and the rule that decided it."""

from __future__ import annotations

import charts
import derived
import layout
import numpy as np
import state
import streamlit as st

from allocator.snapshot import SnapshotError

ctx = layout.require_run()
snap = ctx.snapshot
d = state.draft(snap)
st.title("Eligibility")

# The choices on this page outlive a look at another page (seeded, not value=/default=, so that
# a value put back from code draws without Streamlit's warning about a default set twice).
state.restore_widget("el_use_scenario", default=True)
st.session_state.setdefault("el_use_scenario", True)
use_scenario = st.toggle("Include this scenario's pins and forbids", key="el_use_scenario",
                         help="Off: the run's own rules only.", on_change=state.keep_widget, args=("el_use_scenario",))
source = snap
if use_scenario:
    try:
        source = state.scenario_snapshot(snap, d.settings, d.overrides)
    except SnapshotError:
        st.caption("The scenario being edited has problems (see the Scenario page); showing the run's own rules.")
problem = state.problem_for(source)
problem_fp = state.fingerprint_of(source)
st.caption(
    "A worker may take a line when the line's rules allow it. A pin or a forbid (the run's own or this "
    "scenario's) decides first: a pinned worker takes only their line. Then the line's rules are checked in "
    "order, and the first that applies decides: named as included, named as excluded, an excluded "
    "tag, a required tag, then whether the line requires any tag at all."
)

codes = derived.verdict_codes(problem_fp, problem)  # built once per scenario, shared


# --------------------------------------------------------------------------- overview heatmap
st.header("Everyone at a glance")
present = [c for c in charts.REASON_WORDS if (codes == c).any()]
state.restore_widget("el_reasons", allowed=present, default=present)
st.session_state.setdefault("el_reasons", present)
picked = st.multiselect(
    "Show these verdicts", present, key="el_reasons", on_change=state.keep_widget, args=("el_reasons",),
    format_func=lambda c: charts.REASON_WORDS[c],
    help="Pick one reason to see where it applies; the others turn pale grey.",
)
max_rows = 150
w_order = np.arange(problem.n_workers)
state.restore_widget("el_search", default="")
search = st.text_input("Find workers (name, id or tag)", key="el_search", placeholder="e.g. paediatrics",
                       on_change=state.keep_widget, args=("el_search",))
if search.strip():
    q = search.strip().lower()
    w_order = np.array([
        i for i in range(problem.n_workers)
        if q in problem.worker_ids[i].lower() or q in problem.worker_names[i].lower()
        or any(q in t.lower() for t in problem.worker_tags[i])
    ], dtype=int)
if picked and len(picked) < len(present):
    # Put the workers the picked reasons apply to first.
    hits = np.isin(codes[w_order], picked).any(axis=1)
    w_order = np.concatenate([w_order[hits], w_order[~hits]])
if len(w_order) == 0:
    st.info("No worker matches that search.")
else:
    rows = w_order[:max_rows]
    fig = derived.heatmap(problem_fp, tuple(int(i) for i in rows), tuple(picked), problem, codes)
    st.plotly_chart(fig, key="el_heatmap", width="stretch")
    more = f" Showing the first {max_rows} of {len(w_order)} workers; search to narrow it." if len(w_order) > max_rows else ""
    st.caption("Each square is one worker and one job line, coloured by the rule that decided whether the worker "
               "may take it. Hover for the reason." + more)

# --------------------------------------------------------------------------- one worker
st.header("One worker")
state.restore_widget("el_worker", allowed=range(problem.n_workers), default=0 if problem.n_workers else None,
                     ids=problem.worker_ids)
wi = st.selectbox(
    "Worker", list(range(problem.n_workers)), key="el_worker", on_change=state.keep_widget, args=("el_worker", list(problem.worker_ids)),
    format_func=lambda i: f"{problem.worker_names[i]} ({problem.worker_ids[i]})",
)
if wi is not None:
    tags = problem.worker_tags[wi]
    st.caption("Tags: " + (layout.md(", ".join(tags)) if tags else "none"))
    df = derived.worker_lines_table(problem, wi, codes, snap)
    st.dataframe(
        df, key="el_worker_table", hide_index=True, width="stretch", placeholder="–",
        column_order=["Job line", *(["Site"] if "Site" in df else []), "May take it", "Rank given", "Why"],
        column_config={
            "Job line": st.column_config.TextColumn(width=230 if "Site" in df else 350),
            "Site": st.column_config.TextColumn(width=120, help="A line without a site is a site of its own."),
            "May take it": st.column_config.CheckboxColumn(width=90),
            "Rank given": st.column_config.NumberColumn(format="plain", width=80, help="Blank: the worker did not rank it."),
            "Why": st.column_config.TextColumn(
                width=360,
                help="A pin or a forbid (of the run or of this scenario) decides first; otherwise the number "
                     "of the line's rule that decided (the order is above), and what it found."),
        },
    )
    n_may = int(df["May take it"].sum())
    st.caption(f"{layout.md(problem.worker_names[wi])} may take {n_may} of {problem.n_lines} job lines.")
    res = state.current_result()
    has_line = bool(res and any(a.get("worker_id") == problem.worker_ids[wi]
                                for a in (res.result or {}).get("allocations") or []))

    def open_explanation(worker_id: str) -> None:
        # A plain key of our own: the Results page's picker is not drawn here, so its state would go.
        st.session_state["_explain_request"] = worker_id
        st.session_state["_open_results"] = True

    st.button(
        "Why this line? Their explanation on Results", key="el_explain", icon=":material/help:",
        on_click=open_explanation, args=(problem.worker_ids[wi],), disabled=not has_line,
        help=("The line they got in the current result, each line they ranked higher, why not and at what price."
              if has_line else "Solve a scenario first: the explanation is of the current result."))
    if st.session_state.pop("_open_results", False) and "results" in layout.PAGES:
        st.switch_page(layout.PAGES["results"])

# --------------------------------------------------------------------------- one line
st.header("One job line")
line_labels = layout.unique_labels([(problem.line_ids[j], problem.line_names[j]) for j in range(problem.n_lines)])
state.restore_widget("el_line", allowed=range(problem.n_lines), default=0 if problem.n_lines else None,
                     ids=problem.line_ids)
lj = st.selectbox("Job line", list(range(problem.n_lines)), key="el_line",
                  format_func=lambda j: line_labels[problem.line_ids[j]], on_change=state.keep_widget,
                  args=("el_line", list(problem.line_ids)))
if lj is not None:
    allowed = problem.allowed[:, lj]
    pool = int(allowed.sum())
    places = int(problem.capacity[lj])
    must = bool(problem.mandatory[lj])
    line_site = (getattr(problem, "line_sites", None) or [None] * problem.n_lines)[lj]
    if any(x is not None for x in (getattr(problem, "line_sites", None) or [])):
        st.caption(f"Site: **{layout.md(line_site)}**" if line_site is not None
                   else "Site: none given, so this line is a site of its own.")
    c1, c2, c3 = st.columns(3)
    c1.metric("Workers who may take it", pool)
    c2.metric("Places", places)
    c3.metric("Must be filled", "yes" if must else "no")
    if must and pool == 0:
        st.error("This line must be filled, but no worker may take it. Change its rules, or untick "
                 "'Must be filled' for it in the scenario.")
    elif pool < places:
        st.warning(f"Only {layout.count(pool, 'worker')} may take this line, so at least "
                   f"{layout.count(places - pool, 'place')} will stay empty.")
    else:
        st.success("Enough workers may take this line to fill its places.")
    rules = problem.rules.for_line(problem.line_ids[lj])
    parts = []
    if rules.included_workers:
        parts.append(f"includes {layout.count(len(rules.included_workers), 'named worker')}")
    if rules.excluded_workers:
        parts.append(f"excludes {layout.count(len(rules.excluded_workers), 'named worker')}")
    if rules.excluded_tags:
        parts.append(("excludes the tag " if len(rules.excluded_tags) == 1 else "excludes the tags ")
                     + ", ".join(rules.excluded_tags))
    if rules.included_tags:
        parts.append("requires one of the tags " + ", ".join(rules.included_tags))
    st.caption("The line's rules: " + ("; ".join(parts) if parts else "none, so it is open to all") + ".")
    pool_df, refused_df = derived.line_workers_tables(problem, lj, codes, snap)
    line_cols = {
        "Worker": st.column_config.TextColumn(width=200),
        "Worker id": st.column_config.TextColumn(width=90),
        "Because": st.column_config.TextColumn(width=400),
        "Rank they gave it": st.column_config.NumberColumn(format="plain", width=130),
    }
    st.dataframe(pool_df, key="el_line_table", hide_index=True, width="stretch", placeholder="–",
                 column_config=line_cols)
    st.caption("Those who ranked the line first, best rank first.")
    if len(refused_df):
        st.markdown(f"**Ranked it but may not take it** ({len(refused_df)})")
        st.dataframe(refused_df, key="el_line_refused", hide_index=True, width="stretch", placeholder="–",
                     column_config=line_cols)
        st.caption("Their rank for this line cannot count: check their tags and the line's rules, "
                   "or ask them to rank again.")
