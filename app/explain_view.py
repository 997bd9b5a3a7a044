"""A worker's explanation, every worker's statement, and a move tried by hand: what the Results
and Eligibility pages show of :mod:`allocator.explain` and :mod:`allocator.statements`.

Plain functions (tested without Streamlit) and a few cached wrappers. The dashboard keeps a
result as its JSON dict; the explanations need a :class:`~allocator.result.Result` with its
problem attached, built once per result (:func:`result_object`) from the scenario's problem
(``state.problem_for(state.scenario_snapshot(...))``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from allocator import explain, statements
from allocator.result import Result

#: The reasons of explanations.md, in planners' words (the table's "Why not" column).
REASON_WORDS = {
    "ineligible": "not eligible",
    "forbidden": "forbidden",
    "pinned": "pinned elsewhere",
    "price": "would cost more",
    "impossible": "cannot be given",
}

SEED_WORDS = "decided by the tie-break seed"


# --------------------------------------------------------------------------- the result as an object


def result_object(result: Mapping[str, Any], problem) -> Result | None:
    """The dashboard's result dict as a :class:`Result` with ``problem`` and its assignment.

    ``None`` when it has no allocation or does not fit ``problem`` (the run changed since).
    """
    allocations = result.get("allocations") or []
    if problem is None or not allocations or result.get("status") not in ("optimal", "feasible"):
        return None
    by_worker = {a["worker_id"]: a["job_line_id"] for a in allocations}
    if set(by_worker) != set(problem.worker_ids) or any(j not in problem.line_index for j in by_worker.values()):
        return None
    a = np.array([problem.line_index[by_worker[w]] for w in problem.worker_ids], dtype=np.int64)
    return dataclasses.replace(Result.from_dict(dict(result)), problem=problem, assignment=a)


@st.cache_resource(max_entries=8, show_spinner=False)
def cached_result(rkey: str, problem_fp: str, _result, _problem) -> Result | None:
    """:func:`result_object`, once per result and scenario (shared, read-only)."""
    return result_object(_result, _problem)


@st.cache_data(max_entries=256, show_spinner=False)
def worker_explanation(rkey: str, problem_fp: str, worker_id: str, _res: Result) -> dict[str, Any]:
    """``allocator-explain/1`` of one worker, from the flow's optimality certificate (instant)."""
    return explain.explain_worker(_res, worker_id, method="certificate")


@st.cache_data(max_entries=256, show_spinner=False)
def choice_explanation(rkey: str, problem_fp: str, worker_id: str, line_id: str, _res: Result) -> dict[str, Any]:
    """One higher choice by a pinned re-solve: the engine's own moves (about a second)."""
    return explain.explain_choice(_res, worker_id, line_id)


# --------------------------------------------------------------------------- one worker


def seed_dependent(result: Mapping[str, Any]) -> set[str] | None:
    """The workers whose line the tie-break seed decided, or ``None`` when not known."""
    ids = result.get("seed_dependent_worker_ids")
    return None if ids is None else set(ids)


SEED_COLUMN = "Decided by seed"


def with_seed_column(table: Any, result: Mapping[str, Any]) -> Any:
    """The allocation table with a tick for each worker whose line the tie-break seed decided.

    Only when that is known: for a stable allocation, a run with links or quotas or an
    unproven one it is not worked out, and a column of empty boxes would say "not decided by
    the seed" of every worker (:func:`seed_caption` says why it is missing).
    """
    ids = seed_dependent(result)
    if ids is None:
        return table
    return table.assign(**{SEED_COLUMN: table["Worker id"].isin(ids)})


def seed_caption(result: Mapping[str, Any]) -> str:
    """What the seed-dependent count means, or why it is not known, in the planner's words."""
    ids = seed_dependent(result)
    if ids is None:
        if "seed_dependent_worker_ids" not in result:
            return ("Which outcomes the tie-break seed decided was not recorded with this result (it was solved "
                    "before the dashboard worked it out). Solve it again to see.")
        if (result.get("settings") or {}).get("stability"):
            return ("Which outcomes the tie-break seed decided is not worked out for a stable allocation "
                    "(it would take a solve per worker).")
        metrics = result.get("metrics") or {}
        if metrics.get("links") or metrics.get("quotas"):
            return ("Which outcomes the tie-break seed decided is not worked out for a run with linked workers "
                    "or quotas (it would take a solve per worker).")
        return "Which outcomes the tie-break seed decided is not known: this allocation is not proven the best."
    if not ids:
        return "No worker's line was decided by the tie-break seed: every outcome follows from the rules and ranks."
    n = len(ids)
    return (f"{n} worker{'s' if n != 1 else ''}' line{'s were' if n != 1 else ' was'} {SEED_WORDS}: another "
            "allocation, exactly as good by every rule, puts them elsewhere. Present these outcomes as a draw.")


def explanation_header(res: Result, explanation: Mapping[str, Any]) -> list[str]:
    """The statement's opening lines: their line and rank ("not ranked", never a number for a
    line they did not rank) and the cost breakdown of their pair."""
    st_ = statements.statement_for(res.problem, np.asarray(res.assignment), dict(explanation))
    n_head = 3  # line and rank, the pair's cost, its two sides (statement_for's first three lines)
    return st_.lines[:n_head]


def choices_frame(res: Result, explanation: Mapping[str, Any]) -> pd.DataFrame:
    """Each higher choice: which choice, the line, the rank given, why not, the price, in words."""
    p = res.problem
    wid = explanation["worker_id"]
    s = p.worker_index[wid]
    rows = []
    for e in explanation.get("higher_choices") or []:
        j = p.line_index[e["job_line_id"]]
        rows.append({
            "Choice": statements.choice_words(p, s, j).removeprefix("their ").capitalize(),
            "Job line": p.line_names[j],
            "Job line id": e["job_line_id"],
            "Rank given": statements.rank_words(p, s, j).removeprefix("rank "),
            "Why not": REASON_WORDS.get(e["reason"], e["reason"]),
            "Price": e.get("price"),
            "Who would move": len(e.get("moves") or []) if e["reason"] == "price" and e.get("price") is not None else None,
            "In words": statements.price_words(p, wid, e),
        })
    return pd.DataFrame(rows, columns=["Choice", "Job line", "Job line id", "Rank given", "Why not", "Price",
                                       "Who would move", "In words"])


def worker_title(res: Result, worker_id: str) -> str:
    p = res.problem
    s = p.worker_index[worker_id]
    return f"{p.worker_names[s]} ({worker_id}): {p.line_names[int(res.assignment[s])]}"


# --------------------------------------------------------------------------- every worker


#: The statement downloads: format -> (button label, file suffix, MIME type).
STATEMENT_FILES = {
    "pdf": ("Every statement (PDF)", "statements.pdf", "application/pdf"),
    "zip": ("A file per worker (ZIP)", "statements.zip", "application/zip"),
    "json": ("Statements table (JSON)", "statements.json", "application/json"),
    "xlsx": ("Statements table (XLSX)", "statements.xlsx",
             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}


@st.cache_resource(max_entries=4, show_spinner=False)
def _statements(rkey: str, problem_fp: str, _res: Result) -> list:
    return statements.build_statements(_res)


@st.cache_data(max_entries=8, show_spinner=False)
def statements_bytes(rkey: str, problem_fp: str, fmt: str, _res: Result) -> bytes:
    """Every worker's statement as one file (the statements are built once per result)."""
    return statements.statements_file(_res, fmt, _statements(rkey, problem_fp, _res))


# --------------------------------------------------------------------------- a move tried by hand


def preview(res: Result, kind: str, first: str, second: str) -> dict[str, Any]:
    """:func:`explain.preview_move` (``kind="move"``: worker, line) or ``preview_swap`` (two workers)."""
    if kind == "move":
        return explain.preview_move(None, res, first, second)
    return explain.preview_swap(None, res, first, second)


def moves_frame(res: Result, moves: list[Mapping[str, Any]]) -> pd.DataFrame:
    """Who moves in a repair: worker, from, to, with the choice they had and would have."""
    p = res.problem
    rows = []
    for m in moves:
        t = p.worker_index[m["worker_id"]]
        fr, to = p.line_index[m["from"]], p.line_index[m["to"]]
        rows.append({
            "Worker": f"{p.worker_names[t]} ({m['worker_id']})",
            "From": p.line_names[fr],
            "Their choice then": statements.choice_words(p, t, fr).removeprefix("their "),
            "To": p.line_names[to],
            "Their choice after": statements.choice_words(p, t, to).removeprefix("their "),
        })
    return pd.DataFrame(rows, columns=["Worker", "From", "Their choice then", "To", "Their choice after"])


def pins_of(pv: Mapping[str, Any]) -> list[dict[str, str]]:
    """The pins that applying a preview sets: each moved worker on the line asked for."""
    return [{"worker_id": m["worker_id"], "job_line_id": m["to"]} for m in pv.get("moves_asked") or []]


def add_pins(pins_frame: pd.DataFrame, pins: list[Mapping[str, str]], reason: str) -> pd.DataFrame:
    """The scenario's pins table with ``pins`` set, each with ``reason``.

    A worker already pinned in the scenario keeps one pin, the new one (a worker can be
    pinned to one line only). Raises ValueError when the reason is blank.
    """
    why = (reason or "").strip()
    if not why:
        raise ValueError("Give a reason for pinning: it is kept with the scenario and shown when it is published.")
    who = {p["worker_id"] for p in pins}
    keep = pins_frame[~pins_frame["Worker"].isin(who)] if len(pins_frame) else pins_frame
    new = pd.DataFrame([{"Worker": p["worker_id"], "Job line": p["job_line_id"], "Reason": why} for p in pins],
                       columns=["Worker", "Job line", "Reason"])
    keep = keep.reindex(columns=["Worker", "Job line", "Reason"])
    return pd.concat([keep, new], ignore_index=True).astype(object)


# --------------------------------------------------------------------------- drawing (Results, Eligibility)


def show_explanation(res: Result, rkey: str, problem_fp: str, worker_id: str, seed_ids: set[str] | None,
                     key: str) -> None:
    """One worker's explanation: their line and rank, the cost, each higher choice and its price.

    ``key`` prefixes the widget keys (the panel is drawn on Results; Eligibility links to it).
    """
    if worker_id not in res.problem.worker_index:
        st.warning(f"There is no worker {worker_id!r} in this result.")
        return
    p = res.problem
    s = p.worker_index[worker_id]
    # Instant without stability (the flow's certificate). With it, each higher choice is a
    # stable solve of its own (up to half a minute each): only when the planner asks.
    asked = st.session_state.get(f"{key}_stable_go") == (rkey, worker_id)
    slow = bool(p.settings.stability) and not asked
    if slow:
        x = {"worker_id": worker_id, "higher_choices": []}
    else:
        with st.spinner("Working out the price of each higher choice…"):
            x = worker_explanation(rkey, problem_fp, worker_id, res)
    with st.container(border=True, key=f"{key}_panel"):
        st.markdown(f"#### Why {_md(p.worker_names[s])} has {_md(p.line_names[int(res.assignment[s])])}")
        st.markdown("  \n".join(_md(t) for t in explanation_header(res, x)))
        if seed_ids is not None and worker_id in seed_ids:
            st.info(f"This outcome was **{SEED_WORDS}**: another allocation, exactly as good by every rule, "
                    "puts them on another line. Present it as a draw.", icon=":material/casino:")
        if slow:
            n = len(explain.higher_choices(p, s, int(res.assignment[s])))
            st.caption(f"They ranked {n} {'line' if n == 1 else 'lines'} higher. This allocation is stable, so each price is a stable "
                       "solve of its own (up to half a minute each).")
            if n and st.button("Work out why not, and at what price", key=f"{key}_stable_btn"):
                st.session_state[f"{key}_stable_go"] = (rkey, worker_id)
                st.rerun()
            return
        higher = x.get("higher_choices") or []
        if not higher:
            st.success("No line they ranked is better than this one: they got one of their best choices.")
        else:
            st.markdown("**Lines they ranked higher, and why they did not get them**")
            frame = choices_frame(res, x)
            st.markdown("\n".join(f"- **{_md(r['Choice'])}, {_md(r['Job line'])}**: {_md(r['In words'])}"
                                  for r in frame.to_dict("records")))
            st.caption("A price is the exact change of the whole allocation's total dissatisfaction if this "
                       "worker were given that line and everyone else re-allocated as well as possible; it "
                       "names one cheapest way to make room. A full line is never the reason on its own.")
            priced = [r for r in frame.to_dict("records") if r["Why not"] == REASON_WORDS["price"]]
            if priced:
                labels = {r["Job line id"]: f"{r['Choice']}: {r['Job line']}" for r in priced}
                c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
                pick = c1.selectbox("Who exactly would move for", list(labels), key=f"{key}_exact_line",
                                    format_func=lambda j: labels.get(j, j),
                                    help="Solves the run again with this worker pinned there: the allocation "
                                         "the solver itself would return (same tie-break seed).")
                if c2.button("Work it out (a new solve)", key=f"{key}_exact_go"):
                    st.session_state[f"{key}_exact"] = (rkey, worker_id, pick)
                done = st.session_state.get(f"{key}_exact")
                if done and done[:2] == (rkey, worker_id) and done[2] in labels:
                    with st.spinner("Solving with this worker pinned there…"):
                        e = choice_explanation(rkey, problem_fp, worker_id, done[2], res)
                    st.markdown(f"**Solved again:** {_md(statements.price_words(p, worker_id, e))}")
        one = statements.statement_for(p, np.asarray(res.assignment), x)
        d1, d2 = st.columns(2)
        d1.download_button("This worker's statement (PDF)", lambda: statements.statements_pdf([one], res.run_id),
                           f"statement-{worker_id}.pdf", "application/pdf", key=f"{key}_dl_pdf", on_click="ignore")
        d2.download_button("This worker's statement (text)", one.text().encode("utf-8"), f"statement-{worker_id}.txt",
                           "text/plain", key=f"{key}_dl_txt", on_click="ignore")


def _md(text: object) -> str:
    from layout import md

    return md(text)


def preview_words(res: Result, pv: Mapping[str, Any]) -> str:
    """The best repair of a preview in one sentence: its price and how many others move."""
    rep = pv.get("repair")
    if rep is None:
        return "No allocation keeps every rule with this move."
    n = len(rep.get("moves") or [])
    others = "nobody else moves" if n == 0 else f"{n} other worker{'s' if n != 1 else ''} move{'' if n != 1 else 's'}"
    price = float(rep["price"])
    cost = ("at no extra cost" if price == 0 else
            f"total dissatisfaction {price:+.6g} (doctors' side {float(rep['price_worker_side']):+.6g}, "
            f"supervisors' side {float(rep['price_preferencer_side']):+.6g})")
    proven = "" if rep.get("proven", True) else " (not proven the best within the time limit)"
    return f"Best allocation with this move: {cost}; {others}{proven}."


def apply_preview(snapshot, pv: Mapping[str, Any], reason_key: str) -> None:
    """Pin the preview's move in the scenario being edited, with the reason typed in the widget
    ``reason_key`` (a button's callback: read then, not when the button was drawn).

    A blank reason is refused (the message is kept in ``_res_ov_error`` for the page to show).
    """
    import state

    reason = str(st.session_state.get(reason_key) or "")
    try:
        d = state.draft(snapshot)
        frame = add_pins(state.draft_frames(d)["pins"], pins_of(pv), reason)
    except ValueError as exc:
        st.session_state["_res_ov_error"] = str(exc)
        return
    st.session_state.pop("_res_ov_error", None)
    state.set_draft_table(d, "pins", frame)
    state.draft(snapshot)  # its overrides now carry the pins (the sidebar, drawn next, says so)
    state.set_widget(reason_key, None)
    who = ", ".join(m["worker_id"] for m in pv.get("moves_asked") or [])
    state.flash(f"Pinned {who} in '{d.name}'. Solve it on the Scenario page to make it the result.")


def show_preview(res: Result, pv: Mapping[str, Any], snapshot, key: str) -> None:
    """A preview: what the move alone breaks, the best repair, and keeping it as a pin with a reason."""
    with st.container(border=True, key=f"{key}_panel"):
        asked = "; ".join(
            f"{res.problem.worker_names[res.problem.worker_index[m['worker_id']]]} from "
            f"{res.problem.line_names[res.problem.line_index[m['from']]]} to "
            f"{res.problem.line_names[res.problem.line_index[m['to']]]}" for m in pv.get("moves_asked") or [])
        st.markdown(f"**The move alone** ({_md(asked)}): total dissatisfaction "
                    f"{float(pv['objective']):.6g} → {float(pv['objective_move_alone']):.6g}")
        breaks = pv.get("breaks") or []
        if breaks:
            st.warning("On its own it breaks:\n" + "\n".join(f"- {_md(b['message'])}" for b in breaks))
        else:
            st.success("On its own it breaks no rule.")
        rep = pv.get("repair")
        st.markdown(f"**{_md(preview_words(res, pv))}**")
        if rep is None:
            for dg in pv.get("diagnosis") or []:
                st.error(dg.get("message", ""))
            return
        c1, c2 = st.columns(2)
        c1.metric("Price of the move", f"{float(rep['price']):+.6g}",
                  help="The best allocation with this move, against the best allocation without it: the change "
                       "of total dissatisfaction.")
        c2.metric("Other workers who move", len(rep.get("moves") or []))
        if rep.get("moves"):
            st.dataframe(moves_frame(res, rep["moves"]), key=f"{key}_moves", hide_index=True, width="stretch")
        st.text_input("Reason for this pin (required)", key=f"{key}_reason", max_chars=500,
                      placeholder="e.g. agreed with the supervisor on 12 March")
        st.button("Pin it in the scenario", key=f"{key}_apply", type="primary", on_click=apply_preview,
                  args=(snapshot, dict(pv), f"{key}_reason"),
                  help="Adds the pin, with your reason, to the scenario being edited (Scenario page, Pins).")
        err = st.session_state.pop("_res_ov_error", None)
        if err:
            st.error(err)
