"""Compare: two or more scenarios side by side, and who moved between them."""

from __future__ import annotations

import charts
import compare_view
import headline
import layout
import rules_view
import state
import streamlit as st

from allocator.compare import (
    MOVE_KINDS,
    MOVE_WORDS,
    RunNames,
    ScenarioView,
    line_sites,
    move_sentence,
    move_summary,
    moves,
    rank_distributions,
    ranked_pairs,
    workers_in_one_only,
)

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
if res and not res.saved_id and (res.result or {}).get("allocations"):
    label = f"{res.name} (not saved)"
    views[label] = ScenarioView(label, res.result, res.settings, res.overrides or {})
    sides[label] = headline.Solved(label, res.settings, res.overrides or {}, res.run_id, res.fingerprint)

if len(views) < 2:
    st.info("Comparing needs at least two solved scenarios. Solve and save scenarios on the Scenario page; "
            f"this run has {len(views)} so far.")
    layout.link("scenario", "Go to Scenario", icon=":material/tune:")
    st.stop()

names = list(views)
default = names[:2][::-1]  # the older one first, as the baseline
# The picks outlive a look at another page (seeded here, not by default=, so that a value put
# back from code draws without Streamlit's warning about a default set twice).
state.restore_widget("cmp_pick", allowed=names, default=default)
st.session_state.setdefault("cmp_pick", default)
picked = st.multiselect("Scenarios to compare", names, key="cmp_pick", help="The first is the baseline.",
                        on_change=state.keep_widget, args=("cmp_pick",))
if len(picked) < 2:
    st.info("Pick at least two scenarios.")
    st.stop()
chosen = [views[n] for n in picked]
base = chosen[0]
old_data = [n for n in picked if sides[n].fingerprint != ctx.fingerprint]
if old_data:
    st.warning("Solved on older data than the run now has: " + ", ".join(f"'{layout.md(n)}'" for n in old_data)
               + ". Their moves and numbers are of the old data; solve them again on the Scenario page "
               "(or on Publish) to compare like with like.", icon=":material/update:")

if unproven := compare_view.unproven_note(chosen, escape=layout.md):
    st.info(unproven, icon=":material/hourglass_bottom:")

ranked = ranked_pairs(snap)

# --------------------------------------------------------------------------- settings
st.header("What differs")
diff = compare_view.differs_frame(chosen, RunNames.of(snap))
if len(diff):
    st.dataframe(diff, key="cmp_settings", hide_index=True, width="stretch",
                 column_config={"Change": st.column_config.TextColumn(width=300)})
    st.caption("Each setting, line, pin, forbid, organisation priority, couple, quota and priority tier that is not "
               "the same in every scenario, with its value in each; '–' where a scenario does not have it.")
else:
    st.write("The scenarios have the same settings and changes (a different seed or time limit can still "
             "pick a different allocation of the same quality).")

# --------------------------------------------------------------------------- KPIs
st.header("Headline numbers")
table, not_comparable = compare_view.kpi_frame(chosen, sides, ranked)
st.dataframe(table, key="cmp_kpis", hide_index=True, width="stretch",
             height=35 * (len(table) + 1) + 3)  # every row in view, no scrolling
st.caption(f"Changes are measured against the baseline, {layout.md(base.name)}. 'Better' follows each number's own "
           "direction: more first choices is better, a lower mean rank is better. Mean and worst rank are over the "
           "workers on lines they ranked; those on a line they did not rank are counted in their own row.")
for why in not_comparable:
    st.caption(layout.md(why))

st.plotly_chart(charts.rank_distribution_overlay(rank_distributions(chosen)), key="cmp_rank_chart", width="stretch")
st.caption("How many workers got their first, second, … choice in each scenario, side by side.")

# --------------------------------------------------------------------------- business rules
rules_df = rules_view.compare_rules_frame(chosen, rules_view.Names(snap))
if len(rules_df):
    st.header("Couples, quotas, tiers and sites")
    st.dataframe(rules_df, key="cmp_rules", hide_index=True, width="stretch",
                 column_config={"Outcome": st.column_config.TextColumn(width=300)})
    st.caption("How each scenario meets its quotas, where each link's workers are, how many workers of the "
               "previous allocation moved, and how each priority tier and site fared; '–' where a scenario "
               "does not have it.")

# --------------------------------------------------------------------------- moves
st.header("Who moved")
other_names = [v.name for v in chosen[1:]]
if len(other_names) > 1:
    state.restore_widget("cmp_other", allowed=other_names, default=other_names[0])
    other = st.selectbox("Compare the baseline with", other_names, key="cmp_other",
                         on_change=state.keep_widget, args=("cmp_other",))
else:
    other = other_names[0]
target = views[other]
wn = {w.id: (w.name or w.id) for w in snap.workers}
ln = {j.id: (j.name or j.id) for j in snap.job_lines}
mv = moves(base.result, target.result, wn, ln, ranked)
summ = move_summary(mv)
shown = [k for k in MOVE_KINDS if k in ("better", "equal", "worse") or summ[k]]
labels = {"better": "Ranked higher", "equal": "Ranked the same", "worse": "Ranked lower",
          "to_unranked": "To a line not ranked", "from_unranked": "From a line not ranked",
          "both_unranked": "Between lines not ranked"}
# Four to a row: six side by side cut the longer labels ("From a line not r…").
cells = [("Workers who moved", summ["moved"], None)] + [
    (labels[k], summ[k], f"Workers who moved {MOVE_WORDS[k]}.") for k in shown]
for start in range(0, len(cells), 4):
    cols = st.columns(4)
    for col, (label, value, why) in zip(cols, cells[start:start + 4], strict=False):
        col.metric(label, value, help=why)
st.caption(move_sentence(summ) + ". A line a worker did not rank has no rank of theirs, so a move to or from one "
           "is counted apart, never as better or worse.")
only_base, only_target = workers_in_one_only(base.result, target.result)
if only_base or only_target:
    st.caption(compare_view.not_counted_sentence(only_base, only_target, layout.md(base.name), layout.md(target.name)))
if mv:
    sites = line_sites(snap)
    df = compare_view.moves_frame(mv, sites, compare_view.given_ranks(snap))
    st.dataframe(df, key="cmp_moves", hide_index=True, width="stretch",
                 column_order=["Worker", "From", "Rank before", "To", "Rank after", "Outcome"],
                 column_config={
        "Worker": st.column_config.TextColumn(width=140),
        "From": st.column_config.TextColumn(f"Line in {base.name}", width=210),
        "Rank before": st.column_config.TextColumn(width=85,
                                                   help=f"The rank the worker gave their line in {base.name}."),
        "To": st.column_config.TextColumn(f"Line in {target.name}", width=210),
        "Rank after": st.column_config.TextColumn(width=85,
                                                  help=f"The rank the worker gave their line in {target.name}."),
        "Outcome": st.column_config.TextColumn(width=145,
                                               help="Whether the worker's new line is one they ranked higher, "
                                                    "the same or lower, or one they did not rank."),
    })
    st.caption(f"Every worker who moved ({len(mv)}), worst off first"
               + (", grouped by the site they left" if sites else "") + ".")
    plan = charts.moves_chart(mv, sites=sites)
    if plan["kind"] == "sankey":
        st.plotly_chart(charts.sankey_figure(plan["data"]), key="cmp_sankey", width="stretch")
        side = "sites" if plan["by"] == "site" else "lines"
        st.caption(f"Where moved workers went: {side} in {layout.md(base.name)} on the left, {side} in "
                   f"{layout.md(target.name)} on the right; the thicker the band, the more workers moved that way. "
                   + plan["note"])
    else:
        st.caption(plan["note"])
else:
    st.success(compare_view.nobody_moved_sentence(only_base, only_target))
