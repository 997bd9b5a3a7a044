"""The business rules on Results (business-rules.md "Reporting"): tables and charts, no Streamlit.

From a result's ``metrics`` (``links``, ``quotas``, ``tiers``, ``sites``, ``moves``,
``moves_count``, each present only when the run uses it) and the scenario's snapshot (for names
and what each quota counts), in the planners' words: a link's site, a quota's count against its
bounds, a tier's choices, the moves from the previous allocation, and the equity view (first
choice share, mean and worst rank per site and per tier).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from charts import _LAYOUT, GREY, NOT_RANKED_BAR, SCENARIO_COLOURS
from editor import OWN_SITE

from allocator.snapshot import RunSnapshot

NO_TIER = "No tier"


def tier_label(priority: int | None) -> str:
    return NO_TIER if priority is None else f"Tier {priority}"


def uses_rules(metrics: Mapping[str, Any]) -> bool:
    """Whether the result reports any business rule (else Results shows none of this)."""
    return any(k in metrics for k in ("links", "quotas", "tiers", "sites", "moves"))


class Names:
    """Workers' and lines' names, and the site of each line, from the scenario's snapshot."""

    def __init__(self, snapshot: RunSnapshot | None):
        self.worker = {w.id: w.name or w.id for w in (snapshot.workers if snapshot else [])}
        self.line = {j.id: j.name or j.id for j in (snapshot.job_lines if snapshot else [])}
        self.site = {j.id: j.site for j in (snapshot.job_lines if snapshot else [])}

    def w(self, wid: str) -> str:
        name = self.worker.get(wid, wid)
        return f"{name} ({wid})" if name != wid else wid

    def j(self, jid: str) -> str:
        return self.line.get(jid, jid)

    def site_of_label(self, label: str | None, *, short: bool = False) -> str:
        """A site as the metrics name it: a line's id for a line that is a site of its own.

        ``short``: such a line as just "its own site", where the line is named beside it.
        """
        if label is None:
            return "split over several sites"
        if label in self.site and self.site[label] is None:
            return OWN_SITE if short else f"{self.j(label)} ({OWN_SITE})"
        return label


def links_table(links: Sequence[Mapping[str, Any]], names: Names) -> pd.DataFrame:
    """One row a linked worker: the link, the worker, the line they got and the site the link shares.

    A row a worker, not a row a link: a link's two to four line names side by side did not fit
    a column, and the planner lost the very lines the rule is about.
    """
    rows = [{
        "Link": k["id"],
        "Worker": names.w(w),
        "Job line": names.j(j),
        "Site": names.site_of_label(k.get("site"), short=True),
    } for k in links for w, j in zip(k["worker_ids"], k["job_line_ids"], strict=True)]
    return pd.DataFrame(rows, columns=["Link", "Worker", "Job line", "Site"])


def _quota_scope(q: Any, names: Names) -> str:
    if q is None:
        return ""
    if q.sites is not None:
        return ", ".join(q.sites) + (" (site)" if len(q.sites) == 1 else " (sites)")
    ids = q.job_line_ids or []
    return ", ".join(names.j(j) for j in ids[:6]) + (f" and {len(ids) - 6} more lines" if len(ids) > 6 else "")


def quotas_table(quotas: Sequence[Mapping[str, Any]], snapshot: RunSnapshot | None) -> pd.DataFrame:
    """One row a quota: what it counts, the count, its bounds and whether it is met."""
    names = Names(snapshot)
    defs = {q.id: q for q in (snapshot.quotas if snapshot else [])}
    rows = []
    for q in quotas:
        d = defs.get(q["id"])
        rows.append({
            "Quota": q["id"],
            "Counts": _quota_scope(d, names),
            "Only workers with tag": (d.qualification_id if d is not None else None) or "",
            "Workers counted": int(q["count"]),
            "At least": int(q.get("min_workers") or 0),
            "At most": "no maximum" if q.get("max_workers") is None else str(q["max_workers"]),
            "Met": "met" if q.get("met") else "NOT met",
        })
    return pd.DataFrame(rows, columns=["Quota", "Counts", "Only workers with tag", "Workers counted", "At least",
                                       "At most", "Met"])


def quota_summary(quotas: Sequence[Mapping[str, Any]]) -> str:
    missed = [q["id"] for q in quotas if not q.get("met")]
    if not missed:
        return f"Every quota is met ({len(quotas)})."
    return f"{len(missed)} of {len(quotas)} quotas NOT met: {', '.join(missed)}."


def moves_table(moves: Sequence[Mapping[str, Any]], names: Names) -> pd.DataFrame:
    """The workers of the previous allocation now on another line: from where, to where."""
    rows = [{
        "Worker": names.w(m["worker_id"]),
        "From": names.j(m["from"]),
        "To": names.j(m["to"]),
    } for m in moves]
    return pd.DataFrame(rows, columns=["Worker", "From", "To"])


def equity_table(groups: Sequence[Mapping[str, Any]], kind: str, names: Names) -> pd.DataFrame:
    """Per site (``kind="site"``) or per tier: workers, first-choice share (per cent), mean and worst rank.

    Mean and worst rank are over the workers on a line they ranked; the others are counted in
    "Not ranked", as in the headline numbers.
    """
    rows = []
    for g in groups:
        label = tier_label(g.get("priority")) if kind == "tier" else names.site_of_label(g.get("site"))
        share = g.get("first_choice_share")
        rows.append({
            "Site" if kind == "site" else "Tier": label,
            "Workers": int(g.get("n_workers") or 0),
            "First choice": None if share is None else round(100 * float(share), 1),  # per cent
            "Mean rank": g.get("mean_rank_ranked"),
            "Worst rank": g.get("worst_rank_ranked"),
            "Not ranked": int(g.get("unranked_count") or 0),
        })
    first = "Site" if kind == "site" else "Tier"
    return pd.DataFrame(rows, columns=[first, "Workers", "First choice", "Mean rank", "Worst rank", "Not ranked"])


def _bars(buckets: Sequence[Mapping[str, Any]]) -> list[tuple[str, int]]:
    ranked = [(str(b["label"]), int(b["workers"])) for b in buckets if b.get("choice") != "unranked"
              and str(b.get("label")) != "unranked line"]
    unranked = sum(int(b["workers"]) for b in buckets if b.get("choice") == "unranked"
                   or str(b.get("label")) == "unranked line")
    return ranked + [(NOT_RANKED_BAR, unranked)]


def tier_rank_figure(tiers: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Grouped bars: each tier's workers by the choice they got (share of the tier, count on hover).

    Shares, not counts, on the axis: tiers differ in size, and the question is whether a later
    tier gets worse choices. Workers on a line they did not rank are the "not ranked" bar, last.
    """
    fig = go.Figure()
    order: list[str] = []
    per_tier = []
    for t in tiers:
        bars = _bars(t.get("rank_distribution") or [])
        per_tier.append((t, bars))
        for label, _ in bars:
            if label not in order and label != NOT_RANKED_BAR:
                order.append(label)
    order.append(NOT_RANKED_BAR)
    for i, (t, bars) in enumerate(per_tier):
        got = dict(bars)
        n = int(t.get("n_workers") or 0)
        counts = [got.get(label, 0) for label in order]
        name = f"{tier_label(t.get('priority'))} ({n} worker{'s' if n != 1 else ''})"
        colour = GREY if t.get("priority") is None else SCENARIO_COLOURS[i % len(SCENARIO_COLOURS)]
        fig.add_trace(go.Bar(
            name=name, x=order, y=[c / n if n else 0 for c in counts], marker_color=colour,
            customdata=counts,
            hovertemplate=f"{name}<br>%{{x}}: %{{customdata}} workers (%{{y:.0%}})<extra></extra>",
        ))
    fig.update_layout(**_LAYOUT, height=340, barmode="group")
    fig.update_xaxes(title_text="Choice the worker got", type="category")
    fig.update_yaxes(title_text="Share of the tier's workers", tickformat=".0%")
    return fig


def moves_caption(count: int, n_previous: int) -> str:
    if n_previous == 0:
        return "No previous allocation was given."
    stay = n_previous - count
    return (f"{count} of the {n_previous} workers of the previous allocation move to another job line; "
            f"{stay} stay where they were told.")


__all__ = [
    "NO_TIER", "OWN_SITE", "Names", "equity_table", "links_table", "moves_caption", "moves_table",
    "quota_summary", "quotas_table", "tier_label", "tier_rank_figure", "uses_rules",
]


def compare_rules_frame(views: Sequence[Any], names: Names | None = None) -> pd.DataFrame:
    """Compare: the business rules' outcomes side by side, one column a scenario (all text).

    Rows only for what some scenario reports: quotas met (and each quota's count), the site of
    each link, workers moved from the previous allocation, and each tier's and site's first
    choice share and mean rank. ``views`` are :class:`allocator.compare.ScenarioView`.
    """
    names = names or Names(None)
    rows: list[dict[str, str]] = []

    def add(what: str, cells: list[str]) -> None:
        rows.append({"Outcome": what, **{v.name: c for v, c in zip(views, cells, strict=True)}})

    mets = [v.metrics for v in views]
    if any("quotas" in m for m in mets):
        add("Quotas met", [(f"{sum(1 for q in m['quotas'] if q.get('met'))} of {len(m['quotas'])}"
                            if "quotas" in m else "–") for m in mets])
        ids = sorted({q["id"] for m in mets for q in m.get("quotas") or []})
        for qid in ids:
            cells = []
            for m in mets:
                q = next((q for q in m.get("quotas") or [] if q["id"] == qid), None)
                cells.append("–" if q is None else f"{q['count']} workers" + ("" if q.get("met") else " (NOT met)"))
            add(f"Quota {qid}", cells)
    ids = sorted({k["id"] for m in mets for k in m.get("links") or []})
    for lid in ids:
        cells = []
        for m in mets:
            k = next((k for k in m.get("links") or [] if k["id"] == lid), None)
            cells.append("–" if k is None else names.site_of_label(k.get("site")))
        add(f"Link {lid}: site", cells)
    if any("moves_count" in m for m in mets):
        add("Workers moved from the previous allocation", [str(m["moves_count"]) if "moves_count" in m else "–"
                                                           for m in mets])
    def group_of(key: str, g: Mapping[str, Any]) -> Any:
        return g.get("priority") if key == "tiers" else str(g.get("site"))

    for key in ("tiers", "sites"):
        found = {group_of(key, g) for m in mets for g in m.get(key) or []}
        # Tier 1, 2, ... then the workers without a tier; sites by name.
        order = sorted(found, key=lambda x: (x is None, x if x is not None else 0)) if key == "tiers" else sorted(found)
        for name in order:
            cells = []
            for m in mets:
                g = next((g for g in m.get(key) or [] if group_of(key, g) == name), None)
                if g is None or g.get("first_choice_share") is None:
                    cells.append("–")
                else:
                    mean = g.get("mean_rank_ranked")
                    cells.append(f"{round(100 * float(g['first_choice_share']))} % first choice"
                                 + (f", mean rank {float(mean):.2f}" if mean is not None else ""))
            add(tier_label(name) if key == "tiers" else f"Site {names.site_of_label(name)}", cells)
    return pd.DataFrame(rows, columns=["Outcome", *[v.name for v in views]])
