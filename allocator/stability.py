"""Blocking pairs (allocation-model.md, constraint 5): weak stability with ties.

A pair ``(s, p)`` blocks an allocation ``M`` when ``p`` is eligible for ``s`` and not forbidden,
``p != M(s)``, ``s`` is not pinned, ``Dw(s, p) < Dw(s, M(s))``, and either ``p`` has a free place
or some worker ``t`` on ``p`` has ``Dp(p, s) < Dp(p, t)``.

"Strictly less" is decided by :func:`strictly_less` everywhere (here, in the CP-SAT encoding,
in pruning), with a tiny relative tolerance so that values equal up to floating-point noise
count as ties.

With linked workers (business-rules.md, "Stability together with these rules"), a linked
worker never forms a blocking pair (a link moves together or not at all), but still counts as
an occupant of their line when another worker's pair is judged. Quotas and tiers do not change
the definition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from allocator.problem import ProblemData

REL_TOL = 1e-9


def strictly_less(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """``a < b`` beyond floating-point noise (elementwise)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))
    return a < b - REL_TOL * scale


def linked_mask(problem: ProblemData) -> np.ndarray:
    """(M,) bool: the worker belongs to a link (and so never forms a blocking pair)."""
    out = np.zeros(problem.n_workers, dtype=bool)
    for link in problem.links:
        out[link.workers] = True
    return out


def blocking_mask(problem: ProblemData, assignment: np.ndarray) -> np.ndarray:
    """(M, N) bool: ``True`` for every blocking pair of ``assignment`` (line index per worker).

    A linked worker is never the blocking side (their row is all ``False``), but counts as an
    occupant of their line: the fill and the worst occupant include them.
    """
    m, n = problem.n_workers, problem.n_lines
    assignment = np.asarray(assignment, dtype=np.int64)
    rows = np.arange(m)
    fill = np.bincount(assignment, minlength=n)
    # Worst (largest) preferencer dissatisfaction among the workers on each line.
    worst_dp = np.full(n, -np.inf)
    np.maximum.at(worst_dp, assignment, problem.dp[rows, assignment])
    candidate = problem.eligible & ~problem.forbidden
    candidate[problem.pin >= 0, :] = False
    candidate[linked_mask(problem), :] = False
    candidate[rows, assignment] = False
    worker_prefers = strictly_less(problem.dw, problem.dw[rows, assignment][:, None])
    free = (fill < problem.capacity)[None, :]
    line_prefers = strictly_less(problem.dp, worst_dp[None, :])
    return candidate & worker_prefers & (free | line_prefers)


def blocking_pairs(problem: ProblemData, assignment: np.ndarray) -> list[tuple[int, int]]:
    """The blocking pairs ``(worker index, line index)``, sorted."""
    s, p = np.nonzero(blocking_mask(problem, assignment))
    return list(zip(s.tolist(), p.tolist(), strict=True))
