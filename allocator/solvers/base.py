"""What every solver backend returns, and the callbacks they report progress through."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
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
    # With a lexicographic objective (business-rules.md: fewest moves, priority tiers): how
    # many of its levels, best first, were proven optimal. None: one level, or not known.
    levels_proven: int | None = None


class Callbacks:
    """Progress hooks; every method is a no-op by default. Called from the solver's thread."""

    def on_progress(self, objective: float | None, bound: float | None, elapsed: float) -> None:
        """A new incumbent or bound (unscaled)."""

    def on_phase(self, phase: str) -> None:
        """A named phase starts (e.g. 'flow', 'stability search')."""


@dataclass
class SolveOptions:
    """Solver knobs that are not part of the model (and so not part of the snapshot), checked
    on construction (``ValueError`` in a planner's words).

    Build them with :func:`allocator.service.solve_options`, the one place that reads the
    configuration (``ALLOCATOR_SOLVER_THREADS``).

    Attributes
    ----------
    threads
        CP-SAT workers, at least 1 (the flow is single-threaded).
    time_limit
        The backend's time budget in seconds, finite and not negative. The run's
        ``settings.max_seconds`` is the one time limit: :func:`allocator.engine.solve` sets this
        field from it, so callers leave it alone (``allocator solve --time-limit`` sets the
        run's ``max_seconds``); the engine and the solvers only narrow it (a stability probe,
        the time already spent, which may leave 0: no time left).
    callbacks, stop
        Progress hooks (called from the solver's thread) and an event that stops the search.
    initial_allocation
        A starting allocation, worker id to job line id (e.g. the last answer, so that a
        re-solve starts from it). In stable mode CP-SAT starts from it when it is a whole
        stable allocation of the run (every worker placed, every rule kept), else from its own
        heuristics; the flow, exact without one, ignores it.
    cpsat_parameters
        CP-SAT parameters (``SatParameters`` field names) laid over the defaults the model
        sets; ignored by the flow.
    """

    threads: int = 2
    time_limit: float = 60.0
    callbacks: Callbacks = field(default_factory=Callbacks)
    stop: threading.Event = field(default_factory=threading.Event)
    initial_allocation: Mapping[str, str] | None = None
    cpsat_parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        errs = []
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            errs.append(f"Solver threads must be a whole number of at least 1 (got {self.threads!r}).")
        if (
            isinstance(self.time_limit, bool)
            or not isinstance(self.time_limit, int | float)
            or not math.isfinite(self.time_limit)
            or self.time_limit < 0
        ):
            errs.append(f"The solver's time limit must be a number of seconds, not negative (got {self.time_limit!r}).")
        if self.initial_allocation is not None:
            if not isinstance(self.initial_allocation, Mapping):
                errs.append("The starting allocation must map worker ids to job line ids.")
            else:
                bad = [k for k, v in self.initial_allocation.items() if not (isinstance(k, str) and isinstance(v, str))]
                if bad:
                    errs.append(
                        f"The starting allocation must map worker ids to job line ids (not {bad[0]!r})."
                    )
        if not isinstance(self.cpsat_parameters, Mapping):
            errs.append("The CP-SAT parameters must map parameter names to values.")
        elif self.cpsat_parameters:
            unknown = sorted(set(self.cpsat_parameters) - _cpsat_parameter_names())
            if unknown:
                errs.append(f"Unknown CP-SAT parameter(s): {', '.join(map(str, unknown))}.")
        if errs:
            raise ValueError(" ".join(errs))


def _cpsat_parameter_names() -> set[str]:
    # OR-Tools loads only when parameters are given: the flow path never needs it.
    from ortools.sat import sat_parameters_pb2

    return set(sat_parameters_pb2.SatParameters.DESCRIPTOR.fields_by_name)
