"""What every solver backend returns, and the callbacks they report progress through."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class Status(StrEnum):
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"  # an allocation, optimality not proven (time limit or stop)
    INFEASIBLE = "infeasible"
    NO_SOLUTION = "no_solution"  # no allocation found within the time limit


@dataclass
class SolveOutcome:
    """A backend's answer, in indices. ``assignment[s]`` is the line index of worker ``s``."""

    status: Status
    assignment: np.ndarray | None
    objective: float | None  # unscaled, as the backend computed it
    best_bound: float | None  # unscaled lower bound
    solve_seconds: float
    backend: str
    log: list[str] = field(default_factory=list)
    # The flow's integer costs (scaling.IntegerCosts), so that the explanations reuse the
    # exact integers the allocation is optimal for instead of recomputing them.
    integer_costs: Any = None


class Callbacks:
    """Progress hooks; every method is a no-op by default. Called from the solver's thread."""

    def on_progress(self, objective: float | None, bound: float | None, elapsed: float) -> None:
        """A new incumbent or bound (unscaled)."""

    def on_phase(self, phase: str) -> None:
        """A named phase starts (e.g. 'flow', 'stability search')."""


@dataclass
class SolveOptions:
    """Solver knobs that are not part of the model (and so not part of the snapshot)."""

    threads: int = 2
    time_limit: float = 60.0
    callbacks: Callbacks = field(default_factory=Callbacks)
    stop: threading.Event = field(default_factory=threading.Event)
