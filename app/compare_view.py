"""The tables the Compare page shows, built by plain functions (tested without Streamlit).

Every column of every frame holds one type (text, or numbers with gaps as NaN): Streamlit
sends tables to the browser as Arrow, and a column that mixes numbers and text ("–") fails
that conversion and logs a traceback before Streamlit patches the column up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import headline
import pandas as pd
from editor import OWN_SITE

from allocator import kpis
from allocator.compare import (
    MOVE_SHORT,
    RunNames,
    ScenarioView,
    kpi_delta,
    kpi_table,
    kpi_value,
    rank_text,
    ranked_figures,
    what_differs,
)

NOT_RECORDED = "not recorded"
NOBODY_RANKED = "nobody on a ranked line"


def differs_frame(views: Sequence[ScenarioView], run: RunNames | None = None) -> pd.DataFrame:
    """"What differs": one row per changed setting, line, pin, forbid, priority or lifted run rule.

    Columns: ``Change`` then one per scenario, every cell text. Empty (with those columns)
    when the scenarios differ in nothing.
    """
    rows = what_differs(views, run)
    columns = ["Change", *[v.name for v in views]]
    return pd.DataFrame([{"Change": r["what"], **{v.name: r[v.name] for v in views}} for r in rows],
                        columns=columns, dtype=str)


def change_cell(key: str, delta: float | None) -> str:
    """A change with which way is better, for the headline table ("–" when unknown)."""
    text = kpis.delta_text(key, delta)
    if text is None:
        return "–"
    good = kpis.better(key, delta)
    return text + ("" if good is None else (" ▲ better" if good else " ▼ worse"))


def kpi_frame(
    views: Sequence[ScenarioView],
    sides: Mapping[str, Any],
    ranked: Any = None,
) -> tuple[pd.DataFrame, list[str]]:
    """The headline numbers side by side, as text, and why any total cost is not comparable.

    ``sides`` maps each view's name to its :class:`headline.Solved` (what decides how its
    total cost was counted); ``ranked`` is the run's ranked pairs, so that mean and worst rank
    are over workers on lines they ranked for results saved before the result recorded them.
    A number neither recorded nor computable shows as "not recorded".
    """
    base = views[0]
    table = []
    for r in kpi_table(views, ranked):
        key = r["key"]
        row = {"": kpis.label(key)}
        for i, v in enumerate(views):
            value = r[v.name]
            row[v.name] = _missing(key, v.result, ranked) if value is None and v.result else kpis.value_text(key, value)
            if i > 0:
                row[f"{v.name}: change"] = change_cell(key, r[f"{v.name} change"])
        table.append(row)
    cost_row = {"": kpis.label("objective")}
    not_comparable = []
    for i, v in enumerate(views):
        cost_row[v.name] = kpis.value_text("objective", kpi_value(v.result, "objective"))
        if i > 0:
            why = headline.cost_not_comparable(sides[v.name], sides[base.name])
            if why:
                cost_row[f"{v.name}: change"] = "not comparable (see below)"
                not_comparable.append(why)
            else:
                cost_row[f"{v.name}: change"] = change_cell("objective", kpi_delta(v.result, base.result, "objective"))
    table.append(cost_row)
    return pd.DataFrame(table).astype(str), not_comparable


def _missing(key: str, result: Mapping[str, Any], ranked: Any) -> str:
    """Why a headline number is missing: nobody to take a mean or worst rank over, or not recorded."""
    if key in ("mean_rank", "worst_rank"):
        unranked = ranked_figures(result, ranked)["workers_on_unranked_lines"]
        if unranked is not None and unranked == len(result.get("allocations") or []):
            return NOBODY_RANKED
    return NOT_RECORDED


#: Each kind of move in a narrow table cell (the page's counts use the longer words).
OUTCOME = {**MOVE_SHORT, "to_unranked": "to unranked line", "from_unranked": "from unranked line",
           "both_unranked": "both unranked"}

#: Columns of the table of moves, and the ones the page shows.
MOVE_COLUMNS = ("Worker", "From", "Rank before", "To", "Rank after", "Outcome", "Rank change", "Worker id")


def given_ranks(snapshot: Any) -> dict[tuple[str, str], float]:
    """``(worker id, job line id)`` -> the number the worker wrote for that line in ``snapshot``.

    The engine works with fractional ranks (a tie of two lines at 2 becomes 2.5 for both), but
    the planner and the worker only ever saw the number given: tables that say "the rank the
    worker gave" show this one.
    """
    return {(p.worker_id, p.job_line_id): float(p.rank) for p in snapshot.worker_preferences}


def moves_frame(moves: Sequence[Mapping[str, Any]], sites: Mapping[str, str] | None = None,
                given: Mapping[tuple[str, str], float] | None = None) -> pd.DataFrame:
    """One row per worker who moved: the line they left and the one they got, each with the
    rank they gave it ("not ranked" for a line they did not rank), and how it turned out.

    ``given`` (:func:`given_ranks`) holds the numbers the workers wrote; with it the ranks
    shown are those numbers, never the fractional rank a tie turns them into (a worker who
    ranked two lines 2 sees 2, not 2.5). Without it the move's own (fractional) rank is shown.
    When lines carry sites, each line is shown as "site · line" and the rows are grouped by
    the site moved from. ``Rank change`` is a number (NaN when either line was not ranked).
    """
    site_of = dict(sites or {})

    def rank_of(m: Mapping[str, Any], side: str) -> str:
        rank = m[f"rank_{side}"]
        if rank is not None and given is not None:
            line = m["from_line_id"] if side == "before" else m["to_line_id"]
            rank = given.get((m["worker_id"], line), rank)
        return rank_text(rank)

    def where(line_id: str, name: str) -> str:
        if line_id in site_of:
            return f"{site_of[line_id]} · {name}"
        return f"{name} ({OWN_SITE})" if site_of else name

    rows = [
        {
            "Worker": m["worker"],
            "From": where(m["from_line_id"], m["from_line"]),
            "Rank before": rank_of(m, "before"),
            "To": where(m["to_line_id"], m["to_line"]),
            "Rank after": rank_of(m, "after"),
            "Outcome": OUTCOME[m["kind"]],
            "Rank change": float("nan") if m["rank_change"] is None else float(m["rank_change"]),
            "Worker id": m["worker_id"],
        }
        for m in moves
    ]
    df = pd.DataFrame(rows, columns=list(MOVE_COLUMNS))
    df = df.astype({c: str for c in MOVE_COLUMNS if c != "Rank change"}).astype({"Rank change": float})
    if site_of:
        order = sorted(range(len(moves)), key=lambda i: site_of.get(moves[i]["from_line_id"], "\uffff"))
        df = df.iloc[order].reset_index(drop=True)
    return df


def not_counted_sentence(only_base: int, only_target: int, base: str, target: str) -> str:
    """Why some workers are left out of the moves: they are placed in one scenario only (the
    run's workers changed between the two solves). "1 worker", never "1 workers"."""
    def workers(n: int) -> str:
        return f"{n} worker" if n == 1 else f"{n} workers"

    return (f"Not counted: {workers(only_base)} placed only in {base} and {workers(only_target)} only in "
            f"{target} (the run's workers changed between the two solves).")


def nobody_moved_sentence(only_base: int, only_target: int) -> str:
    """No move between two scenarios. "Every worker" only when both place the same workers: after
    a withdrawal the caption above says who is not counted, and this must not contradict it."""
    if only_base or only_target:
        return "Nobody moved: every worker placed in both scenarios is on the same line in each."
    return "Nobody moved: both scenarios put every worker on the same line."


def unproven_note(chosen: Sequence[ScenarioView], escape=lambda s: s) -> str | None:
    """The compared scenarios not proven the best possible, each with how far from it they may be.

    The headline table set a stable allocation cut short by its time limit beside a proven one
    without a word: its numbers may still improve, so a difference may be smaller than shown.
    """
    import publishing

    open_ = [f"'{escape(v.name)}' ({publishing.unproven_words(v.result or {})})"
             for v in chosen if (v.result or {}).get("status") == "feasible"]
    if not open_:
        return None
    which = "is" if len(open_) == 1 else "are"
    return (f"Not proven the best possible: {', '.join(open_)} {which} the best found within the time limit. "
            "A longer time limit may find a better allocation, so a difference below may be smaller than shown.")
