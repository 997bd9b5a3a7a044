"""Scenario: tune the rules on top of the current run, solve in the background, save."""

from __future__ import annotations

import charts
import cleanup
import derived
import editor
import layout
import state
import streamlit as st

from allocator import kpis, service
from allocator.scenario import ScenarioOverrides

STATUS_HEIGHT = 88  # px: three lines of small text under the buttons

ctx = layout.require_run()
snap = ctx.snapshot
ss = st.session_state
d = state.draft(snap)

st.title("Scenario")
st.caption(
    f"A what-if on **{layout.md(ctx.summary.name or ctx.summary.id)}**: change the rules below, press Solve, "
    "then save it under a name. The run's own data is never changed."
)

# --------------------------------------------------------------------------- name and settings
# Widgets are seeded from the draft, which keeps what was typed (even a bad value) while the
# planner is on other pages; state.sync_draft() copies every change back into it.
ss.setdefault("sc_name", d.name)
for _k, _key in state.INPUT_WIDGETS.items():
    ss.setdefault(_key, d.inputs[_k])

st.text_input("Scenario name", key="sc_name", on_change=state.draft_edited, max_chars=120)

st.subheader("Rules")
c1, c2 = st.columns(2)
with c1:
    st.slider(
        "Supervisor voice (0–100 %)", *editor.ALPHA_RANGE, key="sc_alpha", on_change=state.draft_edited, step=1, format="%d %%",
        help="How much supervisors' rankings of workers count against workers' own choices. "
             "0 %: only workers' choices count. 100 %: only supervisors' rankings count.",
    )
    # No min/max on the number boxes: a bounded box turns red and keeps its old value, so the
    # value typed is kept and the check below names it instead. value=None lets a box be left
    # blank (it said "you typed 0" for an emptied box): the check asks for a value instead.
    st.number_input(
        "How much low choices hurt", value=None, step=0.25, key="sc_power", on_change=state.draft_edited,
        format="%g",
        help="More than 0, at most 8. 1: every step down a worker's list costs the same. Above 1: a low choice "
             "costs much more than a high one, so the solve avoids giving anyone a very low choice.",
    )
    st.toggle(
        "Stable (no worker and line would both rather swap)", key="sc_stability", on_change=state.draft_edited,
        help="No worker and line would both prefer each other to what they got. Can cost satisfaction overall.",
    )
with c2:
    st.number_input(
        "Time limit (seconds)", value=None, step=5.0, key="sc_time", on_change=state.draft_edited, format="%g",
        help="More than 0. The solve stops after this long and keeps the best allocation found so far.",
    )
    st.text_input(
        "Tie-break seed", key="sc_seed", on_change=state.draft_edited, max_chars=20,
        help="A whole number, 0 or more. When several allocations are equally good, this number picks one. "
             "The same seed always gives the same allocation.",
    )
    st.toggle(
        "Allow tied worker ranks", key="sc_ties", on_change=state.draft_edited,
        help="Off: a worker who gave two lines the same rank is an error to fix in the data.",
    )

# Solve, save and the outcome of the solve sit right under the rules (drawn further down,
# once the tables below have been read).
actions = st.container()
progress_area = st.container()


# A draft started before a worker was withdrawn (or a job line left the run) still names them:
# one click takes all of it out, and says what it took.
def remove_gone_now() -> None:
    if ss.get("draft") is not d:  # another draft was opened meanwhile: this run's data is not its
        return
    state.sync_draft()
    ss["sc_gone_removed"] = state.remove_gone_from_draft(d, snap)


def gone_button(key: str) -> None:
    st.button(cleanup.BUTTON, key=key, on_click=remove_gone_now, icon=":material/person_remove:",
              help="Takes out of this draft every row, link member and quota job line naming a worker or a "
                   "job line the run no longer has. Nothing else in the draft changes.")


gone_found = cleanup.found_title(snap, state.draft_frames(d), escape=layout.md)
with actions:
    if ss.get("sc_gone_removed"):
        removed = ss["sc_gone_removed"]
        st.success(f"**{cleanup.removed_title(removed)}**\n\n"
                   + "\n".join(f"- {layout.md(m)}" for m in removed[:30])
                   + (f"\n\n…and {len(removed) - 30} more." if len(removed) > 30 else ""))
    if gone_found:
        st.warning(gone_found)
        gone_button("sc_remove_gone")

# --------------------------------------------------------------------------- tables
st.subheader("Changes to the run's data, for this scenario only")
base = d.base

workers = sorted(snap.workers, key=lambda w: w.id)
lines = sorted(snap.job_lines, key=lambda j: j.id)
wname = {w.id: (f"{w.name} ({w.id})" if w.name else w.id) for w in workers}
lname = layout.unique_labels([(j.id, j.name or j.id) for j in lines])
if any(j.site for j in lines):  # the site beside each line wherever a line is chosen
    lname = {j.id: f"{lname[j.id]} · {editor.site_label(j.site)}" for j in lines}
if len(workers) <= 3000:
    worker_col = st.column_config.SelectboxColumn(
        "Worker", options=[w.id for w in workers], format_func=lambda v: wname.get(v, v), required=True)
else:  # a long drop-down helps no one: type the id
    worker_col = st.column_config.TextColumn("Worker", help="The worker's id", required=True)
line_col = st.column_config.SelectboxColumn(
    "Job line", options=[j.id for j in lines], format_func=lambda v: lname.get(v, v))



def number_cell(**kw):
    """A number cell of the tables: a text cell, right-aligned.

    Streamlit's number cell keeps only what it takes for a digit (1e12 arrived as 112, and was
    solved with): a text cell hands over what was typed, for the checks to read or to name.
    """
    return st.column_config.TextColumn(alignment="right", **kw)


edited: dict = {}
# Each table's problems go right under its grid (filled in once every table has been read): a
# box above the tables moved the grid under the planner's next click.
table_msgs: dict = {}
t_lines, t_pins, t_forbids, t_weights = st.tabs(
    ["Places and must be filled", "Pins", "Forbids", "Organisation priority"])
with t_lines:
    st.caption("Change a line's places (a whole number, 0 or more) or whether it must be filled. "
               "Greyed columns come from the run.")
    edited["lines"] = st.data_editor(
        editor.with_text_cells("lines", base["lines"]), key=state.editor_key("lines"), placeholder="", on_change=state.draft_edited, hide_index=True, width="stretch", num_rows="fixed",
        disabled=["Job line id", "Job line", "Site"],
        column_config={
            "Places": number_cell(help="How many workers the line takes."),
            "Must be filled": st.column_config.CheckboxColumn(help="The line must get at least one worker."),
        },
    )
    table_msgs["lines"] = st.empty()
with t_pins:
    st.caption("Put a worker on a line whatever else happens. They must be eligible for it. "
               "A pin here replaces a pin the run has for the same worker. A pin set from a move "
               "tried on the Results page carries its reason, shown again when the scenario is published.")
    edited["pins"] = st.data_editor(
        base["pins"], key=state.editor_key("pins"), placeholder="", on_change=state.draft_edited, hide_index=True, width="stretch", num_rows="dynamic",
        column_config={"Worker": worker_col, "Job line": line_col,
                       "Reason": st.column_config.TextColumn(
                           max_chars=500, help="Why this worker is pinned here (kept with the scenario).")},
    )
    table_msgs["pins"] = st.empty()
with t_forbids:
    st.caption("Keep a worker off a line in this scenario.")
    edited["forbids"] = st.data_editor(
        base["forbids"], key=state.editor_key("forbids"), placeholder="", on_change=state.draft_edited, hide_index=True, width="stretch",
        num_rows="dynamic", column_config={"Worker": worker_col, "Job line": line_col},
    )
    table_msgs["forbids"] = st.empty()
with t_weights:
    st.caption(
        "Organisation priority for a worker: a positive value discourages the pair, a negative value "
        "favours it. Leave the job line empty to apply it to every line.")
    edited["weights"] = st.data_editor(
        editor.with_text_cells("weights", base["weights"]), key=state.editor_key("weights"), placeholder="", on_change=state.draft_edited, hide_index=True, width="stretch",
        num_rows="dynamic",
        column_config={
            "Worker": worker_col,
            "Job line": line_col,
            "Value": number_cell(help="Added to the supervisors' side of the cost."),
        },
    )
    table_msgs["weights"] = st.empty()

# --------------------------------------------------------------------------- business rules
st.subheader("Couples, quotas, priority tiers and fewest moves")
st.caption("These start as the run has them; a change here is for this scenario only.")
sites = editor.run_sites(snap)
tags = sorted({t for w in snap.workers for t in w.qualification_ids})
t_links, t_quotas, t_tiers, t_moves = st.tabs(
    ["Linked workers (couples)", "Quotas", "Priority tiers", "Fewest moves"])
with t_links:
    st.caption("Workers who must be placed on the same site, such as a couple: give each link a name and "
               "choose 2 to 4 workers. A worker can be in one link only."
               + ("" if sites else " This run's job lines name no sites, so linked workers must share "
                                   "one job line."))
    edited["links"] = st.data_editor(
        base["links"], key=state.editor_key("links"), placeholder="", on_change=state.draft_edited, hide_index=True,
        width="stretch", num_rows="dynamic",
        column_config={
            # A new row comes named (the next free couple-N): rename it at will, the check names a repeat.
            "Link id": st.column_config.TextColumn("Link name", help="For example couple-1.", max_chars=100,
                                                   default=editor.next_name("couple", base["links"]["Link id"])),
            **{f"Worker {n}": (st.column_config.SelectboxColumn(
                f"Worker {n}", options=[w.id for w in workers], format_func=lambda v: wname.get(v, v))
                if len(workers) <= 3000 else st.column_config.TextColumn(f"Worker {n}", help="The worker's id"))
               for n in range(1, 5)},
        },
    )
    table_msgs["links"] = st.empty()
    if link_changes := editor.link_changes(snap, edited["links"]):
        st.caption("Changed from the run's couples, for this scenario: " + "; ".join(map(layout.md, link_changes)) + ".")
with t_quotas:
    st.caption("At least and/or at most so many workers on some sites or some job lines (choose one of the two). "
               "With a tag, only workers with that tag count. Leave At most blank for no maximum."
               + ("" if sites else " This run's job lines name no sites: choose job lines."))
    edited["quotas"] = st.data_editor(
        editor.with_text_cells("quotas", base["quotas"]), key=state.editor_key("quotas"), placeholder="", on_change=state.draft_edited, hide_index=True,
        width="stretch", num_rows="dynamic",
        column_config={
            "Quota id": st.column_config.TextColumn("Quota name", help="For example rural-minimum.", max_chars=100,
                                                    width=110,
                                                    default=editor.next_name("quota", base["quotas"]["Quota id"])),
            "Sites": st.column_config.MultiselectColumn(
                "Sites", options=sites, width=170,
                help="The sites whose job lines count (or choose job lines instead)."),
            "Job lines": st.column_config.MultiselectColumn(
                "Job lines", options=[j.id for j in lines], format_func=lambda v: lname.get(v, v), width=300,
                help="The job lines that count (or choose sites instead)."),
            "Only workers with tag": st.column_config.SelectboxColumn(
                "With tag", options=tags, width=110, help="Only workers with this tag count. Blank: every worker counts."),
            "At least": number_cell(width=75, help="A whole number, 0 or more."),
            "At most": number_cell(width=75,
                                                     help="A whole number, or blank for no maximum."),
        },
    )
    table_msgs["quotas"] = st.empty()
with t_tiers:
    st.caption("Workers in tier 1 are placed first: the best allocation for them is found, then tier 2 gets "
               "the best it can without making tier 1 worse, and so on. Workers without a tier come last. "
               "Blank for everyone: no tiers.")
    tier_frame = state.draft_frames(d)["tiers"]

    def set_tier_for_chosen() -> None:
        who = ss.get("sc_tier_who") or []
        clearing = ss.pop("sc_tier_value_none", False)
        value = None if clearing else ss.get("sc_tier_value")
        if not who:
            ss["sc_tier_note"] = "Choose the workers first."
            return
        if not clearing and value is None:  # an emptied box must not read as "no tier"
            ss["sc_tier_note"] = ("Tier: fill it in (a whole number, 1 or more), or press Remove from tiers. "
                                  "Nothing was changed.")
            return
        if value is not None and (bad := editor.tier_value_problem(value)):
            ss["sc_tier_note"] = bad + ". Nothing was changed."
            return
        state.sync_draft()
        state.set_draft_table(d, "tiers", editor.set_tier(state.draft_frames(d)["tiers"], who,
                                                          None if value is None else int(value)))
        ss["sc_tier_note"] = None
        ss["sc_tier_who"] = []

    def clear_tier_for_chosen() -> None:
        ss["sc_tier_value_none"] = True
        set_tier_for_chosen()

    k1, k2, k3, k4 = st.columns([5, 1, 1, 1.4], vertical_alignment="bottom")
    k1.multiselect("Set the tier for these workers", options=[w.id for w in workers],
                   format_func=lambda v: wname.get(v, v), key="sc_tier_who", placeholder="Choose workers")
    # No min_value: a bounded box keeps its old value when 0 is typed (see editor.tier_value_problem).
    # Not a whole-number box either: the browser rounded 2.5 to 2 and turned 1e12 back into the
    # old value, both without a word; the check names them.
    ss.setdefault("sc_tier_value", 1.0)
    k2.number_input("Tier", value=None, step=1.0, format="%g", key="sc_tier_value",
                    help="A whole number, 1 or more: 1 is placed first.")
    k3.button("Set tier", key="sc_tier_set", on_click=set_tier_for_chosen)
    k4.button("Remove from tiers", key="sc_tier_clear", on_click=clear_tier_for_chosen,
              help="The chosen workers get no tier: they are placed with the last workers.")
    if ss.get("sc_tier_note"):
        st.warning(ss["sc_tier_note"])
    caption, gone = editor.tier_counts(tier_frame, snap)
    st.caption(caption)
    if gone:
        st.info(editor.gone_from_tiers(gone))
        gone_button("sc_remove_gone_tiers")
    edited["tiers"] = st.data_editor(
        editor.with_text_cells("tiers", base["tiers"]), key=state.editor_key("tiers"), placeholder="", on_change=state.draft_edited, hide_index=True,
        width="stretch", num_rows="fixed", disabled=["Worker id", "Worker"], height=300,
        column_config={editor.TIER: number_cell(help="1 is placed first. Blank: no tier (placed last).")},
    )
    table_msgs["tiers"] = st.empty()
with t_moves:
    ss.setdefault("sc_moves", d.inputs["moves"])
    st.toggle(
        "Fewest moves from the previous allocation", key="sc_moves", on_change=state.draft_edited,
        help="After a publication, when doctors withdraw or places change: move as few of the workers "
             "already told where they go as possible, then everything else as usual.",
    )
    log = state.guarded(lambda: state.publications(d.run_id), "The publication history could not be read")
    published = log[-1].allocations if (ctx.summary.published and log) else None

    def use_published() -> None:
        state.sync_draft()
        rows, notes = editor.published_rows(snap, list(published or []))
        state.set_draft_table(d, "previous", editor.pairs_frame(rows))
        ss["sc_moves"] = True
        d.inputs["moves"] = True
        ss["sc_published_notes"] = notes

    st.button("Use the published allocation", key="sc_use_published", on_click=use_published,
              disabled=not published,
              help=("Fill the previous allocation below with who the latest publication placed where, and "
                    "turn fewest moves on." if published else "This run has no publication yet."))
    for note in ss.get("sc_published_notes") or []:
        st.info(note)
    prev_now = state.draft_frames(d)["previous"]
    st.caption(f"The previous allocation: {len(prev_now)} worker{'s' if len(prev_now) != 1 else ''} and the job "
               f"line each was told. "
               "Fewest moves keeps as many of them where they are as it can.")
    if ss.get("sc_moves") and not len(prev_now):
        st.warning("Fewest moves is on, but there is no previous allocation to keep to: press "
                   "Use the published allocation, or add workers and their lines below.")
    with st.expander(f"Previous allocation ({len(prev_now)} workers)"):
        edited["previous"] = st.data_editor(
            base["previous"], key=state.editor_key("previous"), placeholder="", on_change=state.draft_edited, hide_index=True,
            width="stretch", num_rows="dynamic", column_config={"Worker": worker_col, "Job line": line_col},
        )
    table_msgs["previous"] = st.empty()

st.subheader("The run's own pins, forbids and eligibility rules")
st.caption("These come with the run and apply to every scenario. Tick \"Lift in this scenario\" to solve "
           "without a pin or forbid; the run itself keeps it.")
lift_col = {editor.LIFT: st.column_config.CheckboxColumn(help="Solve this scenario without it.")}
# The box first: the names after it may be long, and the box must not scroll out of sight.
lift_order = [editor.LIFT, "Worker", "Worker id", "Job line", "Job line id"]
for what, table, none in (("Pins", "lifted_pins", "The run pins no one."),
                          ("Forbids", "lifted_forbids", "The run forbids no pair.")):
    st.markdown(f"**{what} of the run** ({len(base[table])})")
    if len(base[table]):
        edited[table] = st.data_editor(
            base[table], key=state.editor_key(table), placeholder="", on_change=state.draft_edited, hide_index=True,
            width="stretch", num_rows="fixed", disabled=editor.LIFT_COLS[:-1], column_config=lift_col,
            column_order=lift_order)
    else:
        edited[table] = base[table]
        st.caption(none)
rules_df = editor.rules_frame(snap)
with st.expander(f"Eligibility rules of the run ({len(rules_df)} job lines have one)"):
    if len(rules_df):
        st.dataframe(rules_df, hide_index=True, width="stretch")
        st.caption("A line without a rule may be taken by every worker. The Eligibility page explains "
                   "any worker and line pair.")
    else:
        st.caption("No job line has an eligibility rule: every worker may take every line.")

settings, overrides, problems, scenario_snap = editor.check_scenario(
    snap, d.inputs, edited, apply=state.scenario_snapshot)
d.name = ss["sc_name"].strip()
if settings is not None:
    d.settings = settings
if not problems:
    d.overrides = overrides
general_problems, table_problems = editor.split_problems(problems)
shown_problems = [m for m in (editor.name_problem(ss["sc_name"]),) if m] + general_problems
if shown_problems:
    with actions:
        layout.show_messages("This scenario cannot be solved as it stands. Fix these first:", shown_problems)
elif long_limit := editor.time_limit_note(d.inputs):
    actions.warning(long_limit)
for _table, _msgs in table_problems.items():
    with table_msgs[_table]:
        layout.show_messages("Fix these in this table before solving:", _msgs)
if problems:
    settings = settings or d.settings

norm = ScenarioOverrides.parse(overrides).to_dict() if not problems else None
res = state.current_result()
matches = bool(
    res
    and not problems
    and res.settings == settings
    and ScenarioOverrides.parse(res.overrides).to_dict() == norm
    and res.fingerprint == ctx.fingerprint
)

# --------------------------------------------------------------------------- actions
runner = state.job_runner()
job = state.active_job()
bar = actions.container(horizontal=True)
b1 = b2 = b3 = bar
if b1.button("Solve", key="sc_solve", type="primary", disabled=bool(problems) or job is not None or not d.name,
             help="Fix the problems listed above or under the tables first." if problems or shown_problems else None):
    # The time limit is the scenario's max_seconds (in scenario_snap), set by the engine.
    # A re-solve starts from the last answer on this run (a hint where CP-SAT searches: stable
    # mode; the flow needs none), limited to the workers and lines this scenario still has.
    last = (state.current_result() or {}).get("result") or {}
    start = {a["worker_id"]: a["job_line_id"] for a in last.get("allocations") or []}
    present_w, present_j = {w.id for w in scenario_snap.workers}, {j.id for j in scenario_snap.job_lines}
    start = {w: j for w, j in start.items() if w in present_w and j in present_j}
    options = service.solve_options(state.app_settings(), initial_allocation=start or None)
    job_id = runner.submit(scenario_snap, options, label=d.name)
    # A demo-sized solve takes well under a second: wait for it here, so the result shows
    # with this click's rerun instead of the progress panel's next poll.
    runner.wait(job_id, timeout=1.5)
    ss["job"] = state.SolveJob(
        id=job_id,
        run_id=d.run_id,
        name=d.name,
        settings=settings,
        overrides=overrides,
        fingerprint=ctx.fingerprint,
    )
    ss.pop("job_error", None)
    st.rerun()

if b2.button("Save scenario", key="sc_save", disabled=bool(problems) or not d.name or job is not None,
             help="Saves the name, rules and changes, with the result when this scenario has been solved."
                  + (" Wait for the solve to finish." if job is not None else "")):
    # A name may be reused only over a saved scenario that has no allocation (saved before
    # solving, or found impossible): names must tell solved scenarios apart on the Compare and
    # Publish pages, but a planner who fixed an impossible scenario saves it under its own name
    # (as its next version), as the diagnosis asked.
    existing = {sc.name for sc in state.scenarios(d.run_id) if sc.result and sc.result.get("allocations")}
    if d.name in existing and not (matches and res.saved_id):
        actions.error(f"A scenario named '{layout.md(d.name)}' is already saved for this run. Give this one "
                      f"another name (for example '{layout.md(d.name)} v2') and save again.")
    elif matches and res.saved_id:
        actions.info(f"'{layout.md(d.name)}' is saved already with this result.")
    else:
        result = res.result if matches else None
        new_id = state.guarded(
            lambda: service.save_scenario(
                state.store(), d.run_id, d.name, settings=settings, overrides=overrides,
                result=result, fingerprint=res.fingerprint if matches else ctx.fingerprint,
                created_by=state.recorded_by(),
            ),
            "The scenario could not be saved",
        )
        state.clear_reads()
        state.mark_saved(d, new_id)
        if matches:
            res.saved_id = new_id
            res.name = d.name
            state.flash(f"Saved scenario '{layout.md(d.name)}' with its result.", ":material/save:")
        else:
            state.flash(f"Saved scenario '{layout.md(d.name)}' without a result: solve it to compare or publish it.",
                        ":material/save:")
        st.rerun()



def start_again() -> None:
    if state.draft_dirty(d):
        ss["sc_confirm_reset"] = True  # unsaved changes: ask first
    else:
        state.discard_draft()


b3.button("Start again from the run", key="sc_reset", on_click=start_again,
          help="Forget every change of this draft (rules and tables) and use the run's own settings and data.")
if ss.get("sc_confirm_reset"):
    with actions:
        st.warning("Start again from the run? Every unsaved change to this scenario (its rules and its "
                   "table changes) will be lost.")
        k1, k2 = st.columns(2)
        k1.button("Yes, drop my changes", key="sc_reset_confirm", on_click=state.discard_draft, type="primary")
        k2.button("Keep editing", key="sc_reset_cancel", on_click=lambda: ss.pop("sc_confirm_reset", None))

# Always there and always this tall, whatever it says: a line appearing here when a table row
# is added would move every grid below under the planner's next click.
status_slot = actions.container(height=STATUS_HEIGHT, border=False, key="sc_status")
if pointer := editor.problems_pointer(table_problems):
    status_slot.caption(f":red[**{pointer}**]")
if scenario_snap is not None and (summary := editor.rules_summary(scenario_snap)):
    status_slot.caption(summary)
if res and not matches and not job:
    status_slot.caption("The latest result was solved with other rules than these: press Solve to see this scenario.")


# --------------------------------------------------------------------------- progress
@st.fragment(run_every=0.5 if job else None)
def progress_panel() -> None:
    p = state.job_progress()
    if p is not None and p.finished:
        state.harvest_job()
        st.rerun()
    job_now = state.active_job()
    if job_now and p is not None:
        if p.status == "queued":
            with st.status(f"Waiting for the solver: {layout.count(p.queue_position, 'solve')} ahead", state="running"):
                st.write("Solves run one at a time so each gets the machine's full power.")
        else:
            label = f"Solving '{layout.md(job_now.name)}'… {p.elapsed:.1f} s"
            if p.stop_requested:
                label = f"Stopping '{layout.md(job_now.name)}'… keeping the best allocation found so far"
            # The status line carries the state; the numbers and chart sit outside it, so they
            # show whatever the planner did with the status box before.
            st.status(label, state="running", expanded=False)
            with st.container(border=True):
                m1, m2, m3 = st.columns(3)
                m1.metric("Elapsed", f"{p.elapsed:.1f} s")
                best_cost, best_bound = charts.best_so_far(p.history)
                m2.metric("Best total cost so far", kpis.value_text("objective", best_cost))
                share = kpis.gap_share(best_cost, best_bound)
                m3.metric("Left to prove", "–" if share is None else f"{100 * share:.1f} %",
                          help="The best allocation so far is at most this much above the best possible; "
                               "0 % means proven the best possible.")
                if p.phase:
                    st.caption(f"Now: {layout.PHASE_WORDS.get(p.phase, p.phase)}.")
                st.plotly_chart(charts.progress_figure(p.history), key="sc_progress_chart", width="stretch")
                st.caption("Blue: the best allocation found so far. Orange: no allocation can cost less. "
                           "When they meet, the best possible allocation is proven.")
        st.button("Stop", key="sc_stop", on_click=state.job_runner().stop, args=(job_now.id,),
                  help="Stop now and keep the best allocation found so far.",
                  disabled=p.stop_requested)
        return
    last = ss.get("last_job")
    if ss.get("job_error"):
        st.error(ss["job_error"])
    elif last and last.get("run_id") == d.run_id:
        lp = last["progress"]
        cur = state.current_result() or {}
        result = cur.get("result") or {}
        head, box = layout.outcome(last["name"], result.get("status"), bool(cur.get("stopped")), lp.elapsed,
                                   bool(result.get("allocations")))
        with st.status(head, state=box, expanded=False):
            if lp.history:
                st.plotly_chart(derived.finished_progress_figure(last["id"], lp.history), key="sc_progress_chart",
                                width="stretch")
                st.caption("Blue: the best allocation found. Orange: no allocation can cost less.")
            elif box == "complete":
                st.write("Solved at once: the fast exact method proved the best allocation straight away.")
            else:
                st.write("No allocation was found, so there is nothing to chart.")
        reasons = [x.get("message", "") for x in result.get("diagnosis") or []]
        if box == "error" and not matches:
            st.caption("The rules have changed since that solve: press Solve to try these.")
        elif box == "error" and reasons:
            layout.show_messages("Why no allocation fits these rules (change them below and solve again):",
                                 reasons, limit=10)
        elif box == "error":
            st.warning("Give the solve more time (Time limit), or change the rules below, and solve again.")
        if box == "complete":
            layout.link("results", "See the results", icon=":material/insights:")


with progress_area:
    progress_panel()
