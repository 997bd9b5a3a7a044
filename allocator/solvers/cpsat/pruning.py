"""Remove pairs that are in no weakly stable allocation, before the CP-SAT model is built.

Ties make weakly stable matching NP-hard, and the unranked-items rule ties every unranked
line of a worker, so the model must be as small as we can prove it may be. Only provably
safe deletions are made: a pair is removed only when *no* allocation that satisfies the hard
constraints (one line per worker, capacities, pins) and has no blocking pair can contain it.
Mandatory fills only remove allocations, so they never make a deletion unsafe; we do not use
them to delete more.

Notation: ``keep`` is the set of pairs still possible (a superset of the pairs of every stable
allocation; initially the allowed pairs on lines with at least one place). A pair ``(s, p)``
is a *candidate* (it can block) when it is eligible, not forbidden, ``s`` is not pinned and
``cap(p) >= 1``; candidates need not be in ``keep``. "Better" and "worse" use
:func:`allocator.stability.strictly_less` on ``Dw`` (worker side) and ``Dp`` (line side).

Rule B (the line would take ``s``). Let ``(s, p)`` be a candidate and ``n`` the number of
workers ``t != s`` with ``(t, p)`` in ``keep`` that ``p`` does not rank strictly worse than
``s``. If ``n < cap(p)``, then in any stable allocation ``A`` with ``A(s) != p`` the line ``p``
has a free place or holds someone it ranks strictly worse than ``s`` (it holds at most ``n``
others). So ``s`` must not strictly prefer ``p`` to ``A(s)``: every line that ``s`` ranks
strictly worse than ``p`` is deleted from ``s``'s pairs.

Rule A (the worker would claim ``p``). If the kept lines of an unpinned worker ``s`` have a
unique best line ``p`` (all others strictly worse), then in any stable allocation ``A``
either ``A(s) = p`` or ``p`` is full of workers it ranks no worse than ``s`` (else ``(s, p)``
blocks). Let ``F(p)`` be those workers. If ``t`` is on ``p``, every member of ``F(p)`` that
``p`` ranks strictly better than ``t`` is on ``p`` as well, and so is every worker pinned to
``p``. When that forced head count (with ``t``) exceeds ``cap(p)``, ``t`` cannot be on ``p``:
``(t, p)`` is deleted.

Rule F (no allocation at all uses the pair). Take any allocation ``A`` that keeps the hard
constraints with pairs in ``keep`` (a feasible flow: workers supply one unit, line ``p``
takes between ``mandatory(p)`` and ``cap(p)``). A pair ``(s, p)`` with ``A(s) != p`` is in
some such allocation exactly when ``A`` can be changed along a cycle of the residual graph
that uses the arc ``s -> p``: the arcs are ``s -> q`` for every kept pair with ``A(s) != q``,
``q -> t`` for every worker ``t`` on ``q`` (``t`` leaves ``q``), ``q -> sink`` when ``q`` has a
free place and ``sink -> q`` when ``q`` holds more than its lower bound. (Flow decomposition:
the difference of two feasible flows is a sum of residual cycles, and a cycle through
``s -> p`` turns ``A`` into an allocation with ``s`` on ``p``; conversely pushing one unit
around such a cycle keeps every bound.) So ``(s, p)`` is in some allocation exactly when
``s`` and ``p`` lie in the same strongly connected component of that graph; pairs that do not
are in no allocation, stable or not, over ``keep``, and are deleted. When no allocation
over ``keep`` exists, no stable allocation exists.

Every rule only shrinks ``keep`` and each is sound for any superset of the pairs of the
stable allocations, so applying them in turn until nothing changes is sound: the fixpoint
is reached from both sides (rule B moves workers up from the line side, rule A moves them
off lines from the worker side, rule F removes what no allocation can use). A worker left
without pairs proves that no stable allocation exists.

Linked workers and quotas (business-rules.md, "Stability together with these rules"). The
stable allocations of interest are then those that keep constraints 1-4, every link and every
quota, and have no blocking pair ``(s, p)`` with ``s`` unlinked (a linked worker never blocks,
but occupies their line). Each rule stays sound for that set, with linked workers taken out
of the *blocking* side only:

* candidates (:func:`blocking_candidates`) exclude linked workers, since their pairs never
  block; rule B's proof uses only that the candidate ``(s, p)`` would block, so it deletes
  nothing from a linked worker's lines;
* rule A's claimers are unpinned *unlinked* workers: its proof needs ``(s, p)`` to block when
  ``s`` is off ``p`` and ``p`` has room or a worse occupant, which a linked ``s`` never does.
  The occupants counted (``t`` and the forced members) may be linked: occupancy is unchanged;
* rule F looks at constraints 1-4 only; links and quotas only remove allocations, so a pair
  that no allocation over ``keep`` uses is in no allocation that also keeps them.

A stable allocation meeting the rules is in particular an allocation over ``keep`` with no
blocking pair from an unlinked worker, which is all the three proofs use.

The same rules stay sound when ``keep`` starts from a smaller set that contains every pair
of every stable allocation *of interest* (for example those cheaper than an incumbent):
the proofs only use that the allocations considered have their pairs in ``keep``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from allocator.problem import ProblemData
from allocator.solvers.cpsat.order import count_better, count_not_worse
from allocator.stability import linked_mask, strictly_less


@dataclass
class Pruning:
    keep: np.ndarray  # (M, N) bool: pairs that may be in some stable allocation
    candidates: np.ndarray  # (M, N) bool: pairs that can block
    rounds: int
    removed_by_line_rule: int  # rule B
    removed_by_worker_rule: int  # rule A
    removed_no_places: int
    removed_by_flow_rule: int = 0  # rule F
    no_allocation: bool = False  # rule F found that no allocation over the kept pairs exists

    @property
    def infeasible(self) -> bool:
        """No stable allocation exists (some worker has no pair left)."""
        return self.no_allocation or (bool(self.keep.shape[0]) and not bool(self.keep.any(axis=1).all()))

    def describe(self) -> str:
        return (
            f"pruning: {int(self.keep.sum())} pairs kept after {self.rounds} rounds "
            f"(removed: {self.removed_no_places} on lines without places, "
            f"{self.removed_by_line_rule} by the line rule, {self.removed_by_worker_rule} by "
            f"the worker rule, {self.removed_by_flow_rule} by the allocation rule)"
        )


def blocking_candidates(problem: ProblemData) -> np.ndarray:
    """(M, N) bool: pairs that can block (eligible, unforbidden, unpinned unlinked worker, a place)."""
    cand = problem.eligible & ~problem.forbidden
    cand[problem.pin >= 0, :] = False
    cand[linked_mask(problem), :] = False
    cand[:, problem.capacity < 1] = False
    return cand


def prune(
    problem: ProblemData,
    *,
    enabled: bool = True,
    max_rounds: int = 10_000,
    keep: np.ndarray | None = None,
    rules: str = "ABF",
    deadline: float | None = None,
) -> Pruning:
    """Apply rules A, B and F to a fixpoint (or only the trivial deletions when not ``enabled``).

    ``keep`` (default: the allowed pairs) is the set to start from; it must contain every
    pair of every stable allocation the caller cares about. ``rules`` names the rules to
    apply (tests check each one on its own). Past ``deadline``
    (``time.perf_counter()``) the rounds stop early: what was removed so far is still sound.
    """
    allowed = problem.allowed if keep is None else (problem.allowed & keep)
    cap = problem.capacity
    keep = allowed & (cap >= 1)[None, :]
    removed_no_places = int(allowed.sum() - keep.sum())
    cand = blocking_candidates(problem)
    result = Pruning(keep, cand, 0, 0, 0, removed_no_places)
    if not enabled:
        return result

    dw, dp, pin = problem.dw, problem.dp, problem.pin
    m, n = keep.shape
    pinned = pin >= 0
    linked = linked_mask(problem)
    pinned_on = np.bincount(pin[pinned], minlength=n)
    lines_with_places = np.flatnonzero(cap >= 1)

    for rnd in range(1, max_rounds + 1):
        result.rounds = rnd
        changed = False

        # Rule B: find, for each worker, the best line that would surely take them.
        safe = np.zeros((m, n), dtype=bool)
        for p in lines_with_places if "B" in rules else ():
            who = np.flatnonzero(cand[:, p])
            if who.size == 0:
                continue
            others = np.sort(dp[keep[:, p], p])
            not_worse = count_not_worse(others, dp[who, p]) - keep[who, p]
            safe[who[not_worse < cap[p]], p] = True
        best_safe = np.where(safe, dw, np.inf).min(axis=1)
        drop = keep & strictly_less(best_safe[:, None], dw)
        drop[pinned, :] = False
        if drop.any():
            result.removed_by_line_rule += int(drop.sum())
            keep &= ~drop
            changed = True

        # Rule A: a worker whose kept lines have a unique best one claims it.
        masked = np.where(keep, dw, np.inf)
        top = masked.argmin(axis=1)
        best = masked[np.arange(m), top]
        n_top = (keep & ~strictly_less(best[:, None], dw)).sum(axis=1)
        claims = ~pinned & ~linked & (n_top == 1)  # a linked worker claims nothing
        for p in lines_with_places if "A" in rules else ():
            on = np.flatnonzero(keep[:, p])
            if on.size == 0:
                continue
            claimers = np.sort(dp[claims & (top == p), p])
            forced = 1 + count_better(claimers, dp[on, p]) + pinned_on[p] - (pin[on] == p)
            out = on[forced > cap[p]]
            if out.size:
                result.removed_by_worker_rule += int(out.size)
                keep[out, p] = False
                changed = True

        if not keep.any(axis=1).all():
            break
        # Rule F last: it needs a max-flow, the others are cheap.
        if "F" in rules and not changed:
            out = flow_rule_deletions(problem, keep)
            if out is None:
                result.no_allocation = True
                break
            if out.any():
                result.removed_by_flow_rule += int(out.sum())
                keep &= ~out
                changed = True
        if not changed or (deadline is not None and time.perf_counter() >= deadline):
            break
    result.keep = keep
    return result


def flow_rule_deletions(problem: ProblemData, keep: np.ndarray) -> np.ndarray | None:
    """Rule F: (M, N) bool of the kept pairs that no allocation over ``keep`` uses.

    ``None`` when no allocation over ``keep`` exists at all.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = feasible_allocation(problem, keep)
    if a is None:
        return None
    m, n = keep.shape
    s, p = np.nonzero(keep)
    off = a[s] != p
    fill = np.bincount(a, minlength=n)
    lines = np.arange(n)
    sink = m + n
    # Nodes: workers 0..m-1, lines m..m+n-1, the sink m+n.
    tails = np.concatenate([s[off], m + a, m + lines[fill < problem.capacity], np.full(int((fill > problem.mandatory).sum()), sink)])
    heads = np.concatenate([m + p[off], np.arange(m), np.full(int((fill < problem.capacity).sum()), sink), m + lines[fill > problem.mandatory]])
    graph = coo_matrix((np.ones(tails.size), (tails, heads)), shape=(sink + 1, sink + 1)).tocsr()
    _, comp = connected_components(graph, directed=True, connection="strong")
    out = np.zeros_like(keep)
    bad = off & (comp[s] != comp[m + p])
    out[s[bad], p[bad]] = True
    return out


def feasible_allocation(problem: ProblemData, keep: np.ndarray) -> np.ndarray | None:
    """Some allocation keeping constraints 1-4 with pairs in ``keep`` (any; no costs), or None."""
    from ortools.graph.python import min_cost_flow

    m, n = keep.shape
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    if not keep.any(axis=1).all():
        return None
    cap = problem.capacity.astype(np.int64)
    lb = problem.mandatory.astype(np.int64)
    if (lb > cap).any() or int(lb.sum()) > m or int(cap.sum()) < m:
        return None
    s, p = np.nonzero(keep)
    sink = m + n
    smcf = min_cost_flow.SimpleMinCostFlow()
    tails = np.concatenate([s, np.arange(m, m + n)]).astype(np.int32)
    heads = np.concatenate([p + m, np.full(n, sink)]).astype(np.int32)
    caps = np.concatenate([np.ones(s.size, dtype=np.int64), cap - lb])
    smcf.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, np.zeros(tails.size, dtype=np.int64))
    supplies = np.concatenate([np.ones(m, dtype=np.int64), -lb, [-(m - int(lb.sum()))]])
    smcf.set_nodes_supplies(np.arange(m + n + 1, dtype=np.int32), supplies)
    if smcf.solve() != smcf.OPTIMAL:
        return None
    flows = np.asarray(smcf.flows(np.arange(s.size, dtype=np.int32)))
    a = np.full(m, -1, dtype=np.int64)
    a[s[flows > 0]] = p[flows > 0]
    return a if (a >= 0).all() else None
