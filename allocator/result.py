"""The result of one solve (``allocator-result/1``), with its metrics, diagnosis and explanations.

A :class:`Result` is what the engine hands to every caller (the command line, the dashboard,
the service). It carries external ids only; :meth:`Result.to_dict` gives exactly the JSON of
run-snapshot.md, with every float rounded to :data:`~allocator.metrics.SIG_DIGITS` significant
digits so that the same inputs give the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from allocator.diagnosis import entry, from_entry, line_label, worker_label
from allocator.findings import Finding
from allocator.kpis import levels_text, ordinal
from allocator.metrics import choice_numbers, compute_metrics, round_sig
from allocator.solvers.base import Status

if TYPE_CHECKING:
    from allocator.problem import ProblemData

FORMAT = "allocator-result/1"



def level_report(problem: ProblemData, assignment: np.ndarray, status: Status,
                 levels_proven: int | None) -> list[dict[str, Any]]:
    """The lexicographic objective's levels, best first, each with its value and whether it is proven.

    ``[{"objective": "moves" | "tier", "priority": int | None, "value", "proven"}]``: the moves
    from the previous allocation (fewest moves), then each tier's total cost, tier 1 first and
    the workers without a priority (``priority`` None) last. A solve stopped before the end
    proved only the first ``levels_proven`` levels: the later ones are the best found, and a
    longer time limit may improve them (never at the cost of a proven one).
    """
    values = problem.objective_levels(assignment)
    kinds: list[tuple[str, int | None]] = [("moves", None)] if problem.fewest_moves else []
    kinds += [("tier", prio) for prio in problem.tier_priorities]
    proven = len(values) if status == Status.OPTIMAL else int(levels_proven or 0)
    return [
        {"objective": kind, "priority": prio, "value": round_sig(value), "proven": i < proven}
        for i, ((kind, prio), value) in enumerate(zip(kinds, values, strict=True))
    ]

@dataclass(frozen=True)
class Allocation:
    """One worker's line, with snapshot (external) ids: ``worker_rank`` is their fractional
    rank for it, ``cost`` the pair's cost.

    The one allocation type: a solve's result and the store's rows alike
    (:mod:`allocator.store` re-exports it). A solve always fills ``worker_rank`` and ``cost``;
    a stored row may lack them (None).
    """

    worker_id: str
    job_line_id: str
    worker_rank: float | None = None
    cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "job_line_id": self.job_line_id,
            "worker_rank": self.worker_rank,
            "cost": self.cost,
        }


def allocations_from(problem: ProblemData, assignment: np.ndarray) -> list[Allocation]:
    """The allocations of ``assignment``, sorted by worker id, numbers rounded."""
    a = np.asarray(assignment, dtype=np.int64)
    rows = np.arange(problem.n_workers)
    ranks = problem.worker_rank[rows, a]
    costs = problem.cost[rows, a]
    # ProblemData orders workers by id already; sort anyway so the contract holds on its own.
    out = [
        Allocation(problem.worker_ids[s], problem.line_ids[int(a[s])], round_sig(ranks[s]), round_sig(costs[s]))
        for s in range(problem.n_workers)
    ]
    out.sort(key=lambda x: x.worker_id)
    return out


@dataclass
class Result:
    """Everything one solve reports.

    Attributes
    ----------
    status
        optimal / feasible (an allocation, optimality not proven) / infeasible / no_solution.
    objective
        Sum of the unscaled costs of the chosen pairs, recomputed from the problem data;
        None without an allocation.
    best_bound
        Lower bound on the objective (equal to it when optimal); None when unknown.
    solve_seconds
        Wall time of the whole solve (building the problem, checks, solver, verification).
    settings
        The settings in force (after any overrides), as in the snapshot.
    input_fingerprint
        sha256 of the canonical snapshot solved (settings included).
    run_id
        The snapshot's run id.
    allocations
        One per worker, sorted by worker id; empty without an allocation.
    metrics
        :func:`allocator.metrics.compute_metrics`; empty without an allocation.
    diagnosis
        Why there is no allocation; empty unless infeasible.
    backend
        Which solver answered (not part of the JSON).
    """

    status: Status
    objective: float | None
    best_bound: float | None
    solve_seconds: float
    settings: dict[str, Any]
    input_fingerprint: str
    run_id: str
    allocations: list[Allocation] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    diagnosis: list[Finding] = field(default_factory=list)
    backend: str = ""
    problem: ProblemData | None = field(default=None, repr=False, compare=False)
    assignment: np.ndarray | None = field(default=None, repr=False, compare=False)
    # explanations.md "Alternative optima": computed by allocator.explain, passed in by the
    # engine; None when not known (stability on, no allocation, not a proven optimum).
    seed_dependent_worker_ids: list[str] | None = None

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        problem: ProblemData,
        status: Status,
        assignment: np.ndarray | None,
        *,
        best_bound: float | None,
        solve_seconds: float,
        diagnosis: list[Finding] | None = None,
        backend: str = "",
        seed_dependent_worker_ids: list[str] | None = None,
        levels_proven: int | None = None,
    ) -> Result:
        """A result whose objective, allocations and metrics are recomputed from ``problem``.

        ``levels_proven``: with a lexicographic objective (fewest moves, priority tiers), how
        many of its levels, best first, the solver proved optimal (all of them when the status
        is optimal; none when not known). It gives ``metrics["levels"]``.
        """
        snap = problem.snapshot
        objective = None
        allocations: list[Allocation] = []
        metrics: dict[str, Any] = {}
        if assignment is not None:
            assignment = np.asarray(assignment, dtype=np.int64)
            objective = problem.objective(assignment)
            allocations = allocations_from(problem, assignment)
            metrics = compute_metrics(problem, assignment)
            if problem.lexicographic:
                metrics["levels"] = level_report(problem, assignment, status, levels_proven)
            if status == Status.OPTIMAL:
                best_bound = objective
            elif best_bound is not None:
                best_bound = min(best_bound, objective)
        return cls(
            status=Status(status),
            objective=round_sig(objective),
            best_bound=round_sig(best_bound),
            solve_seconds=round(float(solve_seconds), 3),
            settings=problem.settings.reported(),
            input_fingerprint=snap.fingerprint(),
            run_id=snap.run.id,
            allocations=allocations,
            metrics=metrics,
            diagnosis=list(diagnosis or []),
            backend=backend,
            problem=problem,
            assignment=assignment,
            seed_dependent_worker_ids=seed_dependent_worker_ids,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        """Read a result back from its JSON (no problem attached, so no :meth:`explain`)."""
        if d.get("format") != FORMAT:
            raise ValueError(f"format: expected {FORMAT!r}, found {d.get('format')!r}")
        return cls(
            status=Status(d["status"]),
            objective=d.get("objective"),
            best_bound=d.get("best_bound"),
            solve_seconds=d.get("solve_seconds", 0.0),
            settings=dict(d.get("settings", {})),
            input_fingerprint=d.get("input_fingerprint", ""),
            run_id=d.get("run_id", ""),
            allocations=[Allocation(**a) for a in d.get("allocations", [])],
            metrics=dict(d.get("metrics", {})),
            diagnosis=[from_entry(x) for x in d.get("diagnosis", [])],
            seed_dependent_worker_ids=d.get("seed_dependent_worker_ids"),
        )

    # -- output -----------------------------------------------------------------------------
    @property
    def has_allocation(self) -> bool:
        return self.status in (Status.OPTIMAL, Status.FEASIBLE)

    def to_dict(self) -> dict[str, Any]:
        """Exactly the ``allocator-result/1`` JSON of run-snapshot.md."""
        return {
            "format": FORMAT,
            "run_id": self.run_id,
            "status": str(self.status),
            "objective": self.objective,
            "best_bound": self.best_bound,
            "solve_seconds": self.solve_seconds,
            "settings": dict(self.settings),
            "input_fingerprint": self.input_fingerprint,
            "allocations": [a.to_dict() for a in self.allocations],
            "metrics": self.metrics,
            "diagnosis": [entry(x) for x in self.diagnosis],
            "seed_dependent_worker_ids": self.seed_dependent_worker_ids,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False) + "\n"

    def allocations_json(self) -> str:
        """The ``allocations`` list alone, compact: byte-identical for the same inputs and seed."""
        return json.dumps([a.to_dict() for a in self.allocations], separators=(",", ":"), ensure_ascii=False)

    def summary(self) -> str:
        """A few lines for a planner (the command line prints this to stderr)."""
        run = f"Run {self.run_id!r}"
        m = self.metrics
        if self.has_allocation:
            n_w = m.get("n_workers", len(self.allocations))
            n_l = m.get("n_job_lines", 0)
            head = (
                f"{run}: {'optimal' if self.status == Status.OPTIMAL else 'feasible'} allocation of "
                f"{n_w} {'worker (doctor)' if n_w == 1 else 'workers (doctors)'} to {n_l} "
                f"{'job line' if n_l == 1 else 'job lines'} in {self.solve_seconds:.2f} s; "
                f"objective {_fmt(self.objective)}"
            )
            if self.status == Status.FEASIBLE:
                gap = ""
                if self.best_bound is not None and self.objective:
                    gap = f", gap {100 * (self.objective - self.best_bound) / abs(self.objective):.2f}%"
                head += f" (not proven optimal: best bound {_fmt(self.best_bound)}{gap})"
            lines = [head + "."]
            levels = levels_text(m.get("levels"))
            if levels and self.status != Status.OPTIMAL:
                lines.append(levels[0].upper() + levels[1:] + ".")
            lines.append(
                f"First choice {_pct(m.get('first_choice_share'))}, top three "
                f"{_pct(m.get('top3_choice_share'))}; {_ranked_ranks(m)}."
            )
            lines.append(
                f"Mandatory lines filled: {m.get('mandatory_lines_filled', 0)} of {m.get('mandatory_lines', 0)}; "
                f"vacancies: {m.get('vacancies', 0)}; blocking pairs: {m.get('blocking_pairs', 0)}."
            )
            return "\n".join(lines)
        if self.status == Status.INFEASIBLE:
            lines = [f"{run} is infeasible: no allocation keeps every rule. Why:"]
            lines += [f"  - [{d.code}] {d.message}" for d in self.diagnosis]
            return "\n".join(lines)
        limit = self.settings.get("max_seconds")
        # Turning stability off is advice only to a run that has it on.
        also = ", or turn stability off" if self.settings.get("stability") else ""
        return (
            f"{run}: no allocation found within the time limit ({_fmt(limit)} s). Give it more time "
            f"(--time-limit){also}."
        )

    # -- explanations ---------------------------------------------------------------------------
    def explain(self, worker_id: str) -> Explanation:
        """Why ``worker_id`` got their line: rank, cost breakdown, and the better-ranked lines."""
        if self.problem is None or self.assignment is None:
            raise ValueError("this result has no allocation to explain (or was read from JSON)")
        p = self.problem
        if worker_id not in p.worker_index:
            raise KeyError(f"worker {worker_id!r} is not a worker of this run")
        s = p.worker_index[worker_id]
        a = self.assignment
        j = int(a[s])
        alpha = p.settings.preferencer_weight
        k = p.settings.preference_power
        fill = np.bincount(a, minlength=p.n_lines)
        got = float(p.worker_rank[s, j])
        choice = int(choice_numbers(p, a)[s])
        has_pref = not np.isnan(p.preferencer_rank[s, j])
        base = float(p.dp[s, j] - p.weight[s, j])
        better = []
        order = sorted(
            (jj for jj in range(p.n_lines) if p.worker_rank[s, jj] < got),
            key=lambda jj: (p.worker_rank[s, jj], p.line_ids[jj]),
        )
        for jj in order:
            verdict = p.verdict(s, jj)
            full = bool(fill[jj] >= p.capacity[jj])
            if not verdict.eligible:
                why = f"not eligible: {verdict.explain()}"
            elif p.forbidden[s, jj]:
                why = "forbidden for them by the planner"
            elif p.pin[s] >= 0:
                why = f"they are pinned to {line_label(p, j)}"
            elif full:
                why = f"full ({int(fill[jj])} of {int(p.capacity[jj])} places)"
            else:
                why = (
                    f"had a free place, but the pair would cost {_fmt(p.cost[s, jj])} against "
                    f"{_fmt(p.cost[s, j])} here, and the allocation as a whole costs less this way"
                )
            better.append(
                {
                    "job_line_id": p.line_ids[jj],
                    "job_line_name": p.line_names[jj],
                    "worker_rank": round_sig(p.worker_rank[s, jj]),
                    "eligibility": verdict.code,
                    "eligible": verdict.eligible,
                    "forbidden": bool(p.forbidden[s, jj]),
                    "filled": int(fill[jj]),
                    "capacity": int(p.capacity[jj]),
                    "full": full,
                    "cost": round_sig(p.cost[s, jj]),
                    "why_not": why,
                }
            )
        return Explanation(
            worker_id=worker_id,
            job_line_id=p.line_ids[j],
            worker_rank=round_sig(got),
            choice=choice or None,
            pinned=bool(p.pin[s] >= 0),
            eligibility=p.verdict(s, j).explain(),
            cost=round_sig(p.cost[s, j]),
            dw=round_sig(p.dw[s, j]),
            dp=round_sig(p.dp[s, j]),
            preferencer_base=round_sig(base),
            preferencer_rank=round_sig(float(p.preferencer_rank[s, j])) if has_pref else None,
            weighting=round_sig(p.weight[s, j]),
            alpha=alpha,
            power=k,
            better_lines=better,
            worker=worker_label(p, s),
            line=line_label(p, j),
        )


@dataclass(frozen=True)
class Explanation:
    """Why one worker got one line. ``str()`` gives the planner's text; :meth:`to_dict` the data."""

    worker_id: str
    job_line_id: str
    worker_rank: float
    choice: int | None  # 1 = first choice (their first tie group); None = a line they did not rank
    pinned: bool
    eligibility: str
    cost: float
    dw: float
    dp: float
    preferencer_base: float
    preferencer_rank: float | None  # mean rank the line's preferencers give them; None if none
    weighting: float
    alpha: float
    power: float
    better_lines: list[dict[str, Any]]
    worker: str = ""
    line: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "worker_id", "job_line_id", "worker_rank", "choice", "pinned", "eligibility", "cost",
                "dw", "dp", "preferencer_base", "preferencer_rank", "weighting", "alpha", "power",
                "better_lines",
            )
        }

    def __str__(self) -> str:
        # A line they did not rank has no rank they gave: say so, never its shared rank.
        which = (
            f"their {ordinal(self.choice)} choice (rank {_fmt(self.worker_rank)})"
            if self.choice
            else "a line they did not rank (not ranked)"
        )
        out = [
            f"Worker (doctor) {self.worker} got job line {self.line}, {which}"
            + (", pinned there by the planner." if self.pinned else ".")
        ]
        out.append(f"Eligible: {self.eligibility}.")
        base = (
            f"their mean rank {_fmt(self.preferencer_rank)} from the line's supervisors, to the power {_fmt(self.power)}"
            if self.preferencer_rank is not None
            else "neutral, no supervisor of the line ranks workers"
        )
        dw = (
            f"Dw = rank {_fmt(self.worker_rank)} to the power {_fmt(self.power)}"
            if self.choice
            else (f"Dw = {_fmt(self.worker_rank)} to the power {_fmt(self.power)} (every line they did not rank "
                  f"costs as if it shared the positions they left: not a rank they gave)")
        )
        out.append(
            f"Cost {_fmt(self.cost)} = (1 - {_fmt(self.alpha)}) x Dw {_fmt(self.dw)} + {_fmt(self.alpha)} x "
            f"Dp {_fmt(self.dp)}; {dw}; "
            f"Dp = {_fmt(self.preferencer_base)} ({base}) + weighting {_fmt(self.weighting)}."
        )
        if self.better_lines:
            out.append("Lines they ranked better:")
            out += [
                f"  - {_line_label(b)} (rank {_fmt(b['worker_rank'])}): {b['why_not']}" for b in self.better_lines
            ]
        else:
            out.append("No line is better for them: they got one of their best.")
        return "\n".join(out)


def _line_label(b: dict[str, Any]) -> str:
    name, id_ = b.get("job_line_name") or b["job_line_id"], b["job_line_id"]
    return f"'{name}' ({id_})" if name != id_ else f"'{id_}'"


def _fmt(x: Any) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float | int | np.floating | np.integer):
        return f"{float(x):.6g}"
    return str(x)


def _ranked_ranks(m: dict[str, Any]) -> str:
    """Mean and worst rank over workers on lines they ranked, with the unranked count beside them."""
    unranked = m.get("unranked_count", m.get("workers_on_unranked_lines", 0))
    on = f"{unranked} {'worker' if unranked == 1 else 'workers'} on a line they did not rank (not ranked)"
    if m.get("mean_rank_ranked") is None:
        return f"no worker is on a line they ranked; {on}"
    return (f"mean rank {_fmt(m.get('mean_rank_ranked'))}, worst rank {_fmt(m.get('worst_rank_ranked'))} "
            f"over the workers on lines they ranked; {on}")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


__all__ = ["FORMAT", "Allocation", "Explanation", "Result", "allocations_from"]
