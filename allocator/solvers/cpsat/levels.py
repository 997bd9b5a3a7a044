"""The lexicographic objective of business-rules.md as integer levels, for the CP-SAT models.

Levels, best first: the number of moves from the previous allocation (when fewest moves is
on), then the rounded cost of each priority tier, tier 1 first, the workers without a priority
last. A run without tiers or fewest moves has one level, the rounded cost. Each level is a
weighted sum of the pair Booleans with integer coefficients:

* moves: ``1`` for a pair ``(s, p)`` with ``s`` in the previous allocation on a line other
  than ``p``, else ``0``;
* tier ``t``: ``base(s, p)`` (the rounded, shifted cost of :mod:`allocator.solvers.scaling`)
  for the workers of tier ``t``, ``0`` for the others.

The rounding error of a tier's level is at most half a unit per worker of the tier, the same
precision argument as for the whole objective (:mod:`allocator.solvers.scaling`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allocator.problem import ProblemData


@dataclass
class Level:
    """One level of the lexicographic objective, with integer coefficients per pair."""

    name: str
    coefficients: np.ndarray  # (P,) int64, aligned with the pairs given
    workers: np.ndarray  # (M,) bool: the workers the level is about (their pairs carry its costs)


def levels(problem: ProblemData, workers: np.ndarray, lines: np.ndarray, base: np.ndarray) -> list[Level]:
    """The levels for the pairs ``(workers[k], lines[k])`` whose rounded cost is ``base[k]``."""
    out: list[Level] = []
    if problem.fewest_moves:
        prev = problem.previous[workers]
        out.append(Level("moves", ((prev >= 0) & (prev != lines)).astype(np.int64), problem.previous >= 0))
    tiers = problem.tier[workers]
    for t, prio in enumerate(problem.tier_priorities):
        if prio is not None:
            name = f"tier {prio}"
        else:
            name = "cost" if problem.n_tiers == 1 else "workers without a priority"
        out.append(Level(name, np.where(tiers == t, base, 0).astype(np.int64), problem.tier == t))
    return out


def meets_rules(problem: ProblemData, assignment: np.ndarray) -> bool:
    """Every link and quota of the run holds (the engine's own check)."""
    if not problem.has_links_or_quotas:
        return True
    from allocator.engine import rule_breaches  # the engine imports the solvers: load lazily

    return not rule_breaches(problem, assignment)
