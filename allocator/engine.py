"""One solve, end to end: snapshot -> problem -> checks -> solver -> verified, explained result.

:func:`solve` is the engine's only entry point for callers that hold a snapshot (the command
line, the service, the dashboard). It never raises for an infeasible run or a run that runs
out of time: those are statuses of the :class:`~allocator.result.Result`, with a diagnosis when
infeasible. It raises :class:`EngineError` only when the solver returns an allocation that does
not keep the rules, which is a bug.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np

from allocator import diagnosis as dx
from allocator.findings import Finding
from allocator.problem import ProblemData
from allocator.result import Result
from allocator.snapshot import RunSnapshot
from allocator.solvers.base import Callbacks, SolveOptions, SolveOutcome, Status
from allocator.stability import blocking_pairs

# A solver's objective and the recomputed one may differ by summation order and, for a solver
# that scales costs to integers, by its rounding (allocation-model.md allows 1e-7 relative).
OBJECTIVE_REL_TOL = 1e-7

# Time given to each relaxed stable solve when explaining a stability conflict, at most.
STABILITY_PROBE_SECONDS = 10.0
# The search for the links and quotas that collide: each feasibility question, and all together.
RULE_PROBE_SECONDS = 5.0
RULE_SEARCH_SECONDS = 30.0


class EngineError(RuntimeError):
    """The solver returned something that breaks the rules: a bug, never bad input."""


def _solve_problem(problem: ProblemData, options: SolveOptions) -> SolveOutcome:
    # Imported here so that the engine's checks and diagnosis work without the solver backends
    # (and so that importing the engine stays cheap).
    from allocator.solvers import solve_problem

    return solve_problem(problem, options)


def verify(problem: ProblemData, assignment: np.ndarray, *, stability: bool | None = None) -> list[str]:
    """Every rule that ``assignment`` breaks, in words; empty when it is a valid allocation.

    Checked from the problem data alone: one allowed line per worker (eligible, not forbidden,
    pins kept), capacities, mandatory fills and, when ``stability`` (default: the setting), no
    blocking pair.
    """
    m, n = problem.n_workers, problem.n_lines
    a = np.asarray(assignment)
    if a.shape != (m,):
        return [f"the allocation has shape {a.shape}, expected one line per worker ({m},)"]
    if not np.issubdtype(a.dtype, np.integer):
        return [f"the allocation holds {a.dtype} values, expected line indices"]
    if ((a < 0) | (a >= n)).any():
        bad = np.flatnonzero((a < 0) | (a >= n))
        return [f"workers {[problem.worker_ids[s] for s in bad[:5]]} have no valid line index"]
    a = a.astype(np.int64)
    errors = []
    rows = np.arange(m)
    not_allowed = np.flatnonzero(~problem.allowed[rows, a])
    for s in not_allowed[:10]:
        errors.append(f"worker {problem.worker_ids[s]!r} is on line {problem.line_ids[a[s]]!r}, which is not allowed for them")
    fill = np.bincount(a, minlength=n)
    for j in np.flatnonzero(fill > problem.capacity)[:10]:
        errors.append(f"line {problem.line_ids[j]!r} has {fill[j]} workers for {problem.capacity[j]} places")
    for j in np.flatnonzero(problem.mandatory & (fill == 0))[:10]:
        errors.append(f"line {problem.line_ids[j]!r} must be filled but is empty")
    errors += rule_breaches(problem, a)
    if stability is None:
        stability = problem.settings.stability
    if stability:
        pairs = blocking_pairs(problem, a)
        for s, j in pairs[:10]:
            errors.append(f"stability is on, but worker {problem.worker_ids[s]!r} and line {problem.line_ids[j]!r} block")
    return errors


def rule_breaches(problem: ProblemData, assignment: np.ndarray) -> list[str]:
    """The links and quotas of business-rules.md that ``assignment`` breaks, in words."""
    a = np.asarray(assignment, dtype=np.int64)
    errors = []
    for link in problem.links:
        # By site index, not label: a line of its own is labelled by its id, which a named
        # site may share.
        sites = sorted({int(problem.site[j]) for j in a[link.workers].tolist()})
        if len(sites) > 1:
            errors.append(f"link {link.id!r} is split over {', '.join(dx.site_label(problem, k) for k in sites)}")
    for q in problem.quotas:
        count = q.count(a)
        if count < q.min_workers:
            errors.append(f"quota {q.id!r} has {count} workers, below its minimum of {q.min_workers}")
        if q.max_workers is not None and count > q.max_workers:
            errors.append(f"quota {q.id!r} has {count} workers, above its maximum of {q.max_workers}")
    return errors


def _check_outcome(problem: ProblemData, outcome: SolveOutcome) -> np.ndarray:
    if outcome.assignment is None:
        raise EngineError(f"solver {outcome.backend!r} reported {outcome.status} without an allocation")
    a = np.asarray(outcome.assignment)
    errors = verify(problem, a)
    if errors:
        raise EngineError(f"solver {outcome.backend!r} returned an invalid allocation: " + "; ".join(errors))
    a = a.astype(np.int64)
    recomputed = problem.objective(a)
    if outcome.objective is not None and abs(outcome.objective - recomputed) > OBJECTIVE_REL_TOL * max(1.0, abs(recomputed)):
        raise EngineError(
            f"solver {outcome.backend!r} reported objective {outcome.objective!r}, but its allocation "
            f"costs {recomputed!r}"
        )
    return a


def _with(problem: ProblemData, **settings) -> ProblemData:
    new = problem.settings.model_copy(update=settings)
    return dataclasses.replace(problem, settings=new, snapshot=problem.snapshot.model_copy(update={"settings": new}))


def _has_allocation(outcome: SolveOutcome) -> bool | None:
    if outcome.status in (Status.OPTIMAL, Status.FEASIBLE):
        return True
    if outcome.status == Status.INFEASIBLE:
        return False
    return None  # not decided in time


class _StopAtFirstAllocation(Callbacks):
    """A feasibility question needs one allocation, not the best: stop at the first."""

    def __init__(self, stop: threading.Event):
        self.stop = stop

    def on_progress(self, objective: float | None, bound: float | None, elapsed: float) -> None:
        if objective is not None:
            self.stop.set()


def _exists(problem: ProblemData, options: SolveOptions) -> bool | None:
    """Whether ``problem`` has an allocation: True, False, or None when not decided in time."""
    stop = threading.Event()
    if options.stop.is_set():
        return None
    probe = dataclasses.replace(options, callbacks=_StopAtFirstAllocation(stop), stop=stop)
    return _has_allocation(_solve_problem(problem, probe))


def _stability_diagnosis(problem: ProblemData, options: SolveOptions) -> Finding:
    """The run is feasible without stability (the flows said so) but not with it: find out why.

    Asks the solver three small questions: the best allocation without stability (its blocking
    pairs show where stability breaks), and whether a stable allocation exists without the
    mandatory fills, or without the pins (each stopped at the first allocation found, and after
    :data:`STABILITY_PROBE_SECONDS` at most).
    """
    options.callbacks.on_phase("stability diagnosis")
    # Silent callbacks: these questions' allocations (one without stability, above all) are not
    # the solve's progress, which would show a cost and "0 % left to prove" for a run that has
    # no stable allocation at all. The stop event still stops them.
    probe = dataclasses.replace(options, time_limit=min(options.time_limit, STABILITY_PROBE_SECONDS),
                                callbacks=Callbacks())
    unstable = _solve_problem(_with(problem, stability=False), probe)
    a = unstable.assignment if _has_allocation(unstable) else None
    without_mand = without_pins = None
    if problem.mandatory.any():
        without_mand = _exists(dataclasses.replace(problem, mandatory=np.zeros_like(problem.mandatory)), probe)
    if (problem.pin >= 0).any():
        without_pins = _exists(dataclasses.replace(problem, pin=np.full_like(problem.pin, -1)), probe)
    return dx.stability_conflict(
        problem, a, stable_without_mandatory=without_mand, stable_without_pins=without_pins
    )


Rule = tuple[str, str]  # ("link" | "quota", id)


def _rules(problem: ProblemData) -> list[Rule]:
    return [("link", x.id) for x in problem.links] + [("quota", q.id) for q in problem.quotas]


def _keeping(problem: ProblemData, rules: list[Rule]) -> ProblemData:
    """``problem`` with only the links and quotas in ``rules``, asked for any allocation: tiers
    and fewest moves change which allocation is best, never whether one exists, so they go."""
    keep = set(rules)
    m = problem.n_workers
    return dataclasses.replace(
        problem,
        links=[x for x in problem.links if ("link", x.id) in keep],
        quotas=[q for q in problem.quotas if ("quota", q.id) in keep],
        tier=np.zeros(m, dtype=np.int64),
        tier_priorities=[None],
        previous=np.full(m, -1, dtype=np.int64),
    )


def _colliding_rules(problem: ProblemData, options: SolveOptions, rules: list[Rule]) -> tuple[list[Rule], bool]:
    """A smallest-by-deletion set of ``rules`` with which ``problem`` (stability as set) has no
    allocation, given that it has none with all of ``rules``.

    A deletion filter: drop a block of rules, and keep them dropped when the run stays without
    an allocation; blocks halve down to single rules, so that each rule left was needed. Every
    question is a solve stopped at its first allocation, within :data:`RULE_PROBE_SECONDS`, and
    the whole search within :data:`RULE_SEARCH_SECONDS`. Returns the set and whether it is
    proven minimal (False when a question went undecided: the rule was kept to be safe).
    """
    deadline = time.perf_counter() + min(float(options.time_limit), RULE_SEARCH_SECONDS)

    def exists(keep: list[Rule]) -> bool | None:
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        trial = _keeping(problem, keep)
        # The checks prove many a "no" at once, where the solver would need its whole limit.
        if trial.has_links_or_quotas and dx.diagnose(trial, range_seconds=min(RULE_PROBE_SECONDS, left)):
            return False
        probe = dataclasses.replace(options, time_limit=min(RULE_PROBE_SECONDS, deadline - time.perf_counter()))
        return _exists(trial, probe)

    keep = list(rules)
    chunk = max(1, len(keep) // 2)
    minimal = True
    while True:
        i = 0
        while i < len(keep):
            trial = keep[:i] + keep[i + chunk:]
            answer = exists(trial)
            if answer is False:
                keep = trial
            else:
                if answer is None and chunk == 1:
                    minimal = False
                i += chunk
        if chunk == 1:
            return keep, minimal
        chunk = max(1, chunk // 2)


def _drop_each_solves(problem: ProblemData, rules: list[Rule], found: list[Rule], probe: SolveOptions) -> bool:
    """Whether dropping any one rule of ``found`` from the whole run (all of ``rules``) makes it
    solvable: a minimal clashing set says only that its rules hold without one another, and
    the run may have another clash besides it."""
    return all(_exists(_keeping(problem, [r for r in rules if r != x]), probe) is True for x in found)


def _rules_diagnosis(problem: ProblemData, options: SolveOptions) -> list[Finding]:
    """The run has links or quotas and no allocation, and no single check says why: find the
    rules that collide (business-rules.md, "Infeasible runs" and "Stability together with these
    rules"). Empty when stability alone is at fault (the stability diagnosis says why)."""
    options.callbacks.on_phase("rules diagnosis")
    rules = _rules(problem)
    stable = bool(problem.settings.stability)
    probe = dataclasses.replace(options, time_limit=min(float(options.time_limit), RULE_PROBE_SECONDS))
    plain_ok = None
    if stable:
        plain = _with(problem, stability=False)
        plain_ok = _exists(_keeping(plain, rules), probe)
        if plain_ok is False:
            # The rules collide even without stability: that is what to fix first.
            found, minimal = _colliding_rules(plain, options, rules)
            if not found:
                return []
            return [dx.rules_collide(plain, found, minimal=minimal,
                                     drop_each_solves=minimal and _drop_each_solves(plain, rules, found, probe))]
        without = _exists(_keeping(problem, []), probe)
        if without is False:
            return []  # no stable allocation even without the links and quotas
        if without is None:
            # Not decided in time: all that is known is that they do not hold together.
            return [dx.rules_collide(problem, rules, stability=True, minimal=False, solvable_unstable=plain_ok is True)]
    found, minimal = _colliding_rules(problem, options, rules)
    if not found:
        return []  # without any link or quota still none: not theirs to explain
    pins_matter = mandatory_matter = None
    if not stable:
        # Do the pins (the lines that must be filled) take part? Then say so: lifting them is
        # another way out.
        kept = _keeping(problem, found)
        if (problem.pin >= 0).any():
            pins_matter = _exists(dataclasses.replace(kept, pin=np.full_like(problem.pin, -1)), probe)
        if problem.mandatory.any():
            mandatory_matter = _exists(dataclasses.replace(kept, mandatory=np.zeros_like(problem.mandatory)), probe)
    return [dx.rules_collide(problem, found, stability=stable, minimal=minimal,
                             pins_matter=pins_matter is True, mandatory_matter=mandatory_matter is True,
                             solvable_unstable=plain_ok is True,
                             drop_each_solves=minimal and _drop_each_solves(problem, rules, found, probe))]


def solve(snapshot: RunSnapshot, options: SolveOptions | None = None) -> Result:
    """Solve one run snapshot.

    Parameters
    ----------
    snapshot
        A validated snapshot; its settings are the settings in force (apply overrides with
        :meth:`RunSnapshot.with_settings` first).
    options
        Solver knobs (threads, callbacks, stop event). Its ``time_limit`` is replaced by the
        snapshot's ``max_seconds``: the time limit is a setting, recorded in the result.

    Returns
    -------
    Result
        With status optimal or feasible: verified allocations and metrics. Infeasible: a
        diagnosis that names the workers and lines concerned. No solution: neither.
    """
    t0 = time.perf_counter()
    problem = ProblemData.from_snapshot(snapshot)
    options = dataclasses.replace(options or SolveOptions(), time_limit=float(problem.settings.max_seconds))
    return solve_problem_data(problem, options, started=t0)


def solve_problem_data(
    problem: ProblemData,
    options: SolveOptions | None = None,
    *,
    started: float | None = None,
    with_seed_dependence: bool = True,
) -> Result:
    """:func:`solve` for a caller that has built the :class:`ProblemData` already.

    ``with_seed_dependence=False`` skips the result's ``seed_dependent_worker_ids`` (left
    ``None``): the explanations' pinned re-solves do not need it.
    """
    t0 = time.perf_counter() if started is None else started
    options = options or SolveOptions(time_limit=float(problem.settings.max_seconds))
    stable = bool(problem.settings.stability)

    def elapsed() -> float:
        return time.perf_counter() - t0

    def infeasible(diag: list[Finding], backend: str = "diagnosis") -> Result:
        return Result.build(problem, Status.INFEASIBLE, None, best_bound=None, solve_seconds=elapsed(),
                            diagnosis=diag, backend=backend)

    # Cheap checks first; in stable mode the exact flows too, since CP-SAT may need its whole
    # time limit to prove what two max-flows show in well under a second.
    # The same for links and quotas (CP-SAT's too), but the quotas' min-cost ranges (a few
    # flows over the whole run) wait until the solver says infeasible.
    options.callbacks.on_phase("checks")
    rules = problem.has_links_or_quotas
    if stable:
        pre = dx.diagnose(problem)
    elif rules:
        pre = dx.diagnose(problem, ranges=False)
    else:
        pre = dx.precheck(problem)
    if pre:
        return infeasible(pre if stable else dx.diagnose(problem))

    outcome = _solve_problem(problem, options)
    if outcome.status in (Status.OPTIMAL, Status.FEASIBLE):
        a = _check_outcome(problem, outcome)
        seed_dependent = None
        if with_seed_dependence and outcome.status == Status.OPTIMAL and not stable:
            from allocator.explain import seed_dependent_worker_ids

            seed_dependent = seed_dependent_worker_ids(problem, a, costs=getattr(outcome, "integer_costs", None))
        return Result.build(problem, outcome.status, a, best_bound=outcome.best_bound,
                            solve_seconds=elapsed(), backend=outcome.backend,
                            seed_dependent_worker_ids=seed_dependent, levels_proven=outcome.levels_proven)
    if outcome.status == Status.INFEASIBLE:
        options.callbacks.on_phase("diagnosis")
        diag = [] if stable else dx.diagnose(problem)
        if not diag and problem.has_links_or_quotas:
            diag = _rules_diagnosis(problem, options)
        if not diag and stable:
            diag = [_stability_diagnosis(_keeping(problem, []) if problem.has_links_or_quotas else problem, options)]
        if not diag:
            diag = [dx.unexplained(problem, f"{outcome.backend}: infeasible")]
        return infeasible(diag, outcome.backend)
    # No allocation within the time limit. If the structure alone rules one out, say so.
    diag = [] if stable else dx.diagnose(problem)
    if diag:
        return infeasible(diag, outcome.backend)
    return Result.build(problem, Status.NO_SOLUTION, None, best_bound=outcome.best_bound,
                        solve_seconds=elapsed(), backend=outcome.backend)
