"""Demo runs built to have a stable allocation, and HiGHS's proven stable optimum of them.

``highs_stable`` is solved once per session: several tests in test_stable_exact.py and
test_stable_lp.py compare with the same run's optimum, 4-8 s a HiGHS solve. Callers only read
the dict it returns.
"""

from __future__ import annotations

import functools

from allocator.demo import DemoProfile, demo_snapshot
from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot
from benchmarks.highs_stable import plain_stable_milp


def demo_stable(m: int, n: int, seed: int) -> ProblemData:
    """A demo run built to have a stable allocation, with short rank lists."""
    profile = DemoProfile(stability=True, rank_list=(3, 8), preferencer_list=(3, 12))
    return ProblemData.from_snapshot(RunSnapshot.parse(demo_snapshot(m, n, seed, profile=profile)))


@functools.cache
def highs_stable(m: int, n: int, seed: int) -> dict:
    """HiGHS on the plain stable model of ``demo_stable(m, n, seed)`` (status, objective, ...)."""
    return plain_stable_milp(demo_stable(m, n, seed), time_cap=120)
