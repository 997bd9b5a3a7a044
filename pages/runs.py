"""Runs: every run, the current one's data health, import a new run, download a run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import derived
import layout
import pandas as pd
import state
import streamlit as st

from allocator import service
from allocator.snapshot import SnapshotError

st.title("Runs")
st.caption("Every intake you can plan. Pick one to make it the current run on every page.")

if st.button("Refresh", key="runs_refresh", icon=":material/refresh:",
             help="Read the runs again from the database (they are otherwise re-read every 30 seconds)."):
    state.clear_reads()
runs = state.guarded(state.runs, "The list of runs could not be read")

# --------------------------------------------------------------------------- the table
if runs:
    table = pd.DataFrame(
        [
            {
                "Run": r.name or r.id,
                "Status": layout.STATUS_WORDS.get(r.status, r.status),
                "Workers": r.n_workers,
                "Job lines": r.n_job_lines,
                "Last solved": r.last_solved_at.astimezone().strftime("%d %b %Y, %H:%M") if r.last_solved_at else "never",
                "Published": r.published,
                "Created": r.created_at,
                "Current": r.id == state.current_run_id(),
            }
            for r in runs
        ]
    )

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
            "Created": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm"),
            "Published": st.column_config.CheckboxColumn(help="Its allocation has been written to the database."),
            "Current": st.column_config.CheckboxColumn(help="The run every page works on."),
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
    st.header(f"Data health: {layout.md(ctx.summary.name or ctx.summary.id)}")
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

    left, right = st.columns([2, 3])
    with left:
        st.subheader("How deep the rank lists go")
        st.plotly_chart(derived.depth_figure(snap_fp, report), key="runs_depth_chart", width="stretch")
        st.caption("How many workers ranked how many job lines. Red: workers who ranked none.")
    with right:
        st.subheader("Lines and who may take them")
        lines = pd.DataFrame(
            [
                {
                    "Check": ("cannot be filled" if x.cannot_fill else "short of candidates" if x.short_of_places else "ok"),
                    "Job line": x.name,
                    "Places": x.places,
                    "May take it": x.pool,
                    "Must be filled": x.must_be_filled,
                }
                for x in report.lines
            ]
        )
        order = {"cannot be filled": 0, "short of candidates": 1, "ok": 2}
        lines = lines.sort_values(["Check", "May take it"], key=lambda c: c.map(order) if c.name == "Check" else c)
        st.dataframe(lines, key="runs_lines_table", hide_index=True, width="stretch", height=320, column_config={
            "Check": st.column_config.TextColumn(width="small"),
            "Job line": st.column_config.TextColumn(width="medium"),
            "Places": st.column_config.NumberColumn(width="small"),
            "May take it": st.column_config.NumberColumn(width="small", help="Workers who may take the line (eligible, not forbidden, not pinned elsewhere)."),
            "Must be filled": st.column_config.CheckboxColumn(width="small"),
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
    if report.silent_supervisors:
        with st.expander("Supervisors who ranked no one"):
            st.write(", ".join(report.silent_supervisors))

    st.subheader("Download this run")
    # Each file is made when its button is clicked, not on every rerun of the page.
    run_store = state.store()
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
        lambda: state.store().import_snapshot(snap_in, name=name.strip() or None),
        f"{upload.name} could not be stored",
    )
    state.clear_reads()
    state.select_run(new_id)
    state.flash(f"Imported {layout.md(upload.name)} as a new run with {len(snap_in.workers)} workers; it is now the current run.")
    st.rerun()
