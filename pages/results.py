"""Results: how satisfied workers are, how well lines are covered, who goes where, exports."""

from __future__ import annotations

import charts
import derived
import editor
import explain_view
import exports
import headline
import layout
import numpy as np
import pandas as pd
import rules_view
import state
import streamlit as st

from allocator import kpis
from allocator.compare import kpi_delta, kpi_value
from allocator.metrics import NOT_RANKED
from allocator.scenario import SETTING_LABELS
from allocator.snapshot import SnapshotError

ctx = layout.require_run()
snap = ctx.snapshot
st.title("Results")

if state.active_job():

    @st.fragment(run_every=0.5)
    def solving_now() -> None:
        """Polls the session's solve; the page redraws with the new result when it ends."""
        p = state.job_progress()
        if p is None or p.finished:
            state.harvest_job()
            st.rerun()
        job = state.active_job()
        if p.status == "queued":
            st.info(f"'{layout.md(job.name)}' is waiting for the solver ({layout.count(p.queue_position, 'solve')} ahead).",
                    icon=":material/hourglass_top:")
        else:
            st.info(f"Solving '{layout.md(job.name)}'… {p.elapsed:.0f} s. This page shows it when it is done.",
                    icon=":material/autorenew:")

    solving_now()

res = state.current_result()
if res is None:
    # While the first solve runs, the line above says it shows here when done: "nothing solved,
    # press Solve" beside it would tell the planner to do what they just did.
    if not state.active_job():
        st.info("Nothing solved yet for this run. Set up a scenario and press Solve, or open a saved "
                "scenario in the sidebar.")
        layout.link("scenario", "Go to Scenario", icon=":material/tune:")
    st.stop()

# A result saved before the honest rank figures existed gets them from its rows and the run.
result = headline.with_rank_metrics(res.result, snap)
status = result.get("status")
st.caption(
    f"Scenario **{layout.md(res.name)}**"
    + (" (saved)" if res.saved_id else " (not saved yet: save it on the Scenario page to compare or publish it)")
    + f" · {layout.RESULT_WORDS.get(status, status)} · solved in {float(result.get('solve_seconds') or 0):.1f} s"
)
if res.fingerprint != ctx.fingerprint:
    st.warning("The run's data has changed since this scenario was solved. Solve it again before publishing.")

if status in ("infeasible", "no_solution"):
    if status == "infeasible":
        st.error("**No allocation can meet every rule of this scenario.** Here is why:")
    elif res.stopped:
        st.error("**The solve was stopped before it found an allocation.** Solve again on the Scenario "
                 "page and let it run longer.")
    else:
        st.error("**No allocation was found within the time limit.** Give the solve more time on the "
                 "Scenario page, or relax a rule (stability, pins, must-be-filled lines).")
    for dgn in result.get("diagnosis") or []:
        with st.container(border=True):
            st.markdown(dgn.get("message", ""))
            who = dgn.get("worker_ids") or []
            where = dgn.get("job_line_ids") or []
            if who:
                st.caption(layout.named_list("Workers", who, {w.id: w.name or w.id for w in snap.workers}))
            if where:
                st.caption(layout.named_list("Job lines", where, {j.id: j.name or j.id for j in snap.job_lines}))
    layout.link("scenario", "Change the scenario", icon=":material/tune:")
    st.stop()

if status == "feasible":
    st.info(f"Not proven: {layout.unproven_words(result)}. The solve was stopped or ran out of time before it could prove this "
            "allocation the best; a longer time limit may find a better one or prove this one.")

# --------------------------------------------------------------------------- compared with
this_side = headline.Solved(res.name, res.settings, res.overrides or {}, res.run_id, res.fingerprint)
prev = state.previous_result()
others = {sc.id: sc for sc in state.scenarios(ctx.summary.id)
          if sc.result and sc.result.get("allocations") and sc.id != res.saved_id}
log = state.guarded(lambda: state.publications(ctx.summary.id), "The publication history could not be read")
published_id = log[-1].scenario_id if (ctx.summary.published and log) else None
options: dict[str, tuple[dict, headline.Solved] | None] = {}
for label, key in headline.baseline_choices(prev.name if prev is not None else None,
                                            [(sid, sc.name) for sid, sc in others.items()], published_id):
    if key == headline.PREVIOUS:
        options[label] = (prev.result, headline.Solved(prev.name, prev.settings, prev.overrides or {}, prev.run_id,
                                                       prev.fingerprint))
    elif key is not None:
        sc = others[key]
        options[label] = (sc.result, headline.Solved(sc.name, sc.settings, sc.overrides or {}, sc.run_id,
                                                     sc.input_fingerprint))
    else:
        options[label] = None
state.restore_widget("res_baseline", allowed=list(options), default=next(iter(options), None))
# Kept only when chosen: the default follows the planner's solves (the previous one first).
pick = st.selectbox("Changes shown against", list(options), key="res_baseline",
                    help="The small arrows under each number compare with this scenario.",
                    on_change=state.keep_widget, args=("res_baseline",))
baseline, baseline_side = options.get(pick) or (None, None)
baseline = headline.with_rank_metrics(baseline, snap)


def shown_delta(key: str) -> dict:
    """st.metric's delta arguments for one number against the baseline (green = better)."""
    return headline.metric_delta(key, kpi_delta(result, baseline, key))


# Mean and worst rank are over the workers on lines they ranked; those on lines they did not
# rank have no rank and are counted beside them ("Not ranked").
HEADLINE = ("first_choice_share", "top3_choice_share", "mean_rank_ranked", "worst_rank_ranked", "unranked_count",
            "vacancies", "blocking_pairs")
cols = st.columns(len(HEADLINE))
for col, key in zip(cols, HEADLINE, strict=True):
    col.metric(kpis.label(key, short=True), kpis.value_text(key, kpi_value(result, key)),
               help=kpis.help_text(key), **shown_delta(key))

metrics = result.get("metrics") or {}
problem = scenario_snap = None
try:
    scenario_snap = state.scenario_snapshot(snap, res.settings, res.overrides)
    problem = state.problem_for(scenario_snap)
except SnapshotError:
    pass  # the run changed so the scenario no longer applies; the saved numbers still show
# What the tables and charts below are made from, as cache keys: they are built once per result.
rkey = derived.result_key(result)
snap_fp = state.fingerprint_of(snap)
problem_fp = state.fingerprint_of(scenario_snap) if scenario_snap is not None else None

# --------------------------------------------------------------------------- satisfaction
st.header("Satisfaction")
left, right = st.columns([3, 2])
with left:
    st.plotly_chart(derived.rank_figure(rkey, metrics.get("rank_distribution") or []),
                    key="res_rank_chart", width="stretch")
    st.caption("How many workers got their first, second, … choice. Red, \"not ranked\": workers on a line "
               "they did not rank, who have no rank for it.")

with right:
    st.metric(kpis.label("worker_dissatisfaction_gini"),
              kpis.value_text("worker_dissatisfaction_gini", kpi_value(result, "worker_dissatisfaction_gini")),
              help=kpis.help_text("worker_dissatisfaction_gini"), **shown_delta("worker_dissatisfaction_gini"))
    st.metric("Supervisors' side: mean rank of the workers they got",
              kpis.value_text("preferencer_mean_rank_ranked", kpi_value(result, "preferencer_mean_rank_ranked")),
              help=(f"Over the workers whose line's supervisors ranked them; "
                    f"{metrics.get('preferencer_unranked_count', 'an unrecorded number of')} more are on a line whose "
                    "supervisors did not rank them, and have no rank from them. 1 = each supervisor's top-ranked worker."),
              **shown_delta("preferencer_mean_rank_ranked"))
    why_not = headline.cost_not_comparable(this_side, baseline_side) if baseline_side is not None else None
    st.metric(kpis.label("objective"), kpis.value_text("objective", result.get("objective")),
              help=kpis.help_text("objective"),
              **({"delta": None} if why_not else shown_delta("objective")))
    if why_not:
        st.caption(layout.md(why_not))

# --------------------------------------------------------------------------- coverage
st.header("Coverage")
fill = metrics.get("line_fill") or []
c1, c2, c3 = st.columns(3)
c1.metric("Must-be-filled lines filled", f"{metrics.get('mandatory_lines_filled', 0)} of {metrics.get('mandatory_lines', 0)}")
c2.metric("Lines with empty places", sum(1 for r in fill if r["vacancies"] > 0),
          help=f"{kpis.value_text('vacancies', metrics.get('vacancies', 0))} empty places in all.")
c3.metric("Places", metrics.get("places", 0), help=f"For {metrics.get('n_workers', 0)} workers.")
line_names = {j.id: (j.name or j.id) for j in snap.job_lines}
st.plotly_chart(derived.fill_figure(rkey, snap_fp, fill, line_names), key="res_fill_chart", width="stretch")
st.caption(charts.fill_caption(fill))
if len(fill) > charts.FILL_CHART_LINES:
    # Past a dozen lines a bar per line is a wall: every line is in this table instead.
    fill_df = derived.fill_table(rkey, snap_fp, result, snap)
    if any(j.site for j in snap.job_lines):
        fill_df = fill_df.assign(Site=fill_df["Job line id"].map(
            {j.id: editor.site_label(j.site) for j in snap.job_lines}))
    st.dataframe(
        fill_df, key="res_fill_table", hide_index=True, width="stretch",
        column_order=["Job line", *(["Site"] if "Site" in fill_df else []), "Workers placed", "Places", "Vacancies",
                      "Must be filled"],
        column_config={
            "Job line": st.column_config.TextColumn(width=365),
            "Workers placed": st.column_config.ProgressColumn(
                format="%d", min_value=0, max_value=max((r["capacity"] for r in fill), default=1) or 1,
                help="Workers placed on the line (the bar runs to the largest number of places of any line)."),
            "Places": st.column_config.NumberColumn(format="%d"),
            "Vacancies": st.column_config.NumberColumn("Empty places", format="%d"),
            "Must be filled": st.column_config.CheckboxColumn(),
        },
    )

# --------------------------------------------------------------------------- business rules
# Only what this result reports on: a run without links, quotas, tiers, sites or a previous
# allocation shows none of it.
if rules_view.uses_rules(metrics):
    names = rules_view.Names(scenario_snap or snap)
    if metrics.get("links"):
        st.header("Linked workers")
        st.caption("Each link's workers are placed on one site, as the rule asks. The site they share:")
        st.dataframe(rules_view.links_table(metrics["links"], names), key="res_links", hide_index=True,
                     width="stretch", column_config={
                         "Link": st.column_config.TextColumn(width=100),
                         "Worker": st.column_config.TextColumn(width=200),
                         "Job line": st.column_config.TextColumn(width=400),
                         "Site": st.column_config.TextColumn(width=130)})
    if metrics.get("quotas"):
        st.header("Quotas")
        quotas = metrics["quotas"]
        (st.success if all(q.get("met") for q in quotas) else st.error)(rules_view.quota_summary(quotas))
        q_table = rules_view.quotas_table(quotas, scenario_snap)
        # No quota with a tag: no empty tag column, and its room goes to the lines' names.
        tagged = bool(q_table["Only workers with tag"].astype(bool).any())
        st.dataframe(q_table, key="res_quotas", hide_index=True,
                     width="stretch",
                     column_order=[c for c in q_table.columns if tagged or c != "Only workers with tag"],
                     column_config={
                         "Quota": st.column_config.TextColumn(width=100),
                         "Counts": st.column_config.TextColumn("Counts workers on", width=340 if tagged else 420,
                                                               help="The sites or job lines whose workers count."),
                         "Only workers with tag": st.column_config.TextColumn("With tag", width=75,
                                                                              help="Only workers with this tag count."),
                         "Workers counted": st.column_config.NumberColumn("Workers", format="%d", width=70),
                         "At least": st.column_config.NumberColumn(format="%d", width=70),
                         "At most": st.column_config.TextColumn(width=90),
                         "Met": st.column_config.TextColumn(width=70)})
    if metrics.get("tiers"):
        st.header("Priority tiers")
        st.plotly_chart(rules_view.tier_rank_figure(metrics["tiers"]), key="res_tier_chart", width="stretch")
        st.caption("Each tier's workers by the choice they got, as a share of the tier (hover for the count). "
                   "Tier 1 is placed first: its total cost (workers' choices and the supervisors' voice) is made as "
                   "low as it can be, then tier 2's, and so on; workers without a tier come last.")
    if "moves" in metrics:
        st.header("Moves from the previous allocation")
        n_prev = len(scenario_snap.previous_allocations) if scenario_snap is not None else len(metrics["moves"])
        st.metric("Workers moved", int(metrics.get("moves_count", len(metrics["moves"]))),
                  help="Workers of the previous allocation now on a different job line.")
        st.caption(rules_view.moves_caption(int(metrics.get("moves_count", 0)), n_prev)
                   + ("" if res.settings.get("fewest_moves") else
                      " Fewest moves was off for this scenario: turn it on to keep as many as possible."))
        if metrics["moves"]:
            st.dataframe(rules_view.moves_table(metrics["moves"], names), key="res_moves", hide_index=True,
                         width="stretch", column_config={"Worker": st.column_config.TextColumn(width=220),
                                                         "From": st.column_config.TextColumn(width=300),
                                                         "To": st.column_config.TextColumn(width=300)})
    if metrics.get("sites") or metrics.get("tiers"):
        st.header("Fair across sites and tiers?")
        st.caption("First choice share, mean and worst rank for the workers placed on each site and in each tier. "
                   "Mean and worst rank count workers on a line they ranked; the others are under Not ranked.")
        equity_cols = {
            "Workers": st.column_config.NumberColumn(format="%d"),
            "First choice": st.column_config.NumberColumn("Got first choice", format="%.0f %%"),
            "Mean rank": st.column_config.NumberColumn(format="%.2f"),
            "Worst rank": st.column_config.NumberColumn(format="%g"),
            "Not ranked": st.column_config.NumberColumn(format="%d"),
        }
        if metrics.get("sites"):
            st.dataframe(rules_view.equity_table(metrics["sites"], "site", names), key="res_sites", hide_index=True,
                         width="stretch", column_config=equity_cols)
        if metrics.get("tiers"):
            st.dataframe(rules_view.equity_table(metrics["tiers"], "tier", names), key="res_tiers", hide_index=True,
                         width="stretch", column_config=equity_cols)

# --------------------------------------------------------------------------- the allocation
st.header("Who goes where")
table = derived.allocation_table(rkey, snap_fp, problem_fp, result, snap, problem)
has_sites = any(j.site for j in snap.job_lines)
if has_sites:
    site_of = {j.id: editor.site_label(j.site) for j in snap.job_lines}
    table = table.assign(Site=table["Job line id"].map(site_of))
seed_ids = explain_view.seed_dependent(result)
table = explain_view.with_seed_column(table, result)
# The explanations need the result as an object with the scenario's problem (built once per result).
res_obj = explain_view.cached_result(rkey, problem_fp, result, problem) if problem is not None else None
f1, f2, f3 = st.columns([2, 2, 1])
state.restore_widget("res_search", default="")
query = f1.text_input("Search a worker, a line or a site" if has_sites else "Search a worker or a line",
                      key="res_search", placeholder="name or id", on_change=state.keep_widget, args=("res_search",))
state.restore_widget("res_lines", allowed=table["Job line"].unique(), default=[])
state.restore_widget("res_unranked", default=False)
chosen_lines = f2.multiselect("Only these lines", sorted(table["Job line"].unique()), key="res_lines")
only_unranked = f3.checkbox("Only not ranked", key="res_unranked",
                            help="Only workers on a line they did not rank.")
state.remember("res_lines", "res_unranked")
shown = table
if query.strip():
    q = query.strip().lower()
    mask = np.zeros(len(shown), dtype=bool)
    for col in ("Worker id", "Worker", "Job line id", "Job line", *(["Site"] if has_sites else [])):
        mask |= shown[col].astype(str).str.lower().str.contains(q, regex=False).to_numpy()
    shown = shown[mask]
if chosen_lines:
    shown = shown[shown["Job line"].isin(chosen_lines)]
if only_unranked:
    shown = shown[shown["Choice"] == NOT_RANKED]
picked_rows = st.dataframe(
    shown, key="res_table", hide_index=True, width="stretch", placeholder="–",
    on_select="rerun", selection_mode="single-row",
    # Every column in view at once; the line's id and the cost are in the downloads.
    column_order=["Worker id", "Worker", "Job line", *(["Site"] if has_sites else []), "Choice", "Rank given",
                  "Pinned", "Must be filled", *([explain_view.SEED_COLUMN] if seed_ids is not None else [])],
    column_config={
        "Worker id": st.column_config.TextColumn("Id", width=55),
        "Worker": st.column_config.TextColumn(width=110 if has_sites else 130),
        "Job line": st.column_config.TextColumn(width=180 if has_sites else 265,
                                                help="Hover a cut name to read it whole."),
        "Site": st.column_config.TextColumn(width=110, help="The site of the job line (a line without one is "
                                                            "a site of its own)."),
        "Choice": st.column_config.TextColumn(width=90),
        "Rank given": st.column_config.NumberColumn(
            format="plain", width=80,
            help="The rank the worker gave this line (1 = first). Blank when they did not rank it: "
                 "Choice then says \"not ranked\"."),
        "Pinned": st.column_config.CheckboxColumn(width=55, help="Pinned to this line in the scenario."),
        "Must be filled": st.column_config.CheckboxColumn(width=95),
        "Decided by seed": st.column_config.CheckboxColumn(
            width=105, help="Decided by the tie-break seed: another allocation, exactly as good by every rule, "
                            "puts this worker on another line."),
    },
)
st.caption(f"{len(shown)} of {len(table)} workers shown. Click a row to see why that worker has their line.")
if seed_ids is not None:
    st.metric("Decided by the tie-break seed", len(seed_ids),
              help="Workers whose line differs in another allocation that is exactly as good by every rule.")
st.caption(explain_view.seed_caption(result))

# --------------------------------------------------------------------------- why this line
# One source for the worker explained: the picker below. A click on a row (or the Eligibility
# page's button, through state.set_widget) sets it.
rows_picked = picked_rows.selection.rows if picked_rows is not None else []
row_worker = str(shown.iloc[rows_picked[0]]["Worker id"]) if rows_picked and rows_picked[0] < len(shown) else None
if row_worker is not None and row_worker != st.session_state.get("_res_row_seen"):
    st.session_state["res_explain_pick"] = row_worker
asked_elsewhere = st.session_state.pop("_explain_request", None)  # the Eligibility page's button
if asked_elsewhere is not None:
    st.session_state["res_explain_pick"] = asked_elsewhere
st.session_state["_res_row_seen"] = row_worker
st.subheader("Why this line?")
if res_obj is None:
    st.info("Explanations need the scenario this result was solved with, and the run's data has changed "
            "since. Solve it again to explain it.")
else:
    worker_label = dict(zip(table["Worker id"], table["Worker"], strict=True))
    state.restore_widget("res_explain_pick", allowed=worker_label, default=None)
    if st.session_state.get("res_explain_pick") not in (*worker_label, None):
        st.session_state.pop("res_explain_pick", None)
    explained = st.selectbox(
        "Worker explained", table["Worker id"].tolist(), key="res_explain_pick", index=None,
        placeholder="Click a row above, or choose a worker", format_func=lambda w: f"{worker_label.get(w, w)} ({w})")
    state.remember("res_explain_pick")
    if explained:
        explain_view.show_explanation(res_obj, rkey, problem_fp, explained, seed_ids, key="res_explain")

# --------------------------------------------------------------------------- blocking pairs
st.header("Blocking pairs")
n_block = int(metrics.get("blocking_pairs", 0))
stable = bool(res.settings.get("stability"))
if n_block == 0:
    st.success("No worker and line would both rather be together than where they are: the allocation is stable.")
else:
    st.write(f"**{n_block:,}** worker-and-line {'pair' if n_block == 1 else 'pairs'} would both rather be together than where they are."
             + ("" if stable else " Turn on 'Stable' in the scenario to forbid this."))
    if problem is not None:
        st.dataframe(
            derived.blocking_table(rkey, problem_fp, result, problem),
            key="res_blocking", hide_index=True, width="stretch",
            column_config={
                "Worker": st.column_config.TextColumn(width=130),
                "Has": st.column_config.TextColumn(width=300, help="The line the worker got."),
                "Rank given to it": st.column_config.TextColumn(
                    "Rank", width=75, help="The rank the worker gave the line they got (\"not ranked\" when they did not rank it)."),
                "Would rather have": st.column_config.TextColumn(
                    width=300, help="A line the worker ranked higher, which would also rather have them than a worker it got."),
                "Rank given to that": st.column_config.TextColumn(
                    "Rank", width=75, help="The rank the worker gave the line they would rather have."),
            },
        )

# --------------------------------------------------------------------------- a move tried by hand
if res_obj is not None:
    st.header("Try a move by hand")
    st.caption("What moving one worker (or swapping two) would break on its own, and the best allocation with "
               "them there: what it costs and who else moves. Keeping it pins them in the scenario being edited, "
               "with your reason.")
    wlabel = dict(zip(table["Worker id"], table["Worker"], strict=True))
    llabels = layout.unique_labels([(j, line_names.get(j, j)) for j in sorted(line_names)])
    # The move being tried outlives a look at another page (seeded, not default=: see Compare).
    state.restore_widget("res_ov_kind", allowed=["move", "swap"], default="move")
    state.restore_widget("res_ov_worker", allowed=table["Worker id"], default=None)
    state.restore_widget("res_ov_line", allowed=line_names, default=None)
    state.restore_widget("res_ov_other", allowed=table["Worker id"], default=None)
    st.session_state.setdefault("res_ov_kind", "move")
    kind = st.segmented_control("Change", ["move", "swap"], key="res_ov_kind",
                                on_change=state.keep_widget, args=("res_ov_kind",),
                                format_func={"move": "Move a worker to a line", "swap": "Swap two workers"}.get)
    kind = kind or "move"
    o1, o2 = st.columns(2)
    first = o1.selectbox("Worker", table["Worker id"].tolist(), key="res_ov_worker", index=None,
                         placeholder="Choose a worker", format_func=lambda w: f"{wlabel.get(w, w)} ({w})")
    if kind == "move":
        second = o2.selectbox("To the job line", sorted(line_names), key="res_ov_line", index=None,
                              placeholder="Choose a line", format_func=lambda j: llabels.get(j, j))
    else:
        second = o2.selectbox("Swap with", table["Worker id"].tolist(), key="res_ov_other", index=None,
                              placeholder="Choose a worker", format_func=lambda w: f"{wlabel.get(w, w)} ({w})")
    state.remember("res_ov_worker", "res_ov_line", "res_ov_other")
    asked = (rkey, kind, first, second)
    if st.button("Show what it does", key="res_ov_preview", disabled=not (first and second)):
        try:
            with st.spinner("Solving with the move pinned…"):
                st.session_state["_res_ov"] = {"asked": asked, "preview": explain_view.preview(res_obj, kind, first, second)}
        except explain_view.explain.ExplainError as exc:
            st.session_state["_res_ov"] = {"asked": asked, "error": str(exc)}
    got = st.session_state.get("_res_ov")
    if got and got["asked"] == asked:
        if "error" in got:
            st.error(got["error"])
        else:
            explain_view.show_preview(res_obj, got["preview"], snap, key="res_ov")

# --------------------------------------------------------------------------- exports
st.header("Downloads")
st.caption("Spreadsheet files are made safe to open: a cell that starts like a formula is kept as plain text.")
safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in res.name).strip("-") or "scenario"
e1, e2, e3, e4 = st.columns(4)
# Each file is made when its button is clicked (not on every rerun of the page), and a
# download does not rerun the page.
e1.download_button("Allocation (CSV)", lambda: exports.to_csv(table), f"{safe}-allocation.csv", "text/csv",
                   key="res_dl_csv", on_click="ignore")
e2.download_button("Allocation workbook (XLSX)", lambda: exports.workbook(result, snap, problem, run_name=ctx.summary.name or None,
                                                                  scenario_name=res.name), f"{safe}.xlsx",
                   "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", key="res_dl_xlsx",
                   on_click="ignore", help="The allocation, the fill of each line and the settings, one sheet each.")
if scenario_snap is not None:
    e3.download_button("Snapshot + result (JSON)", lambda: exports.json_bytes(exports.bundle(scenario_snap, result)),
                       f"{safe}-snapshot-and-result.json", "application/json", key="res_dl_bundle", on_click="ignore",
                       help="The scenario's whole input and its result in one file, for the record.")
e4.download_button("Result only (JSON)", lambda: exports.json_bytes(result), f"{safe}-result.json", "application/json",
                   key="res_dl_result", on_click="ignore")

if res_obj is not None:
    st.subheader("Every worker's statement")
    st.caption("One page per worker: their line and rank, what it costs, and each line they ranked higher with "
               "why they did not get it and at what price. Made when you click (a few seconds on a large run).")
    s1, s2, s3, s4 = st.columns(4)
    for col, fmt in zip((s1, s2, s3, s4), explain_view.STATEMENT_FILES, strict=True):
        label, suffix, mime = explain_view.STATEMENT_FILES[fmt]
        col.download_button(label, lambda f=fmt: explain_view.statements_bytes(rkey, problem_fp, f, res_obj),
                            f"{safe}-{suffix}", mime, key=f"res_dl_statements_{fmt}", on_click="ignore")

with st.expander("Settings of this scenario"):
    st.dataframe(
        pd.DataFrame([{"Setting": SETTING_LABELS[k], "Value": kpis.setting_text(k, v)}
                      for k, v in res.settings.items() if k in SETTING_LABELS]),
        key="res_settings", hide_index=True,
    )
