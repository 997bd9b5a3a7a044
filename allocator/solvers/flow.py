"""The exact fast path: the allocation as a min-cost flow (OR-Tools SimpleMinCostFlow).

Without stability the model is a transportation problem with lower bounds:

    worker s (supply 1) --x(s,p), cost combined(s,p)--> line p --cap(p) - lb(p)--> sink

where ``lb(p) = 1`` for a mandatory line. The lower bound is removed by the standard
node-supply transformation: the line node gets a demand of ``lb(p)`` (supply ``-lb(p)``),
its arc to the sink loses ``lb(p)`` of capacity and the sink's demand shrinks by the same
amount. A flow that meets every supply is exactly an allocation that fills every mandatory
line; OR-Tools checks feasibility with a max-flow first and says INFEASIBLE when there is
none. Pins need nothing: ``ProblemData.allowed`` already leaves a pinned worker one arc.

The solver is deterministic (a single-threaded cost-scaling push-relabel) and the arcs are
added in a fixed order (workers, then lines, in sorted-id order), so the flow depends only
on the integer costs; the seeded tie-break inside them (see :mod:`.scaling`) picks which of
the optimal allocations it is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from ortools.graph.python import min_cost_flow

from allocator.problem import ProblemData
from allocator.solvers.base import SolveOptions, SolveOutcome, Status
from allocator.solvers.scaling import IntegerCosts, allowed_pairs, flow_budget, integer_costs

_SMCF = min_cost_flow.SimpleMinCostFlow
# Bits of headroom for the node potentials, tried in turn. Measured: a 5,000 x 1,000 run
# overflows with 0 bits and solves with 1, so 4 is the first try.
HEADROOMS = (4, 10, 20, 30)


@dataclass
class FlowResult:
    """The flow's answer in integer terms (``None`` fields when infeasible)."""

    status: Status  # OPTIMAL or INFEASIBLE
    assignment: np.ndarray | None
    combined_total: int | None  # sum of combined costs of the chosen pairs
    base_total: int | None  # sum of base costs: the optimum of the rounded problem
    reason: str = ""
    log: list[str] = field(default_factory=list)


class CostRangeError(RuntimeError):
    """SimpleMinCostFlow rejected the costs as too large (retry with a smaller budget)."""


def structural_infeasibility(problem: ProblemData) -> str | None:
    """A one-line reason when the hard constraints obviously cannot hold, else ``None``.

    Only cheap necessary conditions; the flow decides the rest exactly. The diagnosis module
    explains infeasible runs in full.
    """
    allowed = problem.allowed
    if problem.n_workers and not allowed.any(axis=1).all():
        return "a worker has no allowed job line"
    if (problem.mandatory & (problem.capacity < 1)).any():
        return "a mandatory job line has no places"
    if int(problem.mandatory.sum()) > problem.n_workers:
        return "more mandatory job lines than workers"
    if int(problem.capacity.sum()) < problem.n_workers:
        return "fewer places than workers"
    return None


def solve_flow(problem: ProblemData, costs: IntegerCosts) -> FlowResult:
    """Minimise ``sum(combined)`` over all allocations; raises :class:`CostRangeError`."""
    reason = structural_infeasibility(problem)
    if reason is not None:
        return FlowResult(Status.INFEASIBLE, None, None, None, reason=reason)
    m, n = problem.n_workers, problem.n_lines
    cap = problem.capacity.astype(np.int64)
    lb = problem.mandatory.astype(np.int64)

    # Pairs on lines without places can carry no flow; leaving them out shrinks the graph.
    keep = cap[costs.lines] > 0
    ws, ls = costs.workers[keep], costs.lines[keep]
    status, assignment, total = flow_on_pairs(m, n, ws, ls, costs.combined()[keep], lb, cap)
    if status is Status.INFEASIBLE:
        return FlowResult(Status.INFEASIBLE, None, None, None, reason="no flow meets every supply")
    return FlowResult(
        Status.OPTIMAL,
        assignment,
        combined_total=total,
        base_total=total // costs.tie_factor,
    )


def flow_on_pairs(
    m: int, n: int, ws: np.ndarray, ls: np.ndarray, unit: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[Status, np.ndarray | None, int | None]:
    """One min-cost flow: ``m`` workers onto ``n`` lines over the given pairs.

    Line ``p`` takes between ``lo[p]`` and ``hi[p]`` workers (``0 <= lo <= hi``); the lower
    bound is the node-supply transformation of the module docstring. Returns ``(OPTIMAL,
    assignment, total unit cost)`` or ``(INFEASIBLE, None, None)``; raises
    :class:`CostRangeError`. The arcs go in the given pair order, then the lines': the flow
    depends only on the arrays.
    """
    status, flows, total = transport(m, n, ws, ls, unit, lo, hi, np.ones(m, dtype=np.int64))
    if status is Status.INFEASIBLE:
        return Status.INFEASIBLE, None, None
    chosen = flows > 0
    assignment = np.full(m, -1, dtype=np.int64)
    assignment[ws[chosen]] = ls[chosen]
    if (assignment < 0).any() or int(chosen.sum()) != m:
        raise RuntimeError("min-cost flow returned a flow that is not an allocation")
    return Status.OPTIMAL, assignment, total


def transport(
    m: int,
    n: int,
    ws: np.ndarray,
    ls: np.ndarray,
    unit: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    supply: np.ndarray,
) -> tuple[Status, np.ndarray | None, int | None]:
    """:func:`flow_on_pairs` for sources of any supply (a source may stand for several workers
    with the same pairs and costs): the flow on each pair's arc (capacity: its source's supply)."""
    sink = m + n
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    supply = np.asarray(supply, dtype=np.int64)
    smcf = _SMCF()
    tails = np.concatenate([ws, np.arange(m, m + n, dtype=np.int32)]).astype(np.int32)
    heads = np.concatenate([ls + np.int32(m), np.full(n, sink, dtype=np.int32)]).astype(np.int32)
    caps = np.concatenate([supply[ws], hi - lo])
    units = np.concatenate([unit, np.zeros(n, dtype=np.int64)])
    smcf.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, units)
    supplies = np.concatenate([supply, -lo, [-(int(supply.sum()) - int(lo.sum()))]])
    smcf.set_nodes_supplies(np.arange(m + n + 1, dtype=np.int32), supplies.astype(np.int64))

    status = smcf.solve()
    if status == _SMCF.INFEASIBLE:
        return Status.INFEASIBLE, None, None
    if status == _SMCF.BAD_COST_RANGE:
        raise CostRangeError("min-cost flow: cost range too large")
    if status != _SMCF.OPTIMAL:
        raise RuntimeError(f"min-cost flow ended with status {status!r}")
    flows = np.asarray(smcf.flows(np.arange(ws.size, dtype=np.int32)))
    return Status.OPTIMAL, flows, int(smcf.optimal_cost())


def flow_costs(problem: ProblemData, headroom_bits: int = 4, **kwargs) -> IntegerCosts:
    """Integer costs sized for the flow network of ``problem``."""
    n_nodes = problem.n_workers + problem.n_lines + 1
    return integer_costs(problem, budget=flow_budget(n_nodes, headroom_bits), **kwargs)


def solve_flow_scaled(
    problem: ProblemData, *, pairs: tuple[np.ndarray, np.ndarray] | None = None, **kwargs
) -> tuple[FlowResult, IntegerCosts]:
    """Scale the costs for the flow and solve, retrying with more headroom on BAD_COST_RANGE.

    The retry sequence is itself deterministic, so the result still depends only on the
    inputs.
    """
    if pairs is None:
        pairs = allowed_pairs(problem)
    last: Exception | None = None
    for headroom in HEADROOMS:
        costs = flow_costs(problem, headroom, pairs=pairs, **kwargs)
        try:
            result = solve_flow(problem, costs)
        except CostRangeError as exc:
            last = exc
            continue
        result.log.append(costs.describe())
        if headroom != HEADROOMS[0]:
            result.log.append(f"min-cost flow needed {headroom} bits of headroom")
        return result, costs
    raise RuntimeError("min-cost flow rejected every cost scale") from last


def solve(problem: ProblemData, options: SolveOptions) -> SolveOutcome:
    """The whole non-stable solve: scale, flow, and the outcome in unscaled terms."""
    start = time.perf_counter()
    options.callbacks.on_phase("flow")
    result, costs = solve_flow_scaled(problem)
    elapsed = time.perf_counter() - start
    log = list(result.log)
    if result.status is Status.INFEASIBLE:
        log.append(f"infeasible: {result.reason}")
        return SolveOutcome(Status.INFEASIBLE, None, None, None, elapsed, "flow", log)
    objective = problem.objective(result.assignment)
    options.callbacks.on_progress(objective, objective, elapsed)
    log.append(f"min-cost flow optimal in {elapsed:.3f} s")
    return SolveOutcome(Status.OPTIMAL, result.assignment, objective, objective, elapsed, "flow", log,
                        integer_costs=costs)
