"""Data health of a run: what a planner should fix before solving, found without solving.

:func:`check` looks at a snapshot and reports

- how deep each worker's rank list goes (how many lines they ranked, of how many they may take);
- workers with no line they may take (every line ineligible or forbidden);
- lines whose pool of workers who may take them is smaller than what they need: none at all
  for a line that must be filled, or fewer than its places;
- supervisors named on a line who ranked nobody (their lines get the neutral rank for everyone).

Every finding carries a message in planners' words that says what is wrong and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from allocator.problem import ProblemData
from allocator.snapshot import RunSnapshot


@dataclass(frozen=True)
class WorkerDepth:
    worker_id: str
    name: str
    ranked: int  # lines the worker ranked
    eligible: int  # lines the worker may take (eligible, not forbidden)
    ranked_eligible: int  # ranked lines among those


@dataclass(frozen=True)
class LinePool:
    job_line_id: str
    name: str
    places: int
    must_be_filled: bool
    pool: int  # workers who may take it
    short_of_places: bool  # pool < places
    cannot_fill: bool  # must be filled but nobody may take it


@dataclass(frozen=True)
class Finding:
    severity: str  # "problem": the solve will fail; "warning": it will run, but check
    message: str
    worker_ids: tuple[str, ...] = ()
    job_line_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class HealthReport:
    n_workers: int
    n_job_lines: int
    places: int
    depth: list[WorkerDepth]
    lines: list[LinePool]
    workers_without_line: list[str]
    lines_short: list[str]  # pool smaller than places
    mandatory_unfillable: list[str]  # must be filled, empty pool
    silent_supervisors: list[str]  # named on a line, ranked nobody
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "problem" for f in self.findings)

    def depth_histogram(self) -> dict[int, int]:
        """Number of workers by how many lines they ranked."""
        out: dict[int, int] = {}
        for d in self.depth:
            out[d.ranked] = out.get(d.ranked, 0) + 1
        return dict(sorted(out.items()))


def _names(ids: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def check(snapshot: RunSnapshot, problem: ProblemData | None = None) -> HealthReport:
    """The data health of ``snapshot`` (``problem`` may be passed to save building it again)."""
    p = problem or ProblemData.from_snapshot(snapshot)
    may_take = p.eligible & ~p.forbidden  # before pins: a pin narrows a worker to one line
    ranked = p.worker_ranked.sum(axis=1)
    eligible = may_take.sum(axis=1)
    ranked_eligible = (p.worker_ranked & may_take).sum(axis=1)
    depth = [
        WorkerDepth(p.worker_ids[i], p.worker_names[i], int(ranked[i]), int(eligible[i]), int(ranked_eligible[i]))
        for i in range(p.n_workers)
    ]
    pool = p.allowed.sum(axis=0)
    lines = [
        LinePool(
            job_line_id=p.line_ids[j],
            name=p.line_names[j],
            places=int(p.capacity[j]),
            must_be_filled=bool(p.mandatory[j]),
            pool=int(pool[j]),
            short_of_places=bool(pool[j] < p.capacity[j]),
            cannot_fill=bool(p.mandatory[j] and pool[j] == 0),
        )
        for j in range(p.n_lines)
    ]
    no_line = [p.worker_ids[i] for i in np.flatnonzero(p.allowed.sum(axis=1) == 0)]
    short = [x.job_line_id for x in lines if x.short_of_places]
    unfillable = [x.job_line_id for x in lines if x.cannot_fill]

    named = sorted({q for j in snapshot.job_lines for q in j.preferencer_ids})
    ranking = {r.preferencer_id for r in snapshot.preferencer_preferences}
    silent = [q for q in named if q not in ranking]

    findings: list[Finding] = []
    if no_line:
        findings.append(Finding(
            "problem",
            f"{len(no_line)} worker(s) may take no job line at all: {_names(no_line)}. "
            "Check their qualifications and the lines' eligibility rules, or remove a forbid.",
            worker_ids=tuple(no_line),
        ))
    for jid in unfillable:
        findings.append(Finding(
            "problem",
            f"Job line {jid!r} must be filled, but no worker may take it. Change its eligibility "
            "rules, or untick 'Must be filled' for it in the scenario.",
            job_line_ids=(jid,),
        ))
    places = int(p.capacity.sum())
    if places < p.n_workers:
        findings.append(Finding(
            "problem",
            f"There are {p.n_workers} workers but only {places} places in all. "
            "Add places to some lines before solving.",
        ))
    shy = [jid for jid in short if jid not in unfillable]
    if shy:
        findings.append(Finding(
            "warning",
            f"{len(shy)} job line(s) have fewer workers who may take them than places, so they "
            f"will have vacancies: {_names(shy)}.",
            job_line_ids=tuple(shy),
        ))
    no_ranks = [d.worker_id for d in depth if d.ranked == 0]
    if no_ranks:
        findings.append(Finding(
            "warning",
            f"{len(no_ranks)} worker(s) ranked no job line: {_names(no_ranks)}. They will be "
            "placed wherever they cost least to others.",
            worker_ids=tuple(no_ranks),
        ))
    if silent:
        findings.append(Finding(
            "warning",
            f"{len(silent)} supervisor(s) are named on a job line but ranked no worker: "
            f"{_names(silent)}. Their lines treat every worker the same on the supervisor side.",
        ))
    return HealthReport(
        n_workers=p.n_workers,
        n_job_lines=p.n_lines,
        places=places,
        depth=depth,
        lines=lines,
        workers_without_line=no_line,
        lines_short=short,
        mandatory_unfillable=unfillable,
        silent_supervisors=silent,
        findings=findings,
    )
