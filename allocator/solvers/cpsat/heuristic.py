"""Weakly stable allocations to start from (hints for CP-SAT, and a fallback answer).

Two heuristics; the cheaper of their results is used. Neither decides optimality.

Worker-proposing deferred acceptance
------------------------------------

Break every tie (worker side by cost then a seeded hash; line side by cost then the hash),
run capacitated worker-proposing deferred acceptance over the allowed pairs with pinned
workers placed first and never displaced, and keep the result if it is a valid allocation
(everyone placed, mandatory lines filled) with no blocking pair. An allocation that is
stable for the tie-broken preferences is weakly stable for the real ones, since a blocking
pair of the real preferences (strict on both sides) blocks the tie-broken ones too; pins
can still cause blocking pairs, hence the final check.

Worker-proposing deferred acceptance gives the workers' best stable allocation for the
broken ties, and workers' ranks carry most of the cost, so it is usually a good hint for
CP-SAT. It is only a hint: the model decides optimality.
"""

from __future__ import annotations

import heapq
import time

import numpy as np

from allocator.problem import ProblemData
from allocator.solvers.scaling import tie_break
from allocator.stability import blocking_mask, blocking_pairs, strictly_less


def deferred_acceptance(problem: ProblemData, seed: int) -> np.ndarray | None:
    """A weakly stable allocation, or ``None`` when this tie-break does not give one."""
    m, n = problem.n_workers, problem.n_lines
    allowed = problem.allowed
    cap = problem.capacity.astype(np.int64).copy()
    pin = problem.pin
    s_all, p_all = np.divmod(np.arange(m * n), n)
    tie = tie_break(problem, seed, 1 << 30, s_all, p_all).reshape(m, n)
    # Worker s's proposals, best first.
    w_key = np.lexsort((tie, problem.cost, problem.dw), axis=1) if m else np.zeros((0, n), int)
    # Line p's rank of worker s (lower is better): by Dp, then cost, then the hash.
    l_order = np.lexsort((tie.T, problem.cost.T, problem.dp.T), axis=1)  # (N, M)
    l_rank = np.empty((n, m), dtype=np.int64)
    l_rank[np.arange(n)[:, None], l_order] = np.arange(m)[None, :]

    held: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # max-heaps of (-rank, worker)
    assignment = np.full(m, -1, dtype=np.int64)
    for s in np.flatnonzero(pin >= 0):
        p = int(pin[s])
        assignment[s] = p
        cap[p] -= 1
    if (cap < 0).any():
        return None
    nxt = np.zeros(m, dtype=np.int64)
    free = [int(s) for s in np.flatnonzero(pin < 0)][::-1]
    while free:
        s = free.pop()
        row = w_key[s]
        while nxt[s] < n and not allowed[s, row[nxt[s]]]:
            nxt[s] += 1
        if nxt[s] >= n:
            return None  # s was rejected everywhere
        p = int(row[nxt[s]])
        nxt[s] += 1
        r = int(l_rank[p, s])
        if cap[p] <= 0:  # no place left beside the pinned workers: rejected
            free.append(s)
            continue
        heap = held[p]
        if len(heap) < cap[p]:
            heapq.heappush(heap, (-r, s))
            assignment[s] = p
        elif -heap[0][0] > r:
            _, out = heapq.heapreplace(heap, (-r, s))
            assignment[s] = p
            assignment[out] = -1
            free.append(out)
        else:
            free.append(s)
    if (assignment < 0).any():
        return None
    fill = np.bincount(assignment, minlength=n)
    if (fill[problem.mandatory] < 1).any():
        return None
    if blocking_pairs(problem, assignment):
        return None
    return assignment


def flow_repair(
    problem: ProblemData, keep: np.ndarray, max_rounds: int = 200, deadline: float | None = None
) -> np.ndarray | None:
    """A stable allocation close to the cost optimum: min-cost flows that shed blocking pairs.

    Solve the flow over ``keep``; while its allocation has blocking pairs, take for each
    line the blocking worker it ranks best (ties: lowest index) and remove that worker's
    lines that are strictly worse than the blocked one (the worker is "pushed up", as the
    line would accept them), then solve again. Each round removes pairs, so it ends: with a
    stable allocation, or ``None`` when the flow becomes infeasible or the rounds run out.
    A heuristic for the hint only; removed pairs may well be in better stable allocations.
    Past ``deadline`` (``time.perf_counter()``) it gives up and returns ``None``.
    """
    from allocator.solvers.flow import solve_flow_scaled

    keep = keep.copy()
    for _ in range(max_rounds):
        if deadline is not None and time.perf_counter() >= deadline:
            return None
        s, p = np.nonzero(keep)
        result, _ = solve_flow_scaled(problem, pairs=(s.astype(np.int32), p.astype(np.int32)))
        if result.assignment is None:
            return None
        block = blocking_mask(problem, result.assignment)
        if not block.any():
            return result.assignment
        bs, bp = np.nonzero(block)
        order = np.lexsort((bs, problem.dp[bs, bp], bp))
        bs, bp = bs[order], bp[order]
        first = np.ones(bs.size, dtype=bool)
        first[1:] = bp[1:] != bp[:-1]
        bs, bp = bs[first], bp[first]
        best = np.full(problem.n_workers, np.inf)
        np.minimum.at(best, bs, problem.dw[bs, bp])
        keep &= ~strictly_less(best[:, None], problem.dw)
    return None
