"""The lexicographic objective of business-rules.md as integer levels, for the CP-SAT models.

Levels, best first: the number of moves from the previous allocation (when fewest moves is
on), then the rounded cost of each priority tier, tier 1 first, the workers without a priority
last. A run without tiers or fewest moves has one level, the rounded cost. Each level is a
weighted sum of the pair Booleans with integer coefficients:

* moves: ``1`` for a pair ``(s, p)`` with ``s`` in the previous allocation on a line other
  than ``p``, else ``0``;
* tier ``t``: the integer cost of the pair for the workers of tier ``t``, ``0`` for the
  others. With one level that is ``base(s, p)``, the rounded, shifted cost of
  :mod:`allocator.solvers.scaling`. With several levels each tier gets its own integers from
  :func:`allocator.solvers.lexicographic.tier_costs`, the ones the flow path uses: the exact
  grid of the data's decimals when there is one (planners' data always has one), else the
  tier's costs scaled on their own.

Why several levels need the grid. A solved level is fixed by equality of its integer value
before the next level is minimised. With costs scaled by ``2^25`` and rounded per pair, two
allocations whose real tier costs are equal can round to sums one unit apart, and the
equality would exclude the one that is better on the next level: the answer was then worse
on a later level than the true lexicographic optimum (found against HiGHS on 150 x 40 runs
with three tiers). On the grid, equal real sums are equal integer sums, so fixing a level
keeps exactly the allocations that reach its optimum. Off the grid, the rounding error of a
tier's level is at most half a unit per worker of the tier, within the spec's 1e-7 per level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allocator.problem import ProblemData
from allocator.solvers.scaling import cpsat_budget


@dataclass
class Level:
    """One level of the lexicographic objective, with integer coefficients per pair."""

    name: str
    coefficients: np.ndarray  # (P,) int64, aligned with the pairs given
    workers: np.ndarray  # (M,) bool: the workers the level is about (their pairs carry its costs)


def levels(problem: ProblemData, workers: np.ndarray, lines: np.ndarray, base: np.ndarray) -> list[Level]:
    """The levels for the pairs ``(workers[k], lines[k])`` whose rounded cost is ``base[k]``.

    ``workers`` must be non-decreasing (each worker's pairs together). ``base`` is the single
    level's cost; with several levels each tier's integers come from ``tier_costs``.
    """
    from allocator.solvers.lexicographic import tier_costs  # imports the flow solver: load lazily

    out: list[Level] = []
    several = problem.fewest_moves or problem.n_tiers > 1
    if problem.fewest_moves:
        prev = problem.previous[workers]
        out.append(Level("moves", ((prev >= 0) & (prev != lines)).astype(np.int64), problem.previous >= 0))
    tiers = problem.tier[workers]
    for t, prio in enumerate(problem.tier_priorities):
        if prio is not None:
            name = f"tier {prio}"
        else:
            name = "cost" if problem.n_tiers == 1 else "workers without a priority"
        if several:
            mine = tier_costs(problem, t, workers, lines, budget=cpsat_budget(problem.n_workers), with_tie=False).base
        else:
            mine = base
        out.append(Level(name, np.where(tiers == t, mine, 0).astype(np.int64), problem.tier == t))
    return out


def meets_rules(problem: ProblemData, assignment: np.ndarray) -> bool:
    """Every link and quota of the run holds (the engine's own check)."""
    if not problem.has_links_or_quotas:
        return True
    from allocator.engine import rule_breaches  # the engine imports the solvers: load lazily

    return not rule_breaches(problem, assignment)
