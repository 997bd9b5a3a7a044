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

NO_CHANGE = "no change"

#: Decimals shown per quantity (values and changes alike).
DECIMALS: dict[str, int] = {
    "mean_rank": 2,
    "preferencer_mean_rank": 2,
    "worker_dissatisfaction_gini": 2,
    "objective": 2,
}

#: Shorter labels for the narrow headline columns (the KPI's full words go in its help).
SHORT_LABELS: dict[str, str] = {
    "top3_choice_share": "Got top three",
}


def _kind(key: str) -> str:
    if key == "objective":
        return "cost"
    kpi = KPI_BY_KEY.get(key)
    return kpi.kind if kpi is not None else "number"


def label(key: str, *, short: bool = False) -> str:
    """The KPI's label (its short form for narrow columns when ``short``)."""
    if short and key in SHORT_LABELS:
        return SHORT_LABELS[key]
    if key == "objective":
        return "Total cost"
    kpi = KPI_BY_KEY.get(key)
    return kpi.label if kpi is not None else key


def help_text(key: str) -> str:
    """What the number means; starts with the full label when the page shows a short one."""
    if key == "objective":
        return ("What the solve made as small as possible: workers' and supervisors' disappointment "
                "combined, counted with this scenario's supervisor voice and how much low choices hurt.")
    kpi = KPI_BY_KEY.get(key)
    text = kpi.help if kpi is not None else ""
    if key in SHORT_LABELS and kpi is not None:
        return f"{kpi.label}: {text[0].lower()}{text[1:]}" if text else kpi.label
    return text


def _rank(value: float) -> str:
    # Worst ranks are whole, or end in .5 when a worker tied two lines.
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def value_text(key: str, value: float | None) -> str:
    """A headline number as it shows on every page ("–" when there is none)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    value = float(value)
    kind = _kind(key)
    if kind == "share":
        return f"{value:.0%}"
    if kind == "count":
        return f"{int(round(value))}"
    if key in DECIMALS:
        return f"{value:,.{DECIMALS[key]}f}"
    if kind == "rank":
        return _rank(value)
    return f"{value:.2f}"


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
    kpi = KPI_BY_KEY.get(key)
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
    kpi = KPI_BY_KEY.get(key)
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
