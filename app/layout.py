"""What every page shares: the sidebar (current run and scenario) and the page preamble."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import state
import streamlit as st

from allocator.service import RunSummary
from allocator.snapshot import RunSnapshot

#: The pages, by short name, filled in by the entry script (for st.page_link).
PAGES: dict[str, Any] = {}

STATUS_WORDS = {
    "pending": "waiting to be solved",
    "running": "being solved",
    "complete": "complete",
    "failed": "failed",
}
RESULT_WORDS = {
    "optimal": "best possible (proven)",
    "feasible": "good, not proven best",
    "infeasible": "impossible as set up",
    "no_solution": "no allocation in time",
}


#: The engine's phases, as the progress panel names them.
PHASE_WORDS = {
    "checks": "Checking the data",
    "flow": "Finding the best allocation",
    "pruning": "Narrowing the search",
    "stability search": "Searching for a stable allocation",
    "tie-break": "Choosing among equally good allocations",
    "diagnosis": "Working out why no allocation fits",
    "stability diagnosis": "Working out why no stable allocation fits",
    "rules diagnosis": "Working out which couples or quotas cannot all hold",
    "business rules": "Finding the best allocation that keeps couples, quotas and priority tiers",
}

# Only what starts formatting mid-sentence (emphasis, links, HTML, code, colours, maths, tables).
_MD_SPECIAL = set("\\`*_[]<>~$:|#")


def count(n: int, one: str, many: str | None = None) -> str:
    """A count in words: ``1 worker``, ``2 workers``, ``1,500 workers`` (never ``worker(s)``)."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def md(text: object) -> str:
    """Text from data (a run, scenario or worker name) made safe to put inside markdown."""
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in str(text))


def unique_labels(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Labels by id, made unique: a label shared by several ids gets the id added.

    Select boxes send back the label the planner picked, so two runs (or scenarios, or lines)
    with the same label would be indistinguishable: picking one could open the other.
    """
    counts: dict[str, int] = {}
    for _, label in pairs:
        counts[label] = counts.get(label, 0) + 1
    out = {}
    for i, label in pairs:
        out[i] = label if counts[label] == 1 else f"{label} [{i[:8]}]"
    return out


def run_label(r: RunSummary) -> str:
    """The run as the pickers name it: short, so the sidebar shows it whole (details go below)."""
    tail = " · published" if r.published else ""
    return f"{r.name or r.id}{tail}"


def run_details(r: RunSummary) -> str:
    """Under the run picker: its size, whether its allocation is published, and when and from
    what file it was imported (so two runs with the same name are told apart)."""
    where = "published" if r.published else "not published yet"
    source = f" from {r.source_file}" if r.source_file else ""
    return (f"Imported {r.imported_at.astimezone().strftime('%d %b %Y, %H:%M')}{source}  \n"
            f"{r.n_workers} workers · {r.n_job_lines} job lines · {where}")


def sidebar() -> None:
    """Current run and scenario, on every page. Chosen here once, used everywhere."""
    sb = st.sidebar
    state.sync_draft()  # before anything reads the draft: the edits of the run just made
    runs = state.guarded(state.runs, "The list of runs could not be read")
    ids = [r.id for r in runs]
    by_id = {r.id: r for r in runs}
    run_labels = unique_labels([(r.id, run_label(r)) for r in runs])
    if not ids:
        state.select_run(None)
        sb.info("No runs yet. Import one on the Runs page.")
        return
    current = state.current_run_id()
    if current not in by_id:
        current = ids[0]
        state.select_run(current)
    # Set the picker from code when the run changed *or its label did* (published, renamed):
    # the browser keeps showing the label it was last sent until the value is sent again.
    shown = run_labels.get(current, current)
    if st.session_state.get("sidebar_run") != current or st.session_state.get("_sidebar_run_label") != shown:
        st.session_state["sidebar_run"] = current
        st.session_state["_sidebar_run_label"] = shown

    def on_run_change() -> None:
        state.select_run(st.session_state["sidebar_run"])

    sb.selectbox(
        "Current run",
        ids,
        key="sidebar_run",
        format_func=lambda i: run_labels.get(i, i),
        on_change=on_run_change,
        help="The run every page works on. Choose it here or on the Runs page.",
    )
    sb.caption(md(run_details(by_id[current])))

    d = st.session_state.get("draft")
    if d is None or d.run_id != current:
        try:  # the draft from the first page on, so the scenario is named on every page
            d = state.draft(state.run_data(current)[0])
        except Exception:  # noqa: BLE001 - the page says what is wrong with the run
            d = None
    saved = state.guarded(lambda: state.scenarios(current), "The saved scenarios could not be read")
    saved_ids = [s.id for s in saved]
    by_sid = {s.id: s for s in saved}
    sc_labels = unique_labels([(s.id, _scenario_label(s)) for s in saved])
    name = d.name if d is not None and d.run_id == current else None
    res = state.current_result()
    job = state.active_job()
    dirty = bool(name) and state.draft_dirty(d)
    if name:
        sb.markdown(f"**Scenario:** {md(name)}  \n:gray[{scenario_status(name, res, job is not None, dirty, _solved_as_shown(d, res))}]")
        if dirty:
            sb.markdown(":orange[:material/edit: **Unsaved changes**] · save them on the Scenario page, "
                        "or start again from the run there.")
    options = [""] + saved_ids
    loaded = d.loaded_from if d is not None else None
    wanted = loaded if loaded in by_sid else ""
    shown_sc = sc_labels.get(wanted, "")
    if st.session_state.get("sidebar_scenario") != wanted or st.session_state.get("_sidebar_scenario_label") != shown_sc:
        st.session_state["sidebar_scenario"] = wanted
        st.session_state["_sidebar_scenario_label"] = shown_sc

    def on_scenario_change() -> None:
        sid = st.session_state.get("sidebar_scenario")
        if sid and sid in by_sid:
            state.sync_draft()
            if state.draft_dirty():
                st.session_state["_confirm_open"] = sid  # ask first: opening it drops the edits
            else:
                state.load_scenario(by_sid[sid])

    sb.selectbox(
        "Open a saved scenario",
        options,
        key="sidebar_scenario",
        format_func=lambda s: "—" if not s else sc_labels.get(s, "?"),
        on_change=on_scenario_change,
        help="Loads its settings and changes into the Scenario page and its result into Results.",
    )
    pending = st.session_state.get("_confirm_open")
    if pending in by_sid:
        sb.warning(f"Open '{md(by_sid[pending].name)}'? The unsaved changes to '{md(name or '')}' will be lost.")
        c1, c2 = sb.columns(2)
        c1.button("Open it", key="sidebar_open_confirm", on_click=state.load_scenario, args=(by_sid[pending],),
                  help="Drop the unsaved changes and open the saved scenario.")
        c2.button("Keep editing", key="sidebar_open_cancel",
                  on_click=lambda: st.session_state.pop("_confirm_open", None))
    elif pending is not None:
        st.session_state.pop("_confirm_open", None)
    if job:
        p = state.job_progress()
        if p is not None and not p.finished:
            if p.status == "queued":
                sb.caption(f"Waiting for the solver: {count(p.queue_position, 'solve')} ahead.")
            else:
                sb.caption(f"Solving {job.name}…")


def scenario_status(name: str, res: dict | None, solving: bool, dirty: bool, solved_as_shown: bool = True) -> str:
    """Under the scenario's name in the sidebar: where the draft stands, in a few words.

    ``solved_as_shown``: the current result was solved with the draft's own rules.
    """
    if solving:
        return "solving…"
    if res and res.get("name") == name and solved_as_shown:
        result = res.get("result") or {}
        saved = "saved" if res.get("saved_id") and not dirty else "not saved yet"
        if result.get("status") == "infeasible":
            return f"impossible as set up, {saved}"
        if not result.get("allocations"):
            return f"no allocation found, {saved}"
        return f"solved, {saved}"
    return "not solved yet"


def _solved_as_shown(d: state.ScenarioDraft, res: dict | None) -> bool:
    from allocator.scenario import ScenarioOverrides
    from allocator.snapshot import SnapshotError

    if not res:
        return False
    try:
        same = (ScenarioOverrides.parse(res.get("overrides")).to_dict()
                == ScenarioOverrides.parse(d.overrides).to_dict())
    except SnapshotError:
        return False
    return same and res.get("settings") == d.settings


def outcome(name: str, status: str | None, stopped: bool, elapsed: float, has_allocation: bool) -> tuple[str, str]:
    """The line shown where Solve was pressed, and the status box's state (complete or error).

    A solve that was stopped after the proof came in is a finished solve ("best possible,
    proven"), never "stopped after ... (proven)"; a stop before the proof says not proven.
    """
    who = f"'{md(name)}'"
    t = f"{elapsed:.1f} s"
    if status == "optimal":
        return f"{who} solved in {t}: best possible, proven", "complete"
    if status == "feasible" and has_allocation:
        if stopped:
            return f"{who} stopped after {t}: a good allocation, not proven the best possible", "complete"
        # A stable or tiered solve stops at the work its time limit allows, often well before
        # the clock: "the time limit came first" read oddly beside "solved in 1.7 s" of 5 s.
        return (f"{who} solved in {t}: a good allocation, not proven the best possible "
                "(the search this time limit allows ended first: a longer limit searches further)"), "complete"
    if status == "infeasible":
        return f"{who} is impossible as set up (found in {t}): no allocation meets every rule", "error"
    if stopped:
        return f"{who} stopped after {t}, before any allocation was found", "error"
    return f"{who}: no allocation found within the time limit ({t})", "error"


def named_list(label: str, ids: list[str], names: dict[str, str], limit: int = 30, escape=md) -> str:
    """``Workers: Ana Ruiz (w1), Ben Ode (w2) … and 3 more``: ids named as the tables show them.

    A diagnosis lists the workers and lines it involves by id; beside it the planner reads
    names everywhere else. Names and ids go through ``escape`` (markdown-safe by default).
    """
    shown = [f"{escape(names[i])} ({escape(i)})" if names.get(i) and names[i] != i else escape(i)
             for i in ids[:limit]]
    more = f" … and {len(ids) - limit} more" if len(ids) > limit else ""
    return f"{label}: " + ", ".join(shown) + more


def unproven_words(result: dict[str, Any]) -> str:
    """:func:`publishing.unproven_words` (one wording for every page)."""
    import publishing

    return publishing.unproven_words(result)


def _scenario_label(sc: Any) -> str:
    if sc is None:
        return "?"
    # Short enough for the sidebar; two saved under one name get their id added (unique_labels).
    status = (sc.result or {}).get("status")
    return f"{sc.name} · {RESULT_WORDS.get(status, 'not solved')}"


@dataclass
class RunContext:
    summary: RunSummary
    snapshot: RunSnapshot
    fingerprint: str


def require_run() -> RunContext:
    """The current run's data, or a pointer to the Runs page and a stop."""
    run_id = state.current_run_id()
    if not run_id:
        st.info("There is no run to work on yet. Import one on the Runs page.")
        link("runs", "Go to Runs")
        st.stop()
    # The run's data may have changed elsewhere: one cheap query, then the cache is current.
    state.guarded(lambda: state.drop_reads_if_run_changed(run_id), "The run could not be read")
    runs = {r.id: r for r in state.guarded(state.runs, "The list of runs could not be read")}
    if run_id not in runs:
        state.select_run(None)
        st.warning("The run you had open is no longer there. Choose another in the sidebar.")
        st.stop()
    snap, fp = state.guarded(lambda: state.run_data(run_id), "The run could not be loaded")
    return RunContext(runs[run_id], snap, fp)


def show_messages(title: str, messages: list[str], *, limit: int = 30) -> None:
    """An error box: a title and one bullet per message (each names its row or entry)."""
    shown = messages[:limit]
    more = f"\n\n…and {len(messages) - limit} more." if len(messages) > limit else ""
    st.error(f"**{title}**\n\n" + "\n".join(f"- {m}" for m in shown) + more)


def link(page: str, label: str, icon: str | None = None) -> None:
    """A link to another page of the dashboard (by short name: runs, scenario, results, ...)."""
    target = PAGES.get(page)
    if target is not None:
        st.page_link(target, label=label, icon=icon)
