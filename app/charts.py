"""Plotly figures for the dashboard: plain functions of plain data, testable without Streamlit.

One colour-blind-safe palette (Okabe and Ito) and one meaning per colour on every page:

- blue: what happened / a good outcome (workers placed, first choices, filled places, the
  objective); lighter blues for later choices;
- vermillion: what needs attention (unranked lines, must-be-filled lines, ineligible because a
  worker is excluded);
- grey: capacity and the background (places, pairs filtered out);
- orange: the proven bound and a second scenario.

Axis titles are in planners' words; every chart gets a one-line caption on its page.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

# Okabe-Ito
BLUE = "#0072B2"
SKY = "#56B4E9"
GREEN = "#009E73"
ORANGE = "#E69F00"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
YELLOW = "#F0E442"
GREY = "#BBBBBB"
DARK = "#444444"

#: Colours for scenarios shown side by side, in order.
SCENARIO_COLOURS = (BLUE, ORANGE, GREEN, PURPLE, SKY, VERMILLION, YELLOW)

#: Eligibility verdicts: the planners' words and the colour of each reason code.
REASON_WORDS: dict[str, str] = {
    "INCLUDED_WORKER": "May take it: named on the line",
    "INCLUDED_TAG": "May take it: has a required tag",
    "DEFAULT": "May take it: the line is open to all",
    "EXCLUDED_WORKER": "May not: named as excluded",
    "EXCLUDED_TAG": "May not: has an excluded tag",
    "MISSING_INCLUDED_TAG": "May not: lacks a required tag",
    "FORBIDDEN": "May not: forbidden by the planner (run or scenario)",
    "PINNED": "Pinned here by the planner (run or scenario)",
    "PINNED_ELSEWHERE": "May not: pinned to another line",
}
REASON_COLOURS: dict[str, str] = {
    "INCLUDED_WORKER": BLUE,
    "INCLUDED_TAG": SKY,
    "DEFAULT": GREEN,
    "EXCLUDED_WORKER": VERMILLION,
    "EXCLUDED_TAG": ORANGE,
    "MISSING_INCLUDED_TAG": PURPLE,
    "FORBIDDEN": DARK,
    "PINNED": YELLOW,
    "PINNED_ELSEWHERE": GREY,
}
FILTERED_OUT = "#EEEEEE"

# No Plotly template: st.plotly_chart draws in Streamlit's own theme (the page's fonts and
# grid), and building a template into every figure costs ~20 ms per chart on each rerun.
_LAYOUT = dict(
    margin=dict(l=10, r=10, t=30, b=10),
    font=dict(size=13),
    legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
)


NOT_RANKED_BAR = "not ranked"


def _is_unranked(bucket: Mapping[str, Any]) -> bool:
    return bucket.get("choice") == "unranked" or str(bucket.get("label")) in ("unranked line", NOT_RANKED_BAR)


def _choice_colours(labels: Sequence[str]) -> list[str]:
    """Blue for first choices, lighter for later ones, vermillion for lines not ranked."""
    ranked = [lab for lab in labels if lab not in ("unranked line", NOT_RANKED_BAR)]
    shades = _blend(BLUE, "#D6E9F5", len(ranked))
    out, k = [], 0
    for lab in labels:
        if lab in ("unranked line", NOT_RANKED_BAR):
            out.append(VERMILLION)
        else:
            out.append(shades[k])
            k += 1
    return out


def _blend(a: str, b: str, n: int) -> list[str]:
    if n <= 0:
        return []
    if n == 1:
        return [a]
    ca = [int(a[i : i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i : i + 2], 16) for i in (1, 3, 5)]
    out = []
    for k in range(n):
        t = k / (n - 1)
        out.append("#" + "".join(f"{round(x + (y - x) * t):02X}" for x, y in zip(ca, cb, strict=True)))
    return out


def rank_distribution_figure(buckets: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Bars: how many workers got their 1st, 2nd, ... choice, and how many an unranked line.

    ``buckets`` is the result's ``metrics["rank_distribution"]``. Workers on a line they did not
    rank are their own bar, "not ranked", last: they have no choice number.
    """
    buckets = sorted(buckets, key=_is_unranked)  # stable: the choices keep their order
    labels = [NOT_RANKED_BAR if _is_unranked(b) else str(b["label"]) for b in buckets]
    values = [int(b["workers"]) for b in buckets]
    total = sum(values) or 1
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=values,
            marker_color=_choice_colours(labels),
            text=[str(v) if v else "" for v in values],
            textposition="outside",
            customdata=[f"{v / total:.0%}" for v in values],
            hovertemplate="%{x}: %{y} workers (%{customdata})<extra></extra>",
        )
    )
    fig.update_layout(**_LAYOUT, height=320, showlegend=False)
    fig.update_xaxes(title_text="Choice the worker got", type="category")
    fig.update_yaxes(title_text="Workers")
    return fig


def rank_distribution_overlay(rows: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Grouped bars of the rank distribution of several scenarios (``compare.rank_distributions``).

    Workers on a line they did not rank are the "not ranked" bar, as on Results.
    """
    fig = go.Figure()
    names: list[str] = []
    for r in rows:
        if r["scenario"] not in names:
            names.append(r["scenario"])
    for i, name in enumerate(names):
        mine = sorted((r for r in rows if r["scenario"] == name), key=lambda r: r["order"])
        fig.add_trace(
            go.Bar(
                # A planner's scenario name is text: Plotly would render "<b>" in it as bold and
                # read "%{...}" in a hover template, so it is escaped and the template names the
                # trace instead of holding the name.
                name=html.escape(name),
                x=[NOT_RANKED_BAR if r["label"] == "unranked line" else r["label"] for r in mine],
                y=[r["workers"] for r in mine],
                marker_color=SCENARIO_COLOURS[i % len(SCENARIO_COLOURS)],
                hovertemplate="%{fullData.name}<br>%{x}: %{y} workers<extra></extra>",
            )
        )
    fig.update_layout(**_LAYOUT, height=340, barmode="group")
    fig.update_xaxes(title_text="Choice the worker got", type="category")
    fig.update_yaxes(title_text="Workers")
    return fig


#: Past this many lines the coverage chart shows the lines that need attention most, and the
#: page gives every line in a table (UI.md: many lines, few words).
FILL_CHART_LINES = 12


def _fill_order(line_fill: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    # Must-be-filled lines left empty first, then the most empty places, then by id.
    return sorted(
        line_fill,
        key=lambda r: (not (r.get("mandatory") and r["filled"] == 0), -(r["capacity"] - r["filled"]), r["job_line_id"]),
    )


def _needs_attention(r: Mapping[str, Any]) -> bool:
    return r["capacity"] - r["filled"] > 0 or bool(r.get("mandatory") and r["filled"] == 0)


def fill_shown(line_fill: Sequence[Mapping[str, Any]], max_lines: int = FILL_CHART_LINES) -> list[Mapping[str, Any]]:
    """The lines the coverage chart draws: the ``max_lines`` that need attention most.

    Past ``max_lines`` lines, only lines with an empty place (or a must-be-filled line left
    empty) are drawn: a full line drawn among "the lines with the most empty places" would
    not add up with the count of lines with empty places beside the chart. When every line
    is full, the first ``max_lines`` are drawn.
    """
    ordered = _fill_order(line_fill)
    if len(ordered) <= max_lines:
        return ordered
    need = [r for r in ordered if _needs_attention(r)]
    return (need or ordered)[:max_lines]


def fill_title(line_fill: Sequence[Mapping[str, Any]], max_lines: int = FILL_CHART_LINES) -> str | None:
    """What the coverage chart draws, when it leaves lines out: ``The 11 of 60 lines with empty places``."""
    shown = fill_shown(line_fill, max_lines)
    total = len(line_fill)
    if len(shown) == total:
        return None
    need = sum(1 for r in line_fill if _needs_attention(r))
    if need == 0:
        return f"{len(shown)} of {total} lines (every line is full)"
    if need <= max_lines:
        return f"The {len(shown)} of {total} lines with empty places"
    return f"The {len(shown)} of {total} lines with the most empty places"


def fill_caption(line_fill: Sequence[Mapping[str, Any]], max_lines: int = FILL_CHART_LINES) -> str:
    """The coverage chart's caption: what it shows and, when it leaves lines out, which and how many."""
    what = ("Workers placed on each line (bar) against its places (outline). ◆ marks a line that must be "
            "filled.")
    total = len(line_fill)
    shown = fill_shown(line_fill, max_lines)
    if len(shown) == total:
        return f"{what} All {total} {'line' if total == 1 else 'lines'}, those with the most empty places first."
    ids = {r["job_line_id"] for r in shown}
    rest = [r for r in line_fill if r["job_line_id"] not in ids]
    empty = sum(max(r["capacity"] - r["filled"], 0) for r in rest)
    full = sum(1 for r in rest if r["filled"] >= r["capacity"])
    unfilled_must = sum(1 for r in rest if r.get("mandatory") and r["filled"] == 0)
    if empty == 0:
        tail = "they are all full" if len(rest) > 1 else "it is full"
    else:
        tail = (f"they have {empty} empty {'place' if empty == 1 else 'places'} between them "
                f"({full} of them full)")
    if unfilled_must:
        tail += f", and {unfilled_must} must-be-filled {'line' if unfilled_must == 1 else 'lines'} left empty"
    title = fill_title(line_fill, max_lines) or ""
    return (f"{what} Showing {title[0].lower() + title[1:]}; the other "
            f"{len(rest)} are not drawn: {tail}. Every line is in the table below.")


def fill_figure(
    line_fill: Sequence[Mapping[str, Any]],
    line_names: Mapping[str, str] | None = None,
    *,
    max_lines: int = FILL_CHART_LINES,
) -> go.Figure:
    """Horizontal bars: workers placed on each line against its places; must-be-filled marked.

    ``line_fill`` is the result's ``metrics["line_fill"]``. Must-be-filled lines carry a
    vermillion diamond and a "(must be filled)" label; one left empty is drawn in vermillion.
    Only :func:`fill_shown` lines are drawn (must-be-filled lines left empty, then those with
    the most empty places); :func:`fill_caption` says what is left out.
    """
    names = line_names or {}
    rows = list(reversed(fill_shown(line_fill, max_lines)))  # plotly draws the first category at the bottom
    labels = [
        f"{names.get(r['job_line_id'], r['job_line_id'])}{'  ◆' if r.get('mandatory') else ''}" for r in rows
    ]
    filled_colour = [VERMILLION if r.get("mandatory") and r["filled"] == 0 else BLUE for r in rows]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            name="Places",
            y=labels,
            x=[r["capacity"] for r in rows],
            orientation="h",
            marker=dict(color="rgba(0,0,0,0)", line=dict(color=GREY, width=1.5)),
            hovertemplate="%{y}: %{x} places<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            name="Workers placed",
            y=labels,
            x=[r["filled"] for r in rows],
            orientation="h",
            marker_color=filled_colour,
            hovertemplate="%{y}: %{x} placed<extra></extra>",
        )
    )
    mand = [(lab, r) for lab, r in zip(labels, rows, strict=True) if r.get("mandatory")]
    if mand:
        fig.add_trace(
            go.Scatter(
                name="Must be filled",
                y=[lab for lab, _ in mand],
                x=[max(r["capacity"], r["filled"]) + 0.3 for _, r in mand],
                mode="markers",
                marker=dict(symbol="diamond", color=VERMILLION, size=9),
                hovertemplate="%{y} must be filled<extra></extra>",
            )
        )
    fig.update_layout(**_LAYOUT, barmode="overlay", height=max(260, 22 * len(rows) + 80))
    if len(rows) < len(line_fill):
        fig.update_layout(title=dict(text=fill_title(line_fill, max_lines), font=dict(size=13)),
                          margin=dict(l=10, r=10, t=70, b=10))
    fig.update_xaxes(title_text="Workers placed (bar) against places (outline)", dtick=1 if max((r["capacity"] for r in rows), default=0) <= 12 else None)
    fig.update_yaxes(title_text="", type="category", automargin=True)
    return fig


def eligibility_heatmap(
    codes: Sequence[Sequence[str]],
    worker_labels: Sequence[str],
    line_labels: Sequence[str],
    *,
    show: Sequence[str] | None = None,
    line_names: Sequence[str] | None = None,
) -> go.Figure:
    """Workers (rows) by job lines (columns), each cell coloured by the reason of its verdict.

    ``codes[i][j]`` is a key of :data:`REASON_WORDS` (a reason code, FORBIDDEN or PINNED).
    Cells whose code is not in ``show`` are drawn pale grey, so one reason can be picked out.
    ``line_labels`` are short (the axis has a column per line); ``line_names``, when given,
    are what hovering a cell names ("Line 12: Surgery (Westmead)", not "j12").
    """
    grid = np.asarray(codes, dtype=object).reshape(len(worker_labels), len(line_labels))
    present = [c for c in REASON_WORDS if (grid == c).any()]
    shown = set(present if show is None else show)
    order = present + ["_hidden"]
    hidden = len(order) - 1
    z = np.full(grid.shape, hidden, dtype=np.int8)
    for i, c in enumerate(present):
        if c in shown:
            z[grid == c] = i
    words = np.array([REASON_WORDS.get(c, c) for c in order[:-1]] + [""], dtype=object)
    idx = np.zeros(grid.shape, dtype=np.int8)
    for i, c in enumerate(present):
        idx[grid == c] = i
    text = words[idx]  # numpy arrays: plotly validates them far faster than nested lists
    colours = [REASON_COLOURS[c] for c in present] + [FILTERED_OUT]
    n = len(colours)
    # A discrete colour scale: each integer value gets its own flat band.
    scale = []
    for i, col in enumerate(colours):
        scale.append([i / n, col])
        scale.append([(i + 1) / n, col])
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(line_labels),
            y=list(worker_labels),
            text=text,
            zmin=-0.5,
            zmax=n - 0.5,
            colorscale=scale,
            showscale=False,
            xgap=1,
            ygap=1,
            # The line's name in the hover: the axis can only hold its id.
            customdata=np.broadcast_to(np.asarray(list(line_names or line_labels), dtype=object),
                                       grid.shape),
            hovertemplate="Worker: %{y}<br>Job line: %{customdata}<br>%{text}<extra></extra>",
        )
    )
    # A legend of the reasons shown, as invisible markers.
    for c in present:
        if c in shown:
            fig.add_trace(
                go.Scatter(
                    x=[None], y=[None], mode="markers", name=REASON_WORDS[c],
                    marker=dict(symbol="square", size=12, color=REASON_COLOURS[c]),
                )
            )
    fig.update_layout(**_LAYOUT, height=max(320, min(14 * len(worker_labels) + 160, 1600)))
    fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    fig.update_xaxes(title_text="Job line", type="category", side="bottom", tickangle=-60)
    fig.update_yaxes(title_text="Worker", type="category", autorange="reversed")
    return fig


#: The tallest a Sankey of moves gets, in pixels; more lines are grouped, not drawn taller.
SANKEY_MAX_HEIGHT = 650
OTHER_LINES = "Other lines"


def sankey_moves(moves: Sequence[Mapping[str, Any]], *, max_lines: int = 12) -> dict[str, Any]:
    """Nodes and links of a Sankey of who moved, readable however many moved.

    ``moves`` are :func:`allocator.compare.moves` rows (``from_line_id``, ``to_line_id``,
    ``from_line``, ``to_line``). On each side the ``max_lines`` lines with the most moved
    workers get a node of their own; every other line of that side is grouped into one
    "Other lines" node. Returns ``{"labels", "source", "target", "value", "n_left",
    "shown_left", "shown_right", "grouped_moves", "lines_left", "lines_right"}``:
    ``shown_*`` count the lines with a node of their own on each side, ``grouped_moves`` the
    moves that start or end in an "Other lines" node, ``lines_left``/``lines_right`` the
    lines moved from and to in all.
    """
    out_of: Counter[str] = Counter(m["from_line_id"] for m in moves)
    into: Counter[str] = Counter(m["to_line_id"] for m in moves)
    names = {m["from_line_id"]: m.get("from_line") or m["from_line_id"] for m in moves}
    names.update({m["to_line_id"]: m.get("to_line") or m["to_line_id"] for m in moves})

    def top(counts: Counter[str]) -> list[str]:
        ranked = sorted(counts, key=lambda k: (-counts[k], names[k], k))
        return ranked[:max_lines] if len(ranked) > max_lines + 1 else ranked  # never group just one line

    left, right = top(out_of), top(into)
    left_set, right_set = set(left), set(right)
    flows: Counter[tuple[str, str]] = Counter()
    grouped = 0
    for m in moves:
        a = m["from_line_id"] if m["from_line_id"] in left_set else OTHER_LINES
        b = m["to_line_id"] if m["to_line_id"] in right_set else OTHER_LINES
        grouped += a == OTHER_LINES or b == OTHER_LINES
        flows[(a, b)] += 1
    left_nodes = left + ([OTHER_LINES] if any(a == OTHER_LINES for a, _ in flows) else [])
    right_nodes = right + ([OTHER_LINES] if any(b == OTHER_LINES for _, b in flows) else [])
    li = {x: i for i, x in enumerate(left_nodes)}
    ri = {y: len(left_nodes) + i for i, y in enumerate(right_nodes)}
    links = sorted(flows.items(), key=lambda kv: (li[kv[0][0]], -kv[1], ri[kv[0][1]]))
    return {
        "labels": [names.get(x, x) for x in left_nodes] + [names.get(y, y) for y in right_nodes],
        "source": [li[a] for (a, _), _ in links],
        "target": [ri[b] for (_, b), _ in links],
        "value": [n for _, n in links],
        "n_left": len(left_nodes),
        "shown_left": len(left),
        "shown_right": len(right),
        "grouped_moves": grouped,
        "lines_left": len(out_of),
        "lines_right": len(into),
    }


def sankey_figure(data: Mapping[str, Sequence[Any]]) -> go.Figure:
    """Sankey of workers moving from lines in one scenario (left) to lines in another (right).

    ``data`` is :func:`sankey_moves` (or :func:`allocator.compare.sankey_data`). The chart is
    never taller than :data:`SANKEY_MAX_HEIGHT`; "Other lines" nodes are grey.
    """
    n_left = int(data.get("n_left") or len(set(data["source"])))  # type: ignore[call-overload]
    labels = list(data["labels"])
    node_colours = [
        GREY if lab == OTHER_LINES else (BLUE if i < n_left else ORANGE) for i, lab in enumerate(labels)
    ]
    per_side = max(n_left, len(labels) - n_left, 1)
    source, target, value = list(data["source"]), list(data["target"]), list(data["value"])
    # Lines with a node of their own in order from the top, "Other lines" at the bottom, each
    # as tall as the workers through it; links from or to "Other lines" in pale grey.
    through = [0] * len(labels)
    for a, b, v in zip(source, target, value, strict=True):
        through[a] += v
        through[b] += v
    ys = [0.0] * len(labels)
    for side in (range(n_left), range(n_left, len(labels))):
        total = sum(through[i] for i in side) or 1
        seen = 0
        for i in side:
            ys[i] = 0.02 + 0.96 * (seen + through[i] / 2) / total
            seen += through[i]
    other = {i for i, lab in enumerate(labels) if lab == OTHER_LINES}
    link_colours = ["rgba(187,187,187,0.35)" if a in other or b in other else "rgba(86,180,233,0.45)"
                    for a, b in zip(source, target, strict=True)]
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node=dict(label=labels, color=node_colours, pad=14, thickness=14,
                      x=[0.001 if i < n_left else 0.999 for i in range(len(labels))], y=ys,
                      hovertemplate="%{label}: %{value} workers<extra></extra>"),
            link=dict(
                source=source,
                target=target,
                value=value,
                color=link_colours,
                hovertemplate="%{source.label} → %{target.label}: %{value} workers<extra></extra>",
            ),
        )
    )
    fig.update_layout(**_LAYOUT, height=min(SANKEY_MAX_HEIGHT, max(300, 44 * per_side + 80)))
    return fig


def running_best(history: Sequence[Any]) -> list[tuple[float, float | None, float | None]]:
    """``(elapsed, best cost so far, best proven lower limit so far)`` after each progress report.

    The solve's phases each report their own bound, and a later phase (the neighbourhood
    search) reports a much weaker one than the proof search before it: shown as it came, the
    "left to prove" share jumped from 5 % to 140 % while the allocation improved. Every reported
    bound is a lower limit on the same total cost, so the best one so far (the highest) holds;
    likewise the best allocation so far is the cheapest reported.
    """
    def get(p: Any, k: str) -> Any:
        return p.get(k) if isinstance(p, Mapping) else getattr(p, k)

    out: list[tuple[float, float | None, float | None]] = []
    obj: float | None = None
    bnd: float | None = None
    for p in history:
        o, b = get(p, "objective"), get(p, "bound")
        if o is not None:
            obj = float(o) if obj is None else min(obj, float(o))
        if b is not None:
            bnd = float(b) if bnd is None else max(bnd, float(b))
        out.append((float(get(p, "elapsed")), obj, bnd))
    return out


def best_so_far(history: Sequence[Any]) -> tuple[float | None, float | None]:
    """The best cost and the best proven lower limit reported so far (see :func:`running_best`)."""
    best = running_best(history)
    return (best[-1][1], best[-1][2]) if best else (None, None)


def progress_figure(history: Sequence[Any]) -> go.Figure:
    """Lines of the best allocation's cost and the proven lower bound over the solve's time.

    ``history`` holds :class:`allocator.jobs.ProgressPoint` (or dicts with elapsed, objective,
    bound). Both lines show the best so far (:func:`running_best`), so they only ever close
    in; when they meet, the allocation is proven the best possible.
    """
    pts = running_best(history)
    fig = go.Figure()
    obj = [(t, o) for t, o, _ in pts if o is not None]
    bnd = [(t, b) for t, _, b in pts if b is not None]
    fig.add_trace(
        go.Scatter(
            name="Best allocation found (total cost)",
            x=[t for t, _ in obj], y=[v for _, v in obj],
            mode="lines+markers", line=dict(color=BLUE, shape="hv"),
        )
    )
    fig.add_trace(
        go.Scatter(
            name="Proven lower limit",
            x=[t for t, _ in bnd], y=[v for _, v in bnd],
            mode="lines+markers", line=dict(color=ORANGE, dash="dash", shape="hv"),
        )
    )
    fig.update_layout(**_LAYOUT, height=260)
    fig.update_xaxes(title_text="Seconds since the solve started", rangemode="tozero")
    fig.update_yaxes(title_text="Total cost (lower is better)")
    if not obj and not bnd:
        # Before the first allocation or bound an empty chart would show a cost axis of -1 to 4:
        # numbers no solve gave. Say what is happening instead.
        fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
        fig.add_annotation(text="No allocation found yet: the lines start with the first one",
                           showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font=dict(color=GREY))
    return fig


def depth_figure(histogram: Mapping[int, int]) -> go.Figure:
    """Bars: how many workers ranked 0, 1, 2, ... job lines (the data-health panel)."""
    xs = sorted(histogram)
    fig = go.Figure(
        go.Bar(
            x=xs,
            y=[histogram[x] for x in xs],
            marker_color=[VERMILLION if x == 0 else BLUE for x in xs],
            hovertemplate="%{y} workers ranked %{x} lines<extra></extra>",
        )
    )
    fig.update_layout(**_LAYOUT, height=260, showlegend=False)
    fig.update_xaxes(title_text="Job lines the worker ranked", dtick=1 if len(xs) <= 30 else None)
    fig.update_yaxes(title_text="Workers")
    return fig


#: The most lines (or sites) a Sankey of moves draws; past it the page gives a table of moves.
MOVES_CHART_MAX_NODES = 12
NO_SITE = "No site recorded"  # kept for callers; a line without a site is now its own site
from editor import OWN_SITE  # noqa: E402 - one wording for a line without a site


def moves_chart(
    moves: Sequence[Mapping[str, Any]],
    *,
    sites: Mapping[str, str] | None = None,
    max_nodes: int = MOVES_CHART_MAX_NODES,
) -> dict[str, Any]:
    """How to draw who moved: a Sankey of lines, a Sankey of sites, or a table instead.

    ``moves`` are :func:`allocator.compare.moves` rows; ``sites`` maps job line ids to their
    site (:func:`allocator.compare.line_sites`; empty while lines carry no site). Up to
    ``max_nodes`` lines moved from or to: a Sankey of lines. More, and lines that carry sites
    spread over at most ``max_nodes`` sites: a Sankey of sites (a line without one is a site
    of its own, "<line> (its own site)"). Otherwise no chart: the page's table of moves lists them.

    Returns ``{"kind": "sankey" | "table", "by": "line" | "site" | None, "data"`` (the
    :func:`sankey_moves` dict, or ``None``), ``"lines"`` (lines moved from or to),
    ``"sites"`` (sites moved from or to, 0 without sites), ``"moves"`` and ``"note"``: one
    sentence saying what the chart shows and what it leaves out.
    """
    lines = {m["from_line_id"] for m in moves} | {m["to_line_id"] for m in moves}
    n = len(moves)
    out: dict[str, Any] = {"kind": "table", "by": None, "data": None, "lines": len(lines), "sites": 0, "moves": n}
    if not moves:
        out["note"] = "Nobody moved."
        return out
    if len(lines) <= max_nodes:
        out.update(kind="sankey", by="line", data=sankey_moves(moves, max_lines=len(lines) + 1))
        out["note"] = f"All {n} moves between the {len(lines)} lines involved."
        return out
    site_of = dict(sites or {})
    if site_of and any(j in site_of for j in lines):
        def group(line_id: str, name: str) -> tuple[str, str]:
            # business-rules.md: a line without a site is a site of its own, not one "no site" heap.
            if line_id in site_of:
                return "site:" + site_of[line_id], site_of[line_id]
            return "line:" + line_id, f"{name} ({OWN_SITE})"

        by_site = []
        for m in moves:
            (fid, fname), (tid, tname) = group(m["from_line_id"], m["from_line"]), group(m["to_line_id"], m["to_line"])
            by_site.append({**m, "from_line_id": fid, "from_line": fname, "to_line_id": tid, "to_line": tname})
        involved = {m["from_line_id"] for m in by_site} | {m["to_line_id"] for m in by_site}
        out["sites"] = len(involved)
        if len(involved) <= max_nodes:
            out.update(kind="sankey", by="site", data=sankey_moves(by_site, max_lines=len(involved) + 1))
            within = sum(1 for m in by_site if m["from_line_id"] == m["to_line_id"])
            out["note"] = (f"All {n} moves, grouped by site: {len(lines)} lines at {len(involved)} sites. "
                           + (f"{within} moves stay within one site (a band from a site to itself). " if within else "")
                           + "The table lists each worker's lines.")
            return out
        out["note"] = (f"{len(lines)} lines at {len(involved)} sites are involved: too many for a readable chart "
                       f"(at most {max_nodes}), so no chart is drawn. The table lists all {n} moves.")
        return out
    out["note"] = (f"{len(lines)} lines are involved: too many for a readable chart (at most {max_nodes}), "
                   f"so no chart is drawn. The table lists all {n} moves.")
    return out
