"""Compare: two or more scenarios side by side, and who moved between them."""

from __future__ import annotations

import charts
import headline
import layout
import pandas as pd
import state
import streamlit as st

from allocator.compare import (
    ScenarioView,
    kpi_delta,
    kpi_table,
    kpi_value,
    move_summary,
    moves,
    rank_distributions,
    settings_diff,
)


def _change_cell(key: str, delta: float | None) -> str:
    """A change with which way is better, for the headline table ("–" when unknown)."""
    text = headline.delta_text(key, delta)
    if text is None:
        return "–"
    good = headline.better(key, delta)
    return text + ("" if good is None else (" ▲ better" if good else " ▼ worse"))


ctx = layout.require_run()
snap = ctx.snapshot
st.title("Compare scenarios")
st.caption("Pick two or more solved scenarios. The first one picked is the baseline the others are measured against.")

views: dict[str, ScenarioView] = {}
sides: dict[str, headline.Solved] = {}  # what decides how each one's total cost was counted
for sc in state.scenarios(ctx.summary.id):
    if sc.result and sc.result.get("allocations"):
        label = sc.name if sc.name not in views else f"{sc.name} ({sc.created_at:%d %b %H:%M})"
        views[label] = ScenarioView(label, sc.result, sc.settings, sc.overrides or {})
        sides[label] = headline.Solved(label, sc.settings, sc.overrides or {}, sc.run_id, sc.input_fingerprint)
res = state.current_result()
if res and not res.get("saved_id") and (res["result"] or {}).get("allocations"):
    label = f"{res['name']} (not saved)"
    views[label] = ScenarioView(label, res["result"], res["settings"], res["overrides"] or {})
    sides[label] = headline.Solved(label, res["settings"], res["overrides"] or {}, res["run_id"], res["fingerprint"])

if len(views) < 2:
    st.info("Comparing needs at least two solved scenarios. Solve and save scenarios on the Scenario page; "
            f"this run has {len(views)} so far.")
    layout.link("scenario", "Go to Scenario", icon=":material/tune:")
    st.stop()

names = list(views)



default = names[:2][::-1]  # the older one first, as the baseline
picked = st.multiselect("Scenarios to compare", names, default=default, key="cmp_pick",
                        help="The first is the baseline.")
if len(picked) < 2:
    st.info("Pick at least two scenarios.")
    st.stop()
chosen = [views[n] for n in picked]
base = chosen[0]

# --------------------------------------------------------------------------- settings
st.header("What differs")
diff = settings_diff(chosen)
if diff:
    st.dataframe(pd.DataFrame(diff).rename(columns={"setting": "Setting"}), key="cmp_settings",
                 hide_index=True, width="stretch")
else:
    st.write("The scenarios have the same settings and changes (a different seed or time limit can still "
             "pick a different allocation of the same quality).")

# --------------------------------------------------------------------------- KPIs
st.header("Headline numbers")
rows = kpi_table(chosen)
table = []
for r in rows:
    key = r["key"]
    row = {"": headline.label(key)}
    for i, v in enumerate(chosen):
        row[v.name] = headline.value_text(key, r[v.name])
        if i > 0:
            row[f"{v.name}: change"] = _change_cell(key, r[f"{v.name} change"])
    table.append(row)
# The total cost, compared only where it was counted the same way.
cost_row = {"": headline.label("objective")}
not_comparable = []
for i, v in enumerate(chosen):
    cost = kpi_value(v.result, "objective")
    cost_row[v.name] = headline.value_text("objective", cost)
    if i > 0:
        why = headline.cost_not_comparable(sides[v.name], sides[base.name])
        if why:
            cost_row[f"{v.name}: change"] = "not comparable (see below)"
            not_comparable.append(why)
        else:
            cost_row[f"{v.name}: change"] = _change_cell("objective", kpi_delta(v.result, base.result, "objective"))
table.append(cost_row)
st.dataframe(pd.DataFrame(table), key="cmp_kpis", hide_index=True, width="stretch",
             height=35 * (len(table) + 1) + 3)  # every row in view, no scrolling
st.caption(f"Changes are measured against the baseline, {layout.md(base.name)}. 'Better' follows each number's own "
           "direction: more first choices is better, a lower mean rank is better.")
for why in not_comparable:
    st.caption(layout.md(why))

st.plotly_chart(charts.rank_distribution_overlay(rank_distributions(chosen)), key="cmp_rank_chart", width="stretch")
st.caption("How many workers got their first, second, … choice in each scenario, side by side.")

# --------------------------------------------------------------------------- moves
st.header("Who moved")
other_names = [v.name for v in chosen[1:]]
other = st.selectbox("Compare the baseline with", other_names, key="cmp_other") if len(other_names) > 1 else other_names[0]
target = views[other]
wn = {w.id: (w.name or w.id) for w in snap.workers}
ln = {j.id: (j.name or j.id) for j in snap.job_lines}
mv = moves(base.result, target.result, wn, ln)
summ = move_summary(mv)
c1, c2, c3 = st.columns(3)
c1.metric("Workers who moved", summ["moved"])
c2.metric("Moved to a line they ranked higher", summ["better"])
c3.metric("Moved to a line they ranked lower", summ["worse"])
if mv:
    df = pd.DataFrame(mv)[["worker", "rank_before", "rank_after", "rank_change", "from_line", "to_line", "worker_id"]]
    df.columns = ["Worker", "Rank before", "Rank after", "Rank change", f"Line in {base.name}",
                  f"Line in {target.name}", "Worker id"]

    def ranks(before: float | None, after: float | None) -> str:
        return f"{'–' if before is None else f'{before:g}'} → {'–' if after is None else f'{after:g}'}"

    df.insert(1, "Ranks", [ranks(r["rank_before"], r["rank_after"]) for r in mv])
    st.dataframe(df, key="cmp_moves", hide_index=True, width="stretch", placeholder="–",
                 column_order=["Worker", "Ranks", "Rank change", f"Line in {base.name}", f"Line in {target.name}"],
                 column_config={
        "Worker": st.column_config.TextColumn(width=140),
        "Ranks": st.column_config.TextColumn("Rank", width=80,
                                             help="The rank the worker gave their line, before → after."),
        "Rank change": st.column_config.NumberColumn("Change", format="%+.1f", width=75,
                                                     help="Negative: a line the worker ranked higher (better)."),
        f"Line in {base.name}": st.column_config.TextColumn(width=290),
        f"Line in {target.name}": st.column_config.TextColumn(width=290),
    })
    st.caption("Largest losses first. A negative rank change means the worker got a line they ranked higher.")
    flows = charts.sankey_moves(mv)
    st.plotly_chart(charts.sankey_figure(flows), key="cmp_sankey", width="stretch")
    grouped = ""
    if flows["grouped_moves"]:
        grouped = (f" To keep it readable, only the {flows['shown_left']} lines most workers left and the "
                   f"{flows['shown_right']} lines most workers joined have a band of their own: "
                   f"{flows['grouped_moves']} of the {len(mv)} moves start or end on another line, shown "
                   "together as 'Other lines' (grey). The table above lists every move.")
    st.caption(f"Where moved workers went: lines in {layout.md(base.name)} on the left, lines in "
               f"{layout.md(target.name)} on the right. The thicker the band, the more workers moved that way."
               + grouped)
else:
    st.success("Nobody moved: both scenarios put every worker on the same line.")
