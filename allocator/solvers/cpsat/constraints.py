"""The constraints of the CP-SAT model, one function per rule family of allocation-model.md.

:func:`add_constraints` calls them in the order of :data:`ORDER`, which is the order of the
spec: one line per worker, capacity, mandatory fill, pins, then (optionally) stability.

Stability, the cumulative encoding
----------------------------------
A candidate pair ``(s, p)`` (see :func:`.pruning.blocking_candidates`) blocks exactly when

* ``s`` is on a line it ranks strictly worse than ``p``, and
* ``p`` has a free place or holds a worker it ranks strictly worse than ``s``.

The second condition fails exactly when ``p`` holds ``cap(p)`` workers it ranks no worse than
``s``, because ``p`` never holds more than ``cap(p)``. So "no blocking pair" is, for every
candidate,

    worse(s, p)  =>  not_worse_on(p, s) >= cap(p)

with ``worse(s, p)`` the sum of ``x(s, q)`` over lines ``q`` that ``s`` ranks strictly worse
than ``p`` (0 or 1, as ``s`` takes one line) and ``not_worse_on(p, s)`` the number of workers
on ``p`` that ``p`` ranks no worse than ``s``. Written naively each constraint has a term per
worker. Instead we sort, once:

* each worker's possible lines by ``Dw`` (best first): ``worse(s, p)`` is a *suffix* sum of
  ``s``'s order, and
* each line's possible workers by ``Dp`` (best first): ``not_worse_on(p, s)`` is a *prefix*
  sum of ``p``'s order (ties sit together; :mod:`.order` explains why these sets are exact
  prefixes and suffixes under :func:`allocator.stability.strictly_less`).

Suffix sums ``u`` (Booleans) and prefix sums ``P`` (integers in ``[0, cap]``) are chained,
each defined from its neighbour plus the new terms, so every ``x`` appears in O(1) of them.
For each line and needed prefix length ``g`` a Boolean ``cut(p, g)`` means "p is full with
its first g workers": ``P(p, g) >= cap(p) * cut(p, g)``, and, chained again, ``cut`` excludes
every worker after position ``g`` (one clause per ``x``; implied for integers, but it
it can tighten the LP when ``cap(p) > 1``). Each stability constraint is then one implication
``u(s, w) => cut(p, g)``. Pairs tied at the same place of an order share their sums. The
model has O(pairs) terms in all, against O(pairs x workers) for the naive form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ortools.sat.python import cp_model

from allocator.problem import ProblemData
from allocator.solvers.cpsat.order import count_not_worse
from allocator.solvers.cpsat.variables import Variables

ORDER = ("one_line_per_worker", "capacity", "mandatory_fill", "pins", "stability")
#: The business rules' constraints (business-rules.md 6 and 7), added after ORDER when a run has them.
RULES = ("links", "quotas")


def _sum(terms) -> cp_model.LinearExpr:
    return cp_model.LinearExpr.sum(list(terms))


def one_line_per_worker(model: cp_model.CpModel, v: Variables, problem: ProblemData) -> None:
    """Constraint 1: ``sum_p x(s, p) = 1``."""
    starts = np.searchsorted(v.workers, np.arange(problem.n_workers + 1))
    for s in range(problem.n_workers):
        model.add_exactly_one(v.x[starts[s] : starts[s + 1]])


def capacity(model: cp_model.CpModel, v: Variables, problem: ProblemData) -> None:
    """Constraint 2: ``sum_s x(s, p) <= max_n_workers(p)`` (only where it can bind)."""
    for p in range(problem.n_lines):
        ks = v.of_line(p)
        if ks.size > problem.capacity[p]:
            model.add(_sum(v.x[k] for k in ks) <= int(problem.capacity[p]))


def mandatory_fill(model: cp_model.CpModel, v: Variables, problem: ProblemData) -> None:
    """Constraint 3: ``sum_s x(s, p) >= 1`` on mandatory lines."""
    for p in np.flatnonzero(problem.mandatory):
        model.add_at_least_one([v.x[k] for k in v.of_line(int(p))])


def pins(model: cp_model.CpModel, v: Variables, problem: ProblemData) -> None:
    """Constraint 4: ``x(s, pin(s)) = 1``.

    ``ProblemData.allowed`` already leaves a pinned worker a single pair; stating the pin
    keeps the model readable and safe if that ever changes.
    """
    for s in np.flatnonzero(problem.pin >= 0):
        k = v.index[s, problem.pin[s]]
        if k < 0:  # the pin's pair was proven impossible: nothing satisfies the rules
            model.add_bool_or([])
        else:
            model.add(v.x[k] == 1)


def links(model: cp_model.CpModel, v: Variables, problem: ProblemData, members: np.ndarray | None = None) -> None:
    """Constraint 6: all workers of a link on job lines of one and the same site.

    With ``members`` (an (M,) bool mask), only those workers of each link are constrained: they
    share a site (a relaxation, for models that leave the other workers out; the caller keeps
    their pairs on sites the whole link can reach).
    """
    for link in problem.links:
        inside = link.workers if members is None else link.workers[members[link.workers]]
        if inside.size == 0:
            continue
        common: set[int] | None = None
        for s in inside.tolist():
            reach = {int(problem.site[p]) for p in v.lines[v.of_worker(s)].tolist()}
            common = reach if common is None else common & reach
        sites = sorted(common or ())
        if not sites:
            model.add_bool_or([])  # no site every worker of the link can reach
            continue
        y = {k: model.new_bool_var("") for k in sites}
        model.add_exactly_one(list(y.values()))
        for s in inside.tolist():
            ks = v.of_worker(s)
            on_site = problem.site[v.lines[ks]]
            for k in sites:
                mine = ks[on_site == k]
                model.add(cp_model.LinearExpr.sum([v.x[i] for i in mine.tolist()]) == y[k])
            # Pairs on sites not every worker of the link can reach are ruled out.
            for i in ks[~np.isin(on_site, sites)].tolist():
                model.add(v.x[i] == 0)


def quotas(model: cp_model.CpModel, v: Variables, problem: ProblemData) -> None:
    """Constraint 7: ``min <= count <= max`` for each quota."""
    for q in problem.quotas:
        ks = np.flatnonzero(q.covers(v.lines, v.workers))
        total = cp_model.LinearExpr.sum([v.x[i] for i in ks.tolist()])
        if q.min_workers > 0:
            model.add(total >= q.min_workers)
        if q.max_workers is not None and q.max_workers < ks.size:
            model.add(total <= q.max_workers)


@dataclass
class StabilityStats:
    """Counts, and how every auxiliary variable is defined (to complete a hint)."""

    constraints: int = 0
    suffix_vars: int = 0
    prefix_vars: int = 0
    forced_zero: int = 0
    # (variable, pair numbers): the variable is the sum of those x.
    sums: list[tuple[cp_model.IntVar, np.ndarray]] = field(default_factory=list)
    # (variable, pair numbers, cap): the variable is 1 when those x sum to cap.
    cuts: list[tuple[cp_model.IntVar, np.ndarray, int]] = field(default_factory=list)

    def hint(self, x_values: np.ndarray) -> list[tuple[cp_model.IntVar, int]]:
        """Values of the auxiliary variables for given values of the x (aligned with pairs)."""
        out = [(var, int(x_values[ks].sum())) for var, ks in self.sums]
        out += [(var, int(x_values[ks].sum() >= c)) for var, ks, c in self.cuts]
        return out

    def describe(self) -> str:
        return (
            f"stability: {self.constraints} cumulative constraints, {self.suffix_vars} worker "
            f"suffix sums, {self.prefix_vars} line prefix sums"
        )


@dataclass
class StabilityStructure:
    """The sorted orders and, per stability constraint, where its sums start.

    Constraint ``i`` is about the candidate pair ``(s[i], p[i])``: ``worker_order[s]`` lists
    ``s``'s pair numbers best line first, and the lines ``s`` ranks strictly worse than
    ``p[i]`` are ``worker_order[s][w[i]:]`` (never empty); ``line_order[p]`` lists the pair
    numbers on ``p`` best worker first, and the workers ``p`` ranks no worse than ``s`` are
    ``line_order[p][:g[i]]``.
    """

    worker_order: list[np.ndarray]
    line_order: list[np.ndarray]
    s: np.ndarray
    p: np.ndarray
    w: np.ndarray
    g: np.ndarray


def stability_structure(v: Variables, problem: ProblemData, candidates: np.ndarray) -> StabilityStructure | None:
    """The orders and positions of :class:`StabilityStructure`; ``None`` when no candidate
    pair needs a constraint (no candidate worker has a kept line below the candidate line)."""
    dw, dp = problem.dw, problem.dp
    m, n = problem.n_workers, problem.n_lines

    # Worker side: for each candidate (s, p), the start w of the suffix of s's order that
    # s ranks strictly worse than p. No constraint when that suffix is empty.
    need_s, need_p, need_w = [], [], []
    worker_order: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * m
    for s in range(m):
        ps = np.flatnonzero(candidates[s])
        if ps.size == 0:
            continue
        ks = v.of_worker(s)
        lines = v.lines[ks]
        order = np.lexsort((lines, dw[s, lines]))
        ks = ks[order]
        worker_order[s] = ks
        w = count_not_worse(dw[s, v.lines[ks]], dw[s, ps])
        has_worse = w < ks.size
        need_s.append(np.full(int(has_worse.sum()), s))
        need_p.append(ps[has_worse])
        need_w.append(w[has_worse])
    if not need_s or not sum(a.size for a in need_s):
        return None
    cs = np.concatenate(need_s)
    cp_ = np.concatenate(need_p)
    cw = np.concatenate(need_w)

    # Line side: for each such pair, the length g of the prefix of p's order that p ranks
    # no worse than s.
    cg = np.zeros(cs.size, dtype=np.int64)
    line_order: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * n
    by_line = np.argsort(cp_, kind="stable")
    bounds = np.searchsorted(cp_[by_line], np.arange(n + 1))
    for p in range(n):
        rows = by_line[bounds[p] : bounds[p + 1]]
        if rows.size == 0:
            continue
        ks = v.of_line(p)
        workers = v.workers[ks]
        order = np.lexsort((workers, dp[workers, p]))
        ks = ks[order]
        line_order[p] = ks
        cg[rows] = count_not_worse(dp[v.workers[ks], p], dp[cs[rows], p])
    return StabilityStructure(worker_order, line_order, cs, cp_, cw, cg)


def stability(
    model: cp_model.CpModel, v: Variables, problem: ProblemData, candidates: np.ndarray
) -> StabilityStats:
    """Constraint 5 (weak stability with ties) in the cumulative form described above."""
    stats = StabilityStats()
    cap = problem.capacity
    st = stability_structure(v, problem, candidates)
    if st is None:
        return stats
    worker_order, line_order, cs, cp_, cw, cg = st.worker_order, st.line_order, st.s, st.p, st.w, st.g

    # Suffix sums u(s, w), chained from the worst line upwards.
    suffix: dict[tuple[int, int], cp_model.IntVar] = {}
    for s in np.unique(cs):
        ks = worker_order[s]
        prev, prev_w = None, ks.size
        for w in sorted(set(cw[cs == s].tolist()), reverse=True):
            terms = [v.x[k] for k in ks[w:prev_w]]
            if prev is None and len(terms) == 1:
                u = terms[0]
            else:
                u = model.new_bool_var("")
                model.add(u == _sum(terms + ([prev] if prev is not None else [])))
                stats.suffix_vars += 1
                stats.sums.append((u, ks[w:]))
            suffix[(int(s), w)] = u
            prev, prev_w = u, w

    # Per line p and needed prefix length g: a Boolean cut(p, g) = "p is full with its first
    # g workers (those it ranks no worse than the g-th)". It needs the prefix sum P(p, g) to
    # reach cap(p), and it excludes every worker after position g. The exclusion is implied
    # by the prefix sum for integers, but stating it per worker (chained, so each x gets one
    # clause) makes the LP relaxation much tighter when cap(p) > 1.
    cut: dict[tuple[int, int], cp_model.IntVar] = {}
    for p in np.unique(cp_):
        ks = line_order[p]
        c = int(cap[p])
        needed = [g for g in sorted(set(cg[cp_ == p].tolist())) if g >= c]
        prev_p, prev_g, prev_cut = None, 0, None
        for g in needed:
            terms = [v.x[k] for k in ks[prev_g:g]]
            total = model.new_int_var(0, min(g, c), "")
            model.add(total == _sum(terms + ([prev_p] if prev_p is not None else [])))
            y = model.new_bool_var("")
            model.add(total - c * y >= 0)
            stats.sums.append((total, ks[:g]))
            stats.cuts.append((y, ks[:g], c))
            if prev_cut is not None:
                model.add_implication(prev_cut, y)  # full with fewer => full with more
                for k in ks[prev_g:g]:  # workers between the two cuts: excluded by prev_cut
                    model.add_bool_or([prev_cut.Not(), v.x[k].Not()])
            stats.prefix_vars += 1
            cut[(int(p), g)] = y
            prev_p, prev_g, prev_cut = total, g, y
        if prev_cut is not None:
            for k in ks[prev_g:]:
                model.add_bool_or([prev_cut.Not(), v.x[k].Not()])

    for s, p, w, g in zip(cs.tolist(), cp_.tolist(), cw.tolist(), cg.tolist(), strict=True):
        u = suffix[(s, w)]
        c = int(cap[p])
        if g < c:
            # p can never be full of workers it ranks no worse than s: s must not be on a
            # line it ranks strictly worse than p. (Pruning usually removed these already.)
            model.add(u == 0)
            stats.forced_zero += 1
        else:
            model.add_implication(u, cut[(p, g)])
        stats.constraints += 1
    return stats


def add_constraints(
    model: cp_model.CpModel,
    v: Variables,
    problem: ProblemData,
    *,
    candidates: np.ndarray | None = None,
) -> StabilityStats | None:
    """All constraints in :data:`ORDER`, then :data:`RULES`; stability only when
    ``candidates`` is given (linked workers are no candidates: they never block)."""
    one_line_per_worker(model, v, problem)
    capacity(model, v, problem)
    mandatory_fill(model, v, problem)
    pins(model, v, problem)
    links(model, v, problem)
    quotas(model, v, problem)
    if candidates is None:
        return None
    return stability(model, v, problem, candidates)
