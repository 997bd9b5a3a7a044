"""Counting in sorted preference orders with exactly the comparisons of :mod:`allocator.stability`.

The stability encoding and the pruning both need "how many of these values are not worse
than ``a``" over a sorted list. Both must agree with :func:`strictly_less` to the bit, or the
model and the checker would disagree about blocking pairs.

``strictly_less(a, v)`` is ``a < v - 1e-9 * max(1, |a|, |v|)``. For a fixed ``a`` the right-
hand side is increasing in ``v``, so ``{v : strictly_less(a, v)}`` is an upper part of a sorted
list and ``{v : strictly_less(v, a)}`` a lower part: both counts are prefix lengths. We find
the prefix with ``searchsorted`` near the tolerance and then correct it with the real
predicate, so the result is exact whatever the tolerance's rounding.
"""

from __future__ import annotations

import numpy as np

from allocator.stability import REL_TOL, strictly_less


def _fix_prefix(sorted_vals: np.ndarray, k: np.ndarray, in_prefix) -> np.ndarray:
    """Move each ``k`` to the true end of the prefix where ``in_prefix(i)`` holds."""
    n = sorted_vals.size
    k = k.copy()
    while True:
        up = k < n
        up[up] = in_prefix(np.flatnonzero(up), k[up])
        if not up.any():
            break
        k[up] += 1
    while True:
        down = k > 0
        down[down] = ~in_prefix(np.flatnonzero(down), k[down] - 1)
        if not down.any():
            break
        k[down] -= 1
    return k


def count_not_worse(sorted_vals: np.ndarray, a: np.ndarray) -> np.ndarray:
    """For each ``a``: the number of ``v`` in ``sorted_vals`` with ``not strictly_less(a, v)``.

    With dissatisfactions (lower is better) this counts the items that are no worse than
    ``a``: better or tied.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(sorted_vals, dtype=np.float64)
    if b.size == 0:
        return np.zeros(a.shape, dtype=np.int64)
    guess = np.searchsorted(b, a + REL_TOL * np.maximum(1.0, np.abs(a)), side="right")

    def in_prefix(rows: np.ndarray, i: np.ndarray) -> np.ndarray:
        return ~strictly_less(a[rows], b[i])

    return _fix_prefix(b, guess.astype(np.int64), in_prefix)


def count_better(sorted_vals: np.ndarray, a: np.ndarray) -> np.ndarray:
    """For each ``a``: the number of ``v`` in ``sorted_vals`` with ``strictly_less(v, a)``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(sorted_vals, dtype=np.float64)
    if b.size == 0:
        return np.zeros(a.shape, dtype=np.int64)
    guess = np.searchsorted(b, a - REL_TOL * np.maximum(1.0, np.abs(a)), side="left")

    def in_prefix(rows: np.ndarray, i: np.ndarray) -> np.ndarray:
        return strictly_less(b[i], a[rows])

    return _fix_prefix(b, guess.astype(np.int64), in_prefix)
