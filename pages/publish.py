"""Publish: write a solved scenario's allocation to the database, with a reason, atomically."""

from __future__ import annotations

import charts
import compare_view
import derived
import layout
import pandas as pd
import publishing
import state
import streamlit as st

from allocator import kpis, service
from allocator.compare import RunNames, ScenarioView
from allocator.metrics import ranked_pairs
from allocator.service import (
    AlreadyPublishedError,
    PublishRefusedError,
    StaleScenarioError,
    StoreError,
)

ctx = layout.require_run()
snap = ctx.snapshot
ranked = ranked_pairs(snap)  # a line a worker did not rank shows "not ranked", never its shared rank
run = ctx.summary
ss = st.session_state
runner = state.job_runner()


def open_on_scenario_page(sc) -> None:
    state.load_scenario(sc)
    st.switch_page(layout.PAGES["scenario"])


# --------------------------------------------------------------------------- solve again and publish
# The new solve runs on the shared solver thread (progress below, with a Stop button); when it
# finishes, on this page, its result is saved as the scenario's next version and published.


def _status(result) -> str | None:
    data = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    return data.get("status")


def finish_resolve() -> bool:
    """If the session's re-solve has finished: publish it (or say why not). True when it had."""
    job = ss.get("pub_resolve")
    if not job:
        return False
    try:
        p = runner.progress(job["job_id"])
    except KeyError:  # the dashboard restarted: the solve is gone
        ss.pop("pub_resolve", None)
        ss["pub_outcome"] = ("error", "The new solve was lost (the dashboard restarted). Nothing was published.")
        return True
    if not p.finished:
        return False
    ss.pop("pub_resolve", None)
    plan = job["plan"]
    title = plan.scenario.name
    if p.status == "stopped":
        ss["pub_outcome"] = ("error", f"Stopped solving '{layout.md(title)}' again: nothing was saved or published.")
        return True
    if p.result is None:
        ss["pub_outcome"] = ("error", f"Not published: {layout.md(p.error or 'the new solve gave no result.')}")
        return True
    try:
        out = service.publish_resolved(state.store(), plan, p.result, reason=job["reason"] or None,
                                       supersede=job["supersede"], published_by=state.recorded_by())
    except service.NoAllocationError as exc:
        ss["pub_outcome"] = ("error", layout.md(str(exc)))
        ss["pub_reopen"] = plan.scenario.id
    except StaleScenarioError as exc:
        ss["pub_outcome"] = ("error", f"Not published: {layout.md(exc.message)} {layout.md(exc.hint or '')}")
    except (service.ServiceError, StoreError) as exc:
        ss["pub_outcome"] = ("error", f"Not published: {layout.md(str(exc))}")
    else:
        verb = "replaced the published allocation with it" if out.superseded else "published it"
        ss["pub_outcome"] = ("ok", f"Done: solved '{layout.md(title)}' again with the current data, saved it as "
                                   f"version {out.version} and {verb} ({out.n_allocations} allocations) at "
                                   f"{out.published_at.astimezone():%d %b %Y %H:%M}. The older version is kept."
                                   + (" The new solve was stopped by its time limit, so this allocation is not "
                                      "proven the best possible." if _status(p.result) == "feasible" else ""))
        state.set_widget("pub_scenario", out.scenario_id)
        state.set_widget("pub_reason", "")
        state.set_widget("pub_supersede", False)
    state.clear_reads()
    return True


def start_resolve(sc, reason: str, supersede: bool) -> None:
    try:
        plan = service.prepare_resolve(state.store(), run.id, sc.id, supersede=supersede, reason=reason or None)
    except AlreadyPublishedError as exc:
        ss["pub_outcome"] = ("error", f"Not started: {layout.md(str(exc))}")
        return
    except (service.ServiceError, StoreError) as exc:
        ss["pub_outcome"] = ("error", f"Not started: {layout.md(str(exc))}")
        return
    options = service.solve_options(state.app_settings())
    job_id = runner.submit(plan.snapshot, options, label=f"{sc.name} (again, current data)")
    ss["pub_resolve"] = {"job_id": job_id, "plan": plan, "reason": reason, "supersede": supersede,
                         "run_id": run.id}
    # A small run solves in well under a second: publish with this click, not the next poll.
    runner.wait(job_id, timeout=1.5)
    finish_resolve()


if finish_resolve():
    st.rerun()  # the widgets reset by the outcome take their new values

st.title("Publish")
st.caption("Writes the chosen scenario's allocation to the database as this run's allocation. "
           "Every publication is kept in the history below, with who, when and why.")

# The outcome of the last attempt, kept across the rerun that closes the dialog.
outcome = ss.pop("pub_outcome", None)
if outcome:
    kind, text = outcome
    (st.success if kind == "ok" else st.error)(text)

saved = state.scenarios(run.id)  # the latest version of each
log = state.guarded(lambda: state.publications(run.id), "The publication history could not be read")
published_now = log[-1].allocations if (run.published and log) else None

reopen = ss.pop("pub_reopen", None)
if reopen:
    again = next((x for x in saved if x.id == reopen), None)
    if again is not None and st.button(f"Open '{again.name}' on the Scenario page", key="pub_reopen_btn"):
        open_on_scenario_page(again)

cur = state.current_result()
if cur and not cur.saved_id and cur.result.get("allocations"):
    st.info(f"Your latest solve, '{layout.md(cur.name)}', is not saved: save it on the Scenario page to publish it.")

if run.published:
    st.info("This run already has a published allocation. Publishing again replaces it: that needs a reason, "
            "and the old allocation stays in the history.")

n_stale = sum(1 for x in saved if x.result and x.input_fingerprint != ctx.fingerprint)
if not saved:
    st.info("There is no saved scenario to publish yet. Solve a scenario and save it on the Scenario page.")
    layout.link("scenario", "Go to Scenario", icon=":material/tune:")
else:
    by_id = {x.id: x for x in saved}
    solved = [x for x in saved if x.result and x.result.get("allocations")]
    default = cur.saved_id if cur and cur.saved_id in by_id else (solved or saved)[0].id
    state.restore_widget("pub_scenario", default=default)
    if ss.get("pub_scenario") not in by_id:
        ss["pub_scenario"] = default

    def label(x) -> str:
        status = (x.result or {}).get("status")
        words = layout.RESULT_WORDS.get(status, "not solved") if x.result else "not solved"
        old = " · solved on older data" if x.result and x.input_fingerprint != ctx.fingerprint else ""
        return f"{publishing.scenario_title(x)} · {words}{old} · saved {x.created_at.astimezone():%d %b %H:%M}"

    labels = layout.unique_labels([(i, label(x)) for i, x in by_id.items()])
    sid = st.selectbox("Scenario to publish", list(by_id), key="pub_scenario",
                       format_func=lambda i: labels.get(i, i), on_change=state.keep_widget, args=("pub_scenario",))
    sc = by_id[sid]
    title = publishing.scenario_title(sc)
    result = sc.result or {}
    allocations = result.get("allocations") or []
    stale = bool(sc.result) and sc.input_fingerprint != ctx.fingerprint
    resolving = ss.get("pub_resolve")

    if stale:
        st.warning(publishing.stale_note(layout.md(title), sc.created_at), icon=":material/update:")
    elif n_stale:
        st.caption(f"{layout.count(n_stale, 'saved scenario')} of this run {'was' if n_stale == 1 else 'were'} solved on "
                   "older data; the list marks them.")

    # What the scenario changes from the run's own data and settings (lifted run pins and forbids
    # included): a planner publishes these as much as the allocation.
    changes = compare_view.differs_frame(
        [ScenarioView("The run", None, snap.settings.model_dump(), {}),
         ScenarioView("This scenario", result, {**snap.settings.model_dump(), **dict(sc.settings or {})},
                      dict(sc.overrides or {}))],
        RunNames.of(snap))
    st.subheader("What this scenario changes")
    if len(changes):
        st.dataframe(changes, key="pub_changes", hide_index=True, width="stretch",
                     column_config={"Change": st.column_config.TextColumn(width=440)})
        st.caption(f"{len(changes)} change{'s' if len(changes) != 1 else ''} from the run's own settings and "
                   "data: each setting, line, pin, forbid and organisation priority, each of the run's own pins "
                   "or forbids it lifts, and each couple, quota and priority tier it sets differently.")
    else:
        st.caption("None: the run's own settings and data, as imported.")

    if allocations:
        m = result.get("metrics") or {}
        st.subheader("What will be written" if not stale else "What was solved on the old data")
        c = st.columns(4)
        c[0].metric("Workers placed", len(allocations))
        c[1].metric(kpis.label("first_choice_share"), kpis.value_text("first_choice_share", m.get("first_choice_share")))
        c[2].metric(kpis.label("vacancies"), kpis.value_text("vacancies", m.get("vacancies", 0)))
        c[3].metric(kpis.label("mandatory_lines_filled"),
                    f"{kpis.value_text('mandatory_lines_filled', m.get('mandatory_lines_filled', 0))} of "
                    f"{kpis.value_text('mandatory_lines_filled', m.get('mandatory_lines', 0))}")
        if result.get("status") == "feasible":
            st.warning("This allocation was not proven the best possible (the solve was stopped or ran out of time): "
                       f"{layout.unproven_words(result)}.")
        wn = {w.id: (w.name or w.id) for w in snap.workers}
        ln = {j.id: (j.name or j.id) for j in snap.job_lines}
        with st.expander(f"The {len(allocations)} allocations"):
            st.dataframe(
                pd.DataFrame([{"Worker": wn.get(a["worker_id"], a["worker_id"]),
                               "Job line": ln.get(a["job_line_id"], a["job_line_id"]),
                               "Rank given": derived.rank_text(a.get("worker_rank") or 0,
                                                               (a["worker_id"], a["job_line_id"]) in ranked)}
                              for a in allocations]),
                key="pub_preview", hide_index=True, width="stretch",
            )

    wn = {w.id: (w.name or w.id) for w in snap.workers}
    ln = {j.id: (j.name or j.id) for j in snap.job_lines}
    pins = publishing.pins_with_reasons(sc.overrides, wn, ln)
    if pins:
        st.subheader("Pins in this scenario")
        st.caption("Workers the scenario puts on a line whatever else happens, with why. They are written "
                   "with the publication's reason.")
        st.markdown("\n".join(f"- {layout.md(x)}" for x in pins))

    supersede = False
    # What the planner typed outlives a look at another page (state.keep_widget).
    state.restore_widget("pub_supersede", default=False)
    state.restore_widget("pub_reason", default="")
    if run.published:
        supersede = st.checkbox("Replace the published allocation", key="pub_supersede",
                                on_change=state.keep_widget, args=("pub_supersede",),
                                help="The old allocation stays in the history.")
    reason = st.text_area("Reason", key="pub_reason", max_chars=500, on_change=state.keep_widget, args=("pub_reason",),
                          placeholder="e.g. Approved by the Director of Medical Services on 3 March",
                          help="Kept in the history. Required to replace a published allocation.")

    blockers = publishing.publish_blockers(
        sc, current_fingerprint=ctx.fingerprint, run_published=run.published,
        published_allocations=published_now, supersede=supersede, reason=reason)

    def close_dialog() -> None:
        ss.pop("pub_dialog", None)

    # The dialog stays open (across full reruns too) while ``pub_dialog`` is set.
    @st.dialog("Confirm publication", on_dismiss=close_dialog)
    def confirm(sc_id: str, name: str, reason: str, supersede: bool) -> None:
        st.write(f"Publish **{layout.md(name)}** as the allocation of **{layout.md(run.name or run.id)}**?")
        st.write(f"{len(allocations)} workers will be written to the database"
                 + (", replacing the published allocation." if supersede else "."))
        st.write(f"Reason: {layout.md(reason.strip()) or '(none given)'}")
        if pins:
            st.write(f"With the {layout.count(len(pins), 'pin')} of this scenario and their reasons (listed above).")
        a, b = st.columns(2)
        if a.button("Publish now", key="pub_confirm", type="primary"):
            try:
                out = service.publish(state.store(), run.id, sc_id, reason=publishing.recorded_reason(reason, pins),
                                      supersede=supersede,
                                      published_by=state.recorded_by())
            except StaleScenarioError as exc:
                ss["pub_outcome"] = ("error", f"Not published: {exc.message} Choose the scenario again below and "
                                              "press 'Solve again with the current data and publish'.")
            except AlreadyPublishedError as exc:
                ss["pub_outcome"] = ("error", f"Not published: {exc.message} To replace it, tick 'Replace the "
                                              "published allocation' and give a reason.")
            except (PublishRefusedError, service.ServiceError, StoreError) as exc:
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

    if resolving:
        pass  # the progress panel below stands in for the buttons
    elif not blockers:
        if st.button("Publish…", key="pub_open", type="primary"):
            ss["pub_dialog"] = {"sc_id": sc.id, "name": title, "reason": reason, "supersede": supersede}
    else:
        close_dialog()  # never a confirmation that is bound to be refused
        for b in blockers:
            if b.kind != "stale":  # the banner above says it
                (st.warning if b.fix == "scenario" else st.info)(layout.md(b.message))
        if any(b.kind == "stale" for b in blockers):
            ready = publishing.resolve_ready(blockers)
            if st.button("Solve again with the current data and publish", key="pub_resolve_btn", type="primary",
                         disabled=not ready, icon=":material/autorenew:",
                         help="Solves this scenario again, with the same rules and changes, on the run's current "
                              "data; saves the result as its next version (the older one is kept) and publishes it "
                              "with the reason above. Nothing is published if the new solve finds no allocation."):
                start_resolve(sc, publishing.recorded_reason(reason, pins) or "", supersede)
                st.rerun()
            if ready:
                st.caption(f"The new result is saved as version {sc.version + 1} of '{layout.md(sc.name)}' and "
                           "published with the reason above; nothing is published if it finds no allocation.")
        if any(b.fix == "scenario" for b in blockers):
            if st.button("Open it on the Scenario page", key="pub_open_scenario", icon=":material/tune:"):
                open_on_scenario_page(sc)
    if ss.get("pub_dialog") and not blockers:
        confirm(**ss["pub_dialog"])

    @st.fragment(run_every=0.5 if resolving else None)
    def resolve_panel() -> None:
        job = ss.get("pub_resolve")
        if not job:
            return
        try:
            p = runner.progress(job["job_id"])
        except KeyError:
            p = None
        if p is None or p.finished:
            st.rerun()  # the whole page: it publishes and shows the outcome
        name = layout.md(job["plan"].scenario.name)
        if p.status == "queued":
            st.status(f"Waiting for the solver to solve '{name}' again: {layout.count(p.queue_position, 'solve')} ahead",
                      state="running")
        else:
            label = (f"Stopping '{name}'…" if p.stop_requested
                     else f"Solving '{name}' again with the current data… {p.elapsed:.1f} s")
            st.status(label, state="running")
            best_cost, _ = charts.best_so_far(p.history)
            if best_cost is not None:
                st.caption(f"Best total cost so far: {kpis.value_text('objective', best_cost)}. "
                           "It is published as soon as the solve ends.")
        st.button("Stop", key="pub_resolve_stop", on_click=runner.stop, args=(job["job_id"],),
                  help="Stop the new solve; nothing is saved or published.", disabled=p.stop_requested)

    resolve_panel()

# --------------------------------------------------------------------------- history


@st.cache_data(max_entries=512, show_spinner=False)
def _scenario_by_id(key: str, scenario_id: str, _store) -> object:
    # Saved scenarios never change (a new solve is a new version), so one read per id is enough.
    return service.get_scenario(_store, scenario_id)


st.header("Publication history")
if not log:
    st.caption("Nothing published for this run yet.")
else:
    latest = {x.id: x for x in saved}

    def scenario_of(scenario_id: str):
        if scenario_id in latest:
            return latest[scenario_id]
        try:
            return _scenario_by_id(state.store_key(), scenario_id, state.store())
        except StoreError:
            return None

    rows = publishing.history_rows(log, scenario_of, state.who_label)
    st.dataframe(pd.DataFrame(rows), key="pub_history", hide_index=True, width="stretch", placeholder="–",
                 column_config={
        "When": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm", width=120),
        "Who": st.column_config.TextColumn(width=100, help="The planner who published."),
        "What": st.column_config.TextColumn(width=80),
        "Scenario": st.column_config.TextColumn(width=130),
        "Version": st.column_config.NumberColumn(
            width=60, format="%d", help="Which version of the scenario: a scenario solved again on changed data "
                                        "is saved as its next version; the older versions stay."),
        "Reason": st.column_config.TextColumn(width=125),
        "Result": st.column_config.TextColumn(
            width=130, help="Whether the allocation was proven the best possible. Its settings and, when not "
                            "proven, how far from the best it may be: below, under Each publication in full."),
        "Total cost": st.column_config.TextColumn(width=75, alignment="right"),
        "Workers": st.column_config.NumberColumn(
            width=60, help="Workers the publication placed; who went where is below."),
    })
    st.caption("Newest first. Each line is one write to the database; replaced allocations stay on record.")

    with st.expander("Each publication in full: its settings, its result and who went where"):
        entries = list(reversed(log))

        def entry_label(e) -> str:
            sc_e = scenario_of(e.scenario_id) if e.scenario_id else None
            tail = f" · {publishing.scenario_title(sc_e)}" if sc_e else ""
            return (f"{e.published_at.astimezone():%d %b %Y %H:%M} · "
                    f"{publishing.ACTION_WORDS.get(e.action, e.action)}{tail}")

        entry_labels = layout.unique_labels([(str(e.id), entry_label(e)) for e in entries])
        by_entry = {str(e.id): e for e in entries}
        worker_names = {w.id: (w.name or w.id) for w in snap.workers}
        line_names = {j.id: (j.name or j.id) for j in snap.job_lines}
        chosen = st.selectbox("Publication", list(by_entry), key="pub_history_pick",
                              format_func=lambda i: entry_labels[i])
        entry = by_entry[chosen]
        details = publishing.publication_details(scenario_of(entry.scenario_id) if entry.scenario_id else None)
        if details:
            st.dataframe(pd.DataFrame(details, columns=["Setting", "Value"]), key="pub_history_settings",
                         hide_index=True, width="stretch",
                         column_config={"Setting": st.column_config.TextColumn(width=260),
                                        "Value": st.column_config.TextColumn(width=600)})
        else:
            st.caption("The scenario of this publication is no longer on record: its settings cannot be shown.")
        st.dataframe(
            pd.DataFrame([{"Worker": worker_names.get(a.worker_id, a.worker_id),
                           "Worker id": a.worker_id,
                           "Job line": line_names.get(a.job_line_id, a.job_line_id),
                           "Rank given": derived.rank_text(a.worker_rank or 0,
                                                           (a.worker_id, a.job_line_id) in ranked)}
                          for a in entry.allocations],
                         columns=["Worker", "Worker id", "Job line", "Rank given"]),
            key="pub_history_allocations", hide_index=True, width="stretch", placeholder="–",
            column_config={"Worker": st.column_config.TextColumn(width=200),
                           "Worker id": st.column_config.TextColumn(width=90),
                           "Job line": st.column_config.TextColumn(width=450),
                           "Rank given": st.column_config.TextColumn(
                               width=100, help="The rank the worker gave the line (\"not ranked\" when they did not rank it).")},
        )
        if entry.previous_allocations:
            st.caption(f"This replaced an allocation of {len(entry.previous_allocations)} workers, kept on record.")
