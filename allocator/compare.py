"""Comparing scenarios: what differs in their settings, their headline numbers and who moved.

Everything here works on result dicts (``allocator-result/1``, as saved with a scenario), so a
comparison needs neither the solver nor the database. Labels are in planners' words.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from allocator.scenario import SETTING_LABELS


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    better: str  # "higher" or "lower": which way is an improvement
    kind: str  # "share", "rank", "count" or "number"
    help: str = ""


#: Headline numbers, in the order pages show them.
KPIS: tuple[Kpi, ...] = (
    Kpi("first_choice_share", "Got first choice", "higher", "share", "Share of workers on their first choice."),
    Kpi("top3_choice_share", "Got a top-three choice", "higher", "share", "Share of workers on one of their first three choices."),
    Kpi("mean_rank", "Mean rank", "lower", "rank", "Average rank workers gave the line they got (1 = first choice)."),
    Kpi("worst_rank", "Worst rank", "lower", "rank", "The lowest-ranked line anyone got."),
    Kpi("workers_on_unranked_lines", "On a line they did not rank", "lower", "count", "Workers placed on a line they did not rank."),
    Kpi("vacancies", "Vacancies", "lower", "count", "Places left empty across all lines."),
    Kpi("mandatory_lines_filled", "Must-be-filled lines filled", "higher", "count", "Lines that must be filled and have at least one worker."),
    Kpi("blocking_pairs", "Blocking pairs", "lower", "count", "Worker and line that would both rather be together than where they are."),
    Kpi("worker_dissatisfaction_gini", "Unevenness (Gini)", "lower", "number", "0 = everyone equally satisfied; towards 1 = a few carry all the disappointment."),
    Kpi("preferencer_mean_rank", "Supervisors' mean rank", "lower", "rank", "Average rank supervisors gave the workers they got."),
)
KPI_BY_KEY = {k.key: k for k in KPIS}


@dataclass(frozen=True)
class ScenarioView:
    """One side of a comparison: a scenario's name, settings, overrides and result dict."""

    name: str
    result: Mapping[str, Any] | None
    settings: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> Mapping[str, Any]:
        return (self.result or {}).get("metrics") or {}

    @property
    def solved(self) -> bool:
        return bool(self.result and self.result.get("allocations"))


def kpi_value(result: Mapping[str, Any] | None, key: str) -> float | None:
    """One headline number of a result (``None`` when the result has none)."""
    if not result:
        return None
    metrics = result.get("metrics") or {}
    if key == "objective":
        return result.get("objective")
    v = metrics.get(key)
    return None if v is None else float(v)


def kpi_delta(current: Mapping[str, Any] | None, previous: Mapping[str, Any] | None, key: str) -> float | None:
    """``current - previous`` for one KPI, or ``None`` when either is missing."""
    a, b = kpi_value(current, key), kpi_value(previous, key)
    if a is None or b is None:
        return None
    return a - b


def is_improvement(key: str, delta: float) -> bool | None:
    """Whether a change of ``delta`` in KPI ``key`` is better (None for no change)."""
    if delta == 0:
        return None
    better = KPI_BY_KEY[key].better if key in KPI_BY_KEY else "lower"
    return (delta > 0) == (better == "higher")


def format_kpi(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    kind = KPI_BY_KEY[key].kind if key in KPI_BY_KEY else "number"
    if kind == "share":
        return f"{value:.0%}"
    if kind == "count":
        return f"{int(round(value))}"
    if kind == "rank":
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def format_delta(key: str, delta: float | None) -> str | None:
    """A KPI change as planners read it: shares in percentage points, counts whole."""
    if delta is None:
        return None
    kind = KPI_BY_KEY[key].kind if key in KPI_BY_KEY else "number"
    if kind == "share":
        return f"{delta * 100:+.0f} pts"
    if kind == "count":
        return f"{delta:+.0f}"
    if kind == "rank":
        return f"{delta:+.2f}".rstrip("0").rstrip(".")
    return f"{delta:+.3g}"


def settings_diff(views: Sequence[ScenarioView]) -> list[dict[str, Any]]:
    """Settings (and override counts) whose values are not the same in every scenario.

    One row per difference: ``{"setting": label, <scenario name>: value, ...}``.
    """
    rows: list[dict[str, Any]] = []
    keys = [k for k in SETTING_LABELS if any(k in v.settings for v in views)]
    for k in keys:
        values = [v.settings.get(k) for v in views]
        if len({repr(x) for x in values}) > 1:
            rows.append({"setting": SETTING_LABELS[k], **{v.name: _show(k, x) for v, x in zip(views, values, strict=True)}})
    for section, label in (
        ("lines", "Lines with changed places or must be filled"),
        ("pins", "Pins"),
        ("forbids", "Forbids"),
        ("weightings", "Organisation priorities added"),
    ):
        counts = [len((v.overrides or {}).get(section) or []) for v in views]
        contents = [repr(sorted(map(repr, (v.overrides or {}).get(section) or []))) for v in views]
        if len(set(contents)) > 1:
            rows.append({"setting": label, **{v.name: c for v, c in zip(views, counts, strict=True)}})
    return rows


def _show(key: str, value: Any) -> Any:
    if key == "preferencer_weight" and isinstance(value, int | float):
        return f"{value:.0%}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def kpi_table(views: Sequence[ScenarioView]) -> list[dict[str, Any]]:
    """One row per KPI: its value in each scenario and the change from the first (baseline).

    Row keys: ``kpi`` (label), ``key``, then ``<name>`` (value) for each scenario and
    ``<name> change`` for every scenario after the first.
    """
    rows = []
    base = views[0].result if views else None
    for kpi in KPIS:
        row: dict[str, Any] = {"kpi": kpi.label, "key": kpi.key}
        for i, v in enumerate(views):
            row[v.name] = kpi_value(v.result, kpi.key)
            if i > 0:
                row[f"{v.name} change"] = kpi_delta(v.result, base, kpi.key)
        rows.append(row)
    return rows


def rank_distributions(views: Sequence[ScenarioView]) -> list[dict[str, Any]]:
    """Long-format rows ``{scenario, label, order, workers}`` for an overlaid bar chart.

    The buckets are the union over scenarios (first, second, ... choice, then unranked line),
    with zeros where a scenario has none, so the bars line up.
    """
    buckets: dict[Any, str] = {}
    for v in views:
        for b in v.metrics.get("rank_distribution") or []:
            buckets.setdefault(b["choice"], b["label"])
    ordered = sorted(buckets, key=lambda c: (isinstance(c, str), c if not isinstance(c, str) else 0))
    rows = []
    for v in views:
        got = {b["choice"]: b["workers"] for b in v.metrics.get("rank_distribution") or []}
        for order, c in enumerate(ordered):
            rows.append({"scenario": v.name, "label": buckets[c], "order": order, "workers": int(got.get(c, 0))})
    return rows


def _by_worker(result: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    return {a["worker_id"]: a for a in (result or {}).get("allocations") or []}


def moves(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    worker_names: Mapping[str, str] | None = None,
    line_names: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Workers whose line differs between two results, with the change in their rank.

    ``rank change`` is after minus before: negative means the worker got a line they ranked
    higher (better), positive a line they ranked lower. Sorted by the size of the change,
    largest losses first, then by worker id.
    """
    a, b = _by_worker(before), _by_worker(after)
    wn, ln = worker_names or {}, line_names or {}
    rows = []
    for wid in sorted(set(a) & set(b)):
        x, y = a[wid], b[wid]
        if x["job_line_id"] == y["job_line_id"]:
            continue
        rb, ra = x.get("worker_rank"), y.get("worker_rank")
        change = None if rb is None or ra is None else float(ra) - float(rb)
        rows.append({
            "worker_id": wid,
            "worker": wn.get(wid, wid),
            "from_line": ln.get(x["job_line_id"], x["job_line_id"]),
            "to_line": ln.get(y["job_line_id"], y["job_line_id"]),
            "from_line_id": x["job_line_id"],
            "to_line_id": y["job_line_id"],
            "rank_before": rb,
            "rank_after": ra,
            "rank_change": change,
        })
    rows.sort(key=lambda r: (-(r["rank_change"] or 0), r["worker_id"]))
    return rows


def move_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many moved workers are better off, worse off, or on an equally ranked line."""
    out = {"moved": len(rows), "better": 0, "worse": 0, "same": 0}
    for r in rows:
        c = r.get("rank_change")
        if c is None or c == 0:
            out["same"] += 1
        elif c < 0:
            out["better"] += 1
        else:
            out["worse"] += 1
    return out


def sankey_data(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    line_names: Mapping[str, str] | None = None,
    *,
    include_stays: bool = False,
    max_links: int = 60,
) -> dict[str, list]:
    """Nodes and links of a Sankey of moves from ``before``'s lines to ``after``'s.

    Returns ``{"labels", "source", "target", "value"}``: the left nodes are lines in the first
    scenario, the right nodes lines in the second. Only moves are drawn unless
    ``include_stays``; the ``max_links`` largest flows are kept, the rest summed into one
    "other lines" flow so the chart stays readable on a large intake.
    """
    ln = line_names or {}
    a, b = _by_worker(before), _by_worker(after)
    flows: Counter[tuple[str, str]] = Counter()
    for wid in sorted(set(a) & set(b)):
        x, y = a[wid]["job_line_id"], b[wid]["job_line_id"]
        if x != y or include_stays:
            flows[(x, y)] += 1
    top = sorted(flows.items(), key=lambda kv: (-kv[1], kv[0]))
    kept, rest = top[:max_links], top[max_links:]
    other = "other lines"
    if rest:
        kept.append(((other, other), sum(n for _, n in rest)))
    left = sorted({x for (x, _), _ in kept})
    right = sorted({y for (_, y), _ in kept})
    labels = [ln.get(x, x) for x in left] + [ln.get(y, y) for y in right]
    li = {x: i for i, x in enumerate(left)}
    ri = {y: len(left) + i for i, y in enumerate(right)}
    return {
        "labels": labels,
        "source": [li[x] for (x, _), _ in kept],
        "target": [ri[y] for (_, y), _ in kept],
        "value": [n for _, n in kept],
    }
