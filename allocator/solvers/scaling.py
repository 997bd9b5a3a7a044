"""Integer costs for the solvers: scaled, rounded, and a seeded tie-break below their resolution.

Both backends need integers. For the allowed pairs (row-major: by worker, then job line, so
the order is fixed by the sorted ids and never by the input lists) we build

    base(s, p) = round((cost(s, p) - shift(s)) * scale)          >= 0
    tie(s, p)  = seeded hash of (rng_seed, worker id, line id)    in [0, tie_range)
    combined   = base * tie_factor + tie,   tie_factor = M * (tie_range - 1) + 1

``shift(s)`` is the worker's cheapest allowed cost: every worker takes exactly one line, so
subtracting a per-worker constant changes every allocation's cost by the same amount and
keeps the optimum, while making the integers small and non-negative.

Why the tie-break is exact: over any allocation ``sum(tie) <= M * (tie_range - 1) <
tie_factor``, so an allocation with a smaller ``sum(base)`` always has a smaller
``sum(combined)``. Minimising ``combined`` therefore returns a minimiser of ``base`` and,
among those, the one the seed prefers.

Why rounding is safe: each pair's rounding error is at most ``0.5 / scale`` in cost units,
so an allocation that is optimal for ``base`` costs at most ``M / scale`` more than the true
optimum (``error_bound``). The scale is chosen from the data so that ``error_bound`` is at
most ``1e-7`` of the objective (aiming for ``1e-9`` when the integer budget allows), with
``reference`` a lower bound on ``|objective|``: the sum of the workers' cheapest costs.

The integer budget is the largest ``combined`` value the backend can take without
overflowing 64 bits: min-cost flow multiplies costs by the number of nodes plus one and its
node potentials grow further; CP-SAT needs the objective's sum of coefficients to stay well
inside int64. The priority is (1) the required precision, (2) a modest tie-break range
(256 values), (3) the target precision, (4) a wider tie-break range. When even (1) cannot fit, the best precision that fits is used and
``precision_ok`` is false (the solve log says so).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from allocator.problem import ProblemData

REQUIRED_REL_PRECISION = 1e-7  # allocation-model.md: optimal to within 1e-7 of the objective
TARGET_REL_PRECISION = 1e-9  # what we aim for when the budget allows
MIN_TIE_RANGE = 1 << 8  # tie-break values wanted before extra precision
INT64_MAX = 2**63 - 1

_U64 = np.uint64
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class IntegerCosts:
    """Integer costs of the allowed pairs, as 1-D arrays in row-major pair order."""

    workers: np.ndarray  # (P,) int32 worker index of each allowed pair, non-decreasing
    lines: np.ndarray  # (P,) int32 line index
    base: np.ndarray  # (P,) int64 round((cost - shift) * scale)
    tie: np.ndarray  # (P,) int64 in [0, tie_range)
    shift: np.ndarray  # (M,) float64 cheapest allowed cost of each worker (0 if none)
    scale: float
    tie_range: int
    tie_factor: int
    reference: float  # lower bound on |objective| used for the relative precision
    error_bound: float  # returned allocation costs at most this much above the optimum
    precision_ok: bool  # error_bound <= REQUIRED_REL_PRECISION * reference

    @property
    def n_workers(self) -> int:
        return int(self.shift.size)

    def combined(self) -> np.ndarray:
        """``base * tie_factor + tie`` (int64; fits by construction)."""
        return self.base * np.int64(self.tie_factor) + self.tie

    def unscaled(self, base_total: int | float) -> float:
        """An unscaled objective (approximate to ``error_bound``) from a sum of ``base``."""
        return float(self.shift.sum()) + float(base_total) / self.scale

    def describe(self) -> str:
        rel = self.error_bound / self.reference if self.reference > 0 else float("inf")
        return (
            f"integer costs: scale {self.scale:.6g}, max base {int(self.base.max(initial=0))}, "
            f"tie-break range {self.tie_range} (factor {self.tie_factor}), rounding error "
            f"<= {self.error_bound:.3g} ({rel:.2g} of the objective"
            f"{'' if self.precision_ok else ', BELOW the required 1e-7'})"
        )


def allowed_pairs(problem: ProblemData) -> tuple[np.ndarray, np.ndarray]:
    """Allowed pairs ``(workers, lines)`` as int32 arrays, row-major (fixed, id-sorted order)."""
    s, p = np.nonzero(problem.allowed)
    return s.astype(np.int32), p.astype(np.int32)


def flow_budget(n_nodes: int, headroom_bits: int = 4) -> int:
    """Largest arc cost SimpleMinCostFlow accepts with room for its node potentials.

    OR-Tools multiplies every cost by ``n_nodes + 1`` and rejects costs above
    ``INT64_MAX / (2 * (n_nodes + 1))`` (BAD_COST_RANGE); during the solve the potentials
    may grow beyond the largest scaled cost, which it also detects. ``headroom_bits`` keeps a
    margin for that; the flow backend retries with more headroom if it is ever hit.
    """
    return max(1, INT64_MAX // (2 * (n_nodes + 1)) >> headroom_bits)


def cpsat_budget(n_workers: int) -> int:
    """Largest objective coefficient for CP-SAT: the objective's range stays below 2^50."""
    return max(1, (1 << 50) // max(1, n_workers))


def integer_costs(
    problem: ProblemData,
    *,
    budget: int,
    seed: int | None = None,
    max_tie_range: int = 1 << 16,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> IntegerCosts:
    """Scale, round and tie-break the costs of the allowed pairs.

    Parameters
    ----------
    problem
        The problem (costs, allowed pairs, ids for the tie-break hash).
    budget
        Largest ``combined`` value allowed for any pair.
    seed
        The tie-break seed (``problem.settings.rng_seed`` when ``None``).
    max_tie_range
        Upper limit of the tie-break range (a power of two); ``1`` disables the tie-break.
    pairs
        The allowed pairs, when already computed (see :func:`allowed_pairs`).
    """
    if seed is None:
        seed = problem.settings.rng_seed
    ws, ls = allowed_pairs(problem) if pairs is None else pairs
    m = problem.n_workers
    c = problem.cost[ws, ls]

    shift = np.zeros(m)
    if c.size:
        rowmin = np.full(m, np.inf)
        np.minimum.at(rowmin, ws, c)
        shift = np.where(np.isfinite(rowmin), rowmin, 0.0)
    rel = c - shift[ws]
    rel = np.maximum(rel, 0.0)  # exact already; guards against -0.0
    span = float(rel.max()) if rel.size else 0.0

    lower = float(shift.sum())
    magnitude = float(np.abs(problem.cost).max(axis=1, initial=0.0).sum()) if m else 0.0
    # With positive costs the objective is at least the sum of the cheapest costs. Negative
    # weightings can bring the objective near zero, where no relative precision means
    # anything; then we measure precision against the costs' own magnitude.
    reference = max(lower, 1e-6 * magnitude, 1e-12)

    n = max(m, 1)
    s_req = 2.0 * n / (REQUIRED_REL_PRECISION * reference)  # factor 2: a safety margin
    s_want = n / (TARGET_REL_PRECISION * reference)

    max_range = 1 << max(0, int(max_tie_range).bit_length() - 1)
    min_range = min(max_range, MIN_TIE_RANGE)

    def fits(s: float, r: int) -> bool:
        return span * s * (n * (r - 1) + 1) + r <= budget

    def widest(s: float, r_max: int) -> int:
        r = r_max
        while r > 1 and not fits(s, r):
            r //= 2
        return r

    if span == 0.0:
        scale = 1.0
        tie_range = widest(0.0, max_range)
    else:
        # Lexicographic priorities: the required precision, a modest tie-break range, the
        # target precision, then a wider tie-break range.
        tie_range = widest(s_req, min_range)
        if tie_range == min_range and fits(s_want, min_range):
            tie_range = widest(s_want, max_range)
        factor = n * (tie_range - 1) + 1
        scale = min(s_want, (budget - tie_range) / (factor * span))
        # A power of two: products with it are exact, and rounding cannot push the largest
        # value over the budget.
        scale = 2.0 ** np.floor(np.log2(scale)) if scale > 0 else 2.0**-1074
    tie_factor = m * (tie_range - 1) + 1

    base = np.rint(rel * scale).astype(np.int64)
    tie = tie_break(problem, seed, tie_range, ws, ls)
    error_bound = m / scale
    return IntegerCosts(
        workers=ws,
        lines=ls,
        base=base,
        tie=tie,
        shift=shift,
        scale=float(scale),
        tie_range=tie_range,
        tie_factor=tie_factor,
        reference=reference,
        error_bound=error_bound,
        precision_ok=error_bound <= REQUIRED_REL_PRECISION * reference,
    )


# -- the seeded tie-break -------------------------------------------------------------------


def _id_hashes(ids: list[str]) -> np.ndarray:
    """A 64-bit hash of each id, the same on every machine and Python version."""
    out = np.empty(len(ids), dtype=_U64)
    for i, x in enumerate(ids):
        out[i] = int.from_bytes(hashlib.blake2b(x.encode("utf-8"), digest_size=8).digest(), "little")
    return out


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64 arithmetic wraps modulo 2^64)."""
    z = np.asarray(z, dtype=_U64)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def tie_break(
    problem: ProblemData, seed: int, tie_range: int, workers: np.ndarray, lines: np.ndarray
) -> np.ndarray:
    """Seeded pseudo-random integers in ``[0, tie_range)`` for the given pairs.

    A pure function of ``(seed, worker id, line id)``: it does not depend on the order of the
    input, on the other workers of the run, on numpy's random streams or on the machine.
    """
    if tie_range <= 1 or workers.size == 0:
        return np.zeros(workers.size, dtype=np.int64)
    bits = tie_range.bit_length() - 1
    hw = _id_hashes(problem.worker_ids)
    hl = _id_hashes(problem.line_ids)
    seed_mix = _mix(np.array([seed & _MASK64], dtype=_U64))[0]
    with np.errstate(over="ignore"):
        h = _mix(_mix(hw[workers] ^ seed_mix) + hl[lines])
    return (h >> _U64(64 - bits)).astype(np.int64)
