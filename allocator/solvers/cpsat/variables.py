"""The decision variables of the CP-SAT model: one Boolean ``x(s, p)`` per possible pair."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model


@dataclass
class Variables:
    """``x[k]`` is the Boolean of pair ``(workers[k], lines[k])``; pairs in row-major order."""

    workers: np.ndarray  # (P,) int32
    lines: np.ndarray  # (P,) int32
    x: list[cp_model.IntVar]
    proto_index: np.ndarray  # (P,) int64: index of x[k] in the model proto (fast read-back)
    index: np.ndarray  # (M, N) int64: k of pair (s, p), or -1 when the pair has no variable

    def of_worker(self, s: int) -> np.ndarray:
        """Pair numbers ``k`` of worker ``s``, by line index."""
        row = self.index[s]
        return row[row >= 0]

    def of_line(self, p: int) -> np.ndarray:
        """Pair numbers ``k`` on line ``p``, by worker index."""
        col = self.index[:, p]
        return col[col >= 0]

    def assignment(self, solution: np.ndarray) -> np.ndarray:
        """The line of every worker from a full solution vector of the model."""
        chosen = np.asarray(solution)[self.proto_index] > 0
        out = np.full(self.index.shape[0], -1, dtype=np.int64)
        out[self.workers[chosen]] = self.lines[chosen]
        return out


def make_variables(model: cp_model.CpModel, keep: np.ndarray) -> Variables:
    """One Boolean per ``keep`` pair (pairs in no allowed/stable allocation get none)."""
    s, p = np.nonzero(keep)
    x = [model.new_bool_var("") for _ in range(s.size)]  # unnamed: names cost memory at scale
    index = np.full(keep.shape, -1, dtype=np.int64)
    index[s, p] = np.arange(s.size)
    proto_index = np.fromiter((v.index for v in x), dtype=np.int64, count=len(x))
    return Variables(s.astype(np.int32), p.astype(np.int32), x, proto_index, index)
