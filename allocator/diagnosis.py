"""Infeasibility diagnosis: why no allocation exists, in words a planner can act on.

Without stability the constraints of allocation-model.md are a bipartite b-matching: every
worker takes one allowed job line, a line takes at most ``capacity`` workers, a mandatory line
at least one (a pinned worker's only allowed line is their pin). Such a run is feasible
**exactly** when both of these hold:

(a) *workers' side*: every set ``S`` of workers has at least ``|S|`` places on the lines its
    members may take (Hall's condition with capacities);
(b) *mandatory side*: every set ``L`` of mandatory lines can be reached by at least ``|L|``
    distinct workers (Hall's condition on the lines, each line with at least one place).

Why both together suffice: split each line into ``capacity`` single places and call the first
place of a mandatory line its "mandatory place". (a) gives a matching covering every worker,
(b) one covering every mandatory place; by the Mendelsohn-Dulmage theorem some matching covers
both, which is an allocation. So "the mandatory lines cannot be filled together with everyone
getting a line" never happens on its own: it is always (a) or (b), and :func:`diagnose` is
complete. Each condition is decided by one max-flow; when it fails, the source side of the
minimum cut (``SimpleMaxFlow.get_source_side_min_cut``, the smallest set of largest deficit) is
the violating set, split into its connected pieces, each reported with its workers and lines.

Cheap special cases are reported first, with more specific words (:func:`precheck`): a worker
with no line they can take, a mandatory line with no places or no worker who can take it, total
places below the number of workers, pins that overfill a line or take every worker a mandatory
line could have. The flows then report only what those cases do not already say.

Stability is the one thing flows cannot decide (weak stability with ties is NP-hard). When the
solver says a stable run is infeasible but :func:`diagnose` finds nothing, the engine asks the
solver about relaxed runs and :func:`stability_conflict` words the answer.

Links and quotas (business-rules.md) break the two-flow argument: with them an empty answer no
longer proves feasibility. Their checks (:func:`rule_precheck`, part of :func:`precheck`; and
:func:`quota_ranges`, part of :func:`diagnose`) are each a certificate, exact reasoning about
one link, one site or a family of quotas: a link with no site where every member has a line,
or none with room for all of them; a site that must hold links that fit nowhere else; a quota
minimum above its places, the workers it counts who can reach its lines, or how many of them
its lines take at once; a maximum below the workers who can take no other line or its lines
that must be filled; families of quotas likewise; and by min-cost flows the least and most a
quota (or family) can count while the seed's rules hold. What only several rules together
rule out, the engine finds by asking the solver about runs with rules dropped (a deletion
filter), and :func:`rules_collide` words it.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from ortools.graph.python import max_flow, min_cost_flow

from allocator.eligibility import Reason
from allocator.findings import Finding

if TYPE_CHECKING:
    from allocator.problem import ProblemData

# The codes of the diagnosis's findings (every one a problem: the run cannot be solved).
WORKER_NO_LINE = "WORKER_NO_LINE"
MANDATORY_LINE_NO_PLACES = "MANDATORY_LINE_NO_PLACES"
MANDATORY_LINE_NO_WORKER = "MANDATORY_LINE_NO_WORKER"
CAPACITY_BELOW_WORKERS = "CAPACITY_BELOW_WORKERS"
PINS_OVERFILL_LINE = "PINS_OVERFILL_LINE"
PINS_BLOCK_MANDATORY = "PINS_BLOCK_MANDATORY"
WORKERS_EXCEED_PLACES = "WORKERS_EXCEED_PLACES"
MANDATORY_LINES_SHORT_OF_WORKERS = "MANDATORY_LINES_SHORT_OF_WORKERS"
STABILITY_CONFLICT = "STABILITY_CONFLICT"
UNEXPLAINED = "UNEXPLAINED"

CODES = (
    WORKER_NO_LINE,
    MANDATORY_LINE_NO_PLACES,
    MANDATORY_LINE_NO_WORKER,
    CAPACITY_BELOW_WORKERS,
    PINS_OVERFILL_LINE,
    PINS_BLOCK_MANDATORY,
    WORKERS_EXCEED_PLACES,
    MANDATORY_LINES_SHORT_OF_WORKERS,
    STABILITY_CONFLICT,
    UNEXPLAINED,
)

# Beyond this many workers (lines) with the same simple problem, one summary entry names the rest:
# a per-entry explanation walks every line (worker) in Python.
DETAIL_LIMIT = 100
# Names listed inside one message; the id lists of the entry always name everyone.
NAMES_IN_MESSAGE = 8


def entry(finding: Finding) -> dict[str, Any]:
    """``finding`` as an entry of a result's ``diagnosis`` list (run-snapshot.md, "Result").

    Every diagnosis is a problem, so the entry leaves the severity out: code, message and the ids.
    """
    return {
        "code": finding.code,
        "message": finding.message,
        "worker_ids": list(finding.worker_ids),
        "job_line_ids": list(finding.job_line_ids),
    }


def from_entry(x: Mapping[str, Any]) -> Finding:
    """The finding a result's ``diagnosis`` entry (:func:`entry`) was written from."""
    return Finding.problem(x["code"], x["message"], tuple(x.get("worker_ids", ())),
                           tuple(x.get("job_line_ids", ())))


# -- naming ---------------------------------------------------------------------------------


def _label(name: str, id_: str) -> str:
    return f"'{name}' ({id_})" if name and name != id_ else f"'{id_}'"


def worker_label(problem: ProblemData, s: int) -> str:
    return _label(problem.worker_names[s], problem.worker_ids[s])


def line_label(problem: ProblemData, j: int) -> str:
    return _label(problem.line_names[j], problem.line_ids[j])


def _listing(labels: list[str], limit: int = NAMES_IN_MESSAGE) -> str:
    if len(labels) <= limit:
        if len(labels) <= 1:
            return "".join(labels)
        return ", ".join(labels[:-1]) + " and " + labels[-1]
    return ", ".join(labels[:limit]) + f" and {len(labels) - limit} more"


def _workers(problem: ProblemData, idx) -> str:
    return _listing([worker_label(problem, int(s)) for s in idx])


def _lines(problem: ProblemData, idx) -> str:
    return _listing([line_label(problem, int(j)) for j in idx])


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _tags(tags) -> str:
    return _listing([repr(t) for t in tags], limit=len(tags) or 1)


def _tags_or(tags) -> str:
    quoted = [repr(t) for t in tags]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _wids(problem: ProblemData, idx) -> tuple[str, ...]:
    return tuple(sorted(problem.worker_ids[int(s)] for s in idx))


def _lids(problem: ProblemData, idx) -> tuple[str, ...]:
    return tuple(sorted(problem.line_ids[int(j)] for j in idx))


# -- the usable graph -----------------------------------------------------------------------


def usable_pairs(problem: ProblemData) -> np.ndarray:
    """(M, N) bool: allowed pairs on lines with at least one place."""
    return problem.allowed & (problem.capacity > 0)[None, :]


# -- cheap checks ---------------------------------------------------------------------------


def precheck(problem: ProblemData) -> list[Finding]:
    """The cheap checks (numpy, no flow over the whole run): a few milliseconds even on 5,000 x 1,000.

    Every entry returned is a genuine reason for infeasibility, so the engine can skip the
    solver when this is not empty. An empty answer does not prove feasibility; :func:`diagnose`
    does (without stability, links and quotas). With links and quotas, their own checks
    (:func:`rule_precheck`: small max-flows on the rules' lines) come last.
    """
    out: list[Finding] = []
    out += _pins_overfill(problem)
    out += _workers_without_line(problem)
    out += _mandatory_lines(problem)
    out += _capacity_total(problem)
    out += rule_precheck(problem)
    return out


def _pins_overfill(problem: ProblemData) -> list[Finding]:
    pinned = np.flatnonzero(problem.pin >= 0)
    if pinned.size == 0:
        return []
    counts = np.bincount(problem.pin[pinned], minlength=problem.n_lines)
    out = []
    for j in np.flatnonzero(counts > problem.capacity):
        who = pinned[problem.pin[pinned] == j]
        cap = int(problem.capacity[j])
        out.append(
            Finding.problem(
                PINS_OVERFILL_LINE,
                f"Job line {line_label(problem, j)} has {_plural(cap, 'place')}, but "
                f"{_plural(int(who.size), 'worker (doctor)', 'workers (doctors)')} are pinned to it: "
                f"{_workers(problem, who)}. Remove {int(who.size) - cap} of these pins or add places "
                "to the line.",
                _wids(problem, who),
                _lids(problem, [j]),
            )
        )
    return out


def _line_rules_cache(problem: ProblemData):
    cache: dict[int, Any] = {}

    def rules(j: int):
        if j not in cache:
            cache[j] = problem.rules.for_line(problem.line_ids[j])
        return cache[j]

    return rules


def _excluded_tag(rules, tags: set[str]) -> str | None:
    for t in rules.excluded_tags:
        if t in tags:
            return t
    return None


def _why_no_line(problem: ProblemData, s: int, rules) -> str:
    """Why worker ``s`` can take none of the lines, grouped by cause."""
    tags = set(problem.worker_tags[s])
    groups: dict[tuple, list[int]] = defaultdict(list)
    for j in range(problem.n_lines):
        reason = Reason(int(problem.reason[s, j]))
        if not reason.eligible:
            if reason is Reason.EXCLUDED_WORKER:
                groups[("excluded_worker",)].append(j)
            elif reason is Reason.EXCLUDED_TAG:
                groups[("excluded_tag", _excluded_tag(rules(j), tags))].append(j)
            else:
                groups[("missing_tag", rules(j).included_tags)].append(j)
        elif problem.forbidden[s, j]:
            groups[("forbidden",)].append(j)
        else:
            groups[("no_places",)].append(j)
    parts = []
    for key in sorted(groups, key=lambda k: (min(groups[k]), k[0])):
        lines = groups[key]
        subject = f"job line {_lines(problem, lines)}" if len(lines) == 1 else f"job lines {_lines(problem, lines)}"
        one = len(lines) == 1
        if key[0] == "excluded_worker":
            parts.append(f"{subject} {'excludes' if one else 'exclude'} them by name")
        elif key[0] == "excluded_tag":
            parts.append(f"{subject} {'excludes' if one else 'exclude'} their tag {key[1]!r}")
        elif key[0] == "missing_tag":
            tags = key[1]
            what = f"the tag {_tags(tags)}" if len(tags) == 1 else f"one of the tags {_tags_or(tags)}"
            parts.append(f"{subject} {'requires' if one else 'require'} {what}, which they lack")
        elif key[0] == "forbidden":
            parts.append(f"{subject} {'is' if one else 'are'} forbidden for them by the planner")
        else:
            parts.append(f"{subject} {'has' if one else 'have'} no places")
    return "; ".join(parts)


def _workers_without_line(problem: ProblemData) -> list[Finding]:
    usable = usable_pairs(problem)
    # A pinned worker always has their pin; a pin on a line without places is a PINS_OVERFILL_LINE.
    stuck = np.flatnonzero(~usable.any(axis=1) & (problem.pin < 0))
    if stuck.size == 0:
        return []
    rules = _line_rules_cache(problem)
    out = []
    for s in stuck[:DETAIL_LIMIT]:
        why = _why_no_line(problem, int(s), rules) if problem.n_lines else "the run has no job lines"
        out.append(
            Finding.problem(
                WORKER_NO_LINE,
                f"Worker (doctor) {worker_label(problem, s)} has no job line they can take: {why}.",
                _wids(problem, [s]),
                (),
            )
        )
    rest = stuck[DETAIL_LIMIT:]
    if rest.size:
        out.append(
            Finding.problem(
                WORKER_NO_LINE,
                f"{_plural(int(rest.size), 'more worker (doctor)', 'more workers (doctors)')} have no "
                f"job line they can take: {_workers(problem, rest)}.",
                _wids(problem, rest),
                (),
            )
        )
    return out


def _why_nobody(problem: ProblemData, j: int) -> tuple[str, np.ndarray]:
    """Why no worker can take line ``j``; also the workers pinned elsewhere who otherwise could."""
    m = problem.n_workers
    reason = problem.reason[:, j]
    rules = problem.rules.for_line(problem.line_ids[j])
    open_ = problem.eligible[:, j] & ~problem.forbidden[:, j]
    pinned_away = np.flatnonzero(open_ & (problem.pin >= 0) & (problem.pin != j))
    # (count, phrase after "a worker", phrase after "n workers")
    parts: list[tuple[int, str, str]] = []
    n_missing = int((reason == Reason.MISSING_INCLUDED_TAG).sum())
    if n_missing:
        req = rules.included_tags
        if len(req) == 1:
            parts.append((n_missing, f"lacks the tag {_tags(req)}", f"lack the tag {_tags(req)}"))
        else:
            what = f"of the tags it requires ({_tags_or(req)})"
            parts.append((n_missing, f"has none {what}", f"have none {what}"))
    excl_tag = np.flatnonzero(reason == Reason.EXCLUDED_TAG)
    if excl_tag.size:
        by_tag: dict[str, int] = defaultdict(int)
        for s in excl_tag:
            by_tag[_excluded_tag(rules, set(problem.worker_tags[s])) or "?"] += 1
        for t, c in sorted(by_tag.items()):
            parts.append((c, f"has the tag {t!r}, which it excludes", f"have the tag {t!r}, which it excludes"))
    n_excl = int((reason == Reason.EXCLUDED_WORKER).sum())
    if n_excl:
        parts.append((n_excl, "is excluded from it by name", "are excluded from it by name"))
    n_forb = int((problem.eligible[:, j] & problem.forbidden[:, j]).sum())
    if n_forb:
        parts.append((n_forb, "is forbidden for it by the planner", "are forbidden for it by the planner"))
    if pinned_away.size:
        who = ", ".join(
            f"{worker_label(problem, s)} to {line_label(problem, int(problem.pin[s]))}"
            for s in pinned_away[:NAMES_IN_MESSAGE]
        )
        if pinned_away.size > NAMES_IN_MESSAGE:
            who += f" and {pinned_away.size - NAMES_IN_MESSAGE} more"
        parts.append((int(pinned_away.size), f"is pinned to another line ({who})", f"are pinned to other lines ({who})"))
    if len(parts) == 1 and parts[0][0] == m:
        text = ("the only worker " if m == 1 else "every worker ") + parts[0][1]
    else:
        text = f"of the {_plural(m, 'worker')}, " + "; ".join(
            f"{c} {one if c == 1 else many}" for c, one, many in parts
        )
    return text, pinned_away


def _mandatory_lines(problem: ProblemData) -> list[Finding]:
    out = []
    mand = problem.mandatory
    no_places = np.flatnonzero(mand & (problem.capacity == 0))
    for j in no_places:
        out.append(
            Finding.problem(
                MANDATORY_LINE_NO_PLACES,
                f"Job line {line_label(problem, j)} must be filled, but it has no places "
                "(its places are 0): give it places, or untick must be filled.",
                (),
                _lids(problem, [j]),
            )
        )
    nobody = np.flatnonzero(mand & (problem.capacity > 0) & ~problem.allowed.any(axis=0))
    for j in nobody[:DETAIL_LIMIT]:
        text, pinned_away = _why_nobody(problem, int(j))
        code = PINS_BLOCK_MANDATORY if pinned_away.size else MANDATORY_LINE_NO_WORKER
        out.append(
            Finding.problem(
                code,
                f"Job line {line_label(problem, j)} must be filled, but no worker (doctor) can take "
                f"it: {text}.",
                _wids(problem, pinned_away),
                _lids(problem, [j]),
            )
        )
    rest = nobody[DETAIL_LIMIT:]
    if rest.size:
        out.append(
            Finding.problem(
                MANDATORY_LINE_NO_WORKER,
                f"{_plural(int(rest.size), 'more job line')} must be filled but no worker (doctor) "
                f"can take them: {_lines(problem, rest)}.",
                (),
                _lids(problem, rest),
            )
        )
    return out


def _capacity_total(problem: ProblemData) -> list[Finding]:
    places = int(problem.capacity.sum())
    m = problem.n_workers
    if places >= m:
        return []
    short = m - places
    return [
        Finding.problem(
            CAPACITY_BELOW_WORKERS,
            f"The run has {_plural(m, 'worker (doctor)', 'workers (doctors)')} but its job lines have "
            f"only {_plural(places, 'place')} in total: add {_plural(short, 'place')} or take "
            f"{_plural(short, 'worker')} out of the run.",
            (),
            (),
        )
    ]


# -- exact checks (max-flow min-cut) ---------------------------------------------------------


def _components(ws: np.ndarray, ls: np.ndarray, adj: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Connected pieces of the bipartite graph ``adj[ws][:, ls]`` as (workers, lines) index arrays."""
    nw, nl = ws.size, ls.size
    r, c = np.nonzero(adj[np.ix_(ws, ls)]) if nw and nl else (np.zeros(0, int), np.zeros(0, int))
    wl = np.arange(nw)
    ll = np.arange(nw, nw + nl)
    while True:
        new_ll = ll.copy()
        np.minimum.at(new_ll, c, wl[r])
        new_wl = wl.copy()
        np.minimum.at(new_wl, r, new_ll[c])
        # pointer jumping: a label is itself a node; follow it once more
        all_lab = np.concatenate([new_wl, new_ll])
        all_lab = all_lab[all_lab]
        new_wl, new_ll = all_lab[:nw], all_lab[nw:]
        if np.array_equal(new_wl, wl) and np.array_equal(new_ll, ll):
            break
        wl, ll = new_wl, new_ll
    out = []
    for lab in np.unique(np.concatenate([wl, ll])):
        out.append((ws[wl == lab], ls[ll == lab]))
    out.sort(key=lambda p: (int(p[0][0]) if p[0].size else 1 << 62, int(p[1][0]) if p[1].size else 1 << 62))
    return out


def _source_side(
    adj_rows: np.ndarray,
    adj_cols: np.ndarray,
    left_cap: np.ndarray,
    right_cap: np.ndarray,
) -> tuple[int, np.ndarray, np.ndarray]:
    """Max flow source -> left (``left_cap``) -> right (unbounded arcs) -> sink (``right_cap``).

    Returns the flow value and the left / right indices on the source side of the minimum cut:
    the nodes still reachable from the source in the residual graph, i.e. the smallest set of
    left nodes with the largest deficit, together with all right nodes they reach.
    """
    n_left, n_right = left_cap.size, right_cap.size
    src, sink = 0, 1 + n_left + n_right
    big = int(left_cap.sum()) + 1
    tails = np.concatenate([
        np.zeros(n_left, dtype=np.int64),
        1 + adj_rows.astype(np.int64),
        1 + n_left + np.arange(n_right, dtype=np.int64),
    ])
    heads = np.concatenate([
        1 + np.arange(n_left, dtype=np.int64),
        1 + n_left + adj_cols.astype(np.int64),
        np.full(n_right, sink, dtype=np.int64),
    ])
    caps = np.concatenate([
        left_cap.astype(np.int64),
        np.full(adj_rows.size, big, dtype=np.int64),
        right_cap.astype(np.int64),
    ])
    mf = max_flow.SimpleMaxFlow()
    mf.add_arcs_with_capacity(tails.astype(np.int32), heads.astype(np.int32), caps)
    status = mf.solve(src, sink)
    if status != mf.OPTIMAL:  # pragma: no cover - OR-Tools reports bad input only
        raise RuntimeError(f"max flow failed with status {status}")
    side = np.array(mf.get_source_side_min_cut(), dtype=np.int64)
    left = np.sort(side[(side >= 1) & (side <= n_left)] - 1)
    right = np.sort(side[(side > n_left) & (side < sink)] - 1 - n_left)
    return int(mf.optimal_flow()), left, right


def workers_exceed_places(problem: ProblemData, *, skip_whole_run: bool = False) -> list[Finding]:
    """Condition (a): sets of workers whose usable lines have fewer places than workers.

    Found exactly by a max flow; the source side of the minimum cut is the violating set.
    Pieces already said by :func:`precheck` (a worker with no line, only pinned workers on one
    line, or the whole run when ``skip_whole_run``) are left out.
    """
    m = problem.n_workers
    usable = usable_pairs(problem)
    rows, cols = np.nonzero(usable)
    flow, ws, ls = _source_side(rows, cols, np.ones(m, dtype=np.int64), problem.capacity)
    if flow >= m:
        return []
    out = []
    cap_lines = np.flatnonzero(problem.capacity > 0)
    for w, lines in _components(ws, ls, usable):
        places = int(problem.capacity[lines].sum())
        if w.size <= places:  # pragma: no cover - every piece of the minimal cut has a deficit
            continue
        if lines.size == 0:
            continue  # WORKER_NO_LINE
        if (problem.pin[w] >= 0).all():
            continue  # PINS_OVERFILL_LINE
        if skip_whole_run and w.size == m - int((~usable.any(axis=1)).sum()) and np.isin(cap_lines, lines).all():
            continue  # CAPACITY_BELOW_WORKERS says it
        short = int(w.size) - places
        if w.size == m:
            # Everyone: naming them all says nothing; the lines out of everyone's reach do.
            unreachable = np.setdiff1d(cap_lines, lines)
            text = (
                f"All {_plural(m, 'worker (doctor)', 'workers (doctors)')} together can only use "
                f"{_plural(places, 'place')}, {short} too few"
            )
            if unreachable.size:
                text += (
                    f": the {_plural(int(problem.capacity[unreachable].sum()), 'place')} on job "
                    f"{'line' if unreachable.size == 1 else 'lines'} {_lines(problem, unreachable)} "
                    "are out of everyone's reach (no worker may take them)"
                )
            text += ". Add places, or make more lines eligible."
        else:
            pinned = w[problem.pin[w] >= 0]
            pin_note = ""
            if pinned.size:
                pin_note = f" ({_workers(problem, pinned)} {'is' if pinned.size == 1 else 'are'} pinned there)"
            lines_words = (
                f"job line {_lines(problem, lines)}, which has" if lines.size == 1
                else f"job lines {_lines(problem, lines)}, which have"
            )
            text = (
                f"These {_plural(int(w.size), 'worker (doctor)', 'workers (doctors)')} can only take "
                f"{lines_words} {_plural(places, 'place')} between them, {short} too few: "
                f"{_workers(problem, w)}{pin_note}. Add places to these lines, or make more lines "
                "eligible for these workers."
            )
        out.append(
            Finding.problem(
                WORKERS_EXCEED_PLACES,
                text,
                _wids(problem, w),
                _lids(problem, lines),
            )
        )
    return out


def mandatory_lines_short(problem: ProblemData) -> list[Finding]:
    """Condition (b): sets of mandatory lines that fewer distinct workers than lines can reach.

    Lines with no places or no worker at all are left to :func:`precheck`.
    """
    allowed = problem.allowed
    mand = np.flatnonzero(problem.mandatory & (problem.capacity > 0) & allowed.any(axis=0))
    if mand.size < 2:
        return []
    sub = allowed[:, mand].T  # (lines, workers)
    rows, cols = np.nonzero(sub)
    flow, ls_local, ws = _source_side(
        rows, cols, np.ones(mand.size, dtype=np.int64), np.ones(problem.n_workers, dtype=np.int64)
    )
    if flow >= mand.size:
        return []
    ls = mand[ls_local]
    open_ = problem.eligible & ~problem.forbidden
    out = []
    for w, lines in _components(ws, ls, allowed):
        if lines.size <= w.size:  # pragma: no cover - every piece of the minimal cut has a deficit
            continue
        reach_free = np.flatnonzero(open_[:, lines].any(axis=1))
        pinned_away = np.setdiff1d(reach_free[problem.pin[reach_free] >= 0], w)
        pinned_away = pinned_away[~np.isin(problem.pin[pinned_away], lines)]
        nobody = "no worker (doctor) can" if w.size == 0 else (
            f"only {_plural(int(w.size), 'worker (doctor)', 'workers (doctors)')} can take any of them "
            f"({_workers(problem, w)}), and each worker fills one line"
        )
        text = (
            f"Job lines {_lines(problem, lines)} must all be filled, but {nobody}: "
            f"at least {int(lines.size - w.size)} of these lines would stay empty."
        )
        if pinned_away.size:
            text += (
                f" {_workers(problem, pinned_away)} could take some of them but "
                f"{'is' if pinned_away.size == 1 else 'are'} pinned to other lines."
            )
        code = (
            PINS_BLOCK_MANDATORY
            if pinned_away.size and w.size + pinned_away.size >= lines.size
            else MANDATORY_LINES_SHORT_OF_WORKERS
        )
        out.append(
            Finding.problem(
                code,
                text,
                _wids(problem, np.union1d(w, pinned_away)),
                _lids(problem, lines),
            )
        )
    return out


def diagnose(problem: ProblemData, *, ranges: bool = True, range_seconds: float | None = None) -> list[Finding]:
    """Every reason why ``problem`` has no allocation, ignoring stability.

    Without links and quotas, empty exactly when an allocation exists that keeps constraints
    1-4, pins and forbids (see the module docstring for why the two flows decide it). Fast: two
    max-flows over the allowed pairs, about a second on 5,000 x 1,000 with every pair allowed.
    With them, the rules' checks too; ``ranges`` adds the quotas' min-cost-flow ranges
    (:func:`quota_ranges`: two flows over the whole run per quota and family, for at most
    ``range_seconds``) when nothing else is found. An empty answer then does not prove that the
    rules can hold together.
    """
    out = precheck(problem)
    capacity_said = any(d.code == CAPACITY_BELOW_WORKERS for d in out)
    out += workers_exceed_places(problem, skip_whole_run=capacity_said)
    out += mandatory_lines_short(problem)
    if ranges and problem.quotas and not any(d.code not in RULE_CODES for d in out):
        out += quota_ranges(problem, seconds=QUOTA_RANGE_SECONDS if range_seconds is None else range_seconds)
    return out


# -- stability --------------------------------------------------------------------------------


def stability_conflict(
    problem: ProblemData,
    unstable_assignment: np.ndarray | None,
    *,
    stable_without_mandatory: bool | None = None,
    stable_without_pins: bool | None = None,
) -> Finding:
    """Word a stable run that is infeasible although the run without stability is feasible.

    Parameters
    ----------
    unstable_assignment
        The best allocation without stability (line index per worker), whose blocking pairs
        show where stability breaks; None if unknown.
    stable_without_mandatory, stable_without_pins
        Whether a stable allocation exists when the mandatory fills (pins) are dropped: True,
        False, or None when not asked (no such constraint) or not decided in time.
    """
    from allocator.stability import blocking_pairs

    has_mand = bool(problem.mandatory.any())
    has_pins = bool((problem.pin >= 0).any())
    keeps = ["every worker (doctor) gets a job line"]
    if has_mand:
        keeps.append("every line that must be filled is filled")
    if has_pins:
        keeps.append("every pin is kept")
    text = (
        "No allocation is stable (free of a worker and a job line who would both rather be "
        f"together) while {_listing(keeps)}."
    )
    workers: set[int] = set()
    lines: set[int] = set()
    if stable_without_mandatory is True:
        text += (" If the lines that must be filled could stay empty, a stable allocation would exist: "
                 "must be filled is what stability conflicts with.")
        lines.update(np.flatnonzero(problem.mandatory).tolist())
    elif stable_without_mandatory is False:
        text += " Letting the lines that must be filled stay empty alone does not help."
    if stable_without_pins is True:
        pinned = np.flatnonzero(problem.pin >= 0)
        one = pinned.size == 1
        text += (
            f" Without the {'pin' if one else 'pins'} a stable allocation exists: "
            f"{'it is' if one else 'they are'} what stability conflicts with ({_pins_listing(problem, pinned)}). "
            f"Lift {'it' if one else 'them'} on the Scenario page to solve with stability."
        )
        workers.update(pinned.tolist())
        lines.update(int(problem.pin[s]) for s in pinned)
    elif stable_without_pins is False:
        text += " Dropping the pins alone does not help."
    if unstable_assignment is not None:
        a = np.asarray(unstable_assignment, dtype=np.int64)
        pairs = blocking_pairs(problem, a)
        if pairs:
            fill = np.bincount(a, minlength=problem.n_lines)
            examples = []
            for s, p in pairs[:3]:
                if fill[p] < problem.capacity[p]:
                    why = "which has a free place"
                else:
                    on = np.flatnonzero(a == p)
                    worse = on[problem.dp[on, p] > problem.dp[s, p]]
                    why = f"which would rather have them than {_workers(problem, worse[:1])}" if worse.size else "which would rather have them"
                examples.append(
                    f"{worker_label(problem, s)} would rather have {line_label(problem, p)} than "
                    f"{line_label(problem, int(a[s]))}, {why}"
                )
            text += (
                f" The best allocation without stability has {_plural(len(pairs), 'blocking pair')}, "
                f"for example: {'; '.join(examples)}."
            )
            for s, p in pairs:
                workers.add(s)
                lines.add(p)
    text += " Turn stability off, or relax the constraints named here."
    return Finding.problem(STABILITY_CONFLICT, text, _wids(problem, sorted(workers)), _lids(problem, sorted(lines)))


def _pins_listing(problem: ProblemData, pinned: np.ndarray) -> str:
    """Each pin named: the planner lifts a pin by its worker and line, not by a count."""
    shown = [
        f"{worker_label(problem, int(s))} pinned to {line_label(problem, int(problem.pin[s]))}"
        for s in pinned[:NAMES_IN_MESSAGE]
    ]
    more = pinned.size - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def unexplained(problem: ProblemData, status_text: str) -> Finding:
    """The last resort: the solver says infeasible and nothing here can say why (a bug)."""
    return Finding.problem(
        UNEXPLAINED,
        f"The solver reports no allocation ({status_text}), but no rule of the run explains why. "
        "This is probably a bug in the allocator; please attach the run snapshot to a bug report.",
    )


# -- business rules (business-rules.md: links and quotas) --------------------------------------
#
# Every check below is a certificate: it reports only what no allocation can satisfy, so a run
# it names is infeasible. Each reasons about one rule (or one family of quotas) together with
# the seed's constraints it can afford to look at exactly (eligibility, forbids, pins, places,
# and for the min-cost-flow checks every worker's line and the lines that must be filled); what
# only several rules together rule out is found by the engine's collision search
# (:func:`rules_collide` words it).

LINK_NO_SITE = "LINK_NO_SITE"
LINK_NO_ROOM = "LINK_NO_ROOM"
SITE_TOO_SMALL = "SITE_TOO_SMALL"
QUOTA_MIN_ABOVE_PLACES = "QUOTA_MIN_ABOVE_PLACES"
QUOTA_MIN_UNREACHABLE = "QUOTA_MIN_UNREACHABLE"
QUOTA_MAX_BELOW_FORCED = "QUOTA_MAX_BELOW_FORCED"
QUOTAS_ABOVE_WORKERS = "QUOTAS_ABOVE_WORKERS"
QUOTAS_BELOW_FORCED = "QUOTAS_BELOW_FORCED"
QUOTA_OUT_OF_RANGE = "QUOTA_OUT_OF_RANGE"
QUOTAS_CONTRADICT = "QUOTAS_CONTRADICT"
RULES_COLLIDE = "RULES_COLLIDE"

RULE_CODES = (
    LINK_NO_SITE,
    LINK_NO_ROOM,
    SITE_TOO_SMALL,
    QUOTA_MIN_ABOVE_PLACES,
    QUOTA_MIN_UNREACHABLE,
    QUOTA_MAX_BELOW_FORCED,
    QUOTAS_ABOVE_WORKERS,
    QUOTAS_BELOW_FORCED,
    QUOTA_OUT_OF_RANGE,
    QUOTAS_CONTRADICT,
    RULES_COLLIDE,
)
CODES = CODES + RULE_CODES

# Families of quotas checked together: every pair, and all of them, up to this many quotas.
QUOTA_FAMILY_LIMIT = 12
# The quotas' min-cost ranges stop starting new families after this long (two flows over the
# whole run each: about a second on 1,500 x 300 with every pair allowed).
QUOTA_RANGE_SECONDS = 10.0


def site_label(problem: ProblemData, k: int) -> str:
    """A site in words: its name, or the job line that is a site of its own."""
    lines = np.flatnonzero(problem.site == k)
    if lines.size == 1 and problem.line_sites[int(lines[0])] is None:
        return f"job line {line_label(problem, int(lines[0]))} (a site of its own)"
    return f"site '{problem.site_labels[k]}'"


def _sites(problem: ProblemData, ks) -> str:
    return _listing([site_label(problem, int(k)) for k in ks])


def quota_label(q) -> str:
    return f"Quota '{q.id}'"


def _counted(q) -> str:
    """Who the quota counts, after a number: ' with the tag X' or ''."""
    return f" with the tag '{q.qualification_id}'" if q.qualification_id else ""


def _both(n: int) -> str:
    return "both" if n == 2 else f"all {n} of"


def link_members(problem: ProblemData, link) -> str:
    """The members of a link in words: "both 'w1' and 'w2'", "all 3 of 'w1', 'w2' and 'w3'"."""
    return f"{_both(link.workers.size)} {_workers(problem, link.workers)}"


def _link_sites(problem: ProblemData, usable: np.ndarray, link) -> tuple[list[set[int]], set[int]]:
    """Each member's reachable sites, and the sites every member reaches."""
    per = [set(problem.site[np.flatnonzero(usable[int(s)])].tolist()) for s in link.workers]
    common = set.intersection(*per) if per else set()
    return per, common


def _residual_capacity(problem: ProblemData, keep: np.ndarray) -> np.ndarray:
    """Places left on each line once the pinned workers outside ``keep`` (M bool) sit on their pins."""
    others = np.flatnonzero((problem.pin >= 0) & ~keep)
    taken = np.bincount(problem.pin[others], minlength=problem.n_lines)
    return np.maximum(problem.capacity - taken, 0)


def _placeable(problem: ProblemData, usable: np.ndarray, workers: np.ndarray, lines: np.ndarray,
               capacity: np.ndarray) -> int:
    """How many of ``workers`` can be placed on ``lines`` at once (max flow, ``capacity`` per line)."""
    if workers.size == 0 or lines.size == 0:
        return 0
    sub = usable[np.ix_(workers, lines)]
    rows, cols = np.nonzero(sub)
    flow, _, _ = _source_side(rows, cols, np.ones(workers.size, dtype=np.int64), capacity[lines])
    return flow


def link_checks(problem: ProblemData) -> tuple[list[Finding], dict[str, list[int]]]:
    """Links that no site can hold, and for every other link up to two sites that could hold it alone.

    A site holds a link alone when each member has a usable line there and the site's places
    (less those of workers pinned there from outside the link) take all members at once.
    """
    out: list[Finding] = []
    holding: dict[str, list[int]] = {}
    if not problem.links:
        return out, holding
    usable = usable_pairs(problem)
    for link in problem.links:
        members = link.workers
        per, common = _link_sites(problem, usable, link)
        if any(not s for s in per):
            continue  # WORKER_NO_LINE (or PINS_OVERFILL_LINE) says it
        who = _workers(problem, members)
        if not common:
            detail = "; ".join(
                f"{worker_label(problem, int(s))} can only take lines at {_sites(problem, sorted(ks))}"
                for s, ks in zip(members, per, strict=True)
            )
            lines = np.flatnonzero(usable[members].any(axis=0))
            out.append(Finding.problem(
                LINK_NO_SITE,
                f"Link '{link.id}': no site has an eligible place for {_both(members.size)} {who}: "
                f"{detail}. Make a line of one site eligible for all of them, lift a pin, or undo the link.",
                _wids(problem, members),
                _lids(problem, lines),
            ))
            continue
        cap = _residual_capacity(problem, np.isin(np.arange(problem.n_workers), members))
        fits = []
        for k in sorted(common):
            together = np.flatnonzero((problem.site == k) & usable[members].all(axis=0) & (cap >= members.size))
            lines = np.flatnonzero((problem.site == k) & usable[members].any(axis=0))
            if together.size or _placeable(problem, usable, members, lines, cap) == members.size:
                fits.append(k)
                if len(fits) == 2:
                    break  # site_checks only needs to know whether one site alone can hold it
        holding[link.id] = fits
        if fits:
            continue
        parts = []
        for k in sorted(common):
            lines = np.flatnonzero((problem.site == k) & usable[members].any(axis=0))
            room = _placeable(problem, usable, members, lines, cap)
            parts.append(
                f"at {site_label(problem, k)} ({_lines(problem, lines)}) only {room} of them can be placed at once"
            )
        lines = np.flatnonzero(np.isin(problem.site, sorted(common)) & usable[members].any(axis=0))
        out.append(Finding.problem(
            LINK_NO_ROOM,
            f"Link '{link.id}': no site has room for {_both(members.size)} {who} together: "
            f"{'; '.join(parts)}. Add places there, make more lines eligible for them, or undo the link.",
            _wids(problem, members),
            _lids(problem, lines),
        ))
    return out, holding


def site_checks(problem: ProblemData, holding: Mapping[str, list[int]]) -> list[Finding]:
    """Sites that must hold more workers than they can: links that fit nowhere else, with the
    workers who can only take that site's lines (pins included)."""
    if not holding:
        return []
    usable = usable_pairs(problem)
    has_line = usable.any(axis=1)
    only_site = np.full(problem.n_workers, -1, dtype=np.int64)
    for s in np.flatnonzero(has_line):
        ks = np.unique(problem.site[usable[s]])
        if ks.size == 1:
            only_site[s] = ks[0]
    out = []
    by_id = {link.id: link for link in problem.links}
    forced_links: dict[int, list] = defaultdict(list)
    for lid, fits in holding.items():
        if len(fits) == 1:
            forced_links[fits[0]].append(by_id[lid])
    for k, links in sorted(forced_links.items()):
        in_link = np.zeros(problem.n_workers, dtype=bool)
        for link in links:
            in_link[link.workers] = True
        alone = (only_site == k) & ~in_link
        forced = np.flatnonzero(in_link | alone)
        lines = np.flatnonzero(problem.site == k)
        if len(links) == 1 and not alone.any():
            continue  # the link alone fits (link_checks)
        placed = _placeable(problem, usable, forced, lines, problem.capacity)
        if placed >= forced.size:
            continue
        if _placeable(problem, usable, np.flatnonzero(alone), lines, problem.capacity) < int(alone.sum()):
            continue  # without the links already: WORKERS_EXCEED_PLACES says it
        names = _listing([f"'{link.id}' ({_workers(problem, link.workers)})" for link in links])
        extra = ""
        if alone.any():
            extra = f", and {_workers(problem, np.flatnonzero(alone))} can only take its lines"
        link_words = "link" if len(links) == 1 else "links"
        out.append(Finding.problem(
            SITE_TOO_SMALL,
            f"{site_label(problem, k)[0].upper()}{site_label(problem, k)[1:]} is the only site that can hold "
            f"{link_words} {names}{extra}: {_plural(int(forced.size), 'worker (doctor)', 'workers (doctors)')} "
            f"in all, but at most {placed} can be placed on its lines ({_lines(problem, lines)}, "
            f"{_plural(int(problem.capacity[lines].sum()), 'place')}) at once. Add places there, make "
            f"lines of another site eligible for them, or undo a link.",
            _wids(problem, forced),
            _lids(problem, lines),
        ))
    return out


def _count_weights(problem: ProblemData, family, signs=None) -> np.ndarray:
    """(M, N) int: how many quotas of ``family`` count worker s on line j (each with its sign)."""
    c = np.zeros((problem.n_workers, problem.n_lines), dtype=np.int64)
    for i, q in enumerate(family):
        c[np.ix_(q.counts, q.lines)] += 1 if signs is None else signs[i]
    return c


def _families(quotas) -> list[tuple]:
    """Single quotas, then every pair, then all of them (as far as :data:`QUOTA_FAMILY_LIMIT`)."""
    out = [(q,) for q in quotas]
    if 2 <= len(quotas) <= QUOTA_FAMILY_LIMIT:
        out += [(a, b) for i, a in enumerate(quotas) for b in quotas[i + 1:]]
        if len(quotas) > 2:
            out.append(tuple(quotas))
    return out


def _quota_names(family) -> str:
    if len(family) == 1:
        return quota_label(family[0])
    return "Quotas " + _listing([f"'{q.id}'" for q in family])


def _disjoint(family) -> bool:
    seen: set[int] = set()
    for q in family:
        ls = set(q.lines.tolist())
        if seen & ls:
            return False
        seen |= ls
    return True


def quota_checks(problem: ProblemData) -> list[Finding]:
    """Quotas (alone, or families of them) whose bounds the places and workers cannot meet.

    Minimums: a quota's minimum above its lines' places, above the counted workers who can
    reach its lines, or above how many of them its lines take at once (max flow); the minimums
    of quotas on job lines that share none, above how many counted workers their lines take at
    once. Maximums: below the counted workers who cannot avoid the quotas' lines (every line
    they can take, a pin included, is counted), or, for one quota, below its lines that must be
    filled and only counted workers can take.
    """
    return _quota_checks(problem)[0]


def _quota_checks(problem: ProblemData) -> tuple[list[Finding], set[frozenset[str]]]:
    """:func:`quota_checks`, with the families (quota ids) found failing."""
    if not problem.quotas:
        return [], set()
    usable = usable_pairs(problem)
    has_line = usable.any(axis=1)
    out: list[Finding] = []
    failed: list[set[str]] = []

    def add(family, finding: Finding) -> None:
        failed.append({q.id for q in family})
        out.append(finding)

    def already(family) -> bool:
        ids = {q.id for q in family}
        return any(f <= ids for f in failed)

    for family in _families(problem.quotas):
        if already(family):
            continue
        need = sum(q.min_workers for q in family)
        single = len(family) == 1
        q0 = family[0]
        lines = np.unique(np.concatenate([q.lines for q in family]))
        if need > 0 and (single or _disjoint(family)):
            places = int(problem.capacity[lines].sum())
            # Workers counted by the quota of each line (lines are disjoint: one quota per line).
            counted_on = np.zeros((problem.n_workers, problem.n_lines), dtype=bool)
            for q in family:
                counted_on[np.ix_(q.counts, q.lines)] = True
            reach_pairs = usable & counted_on
            reach = np.flatnonzero(reach_pairs.any(axis=1))
            bounds = "" if single else f" ({' + '.join(str(q.min_workers) for q in family)})"
            # Pinned workers the quotas do not count still take their places.
            cap = _residual_capacity(problem, reach_pairs.any(axis=1))
            wids = _wids(problem, reach)
            if single and need > places:
                add(family, Finding.problem(
                    QUOTA_MIN_ABOVE_PLACES,
                    f"{quota_label(q0)} needs {_plural(need, 'worker')}{_counted(q0)} but its job lines "
                    f"({_lines(problem, q0.lines)}) have only {_plural(places, 'place')} in all. "
                    "Lower its minimum, or add places to its lines.",
                    (), _lids(problem, lines)))
                continue
            if single:
                subject = f"{quota_label(q0)} needs {_plural(need, 'worker')}{_counted(q0)} on its lines"
                whom, its, fix = f"eligible worker{'' if reach.size == 1 else 's'}{_counted(q0)}", "its", "the minimum"
            else:
                subject = (f"{_quota_names(family)} together need {_plural(need, 'worker')}{bounds} on job lines "
                           "that share none")
                whom, its, fix = f"eligible worker{'' if reach.size == 1 else 's'} they count", "their", "a minimum"
            code = QUOTA_MIN_UNREACHABLE if single else QUOTAS_ABOVE_WORKERS
            if reach.size < need:
                text = f"{subject}, but only {reach.size} {whom} can reach {its} lines"
                text += f": {_workers(problem, reach)}." if reach.size else "."
                text += f" Lower {fix}, or make {its} lines eligible for more workers."
                add(family, Finding.problem(code, text, wids, _lids(problem, lines)))
                continue
            placed = _placeable(problem, reach_pairs, reach, lines, cap)
            if placed < need:
                add(family, Finding.problem(
                    code,
                    f"{subject}, but of the {reach.size} {whom} who can reach {its} lines "
                    f"({_lines(problem, lines)}), at most {placed} can be placed there at once: the lines they "
                    f"can take have too few places. Lower {fix}, add places, or make more lines eligible.",
                    wids, _lids(problem, lines)))
                continue
        if any(q.max_workers is None for q in family):
            continue
        allow = sum(int(q.max_workers) for q in family)
        c = _count_weights(problem, family)
        # Each worker adds at least the least count among the lines they can take.
        least = np.where(usable, c, np.iinfo(np.int64).max).min(axis=1, initial=np.iinfo(np.int64).max)
        least = np.where(has_line, least, 0)
        forced = np.flatnonzero(least > 0)
        must = int(least.sum())
        mand_words = ""
        mand_lines = np.zeros(0, dtype=np.int64)
        if single:
            # A line that must be filled and that only counted workers can take adds one.
            allowed = problem.allowed
            m_lines = q0.lines[problem.mandatory[q0.lines] & (problem.capacity[q0.lines] > 0)]
            m_lines = m_lines[allowed[:, m_lines].any(axis=0) & ~(allowed[:, m_lines] & ~q0.counts[:, None]).any(axis=0)]
            if m_lines.size > must:
                must, mand_lines = int(m_lines.size), m_lines
                mand_words = (f" its {_plural(int(m_lines.size), 'job line')} {_lines(problem, m_lines)} must be "
                              f"filled and only workers it counts can take them")
        if must <= allow:
            continue
        bounds = "" if single else f" ({' + '.join(str(q.max_workers) for q in family)})"
        if mand_words:
            text = (f"{quota_label(q0)} allows at most {_plural(allow, 'worker')}{_counted(q0)} on its lines, but"
                    f"{mand_words}: at least {must} will be there. Raise the maximum, or untick must be filled.")
            wids_, lids_ = (), _lids(problem, mand_lines)
        else:
            pinned = forced[problem.pin[forced] >= 0]
            pin_note = f" ({_workers(problem, pinned)} {'is' if pinned.size == 1 else 'are'} pinned)" if pinned.size else ""
            subject = (f"{quota_label(q0)} allows at most {_plural(allow, 'worker')}{_counted(q0)} on its lines"
                       if single else
                       f"{_quota_names(family)} together allow at most {_plural(allow, 'worker')}{bounds}")
            counted_words = "it counts can take no other line" if single else \
                "they count can take no line outside them"
            text = (f"{subject}, but {_plural(int(forced.size), 'worker')} {counted_words}: "
                    f"{_workers(problem, forced)}{pin_note}"
                    + (f" (they add {must} to the counts)" if must != forced.size else "")
                    + f". Raise {'the' if single else 'a'} maximum, lift pins, or make other lines eligible for them.")
            wids_, lids_ = _wids(problem, forced), _lids(problem, lines)
        add(family, Finding.problem(QUOTA_MAX_BELOW_FORCED if single else QUOTAS_BELOW_FORCED, text, wids_, lids_))
    return out, {frozenset(f) for f in failed}


def rule_precheck(problem: ProblemData) -> list[Finding]:
    """The links', sites' and quotas' checks (small max-flows on the rules' own lines only)."""
    if not problem.has_links_or_quotas:
        return []
    found, holding = link_checks(problem)
    return found + site_checks(problem, holding) + quota_checks(problem)


def _count_range(problem: ProblemData, weights: np.ndarray, *, least: bool = True) -> tuple[int | None, int] | None:
    """The least (when ``least``) and the most ``sum(weights[s, a[s]])`` over the allocations
    ``a`` that keep the seed's constraints (one allowed line each, places, lines that must be
    filled), by min-cost flows; None when there is no such allocation."""
    m, n = problem.n_workers, problem.n_lines
    usable = usable_pairs(problem)
    ws, ls = np.nonzero(usable)
    cap = problem.capacity.astype(np.int64)
    lb = (problem.mandatory & (cap > 0)).astype(np.int64)
    if (problem.mandatory & (cap == 0)).any():
        return None
    sink = m + n
    tails = np.concatenate([ws, np.arange(m, m + n)]).astype(np.int32)
    heads = np.concatenate([ls + m, np.full(n, sink)]).astype(np.int32)
    caps = np.concatenate([np.ones(ws.size, dtype=np.int64), cap - lb])
    supplies = np.concatenate([np.ones(m, dtype=np.int64), -lb, [-(m - int(lb.sum()))]]).astype(np.int64)
    out: list[int | None] = [None]
    for sign in (1, -1) if least else (-1,):
        smcf = min_cost_flow.SimpleMinCostFlow()
        units = np.concatenate([sign * weights[ws, ls], np.zeros(n, dtype=np.int64)]).astype(np.int64)
        smcf.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, units)
        smcf.set_nodes_supplies(np.arange(m + n + 1, dtype=np.int32), supplies)
        if smcf.solve() != smcf.OPTIMAL:
            return None
        out.append(sign * int(smcf.optimal_cost()))
    return out[-2], out[-1]


def quota_ranges(
    problem: ProblemData, *, skip: set[frozenset[str]] | None = None, seconds: float = QUOTA_RANGE_SECONDS
) -> list[Finding]:
    """Quotas (alone, in pairs, all together) whose bounds no allocation of the seed's rules can
    meet, decided exactly by min-cost flows: the least and most workers they count on their
    lines while every worker has a line, places hold and the lines that must be filled are
    filled (links and the other quotas aside). Families containing one in ``skip`` (by default
    those :func:`quota_checks` finds failing) are left out. Families not reached within
    ``seconds`` are not checked (single quotas come first)."""
    if skip is None:
        skip = _quota_checks(problem)[1]
    deadline = time.perf_counter() + seconds
    out: list[Finding] = []
    failed = [set(f) for f in skip]
    for family in _families(problem.quotas):
        if time.perf_counter() > deadline:
            break
        ids = {q.id for q in family}
        if any(f <= ids for f in failed):
            continue
        need = sum(q.min_workers for q in family)
        allow = None if any(q.max_workers is None for q in family) else sum(int(q.max_workers) for q in family)
        if need == 0 and allow is None:
            continue
        rng = _count_range(problem, _count_weights(problem, family))
        if rng is None:
            return out  # the seed's rules alone fail: the flows above say why
        lo, hi = rng
        assert lo is not None
        single = len(family) == 1
        lines = np.unique(np.concatenate([q.lines for q in family]))
        counted = np.zeros(problem.n_workers, dtype=bool)
        for q in family:
            counted |= q.counts & usable_pairs(problem)[:, q.lines].any(axis=1)
        words = "the workers it counts" if single else "the workers they count (a worker once per quota that counts them)"
        if need > hi:
            subject = (f"{quota_label(family[0])} needs {_plural(need, 'worker')}{_counted(family[0])} on its lines"
                       if single else f"{_quota_names(family)} together need {_plural(need, 'worker')}")
            text = (f"{subject}, but while every worker (doctor) gets a job line and every line that must be filled "
                    f"is filled, at most {hi} of {words} can be there. Lower "
                    f"{'the minimum' if single else 'a minimum'}, or add places or eligible workers.")
        elif allow is not None and lo > allow:
            subject = (f"{quota_label(family[0])} allows at most {_plural(allow, 'worker')}{_counted(family[0])} on its "
                       "lines" if single else f"{_quota_names(family)} together allow at most {_plural(allow, 'worker')}")
            text = (f"{subject}, but while every worker (doctor) gets a job line and every line that must be filled "
                    f"is filled, at least {lo} of {words} are there. Raise "
                    f"{'the maximum' if single else 'a maximum'}, or make other lines eligible for them.")
        else:
            continue
        failed.append(ids)
        out.append(Finding.problem(QUOTA_OUT_OF_RANGE, text, _wids(problem, np.flatnonzero(counted)),
                                   _lids(problem, lines)))
    # Minimums against maximums on shared lines: the workers counted by the quotas with a
    # minimum, less those counted by the quotas with a maximum, can be no more than the flow's
    # most; yet the bounds need at least (sum of the minimums - sum of the maximums).
    for family in _families(problem.quotas):
        if len(family) < 2:
            continue
        ids = {q.id for q in family}
        if any(f <= ids for f in failed):
            continue
        for signs in _mixed_signs(family):
            if time.perf_counter() > deadline:
                return out
            ups = [q for q, g in zip(family, signs, strict=True) if g > 0]
            downs = [q for q, g in zip(family, signs, strict=True) if g < 0]
            if not _overlap(ups, downs):
                continue
            need = sum(q.min_workers for q in ups) - sum(int(q.max_workers) for q in downs)
            if need <= 0:
                continue
            rng = _count_range(problem, _count_weights(problem, family, signs), least=False)
            if rng is None:
                return out
            hi = rng[1]
            if hi >= need:
                continue
            labels = [rule_label(problem, "quota", q.id) for q in family]
            workers = np.unique(np.concatenate([w for _, w, _ in labels] + [np.zeros(0, np.int64)])).astype(np.int64)
            lines = np.unique(np.concatenate([q.lines for q in family]))
            up_names = _listing([f"'{q.id}'" for q in ups])
            down_names = _listing([f"'{q.id}'" for q in downs])
            text = (
                f"These quotas cannot hold together: {_listing([t for t, _, _ in labels], limit=len(labels))}. "
                f"Their job lines overlap: {up_names} need at least {sum(q.min_workers for q in ups)} in all, "
                f"{down_names} allow at most {sum(int(q.max_workers) for q in downs)} in all, so those counted by "
                f"{up_names} must outnumber those counted by {down_names} by {need}; while every worker (doctor) "
                f"gets a job line and every line that must be filled is filled, they can outnumber them by at "
                f"most {hi}. Relax or drop one of them."
            )
            failed.append(ids)
            out.append(Finding.problem(QUOTAS_CONTRADICT, text, _wids(problem, workers), _lids(problem, lines)))
            break
    return out


def _mixed_signs(family):
    """Sign patterns with a minimum (+1) and a maximum (-1) each, every quota used as it can be."""
    options = []
    for q in family:
        opts = []
        if q.min_workers > 0:
            opts.append(1)
        if q.max_workers is not None:
            opts.append(-1)
        if not opts:
            return []
        options.append(opts)
    return [g for g in itertools.product(*options) if 1 in g and -1 in g]


def _overlap(ups, downs) -> bool:
    a = np.unique(np.concatenate([q.lines for q in ups]))
    b = np.unique(np.concatenate([q.lines for q in downs]))
    return bool(np.intersect1d(a, b).size)


def rule_label(problem: ProblemData, kind: str, id_: str) -> tuple[str, np.ndarray, np.ndarray]:
    """A link or quota in words, with its workers and lines (for :func:`rules_collide`)."""
    usable = usable_pairs(problem)
    if kind == "link":
        link = next(x for x in problem.links if x.id == id_)
        _, common = _link_sites(problem, usable, link)
        lines = np.flatnonzero(np.isin(problem.site, sorted(common)) & usable[link.workers].any(axis=0))
        return f"link '{id_}' ({_workers(problem, link.workers)} at one site)", link.workers, lines
    q = next(x for x in problem.quotas if x.id == id_)
    hi = q.max_workers
    if hi is None:
        bounds = f"at least {_plural(q.min_workers, 'worker')}"
    elif q.min_workers == 0:
        bounds = f"at most {_plural(hi, 'worker')}"
    elif q.min_workers == hi:
        bounds = f"exactly {_plural(hi, 'worker')}"
    else:
        bounds = f"{q.min_workers} to {hi} workers"
    if q.sites is not None:
        where = f"at {'site' if len(q.sites) == 1 else 'sites'} {_listing([repr(s) for s in q.sites])}"
    else:
        where = f"on {_lines(problem, q.lines)}"
    # A quota that counts everyone concerns its lines; one with a qualification, those who have it.
    workers = np.flatnonzero(q.counts & usable[:, q.lines].any(axis=1)) if q.qualification_id else np.zeros(0, np.int64)
    return f"quota '{id_}' ({bounds}{_counted(q)} {where})", workers, q.lines


def rules_collide(
    problem: ProblemData,
    rules: list[tuple[str, str]],
    *,
    stability: bool = False,
    minimal: bool = True,
    pins_matter: bool = False,
    mandatory_matter: bool = False,
    solvable_unstable: bool = True,
    drop_each_solves: bool = True,
) -> Finding:
    """Word a set of links and quotas (``("link" | "quota", id)``) that cannot all hold together.

    ``minimal``: dropping any one of them was shown to make the run solvable (otherwise the set
    is only known to be too much together). ``stability``: the set collides with stability, i.e.
    no *stable* allocation keeps them all. ``pins_matter`` (``mandatory_matter``): without the
    pins (the lines that must be filled) they would hold together, so those are named too.
    ``solvable_unstable``: with stability, whether the run without it was shown to be solvable
    (only then is turning stability off offered as a way out). ``drop_each_solves``: dropping
    any one of them from the whole run was shown to make it solvable; without that proof a
    minimal set only says that its rules hold without one another (the run has other clashes).
    """
    labels = [rule_label(problem, kind, id_) for kind, id_ in rules]
    workers = np.unique(np.concatenate([w for _, w, _ in labels] + [np.zeros(0, np.int64)])).astype(np.int64)
    lines = np.unique(np.concatenate([ls for _, _, ls in labels] + [np.zeros(0, np.int64)])).astype(np.int64)
    # A minimal set is short; one the search could not narrow down in time names its first few.
    named = _listing([t for t, _, _ in labels], limit=len(labels) if minimal else NAMES_IN_MESSAGE)
    if stability:
        text = (f"No stable allocation (free of a worker and a job line who would both rather be together) keeps "
                f"{'this rule' if len(rules) == 1 else 'these rules together'}: {named}.")
    else:
        text = f"These rules cannot all hold together: {named}."
    if minimal and not drop_each_solves:
        text += (" Without any one of these the others can hold, but the run has other rules that clash "
                 "as well: it stays impossible until those are fixed too.")
    elif minimal:
        if stability:
            text += (" Without it a stable allocation exists." if len(rules) == 1 else
                     " Dropping any one of them makes a stable allocation possible.")
        elif len(rules) > 1:
            text += " Each can be met on its own, and dropping any one of them makes the run solvable."
    ways = ["relax or drop it" if len(rules) == 1 else "relax or drop one of them"]
    if pins_matter:
        pinned = np.flatnonzero(problem.pin >= 0)
        one = pinned.size == 1
        text += (f" The {'pin' if one else 'pins'} ({_pins_listing(problem, pinned)}) {'is' if one else 'are'} part "
                 f"of it: without {'it' if one else 'them'} these rules can hold together.")
        workers = np.union1d(workers, pinned)
        lines = np.union1d(lines, problem.pin[pinned])
        ways.append("lift the pins")
    if mandatory_matter:
        mand = np.flatnonzero(problem.mandatory)
        text += (f" The {'line' if mand.size == 1 else 'lines'} that must be filled ({_lines(problem, mand)}) "
                 f"{'is' if mand.size == 1 else 'are'} part of it: if they could stay empty, these rules could hold.")
        lines = np.union1d(lines, mand)
        ways.append("untick must be filled")
    if stability and solvable_unstable:
        ways.append("turn stability off")
    what = ways[0] if len(ways) == 1 else ", ".join(ways[:-1]) + ", or " + ways[-1]
    text += f" {what[0].upper()}{what[1:]}."
    return Finding.problem(RULES_COLLIDE, text, _wids(problem, workers), _lids(problem, lines))
