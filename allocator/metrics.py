"""Metrics of an allocation, recomputed from :class:`~allocator.problem.ProblemData`.

Nothing here touches a solver: every figure is computed from the problem data and the
assignment alone (``assignment[s]`` is the line index of worker ``s``), so a solver bug cannot
hide in its own report. Everything returned is plain JSON (dicts, lists, ints, floats, None).

Definitions (allocation-model.md, "What a solution reports"):

- **rank** of a worker: the fractional rank ``r_s(p)`` of the line ``p`` they got, with the
  unranked-items rule applied (a worker who ranked ``r`` of ``N`` lines gives every unranked
  line ``(r + 1 + N) / 2``).
- **choice** of a worker: the position at which the worker's tie group for ``p`` starts in their
  own list, i.e. ``1 +`` the number of lines they ranked strictly better than ``p`` (competition
  notation). A line in the worker's first tie group is their *first choice* even when the tie
  gives it the fractional rank 1.5; a tie group occupying positions 2..5 counts as a *top-three
  choice* (it starts at position 2). A line the worker did not rank has no choice number: it is
  an *unranked line*, whatever its fractional rank.
- **worker dissatisfaction** (for the Gini coefficient): ``Dw(s, p) = r_s(p) ** k``, the worker
  side of the cost, without the preferencer side or weightings.
- **honest ranks**: a line a worker did not rank has no rank a planner would recognise (its
  shared fractional rank is the model's device for costing it, not a rank anyone gave). The
  planners' mean and worst rank are over the workers on lines they ranked only
  (``mean_rank_ranked``, ``worst_rank_ranked``), with the workers on unranked lines counted
  beside them (``unranked_count``); pages and exports show such a worker as
  :data:`NOT_RANKED`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from allocator.kpis import ordinal
from allocator.stability import blocking_mask

if TYPE_CHECKING:
    from allocator.problem import ProblemData

SIG_DIGITS = 10

UNRANKED = "unranked"

#: How a worker on a line they did not rank is shown, wherever a rank would be.
NOT_RANKED = "not ranked"


def round_sig(x: float | None, digits: int = SIG_DIGITS) -> float | None:
    """``x`` rounded to ``digits`` significant digits (None and non-finite values pass through).

    Every float the engine reports goes through here, so that the same inputs give the same
    bytes however the sum was ordered inside a solver.
    """
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x) or x == 0.0:
        return 0.0 if x == 0.0 else x
    return float(f"{x:.{digits}g}")


def choice_numbers(problem: ProblemData, assignment: np.ndarray) -> np.ndarray:
    """Choice number of each worker's line (see the module docstring); 0 for an unranked line."""
    a = np.asarray(assignment, dtype=np.int64)
    rows = np.arange(problem.n_workers)
    got = problem.worker_rank[rows, a]
    better = problem.worker_ranked & (problem.worker_rank < got[:, None])
    choice = better.sum(axis=1) + 1
    return np.where(problem.worker_ranked[rows, a], choice, 0)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative ``values``: ``sum |x_i - x_j| / (2 n^2 mean)``.

    0 when everyone is equally (dis)satisfied; approaches 1 when one carries it all.
    0 for an empty or all-zero input.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    total = x.sum()
    if n == 0 or total <= 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float((2.0 * (i * x).sum()) / (n * total) - (n + 1.0) / n)


def rank_distribution(
    problem: ProblemData, assignment: np.ndarray, members: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """How many workers got their 1st, 2nd, ... choice, and how many an unranked line.

    One bucket per choice number from 1 to the largest one given (zeros included, so a chart
    has no gaps), then the ``unranked`` bucket. Each bucket:
    ``{"choice": 1 | ... | "unranked", "label": "1st choice" | "unranked line", "workers": n}``.
    ``members`` (bool per worker) counts only those workers (a tier, a site's workers).
    """
    choice = choice_numbers(problem, assignment)
    if members is not None:
        choice = choice[np.asarray(members, dtype=bool)]
    ranked = choice[choice > 0]
    top = int(ranked.max()) if ranked.size else 0
    counts = np.bincount(ranked, minlength=top + 1) if top else np.zeros(1, dtype=np.int64)
    out: list[dict[str, Any]] = [
        {"choice": k, "label": f"{ordinal(k)} choice", "workers": int(counts[k])}
        for k in range(1, top + 1)
    ]
    out.append({"choice": UNRANKED, "label": "unranked line", "workers": int((choice == 0).sum())})
    return out


def ranked_rank_metrics(ranks: Any, ranked: Any) -> dict[str, Any]:
    """Mean and worst rank over workers on lines they ranked, and how many are on unranked lines.

    Parameters
    ----------
    ranks
        Each worker's fractional rank for the line they got (any value where ``ranked`` is False).
    ranked
        Whether each worker ranked the line they got.

    Returns
    -------
    dict
        ``mean_rank_ranked`` and ``worst_rank_ranked`` (None when no worker is on a line they
        ranked) and ``unranked_count``.
    """
    r = np.asarray(ranks, dtype=np.float64)
    ok = np.asarray(ranked, dtype=bool)
    mine = r[ok]
    return {
        "mean_rank_ranked": round_sig(mine.mean()) if mine.size else None,
        "worst_rank_ranked": round_sig(mine.max()) if mine.size else None,
        "unranked_count": int((~ok).sum()),
    }


def ranked_pairs(snapshot: Any) -> set[tuple[str, str]]:
    """The ``(worker id, job line id)`` pairs the workers ranked themselves, from a snapshot.

    A result dict's ``worker_rank`` holds the shared fractional rank for an unranked line, so a
    page or an export that only has the result JSON tells ranked from unranked with this.
    """
    return {(p.worker_id, p.job_line_id) for p in snapshot.worker_preferences}


def rank_metrics_of_result(result: Mapping[str, Any], snapshot: Any) -> dict[str, Any]:
    """:func:`ranked_rank_metrics` of a result dict's allocations, ranked pairs from ``snapshot``.

    For results saved before the result JSON carried these keys (they have the allocations, each
    with its fractional rank, but not whether the worker ranked the line).
    """
    have = ranked_pairs(snapshot)
    allocs = list(result.get("allocations") or [])
    ranks = [float(a.get("worker_rank") or 0.0) for a in allocs]
    ranked = [(a["worker_id"], a["job_line_id"]) in have for a in allocs]
    return ranked_rank_metrics(ranks, ranked)


def line_fill(problem: ProblemData, assignment: np.ndarray) -> list[dict[str, Any]]:
    """Fill of every job line (sorted by id) against its capacity."""
    fill = np.bincount(np.asarray(assignment, dtype=np.int64), minlength=problem.n_lines)
    return [
        {
            "job_line_id": problem.line_ids[j],
            "filled": int(fill[j]),
            "capacity": int(problem.capacity[j]),
            "vacancies": int(max(problem.capacity[j] - fill[j], 0)),
            "mandatory": bool(problem.mandatory[j]),
        }
        for j in range(problem.n_lines)
    ]


def compute_metrics(problem: ProblemData, assignment: np.ndarray) -> dict[str, Any]:
    """Every metric of allocation-model.md for one allocation, as a JSON-ready dict.

    Keys
    ----
    n_workers, n_job_lines
        Size of the run.
    rank_distribution
        See :func:`rank_distribution`.
    worker_rank_counts
        ``[{"rank": r, "workers": n}]`` over the fractional ranks workers got, ascending; like
        ``mean_rank`` it counts a line a worker did not rank at its shared rank (the model's
        view, not for planners: show ``rank_distribution``, whose unranked bucket has no rank).
    first_choice_share, top3_choice_share
        Share (0..1) of workers whose line is their first / a top-three choice (choice number
        1 / at most 3, see the module docstring; unranked lines never count).
    mean_rank_ranked, worst_rank_ranked
        Mean and largest fractional rank ``r_s(M(s))`` over the workers placed on a line they
        ranked; None when there is none. These are the mean and worst rank planners see.
    unranked_count
        Workers placed on a line they did not rank (beside the two above).
    mean_rank, worst_rank
        Mean and largest fractional rank over *all* workers, a line a worker did not rank
        counted at its shared fractional rank ``(r + 1 + N) / 2``: the ranks the objective
        counts, kept for compatibility. Not ranks anyone gave: never show them to planners
        as ranks (a worst rank of 36 can come from workers who ranked 20 lines).
    workers_on_unranked_lines
        The same number as ``unranked_count`` (the older key).
    preferencer_mean_rank
        Mean, over allocated pairs whose line has preferencers, of the mean rank those
        preferencers give the worker (power 1). None when no such pair exists.
    pairs_with_preferencers
        The number of those pairs.
    preferencer_mean_rank_ranked, preferencer_unranked_count
        The supervisors' side as they ranked it: the mean, over allocated pairs whose line has
        supervisors who ranked the worker, of the (fractional) ranks those supervisors gave;
        and how many allocated pairs have supervisors none of whom ranked the worker (their
        shared rank is no rank anyone gave: ``preferencer_mean_rank`` counts it, the page
        must not). See :func:`preferencer_ranked_metrics`.
    line_fill
        See :func:`line_fill`.
    mandatory_lines, mandatory_lines_filled
        Lines that must be filled, and how many of them have at least one worker.
    places, vacancies
        Total capacity, and the total of ``max(capacity - filled, 0)`` over lines.
    blocking_pairs
        Number of blocking pairs (weak stability, allocation-model.md constraint 5), counted
        whether or not stability was asked for.
    worker_dissatisfaction_gini
        Gini coefficient of ``Dw(s, M(s))`` over workers.
    objective
        Sum of the costs of the chosen pairs, recomputed.
    """
    a = np.asarray(assignment, dtype=np.int64)
    m, n = problem.n_workers, problem.n_lines
    if a.shape != (m,):
        raise ValueError(f"assignment has shape {a.shape}, expected ({m},)")
    rows = np.arange(m)
    got_rank = problem.worker_rank[rows, a]
    choice = choice_numbers(problem, a)
    fill = np.bincount(a, minlength=n)

    ranks, counts = np.unique(got_rank, return_counts=True)
    pref = problem.preferencer_rank[rows, a]
    has_pref = ~np.isnan(pref)
    dw = problem.dw[rows, a]

    def share(k: int) -> float | None:
        return round_sig(k / m) if m else None

    honest = ranked_rank_metrics(got_rank, problem.worker_ranked[rows, a])
    return {
        "n_workers": m,
        "n_job_lines": n,
        "rank_distribution": rank_distribution(problem, a),
        "worker_rank_counts": [
            {"rank": round_sig(r), "workers": int(c)} for r, c in zip(ranks.tolist(), counts.tolist(), strict=True)
        ],
        "first_choice_share": share(int((choice == 1).sum())),
        "top3_choice_share": share(int(((choice >= 1) & (choice <= 3)).sum())),
        "mean_rank": round_sig(got_rank.mean()) if m else None,
        "worst_rank": round_sig(got_rank.max()) if m else None,
        **honest,
        "workers_on_unranked_lines": int((choice == 0).sum()),
        "preferencer_mean_rank": round_sig(pref[has_pref].mean()) if has_pref.any() else None,
        **preferencer_ranked_metrics(problem, a),
        "pairs_with_preferencers": int(has_pref.sum()),
        "line_fill": line_fill(problem, a),
        "mandatory_lines": int(problem.mandatory.sum()),
        "mandatory_lines_filled": int((problem.mandatory & (fill >= 1)).sum()),
        "places": int(problem.capacity.sum()),
        "vacancies": int(np.maximum(problem.capacity - fill, 0).sum()),
        "blocking_pairs": int(blocking_mask(problem, a).sum()),
        "worker_dissatisfaction_gini": round_sig(gini(dw)),
        "objective": round_sig(problem.objective(a)),
        **business_rule_metrics(problem, a),
    }


def _group_metrics(problem: ProblemData, a: np.ndarray, members: np.ndarray) -> dict[str, Any]:
    """Rank figures of one group of workers (a tier, the workers on a site's lines)."""
    rows = np.flatnonzero(members)
    sub = a[rows]
    choice = choice_numbers(problem, a)[rows]
    k = rows.size
    return {
        "n_workers": int(k),
        "rank_distribution": rank_distribution(problem, a, members),
        "first_choice_share": round_sig(int((choice == 1).sum()) / k) if k else None,
        **ranked_rank_metrics(problem.worker_rank[rows, sub], problem.worker_ranked[rows, sub]),
    }


def business_rule_metrics(problem: ProblemData, assignment: np.ndarray) -> dict[str, Any]:
    """The reports of business-rules.md, present only for a run that uses the rules.

    Keys (each only when the run has what it reports on, so a run without the business
    rules keeps its bytes):

    links
        ``[{"id", "worker_ids", "job_line_ids", "site"}]``: per link, the site its workers
        got (the line's id for a line that is a site of its own; None if they are split,
        which a valid allocation never is).
    quotas
        ``[{"id", "count", "min_workers", "max_workers", "met"}]``: the count against its bounds.
    tiers
        ``[{"priority", "n_workers", "rank_distribution", "first_choice_share",
        "mean_rank_ranked", "worst_rank_ranked", "unranked_count"}]``, tier 1 first and the
        workers without a priority (``priority`` None) last; when any worker has a priority.
    sites
        ``[{"site", "job_line_ids", "n_workers", ...the same figures as a tier}]`` for the
        workers placed on each site's lines; when any line has a site.
    moves, moves_count
        ``[{"worker_id", "from", "to"}]``: the workers of the previous allocation placed on a
        different line (sorted by worker id), and how many; when a previous allocation is given.
    """
    a = np.asarray(assignment, dtype=np.int64)
    out: dict[str, Any] = {}
    site = problem.site
    if problem.links:
        links = []
        for link in problem.links:
            got = a[link.workers]
            sites = {int(site[j]) for j in got.tolist()}
            links.append({
                "id": link.id,
                "worker_ids": [problem.worker_ids[s] for s in link.workers.tolist()],
                "job_line_ids": [problem.line_ids[j] for j in got.tolist()],
                "site": problem.site_labels[sites.pop()] if len(sites) == 1 else None,
            })
        out["links"] = links
    if problem.quotas:
        quotas = []
        for q in problem.quotas:
            count = q.count(a)
            quotas.append({
                "id": q.id,
                "count": count,
                "min_workers": q.min_workers,
                "max_workers": q.max_workers,
                "met": bool(count >= q.min_workers and (q.max_workers is None or count <= q.max_workers)),
            })
        out["quotas"] = quotas
    if any(p is not None for p in problem.tier_priorities):
        out["tiers"] = [
            {"priority": prio, **_group_metrics(problem, a, problem.tier == t)}
            for t, prio in enumerate(problem.tier_priorities)
        ]
    if any(s is not None for s in problem.line_sites):
        on_site = site[a]
        out["sites"] = [
            {
                "site": label,
                "job_line_ids": [problem.line_ids[j] for j in np.flatnonzero(site == k).tolist()],
                **_group_metrics(problem, a, on_site == k),
            }
            for k, label in sorted(enumerate(problem.site_labels), key=lambda kv: kv[1])
        ]
    had = problem.previous >= 0
    if had.any():
        moved = np.flatnonzero(had & (a != problem.previous))
        out["moves"] = [
            {"worker_id": problem.worker_ids[s], "from": problem.line_ids[int(problem.previous[s])],
             "to": problem.line_ids[int(a[s])]}
            for s in moved.tolist()
        ]
        out["moves_count"] = int(moved.size)
    return out


def preferencer_ranked_metrics(problem: Any, assignment: Any) -> dict[str, Any]:
    """The supervisors' mean rank over the workers they ranked, and the count they did not.

    For each worker ``s`` on line ``p`` whose line has supervisors ``P(p)``: the supervisors of
    ``P(p)`` who ranked ``s`` give their fractional ranks (ties shared, as the model ranks),
    and the pair counts with the mean of those; a pair none of whose supervisors ranked ``s``
    is counted in ``preferencer_unranked_count`` instead. ``preferencer_mean_rank_ranked`` is
    the mean over the counted pairs (None when there are none).
    """
    from allocator.problem import fractional_ranks

    snap = problem.snapshot
    workers = {w: i for i, w in enumerate(problem.worker_ids)}
    prefs = [q for q in snap.preferencer_preferences if q.worker_id in workers]
    qid = {q: k for k, q in enumerate(sorted({q.preferencer_id for q in prefs}))}
    frac, _ = fractional_ranks(np.array([qid[q.preferencer_id] for q in prefs], dtype=np.int64),
                               np.array([float(q.rank) for q in prefs]))
    gave = {(q.preferencer_id, q.worker_id): float(r) for q, r in zip(prefs, frac.tolist(), strict=True)}
    supervisors = {j.id: list(j.preferencer_ids or []) for j in snap.job_lines}
    means: list[float] = []
    unranked = 0
    for s, j in enumerate(np.asarray(assignment, dtype=np.int64).tolist()):
        qs = supervisors.get(problem.line_ids[j]) or []
        if not qs:
            continue
        given = [gave[(q, problem.worker_ids[s])] for q in qs if (q, problem.worker_ids[s]) in gave]
        if given:
            means.append(sum(given) / len(given))
        else:
            unranked += 1
    return {
        "preferencer_mean_rank_ranked": round_sig(sum(means) / len(means)) if means else None,
        "preferencer_unranked_count": unranked,
    }
