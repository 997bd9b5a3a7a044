"""Comparing scenarios: what differs in their settings, their headline numbers and who moved.

Everything here works on result dicts (``allocator-result/1``, as saved with a scenario), so a
comparison needs neither the solver nor the database. Labels are in planners' words; the
headline figures and how they are written are :mod:`allocator.kpis`'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from allocator.kpis import COMPARED, setting_text
from allocator.scenario import SETTING_LABELS


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


#: Headline numbers over the workers on lines they ranked, and the result metrics key that
#: records each (results saved before these keys existed are computed from their rows).
RANKED_KEYS = {
    "mean_rank": "mean_rank_ranked",
    "worst_rank": "worst_rank_ranked",
    "workers_on_unranked_lines": "unranked_count",
}

Pairs = Collection[tuple[str, str]]


def ranked_pairs(snapshot: Any) -> frozenset[tuple[str, str]]:
    """``(worker id, job line id)`` for every line a worker ranked in ``snapshot``."""
    return frozenset((p.worker_id, p.job_line_id) for p in snapshot.worker_preferences)


def _is_ranked(row: Mapping[str, Any], ranked: Pairs | None) -> bool | None:
    """Whether an allocation row's worker ranked its line (``None`` when it cannot be told)."""
    if ranked is not None:
        return (row["worker_id"], row["job_line_id"]) in ranked
    if isinstance(row.get("ranked"), bool):
        return row["ranked"]
    if "worker_rank" in row and row["worker_rank"] is None:
        return False
    return None


def ranked_figures(result: Mapping[str, Any] | None, ranked: Pairs | None = None) -> dict[str, float | None]:
    """Mean and worst rank over workers on lines they ranked, and how many are on unranked lines.

    Read from the result's metrics (``mean_rank_ranked``, ``worst_rank_ranked``,
    ``unranked_count``) when it records them; for a result saved before, computed from its
    allocation rows and ``ranked`` (the run's ranked pairs, :func:`ranked_pairs`). A figure
    that can be neither read nor computed is ``None`` (shown as "not recorded"); so is a mean
    or worst rank when nobody is on a line they ranked.
    """
    out: dict[str, float | None] = dict.fromkeys(RANKED_KEYS)
    if not result:
        return out
    metrics = result.get("metrics") or {}
    missing = []
    for key, recorded in RANKED_KEYS.items():
        if recorded in metrics:
            v = metrics[recorded]
            out[key] = None if v is None else float(v)
        else:
            missing.append(key)
    if not missing:
        return out
    rows = result.get("allocations") or []
    flags = [_is_ranked(r, ranked) for r in rows]
    if not rows or any(f is None for f in flags):
        return out
    ranks = [float(r["worker_rank"]) for r, f in zip(rows, flags, strict=True) if f]
    computed = {
        "mean_rank": sum(ranks) / len(ranks) if ranks else None,
        "worst_rank": max(ranks) if ranks else None,
        "workers_on_unranked_lines": float(sum(1 for f in flags if not f)),
    }
    for key in missing:
        out[key] = computed[key]
    return out


def kpi_value(result: Mapping[str, Any] | None, key: str, ranked: Pairs | None = None) -> float | None:
    """One headline number of a result (``None`` when the result has none).

    Mean and worst rank are over the workers on lines they ranked (see
    :func:`ranked_figures`): pass ``ranked`` to compute them for results saved before the
    result recorded them. Without ``ranked`` such an old result falls back to its own
    ``mean_rank`` / ``worst_rank`` figures.
    """
    if not result:
        return None
    metrics = result.get("metrics") or {}
    if key == "objective":
        return result.get("objective")
    if key in RANKED_KEYS and (RANKED_KEYS[key] in metrics or ranked is not None):
        return ranked_figures(result, ranked)[key]
    v = metrics.get(key)
    return None if v is None else float(v)


def kpi_delta(
    current: Mapping[str, Any] | None,
    previous: Mapping[str, Any] | None,
    key: str,
    ranked: Pairs | None = None,
) -> float | None:
    """``current - previous`` for one KPI, or ``None`` when either is missing."""
    a, b = kpi_value(current, key, ranked), kpi_value(previous, key, ranked)
    if a is None or b is None:
        return None
    return a - b


def _name(names: Mapping[str, str], id_: str) -> str:
    return names.get(id_) or id_


@dataclass(frozen=True)
class RunNames:
    """What :func:`what_differs` needs of the run: names, and each line's own places and flag."""

    workers: Mapping[str, str] = field(default_factory=dict)
    lines: Mapping[str, str] = field(default_factory=dict)
    places: Mapping[str, int] = field(default_factory=dict)
    must_fill: Mapping[str, bool] = field(default_factory=dict)
    #: The run's own links (id -> worker ids) and quotas (id -> the quota as a scenario writes it).
    links: Mapping[str, Sequence[str]] = field(default_factory=dict)
    quotas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, snapshot: Any) -> RunNames:
        return cls(
            workers={w.id: w.name or w.id for w in snapshot.workers},
            lines={j.id: j.name or j.id for j in snapshot.job_lines},
            places={j.id: j.max_n_workers for j in snapshot.job_lines},
            must_fill={j.id: j.must_have_workers for j in snapshot.job_lines},
            links={k.id: list(k.worker_ids) for k in getattr(snapshot, "linked_workers", None) or []},
            quotas={q.id: q.model_dump() for q in getattr(snapshot, "quotas", None) or []},
        )


def _section(view: ScenarioView, section: str) -> list[Mapping[str, Any]]:
    return [r for r in (view.overrides or {}).get(section) or [] if isinstance(r, Mapping)]


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _signed(value: float) -> str:
    text = f"{value:+g}"
    return text.replace("-", "−")


def what_differs(views: Sequence[ScenarioView], run: RunNames | None = None) -> list[dict[str, str]]:
    """Every setting and change that is not the same in all scenarios, named in planners' words.

    One row per difference: ``{"what": ..., <scenario name>: text, ...}``; every cell is text.
    Settings first, then each line whose places or must-be-filled flag differ (the run's own
    value where a scenario leaves the line as it is), each pin, forbid and organisation
    priority that some scenarios add and others don't, and each of the run's own pins and
    forbids that some scenarios lift. Workers and lines are named by name (their id when
    they have none).
    """
    run = run or RunNames()
    wn, ln = run.workers, run.lines
    rows: list[dict[str, str]] = []

    def add(what: str, cells: Sequence[str]) -> None:
        if len(set(cells)) > 1:
            rows.append({"what": what, **{v.name: c for v, c in zip(views, cells, strict=True)}})

    for k in SETTING_LABELS:
        if not any(k in v.settings for v in views):
            continue
        add(SETTING_LABELS[k], [_show_setting(k, v.settings.get(k)) for v in views])

    # Lines: places and must be filled, per line, in the order of the run (then any others).
    line_ov: list[dict[str, Mapping[str, Any]]] = [
        {str(r.get("job_line_id")): r for r in _section(v, "lines")} for v in views
    ]
    touched = {j for ov in line_ov for j in ov}
    order = [j for j in ln if j in touched] + sorted(touched - set(ln))
    for j in order:
        name = _name(ln, j)
        places = []
        must = []
        for ov in line_ov:
            r = ov.get(j) or {}
            places.append(_against_run(r.get("max_n_workers"), run.places.get(j), str))
            must.append(_against_run(r.get("must_have_workers"), run.must_fill.get(j), _yes_no))
        add(f"Places on {name}", places)
        add(f"{name} must be filled", must)

    def pairs(section: str) -> list[set[tuple[str, str]]]:
        return [{(str(r.get("worker_id")), str(r.get("job_line_id"))) for r in _section(v, section)} for v in views]

    for section, what, yes, no in (
        ("pins", "Pin {w} to {j}", "pinned", "–"),
        ("forbids", "Forbid {w} from {j}", "forbidden", "–"),
        ("lifted_pins", "The run's pin of {w} to {j}", "lifted", "kept"),
        ("lifted_forbids", "The run's forbid of {w} from {j}", "lifted", "kept"),
    ):
        per_view = pairs(section)
        # A pin set by hand carries its reason: shown with it, so a planner comparing sees why.
        why = [{(str(r.get("worker_id")), str(r.get("job_line_id"))): str(r.get("reason") or "").strip()
                for r in _section(v, section)} for v in views]
        for w, j in sorted(set().union(*per_view), key=lambda p: (_name(wn, p[0]), _name(ln, p[1]), p)):
            cells = [(f"{yes} ({why[k][(w, j)]})" if why[k].get((w, j)) else yes) if (w, j) in s else no
                     for k, s in enumerate(per_view)]
            add(what.format(w=_name(wn, w), j=_name(ln, j)), cells)

    weights: list[dict[tuple[str, str | None], float]] = []
    for v in views:
        d: dict[tuple[str, str | None], float] = {}
        for r in _section(v, "weightings"):
            key = (str(r.get("worker_id")), None if r.get("job_line_id") in (None, "") else str(r["job_line_id"]))
            d[key] = d.get(key, 0.0) + float(r.get("value") or 0.0)
        weights.append(d)
    for w, j in sorted(set().union(*weights), key=lambda p: (_name(wn, p[0]), p[1] is not None, _name(ln, p[1] or ""))):
        where = "every line" if j is None else _name(ln, j)
        cells = []
        for d in weights:
            if (w, j) not in d:
                cells.append("–")
            else:
                x = d[(w, j)]
                cells.append(f"{_signed(x)} ({'discourages' if x > 0 else 'favours' if x < 0 else 'no effect'})")
        add(f"Organisation priority for {_name(wn, w)} on {where}", cells)

    # Business rules (business-rules.md): links and quotas a scenario sets replace the run's.
    def replaced(section: str) -> list[dict[str, Mapping[str, Any]] | None]:
        out = []
        for v in views:
            given = (v.overrides or {}).get(section)
            out.append(None if given is None else {str(r.get("id")): r for r in given if isinstance(r, Mapping)})
        return out

    # A scenario's table holds the run's own entries too: one the scenario kept as it was reads
    # "as in the run" (and drops out when every scenario has it), not as a change.
    def same_link(a: Mapping[str, Any] | Sequence[str] | None, b: Sequence[str] | None) -> bool:
        ws = a.get("worker_ids") if isinstance(a, Mapping) else a
        return ws is not None and b is not None and sorted(map(str, ws)) == sorted(map(str, b))

    links = replaced("linked_workers")
    for lid in sorted({k for d in links if d for k in d} | ({k for k in run.links} if any(d is not None for d in links) else set())):
        own = run.links.get(lid)
        cells = []
        for d in links:
            if d is None or (lid in d and same_link(d[lid], own)):
                cells.append("as in the run")
            elif lid in d:
                cells.append(", ".join(_name(wn, str(w)) for w in d[lid].get("worker_ids") or []))
            else:
                cells.append("removed" if own is not None else "–")
        add(f"Link {lid}", cells)

    def link_count(d: Mapping[str, Mapping[str, Any]] | None) -> str:
        if d is None or (d.keys() == run.links.keys() and all(same_link(d[k], run.links[k]) for k in d)):
            return "as in the run"
        return f"{len(d)} link{'s' if len(d) != 1 else ''}"

    if any(d is not None for d in links):
        add("Linked workers", [link_count(d) for d in links])

    def quota_text(q: Mapping[str, Any]) -> str:
        scope = ", ".join(q.get("sites") or []) or ", ".join(_name(ln, str(j)) for j in q.get("job_line_ids") or [])
        bounds = [f"at least {q.get('min_workers') or 0}"]
        if q.get("max_workers") is not None:
            bounds.append(f"at most {q['max_workers']}")
        tag = f" with tag {q['qualification_id']}" if q.get("qualification_id") else ""
        return f"{' and '.join(bounds)}{tag} on {scope}"

    quotas = replaced("quotas")
    for qid in sorted({k for d in quotas if d for k in d} | ({k for k in run.quotas} if any(d is not None for d in quotas) else set())):
        own = run.quotas.get(qid)
        cells = []
        for d in quotas:
            if d is None or (qid in d and own is not None and quota_text(d[qid]) == quota_text(own)):
                cells.append("as in the run")
            elif qid in d:
                cells.append(quota_text(d[qid]))
            else:
                cells.append("removed" if own is not None else "–")
        add(f"Quota {qid}", cells)

    tiers = [{str(r.get("worker_id")): r.get("priority") for r in _section(v, "priorities")} for v in views]
    for w in sorted(set().union(*tiers), key=lambda x: (_name(wn, x), x)):
        add(f"Priority tier of {_name(wn, w)}",
            ["as in the run" if w not in d else ("no tier" if d[w] is None else f"tier {d[w]}") for d in tiers])

    prev = [(v.overrides or {}).get("previous_allocations") for v in views]
    if any(p is not None for p in prev):
        add("Previous allocation", ["as in the run" if p is None else
                                    f"{len(p)} worker{'s' if len(p) != 1 else ''} and their lines" for p in prev])
    return rows


def _against_run(value: Any, own: Any, show: Any) -> str:
    """A line's value in one scenario, marked when it is the run's own."""
    if value is None and own is None:
        return "as in the run"
    if value is None or value == own:
        return f"{show(own)} (as in the run)"
    return show(value)


def change_text(before: str, after: str) -> str:
    """``before → after`` for one row of :func:`what_differs` ("same" when equal)."""
    return "same" if before == after else f"{before} → {after}"


def settings_diff(views: Sequence[ScenarioView]) -> list[dict[str, Any]]:
    """:func:`what_differs` with its first column called ``setting`` (kept for old callers)."""
    return [{"setting": r["what"], **{k: v for k, v in r.items() if k != "what"}} for r in what_differs(views)]


def _show_setting(key: str, value: Any) -> str:
    """A setting's value in planners' words, always as text (one type per table column)."""
    return "as in the run" if value is None else setting_text(key, value)


def kpi_table(views: Sequence[ScenarioView], ranked: Pairs | None = None) -> list[dict[str, Any]]:
    """One row per KPI: its value in each scenario and the change from the first (baseline).

    Row keys: ``kpi`` (label), ``key``, then ``<name>`` (value) for each scenario and
    ``<name> change`` for every scenario after the first. Mean and worst rank are over the
    workers on lines they ranked (``ranked``: see :func:`kpi_value`).
    """
    # Each scenario's numbers once (the ranked-lines figures walk every allocation row).
    values = [{k.key: kpi_value(v.result, k.key, ranked) for k in COMPARED} for v in views]
    rows = []
    for kpi in COMPARED:
        row: dict[str, Any] = {"kpi": kpi.label, "key": kpi.key}
        for i, v in enumerate(views):
            row[v.name] = values[i][kpi.key]
            if i > 0:
                a, b = values[i][kpi.key], values[0][kpi.key]
                row[f"{v.name} change"] = None if a is None or b is None else a - b
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


#: How a move turned out for the worker, in the order the counts are shown. Every move is
#: exactly one of these, so the counts add up to the number of workers who moved.
MOVE_KINDS: tuple[str, ...] = ("better", "equal", "worse", "to_unranked", "from_unranked", "both_unranked")

#: Each kind in planners' words: "<n> workers moved <words>".
MOVE_WORDS: dict[str, str] = {
    "better": "to a line they ranked higher",
    "equal": "to a line they ranked the same",
    "worse": "to a line they ranked lower",
    "to_unranked": "from a line they ranked to one they did not rank",
    "from_unranked": "from a line they did not rank to one they ranked",
    "both_unranked": "between two lines they did not rank",
}

#: Short words for a table cell.
MOVE_SHORT: dict[str, str] = {
    "better": "better",
    "equal": "same rank",
    "worse": "worse",
    "to_unranked": "to a line not ranked",
    "from_unranked": "from a line not ranked",
    "both_unranked": "between lines not ranked",
}

NOT_RANKED = "not ranked"


def move_kind(rank_before: float | None, rank_after: float | None) -> str:
    """The kind of a move (:data:`MOVE_KINDS`) from the ranks a worker gave the two lines.

    ``None`` is a line the worker did not rank. Lines in one tie group have the same
    fractional rank, so a move within it is ``"equal"``.
    """
    if rank_before is None and rank_after is None:
        return "both_unranked"
    if rank_after is None:
        return "to_unranked"
    if rank_before is None:
        return "from_unranked"
    if abs(float(rank_after) - float(rank_before)) < 1e-9:
        return "equal"
    return "better" if rank_after < rank_before else "worse"


def _rank_of(row: Mapping[str, Any], ranked: Pairs | None) -> float | None:
    flag = _is_ranked(row, ranked)
    if flag is False or row.get("worker_rank") is None:
        return None
    return float(row["worker_rank"])


def rank_text(rank: float | None) -> str:
    """A rank as a planner reads it: the number the worker gave, or "not ranked"."""
    return NOT_RANKED if rank is None else f"{rank:g}"


def moves(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    worker_names: Mapping[str, str] | None = None,
    line_names: Mapping[str, str] | None = None,
    ranked: Pairs | None = None,
) -> list[dict[str, Any]]:
    """Workers whose line differs between two results, with how it turned out for them.

    ``ranked`` is the set of ``(worker id, job line id)`` pairs the workers ranked
    (:func:`ranked_pairs`); a line outside it has no rank (``rank_before`` / ``rank_after``
    ``None``), never its shared fractional rank. Without ``ranked`` a row's own ``ranked``
    flag is used when it has one, else its rank is taken as given.

    Each row: ``worker_id``, ``worker``, ``from_line``, ``to_line``, ``from_line_id``,
    ``to_line_id``, ``rank_before``, ``rank_after``, ``rank_change`` (after minus before:
    negative is better; ``None`` unless both lines were ranked) and ``kind`` (one of
    :data:`MOVE_KINDS`). Sorted worst first: worse (largest loss first), to an unranked
    line, between unranked lines, same rank, from an unranked line, better; then by worker id.
    """
    a, b = _by_worker(before), _by_worker(after)
    wn, ln = worker_names or {}, line_names or {}
    rows = []
    for wid in sorted(set(a) & set(b)):
        x, y = a[wid], b[wid]
        if x["job_line_id"] == y["job_line_id"]:
            continue
        rb, ra = _rank_of(x, ranked), _rank_of(y, ranked)
        rows.append({
            "worker_id": wid,
            "worker": wn.get(wid) or wid,
            "from_line": ln.get(x["job_line_id"]) or x["job_line_id"],
            "to_line": ln.get(y["job_line_id"]) or y["job_line_id"],
            "from_line_id": x["job_line_id"],
            "to_line_id": y["job_line_id"],
            "rank_before": rb,
            "rank_after": ra,
            "rank_change": None if rb is None or ra is None else ra - rb,
            "kind": move_kind(rb, ra),
        })
    order = {k: i for i, k in enumerate(("worse", "to_unranked", "both_unranked", "equal", "from_unranked", "better"))}
    rows.sort(key=lambda r: (order[r["kind"]], -(r["rank_change"] or 0), r["worker_id"]))
    return rows


def move_summary(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many workers moved, and how many of each kind (:data:`MOVE_KINDS`).

    The kinds partition the moves: ``sum(out[k] for k in MOVE_KINDS) == out["moved"]``.
    """
    out = {"moved": 0, **dict.fromkeys(MOVE_KINDS, 0)}
    for r in rows:
        out["moved"] += 1
        out[r.get("kind") or move_kind(r.get("rank_before"), r.get("rank_after"))] += 1
    return out


def move_sentence(summary: Mapping[str, int]) -> str:
    """The move counts as a sum that adds up, e.g. "117 moved = 103 better + 4 same rank + 10 worse".

    Kinds with no workers are left out of the sum, except better / same / worse, which are
    always shown.
    """
    parts = [f"{summary.get(k, 0)} {MOVE_SHORT[k]}" for k in MOVE_KINDS
             if k in ("better", "equal", "worse") or summary.get(k, 0)]
    moved = summary.get("moved", 0)
    return f"{moved} {'worker' if moved == 1 else 'workers'} moved = " + " + ".join(parts)


def line_sites(snapshot: Any) -> dict[str, str]:
    """Each job line's site, for lines that carry one (none do until lines get a site).

    Read with ``getattr`` so that a ``site`` attribute on job lines (business rules) is
    picked up without a change here.
    """
    out = {}
    for j in getattr(snapshot, "job_lines", None) or []:
        site = getattr(j, "site", None)
        if site:
            out[j.id] = str(site)
    return out


def workers_in_one_only(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> tuple[int, int]:
    """How many workers only ``before`` places, and how many only ``after`` (the run's workers changed)."""
    a, b = set(_by_worker(before)), set(_by_worker(after))
    return len(a - b), len(b - a)


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
