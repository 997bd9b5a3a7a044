"""Runs: every run, the current one's data health and changes to its data, import, download."""

from __future__ import annotations

import tempfile
from pathlib import Path

import derived
import layout
import pandas as pd
import runs_view
import state
import streamlit as st

from allocator import service
from allocator.service import StoreError
from allocator.snapshot import SnapshotError

st.title("Runs")
st.caption("Every intake you can plan. Pick one to make it the current run on every page.")

if st.button("Refresh", key="runs_refresh", icon=":material/refresh:",
             help="Read the runs again from the database (they are otherwise re-read every 30 seconds)."):
    state.clear_reads()
runs = state.guarded(state.runs, "The list of runs could not be read")

# --------------------------------------------------------------------------- the table
if runs:
    table = runs_view.runs_frame(runs, state.current_run_id())

    def on_pick() -> None:
        sel = st.session_state.get("runs_table", {}).get("selection", {}).get("rows", [])
        if sel:
            rid = runs[sel[0]].id
            state.select_run(rid)

    st.dataframe(
        table,
        key="runs_table",
        on_select=on_pick,
        selection_mode="single-row",
        hide_index=True,
        width="stretch",
        column_config={
            "Run": st.column_config.TextColumn(width=runs_view.RUNS_WIDTHS["Run"]),
            "Imported": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm", help="When the run was imported.",
                                                        width=runs_view.RUNS_WIDTHS["Imported"]),
            "From file": st.column_config.TextColumn(help="The file it was imported from.",
                                                     width=runs_view.RUNS_WIDTHS["From file"]),
            "Workers": st.column_config.NumberColumn(width=runs_view.RUNS_WIDTHS["Workers"]),
            "Job lines": st.column_config.NumberColumn(width=runs_view.RUNS_WIDTHS["Job lines"]),
            "Changed since import": st.column_config.NumberColumn(
                "Changes", help="Changes made to its data here since it was imported (see its change log).",
                width=runs_view.RUNS_WIDTHS["Changed since import"]),
            "Last scenario saved": st.column_config.TextColumn(
                "Last saved", width=runs_view.RUNS_WIDTHS["Last scenario saved"],
                help="When a scenario of this run was last saved. A solve on the Scenario page counts once it is saved."),
            "Published": st.column_config.CheckboxColumn(help="Its allocation has been written to the database.",
                                                         width=runs_view.RUNS_WIDTHS["Published"]),
            "Run id": st.column_config.TextColumn(help="The start of the run's id: tells apart runs with the same name.",
                                                  width=runs_view.RUNS_WIDTHS["Run id"]),
            "Current": st.column_config.CheckboxColumn(help="The run every page works on.",
                                                       width=runs_view.RUNS_WIDTHS["Current"]),
        },
    )
    st.caption("Click a row to make that run current (or use the picker in the sidebar).")
else:
    st.info("There are no runs yet. Import a snapshot or workbook below to start.")

# --------------------------------------------------------------------------- data health
run_id = state.current_run_id()
if run_id:
    ctx = layout.require_run()
    snap = ctx.snapshot
    summary = ctx.summary
    st.header(layout.md(summary.name or summary.id))
    changed = f" · changed {layout.count(summary.n_changes, 'time')} since (see the change log below)" if summary.n_changes else ""
    st.caption(layout.md(f"{runs_view.provenance(summary)} · {summary.n_workers} workers · "
                         f"{summary.n_job_lines} job lines{changed}"))
    if summary.status == "failed" and summary.error:
        # The headless solver (command line or API) gave up on it; the dashboard's solves are apart.
        st.warning(f"The last headless solve of this run failed: {layout.md(summary.error)}", icon=":material/error:")
    layout.link("scenario", "Next: set up a scenario for this run", icon=":material/arrow_forward:")

    st.subheader("Data health")
    st.caption("Checked before any solve: what would make a solve impossible, and what to look at.")
    snap_fp = state.fingerprint_of(snap)
    report = derived.health_report(snap_fp, snap, state.problem_for(snap))
    c = st.columns(4)
    c[0].metric("Workers", report.n_workers)
    c[1].metric("Job lines", report.n_job_lines)
    c[2].metric("Places", report.places, help="Total places over all job lines.")
    c[3].metric("Supervisors who ranked no one", len(report.silent_supervisors))
    problems = [f for f in report.findings if f.severity == "problem"]
    warnings = [f for f in report.findings if f.severity == "warning"]
    if not report.findings:
        st.success("No problems found: every worker can take a line and every line that must be filled can be.")
    for f in problems:
        st.error(f.message, icon=":material/block:")
    for f in warnings:
        st.warning(f.message, icon=":material/warning:")

    # One above the other, each the page's width: beside the chart, the table cut the lines'
    # names off and had no room for their sites.
    st.subheader("How deep the rank lists go")
    st.plotly_chart(derived.depth_figure(snap_fp, report), key="runs_depth_chart", width="stretch")
    st.caption("How many workers ranked how many job lines. Red: workers who ranked none.")
    st.subheader("Lines and who may take them")
    lines = runs_view.line_pools_frame(report, snap)
    st.dataframe(lines, key="runs_lines_table", hide_index=True, width="stretch", height=320, column_config={
        "Check": st.column_config.TextColumn(width=130),
        "Job line": st.column_config.TextColumn(width=400),
        "Site": st.column_config.TextColumn(width=120),
        "Places": st.column_config.NumberColumn(width="small"),
        "May take it": st.column_config.NumberColumn(width="small", help="Workers who may take the line (eligible, not forbidden, not pinned elsewhere)."),
        "Must be filled": st.column_config.CheckboxColumn(width=95),
    })
    st.caption("Lines with a problem first. A line needs at least as many candidates as places to fill up.")
    with st.expander("Workers' rank lists"):
        depth = pd.DataFrame(
            [
                {"Worker": d.name, "Worker id": d.worker_id, "Lines ranked": d.ranked,
                 "Lines they may take": d.eligible, "Ranked lines they may take": d.ranked_eligible}
                for d in report.depth
            ]
        ).sort_values("Lines ranked")
        st.dataframe(depth, key="runs_depth_table", hide_index=True, width="stretch")
    blocked = runs_view.blocked_ranks_frame(report)
    if len(blocked):
        with st.expander(f"Workers who ranked lines they may not take ({len(blocked)})"):
            st.dataframe(blocked, key="runs_blocked_table", hide_index=True, width="stretch")
            st.caption("A ranked line they may not take (not eligible, or forbidden) cannot be theirs: "
                       "check their tags and the line's rules, or ask them to rank again.")
    if report.silent_supervisors:
        with st.expander("Supervisors who ranked no one"):
            st.write(", ".join(report.silent_supervisors))

    # ----------------------------------------------------------------------- changes
    st.subheader("Change this run's data")
    st.caption("For what changed after import: a worker who left, a late starter, a line's places. "
               "Each change is kept in the change log with who made it and why. Scenarios saved "
               "before a change are out of date afterwards: solve them again before publishing.")
    run_store = state.store()

    # The forms outlive a visit to another page (Streamlit drops a widget's value on any page
    # that does not draw it): each edit is copied here, per run, and seeds the widget again.
    kept: dict = st.session_state.setdefault("_runs_change_form", {}).setdefault(run_id, {})

    def keep(key: str) -> None:
        kept[key] = st.session_state.get(key)

    def seed(key: str, default=None, options=None) -> None:
        """Put the kept value (else ``default``) in the widget's state before it is drawn."""
        if key in st.session_state:
            return
        value = kept.get(key, default)
        if value is None:
            return
        if options is not None and not all(v in options for v in (value if isinstance(value, list) else [value])):
            return  # e.g. a worker withdrawn meanwhile
        st.session_state[key] = value

    def apply_change(make, done: str) -> None:
        """Make one change; on success empty the forms and say so, else show why (nothing changed)."""
        try:
            make()
        except (StoreError, service.ServiceError) as exc:
            st.error(f"Nothing was changed: {exc}", icon=":material/block:")
            return
        # Emptied explicitly, so the browser shows the forms empty too (a widget's state that is
        # only forgotten keeps showing, e.g., the worker just withdrawn).
        empty = {"runs_withdraw_worker": state.CLEARED, "runs_line": state.CLEARED,
                 "runs_add_tags": [], "runs_add_ranks": []}
        for key in [k for k in st.session_state if str(k).startswith(("runs_withdraw_", "runs_add_", "runs_line"))]:
            if key in empty:
                state.set_widget(key, empty[key])
            elif str(key).endswith(("_reason", "_id", "_name")):
                state.set_widget(key, "")
            else:
                state.set_widget(key, None)  # a line's places and must-be-filled: its new values
        kept.clear()
        state.clear_reads()
        state.flash(done + " Scenarios saved before this change are now out of date.")
        st.rerun()

    t_withdraw, t_add, t_line = st.tabs(["Withdraw a worker", "Add a late worker", "Change a job line"])
    with t_withdraw:
        labels = runs_view.worker_labels(snap)
        seed("runs_withdraw_worker", options=labels)
        seed("runs_withdraw_reason")
        wid = st.selectbox("Worker", list(labels), format_func=lambda w: labels.get(w, w), index=None,
                           key="runs_withdraw_worker", placeholder="Choose the worker who leaves the run",
                           on_change=keep, args=("runs_withdraw_worker",))
        why = st.text_input("Why (kept in the change log)", key="runs_withdraw_reason",
                            placeholder="e.g. resigned before the start of the year",
                            on_change=keep, args=("runs_withdraw_reason",))
        if st.button("Withdraw from this run", key="runs_withdraw", icon=":material/person_remove:"):
            if wid is None:
                st.error("Choose the worker to withdraw.")
            elif not why.strip():
                st.error("Say why the worker is withdrawn: the reason is kept in the change log.")
            else:
                apply_change(
                    lambda: service.withdraw_worker(run_store, run_id, wid, reason=why, changed_by=state.recorded_by()),
                    f"Withdrew {labels.get(wid, wid)} from the run.",
                )
    with t_add:
        lines_by_id = runs_view.line_labels(snap)
        tag_options = sorted(set(runs_view.known_tags(snap)) | set(kept.get("runs_add_tags") or []))
        for key in ("runs_add_id", "runs_add_name", "runs_add_reason"):
            seed(key)
        seed("runs_add_tags", options=tag_options)
        seed("runs_add_ranks", options=lines_by_id)
        c1, c2 = st.columns(2)
        new_id = c1.text_input("Worker id", key="runs_add_id", placeholder="e.g. w141",
                               help="The id this worker's rankings and allocation will use; new to the run.",
                               on_change=keep, args=("runs_add_id",))
        new_name = c2.text_input("Name", key="runs_add_name", on_change=keep, args=("runs_add_name",))
        tags = st.multiselect("Tags", tag_options, key="runs_add_tags", accept_new_options=True,
                              help="The tags the lines' rules look at; type a new one to add it.",
                              on_change=keep, args=("runs_add_tags",))
        ranked = st.multiselect("Job lines they rank, in order of preference", list(lines_by_id),
                                format_func=lambda j: lines_by_id.get(j, j), key="runs_add_ranks",
                                help="The first line picked is their first choice, the next their second, and so on.",
                                on_change=keep, args=("runs_add_ranks",))
        why_add = st.text_input("Why (kept in the change log)", key="runs_add_reason",
                                placeholder="e.g. starts in March after parental leave",
                                on_change=keep, args=("runs_add_reason",))
        if st.button("Add to this run", key="runs_add", icon=":material/person_add:"):
            if not new_id.strip():
                st.error("Give the late worker an id.")
            elif not why_add.strip():
                st.error("Say why the worker is added: the reason is kept in the change log.")
            else:
                apply_change(
                    lambda: service.add_worker(
                        run_store, run_id,
                        service.late_worker(new_id, new_name, list(tags), [(j, float(k)) for k, j in enumerate(ranked, 1)]),
                        reason=why_add, changed_by=state.recorded_by()),
                    f"Added {new_name.strip() or new_id.strip()} ({new_id.strip()}) to the run.",
                )
    with t_line:
        seed("runs_line", options=lines_by_id)
        line_id = st.selectbox("Job line", list(lines_by_id), format_func=lambda j: lines_by_id.get(j, j),
                               index=None, key="runs_line", placeholder="Choose the job line to change",
                               on_change=keep, args=("runs_line",))
        if line_id is not None:
            line = next(x for x in snap.job_lines if x.id == line_id)
            # Keyed by line: choosing another line starts from that line's own values.
            places_key, must_key = f"runs_line_places_{line_id}", f"runs_line_must_{line_id}"
            seed(places_key, float(line.max_n_workers))
            seed(must_key, bool(line.must_have_workers))
            seed("runs_line_reason")
            c1, c2 = st.columns(2)
            # No min_value: a bounded box keeps its last good value when -1 is typed, and Save
            # would write that value while the box shows -1 (runs_view.places_problem names it).
            # Nor a whole-number box: the browser rounded 2.5 to 2 and Save wrote 2 without a word.
            places = c1.number_input("Places", value=None, step=1.0, format="%g", key=places_key,
                                     help="How many workers the line takes (a whole number).",
                                     on_change=keep, args=(places_key,))
            must = c2.checkbox("Must be filled", key=must_key, on_change=keep, args=(must_key,))
            why_line = st.text_input("Why (kept in the change log)", key="runs_line_reason",
                                     placeholder="e.g. a second post was funded",
                                     on_change=keep, args=("runs_line_reason",))
            if st.button("Save the change to this line", key="runs_line_save", icon=":material/save:"):
                if bad_places := runs_view.places_problem(places, layout.md(lines_by_id[line_id])):
                    st.error(bad_places)
                elif (int(places), bool(must)) == (line.max_n_workers, line.must_have_workers):
                    st.error(f"Job line {layout.md(lines_by_id[line_id])} already has these values: change its places or whether it must be filled.")
                elif not why_line.strip():
                    st.error("Say why the line changes: the reason is kept in the change log.")
                else:
                    apply_change(
                        lambda: service.set_job_line(
                            run_store, run_id, line_id, reason=why_line,
                            max_n_workers=int(places) if int(places) != line.max_n_workers else None,
                            must_have_workers=bool(must) if bool(must) != line.must_have_workers else None,
                            changed_by=state.recorded_by()),
                        f"Changed job line {lines_by_id[line_id]}.",
                    )

    st.markdown("**Change log**")
    log = state.guarded(lambda: service.run_changes(run_store, run_id), "The run's change log could not be read")
    if log:
        st.dataframe(runs_view.change_log_frame(log, state.who_label), key="runs_change_log", hide_index=True,
                     width="stretch", column_config={"What": st.column_config.TextColumn(width="large")})
    else:
        st.caption("No changes since the run was imported.")

    st.subheader("Download this run")
    # Each file is made when its button is clicked, not on every rerun of the page.
    d1, d2 = st.columns(2)
    d1.download_button(
        "Run snapshot (JSON)",
        data=lambda: snap.to_json().encode("utf-8") + b"\n",
        file_name=f"{(snap.run.id or 'run')}-snapshot.json",
        mime="application/json",
        key="runs_download_json",
        on_click="ignore",
        help="The run's whole input in one file: to keep, to share, or to import again.",
    )
    d2.download_button(
        "Run workbook (XLSX)",
        data=lambda: service.export_run(run_store, run_id, format="xlsx"),
        file_name=f"{(snap.run.id or 'run')}.xlsx",
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        key="runs_download_xlsx",
        on_click="ignore",
        help="The same data as a workbook, one sheet per table, to edit and import again.",
    )

# --------------------------------------------------------------------------- import
st.header("Import a run")
st.caption("A run snapshot (.json) or a workbook (.xlsx) becomes a new run. Nothing existing is changed.")
upload = st.file_uploader("Snapshot or workbook", type=["json", "xlsx"], key="runs_upload")
name = st.text_input("Name for the new run (optional)", key="runs_import_name", placeholder="e.g. 2028 PGY1 intake")
if st.button("Import as a new run", key="runs_import", type="primary", disabled=upload is None):
    suffix = Path(upload.name).suffix.lower()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(upload.getvalue())
        try:
            snap_in = service.read_snapshot_file(path, label=upload.name)
        except SnapshotError as exc:
            layout.show_messages(f"{layout.md(upload.name)} cannot be imported. Fix these in the file, then upload it again:", exc.messages)
            st.stop()
        except service.ServiceError as exc:
            st.error(str(exc).replace("upload", Path(upload.name).stem, 1))
            st.stop()
    new_id = state.guarded(
        lambda: service.import_snapshot(state.store(), snap_in, name=name.strip() or None, source_file=upload.name),
        f"{upload.name} could not be stored",
    )
    state.clear_reads()
    state.select_run(new_id)
    state.flash(f"Imported {layout.md(upload.name)} as a new run with {len(snap_in.workers)} workers; it is now the current run.")
    st.rerun()
