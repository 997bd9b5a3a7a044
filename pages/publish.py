"""Publish: write a solved scenario's allocation to the database, with a reason, atomically."""

from __future__ import annotations

import headline
import layout
import pandas as pd
import state
import streamlit as st

from allocator import service
from allocator.store.base import (
    AlreadyPublishedError,
    PublishRefusedError,
    StaleScenarioError,
    StoreError,
)

ctx = layout.require_run()
snap = ctx.snapshot
run = ctx.summary
ss = st.session_state
st.title("Publish")
st.caption("Writes the chosen scenario's allocation to the database as this run's allocation. "
           "Every publication is kept in the history below, with who, when and why.")

# The outcome of the last attempt, kept across the rerun that closes the dialog.
outcome = ss.pop("pub_outcome", None)
if outcome:
    kind, text = outcome
    (st.success if kind == "ok" else st.error)(text)

solved = [sc for sc in state.scenarios(run.id) if sc.result and sc.result.get("allocations")]
if run.published:
    st.info("This run already has a published allocation. Publishing again replaces it: that needs a reason, "
            "and the old allocation stays in the history.")

if not solved:
    st.info("There is no saved, solved scenario to publish yet. Solve a scenario and save it on the Scenario page.")
    layout.link("scenario", "Go to Scenario", icon=":material/tune:")
else:
    by_id = {sc.id: sc for sc in solved}
    cur = state.current_result()
    default = cur.get("saved_id") if cur and cur.get("saved_id") in by_id else solved[0].id
    if ss.get("pub_scenario") not in by_id:
        ss["pub_scenario"] = default
    labels = layout.unique_labels([
        (i, f"{x.name} · {layout.RESULT_WORDS.get(x.result.get('status'), '')} · saved {x.created_at.astimezone():%d %b %H:%M}")
        for i, x in by_id.items()
    ])
    sid = st.selectbox("Scenario to publish", list(by_id), key="pub_scenario",
                       format_func=lambda i: labels.get(i, i))
    sc = by_id[sid]
    result = sc.result
    m = result.get("metrics") or {}
    stale = sc.input_fingerprint != ctx.fingerprint

    st.subheader("What will be written")
    c = st.columns(4)
    c[0].metric("Workers placed", len(result["allocations"]))
    c[1].metric("Got first choice", f"{float(m.get('first_choice_share') or 0):.0%}")
    c[2].metric("Vacancies", m.get("vacancies", 0))
    c[3].metric("Must-be-filled lines filled", f"{m.get('mandatory_lines_filled', 0)} of {m.get('mandatory_lines', 0)}")
    if result.get("status") == "feasible":
        st.warning("This allocation was not proven the best possible (the solve was stopped or ran out of time).")
    if stale:
        st.error("The run's data has changed since this scenario was solved, so publishing it would be refused. "
                 "Open it from the sidebar, press Solve on the Scenario page, save it, then publish.")
    wn = {w.id: (w.name or w.id) for w in snap.workers}
    ln = {j.id: (j.name or j.id) for j in snap.job_lines}
    with st.expander(f"The {len(result['allocations'])} allocations"):
        st.dataframe(
            pd.DataFrame([{"Worker": wn.get(a["worker_id"], a["worker_id"]), "Job line": ln.get(a["job_line_id"], a["job_line_id"]),
                           "Rank given": a.get("worker_rank")} for a in result["allocations"]]),
            key="pub_preview", hide_index=True, width="stretch",
        )

    supersede = False
    if run.published:
        supersede = st.checkbox("Replace the published allocation", key="pub_supersede",
                                help="The old allocation stays in the history.")
    reason = st.text_area("Reason", key="pub_reason", max_chars=500,
                          placeholder="e.g. Approved by the Director of Medical Services on 3 March",
                          help="Kept in the history. Required to replace a published allocation.")

    def close_dialog() -> None:
        ss.pop("pub_dialog", None)

    # The dialog stays open (across full reruns too) while ``pub_dialog`` is set.
    @st.dialog("Confirm publication", on_dismiss=close_dialog)
    def confirm(sc_id: str, name: str, reason: str, supersede: bool) -> None:
        st.write(f"Publish **{layout.md(name)}** as the allocation of **{layout.md(run.name or run.id)}**?")
        st.write(f"{len(result['allocations'])} workers will be written to the database"
                 + (", replacing the published allocation." if supersede else "."))
        st.write(f"Reason: {layout.md(reason.strip()) or '(none given)'}")
        a, b = st.columns(2)
        if a.button("Publish now", key="pub_confirm", type="primary"):
            try:
                out = service.publish(state.store(), run.id, sc_id, reason=reason or None, supersede=supersede,
                                      published_by=state.recorded_by())
            except StaleScenarioError as exc:
                ss["pub_outcome"] = ("error", f"Not published: {exc.message} Open the scenario from the sidebar, "
                                              "solve it again on the current data, save it, then publish.")
            except AlreadyPublishedError as exc:
                ss["pub_outcome"] = ("error", f"Not published: {exc.message} To replace it, tick 'Replace the "
                                              "published allocation' and give a reason.")
            except PublishRefusedError as exc:
                ss["pub_outcome"] = ("error", f"Not published: {exc}")
            except service.ServiceError as exc:
                ss["pub_outcome"] = ("error", f"Not published: {exc}")
            except StoreError as exc:
                ss["pub_outcome"] = ("error", f"Not published: {exc}")
            else:
                verb = "replaced the published allocation with" if out.superseded else "published"
                ss["pub_outcome"] = ("ok", f"Done: {verb} '{layout.md(name)}' ({out.n_allocations} allocations) "
                                           f"at {out.published_at.astimezone():%d %b %Y %H:%M}.")
                state.set_widget("pub_reason", "")
                state.set_widget("pub_supersede", False)
            close_dialog()
            state.clear_reads()
            st.rerun()
        if b.button("Cancel", key="pub_cancel"):
            close_dialog()
            st.rerun()

    needs_reason = run.published and supersede and not reason.strip()
    if needs_reason:
        st.caption("Give a reason to replace the published allocation.")
    if st.button("Publish…", key="pub_open", type="primary"):
        ss["pub_dialog"] = {"sc_id": sc.id, "name": sc.name, "reason": reason, "supersede": supersede}
    if ss.get("pub_dialog"):
        confirm(**ss["pub_dialog"])

# --------------------------------------------------------------------------- history
st.header("Publication history")
log = state.guarded(lambda: state.publications(run.id), "The publication history could not be read")
if not log:
    st.caption("Nothing published for this run yet.")
else:
    names = {s.id: s for s in state.scenarios(run.id)}
    action_words = {"publish": "published", "supersede": "replaced", "complete": "solved by a worker"}
    rows = []
    for e in reversed(log):
        sc = names.get(e.scenario_id) if e.scenario_id else None
        res = (sc.result if sc else None) or {}
        settings = (sc.settings if sc else None) or res.get("settings") or {}
        parts = []
        if "preferencer_weight" in settings:
            parts.append(f"voice {float(settings['preferencer_weight']):.0%}")
        if "preference_power" in settings:
            parts.append(f"hurt {float(settings['preference_power']):g}")
        if settings.get("stability"):
            parts.append("stable")
        rows.append({
            "When": e.published_at,
            "Who": state.who_label(e.published_by),
            "What": action_words.get(e.action, e.action),
            "Scenario": sc.name if sc else "",
            "Reason": e.reason or "",
            "Settings": " · ".join(parts),
            "Total cost": headline.value_text("objective", res.get("objective")) if res else "",
            "Workers": len(e.allocations),
        })
    st.dataframe(pd.DataFrame(rows), key="pub_history", hide_index=True, width="stretch", placeholder="–",
                 column_config={
        "When": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm", width=125),
        "Who": st.column_config.TextColumn(width=115, help="The planner who published."),
        "What": st.column_config.TextColumn(width=80),
        "Scenario": st.column_config.TextColumn(width=110),
        "Reason": st.column_config.TextColumn(width=170),
        "Settings": st.column_config.TextColumn(
            width=135, help="The scenario's supervisor voice, how much low choices hurt, and 'stable' when its "
                            "allocation had to be stable."),
        "Total cost": st.column_config.TextColumn(width=80, alignment="right"),
        "Workers": st.column_config.NumberColumn(
            width=65, help="Workers the publication placed; who went where is below."),
    })
    st.caption("Newest first. Each line is one write to the database; replaced allocations stay on record.")

    with st.expander("Who went where in each publication"):
        entries = list(reversed(log))
        entry_labels = layout.unique_labels([
            (str(e.id), f"{e.published_at.astimezone():%d %b %Y %H:%M} · {action_words.get(e.action, e.action)}"
                        + (f" · {names[e.scenario_id].name}" if e.scenario_id in names else ""))
            for e in entries
        ])
        by_id = {str(e.id): e for e in entries}
        worker_names = {w.id: (w.name or w.id) for w in snap.workers}
        line_names = {j.id: (j.name or j.id) for j in snap.job_lines}
        chosen = st.selectbox("Publication", list(by_id), key="pub_history_pick", format_func=lambda i: entry_labels[i])
        entry = by_id[chosen]
        st.dataframe(
            pd.DataFrame([{"Worker": worker_names.get(a.worker_id, a.worker_id),
                           "Worker id": a.worker_id,
                           "Job line": line_names.get(a.job_line_id, a.job_line_id),
                           "Rank given": a.worker_rank} for a in entry.allocations],
                         columns=["Worker", "Worker id", "Job line", "Rank given"]),
            key="pub_history_allocations", hide_index=True, width="stretch", placeholder="–",
            column_config={"Worker": st.column_config.TextColumn(width=200),
                           "Worker id": st.column_config.TextColumn(width=90),
                           "Job line": st.column_config.TextColumn(width=450),
                           "Rank given": st.column_config.NumberColumn(format="%.1f", width=100)},
        )
        if entry.previous_allocations:
            st.caption(f"This replaced an allocation of {len(entry.previous_allocations)} workers, kept on record.")
