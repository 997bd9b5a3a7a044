"""Solver backends: translate :class:`~allocator.problem.ProblemData` into a model and back.

:func:`solve_problem` is the one entry point: the exact min-cost flow (:mod:`.flow`) when
stability is off (one flow per level with priority tiers or fewest moves,
:mod:`.lexicographic`), CP-SAT on top of it (:mod:`.cpsat`) when it is on or with links and
quotas. Both return a
:class:`~allocator.solvers.base.SolveOutcome` in indices; an infeasible run is a status, never
an exception (the diagnosis module explains it).
"""

from __future__ import annotations

import time

from allocator.problem import ProblemData
from allocator.solvers.base import Callbacks, SolveOptions, SolveOutcome, Status

__all__ = ["Callbacks", "SolveOptions", "SolveOutcome", "Status", "solve_problem"]


def _options(problem: ProblemData, options: SolveOptions | None) -> SolveOptions:
    return options if options is not None else SolveOptions(time_limit=problem.settings.max_seconds)


def solve_problem(problem: ProblemData, options: SolveOptions | None = None) -> SolveOutcome:
    """Solve one run exactly as allocation-model.md says.

    Parameters
    ----------
    problem
        The run's dense data.
    options
        Threads, time limit, callbacks and stop event. Without it: 2 threads and the run's
        ``max_seconds``.

    Returns
    -------
    SolveOutcome
        ``optimal`` (proven), ``feasible`` (time limit or stop; the best allocation kept),
        ``infeasible`` or ``no_solution``. The allocation depends only on the problem, its
        settings and ``rng_seed``.
    """
    options = _options(problem, options)
    if problem.settings.stability:
        # Stability, with or without links, quotas, tiers and fewest moves: the stable model
        # holds them all (business-rules.md "Stability together with these rules").
        started = time.perf_counter()
        from allocator.solvers.cpsat import solve_stable  # CP-SAT (and pandas) load lazily

        # The first import takes about a second; it counts against the time limit (the
        # deadline starts before it), but not against the work budget, which comes from the
        # time limit alone so that the same inputs stop at the same point.
        return solve_stable(problem, options, started=started)
    if problem.lexicographic and not problem.has_links_or_quotas:
        # Priority tiers and fewest moves alone are still flows: one per level, each on the
        # optimal face of the levels before it (business-rules.md; see .lexicographic).
        from allocator.solvers.lexicographic import solve as solve_lexicographic

        return solve_lexicographic(problem, options)
    if problem.has_business_rules:
        # Links and quotas need CP-SAT (business-rules.md).
        from allocator.solvers.cpsat.rules import solve_rules

        return solve_rules(problem, options)
    from allocator.solvers.flow import solve

    return solve(problem, options)
