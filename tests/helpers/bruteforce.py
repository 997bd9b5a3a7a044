"""Brute force over every allocation of a tiny run: the independent oracle of the solver tests.

It enumerates ``itertools.product`` over each worker's allowed lines, keeps the allocations
that satisfy the hard constraints (capacity, mandatory fill; pins and forbids are in
``allowed``), and marks the weakly stable ones with the project's checker
(:func:`allocator.stability.blocking_pairs`). Costs are summed straight from
``problem.cost``; nothing here touches a solver.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from allocator.problem import ProblemData
from allocator.stability import blocking_pairs


@dataclass
class Enumeration:
    allocations: np.ndarray  # (K, M) every valid allocation (line index per worker)
    costs: np.ndarray  # (K,) their costs
    stable: np.ndarray  # (K,) bool: no blocking pair

    def best(self, *, stable: bool) -> float | None:
        """The minimum cost (over stable allocations when ``stable``), None if there is none."""
        costs = self.costs[self.stable] if stable else self.costs
        return float(costs.min()) if costs.size else None

    def optimal(self, *, stable: bool, rel: float = 1e-7) -> np.ndarray:
        """All allocations within the solver's precision of the optimum."""
        best = self.best(stable=stable)
        ok = self.stable if stable else np.ones(self.costs.size, dtype=bool)
        if best is None:
            return self.allocations[:0]
        tol = rel * max(1.0, abs(best))
        return self.allocations[ok & (self.costs <= best + tol)]


def enumerate_allocations(problem: ProblemData, *, check_stability: bool = True) -> Enumeration:
    m, n = problem.n_workers, problem.n_lines
    allowed = problem.allowed
    choices = [np.flatnonzero(allowed[s]).tolist() for s in range(m)]
    if any(not c for c in choices):
        empty = np.zeros((0, m), dtype=np.int64)
        return Enumeration(empty, np.zeros(0), np.zeros(0, dtype=bool))
    allocs = np.array(list(itertools.product(*choices)), dtype=np.int64).reshape(-1, m)
    fill = np.stack([(allocs == p).sum(axis=1) for p in range(n)], axis=1)  # (K, N)
    ok = (fill <= problem.capacity[None, :]).all(axis=1)
    ok &= (fill[:, problem.mandatory] >= 1).all(axis=1)
    allocs = allocs[ok]
    costs = problem.cost[np.arange(m)[None, :], allocs].sum(axis=1)
    if check_stability:
        stable = np.array([not blocking_pairs(problem, a) for a in allocs], dtype=bool)
    else:
        stable = np.zeros(len(allocs), dtype=bool)
    return Enumeration(allocs, costs, stable)


def assert_valid(problem: ProblemData, assignment: np.ndarray) -> None:
    """Every hard constraint of allocation-model.md, checked from the data."""
    m = problem.n_workers
    assert assignment.shape == (m,)
    rows = np.arange(m)
    assert problem.eligible[rows, assignment].all(), "a worker is on a line they are not eligible for"
    assert not problem.forbidden[rows, assignment].any(), "a worker is on a forbidden line"
    fill = np.bincount(assignment, minlength=problem.n_lines)
    assert (fill <= problem.capacity).all(), "a line is over capacity"
    assert (fill[problem.mandatory] >= 1).all(), "a mandatory line is empty"
    pinned = problem.pin >= 0
    assert (assignment[pinned] == problem.pin[pinned]).all(), "a pin was not kept"
