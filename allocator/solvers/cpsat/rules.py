"""CP-SAT for the business rules a min-cost flow cannot hold: links and quotas (business-rules.md).

The model is the seed's (one line per worker, places, must-be-filled, pins) plus

- **links** (constraint 6): a Boolean ``y(link, site)`` per site that every worker of the link
  can reach, exactly one of them true, and each worker's pairs on that site's lines summing to
  ``y(link, site)``;
- **quotas** (constraint 7): ``min <= sum x(s, p) <= max`` over the quota's lines and the
  workers it counts.

The objective is lexicographic (business-rules.md "Objective with priority tiers"): the moves
from the previous allocation when fewest moves is on, then each tier's rounded cost, tier 1
first. Each level is solved to optimality and then fixed (``level == optimum``) before the
next; the last level carries the seeded tie-break (``base * tie_factor + tie`` over every
worker, exact because the tie-break sum stays below ``tie_factor``), so that the seed picks
among allocations that tie on every level, as always.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from allocator.problem import ProblemData
from allocator.solvers.base import SolveOptions, SolveOutcome, Status
from allocator.solvers.cpsat import constraints as cons
from allocator.solvers.cpsat.model import run_cpsat
from allocator.solvers.cpsat.objective import weighted
from allocator.solvers.cpsat.variables import Variables, make_variables
from allocator.solvers.scaling import cpsat_budget, integer_costs

BACKEND = "cpsat-rules"


@dataclass
class Level:
    """One level of the lexicographic objective, with integer coefficients per pair."""

    name: str
    coefficients: np.ndarray  # (P,) int64


def levels(problem: ProblemData, v: Variables, base: np.ndarray, tie: np.ndarray, tie_factor: int) -> list[Level]:
    """The lexicographic levels, best first; the last carries the seeded tie-break."""
    out: list[Level] = []
    if problem.fewest_moves:
        prev = problem.previous[v.workers]
        moved = ((prev >= 0) & (prev != v.lines)).astype(np.int64)
        out.append(Level("moves", moved))
    tiers = problem.tier[v.workers]
    for t, prio in enumerate(problem.tier_priorities):
        name = f"tier {prio}" if prio is not None else ("cost" if problem.n_tiers == 1 else "workers without a priority")
        out.append(Level(name, np.where(tiers == t, base, 0).astype(np.int64)))
    last = out[-1]
    last.coefficients = last.coefficients * np.int64(tie_factor) + tie
    return out


def solve_rules(problem: ProblemData, options: SolveOptions) -> SolveOutcome:
    """Solve a run with links and/or quotas (stability off) exactly, level by level."""
    started = time.perf_counter()
    deadline = started + float(options.time_limit)
    log: list[str] = []
    costs = integer_costs(problem, budget=cpsat_budget(max(1, problem.n_workers)))
    model = cp_model.CpModel()
    v = make_variables(model, problem.allowed)
    # integer_costs orders pairs row-major over the allowed pairs, as make_variables does.
    assert np.array_equal(costs.workers, v.workers) and np.array_equal(costs.lines, v.lines)
    cons.one_line_per_worker(model, v, problem)
    cons.capacity(model, v, problem)
    cons.mandatory_fill(model, v, problem)
    cons.pins(model, v, problem)
    cons.links(model, v, problem)
    cons.quotas(model, v, problem)

    options.callbacks.on_phase("business rules")
    assignment: np.ndarray | None = None
    status = Status.OPTIMAL
    best_bound: float | None = None
    for level in levels(problem, v, costs.base, costs.tie, costs.tie_factor):
        expr = weighted(v, level.coefficients)
        model.minimize(expr)
        if assignment is not None:
            model.clear_hints()
            for i, x in enumerate(v.x):
                model.add_hint(x, int(assignment[v.workers[i]] == v.lines[i]))
        left = deadline - time.perf_counter()
        code, solver = run_cpsat(model, options, max(0.0, left), problem.settings.rng_seed,
                                 workers=1, interleave_search=True)
        if code == cp_model.INFEASIBLE:
            return SolveOutcome(Status.INFEASIBLE, None, None, None, time.perf_counter() - started, BACKEND, log)
        if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            if assignment is None:
                return SolveOutcome(Status.NO_SOLUTION, None, None, None, time.perf_counter() - started, BACKEND, log)
            status = Status.FEASIBLE
            break
        sol = np.asarray([solver.value(x) for x in v.x], dtype=np.int64)
        assignment = np.full(problem.n_workers, -1, dtype=np.int64)
        assignment[v.workers[sol > 0]] = v.lines[sol > 0]
        value = int(round(solver.objective_value))
        log.append(f"{level.name}: {value} ({'proven' if code == cp_model.OPTIMAL else 'not proven'})")
        if code != cp_model.OPTIMAL:
            status = Status.FEASIBLE
            break
        model.add(expr == value)
    assert assignment is not None
    objective = problem.objective(assignment)
    if status == Status.OPTIMAL:
        best_bound = objective
    return SolveOutcome(status, assignment, objective, best_bound, time.perf_counter() - started, BACKEND, log)
