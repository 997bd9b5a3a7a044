"""Another HiGHS solver object in the process, run with its own thread count (HiGHS refuses an
object whose count differs from one run before it: the project's LPs must set none)."""

from __future__ import annotations

import numpy as np


def run_highs_with_threads(threads: int) -> None:
    """Solve a one-column LP on a bare HiGHS object with ``threads`` threads."""
    import highspy

    h = highspy._core._Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", threads)
    h.addCols(1, np.array([1.0]), np.array([0.0]), np.array([1.0]), 0, np.zeros(1, dtype=np.int32),
              np.zeros(0, dtype=np.int32), np.zeros(0))
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
