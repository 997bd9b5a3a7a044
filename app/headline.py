"""Headline numbers as planners read them, the same on every page.

- One number of decimals per quantity wherever it shows (a value, its change, a table cell):
  shares as whole percentages and their changes in points, counts whole, mean ranks and the
  Gini with two decimals, the worst rank whole (or with its half when ranks are tied), the
  total cost with two decimals and thousands separators.
- A change that rounds to nothing at the shown decimals is "no change", never "+0.00".
- :func:`cost_not_comparable`: two total costs may only be compared when they were counted
  the same way (same run data, supervisor voice, how much low choices hurt and organisation
  priorities). Otherwise the reason, in planners' words.

Plain functions (no Streamlit), tested directly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from allocator.compare import KPI_BY_KEY
from allocator.metrics import rank_metrics_of_result

NO_CHANGE = "no change"

#: Decimals shown per quantity (values and changes alike).
DECIMALS: dict[str, int] = {
    "mean_rank": 2,
    "mean_rank_ranked": 2,
    "preferencer_mean_rank": 2,
    "worker_dissatisfaction_gini": 2,
    "objective": 2,
}


@dataclass(frozen=True)
class _Kpi:
    label: str
    better: str  # "higher" or "lower"
    kind: str  # "share", "rank", "count" or "number"
    help: str


#: The honest rank figures (allocation-model.md, "What a solution reports"): mean and worst rank
#: over the workers on lines they ranked, and beside them the workers on lines they did not rank.
#: Defined here so that every page and export words them the same; they win over the older
#: ``mean_rank`` and ``worst_rank``, which count a line nobody ranked at its shared rank.
RANK_KPIS: dict[str, _Kpi] = {
    "mean_rank_ranked": _Kpi(
        "Mean rank", "lower", "rank",
        "Average rank workers gave the line they got (1 = first choice), over the workers on a line "
        "they ranked. Workers on a line they did not rank have no rank: they are counted apart, "
        "under 'Not ranked'."),
    "worst_rank_ranked": _Kpi(
        "Worst rank", "lower", "rank",
        "The lowest rank any worker gave the line they got, over the workers on a line they ranked. "
        "Workers on a line they did not rank are counted apart, under 'Not ranked'."),
    "unranked_count": _Kpi(
        "Not ranked", "lower", "count",
        "Workers placed on a line they did not rank. They have no rank for it, so they are not in "
        "the mean or the worst rank."),
}

#: The headline numbers of one result, in the order the Results page and the exports give them.
RESULT_KPIS: tuple[str, ...] = (
    "first_choice_share", "top3_choice_share", "mean_rank_ranked", "worst_rank_ranked", "unranked_count",
    "vacancies", "mandatory_lines_filled", "blocking_pairs", "worker_dissatisfaction_gini",
    "preferencer_mean_rank",
)

RANK_KEYS = tuple(RANK_KPIS)


def with_rank_metrics(result: Mapping[str, Any] | None, snapshot: Any) -> Mapping[str, Any] | None:
    """``result`` with the honest rank figures filled in when it was saved before they existed.

    Worked out from its allocation rows and the run's preferences (``snapshot``); a result that
    has them, or has no allocation, comes back as it is.
    """
    if not result or not result.get("allocations"):
        return result
    metrics = result.get("metrics") or {}
    if all(k in metrics for k in RANK_KEYS):
        return result
    out = dict(result)
    out["metrics"] = {**metrics, **rank_metrics_of_result(result, snapshot)}
    return out


def _kpi(key: str):
    return RANK_KPIS.get(key) or KPI_BY_KEY.get(key)

#: Shorter labels for the narrow headline columns (the KPI's full words go in its help).
SHORT_LABELS: dict[str, str] = {
    "top3_choice_share": "Got top three",
}


def _kind(key: str) -> str:
    if key == "objective":
        return "cost"
    kpi = _kpi(key)
    return kpi.kind if kpi is not None else "number"


def label(key: str, *, short: bool = False) -> str:
    """The KPI's label (its short form for narrow columns when ``short``)."""
    if short and key in SHORT_LABELS:
        return SHORT_LABELS[key]
    if key == "objective":
        return "Total cost"
    kpi = _kpi(key)
    return kpi.label if kpi is not None else key


def help_text(key: str) -> str:
    """What the number means; starts with the full label when the page shows a short one."""
    if key == "objective":
        return ("What the solve made as small as possible: workers' and supervisors' disappointment "
                "combined, counted with this scenario's supervisor voice and how much low choices hurt.")
    kpi = _kpi(key)
    text = kpi.help if kpi is not None else ""
    if key in SHORT_LABELS and kpi is not None:
        return f"{kpi.label}: {text[0].lower()}{text[1:]}" if text else kpi.label
    return text


def _rank(value: float) -> str:
    # Worst ranks are whole, or end in .5 when a worker tied two lines.
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def shown_value(key: str, value: float | None) -> float | int | None:
    """The number exactly as pages show it, still a number (for a spreadsheet cell).

    Shares keep two decimals (a whole percentage), counts are whole, the rest keep the decimals
    :func:`value_text` shows. A page and an export that both go through here cannot disagree.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    value = float(value)
    kind = _kind(key)
    if kind == "share":
        return round(value, 2)
    if kind == "count":
        return int(round(value))
    if key in DECIMALS:
        return round(value, DECIMALS[key])
    if kind == "rank":
        return value if value.is_integer() else round(value, 1)
    return round(value, 2)


def number_format(key: str) -> str:
    """The spreadsheet number format that shows :func:`shown_value` as :func:`value_text` does."""
    kind = _kind(key)
    if kind == "share":
        return "0%"
    if kind == "count":
        return "0"
    if key in DECIMALS:
        return "#,##0." + "0" * DECIMALS[key]
    if kind == "rank":
        return "General"  # 36 or 12.5, as the page shows it
    return "0.00"


def value_text(key: str, value: float | None) -> str:
    """A headline number as it shows on every page ("–" when there is none)."""
    shown = shown_value(key, value)
    if shown is None:
        return "–"
    kind = _kind(key)
    if kind == "share":
        return f"{shown:.0%}"
    if kind == "count":
        return f"{shown}"
    if key in DECIMALS:
        return f"{shown:,.{DECIMALS[key]}f}"
    if kind == "rank":
        return _rank(shown)
    return f"{shown:.2f}"


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


def _rounded(key: str, delta: float) -> float:
    kind = _kind(key)
    if kind == "share":
        return round(delta * 100)
    if kind == "count":
        return round(delta)
    if key in DECIMALS:
        return round(delta, DECIMALS[key])
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
    kind = _kind(key)
    if kind == "share":
        return f"{delta * 100:+.0f} pts"
    if kind == "count":
        return f"{delta:+.0f}"
    if key in DECIMALS:
        return f"{delta:+,.{DECIMALS[key]}f}"
    if kind == "rank":
        return f"{delta:+.0f}" if float(delta).is_integer() else f"{delta:+.1f}"
    return f"{delta:+.2f}"


def better(key: str, delta: float | None) -> bool | None:
    """Whether the change is an improvement (None for no change or unknown)."""
    if delta is None or is_no_change(key, delta):
        return None
    kpi = _kpi(key)
    higher_is_better = kpi is not None and kpi.better == "higher"  # the total cost: lower is better
    return (delta > 0) == higher_is_better


def metric_delta(key: str, delta: float | None) -> dict[str, Any]:
    """Keyword arguments for ``st.metric``: the change, its colour and its arrow.

    Green for better and red for worse whichever way the number runs; grey and no arrow for
    no change.
    """
    text = delta_text(key, delta)
    if text is None:
        return {"delta": None}
    if text == NO_CHANGE:
        return {"delta": text, "delta_color": "off", "delta_arrow": "off"}
    kpi = _kpi(key)
    higher_is_better = kpi is not None and kpi.better == "higher"
    return {"delta": text, "delta_color": "normal" if higher_is_better else "inverse"}


# --------------------------------------------------------------------------- total cost


@dataclass(frozen=True)
class Solved:
    """What decides how a solved scenario's total cost was counted."""

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    fingerprint: str | None = None


def _percent(v: Any) -> str:
    try:
        return f"{float(v):.0%}"
    except (TypeError, ValueError):
        return str(v)


def _plain(v: Any) -> str:
    try:
        return f"{float(v):g}"
    except (TypeError, ValueError):
        return str(v)


def _same(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=0, abs_tol=1e-9)
    except (TypeError, ValueError):
        return a == b


def _weightings(ov: Mapping[str, Any] | None) -> str:
    return json.dumps(sorted(json.dumps(w, sort_keys=True, default=str) for w in (ov or {}).get("weightings") or []))


def cost_not_comparable(this: Solved, other: Solved) -> str | None:
    """Why the total costs of ``this`` and ``other`` cannot be compared; None when they can.

    The total cost is counted with the scenario's supervisor voice, how much low choices hurt,
    its organisation priorities and the run's preferences: change any of them and the same
    allocation gets another cost, so a lower number would not mean a better allocation.
    """
    reasons: list[str] = []
    if this.run_id and other.run_id and this.run_id != other.run_id:
        reasons.append("they are allocations of different runs")
    elif this.fingerprint and other.fingerprint and this.fingerprint != other.fingerprint:
        reasons.append("the run's data (preferences, places or rules) changed between the two solves")
    a, b = this.settings or {}, other.settings or {}
    for key, words, show in (
        ("preferencer_weight", "the supervisor voice", _percent),
        ("preference_power", "how much low choices hurt", _plain),
    ):
        if key in a and key in b and not _same(a[key], b[key]):
            reasons.append(f"{words} differs ({show(a[key])} in '{this.name}', {show(b[key])} in '{other.name}')")
    if _weightings(this.overrides) != _weightings(other.overrides):
        reasons.append("the organisation priorities differ")
    if not reasons:
        return None
    return (f"Total cost not comparable with '{other.name}': " + "; ".join(reasons) + ". "
            "The cost is counted differently, so a lower number would not mean a better allocation. "
            "Compare the other numbers instead.")
