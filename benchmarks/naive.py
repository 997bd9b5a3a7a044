"""The naive CP-SAT model, kept out of the package: only benchmarks/run.py uses it.

Issue 2 says not to ship it: a plain CP-SAT model with costs scaled by 10^6 cannot prove
optimality within 60 s on runs that the min-cost flow solves in well under a second. It lives
here so that the benchmarks can show the ratio.
"""

from __future__ import annotations

import time

import numpy as np
from ortools.sat.python import cp_model

from allocator.problem import ProblemData
from allocator.solvers.base import SolveOptions, SolveOutcome, Status
from allocator.solvers.cpsat.constraints import add_constraints
from allocator.solvers.cpsat.model import _STATUS, _solution, run_cpsat
from allocator.solvers.cpsat.objective import weighted
from allocator.solvers.cpsat.variables import make_variables


def naive_cpsat(problem: ProblemData, options: SolveOptions) -> SolveOutcome:
    """A plain CP-SAT model (costs x 10^6, constraints 1-4), kept only for benchmark ratios.

    This is what the issue warns against shipping: no flow, no bound, no hint. It is here so
    that ``benchmarks/run.py`` can show what the flow saves. Stability is ignored.
    """
    start = time.perf_counter()
    model = cp_model.CpModel()
    v = make_variables(model, problem.allowed)
    add_constraints(model, v, problem)
    model.minimize(weighted(v, np.rint(problem.cost[v.workers, v.lines] * 1e6).astype(np.int64)))
    status, solver = run_cpsat(model, options, options.time_limit, problem.settings.rng_seed)
    mapped = _STATUS[status]
    assignment = v.assignment(_solution(solver)) if mapped in (Status.OPTIMAL, Status.FEASIBLE) else None
    objective = problem.objective(assignment) if assignment is not None else None
    bound = solver.best_objective_bound / 1e6 if assignment is not None else None
    return SolveOutcome(
        mapped, assignment, objective, bound, time.perf_counter() - start, "naive-cpsat",
        [f"naive CP-SAT: {solver.status_name(status)} in {solver.wall_time:.2f} s"],
    )
