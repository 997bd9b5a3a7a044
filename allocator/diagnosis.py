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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from ortools.graph.python import max_flow

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
    """The cheap checks (numpy, no flow): a few milliseconds even on 5,000 x 1,000.

    Every entry returned is a genuine reason for infeasibility, so the engine can skip the
    solver when this is not empty. An empty answer does not prove feasibility; :func:`diagnose`
    does (without stability).
    """
    out: list[Finding] = []
    out += _pins_overfill(problem)
    out += _workers_without_line(problem)
    out += _mandatory_lines(problem)
    out += _capacity_total(problem)
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


def diagnose(problem: ProblemData) -> list[Finding]:
    """Every reason why ``problem`` has no allocation, ignoring stability.

    Empty exactly when an allocation exists that keeps constraints 1-4, pins and forbids (see
    the module docstring for why the two flows decide it). Fast: two max-flows over the allowed
    pairs, about a second on 5,000 x 1,000 with every pair allowed.
    """
    out = precheck(problem)
    capacity_said = any(d.code == CAPACITY_BELOW_WORKERS for d in out)
    out += workers_exceed_places(problem, skip_whole_run=capacity_said)
    out += mandatory_lines_short(problem)
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
