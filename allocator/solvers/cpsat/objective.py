"""The objective of the CP-SAT model.

The search minimises the rounded, shifted cost ``sum base(s, p) x(s, p)`` (see
:mod:`allocator.solvers.scaling`), bounded below by the min-cost flow's optimum of the same
integers: stability only removes allocations, so it cannot do better than the flow. (Which
of several optimal allocations comes back is fixed by the deterministic search, see
:mod:`.model`.)
"""

from __future__ import annotations

import numpy as np
from ortools.sat.python import cp_model

from allocator.solvers.cpsat.variables import Variables


def weighted(v: Variables, coefficients: np.ndarray) -> cp_model.LinearExpr:
    """``sum_k coefficients[k] * x[k]`` (coefficients aligned with the model's pairs)."""
    coefficients = np.asarray(coefficients, dtype=np.int64)
    nz = np.flatnonzero(coefficients)
    return cp_model.LinearExpr.weighted_sum([v.x[k] for k in nz], coefficients[nz].tolist())


def minimise_cost(
    model: cp_model.CpModel, v: Variables, base: np.ndarray, lower_bound: int | None = None
) -> cp_model.LinearExpr:
    """Phase 1: minimise the rounded cost; add the flow's bound when known."""
    cost = weighted(v, base)
    if lower_bound is not None:
        model.add(cost >= int(lower_bound))
    model.minimize(cost)
    return cost
