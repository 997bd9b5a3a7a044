"""Headline figures (KPIs): what each one means and how it is written, the same everywhere.

Each figure is defined once (:class:`Kpi`): its key in a result's metrics, the planner's label
(and a shorter one for narrow columns), what it means, which way is better, and how it is
shown. One set of functions writes every figure, so the pages, the exports (a spreadsheet cell's
value and its number format) and the Publish page cannot disagree:

- :func:`value_text` on a page; :func:`shown_value` with :func:`number_format` in a spreadsheet
  cell (the number rounded exactly as the page shows it, and the format that shows it the same);
- :func:`delta_text` for a change, :func:`better` for which way it went.

How each kind is written (values and changes alike): shares as whole percentages and their
changes in points; counts whole; a figure with fixed ``decimals`` (mean ranks, the Gini, the
total cost) with that many decimals and thousands separators; the worst rank whole, or with
its half when ranks are tied; anything else with two decimals. A change that rounds to nothing
at the shown decimals is "no change", never "+0.00".

Scenario settings are written by :func:`setting_value` / :func:`setting_text` the same way.

Plain functions, no Streamlit: the engine, the exports and the pages all import this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["share", "rank", "count", "number", "cost"]

NO_CHANGE = "no change"
MISSING = "–"


@dataclass(frozen=True)
class Kpi:
    """One headline figure.

    Attributes
    ----------
    key
        Its key in a result's ``metrics`` (``"objective"`` is the result's total cost).
    label
        What planners call it.
    better
        ``"higher"`` or ``"lower"``: which way is an improvement.
    kind
        ``"share"`` (0..1, shown as a percentage), ``"rank"``, ``"count"``, ``"number"`` or
        ``"cost"``.
    help
        What the number means, in planners' words.
    decimals
        Decimals shown, when fixed (otherwise: by ``kind``, see the module docstring).
    short_label
        A shorter label for narrow columns (the full label then leads its help).
    """

    key: str
    label: str
    better: str
    kind: Kind
    help: str = ""
    decimals: int | None = None
    short_label: str | None = None


#: Every headline figure, once.
DEFINITIONS: tuple[Kpi, ...] = (
    Kpi("first_choice_share", "Got first choice", "higher", "share", "Share of workers on their first choice."),
    Kpi("top3_choice_share", "Got a top-three choice", "higher", "share",
        "Share of workers on one of their first three choices.", short_label="Got top three"),
    Kpi("mean_rank", "Mean rank", "lower", "rank",
        "Average rank workers gave the line they got (1 = first choice), over the workers on lines they "
        "ranked; workers on a line they did not rank are counted apart.", decimals=2),
    Kpi("worst_rank", "Worst rank", "lower", "rank",
        "The lowest rank anyone gave the line they got, over the workers on lines they ranked."),
    Kpi("workers_on_unranked_lines", "On a line they did not rank", "lower", "count",
        "Workers placed on a line they did not rank."),
    # The honest rank figures (allocation-model.md, "What a solution reports"): mean and worst rank
    # over the workers on lines they ranked, and beside them the workers on lines they did not rank.
    # They win over the older mean_rank and worst_rank, which count a line nobody ranked at its
    # shared rank.
    Kpi("mean_rank_ranked", "Mean rank", "lower", "rank",
        "Average rank workers gave the line they got (1 = first choice), over the workers on a line "
        "they ranked. Workers on a line they did not rank have no rank: they are counted apart, "
        "under 'Not ranked'.", decimals=2),
    Kpi("worst_rank_ranked", "Worst rank", "lower", "rank",
        "The lowest rank any worker gave the line they got, over the workers on a line they ranked. "
        "Workers on a line they did not rank are counted apart, under 'Not ranked'."),
    Kpi("unranked_count", "Not ranked", "lower", "count",
        "Workers placed on a line they did not rank. They have no rank for it, so they are not in "
        "the mean or the worst rank."),
    Kpi("vacancies", "Vacancies", "lower", "count", "Places left empty across all lines."),
    Kpi("mandatory_lines_filled", "Must-be-filled lines filled", "higher", "count",
        "Lines that must be filled and have at least one worker."),
    Kpi("blocking_pairs", "Blocking pairs", "lower", "count",
        "Worker and line that would both rather be together than where they are."),
    Kpi("worker_dissatisfaction_gini", "Unevenness (Gini)", "lower", "number",
        "0 = everyone equally satisfied; towards 1 = a few carry all the disappointment.", decimals=2),
    Kpi("preferencer_mean_rank_ranked", "Supervisors' mean rank", "lower", "rank",
        "Average rank supervisors gave the workers they got, over the workers they ranked "
        "(a worker a line's supervisors did not rank has no rank from them).", decimals=2),
    Kpi("objective", "Total cost", "lower", "cost",
        "What the solve made as small as possible: workers' and supervisors' disappointment "
        "combined, counted with this scenario's supervisor voice and how much low choices hurt.",
        decimals=2),
)
KPI_BY_KEY: dict[str, Kpi] = {k.key: k for k in DEFINITIONS}

#: The headline numbers of one result, in the order the Results page and the exports give them.
RESULT_KPIS: tuple[str, ...] = (
    "first_choice_share", "top3_choice_share", "mean_rank_ranked", "worst_rank_ranked", "unranked_count",
    "vacancies", "mandatory_lines_filled", "blocking_pairs", "worker_dissatisfaction_gini",
    "preferencer_mean_rank_ranked",
)

#: The headline numbers the Compare page sets side by side, in its order.
COMPARED: tuple[Kpi, ...] = tuple(KPI_BY_KEY[k] for k in (
    "first_choice_share", "top3_choice_share", "mean_rank", "worst_rank", "workers_on_unranked_lines",
    "vacancies", "mandatory_lines_filled", "blocking_pairs", "worker_dissatisfaction_gini",
    "preferencer_mean_rank_ranked",
))

#: The honest rank figures' metrics keys.
RANK_KEYS: tuple[str, ...] = ("mean_rank_ranked", "worst_rank_ranked", "unranked_count")


def _rule(key: str) -> tuple[str, int | None]:
    kpi = KPI_BY_KEY.get(key)
    return (kpi.kind, kpi.decimals) if kpi is not None else ("number", None)


def label(key: str, *, short: bool = False) -> str:
    """The figure's label (its short form for narrow columns when ``short``); unknown keys as given."""
    kpi = KPI_BY_KEY.get(key)
    if kpi is None:
        return key
    return kpi.short_label if short and kpi.short_label else kpi.label


def help_text(key: str) -> str:
    """What the number means; starts with the full label when the figure has a short one."""
    kpi = KPI_BY_KEY.get(key)
    if kpi is None:
        return ""
    if kpi.short_label:
        return f"{kpi.label}: {kpi.help[0].lower()}{kpi.help[1:]}" if kpi.help else kpi.label
    return kpi.help


def shown_value(key: str, value: float | None) -> float | int | None:
    """The number exactly as pages show it, still a number (for a spreadsheet cell).

    Shares keep two decimals (a whole percentage), counts are whole, the rest keep the decimals
    :func:`value_text` shows.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    value = float(value)
    kind, decimals = _rule(key)
    if kind == "share":
        return round(value, 2)
    if kind == "count":
        return int(round(value))
    if decimals is not None:
        return round(value, decimals)
    if kind == "rank":
        return value if value.is_integer() else round(value, 1)
    return round(value, 2)


def number_format(key: str) -> str:
    """The spreadsheet number format that shows :func:`shown_value` as :func:`value_text` does."""
    kind, decimals = _rule(key)
    if kind == "share":
        return "0%"
    if kind == "count":
        return "0"
    if decimals is not None:
        return "#,##0." + "0" * decimals if decimals else "#,##0"
    if kind == "rank":
        return "General"  # 36 or 12.5, as the page shows it
    return "0.00"


def value_text(key: str, value: float | None) -> str:
    """A headline number as every page, export and the Publish page write it ("–" when there is none)."""
    shown = shown_value(key, value)
    if shown is None:
        return MISSING
    kind, decimals = _rule(key)
    if kind == "share":
        return f"{shown:.0%}"
    if kind == "count":
        return f"{shown}"
    if decimals is not None:
        return f"{shown:,.{decimals}f}"
    if kind == "rank":
        # Worst ranks are whole, or end in .5 when a worker tied two lines.
        return f"{shown:.0f}" if float(shown).is_integer() else f"{shown:.1f}"
    return f"{shown:.2f}"


def _rounded(key: str, delta: float) -> float:
    kind, decimals = _rule(key)
    if kind == "share":
        return round(delta * 100)
    if kind == "count":
        return round(delta)
    if decimals is not None:
        return round(delta, decimals)
    return round(delta, 1) if kind == "rank" else round(delta, 2)


def is_no_change(key: str, delta: float | None) -> bool:
    """True when the change rounds to nothing at the decimals the page shows."""
    return delta is not None and _rounded(key, float(delta)) == 0


def delta_text(key: str, delta: float | None) -> str | None:
    """A change as planners read it: "+19 pts", "-2", "+0.02", "no change"; None when unknown."""
    if delta is None:
        return None
    delta = float(delta)
    if is_no_change(key, delta):
        return NO_CHANGE
    kind, decimals = _rule(key)
    if kind == "share":
        return f"{delta * 100:+.0f} pts"
    if kind == "count":
        return f"{delta:+.0f}"
    if decimals is not None:
        return f"{delta:+,.{decimals}f}"
    if kind == "rank":
        return f"{delta:+.0f}" if float(delta).is_integer() else f"{delta:+.1f}"
    return f"{delta:+.2f}"


def higher_is_better(key: str) -> bool:
    """Whether a larger number is an improvement (unknown figures, like costs, are better lower)."""
    kpi = KPI_BY_KEY.get(key)
    return kpi is not None and kpi.better == "higher"


def better(key: str, delta: float | None) -> bool | None:
    """Whether the change is an improvement (None for no change or unknown)."""
    if delta is None or is_no_change(key, delta):
        return None
    return (delta > 0) == higher_is_better(key)


# --------------------------------------------------------------------------- settings


def setting_value(key: str, value: Any) -> tuple[Any, str | None]:
    """A scenario setting as pages and exports show it: ``(value, spreadsheet number format)``.

    The supervisor voice is a share (0.3 shows as 30 %), yes/no settings are words, the rest
    plain numbers. A page shows :func:`setting_text`; a spreadsheet stores the value with the
    format, so both read the same.
    """
    if isinstance(value, bool):
        return ("yes" if value else "no"), None
    if key == "preferencer_weight" and isinstance(value, int | float):
        return float(value), "0%"
    return value, None


def setting_text(key: str, value: Any) -> str:
    """:func:`setting_value` as text on a page."""
    v, fmt = setting_value(key, value)
    if fmt == "0%":
        return f"{v:.0%}"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def ordinal(k: int) -> str:
    """``k`` as an English ordinal: 1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, 21st, 111th.

    The one spelling of "their 2nd choice" for the results, the statements and the exports.
    """
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


# --------------------------------------------------------------------------- the proof's gap


def gap_share(objective: float | None, bound: float | None) -> float | None:
    """How far above the best possible an allocation can at most be, as a share of the bound.

    ``(objective - bound) / bound``: the allocation's total dissatisfaction is at most this
    share above the best any allocation can reach (0 when proven). ``None`` when either figure
    is missing or the bound is not positive (no share can be said then).
    """
    if objective is None or bound is None or bound <= 0:
        return None
    return max(float(objective) - float(bound), 0.0) / float(bound)


def gap_text(objective: float | None, bound: float | None) -> str:
    """The gap in words: "at most 2.6 % above the best possible" (or why it is not known)."""
    share = gap_share(objective, bound)
    if share is None:
        return "how far from the best possible is not known"
    if share == 0:
        return "the best possible (proven)"
    pct = 100 * share
    shown = f"{pct:.1f}" if pct >= 0.1 else f"{pct:.2g}"
    return f"at most {shown} % above the best possible"


def level_name(level: dict[str, Any]) -> str:
    """A level of the lexicographic objective in planners' words (``metrics["levels"]`` entry)."""
    if level.get("objective") == "moves":
        return "fewest moves from the previous allocation"
    prio = level.get("priority")
    # The pages' words for a priority tier ("Tier 1", "No tier" on Results and Scenario).
    return f"tier {prio} workers" if prio is not None else "workers without a tier"


def _joined(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def levels_text(levels: list[dict[str, Any]] | None) -> str | None:
    """What a solve stopped early proved of a lexicographic objective, in words; ``None`` if
    there is nothing to say (no levels, or every level proven).

    E.g. "tier 1 workers: the best possible (proven); workers without a tier: the best
    found, not proven". A later level is only improved within the optimum of the earlier ones.
    """
    if not levels or all(bool(lv.get("proven")) for lv in levels):
        return None
    done = [level_name(lv) for lv in levels if lv.get("proven")]
    open_ = [level_name(lv) for lv in levels if not lv.get("proven")]
    parts = []
    if done:
        parts.append(f"{_joined(done)}: the best possible (proven)")
    parts.append(f"{_joined(open_)}: the best found, not proven")
    return "; ".join(parts)
