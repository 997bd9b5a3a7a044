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

Both rules only shrink ``keep``, and each is sound for any superset of the stable pairs, so
applying them in turn until nothing changes is sound. A worker left without pairs proves
that no stable allocation exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allocator.problem import ProblemData
from allocator.solvers.cpsat.order import count_better, count_not_worse
from allocator.stability import strictly_less


@dataclass
class Pruning:
    keep: np.ndarray  # (M, N) bool: pairs that may be in some stable allocation
    candidates: np.ndarray  # (M, N) bool: pairs that can block
    rounds: int
    removed_by_line_rule: int  # rule B
    removed_by_worker_rule: int  # rule A
    removed_no_places: int

    @property
    def infeasible(self) -> bool:
        """No stable allocation exists (some worker has no pair left)."""
        return bool(self.keep.shape[0]) and not bool(self.keep.any(axis=1).all())

    def describe(self) -> str:
        return (
            f"pruning: {int(self.keep.sum())} pairs kept after {self.rounds} rounds "
            f"(removed: {self.removed_no_places} on lines without places, "
            f"{self.removed_by_line_rule} by the line rule, {self.removed_by_worker_rule} by "
            f"the worker rule)"
        )


def blocking_candidates(problem: ProblemData) -> np.ndarray:
    """(M, N) bool: pairs that can block (eligible, unforbidden, unpinned worker, a place)."""
    cand = problem.eligible & ~problem.forbidden
    cand[problem.pin >= 0, :] = False
    cand[:, problem.capacity < 1] = False
    return cand


def prune(problem: ProblemData, *, enabled: bool = True, max_rounds: int = 10_000) -> Pruning:
    """Apply rules A and B to a fixpoint (or only the trivial deletions when not ``enabled``)."""
    allowed = problem.allowed
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
    pinned_on = np.bincount(pin[pinned], minlength=n)
    lines_with_places = np.flatnonzero(cap >= 1)

    for rnd in range(1, max_rounds + 1):
        result.rounds = rnd
        changed = False

        # Rule B: find, for each worker, the best line that would surely take them.
        safe = np.zeros((m, n), dtype=bool)
        for p in lines_with_places:
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
        claims = ~pinned & (n_top == 1)
        for p in lines_with_places:
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

        if not changed or not keep.any(axis=1).all():
            break
    result.keep = keep
    return result
