"""Headline numbers on the pages: their changes as ``st.metric`` shows them, and when two
total costs may be compared.

What each figure means and how it is written lives in :mod:`allocator.kpis` (one vocabulary
for the pages, the exports and the Publish page); the names the pages use are re-exported here.

- :func:`metric_delta`: a change with its colour and arrow, green for better whichever way the
  number runs, grey for "no change".
- :func:`with_rank_metrics`: the honest rank figures for a result saved before they existed.
- :func:`cost_not_comparable`: two total costs may only be compared when they were counted
  the same way (same run data, supervisor voice, how much low choices hurt and organisation
  priorities). Otherwise the reason, in planners' words.

Plain functions (no Streamlit), tested directly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from allocator.kpis import (  # noqa: F401  (the pages' one vocabulary, re-exported for them)
    NO_CHANGE,
    RANK_KEYS,
    RESULT_KPIS,
    better,
    delta_text,
    help_text,
    higher_is_better,
    is_no_change,
    label,
    number_format,
    setting_text,
    setting_value,
    shown_value,
    value_text,
)
from allocator.metrics import rank_metrics_of_result


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
    return {"delta": text, "delta_color": "normal" if higher_is_better(key) else "inverse"}


# --------------------------------------------------------------------------- total cost


@dataclass(frozen=True)
class Solved:
    """What decides how a solved scenario's total cost was counted."""

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    fingerprint: str | None = None


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
    for key, words in (("preferencer_weight", "the supervisor voice"), ("preference_power", "how much low choices hurt")):
        if key in a and key in b and not _same(a[key], b[key]):
            reasons.append(f"{words} differs ({setting_text(key, a[key])} in '{this.name}', "
                           f"{setting_text(key, b[key])} in '{other.name}')")
    if _weightings(this.overrides) != _weightings(other.overrides):
        reasons.append("the organisation priorities differ")
    if not reasons:
        return None
    return (f"Total cost not comparable with '{other.name}': " + "; ".join(reasons) + ". "
            "The cost is counted differently, so a lower number would not mean a better allocation. "
            "Compare the other numbers instead.")


PREVIOUS = "previous"


def baseline_choices(previous: str | None, saved: Sequence[tuple[str, str]],
                     published_id: str | None) -> list[tuple[str, str | None]]:
    """The Results page's "Changes shown against" choices, the default first: ``(label, key)``.

    ``key`` is :data:`PREVIOUS` for the session's previous solve, a saved scenario's id, or
    ``None`` for "Nothing". ``saved`` is ``(id, name)`` of the other saved scenarios with an
    allocation, newest first. The previous solve comes first (what the planner just changed),
    then the published scenario, marked as such (what a re-solve after a change is measured
    against), then the others; before, the newest saved scenario was the default whatever it was.
    """
    out: list[tuple[str, str | None]] = []
    if previous is not None:
        out.append((f"Previous solve: {previous}", PREVIOUS))
    published = [(sid, name) for sid, name in saved if sid == published_id]
    for sid, name in published:
        out.append((f"Published: {name}", sid))
    for sid, name in saved:
        if sid != published_id:
            out.append((f"Saved: {name}", sid))
    out.append(("Nothing", None))
    return out
